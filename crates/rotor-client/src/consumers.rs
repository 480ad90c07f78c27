//! Consumers: registering which version of a secret this process uses (and
//! heartbeating, so the server knows it is still there), leaving, and listing a
//! secret's consumers.
//!
//! An application using this library directly is a consumer as the agent is: hold a
//! [`ConsumerSession`], call [`ConsumerSession::report`] with the versions in use
//! after each (re)load and on a timer, and [`ConsumerSession::end`] at a clean exit.
//! A rotation then waits for it before invalidating the credential it uses.

use crate::{Client, ClientError};
use rotor_api::consumers as api;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a registration is renewed by default.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// How long a registration lasts without renewal by default: four missed heartbeats.
pub const DEFAULT_LEASE_SECS: i64 = 60;

impl Client {
    /// Registers `consumer` as using version `version_id` of secret `name` (or renews
    /// its registration), live for `lease_secs` (the server's default, 60, when `None`).
    pub async fn register_consumer(
        &self,
        consumer: &str,
        name: &str,
        version_id: &str,
        lease_secs: Option<i64>,
    ) -> Result<api::Registered, ClientError> {
        let body = api::Registration {
            consumer: consumer.to_string(),
            secret: name.to_string(),
            version_id: version_id.to_string(),
            lease_secs,
        };
        self.send::<api::RegisterConsumer>(&[], None, Some(&body))
            .await
    }

    /// `consumer` leaves secret `name`: it is gone at once and blocks no rotation.
    pub async fn deregister_consumer(
        &self,
        consumer: &str,
        name: &str,
    ) -> Result<api::Deregistered, ClientError> {
        let query = api::ConsumerQuery {
            consumer: consumer.to_string(),
        };
        self.send::<api::DeregisterConsumer>(&[name], Some(&query), None)
            .await
    }

    /// Secret `name`'s consumers by version, live and gone.
    pub async fn consumers(&self, name: &str) -> Result<api::ConsumerList, ClientError> {
        self.send::<api::ListConsumers>(&[name], None, None).await
    }
}

/// This process as a consumer: the version of each secret it uses, reported when it
/// changes and renewed every heartbeat by a background task, so that the registration
/// stays live while the process is busy (restarting a command that takes its time to
/// stop, say) and ends with its lease only when the process is gone.
pub struct ConsumerSession {
    shared: Arc<Shared>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

struct Shared {
    client: Arc<Client>,
    consumer: String,
    every: Duration,
    lease_secs: i64,
    /// Secret → (version, when last reported).
    reported: tokio::sync::Mutex<BTreeMap<String, (String, Instant)>>,
}

impl Shared {
    /// Registers each of `in_use` that changed or is due (all of `reported` when
    /// `in_use` is `None`: a heartbeat).
    async fn report(&self, in_use: Option<&BTreeMap<String, String>>) -> Result<(), ClientError> {
        let mut reported = self.reported.lock().await;
        let wanted: Vec<(String, String)> = match in_use {
            Some(m) => m.iter().map(|(s, v)| (s.clone(), v.clone())).collect(),
            None => reported
                .iter()
                .map(|(s, (v, _))| (s.clone(), v.clone()))
                .collect(),
        };
        let now = Instant::now();
        for (secret, version) in wanted {
            let due = match reported.get(&secret) {
                Some((v, at)) => *v != version || now.duration_since(*at) >= self.every,
                None => true,
            };
            if !due {
                continue;
            }
            self.client
                .register_consumer(&self.consumer, &secret, &version, Some(self.lease_secs))
                .await?;
            reported.insert(secret, (version, Instant::now()));
        }
        // A secret no longer in use is no longer renewed: it goes with its lease.
        if let Some(m) = in_use {
            reported.retain(|secret, _| m.contains_key(secret));
        }
        Ok(())
    }
}

impl std::fmt::Debug for ConsumerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerSession")
            .field("consumer", &self.shared.consumer)
            .field("heartbeat", &self.shared.every)
            .field("lease_secs", &self.shared.lease_secs)
            .finish_non_exhaustive()
    }
}

impl ConsumerSession {
    /// A session for consumer id `consumer`, renewing every `heartbeat` a registration
    /// that lasts `lease_secs`. Reads through [`ConsumerSession::client`] are marked as
    /// this consumer's, so the server does not count them as an anonymous reader's too.
    pub fn new(client: &Client, consumer: &str, heartbeat: Duration, lease_secs: i64) -> Self {
        ConsumerSession {
            shared: Arc::new(Shared {
                client: Arc::new(client.as_consumer(consumer)),
                consumer: consumer.to_string(),
                every: heartbeat,
                lease_secs,
                reported: Default::default(),
            }),
            heartbeat: None,
        }
    }

    /// The consumer id.
    pub fn consumer(&self) -> &str {
        &self.shared.consumer
    }

    /// The client to read through: its requests say which consumer they are for.
    pub fn client(&self) -> &Arc<Client> {
        &self.shared.client
    }

    /// Reports `in_use` (secret → version): each secret whose version changed, is
    /// new, or is due for a heartbeat. Stops at the first failure; what was not
    /// reported is tried again on the next call. The first call starts the
    /// background heartbeat (so it must run inside a Tokio runtime).
    pub async fn report(&mut self, in_use: &BTreeMap<String, String>) -> Result<(), ClientError> {
        if self.heartbeat.is_none() {
            let shared = self.shared.clone();
            self.heartbeat = Some(tokio::spawn(async move {
                let mut tick = tokio::time::interval(shared.every / 2);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    // A failure is retried on the next tick; the lease covers several.
                    let _ = shared.report(None).await;
                }
            }));
        }
        self.shared.report(Some(in_use)).await
    }

    /// Leaves every secret reported (a clean exit). Failures are ignored: the
    /// registrations then end with their lease.
    pub async fn end(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        let reported = std::mem::take(&mut *self.shared.reported.lock().await);
        for secret in reported.into_keys() {
            let _ = self
                .shared
                .client
                .deregister_consumer(&self.shared.consumer, &secret)
                .await;
        }
    }
}

impl Drop for ConsumerSession {
    fn drop(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }
}
