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

mod dispatcher;
mod subscriptions;
mod tail;
mod watch;

/// An event of the outbox, and a delivery attempt, as the store keeps them: the front
/// doors use these names, not the store's.
pub use rotor_store::{DeliveryRow as Delivery, Event};
pub use subscriptions::{DEFAULT_TIMEOUT_MS, NewSubscription, SubscriptionInfo, Target};

use crate::access::AccessService;
use crate::caller::Caller;
use crate::service::SecretService;
use rotor_core::Result;
use rotor_core::policy::Capability;
use rotor_store::Store;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The path whose `admin` capability lets a watcher of everything see events about
/// no one secret.
pub const SYSTEM_EVENTS: &str = "sys/events";

/// The kinds of event. A subscription names some of them, or a family as
/// `rotation.*`; none means all.
pub use rotor_api::events::KINDS;

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

/// An event as every consumer gets it (watch, long poll, webhook body): `{seq, at,
/// kind, secret, detail}`, the detail as a JSON object.
pub fn event_out(event: &Event) -> rotor_api::events::Event {
    rotor_api::events::Event {
        seq: event.seq,
        at: event.at.into(),
        kind: event.kind.clone(),
        secret: event.secret.clone(),
        detail: serde_json::from_str::<Value>(&event.detail).unwrap_or(json!({})),
    }
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

/// Watching events, managing subscriptions, and delivering them.
pub struct Events {
    service: Arc<SecretService>,
    access: Arc<AccessService>,
    settings: Settings,
    /// Bumped whenever a subscription is created or deleted, to wake the dispatcher.
    changes: tokio::sync::watch::Sender<u64>,
    /// Set when the server drains: watches end instead of waiting.
    closed: tokio::sync::watch::Sender<bool>,
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
            changes: tokio::sync::watch::Sender::new(0),
            closed: tokio::sync::watch::Sender::new(false),
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
}
