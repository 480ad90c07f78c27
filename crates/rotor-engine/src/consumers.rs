//! Consumer acknowledgements: which version of a secret each consumer (a `rotor agent`
//! rendering templates, a `rotor run` starting a process) has in use, so that an owner
//! can see every consumer move to a new version before revoking the previous one.
//!
//! An acknowledgement is an event in the outbox (kind [`ACK_KIND`], the secret's name,
//! detail `{consumer, version, host}`), never a value. Reading them back
//! ([`SecretService::consumers`](crate::SecretService::consumers)) scans the last [`SCAN_LIMIT`] events of the outbox,
//! keeping the latest acknowledgement per consumer: a consumer that has not reported
//! within that many events (of any kind, about any secret) is not listed, and the
//! answer says so (`complete` is false when older events were not looked at). Events
//! from before the secret was created (a deleted secret of the same name) are ignored.

use chrono::{DateTime, Utc};
use rotor_core::label::AWSCURRENT;
use rotor_core::{Error, Result};
use rotor_store::{Mutation, SecretRecord, Store};
use serde_json::json;

/// The event kind of an acknowledgement.
pub const ACK_KIND: &str = "consumer.ack";

/// How many of the latest events [`SecretService::consumers`](crate::SecretService::consumers) looks at.
pub const SCAN_LIMIT: i64 = 10_000;

/// The longest consumer id.
pub const MAX_CONSUMER_LEN: usize = 256;

/// Events read from the store at once while scanning.
const PAGE: i64 = 500;

/// A consumer reports the version of a secret it has in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerAck {
    /// Who: an agent's or a `rotor run`'s consumer id.
    pub consumer: String,
    /// The secret (name or ARN).
    pub secret: String,
    /// The version it rendered or started with.
    pub version_id: String,
    /// Where the report came from, as the server saw it (the peer address).
    pub host: Option<String>,
}

/// One consumer's latest acknowledgement of a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerState {
    /// The consumer id.
    pub consumer: String,
    /// The version it reported.
    pub version_id: String,
    /// That version's staging labels now (empty once it has none).
    pub stages: Vec<String>,
    /// Whether that version is `AWSCURRENT`.
    pub current: bool,
    /// Where the report came from.
    pub host: Option<String>,
    /// When it was reported.
    pub at: DateTime<Utc>,
    /// The acknowledgement's event sequence number.
    pub seq: i64,
}

/// The consumers of one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumers {
    /// The secret's name.
    pub name: String,
    /// The version holding `AWSCURRENT`, if any.
    pub current_version: Option<String>,
    /// The latest acknowledgement of each consumer, by consumer id.
    pub consumers: Vec<ConsumerState>,
    /// Whether the whole outbox was scanned; when false, consumers that last reported
    /// more than [`SCAN_LIMIT`] events ago are missing.
    pub complete: bool,
}

pub(crate) fn validate_consumer(consumer: &str) -> Result<()> {
    if consumer.is_empty() || consumer.chars().count() > MAX_CONSUMER_LEN {
        return Err(Error::invalid_parameter(format!(
            "A consumer id must be 1 to {MAX_CONSUMER_LEN} characters long"
        )));
    }
    if consumer.chars().any(char::is_control) {
        return Err(Error::invalid_parameter(
            "A consumer id must not contain control characters",
        ));
    }
    Ok(())
}

/// The outbox event recording `ack` on the secret named `name`.
pub(crate) fn ack_event(ack: &ConsumerAck, name: &str) -> Mutation {
    let detail = json!({"consumer": ack.consumer, "version": ack.version_id, "host": ack.host});
    Mutation::AppendEvent {
        kind: ACK_KIND.into(),
        secret: Some(name.to_string()),
        detail: detail.to_string(),
    }
}

/// The latest acknowledgement of each consumer of `record`, read from the last
/// [`SCAN_LIMIT`] events of `store`'s outbox.
pub(crate) async fn scan(store: &dyn Store, record: &SecretRecord) -> Result<Consumers> {
    let last = *store.event_feed().borrow();
    let start = (last - SCAN_LIMIT).max(0);
    let mut after = start;
    let mut latest: std::collections::BTreeMap<String, ConsumerState> = Default::default();
    // Read on past the feed's value, which may trail the last commit by a moment,
    // but no further than the cap.
    while after < start + SCAN_LIMIT {
        let page = store
            .events(after, PAGE.min(start + SCAN_LIMIT - after))
            .await?;
        let Some(tail) = page.last() else { break };
        after = tail.seq;
        for event in page {
            if event.kind != ACK_KIND
                || event.secret.as_deref() != Some(record.meta.name.as_str())
                || event.at < record.meta.created
            {
                continue;
            }
            let detail: serde_json::Value = serde_json::from_str(&event.detail).unwrap_or_default();
            let (Some(consumer), Some(version)) =
                (detail["consumer"].as_str(), detail["version"].as_str())
            else {
                continue;
            };
            let stages = record
                .versions
                .iter()
                .find(|v| v.id == version)
                .map(|v| v.labels.clone())
                .unwrap_or_default();
            latest.insert(
                consumer.to_string(),
                ConsumerState {
                    consumer: consumer.to_string(),
                    version_id: version.to_string(),
                    current: stages.iter().any(|s| s == AWSCURRENT),
                    stages,
                    host: detail["host"].as_str().map(str::to_string),
                    at: event.at,
                    seq: event.seq,
                },
            );
        }
    }
    let current_version = record
        .versions
        .iter()
        .find(|v| v.labels.iter().any(|l| l == AWSCURRENT))
        .map(|v| v.id.clone());
    Ok(Consumers {
        name: record.meta.name.clone(),
        current_version,
        consumers: latest.into_values().collect(),
        complete: start == 0,
    })
}
