//! Human-readable output of the client commands.

use base64::Engine as _;
use serde_json::Value;
use std::io::Write as _;

pub fn list(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "(none)".into())
}

pub fn tags(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "(none)".into())
}

/// Prints the value alone (text as is, binary as raw bytes), for `$(rotor secret get x)`.
pub fn print_value(doc: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if let Some(s) = doc["value"].as_str() {
        writeln!(out, "{s}")?;
    } else if let Some(b) = doc["value_base64"].as_str() {
        out.write_all(&base64::engine::general_purpose::STANDARD.decode(b)?)?;
    }
    Ok(())
}

pub fn print_description(d: &Value) {
    let s = |k: &str| d[k].as_str().unwrap_or("-").to_string();
    println!("Name:         {}", s("name"));
    println!("ARN:          {}", s("arn"));
    println!("Description:  {}", s("description"));
    println!("Created:      {}", s("created"));
    println!("Last changed: {}", s("last_changed"));
    if let Some(date) = d["deletion_date"].as_str() {
        println!("Deletion on:  {date}");
    }
    println!("Tags:         {}", tags(&d["tags"]));
    println!("Versions:");
    if let Some(versions) = d["versions"].as_object() {
        for (id, stages) in versions {
            println!("  {id}  {}", list(stages));
        }
    }
}

pub fn print_list(secrets: &[Value]) {
    if secrets.is_empty() {
        println!("No secrets.");
        return;
    }
    let width = secrets
        .iter()
        .filter_map(|s| s["name"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:<width$}  {:<24}  DESCRIPTION", "NAME", "CREATED");
    for s in secrets {
        let mut name = s["name"].as_str().unwrap_or("").to_string();
        if s["deletion_date"].is_string() {
            name.push_str(" (deleted)");
        }
        println!(
            "{:<width$}  {:<24}  {}",
            name,
            s["created"].as_str().unwrap_or(""),
            s["description"].as_str().unwrap_or("")
        );
    }
}

pub fn print_versions(doc: &Value) {
    let versions = doc["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        println!("No versions.");
        return;
    }
    let width = versions
        .iter()
        .filter_map(|v| v["version_id"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(7)
        .max(7);
    println!("{:<width$}  {:<24}  STAGES", "VERSION", "CREATED");
    for v in versions {
        println!(
            "{:<width$}  {:<24}  {}",
            v["version_id"].as_str().unwrap_or(""),
            v["created"].as_str().unwrap_or(""),
            list(&v["stages"])
        );
    }
}

/// A rotation schedule (`RotationRules`) in words.
pub fn schedule(rules: &Value) -> String {
    let base = match (
        rules["AutomaticallyAfterDays"].as_i64(),
        rules["ScheduleExpression"].as_str(),
    ) {
        (Some(1), _) => "every day".to_string(),
        (Some(n), _) => format!("every {n} days"),
        (None, Some(expr)) => expr.to_string(),
        (None, None) => return "no schedule".into(),
    };
    match rules["Duration"].as_str() {
        Some(d) => format!("{base}, in a {d} window"),
        None => base,
    }
}

pub fn print_rotators(doc: &Value) {
    let rotators = doc["rotators"].as_array().cloned().unwrap_or_default();
    if rotators.is_empty() {
        println!("No rotators.");
        return;
    }
    let width = rotators
        .iter()
        .filter_map(|r| r["name"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:<width$}  {:<8}  CREATED", "NAME", "TYPE");
    for r in rotators {
        println!(
            "{:<width$}  {:<8}  {}",
            r["name"].as_str().unwrap_or(""),
            r["type"].as_str().unwrap_or(""),
            r["created"].as_str().unwrap_or("")
        );
    }
}

pub fn print_rotator(d: &Value) {
    println!("Name:     {}", d["name"].as_str().unwrap_or(""));
    println!("Type:     {}", d["type"].as_str().unwrap_or(""));
    println!("Created:  {}", d["created"].as_str().unwrap_or(""));
    println!("Settings:");
    if let Some(config) = d["config"].as_object() {
        for (k, v) in config {
            println!("  {k}: {v}");
        }
    }
}

/// Prints a secret's rotation: its configuration, then the latest rotation step by step.
pub fn print_rotation(d: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    println!("Name:          {}", s(&d["name"]));
    let state = if d["enabled"].as_bool() == Some(true) {
        "on"
    } else {
        "off"
    };
    println!("Rotation:      {state}");
    println!("Rotator:       {}", s(&d["rotator"]));
    println!("Runs as:       {}", s(&d["principal"]));
    println!("Schedule:      {}", schedule(&d["rules"]));
    println!("Last rotated:  {}", s(&d["last_rotated"]));
    println!("Next rotation: {}", s(&d["next_rotation"]));
    if let Some(f) = d["failed"].as_str() {
        println!("Last failure:  {f}");
    }
    let r = &d["latest"];
    if r.is_null() {
        println!("No rotation yet.");
        return;
    }
    println!("Latest rotation:");
    println!("  Version:   {}", s(&r["version_id"]));
    println!(
        "  Status:    {} (attempt {})",
        s(&r["status"]),
        r["attempt"].as_i64().unwrap_or(0)
    );
    println!("  Step:      {}", s(&r["step"]));
    println!("  Started:   {}", s(&r["started"]));
    if let Some(f) = r["finished"].as_str() {
        println!("  Finished:  {f}");
    }
    if let Some(at) = r["resume_at"].as_str() {
        println!("  Retry at:  {at}");
    }
    if let Some(e) = r["error"].as_str() {
        println!("  Error:     {e}");
    }
    let steps = r["steps"].as_array().cloned().unwrap_or_default();
    if !steps.is_empty() {
        println!("  Steps:");
    }
    for step in steps {
        println!(
            "    {:<13} attempt {}  {}  {} ms",
            s(&step["step"]),
            step["attempt"].as_i64().unwrap_or(0),
            s(&step["started"]),
            step["millis"].as_i64().unwrap_or(0)
        );
    }
}

pub fn print_rotation_history(doc: &Value) {
    let rotations = doc["rotations"].as_array().cloned().unwrap_or_default();
    if rotations.is_empty() {
        println!("No rotations.");
        return;
    }
    let width = rotations
        .iter()
        .filter_map(|r| r["version_id"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(7)
        .max(7);
    println!(
        "{:<width$}  {:<9}  {:<12}  {:<7}  {:<24}  ERROR",
        "VERSION", "STATUS", "STEP", "ATTEMPT", "STARTED"
    );
    for r in rotations {
        let line = format!(
            "{:<width$}  {:<9}  {:<12}  {:<7}  {:<24}  {}",
            r["version_id"].as_str().unwrap_or(""),
            r["status"].as_str().unwrap_or(""),
            r["step"].as_str().unwrap_or(""),
            r["attempt"].as_i64().unwrap_or(0),
            r["started"].as_str().unwrap_or(""),
            r["error"].as_str().unwrap_or("")
        );
        println!("{}", line.trim_end());
    }
}
