//! `rotor rotator|rotation|rotate`: registering rotators, configuring and following
//! a secret's rotation.

use crate::admin::finish;
use crate::cli::{AdoptionArgs, Global, RotationCommand, RotatorArgs, RotatorCommand};
use crate::commands::client;
use crate::output;
use anyhow::{Context, bail};
use rotor_client::RotationRules;
use rotor_core::model::{AdoptionChange, OnTimeout};
use serde_json::{Map, Value, json};
use std::process::ExitCode;

/// The rotator's settings: `--config`, with each option's field set on top. An
/// option that the type has no field for is refused here, naming the option. Each
/// kind has its own settings, so they stay free-form JSON.
fn rotator_config(args: &RotatorArgs) -> anyhow::Result<Value> {
    let mut config: Map<String, Value> = match &args.config {
        Some(text) => match serde_json::from_str(text).context("--config is not JSON")? {
            Value::Object(m) => m,
            _ => bail!("--config must be a JSON object"),
        },
        None => Map::new(),
    };
    let kind = args.kind.as_str();
    let mut set = |option: &str, kinds: &[&str], field: &str, value: Value| {
        if !kinds.contains(&kind) {
            bail!(
                "{option} does not apply to {kind} rotators (only to {})",
                kinds.join(", ")
            );
        }
        config.insert(field.to_string(), value);
        Ok(())
    };
    if let Some(url) = &args.url {
        set("--url", &["webhook"], "url", json!(url))?;
    }
    if !args.command.is_empty() {
        set("--command", &["exec"], "command", json!(args.command))?;
    }
    if let Some(handler) = &args.handler {
        set("--handler", &["lambda"], "handler", json!(handler))?;
    }
    if let Some(dir) = &args.code_dir {
        let dir =
            std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
        set("--code-dir", &["lambda"], "code_dir", json!(dir))?;
    }
    if let Some(strategy) = &args.strategy {
        set(
            "--strategy",
            &["postgres", "mysql"],
            "strategy",
            json!(strategy),
        )?;
    }
    if let Some(length) = args.length {
        let field = if kind == "random" {
            "length"
        } else {
            "password_length"
        };
        set(
            "--length",
            &["random", "postgres", "mysql"],
            field,
            json!(length),
        )?;
    }
    if let Some(field) = &args.field {
        set("--field", &["random"], "field", json!(field))?;
    }
    if args.retire {
        set(
            "--retire",
            &["webhook", "exec", "lambda"],
            "retire",
            json!(true),
        )?;
    }
    if let Some(ms) = args.timeout_ms {
        set(
            "--timeout-ms",
            &["webhook", "exec", "lambda"],
            "timeout_ms",
            json!(ms),
        )?;
    }
    Ok(Value::Object(config))
}

pub async fn rotator(global: &Global, cmd: RotatorCommand) -> anyhow::Result<ExitCode> {
    let c = client(global)?;
    match cmd {
        RotatorCommand::Create(args) => {
            let config = rotator_config(&args)?;
            let doc = c
                .create_rotator(&args.name, args.kind, config, args.replace)
                .await?;
            finish(global, &doc, |d| {
                println!("Registered {} rotator {}", d.kind, args.name);
                if let Some(key) = &d.signing_key {
                    println!("Signing key: {}", key.expose());
                    println!(
                        "(The signing key is shown only this once. Check each request's X-Rotor-Signature with it.)"
                    );
                }
            })
        }
        RotatorCommand::List => {
            let doc = c.list_rotators().await?;
            finish(global, &doc, output::print_rotators)
        }
        RotatorCommand::Show { name } => {
            let doc = c.rotator(&name).await?;
            finish(global, &doc, output::print_rotator)
        }
        RotatorCommand::Delete { name } => {
            let doc = c.delete_rotator(&name).await?;
            finish(global, &doc, |_| println!("Deleted rotator {name}"))
        }
    }
}

pub async fn rotation(global: &Global, cmd: RotationCommand) -> anyhow::Result<ExitCode> {
    let c = client(global)?;
    match cmd {
        RotationCommand::Set {
            name,
            rotator,
            every_days,
            schedule,
            window,
            now,
            adoption,
        } => {
            let rules = RotationRules {
                automatically_after_days: every_days,
                schedule_expression: schedule,
                duration: window,
            };
            let config = rotor_api::rotation::RotationConfig {
                rotator: Some(rotator.clone()),
                rules: Some(rules.clone()),
                rotate_immediately: now,
                version_id: None,
                adoption: adoption_change(&adoption),
            };
            let doc = c.configure_rotation(&name, &config).await?;
            finish(global, &doc, |d| {
                println!(
                    "{} rotates with {rotator}, {}",
                    d.name,
                    output::schedule(&rules)
                );
                if let Some(v) = &d.version_id {
                    println!("Rotating now: the new version is {v}");
                }
            })
        }
        RotationCommand::Show { name } => {
            let doc = c.rotation(&name).await?;
            finish(global, &doc, output::print_rotation)
        }
        RotationCommand::History { name, limit } => {
            let doc = c.rotation_history(&name, Some(limit)).await?;
            finish(global, &doc, output::print_rotation_history)
        }
        RotationCommand::Cancel { name } => {
            let doc = c.cancel_rotation(&name).await?;
            finish(global, &doc, |d| {
                println!("Rotation of {} is off", d.name);
                if let Some(v) = &d.version_id {
                    println!("Stopped the rotation to version {v} (it keeps AWSPENDING)");
                }
            })
        }
    }
}

/// The adoption options given, as a change to the secret's policy (none when no
/// option was given).
fn adoption_change(a: &AdoptionArgs) -> Option<AdoptionChange> {
    let flag = |on: bool, off: bool| match (on, off) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let change = AdoptionChange {
        wait_for_consumers: flag(a.wait_for_consumers, a.no_wait_for_consumers),
        adoption_timeout_secs: a.adoption_timeout,
        on_timeout: a.on_timeout.as_deref().map(|w| match w {
            "proceed" => OnTimeout::Proceed,
            _ => OnTimeout::Fail,
        }),
        retire_previous: flag(a.retire_previous, a.keep_previous),
        assume_adopted_after_secs: a.assume_adopted_after,
    };
    (change != AdoptionChange::default()).then_some(change)
}

pub async fn rotate(
    global: &Global,
    name: &str,
    version_id: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let doc = client(global)?.rotate(name, version_id).await?;
    finish(global, &doc, |d| {
        let name = &d.name;
        println!(
            "Rotating {name}: the new version is {}",
            d.version_id.as_deref().unwrap_or("")
        );
        println!("(Follow it with `rotor rotation show {name}`.)");
    })
}

/// `rotor status`: exit code 0 when nothing needs attention, 1 otherwise (for scripts
/// and health checks).
pub async fn status(global: &Global) -> anyhow::Result<ExitCode> {
    let doc = client(global)?.rotation_health().await?;
    let healthy = doc.overdue.is_empty() && doc.failed.is_empty() && doc.lagging.is_empty();
    finish(global, &doc, output::print_health)?;
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
