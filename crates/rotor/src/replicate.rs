//! `rotor replicate`: replication rules between namespaces.

use crate::admin::finish;
use crate::cli::{Global, ReplicateCommand};
use crate::commands::client;
use serde_json::Value;
use std::process::ExitCode;

fn print_rule(r: &Value) {
    let from = match (r["source"].as_str(), r["template"].as_str()) {
        (Some(s), _) => s.to_string(),
        (None, Some(t)) => format!("template {t}"),
        _ => String::new(),
    };
    println!(
        "{}  {}  {from} -> {}",
        r["name"].as_str().unwrap_or(""),
        r["kind"].as_str().unwrap_or(""),
        r["destination"].as_str().unwrap_or("")
    );
}

fn print_repairs(d: &Value) {
    let repairs = d["repairs"].as_array().cloned().unwrap_or_default();
    if repairs.is_empty() {
        println!("Every destination is in step");
    }
    for r in repairs {
        println!(
            "Repaired {} (rule {}): AWSCURRENT is version {}",
            r["destination"].as_str().unwrap_or(""),
            r["rule"].as_str().unwrap_or(""),
            r["version"].as_str().unwrap_or("")
        );
    }
}

pub async fn replicate(global: &Global, cmd: ReplicateCommand) -> anyhow::Result<ExitCode> {
    let c = client(global)?;
    match cmd {
        ReplicateCommand::Add {
            name,
            from,
            to,
            template,
        } => {
            let kind = if template.is_some() { "merge" } else { "copy" };
            let doc = c
                .add_replication(&name, kind, from.as_deref(), &to, template.as_deref())
                .await?;
            finish(global, &doc, |d| {
                print_rule(&d["rule"]);
                let n = d["repairs"].as_array().map_or(0, Vec::len);
                println!("Replicated {n} destination(s) now");
            })
        }
        ReplicateCommand::List => {
            let doc = c.list_replication().await?;
            finish(global, &doc, |d| {
                for r in d["rules"].as_array().cloned().unwrap_or_default() {
                    print_rule(&r);
                }
            })
        }
        ReplicateCommand::Show { name } => {
            let doc = c.replication(&name).await?;
            finish(global, &doc, |d| {
                print_rule(d);
                println!("Reads: {}", d["sources"]);
                println!(
                    "Added {} by {}",
                    d["created"].as_str().unwrap_or(""),
                    d["created_by"].as_str().unwrap_or("")
                );
            })
        }
        ReplicateCommand::Remove { name } => {
            let doc = c.remove_replication(&name).await?;
            finish(global, &doc, |_| {
                println!("Removed replication rule {name}")
            })
        }
        ReplicateCommand::Sync => {
            let doc = c.sync_replication().await?;
            finish(global, &doc, print_repairs)
        }
    }
}
