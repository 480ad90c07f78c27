//! `rotor watch` and `rotor webhook`: following changes as they happen, and
//! subscriptions that push them to webhooks and redeploy commands.

use crate::admin::finish;
use crate::cli::{Global, Output};
use crate::commands::client;
use anyhow::Context as _;
use clap::{ArgGroup, Args, Subcommand};
use rotor_client::{HookTarget, NewSubscription};
use serde_json::Value;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

/// `rotor watch`.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Secrets whose name starts with this ("" for every secret you may describe)
    pub prefix: String,
    /// Start after this sequence number (replaying what came after it); from now on
    /// when unset
    #[arg(long, value_name = "SEQ")]
    pub after: Option<i64>,
}

/// `rotor webhook`.
#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Subscribe a webhook (--url) or a local command (--command) to changes
    Add(Box<WebhookAddArgs>),
    /// List subscriptions
    List,
    /// Show a subscription and how far it has delivered
    Show {
        /// Subscription name
        name: String,
    },
    /// Remove a subscription and its delivery log
    Remove {
        /// Subscription name
        name: String,
    },
    /// Check a request Rotor sent to a webhook: exit 0 when its signature matches the
    /// body under the key and it was signed less than 5 minutes ago, 1 otherwise
    Verify(WebhookVerifyArgs),
    /// Show a subscription's delivery attempts, newest first
    Deliveries {
        /// Subscription name
        name: String,
        /// Only events given up on after the last retry (dead letters)
        #[arg(long)]
        dead: bool,
        /// How many (1-1000)
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// `rotor webhook add`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).args(["url", "command"])))]
pub struct WebhookAddArgs {
    /// Subscription name (letters, digits, - and _; at most 64)
    pub name: String,
    /// Secrets whose name starts with this (every secret when unset)
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Event kind, or a family as rotation.* (repeatable; every kind when unset)
    #[arg(long = "kind", value_name = "KIND")]
    pub kinds: Vec<String>,
    /// POST each event here, signed with the key shown once
    #[arg(long)]
    pub url: Option<String>,
    /// Run this on the server's machine with each event on stdin; every argument
    /// after it is the command's, so give it last
    #[arg(long, value_name = "ARG", num_args = 1.., allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// Longest a delivery may take, in milliseconds [default: 10000]
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Deliver the events after this sequence number too (from now on when unset)
    #[arg(long, value_name = "SEQ")]
    pub from_seq: Option<i64>,
}

/// `rotor webhook verify`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("signing_key").required(true).args(["key_file", "key_env"])))]
pub struct WebhookVerifyArgs {
    /// File holding the signing key shown when the webhook was created
    #[arg(long)]
    pub key_file: Option<std::path::PathBuf>,
    /// Environment variable holding the signing key
    #[arg(long, value_name = "VARIABLE")]
    pub key_env: Option<String>,
    /// The request's x-rotor-timestamp header
    #[arg(long)]
    pub timestamp: String,
    /// The request's x-rotor-signature header
    #[arg(long)]
    pub signature: String,
    /// File holding the request's body (standard input when unset)
    pub body_file: Option<std::path::PathBuf>,
}

fn verify(args: &WebhookVerifyArgs) -> anyhow::Result<ExitCode> {
    let key = match (&args.key_file, &args.key_env) {
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim_end_matches(['\r', '\n'])
            .to_string(),
        (None, Some(var)) => {
            std::env::var(var).with_context(|| format!("the variable {var} holds no key"))?
        }
        (None, None) => anyhow::bail!("give --key-file or --key-env"),
    };
    let body = match &args.body_file {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => {
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut body)
                .context("reading the body from standard input")?;
            body
        }
    };
    match rotor_client::webhook::verify(key.as_bytes(), &args.timestamp, &args.signature, &body) {
        Ok(()) => {
            println!("valid: signed by the key, less than 5 minutes ago");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("invalid: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// One event as a line: JSON with `--output json`, else columns.
fn line(global: &Global, event: &Value) -> String {
    if global.output == Output::Json {
        return event.to_string();
    }
    format!(
        "{:>6}  {}  {:<20}  {}  {}",
        event["seq"],
        event["at"].as_str().unwrap_or(""),
        event["kind"].as_str().unwrap_or(""),
        event["secret"].as_str().unwrap_or("-"),
        event["detail"]
    )
}

/// Prints events as they come until interrupted. A dropped connection is resumed
/// from the last event printed; only a failure to connect at all ends the command.
pub async fn watch(global: &Global, args: WatchArgs) -> anyhow::Result<ExitCode> {
    let c = client(global)?;
    let mut stream = c.watch(&args.prefix, args.after).await?;
    eprintln!(
        "Watching {:?} after event {} (Ctrl-C to stop)",
        args.prefix,
        stream.last_seq()
    );
    let mut out = std::io::stdout().lock();
    loop {
        match stream.next().await {
            Ok(Some(event)) => {
                // A closed pipe (`rotor watch x | head -1`) ends the watch quietly.
                if writeln!(out, "{}", line(global, &event)).is_err() || out.flush().is_err() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Ok(None) | Err(_) => {
                let after = stream.last_seq();
                eprintln!("Connection lost; resuming after event {after}");
                stream = reconnect(&c, &args.prefix, after).await?;
            }
        }
    }
}

/// Reconnects a watch, trying for about half a minute.
async fn reconnect(
    c: &rotor_client::Client,
    prefix: &str,
    after: i64,
) -> anyhow::Result<rotor_client::Watch> {
    let mut tries = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        match c.watch(prefix, Some(after)).await {
            Ok(w) => return Ok(w),
            // Refused (the token was revoked, say): trying again will not help.
            Err(e @ rotor_client::ClientError::Api { .. }) => return Err(e.into()),
            Err(e) if tries >= 30 => return Err(e.into()),
            Err(_) => tries += 1,
        }
    }
}

pub async fn webhook(global: &Global, cmd: WebhookCommand) -> anyhow::Result<ExitCode> {
    if let WebhookCommand::Verify(args) = &cmd {
        return verify(args);
    }
    let c = client(global)?;
    match cmd {
        WebhookCommand::Add(args) => {
            let args = *args;
            let target = match args.url {
                Some(url) => HookTarget::Url(url),
                None => HookTarget::Command(args.command),
            };
            let doc = c
                .create_subscription(&NewSubscription {
                    name: args.name.clone(),
                    prefix: args.prefix,
                    kinds: args.kinds,
                    target,
                    timeout_ms: args.timeout_ms,
                    from_seq: args.from_seq,
                })
                .await?;
            finish(global, &doc, |d| {
                println!(
                    "Subscribed {} {} ({}) to {}, after event {}",
                    d["type"].as_str().unwrap_or(""),
                    args.name,
                    target_text(d),
                    describe_filter(d),
                    d["cursor"]
                );
                if let Some(key) = d["signing_key"].as_str() {
                    println!("Signing key: {key}");
                    println!(
                        "(The signing key is shown only this once. Check each request's X-Rotor-Signature with it.)"
                    );
                }
            })
        }
        WebhookCommand::List => {
            let doc = c.list_subscriptions().await?;
            finish(global, &doc, print_subscriptions)
        }
        WebhookCommand::Show { name } => {
            let doc = c.subscription(&name).await?;
            finish(global, &doc, print_subscription)
        }
        WebhookCommand::Remove { name } => {
            let doc = c.delete_subscription(&name).await?;
            finish(global, &doc, |_| println!("Removed subscription {name}"))
        }
        WebhookCommand::Deliveries { name, dead, limit } => {
            let doc = c.deliveries(&name, limit, dead).await?;
            finish(global, &doc, print_deliveries)
        }
        WebhookCommand::Verify(args) => verify(&args),
    }
}

/// "kinds under prefix", in words.
fn describe_filter(d: &Value) -> String {
    let kinds = crate::output::list(&d["kinds"]);
    let kinds = if kinds == "(none)" {
        "every event".to_string()
    } else {
        kinds
    };
    match d["prefix"].as_str() {
        Some("") | None => format!("{kinds} of every secret"),
        Some(p) => format!("{kinds} under {p}"),
    }
}

fn target_text(d: &Value) -> String {
    match d["type"].as_str() {
        Some("webhook") => d["target"]["url"].as_str().unwrap_or("").to_string(),
        _ => d["target"]["command"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
    }
}

fn print_subscriptions(doc: &Value) {
    let all = doc["subscriptions"].as_array().cloned().unwrap_or_default();
    if all.is_empty() {
        println!("No subscriptions.");
        return;
    }
    let width = all
        .iter()
        .filter_map(|s| s["name"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$}  {:<7}  {:>6}  FILTER / TARGET",
        "NAME", "TYPE", "CURSOR"
    );
    for s in all {
        println!(
            "{:<width$}  {:<7}  {:>6}  {} -> {}",
            s["name"].as_str().unwrap_or(""),
            s["type"].as_str().unwrap_or(""),
            s["cursor"],
            describe_filter(&s),
            target_text(&s)
        );
    }
}

fn print_subscription(d: &Value) {
    println!("Name:        {}", d["name"].as_str().unwrap_or(""));
    println!("Type:        {}", d["type"].as_str().unwrap_or(""));
    println!("Target:      {}", target_text(d));
    println!("Delivers:    {}", describe_filter(d));
    println!(
        "Cursor:      {} (every event up to it handled)",
        d["cursor"]
    );
    println!(
        "Created:     {} by {}",
        d["created"].as_str().unwrap_or(""),
        d["created_by"].as_str().unwrap_or("")
    );
}

fn print_deliveries(doc: &Value) {
    let all = doc["deliveries"].as_array().cloned().unwrap_or_default();
    if all.is_empty() {
        println!("No deliveries.");
        return;
    }
    println!(
        "{:<24}  {:>6}  {:>7}  {:<9}  ERROR",
        "AT", "SEQ", "ATTEMPT", "STATUS"
    );
    for d in all {
        println!(
            "{:<24}  {:>6}  {:>7}  {:<9}  {}",
            d["at"].as_str().unwrap_or(""),
            d["seq"],
            d["attempt"],
            d["status"].as_str().unwrap_or(""),
            d["error"].as_str().unwrap_or("")
        );
    }
}
