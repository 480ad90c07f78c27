//! `rotor principal|token|access-key|policy`: access management.

use crate::cli::{
    AccessKeyCommand, AuditCommand, AuditKey, Global, Output, PolicyCommand, PrincipalCommand,
    TokenCommand,
};
use crate::commands::client;
use crate::output;
use anyhow::{Context, bail};
use rotor_api::sys::Token;
use rotor_core::policy::Statement;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Read as _;
use std::process::ExitCode;

/// Prints a command's answer: as JSON with `--output json`, else with `human`.
pub fn finish<T: Serialize>(
    global: &Global,
    doc: &T,
    human: impl FnOnce(&T),
) -> anyhow::Result<ExitCode> {
    if global.output == Output::Json {
        output::print_json(doc)?;
    } else {
        human(doc);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn principal(global: &Global, cmd: PrincipalCommand) -> anyhow::Result<ExitCode> {
    let c = client(global)?;
    match cmd {
        PrincipalCommand::Create { name, kind } => {
            let doc = c.create_principal(&name, kind).await?;
            finish(global, &doc, |_| {
                println!("Created {} {name}", kind.as_str())
            })
        }
        PrincipalCommand::List => {
            let doc = c.list_principals().await?;
            finish(global, &doc, |d| {
                println!(
                    "{:<24}  {:<8}  {:<24}  TOKENS  KEYS",
                    "NAME", "KIND", "POLICIES"
                );
                for p in &d.principals {
                    println!(
                        "{:<24}  {:<8}  {:<24}  {:<6}  {}",
                        p.name,
                        p.kind,
                        output::list(&p.policies),
                        p.tokens.len(),
                        p.access_keys.len()
                    );
                }
            })
        }
        PrincipalCommand::Delete { name } => {
            let doc = c.delete_principal(&name).await?;
            finish(global, &doc, |_| {
                println!("Deleted {name} with its tokens and keys")
            })
        }
    }
}

fn print_token(d: &Token) {
    println!("Id:        {}", d.id);
    println!("Principal: {}", d.principal);
    println!("Created:   {}", d.created);
    match d.expires {
        Some(t) => println!("Expires:   {t}"),
        None => println!("Expires:   never"),
    }
    if let Some(r) = d.revoked {
        println!("Revoked:   {r}");
    }
}

pub async fn token(global: &Global, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let c = client(global)?;
    match cmd {
        TokenCommand::Create { principal, ttl } => {
            let doc = c.create_token(&principal, ttl).await?;
            finish(global, &doc, |d| {
                print_token(&d.info);
                println!("Token:     {}", d.token.expose());
                println!("(The token is shown only this once.)");
            })
        }
        TokenCommand::Revoke { token } => {
            let doc = c.revoke_token(&token).await?;
            finish(global, &doc, |d| println!("Revoked {}", d.id))
        }
        TokenCommand::Lookup { token } => {
            let doc = c.lookup_token(token.as_deref()).await?;
            finish(global, &doc, print_token)
        }
    }
}

pub async fn access_key(global: &Global, cmd: AccessKeyCommand) -> anyhow::Result<ExitCode> {
    let c = client(global)?;
    match cmd {
        AccessKeyCommand::Create { principal } => {
            let doc = c.create_access_key(&principal).await?;
            finish(global, &doc, |d| {
                println!("Access key id:     {}", d.access_key_id);
                println!("Secret access key: {}", d.secret_access_key.expose());
                println!("(The secret access key is shown only this once.)");
            })
        }
        AccessKeyCommand::Delete { access_key_id } => {
            let doc = c.delete_access_key(&access_key_id).await?;
            finish(global, &doc, |_| println!("Deleted {access_key_id}"))
        }
    }
}

/// A policy file: its statements. Other fields (the `name` that `rotor policy get`
/// prints) are ignored, so a policy read out can be edited and put back.
#[derive(Deserialize)]
struct PolicyFile {
    statements: Option<Vec<Statement>>,
}

pub async fn policy(global: &Global, cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    let c = client(global)?;
    match cmd {
        PolicyCommand::Put { name, file } => {
            let text = if file.as_os_str() == "-" {
                let mut t = String::new();
                std::io::stdin()
                    .read_to_string(&mut t)
                    .context("reading standard input")?;
                t
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let doc: Value = serde_json::from_str(&text).context("the policy file is not JSON")?;
            let policy: PolicyFile =
                serde_json::from_value(doc).context("the policy file is not a policy")?;
            let Some(statements) = policy.statements else {
                bail!("the policy file needs a \"statements\" list");
            };
            let out = c.put_policy(&name, &statements).await?;
            finish(global, &out, |_| println!("Stored policy {name}"))
        }
        PolicyCommand::Get { name } => {
            // A policy shows as its JSON either way.
            output::print_json(&c.get_policy(&name).await?)?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::List => {
            let doc = c.list_policies().await?;
            finish(global, &doc, |d| {
                for p in &d.policies {
                    println!("{}", p.name);
                }
            })
        }
        PolicyCommand::Delete { name } => {
            let doc = c.delete_policy(&name).await?;
            finish(global, &doc, |_| println!("Deleted policy {name}"))
        }
        PolicyCommand::Attach { policy, principal } => {
            let doc = c.attach_policy(&principal, &policy).await?;
            finish(global, &doc, |_| {
                println!("Attached {policy} to {principal}")
            })
        }
        PolicyCommand::Detach { policy, principal } => {
            let doc = c.detach_policy(&principal, &policy).await?;
            finish(global, &doc, |_| {
                println!("Detached {policy} from {principal}")
            })
        }
    }
}

/// The envelope of the master key `key` names: what audit chains and backups are
/// checked with.
pub fn audit_envelope(key: &AuditKey) -> anyhow::Result<rotor_crypto::Envelope> {
    let master = if let Ok(b64) = std::env::var("ROTOR_MASTER_KEY") {
        rotor_crypto::MasterKey::from_base64(&b64).context("ROTOR_MASTER_KEY")?
    } else if let Some(file) = &key.master_key_file {
        rotor_crypto::MasterKey::load(file)?
    } else if let Some(dir) = &key.data_dir {
        rotor_crypto::MasterKey::load(&dir.join("master.key"))?
    } else {
        bail!(
            "this needs the master key (it keys the audit chain and seals the values): give --master-key-file, --data-dir or ROTOR_MASTER_KEY"
        );
    };
    Ok(rotor_crypto::Envelope::new(master))
}

pub fn audit(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    use rotor_engine::audit::{Verdict, read_checkpoint, verify};
    match cmd {
        AuditCommand::Verify {
            file,
            key,
            checkpoint,
        } => {
            let envelope = audit_envelope(&key)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let checkpoint = match checkpoint {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let v: Value =
                        serde_json::from_str(&text).context("the checkpoint is not JSON")?;
                    Some(rotor_engine::audit::Checkpoint {
                        first: v["first"].as_i64().context("checkpoint without first")?,
                        seq: v["seq"].as_i64().context("checkpoint without seq")?,
                        mac: v["mac"]
                            .as_str()
                            .context("checkpoint without mac")?
                            .to_string(),
                    })
                }
                None => read_checkpoint(&file),
            };
            match verify(&envelope, &text, checkpoint) {
                Verdict::Intact { entries, range } => {
                    match range {
                        Some((a, b)) => {
                            println!("ok: {entries} entries ({a} to {b}), chain intact")
                        }
                        None => println!("ok: the log is empty"),
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Verdict::Broken { line, reason } => {
                    println!("broken at line {line}: {reason}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        AuditCommand::Hash { field, value, key } => {
            let envelope = audit_envelope(&key)?;
            println!(
                "{}",
                rotor_engine::audit::hash_field(&envelope, &field, &value)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
