//! `rotor watch` and `rotor webhook`: following changes as they happen, and
//! subscriptions that push them to webhooks and redeploy commands.

use crate::admin::finish;
use crate::cli::{Global, Output};
use crate::commands::client;
use anyhow::Context as _;
use clap::{ArgGroup, Args, Subcommand};
use rotor_api::events::{DeliveryList, Event, Subscription, SubscriptionList};
use rotor_client::{HookTarget, NewSubscription};
use rotor_engine::events::Target;
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

/// One event as a line: JSON with `--output json` (keys sorted, through a
/// `serde_json::Value`), else columns.
fn line(global: &Global, event: &Event) -> anyhow::Result<String> {
    if global.output == Output::Json {
        return Ok(serde_json::to_value(event)?.to_string());
    }
    Ok(format!(
        "{}  {}  {:<20}  {}  {}",
        event.seq,
        event.at,
        event.kind,
        event.secret.as_deref().unwrap_or("-"),
        event.detail
    ))
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
                let line = line(global, &event)?;
                // A closed pipe (`rotor watch x | head -1`) ends the watch quietly.
                if writeln!(out, "{line}").is_err() || out.flush().is_err() {
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
                    d.kind,
                    args.name,
                    target_text(d),
                    describe_filter(d),
                    d.cursor
                );
                if let Some(key) = &d.signing_key {
                    println!("Signing key: {}", key.expose());
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
fn describe_filter(d: &Subscription) -> String {
    let kinds = crate::output::list(&d.kinds);
    let kinds = if kinds == "(none)" {
        "every event".to_string()
    } else {
        kinds
    };
    match d.prefix.as_str() {
        "" => format!("{kinds} of every secret"),
        p => format!("{kinds} under {p}"),
    }
}

/// Where a subscription delivers: the API shows the engine's [`Target`] as it is.
fn target_text(d: &Subscription) -> String {
    match serde_json::from_value(d.target.clone()) {
        Ok(Target::Webhook { url, .. }) => url,
        Ok(Target::Exec { command, .. }) => command.join(" "),
        Err(_) => String::new(),
    }
}

// Numbers (cursor, seq, attempt) print unpadded under their right-aligned headings:
// the output as it was when they were JSON values, whose `Display` ignores widths.
fn print_subscriptions(doc: &SubscriptionList) {
    if doc.subscriptions.is_empty() {
        println!("No subscriptions.");
        return;
    }
    let width = doc
        .subscriptions
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$}  {:<7}  {:>6}  FILTER / TARGET",
        "NAME", "TYPE", "CURSOR"
    );
    for s in &doc.subscriptions {
        println!(
            "{:<width$}  {:<7}  {}  {} -> {}",
            s.name,
            s.kind,
            s.cursor,
            describe_filter(s),
            target_text(s)
        );
    }
}

fn print_subscription(d: &Subscription) {
    println!("Name:        {}", d.name);
    println!("Type:        {}", d.kind);
    println!("Target:      {}", target_text(d));
    println!("Delivers:    {}", describe_filter(d));
    println!("Cursor:      {} (every event up to it handled)", d.cursor);
    println!("Created:     {} by {}", d.created, d.created_by);
}

fn print_deliveries(doc: &DeliveryList) {
    if doc.deliveries.is_empty() {
        println!("No deliveries.");
        return;
    }
    println!(
        "{:<24}  {:>6}  {:>7}  {:<9}  ERROR",
        "AT", "SEQ", "ATTEMPT", "STATUS"
    );
    for d in &doc.deliveries {
        println!(
            "{:<24}  {}  {}  {:<9}  {}",
            d.at.to_string(),
            d.seq,
            d.attempt,
            d.status,
            d.error.as_deref().unwrap_or("")
        );
    }
}
