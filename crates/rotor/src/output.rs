//! Output of the client commands: human-readable, or JSON with `--output json`.

use base64::Engine as _;
use rotor_api::rotation::{History, RotationState};
use rotor_api::secrets::{self, Description, VersionList};
use rotor_api::sys::{Rotator, RotatorList};
use rotor_client::RotationRules;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::Write as _;

/// Prints an answer as pretty JSON. It goes through a `serde_json::Value`, whose
/// object keys are sorted: the order `--output json` has always printed.
pub fn print_json(doc: &impl Serialize) -> anyhow::Result<()> {
    let doc = serde_json::to_value(doc)?;
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

/// `text`, or `-` when there is none.
fn or_dash(text: Option<impl Display>) -> String {
    text.map_or_else(|| "-".to_string(), |t| t.to_string())
}

pub fn list(items: &[String]) -> String {
    let joined = items.join(", ");
    if joined.is_empty() {
        "(none)".into()
    } else {
        joined
    }
}

pub fn tags(tags: &BTreeMap<String, String>) -> String {
    if tags.is_empty() {
        return "(none)".into();
    }
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints the value alone (text as is, binary as raw bytes), for `$(rotor secret get x)`.
pub fn print_value(doc: &secrets::Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if let Some(s) = &doc.value {
        writeln!(out, "{}", s.expose())?;
    } else if let Some(b) = &doc.value_base64 {
        out.write_all(&base64::engine::general_purpose::STANDARD.decode(b)?)?;
    }
    Ok(())
}

pub fn print_description(d: &Description) {
    println!("Name:         {}", d.name);
    println!("ARN:          {}", d.arn);
    println!("Description:  {}", or_dash(d.description.as_deref()));
    println!("Created:      {}", d.created);
    println!("Last changed: {}", d.last_changed);
    if let Some(date) = d.deletion_date {
        println!("Deletion on:  {date}");
    }
    println!("Tags:         {}", tags(&d.tags));
    println!("Versions:");
    for (id, stages) in &d.versions {
        println!("  {id}  {}", list(stages));
    }
}

pub fn print_list(secrets: &[Description]) {
    if secrets.is_empty() {
        println!("No secrets.");
        return;
    }
    let width = secrets
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:<width$}  {:<24}  DESCRIPTION", "NAME", "CREATED");
    for s in secrets {
        let mut name = s.name.clone();
        if s.deletion_date.is_some() {
            name.push_str(" (deleted)");
        }
        println!(
            "{:<width$}  {:<24}  {}",
            name,
            s.created.to_string(),
            s.description.as_deref().unwrap_or("")
        );
    }
}

pub fn print_versions(doc: &VersionList) {
    if doc.versions.is_empty() {
        println!("No versions.");
        return;
    }
    let width = doc
        .versions
        .iter()
        .map(|v| v.version_id.len())
        .max()
        .unwrap_or(7)
        .max(7);
    println!("{:<width$}  {:<24}  STAGES", "VERSION", "CREATED");
    for v in &doc.versions {
        println!(
            "{:<width$}  {:<24}  {}",
            v.version_id,
            v.created.to_string(),
            list(&v.stages)
        );
    }
}

/// A rotation schedule in words.
pub fn schedule(rules: &RotationRules) -> String {
    let base = match (
        rules.automatically_after_days,
        rules.schedule_expression.as_deref(),
    ) {
        (Some(1), _) => "every day".to_string(),
        (Some(n), _) => format!("every {n} days"),
        (None, Some(expr)) => expr.to_string(),
        (None, None) => return "no schedule".into(),
    };
    match rules.duration.as_deref() {
        Some(d) => format!("{base}, in a {d} window"),
        None => base,
    }
}

pub fn print_rotators(doc: &RotatorList) {
    if doc.rotators.is_empty() {
        println!("No rotators.");
        return;
    }
    let width = doc
        .rotators
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:<width$}  {:<8}  CREATED", "NAME", "TYPE");
    for r in &doc.rotators {
        println!("{:<width$}  {:<8}  {}", r.name, r.kind, r.created);
    }
}

pub fn print_rotator(d: &Rotator) {
    println!("Name:     {}", d.name);
    println!("Type:     {}", d.kind);
    println!("Created:  {}", d.created);
    println!("Settings:");
    // Each kind of rotator has its own settings: shown as they are, field by field.
    if let Some(config) = d.config.as_object() {
        for (k, v) in config {
            println!("  {k}: {v}");
        }
    }
}

/// Prints a secret's rotation: its configuration, then the latest rotation step by step.
pub fn print_rotation(d: &RotationState) {
    println!("Name:          {}", d.name);
    let state = if d.enabled { "on" } else { "off" };
    println!("Rotation:      {state}");
    println!("Rotator:       {}", or_dash(d.rotator.as_deref()));
    println!("Runs as:       {}", or_dash(d.principal.as_deref()));
    // The API shows the rules as stored; read as `RotationRules` they are what the
    // schedule was set from (none when unset).
    let rules = d
        .rules
        .clone()
        .and_then(|r| serde_json::from_value(r).ok())
        .unwrap_or_default();
    println!("Schedule:      {}", schedule(&rules));
    println!("Last rotated:  {}", or_dash(d.last_rotated));
    println!("Next rotation: {}", or_dash(d.next_rotation));
    if let Some(f) = &d.failed {
        println!("Last failure:  {f}");
    }
    println!("Consumers:     {}", adoption(&d.adoption));
    let Some(r) = &d.latest else {
        println!("No rotation yet.");
        return;
    };
    println!("Latest rotation:");
    println!("  Version:   {}", r.version_id);
    println!("  Status:    {} (attempt {})", r.status, r.attempt);
    println!("  Step:      {}", r.step);
    println!("  Started:   {}", r.started);
    if let Some(f) = r.finished {
        println!("  Finished:  {f}");
    }
    if let Some(at) = r.resume_at {
        println!("  Retry at:  {at}");
    }
    if let Some(e) = &r.error {
        println!("  Error:     {e}");
    }
    if !r.steps.is_empty() {
        println!("  Steps:");
    }
    for step in &r.steps {
        println!(
            "    {:<13} attempt {}  {}  {} ms",
            step.step, step.attempt, step.started, step.millis
        );
    }
    if let Some(g) = r.gates.iter().rev().find(|g| g.passed.is_none())
        && r.status == "running"
    {
        let deadline = g.started.0 + chrono::Duration::seconds(d.adoption.adoption_timeout_secs);
        println!(
            "  Waiting:   before {} for {} to leave version {} (since {}; until {}, then {})",
            g.step,
            g.waiting_for.join(", "),
            g.version_id,
            g.started,
            rotor_api::Timestamp(deadline),
            d.adoption.on_timeout.as_str()
        );
    }
    let decided: Vec<_> = r.gates.iter().filter(|g| g.passed.is_some()).collect();
    if !decided.is_empty() {
        println!("  Gates:");
    }
    for g in decided {
        let waited = g
            .passed
            .map(|p| (p.0 - g.started.0).num_milliseconds())
            .unwrap_or(0);
        let held = if g.waiting_for.is_empty() {
            String::new()
        } else {
            format!("  ({})", g.waiting_for.join(", "))
        };
        println!(
            "    {:<13} attempt {}  {:<9}  waited {} ms for version {}{held}",
            g.step,
            g.attempt,
            g.outcome.as_deref().unwrap_or("-"),
            waited,
            g.version_id
        );
    }
}

/// The adoption policy in a line.
fn adoption(p: &rotor_core::model::AdoptionPolicy) -> String {
    if !p.wait_for_consumers {
        return "not waited for".to_string();
    }
    format!(
        "waited for up to {} s, then {}; previous credential {}; readers count for {} s",
        p.adoption_timeout_secs,
        p.on_timeout.as_str(),
        if p.retire_previous {
            "retired once unused"
        } else {
            "kept until the next rotation"
        },
        p.assume_adopted_after_secs
    )
}

pub fn print_rotation_history(doc: &History) {
    if doc.rotations.is_empty() {
        println!("No rotations.");
        return;
    }
    let width = doc
        .rotations
        .iter()
        .map(|r| r.version_id.len())
        .max()
        .unwrap_or(7)
        .max(7);
    println!(
        "{:<width$}  {:<9}  {:<12}  {:<7}  {:<24}  ERROR",
        "VERSION", "STATUS", "STEP", "ATTEMPT", "STARTED"
    );
    for r in &doc.rotations {
        let line = format!(
            "{:<width$}  {:<9}  {:<12}  {:<7}  {:<24}  {}",
            r.version_id,
            r.status,
            r.step,
            r.attempt,
            r.started.to_string(),
            r.error.as_deref().unwrap_or("")
        );
        println!("{}", line.trim_end());
    }
}

/// How long, in the largest whole unit.
fn ago(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

pub fn print_health(h: &rotor_api::rotation::Health) {
    if h.overdue.is_empty() && h.failed.is_empty() && h.waiting.is_empty() && h.lagging.is_empty() {
        println!("All rotations healthy: none overdue, failed or waiting; no consumer lagging.");
        return;
    }
    for o in &h.overdue {
        println!(
            "OVERDUE  {}  due {} ({} ago)",
            o.name,
            o.due,
            ago(o.overdue_secs)
        );
    }
    for f in &h.failed {
        let since = f.since.map(|t| format!(" since {t}")).unwrap_or_default();
        println!("FAILED   {}{since}: {}", f.name, f.error);
    }
    for w in &h.waiting {
        println!(
            "WAITING  {}  before {} for {} to leave version {} ({})",
            w.name,
            w.step,
            w.consumers.join(", "),
            w.held_version_id,
            ago(w.waiting_secs)
        );
    }
    for l in &h.lagging {
        println!(
            "LAGGING  {}  {} on {} (AWSCURRENT is {}, for {})",
            l.name,
            l.consumer,
            l.version_id,
            l.current_version_id,
            ago(l.lagging_secs)
        );
    }
}
