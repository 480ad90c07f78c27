//! `rotor run --env NAME=REF ... -- CMD ARGS`: CMD with resolved values in its
//! environment, restarted (or signalled) when one of them changes.
//!
//! The values are resolved before CMD starts; one that cannot be resolved stops
//! `rotor run` with exit code 1 and CMD never starts. Afterwards a change pushed by
//! the watch stream, or found by the polling fallback (the resolver's refresher and
//! a check every second), restarts CMD: SIGTERM, `--stop-timeout` seconds to exit,
//! then SIGKILL, then CMD again with the new values. With `--signal`, CMD gets that
//! signal instead and keeps running (its environment cannot change: it is expected
//! to fetch the new value itself), and is reported as having the new versions.
//! SIGTERM and SIGINT sent to `rotor run` are passed to CMD, and `rotor run` exits
//! with CMD's exit code (128+N when signal N ended it). A value that cannot be
//! refreshed later is logged and CMD keeps running with what it has.

use super::config::AgentConfig;
use super::follow::{self, Change, Reporter};
use super::{Used, default_consumer_id, init_logging, kill, notify, signal_name};
use crate::cli::Global;
use anyhow::Context;
use clap::Args;
use rotor_client::cache::Resolved;
use rotor_client::reference::Reference;
use rotor_client::resolver::Resolver;
use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

/// `rotor run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Set variable NAME to the value of reference REF, e.g.
    /// DB_PASSWORD={vault://rotor/%2Fapp%2Fdb/password} (repeatable)
    #[arg(long = "env", value_name = "NAME=REF", required = true, value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// On a change, send CMD this signal (HUP, USR1, ...) instead of restarting it
    #[arg(long, value_parser = parse_signal)]
    pub signal: Option<String>,
    /// Take the server and the vaults from an agent configuration file (its templates
    /// are ignored); otherwise only vault `rotor`, this server, is known
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// How this process reports itself to the server [default: HOSTNAME:PID]
    #[arg(long)]
    pub consumer_id: Option<String>,
    /// Seconds CMD has to exit after SIGTERM on a restart, before SIGKILL
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub stop_timeout: u64,
    /// The command and its arguments, after --
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let Some((name, reference)) = s.split_once('=') else {
        return Err("expected NAME=REF".into());
    };
    let valid_name = name.chars().next().is_some_and(|c| !c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(format!(
            "{name:?} is not a variable name (letters, digits and _, not starting with a digit)"
        ));
    }
    Reference::parse(reference).map_err(|e| e.to_string())?;
    Ok((name.to_string(), reference.to_string()))
}

fn parse_signal(s: &str) -> Result<String, String> {
    signal_name(s).map_err(|e| e.to_string())
}

/// The value of each `--env`, in order.
async fn resolve(
    resolver: &Resolver,
    env: &[(String, String)],
) -> anyhow::Result<Vec<Arc<Resolved>>> {
    let mut out = Vec::with_capacity(env.len());
    for (name, reference) in env {
        // The message names the reference and the vault's answer (never a value).
        let value = resolver.get(reference).await;
        out.push(value.map_err(|e| anyhow::anyhow!("{name}: {e}"))?);
    }
    Ok(out)
}

fn used(env: &[(String, String)], values: &[Arc<Resolved>]) -> Vec<Used> {
    env.iter()
        .zip(values)
        .map(|((_, reference), v)| Used::new(reference, Some(v)))
        .collect()
}

fn start(
    command: &[String],
    env: &[(String, String)],
    values: &[Arc<Resolved>],
) -> anyhow::Result<Child> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]).kill_on_drop(true);
    for ((name, _), value) in env.iter().zip(values) {
        cmd.env(name, value.expose_secret());
    }
    cmd.spawn()
        .with_context(|| format!("starting {:?}", command[0]))
}

/// Stops `child`: SIGTERM, then SIGKILL after `timeout`.
async fn stop(child: &mut Child, timeout: Duration) -> anyhow::Result<()> {
    if let Some(pid) = child.id() {
        // It may have exited already: the wait below tells.
        let _ = kill(pid, "TERM").await;
        if tokio::time::timeout(timeout, child.wait()).await.is_ok() {
            return Ok(());
        }
        tracing::warn!(
            pid,
            "the command did not exit within {timeout:?} of SIGTERM; killing it"
        );
    }
    child.kill().await?;
    Ok(())
}

/// CMD's exit status as `rotor run`'s exit code.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(signal)) => ExitCode::from((128 + signal) as u8),
        (None, None) => ExitCode::from(1),
    }
}

/// `rotor run`.
pub async fn run(global: &Global, args: RunArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let config = match &args.config {
        Some(path) => AgentConfig::load(path)?,
        None => AgentConfig::default(),
    };
    let client = config.client(&global.addr, global.token.as_deref())?;
    let (vaults, rotor_vaults) = config.vaults(&client)?;
    let resolver = Resolver::new(vaults);
    let consumer = args
        .consumer_id
        .clone()
        .or(config.consumer_id.clone())
        .unwrap_or_else(default_consumer_id);
    let mut reporter = Reporter::new(client.clone(), consumer);

    // The watch opens first, so that no change falls between it and the first values.
    let first = follow::open(&client).await.ok();
    let mut values = resolve(&resolver, &args.env).await?;
    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let watch = follow::spawn(client.clone(), first, tx);
    let _refresher = resolver.spawn_refresher();
    let names: BTreeSet<String> = super::secrets(&used(&args.env, &values), &rotor_vaults);

    let mut child = start(&args.command, &args.env, &values)?;
    reporter
        .report(&used(&args.env, &values), &rotor_vaults)
        .await;
    let interval = Duration::from_millis(config.render_interval_ms.unwrap_or(1000).max(10));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut stopping = false;
    let mut last_error: Option<String> = None;
    loop {
        let check = tokio::select! {
            status = child.wait() => {
                watch.abort();
                return Ok(exit_code(status?));
            }
            change = changes.recv() => {
                let mut changed = BTreeSet::new();
                let mut pending = change;
                while let Some(c) = pending {
                    match c {
                        Change::Secret(name) if names.contains(&name) => { changed.insert(name); }
                        Change::Secret(_) => {}
                        Change::Resync => changed.extend(names.iter().cloned()),
                    }
                    pending = changes.try_recv().ok();
                }
                notify(&resolver, changed).await;
                true
            }
            _ = tick.tick() => true,
            _ = term.recv() => { forward(&child, "TERM").await; stopping = true; false }
            _ = int.recv() => { forward(&child, "INT").await; stopping = true; false }
        };
        if !check || stopping {
            continue;
        }
        let fresh = match resolve(&resolver, &args.env).await {
            Ok(v) => {
                if last_error.take().is_some() {
                    tracing::info!("the values can be resolved again");
                }
                v
            }
            Err(e) => {
                let message = format!("{e:#}");
                if last_error.as_ref() != Some(&message) {
                    tracing::error!("cannot refresh: {message}; the command keeps its values");
                    last_error = Some(message);
                }
                continue;
            }
        };
        let differs = fresh
            .iter()
            .zip(&values)
            .any(|(a, b)| a.expose_secret() != b.expose_secret());
        if !differs {
            // Same values; the versions may still have moved (a label moved back).
            values = fresh;
            reporter
                .report(&used(&args.env, &values), &rotor_vaults)
                .await;
            continue;
        }
        match &args.signal {
            Some(sig) => {
                tracing::info!(signal = %sig, "a value changed; signalling the command");
                forward(&child, sig).await;
            }
            None => {
                tracing::info!("a value changed; restarting the command");
                stop(&mut child, Duration::from_secs(args.stop_timeout)).await?;
                child = start(&args.command, &args.env, &fresh)?;
            }
        }
        values = fresh;
        reporter
            .report(&used(&args.env, &values), &rotor_vaults)
            .await;
    }
}

async fn forward(child: &Child, signal: &str) {
    if let Some(pid) = child.id()
        && let Err(e) = kill(pid, signal).await
    {
        tracing::warn!(pid, "cannot signal the command: {e:#}");
    }
}
