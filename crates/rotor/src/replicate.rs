//! `rotor replicate`: replication rules between namespaces.

use crate::admin::finish;
use crate::cli::{Global, ReplicateCommand};
use crate::commands::client;
use rotor_api::replication::{Repairs, Rule, RuleKind};
use std::process::ExitCode;

fn print_rule(r: &Rule) {
    let from = match (&r.source, &r.template) {
        (Some(s), _) => s.to_string(),
        (None, Some(t)) => format!("template {t}"),
        _ => String::new(),
    };
    println!(
        "{}  {}  {from} -> {}",
        r.name,
        r.kind.as_str(),
        r.destination
    );
}

fn print_repairs(d: &Repairs) {
    if d.repairs.is_empty() {
        println!("Every destination is in step");
    }
    for r in &d.repairs {
        println!(
            "Repaired {} (rule {}): AWSCURRENT is version {}",
            r.destination, r.rule, r.version
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
            let kind = if template.is_some() {
                RuleKind::Merge
            } else {
                RuleKind::Copy
            };
            let doc = c
                .add_replication(&name, kind, from.as_deref(), &to, template.as_deref())
                .await?;
            finish(global, &doc, |d| {
                print_rule(&d.rule);
                println!("Replicated {} destination(s) now", d.repairs.len());
            })
        }
        ReplicateCommand::List => {
            let doc = c.list_replication().await?;
            finish(global, &doc, |d| {
                for r in &d.rules {
                    print_rule(r);
                }
            })
        }
        ReplicateCommand::Show { name } => {
            let doc = c.replication(&name).await?;
            finish(global, &doc, |d| {
                print_rule(d);
                // As a JSON list: `["/dba/a","/dba/b"]`.
                println!("Reads: {}", serde_json::Value::from(d.sources.clone()));
                println!("Added {} by {}", d.created, d.created_by);
            })
        }
        ReplicateCommand::Remove { name } => {
            c.remove_replication(&name).await?;
            // The answer is empty: `null` with `--output json`.
            finish(global, &(), |_| println!("Removed replication rule {name}"))
        }
        ReplicateCommand::Sync => {
            let doc = c.sync_replication().await?;
            finish(global, &doc, print_repairs)
        }
    }
}
