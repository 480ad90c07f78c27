//! Change events pushed to consumers: watching the outbox, and subscriptions that
//! deliver it to webhooks and local commands ("redeploy hooks").
//!
//! Every change is written to the store's events outbox in its own transaction,
//! with a gap-free sequence number ([`rotor_store::Event`]). This module reads it:
//!
//! - **Watch** ([`Events::next_batch`]): the events after a sequence number, under a
//!   path prefix, that the caller may see, waiting when there are none yet. A client
//!   resumes from the last sequence number it saw. One reader per node follows the
//!   outbox for every waiter ([`tail`]). An open watch acts for its token: it is
//!   authenticated again whenever access changes and ends once the token is revoked
//!   or expired, and the events it shows follow the principal's current policies.
//! - **Subscriptions**: a path prefix and event kinds, and a target: a `webhook` URL
//!   that gets each event POSTed, signed like rotator webhooks (see [`crate::hooks`]),
//!   or an `exec` command that gets it on standard input. Managing one needs `admin`
//!   on `sys/subscriptions/NAME`; an `exec` subscription runs its command on the
//!   server's machine, like an `exec` rotator, so it also needs `exec` there, when
//!   it is created and whenever it runs (while its owner lacks it, deliveries wait).
//! - **The dispatcher** ([`Events::spawn`]): delivers each subscription's events in
//!   order, at least once. A failed delivery is retried with exponential backoff;
//!   after [`Settings::max_attempts`] the event is dead-lettered and the dispatcher
//!   moves on. Every attempt is recorded in the subscription's delivery log, and its
//!   cursor (every event up to it handled) only moves once an event is delivered or
//!   dead, so a restarted server resumes where the last one stopped: the event being
//!   delivered when it died is delivered again.
//!
//! # Who sees which events
//!
//! An event about a secret is visible to a caller that may `describe` that secret,
//! and only when its name starts with the watched prefix. An event about no one
//! secret (a replication rule added or removed) names secrets across namespaces, so
//! it is visible only when watching everything (an empty prefix) with `admin` on
//! [`SYSTEM_EVENTS`]. Inside a visible event's details, any `secret` field naming a
//! secret the caller may not `describe` (the source of a replicated version, say) is
//! blanked to `null`: a watch never reveals the names of secrets its caller cannot
//! see. A subscription sees events as its owner (the principal that created it)
//! does, with the owner's policies at delivery time; while the owner does not exist,
//! its deliveries wait.

mod tail;

use crate::access::{AccessService, Session};
use crate::caller::Caller;
use crate::service::SecretService;
use chrono::{DateTime, Utc};
use rotor_core::policy::Capability;
use rotor_core::{Error, Result};
use rotor_store::{DeliveryRow, Event, Mutation, SealedValue, Store, SubscriptionRow};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The path whose `admin` capability lets a watcher of everything see events about
/// no one secret.
pub const SYSTEM_EVENTS: &str = "sys/events";

/// The kinds of event. A subscription names some of them, or a family as
/// `rotation.*`; none means all.
pub const KINDS: &[&str] = &[
    "secret.created",
    "secret.updated",
    "secret.deleted",
    "secret.restored",
    "secret.purged",
    "version.put",
    "label.moved",
    "rotation.configured",
    "rotation.started",
    "rotation.step",
    "rotation.retrying",
    "rotation.succeeded",
    "rotation.failed",
    "rotation.cancelled",
    "replication.applied",
    "replication.repaired",
    "replication.denied",
    "replication.rule_added",
    "replication.rule_removed",
    "replication.source_deleted",
    "replication.source_restored",
    "consumer.ack",
];

/// What binds a subscription's signing key to it when sealed.
const KEY_AAD: &str = "rotor:subscription-key";

/// Events read from the store at once.
const PAGE: i64 = 500;

/// The longest a caller may ask a watch to wait.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// How subscriptions are delivered.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Attempts at one event before it is dead-lettered.
    pub max_attempts: i64,
    /// Wait before the second attempt; doubled for each later one.
    pub backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Longest the dispatcher waits before looking at the store again when nothing
    /// woke it.
    pub poll: Duration,
    /// Watch streams and long polls one principal may hold open at once on a node.
    pub max_waiters_per_principal: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_attempts: 8,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            poll: Duration::from_secs(5),
            max_waiters_per_principal: 128,
        }
    }
}

/// Events a watch returned, and where to resume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The visible events, in order.
    pub events: Vec<Event>,
    /// Every event up to this one was looked at: resume after it. At least the last
    /// returned event's number; past it when later events were not visible.
    pub last: i64,
}

/// Where a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Target {
    /// POST each event, signed, to `url`.
    Webhook {
        /// `http://` or `https://`.
        url: String,
        /// Longest a delivery may take.
        #[serde(default = "default_timeout")]
        timeout_ms: u64,
    },
    /// Run `command` with each event on standard input.
    Exec {
        /// The program and its arguments.
        command: Vec<String>,
        /// Longest a run may take; the command is killed after it.
        #[serde(default = "default_timeout")]
        timeout_ms: u64,
    },
}

/// How long a delivery may take unless its subscription says otherwise.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

impl Target {
    /// `webhook` or `exec`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Webhook { .. } => "webhook",
            Target::Exec { .. } => "exec",
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            Target::Webhook { url, .. } => crate::hooks::check_destination(url)?,
            Target::Exec { command, .. } => {
                if command.first().is_none_or(String::is_empty) {
                    return Err(Error::invalid_parameter(
                        "An exec hook needs a command (a list of arguments)",
                    ));
                }
            }
        }
        let ms = match self {
            Target::Webhook { timeout_ms, .. } | Target::Exec { timeout_ms, .. } => *timeout_ms,
        };
        if !(1..=600_000).contains(&ms) {
            return Err(Error::invalid_parameter(
                "timeout_ms must be between 1 and 600000",
            ));
        }
        Ok(())
    }

    fn timeout(&self) -> Duration {
        match self {
            Target::Webhook { timeout_ms, .. } | Target::Exec { timeout_ms, .. } => {
                Duration::from_millis(*timeout_ms)
            }
        }
    }
}

/// A subscription to create.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    /// 1 to 64 letters, digits, `-` or `_`.
    pub name: String,
    /// Secrets whose name starts with this; empty for every secret.
    pub prefix: String,
    /// Event kinds (or families, `rotation.*`); empty for all.
    pub kinds: Vec<String>,
    /// Where to deliver.
    pub target: Target,
    /// Deliver the events after this one; by default only events from now on.
    pub from_seq: Option<i64>,
}

/// A subscription as listings show it (never its signing key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    /// Name.
    pub name: String,
    /// Path prefix.
    pub prefix: String,
    /// Event kinds; empty for all.
    pub kinds: Vec<String>,
    /// Where it delivers.
    pub target: Target,
    /// Every event up to this one has been delivered or dead-lettered.
    pub cursor: i64,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// The principal that created it, whose view of events it gets.
    pub created_by: String,
}

impl SubscriptionInfo {
    fn from_row(row: &SubscriptionRow) -> Result<Self> {
        let target: Target = serde_json::from_str(&row.target)
            .map_err(|_| Error::internal("stored subscription target is not valid"))?;
        if target.kind() != row.target_kind {
            return Err(Error::internal(
                "stored subscription target has the wrong kind",
            ));
        }
        Ok(SubscriptionInfo {
            name: row.name.clone(),
            prefix: row.prefix.clone(),
            kinds: row.kinds.clone(),
            target,
            cursor: row.cursor,
            created: row.created,
            created_by: row.created_by.clone(),
        })
    }

    /// Whether the subscription takes events of `kind`.
    fn wants(&self, kind: &str) -> bool {
        self.kinds.is_empty()
            || self.kinds.iter().any(|k| match k.strip_suffix(".*") {
                Some(family) => kind
                    .strip_prefix(family)
                    .is_some_and(|rest| rest.starts_with('.')),
                None => k == kind,
            })
    }
}

/// An event as every consumer gets it: `{seq, at, kind, secret, detail}`, the
/// detail as a JSON object.
pub fn event_json(event: &Event) -> Value {
    json!({
        "seq": event.seq,
        "at": event.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "kind": event.kind,
        "secret": event.secret,
        "detail": serde_json::from_str::<Value>(&event.detail).unwrap_or(json!({})),
    })
}

/// Whether two callers are the same principal with the same policies.
fn same_policies(a: &Caller, b: &Caller) -> bool {
    a.name() == b.name() && a.same_policies(b)
}

/// Whether `caller` may see `event` when watching `prefix`.
fn visible(caller: &Caller, prefix: &str, event: &Event) -> bool {
    match &event.secret {
        Some(secret) => secret.starts_with(prefix) && caller.may(Capability::Describe, secret),
        None => prefix.is_empty() && caller.may(Capability::Admin, SYSTEM_EVENTS),
    }
}

/// `event` as `caller` may see it: `secret` fields of its details naming secrets the
/// caller may not `describe` are blanked.
fn redacted(caller: &Caller, mut event: Event) -> Event {
    fn scrub(caller: &Caller, v: &mut Value) -> bool {
        let mut changed = false;
        match v {
            Value::Object(map) => {
                for (key, field) in map.iter_mut() {
                    if key == "secret"
                        && let Value::String(name) = field
                    {
                        if !caller.may(Capability::Describe, name) {
                            *field = Value::Null;
                            changed = true;
                        }
                    } else {
                        changed |= scrub(caller, field);
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    changed |= scrub(caller, item);
                }
            }
            _ => {}
        }
        changed
    }
    if !event.detail.contains("\"secret\"") {
        return event;
    }
    if let Ok(mut detail) = serde_json::from_str::<Value>(&event.detail)
        && scrub(caller, &mut detail)
    {
        event.detail = detail.to_string();
    }
    event
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_parameter(format!(
            "A subscription name must be 1 to 64 letters, digits, '-' or '_', got {name:?}"
        )))
    }
}

fn validate_kind(kind: &str) -> Result<()> {
    let known = match kind.strip_suffix(".*") {
        Some(family) => KINDS
            .iter()
            .any(|k| k.split_once('.').is_some_and(|(f, _)| f == family)),
        None => KINDS.contains(&kind),
    };
    if known {
        Ok(())
    } else {
        Err(Error::invalid_parameter(format!(
            "Unknown event kind {kind:?}; one of {}, or a family such as rotation.*",
            KINDS.join(", ")
        )))
    }
}

fn admin_path(name: &str) -> String {
    format!("sys/subscriptions/{name}")
}

/// Watching events, managing subscriptions, and delivering them.
pub struct Events {
    service: Arc<SecretService>,
    access: Arc<AccessService>,
    settings: Settings,
    /// Bumped whenever a subscription is created or deleted, to wake the dispatcher.
    changes: watch::Sender<u64>,
    /// Set when the server drains: watches end instead of waiting.
    closed: watch::Sender<bool>,
    /// The one reader of the outbox for every waiter.
    tail: Arc<tail::Tail>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Events {
    /// Events of `service`'s store; subscriptions' owners are looked up in `access`.
    pub fn new(
        service: Arc<SecretService>,
        access: Arc<AccessService>,
        settings: Settings,
    ) -> Self {
        Events {
            tail: Arc::new(tail::Tail::new(
                service.clone(),
                settings.max_waiters_per_principal,
            )),
            service,
            access,
            settings,
            changes: watch::Sender::new(0),
            closed: watch::Sender::new(false),
        }
    }

    /// Ends every watch: waiting ones return at once, and [`Events::is_closed`] tells
    /// streams to stop, so a draining server need not wait for its watchers.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Whether [`Events::close`] was called.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    fn store(&self) -> Arc<dyn Store> {
        self.service.store()
    }

    /// The sequence number of the last committed event.
    pub async fn last_seq(&self) -> Result<i64> {
        tail::end_of(&*self.store()).await
    }

    /// The events after `after` about secrets under `prefix` that the session's
    /// caller may see (at most a few hundred), waiting up to `wait` (at most
    /// [`MAX_WAIT`]) for one when there are none yet. An empty batch means none came
    /// in time (or the events were closed); either way the caller resumes after
    /// [`Batch::last`]. The session is checked again whenever access changes: a
    /// revoked or expired token ends the wait with `Unauthenticated`, and a changed
    /// policy changes what is visible at once.
    pub async fn next_batch(
        &self,
        session: &mut Session,
        prefix: &str,
        after: i64,
        wait: Duration,
    ) -> Result<Batch> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let mut closed = self.closed.subscribe();
        let mut access = self.access.changes();
        let mut caller = self.access.check(session)?.clone();
        // Registered before the first read, so an event committed after it wakes us.
        let waiting = self.tail.register(&caller, prefix).await?;
        let mut after = after.max(0);
        loop {
            access.borrow_and_update();
            let now = self.access.check(session)?;
            if !same_policies(now, &caller) {
                caller = now.clone();
                waiting.update(&caller);
            }
            let (page, full) = self.tail.read(after).await?;
            if let Some(e) = page.last() {
                after = e.seq;
            }
            let events: Vec<Event> = page
                .into_iter()
                .filter(|e| visible(&caller, prefix, e))
                .map(|e| redacted(&caller, e))
                .collect();
            if !events.is_empty() {
                return Ok(Batch {
                    events,
                    last: after,
                });
            }
            if full {
                continue;
            }
            let waited = tokio::select! {
                () = waiting.notified() => true,
                changed = access.changed() => changed.is_ok(),
                _ = tokio::time::sleep_until(deadline) => false,
                _ = closed.wait_for(|c| *c) => false,
            };
            if !waited {
                return Ok(Batch {
                    events: Vec::new(),
                    last: after,
                });
            }
        }
    }

    /// Checks a watch's session again before it shows `event`: `Ok(None)` when the
    /// caller may no longer see it, an error when the session has ended.
    pub fn recheck(
        &self,
        session: &mut Session,
        prefix: &str,
        event: Event,
    ) -> Result<Option<Event>> {
        let caller = self.access.check(session)?;
        Ok(visible(caller, prefix, &event).then(|| redacted(caller, event)))
    }

    async fn row(&self, name: &str) -> Result<Option<SubscriptionRow>> {
        Ok(self
            .store()
            .subscriptions()
            .await?
            .into_iter()
            .find(|s| s.name == name))
    }

    fn no_such(name: &str) -> Error {
        Error::not_found(format!("No subscription named {name} exists"))
    }

    /// Creates a subscription owned by `caller`. Returns it, and a webhook's signing
    /// key, shown only this once.
    pub async fn create_subscription(
        &self,
        caller: &Caller,
        req: NewSubscription,
    ) -> Result<(SubscriptionInfo, Option<SecretString>)> {
        validate_name(&req.name)?;
        caller.authorize(Capability::Admin, &admin_path(&req.name))?;
        if let Target::Exec { .. } = req.target {
            // Running a command on the server is a right of its own.
            caller.authorize(Capability::Exec, &admin_path(&req.name))?;
        }
        for kind in &req.kinds {
            validate_kind(kind)?;
        }
        req.target.validate()?;
        let cursor = match req.from_seq {
            Some(seq) if seq < 0 => {
                return Err(Error::invalid_parameter("from_seq must not be negative"));
            }
            Some(seq) => seq,
            None => self.last_seq().await?,
        };
        let (key, shown) = match req.target {
            Target::Webhook { .. } => {
                let key = rotor_crypto::random::token("whk_");
                let sealed = self
                    .service
                    .envelope()
                    .seal(KEY_AAD, &req.name, key.as_bytes())
                    .map_err(|_| Error::internal("encryption failed"))?;
                (
                    Some(SealedValue {
                        ciphertext: sealed.ciphertext,
                        wrapped_key: sealed.wrapped_key,
                        algorithm: sealed.algorithm,
                        key_id: sealed.key_id,
                        digest: Vec::new(),
                    }),
                    Some(SecretString::from(key)),
                )
            }
            Target::Exec { .. } => (None, None),
        };
        let target = serde_json::to_string(&req.target)
            .map_err(|_| Error::internal("subscription target could not be encoded"))?;
        let now = self.service.now();
        let row = SubscriptionRow {
            name: req.name.clone(),
            prefix: req.prefix,
            kinds: req.kinds,
            target_kind: req.target.kind().to_string(),
            target,
            key,
            cursor,
            created: now,
            created_by: caller.name().to_string(),
        };
        let info = SubscriptionInfo::from_row(&row)?;
        self.store()
            .apply(Mutation::PutSubscription { subscription: row }, now)
            .await?;
        self.changes.send_modify(|g| *g += 1);
        tracing::info!(subscription = %info.name, kind = info.target.kind(), "subscription created");
        Ok((info, shown))
    }

    /// Every subscription the caller may manage.
    pub async fn subscriptions(&self, caller: &Caller) -> Result<Vec<SubscriptionInfo>> {
        self.store()
            .subscriptions()
            .await?
            .iter()
            .filter(|s| caller.may(Capability::Admin, &admin_path(&s.name)))
            .map(SubscriptionInfo::from_row)
            .collect()
    }

    /// One subscription.
    pub async fn subscription(&self, caller: &Caller, name: &str) -> Result<SubscriptionInfo> {
        caller.authorize(Capability::Admin, &admin_path(name))?;
        let row = self.row(name).await?.ok_or_else(|| Self::no_such(name))?;
        SubscriptionInfo::from_row(&row)
    }

    /// Removes a subscription and its delivery log; a delivery under way finishes,
    /// but nothing more is delivered.
    pub async fn delete_subscription(&self, caller: &Caller, name: &str) -> Result<()> {
        caller.authorize(Capability::Admin, &admin_path(name))?;
        self.store()
            .apply(
                Mutation::DeleteSubscription {
                    name: name.to_string(),
                },
                self.service.now(),
            )
            .await?;
        self.changes.send_modify(|g| *g += 1);
        tracing::info!(subscription = %name, "subscription deleted");
        Ok(())
    }

    /// The last `limit` delivery attempts of a subscription, newest first; only
    /// dead-lettered events with `dead_only`.
    pub async fn deliveries(
        &self,
        caller: &Caller,
        name: &str,
        limit: i64,
        dead_only: bool,
    ) -> Result<Vec<DeliveryRow>> {
        caller.authorize(Capability::Admin, &admin_path(name))?;
        if self.row(name).await?.is_none() {
            return Err(Self::no_such(name));
        }
        let limit = limit.clamp(1, 1000);
        if !dead_only {
            return self.store().deliveries(Some(name), limit).await;
        }
        // The store filters by subscription only: look further back for dead ones.
        let mut dead: Vec<DeliveryRow> = self
            .store()
            .deliveries(Some(name), 100_000)
            .await?
            .into_iter()
            .filter(|d| d.status == "dead")
            .collect();
        dead.truncate(limit as usize);
        Ok(dead)
    }

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
        let body = event_json(event).to_string().into_bytes();
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
