//! `rotor run --env NAME=REF ... -- CMD ARGS`: CMD with resolved values in its
//! environment, restarted (or signalled) when one of them changes.
//!
//! The values are resolved before CMD starts; one that cannot be resolved is an
//! error and CMD never starts. Afterwards a change pushed by the watch stream, or
//! found by the polling fallback (the resolver's refresher and a check every second),
//! restarts CMD: SIGTERM, the stop timeout to exit, then SIGKILL, then CMD again with
//! the new values. With a signal set, CMD gets that signal instead and keeps running
//! (its environment cannot change: it is expected to fetch the new value itself), and
//! is reported as having the new versions. SIGTERM and SIGINT are passed to CMD, and
//! [`run()`] returns CMD's exit status. A value that cannot be refreshed later is
//! logged and CMD keeps running with what it has.

use crate::config::{AgentConfig, ConfigError};
use crate::follow::{self, Change, Reporter};
use crate::signal::{SignalError, kill, signal_name};
use crate::{Chain, Used, notify, pick_consumer_id, secrets};
use rotor_client::Client;
use rotor_client::cache::Resolved;
use rotor_client::reference::{Reference, ReferenceError};
use rotor_client::resolver::{ResolveError, Resolver};
use std::collections::BTreeSet;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

/// An environment variable set to the value of a reference: `NAME=REF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// The variable's name.
    pub name: String,
    /// The reference, e.g. `{vault://rotor/%2Fapp%2Fdb/password}`.
    pub reference: String,
}

/// `NAME=REF` does not name a variable and a reference.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvVarError {
    /// No `=`.
    #[error("expected NAME=REF")]
    NoEquals,
    /// NAME is not a variable name.
    #[error("{name:?} is not a variable name (letters, digits and _, not starting with a digit)")]
    Name {
        /// The name given.
        name: String,
    },
    /// REF is not a reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

impl std::str::FromStr for EnvVar {
    type Err = EnvVarError;

    fn from_str(s: &str) -> Result<Self, EnvVarError> {
        let (name, reference) = s.split_once('=').ok_or(EnvVarError::NoEquals)?;
        let valid_name = name.chars().next().is_some_and(|c| !c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(EnvVarError::Name {
                name: name.to_string(),
            });
        }
        Reference::parse(reference)?;
        Ok(EnvVar {
            name: name.to_string(),
            reference: reference.to_string(),
        })
    }
}

/// What [`run()`] runs, and how.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The variables set from references, in order.
    pub env: Vec<EnvVar>,
    /// On a change, send the command this signal (HUP, USR1, ...) instead of
    /// restarting it.
    pub signal: Option<String>,
    /// How this process reports itself to the server; else the configuration's
    /// `consumer_id`, else `HOSTNAME:PID`.
    pub consumer_id: Option<String>,
    /// How long the command has to exit after SIGTERM on a restart, before SIGKILL.
    pub stop_timeout: Duration,
    /// The program and its arguments.
    pub command: Vec<String>,
}

/// [`run()`] could not start the command, or lost it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The command is empty.
    #[error("no command to run")]
    NoCommand,
    /// The signal named is not one kill(1) takes.
    #[error(transparent)]
    Signal(#[from] SignalError),
    /// The configuration's vaults could not be set up.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A variable's reference could not be resolved before the command started.
    #[error("{name}: {error}")]
    Resolve {
        /// The variable.
        name: String,
        /// The vault's answer (never a value).
        error: ResolveError,
    },
    /// The command could not be started.
    #[error("starting {program:?}")]
    Start {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The command could not be killed for a restart.
    #[error(transparent)]
    Stop(std::io::Error),
    /// Waiting for the command failed.
    #[error(transparent)]
    Wait(std::io::Error),
    /// SIGTERM and SIGINT could not be listened for.
    #[error(transparent)]
    Signals(std::io::Error),
}

/// The value of each variable, in order.
async fn resolve(resolver: &Resolver, env: &[EnvVar]) -> Result<Vec<Arc<Resolved>>, RunError> {
    let mut out = Vec::with_capacity(env.len());
    for var in env {
        // The message names the reference and the vault's answer (never a value).
        let value = resolver.get(&var.reference).await;
        out.push(value.map_err(|error| RunError::Resolve {
            name: var.name.clone(),
            error,
        })?);
    }
    Ok(out)
}

fn used(env: &[EnvVar], values: &[Arc<Resolved>]) -> Vec<Used> {
    env.iter()
        .zip(values)
        .map(|(var, v)| Used::new(&var.reference, Some(v)))
        .collect()
}

fn start(command: &[String], env: &[EnvVar], values: &[Arc<Resolved>]) -> Result<Child, RunError> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]).kill_on_drop(true);
    for (var, value) in env.iter().zip(values) {
        cmd.env(&var.name, value.expose_secret());
    }
    cmd.spawn().map_err(|source| RunError::Start {
        program: command[0].clone(),
        source,
    })
}

/// Stops `child`: SIGTERM, then SIGKILL after `timeout`.
async fn stop(child: &mut Child, timeout: Duration) -> Result<(), RunError> {
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
    child.kill().await.map_err(RunError::Stop)
}

/// Runs `options.command` with its variables resolved through `config`'s vaults over
/// `client`, keeps them current, and returns how the command ended.
pub async fn run(
    config: &AgentConfig,
    client: Arc<Client>,
    options: RunOptions,
) -> Result<ExitStatus, RunError> {
    if options.command.is_empty() {
        return Err(RunError::NoCommand);
    }
    let on_change = options.signal.as_deref().map(signal_name).transpose()?;
    let (heartbeat, lease) = config.heartbeat();
    let consumer = pick_consumer_id(options.consumer_id, config);
    let mut reporter = Reporter::new(&client, consumer, heartbeat, lease);
    // Reads for the command are this consumer's, which reports what it uses.
    let client = reporter.client();
    let (vaults, rotor_vaults) = config.vaults(&client)?;
    let resolver = Resolver::new(vaults);
    let env = options.env;

    // The watch opens first, so that no change falls between it and the first values.
    let first = follow::open(&client).await.ok();
    let mut values = resolve(&resolver, &env).await?;
    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let watch = follow::spawn(client.clone(), first, tx);
    let _refresher = resolver.spawn_refresher();
    let names: BTreeSet<String> = secrets(&used(&env, &values), &rotor_vaults);

    let mut child = start(&options.command, &env, &values)?;
    reporter.report(&used(&env, &values), &rotor_vaults).await;
    let interval = Duration::from_millis(config.render_interval_ms.unwrap_or(1000).max(10));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    let mut stopping = false;
    let mut last_error: Option<String> = None;
    loop {
        let check = tokio::select! {
            status = child.wait() => {
                watch.abort();
                // The command ended: the server stops counting this consumer at once.
                reporter.end().await;
                return status.map_err(RunError::Wait);
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
        let fresh = match resolve(&resolver, &env).await {
            Ok(v) => {
                if last_error.take().is_some() {
                    tracing::info!("the values can be resolved again");
                }
                v
            }
            Err(e) => {
                let message = Chain(&e).to_string();
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
            reporter.report(&used(&env, &values), &rotor_vaults).await;
            continue;
        }
        match &on_change {
            Some(sig) => {
                tracing::info!(signal = %sig, "a value changed; signalling the command");
                forward(&child, sig).await;
            }
            None => {
                tracing::info!("a value changed; restarting the command");
                stop(&mut child, options.stop_timeout).await?;
                child = start(&options.command, &env, &fresh)?;
            }
        }
        values = fresh;
        reporter.report(&used(&env, &values), &rotor_vaults).await;
    }
}

async fn forward(child: &Child, signal: &str) {
    if let Some(pid) = child.id()
        && let Err(e) = kill(pid, signal).await
    {
        tracing::warn!(pid, "cannot signal the command: {}", Chain(&e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_names_and_references() {
        let var: EnvVar = "DB_PASSWORD={vault://rotor/db/password}".parse().unwrap();
        assert_eq!(var.name, "DB_PASSWORD");
        assert_eq!(var.reference, "{vault://rotor/db/password}");
        let refused = |s: &str| s.parse::<EnvVar>().unwrap_err().to_string();
        assert_eq!(refused("DB_PASSWORD"), "expected NAME=REF");
        assert_eq!(
            refused("2X={vault://rotor/db}"),
            "\"2X\" is not a variable name (letters, digits and _, not starting with a digit)"
        );
        assert!("X=not a reference".parse::<EnvVar>().is_err());
    }
}
