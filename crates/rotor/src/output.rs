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
