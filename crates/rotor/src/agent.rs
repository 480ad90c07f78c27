//! `rotor agent`, `rotor run` and `rotor consumers`: keeping applications' secrets
//! current without the application polling.
//!
//! - `rotor agent --config agent.toml` renders templates whose `secret(REF)` calls
//!   resolve [Kong-style references](rotor_client::reference) to files, atomically,
//!   and runs a command or signals a process when a file changes ([`template`]).
//! - `rotor run --env NAME=REF ... -- CMD` runs CMD with resolved values in its
//!   environment and restarts (or signals) it when one changes ([`run`]).
//! - Both resolve through [`rotor_client::resolver`] (its cache semantics: `ttl`,
//!   `neg_ttl`, `resurrect_ttl`, background refresh), are pushed changes by the watch
//!   stream, which calls [`Resolver::notify_changed`] for each changed secret
//!   ([`follow`]), and fall back to polling: the resolver's refresher plus a
//!   periodic re-render. Both report which version of each secret they have in use
//!   (`POST /v1/consumers`), which `rotor consumers SECRET` lists.

mod config;
mod follow;
mod run;
mod template;

#[cfg(test)]
mod fuzz_tests;

pub use run::{RunArgs, run};

use crate::cli::Global;
use crate::commands::client;
use clap::Args;
use config::AgentConfig;
use follow::{Change, Reporter};
use rotor_api::consumers::ConsumerList;
use rotor_client::cache::Resolved;
use rotor_client::reference::Reference;
use rotor_client::resolver::Resolver;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use template::{Outcome, Template};
use tokio::signal::unix::{SignalKind, signal};

/// `rotor agent`.
#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The agent's configuration (TOML): server, vaults, templates
    #[arg(long)]
    pub config: PathBuf,
    /// Render every template once and exit: 0 when all were rendered, 1 otherwise
    /// (for init containers)
    #[arg(long)]
    pub once: bool,
    /// How this agent reports itself to the server [default: consumer_id from the
    /// file, else HOSTNAME:PID]
    #[arg(long)]
    pub consumer_id: Option<String>,
}

/// `rotor consumers`.
#[derive(Args, Debug)]
pub struct ConsumersArgs {
    /// Secret name or ARN
    pub name: String,
}

/// One reference a template or `rotor run` used, and the version it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Used {
    pub reference: String,
    pub vault: Option<String>,
    pub resource: Option<String>,
    pub version_id: Option<String>,
}

impl Used {
    fn new(reference: &str, value: Option<&Arc<Resolved>>) -> Self {
        let parsed = Reference::parse(reference).ok();
        Used {
            reference: reference.to_string(),
            vault: parsed.as_ref().map(|r| r.name().to_string()),
            resource: parsed.as_ref().map(|r| r.resource().to_string()),
            version_id: value.and_then(|v| v.version_id().map(str::to_string)),
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The consumer id when none is given: `HOSTNAME:PID`.
fn default_consumer_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// The signals `--signal` and a template's `signal` may name.
const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "USR1", "USR2", "TERM", "KILL", "ALRM", "CONT", "STOP", "TSTP", "WINCH",
];

/// A signal name as kill(1) takes it: `HUP`, `SIGHUP` or `hup` give `HUP`.
pub fn signal_name(name: &str) -> anyhow::Result<String> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if SIGNALS.contains(&bare) {
        return Ok(bare.to_string());
    }
    anyhow::bail!("unknown signal {name:?}: use one of {}", SIGNALS.join(", "))
}

/// Sends `signal` to process `pid` with kill(1) (the workspace has no unsafe code, so
/// no libc).
pub async fn kill(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(std::process::Stdio::null())
        .status()
        .await?;
    if !status.success() {
        anyhow::bail!("kill -{signal} {pid} failed ({status})");
    }
    Ok(())
}

/// Names of the secrets on this server that `used` reads.
fn secrets<'a>(
    used: impl IntoIterator<Item = &'a Used>,
    rotor_vaults: &BTreeSet<String>,
) -> BTreeSet<String> {
    used.into_iter()
        .filter(|u| u.vault.as_ref().is_some_and(|v| rotor_vaults.contains(v)))
        .filter_map(|u| u.resource.clone())
        .collect()
}

/// Refreshes every reference to the secrets `names` at once.
async fn notify(resolver: &Resolver, names: BTreeSet<String>) {
    let mut tasks = tokio::task::JoinSet::new();
    for name in names {
        let resolver = resolver.clone();
        tasks.spawn(async move { resolver.notify_changed(&name).await });
    }
    while tasks.join_next().await.is_some() {}
}

/// The agent's templates and what they report.
struct Agent {
    resolver: Resolver,
    templates: Vec<Template>,
    rotor_vaults: BTreeSet<String>,
    reporter: Reporter,
}

impl Agent {
    /// Renders template `i`; runs its action when its file changed. Failures are
    /// logged once until they change; the file keeps its last content.
    async fn refresh(&mut self, i: usize) -> anyhow::Result<()> {
        let t = &mut self.templates[i];
        let result = match t.refresh(&self.resolver).await {
            Ok(Outcome::Unchanged) => Ok(()),
            Ok(Outcome::Written) => {
                tracing::info!(destination = %t.destination.display(), "rendered");
                t.act().await.map_err(|e| {
                    let e = e.context(format!("the action of {}", t.destination.display()));
                    tracing::error!("{e:#}");
                    e
                })
            }
            Err(e) => {
                let message = format!("{e:#}");
                if t.last_error.as_ref() != Some(&message) {
                    tracing::error!(destination = %t.destination.display(), "cannot render: {message}; the file keeps its last content");
                    t.last_error = Some(message);
                }
                return Err(e.context(format!("rendering {}", t.destination.display())));
            }
        };
        if t.last_error.take().is_some() {
            tracing::info!(destination = %t.destination.display(), "rendering again");
        }
        result
    }

    /// Renders every template (or those using one of `names`, or whose last render
    /// failed), then reports the versions in use. Returns how many failed.
    async fn refresh_all(&mut self, names: Option<&BTreeSet<String>>) -> usize {
        let mut failed = 0;
        for i in 0..self.templates.len() {
            let t = &self.templates[i];
            let affected = match names {
                None => true,
                Some(names) => {
                    t.last_error.is_some()
                        || secrets(&t.used, &self.rotor_vaults)
                            .iter()
                            .any(|n| names.contains(n))
                }
            };
            if affected && self.refresh(i).await.is_err() {
                failed += 1;
            }
        }
        let used: Vec<&Used> = self.templates.iter().flat_map(|t| &t.used).collect();
        self.reporter.report(used, &self.rotor_vaults).await;
        failed
    }

    fn used_secrets(&self) -> BTreeSet<String> {
        secrets(
            self.templates.iter().flat_map(|t| &t.used),
            &self.rotor_vaults,
        )
    }
}

/// `rotor agent`.
pub async fn agent(global: &Global, args: AgentArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let config = AgentConfig::load(&args.config)?;
    let client = config.client(&global.addr, global.token.as_deref())?;
    let (vaults, rotor_vaults) = config.vaults(&client)?;
    let resolver = Resolver::new(vaults);
    let templates = config
        .templates
        .iter()
        .enumerate()
        .map(|(i, section)| {
            Template::new(section, &config, &resolver)
                .map_err(|e| e.context(format!("template {}", i + 1)))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if templates.is_empty() {
        anyhow::bail!("{} has no [[template]]", args.config.display());
    }
    let consumer = args
        .consumer_id
        .or(config.consumer_id.clone())
        .unwrap_or_else(default_consumer_id);
    let mut agent = Agent {
        resolver: resolver.clone(),
        templates,
        rotor_vaults,
        reporter: Reporter::new(client.clone(), consumer),
    };

    if args.once {
        let failed = agent.refresh_all(None).await;
        return Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            eprintln!("error: {failed} template(s) could not be rendered");
            ExitCode::from(1)
        });
    }

    // The watch opens before the first render, so no change falls between them.
    let first = match follow::open(&client).await {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch for changes yet; rendering from what can be fetched");
            None
        }
    };
    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let watch = follow::spawn(client.clone(), first, tx);
    let _refresher = resolver.spawn_refresher();
    let interval = Duration::from_millis(config.render_interval_ms.unwrap_or(1000).max(10));
    agent.refresh_all(None).await;
    tracing::info!(
        templates = agent.templates.len(),
        consumer = agent.reporter.consumer(),
        "agent running"
    );
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            change = changes.recv() => {
                let Some(change) = change else {
                    anyhow::bail!("the watch task stopped");
                };
                let mut names = BTreeSet::new();
                let mut pending = Some(change);
                while let Some(c) = pending {
                    match c {
                        Change::Secret(name) => { names.insert(name); }
                        Change::Resync => names.extend(agent.used_secrets()),
                    }
                    pending = changes.try_recv().ok();
                }
                notify(&agent.resolver, names.clone()).await;
                agent.refresh_all(Some(&names)).await;
            }
            _ = tick.tick() => { agent.refresh_all(None).await; }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    watch.abort();
    Ok(ExitCode::SUCCESS)
}

/// `rotor consumers SECRET`.
pub async fn consumers(global: &Global, args: ConsumersArgs) -> anyhow::Result<ExitCode> {
    let doc = client(global)?.consumers(&args.name).await?;
    crate::admin::finish(global, &doc, print_consumers)
}

fn print_consumers(doc: &ConsumerList) {
    println!(
        "Consumers of {} (AWSCURRENT is {})",
        doc.name,
        doc.current_version.as_deref().unwrap_or("-")
    );
    if doc.consumers.is_empty() {
        println!("none has reported a version");
    } else {
        let width = doc
            .consumers
            .iter()
            .map(|r| r.consumer.len())
            .max()
            .unwrap_or(0)
            .max("CONSUMER".len());
        println!(
            "{:<width$}  {:<8}  {:<38}  {:<24}  {:<15}  REPORTED",
            "CONSUMER", "STATUS", "VERSION", "STAGES", "HOST"
        );
        for r in &doc.consumers {
            println!(
                "{:<width$}  {:<8}  {:<38}  {:<24}  {:<15}  {}",
                r.consumer,
                if r.current { "current" } else { "STALE" },
                r.version_id,
                if r.stages.is_empty() {
                    "-".to_string()
                } else {
                    r.stages.join(",")
                },
                r.host.as_deref().unwrap_or("-"),
                r.at,
            );
        }
    }
    if !doc.complete {
        println!(
            "(only the last {} events were searched; older reports are not shown)",
            doc.scan_limit
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_named_as_kill_takes_them() {
        assert_eq!(signal_name("hup").unwrap(), "HUP");
        assert_eq!(signal_name("SIGUSR1").unwrap(), "USR1");
        assert!(signal_name("SIGFOO").is_err());
    }
}
