//! The dispatcher: each subscription's events delivered in order, at least once,
//! retried with backoff and dead-lettered after the last attempt.

use super::subscriptions::{SubscriptionInfo, Target, admin_path};
use super::{Events, KEY_AAD, PAGE, event_out, redacted, visible};
use crate::caller::Caller;
use crate::service::SecretService;
use rotor_core::policy::Capability;
use rotor_core::{Error, Result};
use rotor_store::{Event, Mutation, SubscriptionRow};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

impl Events {
    /// Runs the dispatcher until the returned task is aborted (which stops every
    /// delivery it runs): one worker per subscription, each delivering its events in
    /// order from the subscription's cursor.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            // Dropped (aborting every worker) when this task is aborted.
            let mut workers: JoinSet<()> = JoinSet::new();
            let mut running: HashMap<tokio::task::Id, String> = HashMap::new();
            let mut changes = me.changes.subscribe();
            loop {
                changes.borrow_and_update();
                match me.store().subscriptions().await {
                    Ok(all) => {
                        for s in all {
                            if running.values().any(|n| *n == s.name) {
                                continue;
                            }
                            let worker = me.clone();
                            let name = s.name.clone();
                            let handle = workers.spawn(async move { worker.work(&name).await });
                            running.insert(handle.id(), s.name);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot list subscriptions"),
                }
                tokio::select! {
                    Some(done) = workers.join_next_with_id() => {
                        let id = match done {
                            Ok((id, ())) => id,
                            Err(e) => {
                                tracing::error!(error = %e, "a subscription worker stopped");
                                e.id()
                            }
                        };
                        running.remove(&id);
                    }
                    _ = changes.changed() => {}
                    _ = tokio::time::sleep(me.settings.poll) => {}
                }
            }
        })
    }

    /// Delivers subscription `name`'s events until it is deleted. A failure of the
    /// store ends the worker after a pause; the dispatcher starts it again.
    async fn work(self: Arc<Self>, name: &str) {
        match self.deliver_all(name).await {
            Ok(()) => tracing::debug!(subscription = %name, "subscription worker done"),
            Err(e) => {
                tracing::error!(subscription = %name, error = %e, "subscription worker failed");
                tokio::time::sleep(self.settings.poll).await;
            }
        }
    }

    async fn deliver_all(&self, name: &str) -> Result<()> {
        let store = self.store();
        let mut feed = store.event_feed();
        let mut changes = self.changes.subscribe();
        // Past the stored cursor by the events skipped since: the store records a
        // cursor only with a delivery.
        let mut position = 0;
        let mut created = None;
        let mut warned = false;
        loop {
            changes.borrow_and_update();
            let Some(row) = self.row(name).await? else {
                return Ok(());
            };
            if created.is_some_and(|c| c != row.created) {
                // Deleted and made again under the same name: a new subscription,
                // which the dispatcher gives a worker of its own.
                return Ok(());
            }
            created = Some(row.created);
            position = position.max(row.cursor);
            if self.owner(&row).is_none() {
                if !std::mem::replace(&mut warned, true) {
                    tracing::warn!(subscription = %name, owner = %row.created_by,
                        "the subscription's owner does not exist, or may no longer run commands; its deliveries wait");
                }
                self.pause(&mut feed, &mut changes, false).await?;
                continue;
            }
            warned = false;
            feed.borrow_and_update();
            let page = store.events(position, PAGE).await?;
            self.service
                .forget_secrets(page.iter().filter_map(|e| e.secret.as_deref()));
            if page.is_empty() {
                self.pause(&mut feed, &mut changes, true).await?;
                continue;
            }
            let info = SubscriptionInfo::from_row(&row)?;
            let hook = Hook::open(&self.service, &row, info.target.clone())?;
            for event in page {
                let seq = event.seq;
                // The owner as it is now, for each event: a right lost meanwhile
                // stops the deliveries at once.
                let Some(owner) = self.owner(&row) else {
                    break;
                };
                if visible(&owner, &info.prefix, &event) && info.wants(&event.kind) {
                    let event = redacted(&owner, event);
                    if !self.deliver(&info, &hook, &event, &mut changes).await? {
                        // Deleted meanwhile.
                        return Ok(());
                    }
                }
                position = seq;
            }
        }
    }

    /// The subscription's owner with its current policies, when it exists and, for a
    /// command, may still run it.
    fn owner(&self, row: &SubscriptionRow) -> Option<Caller> {
        let owner = self.access.principal(&row.created_by)?;
        let runs_commands = row.target_kind == "exec";
        (!runs_commands || owner.may(Capability::Exec, &admin_path(&row.name))).then_some(owner)
    }

    /// Waits for a new event (when `for_events`), a subscription change, or the poll
    /// interval.
    async fn pause(
        &self,
        feed: &mut watch::Receiver<i64>,
        changes: &mut watch::Receiver<u64>,
        for_events: bool,
    ) -> Result<()> {
        tokio::select! {
            changed = feed.changed(), if for_events => {
                changed.map_err(|_| Error::internal("the store is closed"))
            }
            _ = changes.changed() => Ok(()),
            _ = tokio::time::sleep(self.settings.poll) => Ok(()),
        }
    }

    /// Delivers one event, retrying with backoff until it is delivered or dead.
    /// Returns false when the subscription was deleted meanwhile.
    async fn deliver(
        &self,
        sub: &SubscriptionInfo,
        hook: &Hook,
        event: &Event,
        changes: &mut watch::Receiver<u64>,
    ) -> Result<bool> {
        let store = self.store();
        // A restart continues the count of attempts a previous run left.
        let mut attempt = match store.deliveries(Some(&sub.name), 1).await?.first() {
            Some(d) if d.seq == event.seq && d.status == "failed" => d.attempt + 1,
            _ => 1,
        };
        let body = serde_json::to_vec(&event_out(event)).unwrap_or_default();
        loop {
            let sent = hook.send(&sub.name, event, body.clone()).await;
            let last = attempt >= self.settings.max_attempts;
            let (status, error) = match &sent {
                Ok(()) => ("delivered", None),
                Err(e) if last => ("dead", Some(e.message.clone())),
                Err(e) => ("failed", Some(e.message.clone())),
            };
            metrics::counter!("rotor_event_deliveries_total", "status" => status).increment(1);
            match status {
                "delivered" => {
                    tracing::debug!(subscription = %sub.name, seq = event.seq, attempt, "event delivered")
                }
                "dead" => {
                    tracing::warn!(subscription = %sub.name, seq = event.seq, attempt,
                        error = error.as_deref().unwrap_or(""), "event dead-lettered")
                }
                _ => {
                    tracing::info!(subscription = %sub.name, seq = event.seq, attempt,
                        error = error.as_deref().unwrap_or(""), "event delivery failed; will retry")
                }
            }
            let recorded = store
                .apply(
                    Mutation::RecordDelivery {
                        subscription: sub.name.clone(),
                        seq: event.seq,
                        attempt,
                        status: status.to_string(),
                        error,
                        advance: status != "failed",
                    },
                    self.service.now(),
                )
                .await;
            if let Err(e) = recorded {
                // Deleted meanwhile, or the store failed.
                return if self.still(sub).await? {
                    Err(e)
                } else {
                    Ok(false)
                };
            }
            if status != "failed" {
                return Ok(true);
            }
            let wait = self.backoff(attempt);
            let deadline = tokio::time::Instant::now() + wait;
            // Woken early only to notice a deletion.
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = changes.changed() => {
                        if !self.still(sub).await? {
                            return Ok(false);
                        }
                    }
                }
            }
            attempt += 1;
        }
    }

    /// Whether `sub` still exists (and was not deleted and made again).
    async fn still(&self, sub: &SubscriptionInfo) -> Result<bool> {
        Ok(self
            .row(&sub.name)
            .await?
            .is_some_and(|r| r.created == sub.created))
    }

    /// The wait after failed attempt `attempt`.
    fn backoff(&self, attempt: i64) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        self.settings
            .backoff
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.settings.max_backoff)
    }
}

/// A subscription's target, ready to call.
enum Hook {
    Webhook {
        url: String,
        key: zeroize::Zeroizing<Vec<u8>>,
        timeout: Duration,
    },
    Exec {
        command: Vec<String>,
        timeout: Duration,
    },
}

impl Hook {
    fn open(service: &SecretService, row: &SubscriptionRow, target: Target) -> Result<Self> {
        let timeout = target.timeout();
        Ok(match target {
            Target::Webhook { url, .. } => {
                let sealed = row
                    .key
                    .as_ref()
                    .ok_or_else(|| Error::internal("webhook subscription without a signing key"))?;
                let key = service
                    .envelope()
                    .open_parts(
                        KEY_AAD,
                        &row.name,
                        rotor_crypto::SealedRef {
                            ciphertext: &sealed.ciphertext,
                            wrapped_key: &sealed.wrapped_key,
                            algorithm: &sealed.algorithm,
                            key_id: &sealed.key_id,
                        },
                    )
                    .map_err(|_| Error::internal("cannot open the subscription's signing key"))?;
                Hook::Webhook { url, key, timeout }
            }
            Target::Exec { command, .. } => Hook::Exec { command, timeout },
        })
    }

    async fn send(&self, subscription: &str, event: &Event, body: Vec<u8>) -> Result<()> {
        match self {
            Hook::Webhook { url, key, timeout } => {
                let headers = [
                    ("x-rotor-event", event.kind.clone()),
                    ("x-rotor-delivery", format!("{subscription}:{}", event.seq)),
                ];
                crate::hooks::post_signed(url, key, body, *timeout, &headers).await
            }
            Hook::Exec { command, timeout } => {
                let env = [
                    ("ROTOR_EVENT_KIND", event.kind.clone()),
                    (
                        "ROTOR_EVENT_SECRET",
                        event.secret.clone().unwrap_or_default(),
                    ),
                    ("ROTOR_EVENT_SEQ", event.seq.to_string()),
                    ("ROTOR_SUBSCRIPTION", subscription.to_string()),
                ];
                crate::hooks::run_command(command, &env, &body, *timeout).await
            }
        }
    }
}
