//! Rotor's agent: keeping applications' secrets current without the application
//! polling. The `rotor agent` and `rotor run` commands are thin glue over this crate.
//!
//! - [`Agent`] renders templates whose `secret(REF)` calls resolve
//!   [Kong-style references] ([`rotor_client::reference`]) to files, atomically, and
//!   runs a command or signals a process when a file changes. Its configuration is
//!   `agent.toml` ([`config`]).
//! - [`run()`] runs a command with resolved values in its environment and restarts
//!   (or signals) it when one changes.
//! - Both resolve through [`rotor_client::resolver`] (its cache semantics: `ttl`,
//!   `neg_ttl`, `resurrect_ttl`, background refresh), are pushed changes by the watch
//!   stream, which calls [`Resolver::notify_changed`] for each changed secret, and
//!   fall back to polling: the resolver's refresher plus a periodic re-render. Both
//!   report which version of each secret they have in use (`POST /v1/consumers`).
//!
//! [Kong-style references]: https://docs.konghq.com/gateway/latest/kong-enterprise/secrets-management/reference-format/
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rotor_agent::{Agent, config::AgentConfig};
//!
//! let config = AgentConfig::load("agent.toml".as_ref())?;
//! let client = config.client("http://127.0.0.1:8200", Some("token"))?;
//! Agent::new(&config, client, None)?.run().await?; // until SIGTERM or SIGINT
//! # Ok(()) }
//! ```
//!
//! The variables of [`run()`] are given as `NAME=REF`:
//!
//! ```
//! let var: rotor_agent::EnvVar = "DB_PASSWORD={vault://rotor/app-db/password}".parse()?;
//! assert_eq!(var.name, "DB_PASSWORD");
//! assert!("2X={vault://rotor/db}".parse::<rotor_agent::EnvVar>().is_err());
//! # Ok::<(), rotor_agent::EnvVarError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod agent;
pub mod config;
mod follow;
mod run;
mod signal;
mod template;

#[cfg(test)]
mod fuzz_tests;

pub use agent::{Agent, AgentError};
pub use run::{EnvVar, EnvVarError, RunError, RunOptions, run};
pub use signal::{SignalError, signal_name};
pub use template::TemplateError;

use rotor_client::cache::Resolved;
use rotor_client::reference::Reference;
use rotor_client::resolver::Resolver;
use std::collections::BTreeSet;
use std::sync::Arc;

/// One reference a template or [`run()`] used, and the version it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Used {
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

/// How a consumer reports itself: `given`, else the file's `consumer_id`, else
/// `HOSTNAME:PID`.
fn pick_consumer_id(given: Option<String>, config: &config::AgentConfig) -> String {
    given
        .or(config.consumer_id.clone())
        .unwrap_or_else(default_consumer_id)
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

/// An error and its sources, `: `-separated: how the binary prints an error chain,
/// for the messages this crate logs.
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}
