//! Consumers: who uses which version of a secret, and whether they are still there,
//! so that a rotation never invalidates a credential a live consumer holds and
//! retires the old one as soon as nobody does.
//!
//! The registry lives in the store ([`rotor_store::ConsumerRow`]). Two kinds of
//! consumer are in it:
//!
//! - **registered** ones (`rotor agent`, `rotor run`, an application using
//!   `rotor-client`) report the version they use and heartbeat; each report extends a
//!   lease ([`DEFAULT_LEASE_SECS`]). Once the lease has run out the consumer is *gone*:
//!   it is listed, but it blocks nothing. A clean exit ends the lease at once.
//! - **readers**: anyone who reads a secret's `AWSCURRENT` over any API, keyed by
//!   principal and source address, uses the version it last read (reads by version id
//!   or of another label, as rotation functions and tools make, do not count). A reader
//!   has no lease: an application that
//!   caches values has not adopted a new version until it reads it, so a reader counts
//!   until the secret's `assume_adopted_after` has passed since its last read. Reads are
//!   recorded off the request path ([`ReadTracker`]): a map insert per read, flushed to
//!   the store in batches.
//!
//! A replica keeps its source's version ids, so a consumer of a replicated destination
//! is a consumer of the source's version: the owner of `/dba/...` sees every
//! application that uses its credential through `/app/<service>/replicated/...`, and
//! the owner's rotations wait for them.

use chrono::{DateTime, Duration, Utc};
use rotor_core::label::AWSCURRENT;
use rotor_core::model::AdoptionPolicy;
use rotor_core::{Error, Result};
use rotor_store::{ConsumerKind, ConsumerRow, Mutation, SecretRecord, Store};
use serde_json::json;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The event kind recorded when a registered consumer starts using a version.
pub const ACK_KIND: &str = "consumer.ack";

/// The longest consumer id.
pub const MAX_CONSUMER_LEN: usize = 256;

/// A registration's lease when the consumer names none: four missed heartbeats at
/// the default interval of 15 s.
pub const DEFAULT_LEASE_SECS: i64 = 60;

/// The longest lease a consumer may ask for.
pub const MAX_LEASE_SECS: i64 = 3600;

/// How long the registry remembers a consumer after it is gone.
pub const FORGET_AFTER_HOURS: i64 = 24;

/// A consumer reports the version of a secret it uses (and so renews its lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Who: an agent's or a `rotor run`'s consumer id.
    pub consumer: String,
    /// The secret (name or ARN).
    pub secret: String,
    /// The version it uses.
    pub version_id: String,
    /// Where the report came from, as the server saw it (the peer address).
    pub host: Option<String>,
    /// How long it stays live without another report; [`DEFAULT_LEASE_SECS`] when
    /// absent.
    pub lease_secs: Option<i64>,
}

/// A registration recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The secret's name.
    pub name: String,
    /// The lease's end.
    pub expires: DateTime<Utc>,
}

/// One consumer of a secret, as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerState {
    /// The consumer id (a reader's is `PRINCIPAL@ADDRESS`).
    pub consumer: String,
    /// Registered or reader.
    pub kind: ConsumerKind,
    /// The version it uses.
    pub version_id: String,
    /// The principal it acts as.
    pub principal: String,
    /// Where it reports from.
    pub host: Option<String>,
    /// When it was first seen.
    pub first_seen: DateTime<Utc>,
    /// When it last reported (or read).
    pub last_seen: DateTime<Utc>,
    /// Until when it counts: a registered consumer's lease, a reader's last read plus
    /// the secret's `assume_adopted_after`.
    pub live_until: DateTime<Utc>,
    /// Whether it is live now.
    pub live: bool,
    /// The replica it uses the secret through, when it reads a destination.
    pub through: Option<String>,
}

/// A version and who uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionConsumers {
    /// The version id.
    pub version_id: String,
    /// Its staging labels now (empty once it has none).
    pub stages: Vec<String>,
    /// The live consumers on it.
    pub live: Vec<ConsumerState>,
    /// The consumers last seen on it that are gone.
    pub gone: Vec<ConsumerState>,
}

/// The consumers of one secret, by version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumers {
    /// The secret's name.
    pub name: String,
    /// The version holding `AWSCURRENT`, if any.
    pub current_version: Option<String>,
    /// Each labeled version, then each unlabeled one a consumer still reports, with
    /// its consumers.
    pub versions: Vec<VersionConsumers>,
}

impl Consumers {
    /// The live consumers on a version other than `AWSCURRENT`.
    pub fn lagging(&self) -> impl Iterator<Item = &ConsumerState> {
        self.versions
            .iter()
            .filter(move |v| Some(&v.version_id) != self.current_version.as_ref())
            .flat_map(|v| v.live.iter())
    }

    /// The live consumers on `version_id`.
    pub fn live_on(&self, version_id: &str) -> Vec<&ConsumerState> {
        self.versions
            .iter()
            .filter(|v| v.version_id == version_id)
            .flat_map(|v| v.live.iter())
            .collect()
    }
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

pub(crate) fn validate_lease(lease_secs: Option<i64>) -> Result<i64> {
    let lease = lease_secs.unwrap_or(DEFAULT_LEASE_SECS);
    if !(1..=MAX_LEASE_SECS).contains(&lease) {
        return Err(Error::invalid_parameter(format!(
            "A consumer's lease must be 1 to {MAX_LEASE_SECS} seconds"
        )));
    }
    Ok(lease)
}

/// The outbox event recording that `consumer` started using `version` of `name`.
pub(crate) fn ack_event(consumer: &str, version: &str, host: Option<&str>, name: &str) -> Mutation {
    let detail = json!({"consumer": consumer, "version": version, "host": host});
    Mutation::AppendEvent {
        kind: ACK_KIND.into(),
        secret: Some(name.to_string()),
        detail: detail.to_string(),
    }
}

/// Until when `row` counts as using its version.
pub(crate) fn live_until(row: &ConsumerRow, policy: &AdoptionPolicy) -> DateTime<Utc> {
    match row.kind {
        ConsumerKind::Registered => row.expires.unwrap_or(row.last_seen),
        ConsumerKind::Reader => {
            row.last_seen + Duration::seconds(policy.assume_adopted_after_secs.max(0))
        }
    }
}

/// The consumers of `record` and of its replicas (`replicas`: each destination's
/// store id and name), grouped by version, as of `now`.
pub(crate) async fn view(
    store: &dyn Store,
    record: &SecretRecord,
    replicas: &[(i64, String)],
    now: DateTime<Utc>,
) -> Result<Consumers> {
    let mut ids = vec![record.meta.id];
    ids.extend(replicas.iter().map(|(id, _)| *id));
    let rows = store.consumers(&ids).await?;
    let policy = &record.meta.rotation.adoption;
    let mut versions: Vec<VersionConsumers> = record
        .versions
        .iter()
        .map(|v| VersionConsumers {
            version_id: v.id.clone(),
            stages: v.labels.clone(),
            live: Vec::new(),
            gone: Vec::new(),
        })
        .collect();
    for row in rows {
        let through = replicas
            .iter()
            .find(|(id, _)| *id == row.secret)
            .map(|(_, name)| name.clone());
        let until = live_until(&row, policy);
        let state = ConsumerState {
            live: until > now,
            live_until: until,
            consumer: row.consumer,
            kind: row.kind,
            version_id: row.version_id,
            principal: row.principal,
            host: row.host,
            first_seen: row.first_seen,
            last_seen: row.last_seen,
            through,
        };
        let slot = match versions
            .iter()
            .position(|v| v.version_id == state.version_id)
        {
            Some(i) => i,
            None => {
                versions.push(VersionConsumers {
                    version_id: state.version_id.clone(),
                    stages: Vec::new(),
                    live: Vec::new(),
                    gone: Vec::new(),
                });
                versions.len() - 1
            }
        };
        if state.live {
            versions[slot].live.push(state);
        } else {
            versions[slot].gone.push(state);
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
        versions,
    })
}

/// A reader of a secret: `(secret, principal, address)`.
type ReaderKey = (i64, Arc<str>, IpAddr);

/// What a reader last read: `(version, when)`.
type LastRead = (String, DateTime<Utc>);

/// Who read what, waiting to be written to the registry in one batch.
#[derive(Default)]
struct Pending {
    reads: HashMap<ReaderKey, LastRead>,
}

/// Records reads as implicit consumers, off the request path: a read costs a map
/// insert; [`ReadTracker::flush`] writes the batch. A reader that keeps reading the
/// same version is written again only once a minute (its `last_seen` is that
/// precise), so a hot secret costs one row write a minute per reader, not one per read.
#[derive(Default)]
pub struct ReadTracker {
    pending: Mutex<Pending>,
    /// What was last written per reader, to skip unchanged rewrites.
    written: Mutex<HashMap<ReaderKey, LastRead>>,
}

/// How often an unchanged reader is written again.
const REWRITE_AFTER_SECS: i64 = 60;

impl ReadTracker {
    /// Notes that `principal` at `address` read `version` of secret `secret`.
    pub(crate) fn seen(
        &self,
        secret: i64,
        principal: Arc<str>,
        address: IpAddr,
        version: &str,
        at: DateTime<Utc>,
    ) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.reads.entry((secret, principal, address)) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let (v, t) = e.get_mut();
                if v != version {
                    version.clone_into(v);
                }
                *t = at;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((version.to_string(), at));
            }
        }
    }

    /// Writes the reads noted since the last flush. Returns how many rows it wrote.
    pub async fn flush(&self, store: &dyn Store, now: DateTime<Utc>) -> Result<usize> {
        let reads =
            std::mem::take(&mut self.pending.lock().unwrap_or_else(|e| e.into_inner()).reads);
        if reads.is_empty() {
            return Ok(0);
        }
        let mut rows = Vec::new();
        let mut marks = Vec::new();
        {
            let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            for (key, (version, at)) in reads {
                let fresh = written.get(&key).is_some_and(|(v, t)| {
                    *v == version && at - *t < Duration::seconds(REWRITE_AFTER_SECS)
                });
                if fresh {
                    continue;
                }
                let (secret, principal, address) = &key;
                rows.push(ConsumerRow {
                    secret: *secret,
                    consumer: format!("{principal}@{address}"),
                    kind: ConsumerKind::Reader,
                    version_id: version.clone(),
                    principal: principal.to_string(),
                    host: Some(address.to_string()),
                    first_seen: at,
                    last_seen: at,
                    expires: None,
                });
                marks.push((key, (version, at)));
            }
        }
        let n = rows.len();
        if n > 0 {
            store
                .apply(Mutation::ReportConsumers { consumers: rows }, now)
                .await?;
        }
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.extend(marks);
        let horizon = now - Duration::hours(1);
        written.retain(|_, (_, t)| *t > horizon);
        Ok(n)
    }
}

impl std::fmt::Debug for ReadTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTracker").finish_non_exhaustive()
    }
}
