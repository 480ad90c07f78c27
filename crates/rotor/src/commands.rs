//! The client commands: `rotor secret ...` and `rotor password`.

use crate::admin::finish;
use crate::cli::{Global, Output, PasswordArgs, SecretCommand, ValueArgs};
use crate::output;
use anyhow::{Context, bail};
use rotor_api::Sensitive;
use rotor_api::secrets::{self, Description};
use rotor_client::{Client, NewValue};
use rotor_core::label::resolve_alias;
use rotor_core::password::PasswordSpec;
use secrecy::SecretString;
use serde::Serialize;
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

/// `secret list --output json`: every page's secrets in one list.
#[derive(Serialize)]
struct SecretListing {
    secrets: Vec<Description>,
}

pub async fn secret(global: &Global, cmd: SecretCommand) -> anyhow::Result<ExitCode> {
    let c = client(global)?;
    match cmd {
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
            finish(global, &out, |out| {
                println!("Created {} ({})", out.name, out.arn);
                if let Some(v) = &out.version_id {
                    println!("Version {v} is AWSCURRENT");
                }
            })
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
            finish(global, &out, |out| {
                println!(
                    "Put version {} of {} with stages {}",
                    out.version_id,
                    out.name,
                    output::list(&out.stages)
                );
            })
        }
        SecretCommand::Get {
            name,
            version_id,
            stage,
        } => {
            let out = c
                .get_value(&name, version_id.as_deref(), stage.as_deref())
                .await?;
            if global.output == Output::Json {
                output::print_json(&out)?;
            } else {
                output::print_value(&out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        SecretCommand::Describe { name } => {
            let out = c.describe(&name).await?;
            finish(global, &out, output::print_description)
        }
        SecretCommand::List {
            prefix,
            include_deleted,
        } => {
            let secrets = c.list(prefix.as_deref(), include_deleted).await?;
            finish(global, &SecretListing { secrets }, |l| {
                output::print_list(&l.secrets)
            })
        }
        SecretCommand::Versions {
            name,
            include_deprecated,
        } => {
            let out = c.versions(&name, include_deprecated).await?;
            finish(global, &out, output::print_versions)
        }
        SecretCommand::RetirePrevious { name, wait } => {
            let out = c.retire_previous(&name, wait).await?;
            finish(global, &out, |d| {
                let how = if d.by == "rotator" {
                    "by its rotator"
                } else {
                    "as a rotation.retired event for your hooks"
                };
                println!("Retired version {} of {} ({how})", d.version_id, d.name);
            })
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
            finish(global, &out, |_| match (&to, &from) {
                (Some(t), _) => println!("Moved {label} to version {t}"),
                (None, Some(f)) => println!("Removed {label} from version {f}"),
                (None, None) => {}
            })
        }
        SecretCommand::Delete {
            name,
            recovery_window_days,
            force,
        } => {
            let out = c.delete(&name, recovery_window_days, force).await?;
            finish(global, &out, |out| {
                if force {
                    println!("Deleted {}", out.name);
                } else {
                    println!(
                        "Scheduled {} for deletion on {}",
                        out.name, out.deletion_date
                    );
                }
            })
        }
        SecretCommand::Restore { name } => {
            let out = c.restore(&name).await?;
            finish(global, &out, |out| println!("Restored {}", out.name))
        }
        SecretCommand::Tag { name, tags, remove } => {
            if tags.is_empty() && remove.is_empty() {
                bail!("give tags to add (KEY=VALUE) or to remove (--remove KEY)");
            }
            let tags = tags
                .iter()
                .map(|t| key_value(t))
                .collect::<anyhow::Result<Vec<_>>>()?;
            // Answers the secret as tagged: the last request's answer shows both.
            let out = if remove.is_empty() {
                c.tag(&name, &tags).await?
            } else {
                if !tags.is_empty() {
                    c.tag(&name, &tags).await?;
                }
                c.untag(&name, &remove).await?
            };
            finish(global, &out, |out| {
                println!("Tags of {}: {}", name, output::tags(&out.tags))
            })
        }
    }
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
        Sensitive::new(rotor_crypto::random::password(&spec)?)
    } else {
        let spec = secrets::PasswordSpec {
            // Past u32, still too long: the server says so.
            length: Some(u32::try_from(args.length).unwrap_or(u32::MAX)),
            exclude_characters: args.exclude_characters,
            exclude_numbers: args.exclude_numbers,
            exclude_punctuation: args.exclude_punctuation,
            exclude_uppercase: args.exclude_uppercase,
            exclude_lowercase: args.exclude_lowercase,
            include_space: args.include_space,
            require_each_included_type: Some(!args.no_require_each_type),
        };
        client(global)?.password(&spec).await?.password
    };
    if global.output == Output::Json {
        println!(
            "{}",
            serde_json::to_string(&secrets::Password { password })?
        );
    } else {
        println!("{}", password.expose());
    }
    Ok(ExitCode::SUCCESS)
}
