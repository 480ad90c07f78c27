//! Change events: the watch stream (`/v1/watch`, Server-Sent Events), its long-poll
//! form (`/v1/events`), and subscriptions that deliver events to webhooks and
//! commands (`/v1/sys/subscriptions`).

use crate::{Deleted, Sensitive, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A subscription's name: 1–64 letters, digits, `-` and `_`.
pub const SUBSCRIPTION_PATTERN: &str = r"^[A-Za-z0-9_-]{1,64}$";
/// The longest a delivery may take, in milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 600_000;

/// Every kind of event.
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

/// The schema of a subscription's kind: one of [`KINDS`], or a family (`rotation.*`).
fn kind_schema() -> serde_json::Value {
    let mut names: Vec<String> = KINDS.iter().map(|k| k.to_string()).collect();
    for kind in KINDS {
        let family = format!("{}.*", kind.split('.').next().unwrap_or_default());
        if !names.contains(&family) {
            names.push(family);
        }
    }
    serde_json::json!({"type": "string", "enum": names})
}

crate::endpoint! {
    /// Changes as Server-Sent Events (`id:` the sequence number, `event:` the kind,
    /// `data:` the event), resuming after `after` or `Last-Event-ID`.
    Watch: Get "/v1/watch" => 200 stream, query WatchQuery;
    /// Changes after `after`, waiting up to `wait` seconds for one (a long poll).
    ListEvents: Get "/v1/events" => 200 json(EventList), query PollQuery;
    /// Every subscription.
    ListSubscriptions: Get "/v1/sys/subscriptions" => 200 json(SubscriptionList);
    /// Subscribe a webhook (`url`) or a local command (`command`) to events.
    CreateSubscription: Post "/v1/sys/subscriptions" => 201 json(Subscription), body NewSubscription;
    /// A subscription.
    DescribeSubscription: Get "/v1/sys/subscriptions/{name}" => 200 json(Subscription);
    /// Delete a subscription.
    DeleteSubscription: Delete "/v1/sys/subscriptions/{name}" => 200 json(Deleted);
    /// A subscription's latest delivery attempts.
    ListDeliveries: Get "/v1/sys/subscriptions/{name}/deliveries" => 200 json(DeliveryList), query DeliveriesQuery;
}

/// `GET /v1/watch`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    /// Only secrets whose names start with this.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// The sequence number to resume after; now when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub after: Option<i64>,
}

/// `GET /v1/events`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollQuery {
    /// Only secrets whose names start with this.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// The sequence number to resume after; now when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub after: Option<i64>,
    /// Seconds to wait for an event when there is none yet (taken as at most 60).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub wait: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Events, and where to resume.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct EventList {
    /// In order.
    pub events: Vec<Event>,
    /// Resume after this.
    pub last_seq: i64,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// Its sequence number: gap-free, in commit order.
    pub seq: i64,
    /// When it happened.
    pub at: Timestamp,
    /// What happened (`secret.created`, `rotation.succeeded`, ...).
    pub kind: String,
    /// The secret it concerns, if any.
    pub secret: Option<String>,
    /// Details by kind (never a value).
    pub detail: serde_json::Value,
}

/// A new subscription: a webhook (`url`) or a command (`command`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("not" = {
    "required": ["url", "command"],
    "properties": {"url": {"type": "string"}, "command": {"type": "array"}},
}, "anyOf" = [
    {"required": ["url"], "properties": {"url": {"type": "string"}}},
    {"required": ["command"], "properties": {"command": {"type": "array"}}},
]))]
pub struct NewSubscription {
    /// Its name.
    #[schemars(extend("pattern" = SUBSCRIPTION_PATTERN))]
    pub name: String,
    /// Only secrets whose names start with this.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// Event kinds or families (`rotation.*`); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("items" = kind_schema()))]
    pub kinds: Vec<String>,
    /// A webhook's `http://` or `https://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "uri"))]
    pub url: Option<String>,
    /// A command's program and arguments (the program named first, not empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), extend("prefixItems" = [{"type": "string", "minLength": 1}]))]
    pub command: Option<Vec<String>>,
    /// Longest a delivery may take, 1–600,000 ms (10,000 when left out).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "rotor_core::number::optional"
    )]
    #[schemars(range(min = 1, max = MAX_TIMEOUT_MS))]
    pub timeout_ms: Option<u64>,
    /// Deliver events after this sequence number (from now when left out).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "rotor_core::number::optional"
    )]
    #[schemars(range(min = 0))]
    pub from_seq: Option<i64>,
}

/// A subscription.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Subscription {
    /// Its name.
    pub name: String,
    /// Its prefix.
    pub prefix: String,
    /// Its kinds; all when empty.
    pub kinds: Vec<String>,
    /// `webhook` or `exec`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where it delivers.
    pub target: serde_json::Value,
    /// Every event up to this one has been delivered or dead-lettered.
    pub cursor: i64,
    /// When it was created.
    pub created: Timestamp,
    /// The principal whose view of events it gets.
    pub created_by: String,
    /// A webhook's signing key: in the answer that creates it, only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<Sensitive>,
}

/// Every subscription.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionList {
    /// By name.
    pub subscriptions: Vec<Subscription>,
}

/// `GET /v1/sys/subscriptions/NAME/deliveries`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// How many, newest first (50 when left out; taken as 1–1000).
    #[serde(default = "default_limit")]
    pub limit: i64,
    /// Only dead-lettered events.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dead: bool,
}

impl Default for DeliveriesQuery {
    fn default() -> Self {
        DeliveriesQuery {
            limit: default_limit(),
            dead: false,
        }
    }
}

fn default_limit() -> i64 {
    50
}

/// A subscription's delivery attempts.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryList {
    /// The subscription.
    pub subscription: String,
    /// Newest first.
    pub deliveries: Vec<Delivery>,
}

/// One delivery attempt.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Delivery {
    /// Its id.
    pub id: i64,
    /// The event.
    pub seq: i64,
    /// Which attempt.
    pub attempt: i64,
    /// `delivered`, `failed` or `dead`.
    pub status: String,
    /// When.
    pub at: Timestamp,
    /// What went wrong.
    pub error: Option<String>,
}
