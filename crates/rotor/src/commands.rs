//! The client commands: `rotor secret ...` and `rotor password`.

use crate::cli::{Global, Output, PasswordArgs, SecretCommand, ValueArgs};
use crate::output;
use anyhow::{Context, bail};
use rotor_client::{Client, NewValue};
use rotor_core::label::resolve_alias;
use rotor_core::password::PasswordSpec;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::io::Read as _;
use std::process::ExitCode;

pub fn client(global: &Global) -> anyhow::Result<Client> {
    let Some(token) = global.token.as_deref() else {
        bail!("no token: set ROTOR_TOKEN or pass --token");
    };
    Ok(Client::new(&global.addr, token)?)
}

fn read_value(v: &ValueArgs) -> anyhow::Result<Option<NewValue>> {
    if let Some(s) = &v.value {
        return Ok(Some(NewValue::Text(SecretString::from(s.as_str()))));
    }
    if let Some(path) = &v.value_file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(Some(NewValue::Text(SecretString::from(text))));
    }
    if let Some(path) = &v.binary_file {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(Some(NewValue::Bytes(bytes)));
    }
    if v.value_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        let text = text.strip_suffix('\n').map(str::to_string).unwrap_or(text);
        return Ok(Some(NewValue::Text(SecretString::from(text))));
    }
    Ok(None)
}

fn key_value(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!("tag {s:?} must be KEY=VALUE"),
    }
}

pub async fn secret(global: &Global, cmd: SecretCommand) -> anyhow::Result<ExitCode> {
    let c = client(global)?;
    let json_out = global.output == Output::Json;
    let doc: Value = match cmd {
        SecretCommand::Create {
            name,
            value,
            description,
            tags,
            version_id,
        } => {
            let tags = tags
                .iter()
                .map(|t| key_value(t))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let value = read_value(&value)?;
            let out = c
                .create(
                    &name,
                    value.as_ref(),
                    description.as_deref(),
                    &tags,
                    version_id.as_deref(),
                )
                .await?;
            if !json_out {
                println!(
                    "Created {} ({})",
                    out["name"].as_str().unwrap_or(&name),
                    out["arn"].as_str().unwrap_or("")
                );
                if let Some(v) = out["version_id"].as_str() {
                    println!("Version {v} is AWSCURRENT");
                }
            }
            out
        }
        SecretCommand::Put {
            name,
            value,
            version_id,
            stages,
        } => {
            let Some(value) = read_value(&value)? else {
                bail!("give the value: --value, --value-file, --value-stdin or --binary-file");
            };
            let stages: Vec<String> = stages
                .iter()
                .map(|s| resolve_alias(s).to_string())
                .collect();
            let out = c.put(&name, &value, version_id.as_deref(), &stages).await?;
            if !json_out {
                println!(
                    "Put version {} of {} with stages {}",
                    out["version_id"].as_str().unwrap_or(""),
                    out["name"].as_str().unwrap_or(&name),
                    output::list(&out["stages"])
                );
            }
            out
        }
        SecretCommand::Get {
            name,
            version_id,
            stage,
        } => {
            let out = c
                .get_value(&name, version_id.as_deref(), stage.as_deref())
                .await?;
            if !json_out {
                output::print_value(&out)?;
            }
            out
        }
        SecretCommand::Describe { name } => {
            let out = c.describe(&name).await?;
            if !json_out {
                output::print_description(&out);
            }
            out
        }
        SecretCommand::List {
            prefix,
            include_deleted,
        } => {
            let secrets = c.list(prefix.as_deref(), include_deleted).await?;
            if !json_out {
                output::print_list(&secrets);
            }
            json!({ "secrets": secrets })
        }
        SecretCommand::Versions {
            name,
            include_deprecated,
        } => {
            let out = c.versions(&name, include_deprecated).await?;
            if !json_out {
                output::print_versions(&out);
            }
            out
        }
        SecretCommand::Stage {
            name,
            label,
            to,
            from,
        } => {
            if to.is_none() && from.is_none() {
                bail!("say where the label goes: --to VERSION, --from VERSION, or both");
            }
            let label = resolve_alias(&label).to_string();
            let out = c
                .stage(&name, &label, to.as_deref(), from.as_deref())
                .await?;
            if !json_out {
                match (&to, &from) {
                    (Some(t), _) => println!("Moved {label} to version {t}"),
                    (None, Some(f)) => println!("Removed {label} from version {f}"),
                    (None, None) => {}
                }
            }
            out
        }
        SecretCommand::Delete {
            name,
            recovery_window_days,
            force,
        } => {
            let out = c.delete(&name, recovery_window_days, force).await?;
            if !json_out {
                if force {
                    println!("Deleted {}", out["name"].as_str().unwrap_or(&name));
                } else {
                    println!(
                        "Scheduled {} for deletion on {}",
                        out["name"].as_str().unwrap_or(&name),
                        out["deletion_date"].as_str().unwrap_or("")
                    );
                }
            }
            out
        }
        SecretCommand::Restore { name } => {
            let out = c.restore(&name).await?;
            if !json_out {
                println!("Restored {}", out["name"].as_str().unwrap_or(&name));
            }
            out
        }
        SecretCommand::Tag { name, tags, remove } => {
            if tags.is_empty() && remove.is_empty() {
                bail!("give tags to add (KEY=VALUE) or to remove (--remove KEY)");
            }
            let tags = tags
                .iter()
                .map(|t| key_value(t))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut out = Value::Null;
            if !tags.is_empty() {
                out = c.tag(&name, &tags).await?;
            }
            if !remove.is_empty() {
                out = c.untag(&name, &remove).await?;
            }
            if !json_out {
                println!("Tags of {}: {}", name, output::tags(&out["tags"]));
            }
            out
        }
    };
    if json_out {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn password(global: &Global, args: PasswordArgs) -> anyhow::Result<ExitCode> {
    let password = if args.local || global.token.is_none() {
        let spec = PasswordSpec {
            length: args.length,
            exclude_characters: args.exclude_characters.unwrap_or_default(),
            exclude_numbers: args.exclude_numbers,
            exclude_punctuation: args.exclude_punctuation,
            exclude_uppercase: args.exclude_uppercase,
            exclude_lowercase: args.exclude_lowercase,
            include_space: args.include_space,
            require_each_included_type: !args.no_require_each_type,
        };
        rotor_crypto::random::password(&spec)?
    } else {
        let out = client(global)?
            .password(json!({
                "length": args.length,
                "exclude_characters": args.exclude_characters,
                "exclude_numbers": args.exclude_numbers,
                "exclude_punctuation": args.exclude_punctuation,
                "exclude_uppercase": args.exclude_uppercase,
                "exclude_lowercase": args.exclude_lowercase,
                "include_space": args.include_space,
                "require_each_included_type": !args.no_require_each_type,
            }))
            .await?;
        out["password"].as_str().unwrap_or_default().to_string()
    };
    if global.output == Output::Json {
        println!("{}", json!({ "password": password }));
    } else {
        println!("{password}");
    }
    Ok(ExitCode::SUCCESS)
}
