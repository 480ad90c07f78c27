//! Rotation health, as an operator paged for a rotation outage wants it at a glance:
//! rotations overdue (past their window and not started), failed, waiting on
//! consumers, and consumers lagging behind `AWSCURRENT`, each with how long.

use super::*;
use crate::consumers::ConsumerState;

/// How long past its start time a due rotation may stay unstarted before it counts
/// as overdue (the scheduler looks at least this often).
const OVERDUE_GRACE_SECS: i64 = 300;

/// A rotation that should have started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdue {
    /// The secret.
    pub name: String,
    /// When it was due.
    pub due: DateTime<Utc>,
    /// How long ago, in seconds.
    pub for_secs: i64,
}

/// A secret whose last rotation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The secret.
    pub name: String,
    /// Why.
    pub error: String,
    /// When the failed rotation ended, if known.
    pub since: Option<DateTime<Utc>>,
}

/// A rotation waiting at an adoption gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The secret.
    pub name: String,
    /// The rotation's version.
    pub token: String,
    /// The step it waits before.
    pub step: String,
    /// The version its consumers still use.
    pub version: String,
    /// Who.
    pub consumers: Vec<String>,
    /// How long it has waited, in seconds.
    pub for_secs: i64,
}

/// A live consumer on a version other than `AWSCURRENT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lagging {
    /// The secret.
    pub name: String,
    /// The consumer.
    pub consumer: ConsumerState,
    /// The version holding `AWSCURRENT`.
    pub current_version: String,
    /// How long since `AWSCURRENT` moved to that version, in seconds.
    pub for_secs: i64,
}

/// Rotation health over every secret the caller may describe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Overdue rotations.
    pub overdue: Vec<Overdue>,
    /// Failed ones.
    pub failed: Vec<Failed>,
    /// Ones waiting on consumers.
    pub waiting: Vec<Waiting>,
    /// Consumers lagging behind `AWSCURRENT`.
    pub lagging: Vec<Lagging>,
}

impl Rotations {
    /// Rotation health of the secrets `caller` may `describe`; the server's own view
    /// (every secret) with [`Caller::system`]. Also sets the `rotor_rotations_*`
    /// gauges when asked by the server itself.
    pub async fn health(&self, caller: &Caller) -> Result<Health> {
        let now = self.now();
        let mut health = Health::default();
        let running = self.store().running_rotations().await?;
        for summary in self
            .store()
            .list(&rotor_store::Listing::live().rotating())
            .await?
        {
            let meta = &summary.meta;
            if meta.rotation.rotator.is_none() || !caller.may(Capability::Describe, &meta.name) {
                continue;
            }
            let rotating = running.iter().find(|r| r.secret == meta.id);
            if let Some(due) = meta.rotation.due
                && rotating.is_none()
                && (now - due).num_seconds() > OVERDUE_GRACE_SECS
            {
                health.overdue.push(Overdue {
                    name: meta.name.clone(),
                    due,
                    for_secs: (now - due).num_seconds(),
                });
            }
            if let Some(error) = &meta.rotation.failed {
                let since = self
                    .store()
                    .rotations(meta.id, 1)
                    .await?
                    .first()
                    .and_then(|r| r.finished);
                health.failed.push(Failed {
                    name: meta.name.clone(),
                    error: error.clone(),
                    since,
                });
            }
            if let Some(r) = rotating
                && let Some(g) = r.gates.iter().rev().find(|g| g.passed.is_none())
            {
                health.waiting.push(Waiting {
                    name: meta.name.clone(),
                    token: r.token.clone(),
                    step: g.step.clone(),
                    version: g.version.clone(),
                    consumers: g.waiting_for.clone(),
                    for_secs: (now - g.started).num_seconds(),
                });
            }
            let Some(record) = self
                .store()
                .load(&rotor_store::Lookup::Name(meta.name.clone()))
                .await?
            else {
                continue;
            };
            let consumers = self.service.consumers_of(&record).await?;
            let Some(current) = consumers.current_version.clone() else {
                continue;
            };
            let moved = record
                .versions
                .iter()
                .find(|v| v.id == current)
                .map(|v| v.created);
            for c in consumers.lagging() {
                health.lagging.push(Lagging {
                    name: meta.name.clone(),
                    consumer: c.clone(),
                    current_version: current.clone(),
                    for_secs: moved.map_or(0, |t| (now - t).num_seconds()),
                });
            }
        }
        if caller.name() == HEALTH_CALLER {
            metrics::gauge!("rotor_rotations_overdue").set(health.overdue.len() as f64);
            metrics::gauge!("rotor_rotations_failing").set(health.failed.len() as f64);
            metrics::gauge!("rotor_rotations_waiting").set(health.waiting.len() as f64);
            metrics::gauge!("rotor_consumers_lagging").set(health.lagging.len() as f64);
            let longest = health.waiting.iter().map(|w| w.for_secs).max().unwrap_or(0);
            metrics::gauge!("rotor_rotation_wait_longest_seconds").set(longest as f64);
        }
        Ok(health)
    }

    /// Keeps the rotation health gauges current, every `every`.
    pub fn spawn_health_metrics(
        self: &Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = me.health(&Caller::system(HEALTH_CALLER)).await {
                    tracing::warn!(error = %e, "cannot compute rotation health");
                }
            }
        })
    }
}

/// Who computes the health gauges.
const HEALTH_CALLER: &str = "rotor-health";
