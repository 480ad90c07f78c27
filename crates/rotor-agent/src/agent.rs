//! The agent: its templates rendered from the resolver's cache, again on each change
//! the watch stream pushes and on each tick of the polling fallback, and the versions
//! they use reported.

use crate::config::{AgentConfig, ConfigError};
use crate::follow::{self, Change, Reporter};
use crate::template::{Outcome, Template, TemplateError};
use crate::{Chain, Used, notify, pick_consumer_id, secrets};
use rotor_client::Client;
use rotor_client::resolver::Resolver;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

/// The agent could not start, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The configuration's vaults could not be set up.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A `[[template]]` cannot be used.
    #[error("template {number}")]
    Template {
        /// Its place in the file, from 1.
        number: usize,
        /// What is wrong with it.
        source: TemplateError,
    },
    /// The configuration has no `[[template]]`.
    #[error("{} has no [[template]]", .path.display())]
    NoTemplates {
        /// The configuration file.
        path: PathBuf,
    },
    /// SIGTERM and SIGINT could not be listened for.
    #[error(transparent)]
    Signals(std::io::Error),
    /// The task following the watch stream ended.
    #[error("the watch task stopped")]
    WatchStopped,
}

/// The templates of one `agent.toml`, rendered over one server, and what they report.
pub struct Agent {
    client: Arc<Client>,
    resolver: Resolver,
    templates: Vec<Template>,
    rotor_vaults: BTreeSet<String>,
    reporter: Reporter,
    interval: Duration,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("templates", &self.templates)
            .field("reporter", &self.reporter)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Sets up `config`'s vaults over `client` and compiles its templates (a syntax
    /// error fails here, at start). The agent reports itself as `consumer_id`, else
    /// as the file's `consumer_id`, else as `HOSTNAME:PID`.
    pub fn new(
        config: &AgentConfig,
        client: Arc<Client>,
        consumer_id: Option<String>,
    ) -> Result<Self, AgentError> {
        let (heartbeat, lease) = config.heartbeat();
        let reporter = Reporter::new(
            &client,
            pick_consumer_id(consumer_id, config),
            heartbeat,
            lease,
        );
        // Reads for the templates are this consumer's, which reports what it uses.
        let client = reporter.client();
        let (vaults, rotor_vaults) = config.vaults(&client)?;
        let resolver = Resolver::new(vaults);
        let templates = config
            .templates
            .iter()
            .enumerate()
            .map(|(i, section)| {
                Template::new(section, config, &resolver).map_err(|source| AgentError::Template {
                    number: i + 1,
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if templates.is_empty() {
            return Err(AgentError::NoTemplates {
                path: config.path.clone(),
            });
        }
        Ok(Agent {
            reporter,
            client,
            resolver,
            templates,
            rotor_vaults,
            interval: Duration::from_millis(config.render_interval_ms.unwrap_or(1000).max(10)),
        })
    }

    /// Renders every template once, runs the actions of those whose file changed and
    /// reports the versions in use. Returns how many templates failed (each failure
    /// is logged).
    pub async fn render_once(&mut self) -> usize {
        self.refresh_all(None).await
    }

    /// Renders the templates and keeps them current until SIGTERM or SIGINT.
    pub async fn run(mut self) -> Result<(), AgentError> {
        // The watch opens before the first render, so no change falls between them.
        let first = match follow::open(&self.client).await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch for changes yet; rendering from what can be fetched");
                None
            }
        };
        let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
        let watch = follow::spawn(self.client.clone(), first, tx);
        let _refresher = self.resolver.spawn_refresher();
        self.refresh_all(None).await;
        tracing::info!(
            templates = self.templates.len(),
            consumer = self.reporter.consumer(),
            "agent running"
        );
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut term = signal(SignalKind::terminate()).map_err(AgentError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(AgentError::Signals)?;
        loop {
            tokio::select! {
                change = changes.recv() => {
                    let Some(change) = change else {
                        return Err(AgentError::WatchStopped);
                    };
                    let mut names = BTreeSet::new();
                    let mut pending = Some(change);
                    while let Some(c) = pending {
                        match c {
                            Change::Secret(name) => { names.insert(name); }
                            Change::Resync => names.extend(self.used_secrets()),
                        }
                        pending = changes.try_recv().ok();
                    }
                    notify(&self.resolver, names.clone()).await;
                    self.refresh_all(Some(&names)).await;
                }
                _ = tick.tick() => { self.refresh_all(None).await; }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        watch.abort();
        // A clean exit: the server stops counting this consumer at once.
        self.reporter.end().await;
        Ok(())
    }

    /// Renders template `i`; runs its action when its file changed. Failures are
    /// logged once until they change; the file keeps its last content. Returns
    /// whether it succeeded.
    async fn refresh(&mut self, i: usize) -> bool {
        let t = &mut self.templates[i];
        let ok = match t.refresh(&self.resolver).await {
            Ok(Outcome::Unchanged) => true,
            Ok(Outcome::Written) => {
                tracing::info!(destination = %t.destination.display(), "rendered");
                match t.act().await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!("the action of {}: {}", t.destination.display(), Chain(&e));
                        false
                    }
                }
            }
            Err(e) => {
                let message = Chain(&e).to_string();
                if t.last_error.as_ref() != Some(&message) {
                    tracing::error!(destination = %t.destination.display(), "cannot render: {message}; the file keeps its last content");
                    t.last_error = Some(message);
                }
                return false;
            }
        };
        if t.last_error.take().is_some() {
            tracing::info!(destination = %t.destination.display(), "rendering again");
        }
        ok
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
            if affected && !self.refresh(i).await {
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
