//! Rotor's storage: the [`Store`] trait, the embedded SQLite backend, migrations for
//! SQLite and PostgreSQL, and a conformance suite every backend must pass.
//!
//! A store keeps secrets, their sealed versions and their staging labels. It never sees
//! a plaintext value: values arrive sealed by `rotor-crypto`, with a keyed digest for
//! idempotency checks. Writes are domain [`Mutation`]s applied atomically, each in its
//! own savepoint inside a batch (group commit), and label changes go through
//! [`rotor_core::label::LabelBoard`], so every backend applies the same rules.
//!
//! ```no_run
//! # async fn demo() -> rotor_core::Result<()> {
//! use rotor_store::{sqlite::SqliteStore, Store, Lookup};
//! let store = SqliteStore::open(std::path::Path::new("/tmp/rotor.db"), true).await?;
//! assert!(store.load(&Lookup::Name("prod/db".into())).await?.is_none());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod conformance;
mod errors;
mod migrate;
pub mod postgres;
mod rows;
mod runs;
pub mod sqlite;

use chrono::{DateTime, Utc};
use rotor_core::Result;
use rotor_core::model::{RotationMeta, RotationRecord, SecretMeta, Tag, VersionMeta};
use std::future::Future;
use std::pin::Pin;

/// A boxed future, so that [`Store`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How to find a secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// By name.
    Name(String),
    /// By full ARN.
    Arn(String),
}

/// A value as the store keeps it: sealed, plus a keyed digest of the plaintext.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedValue {
    /// The encrypted value.
    pub ciphertext: Vec<u8>,
    /// The wrapped data key.
    pub wrapped_key: Vec<u8>,
    /// Encryption algorithm id.
    pub algorithm: String,
    /// Master key id.
    pub key_id: String,
    /// Keyed digest of the plaintext, for "same token, same value" checks.
    pub digest: Vec<u8>,
}

impl std::fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedValue")
            .field("ciphertext_len", &self.ciphertext.len())
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A stored version with its sealed value.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    /// Version id.
    pub id: String,
    /// Staging labels.
    pub labels: Vec<String>,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// The sealed value.
    pub sealed: SealedValue,
}

/// A secret with its labeled versions: what reads by label need. Unlabeled
/// (deprecated) versions, which may be many, are fetched one at a time with
/// [`Store::load_version`] or listed with [`Store::list_versions`].
#[derive(Debug, Clone)]
pub struct SecretRecord {
    /// Metadata.
    pub meta: SecretMeta,
    /// Versions holding at least one label, oldest first.
    pub versions: Vec<StoredVersion>,
}

/// A secret's metadata and its labeled versions, as listings show them.
#[derive(Debug, Clone)]
pub struct SecretSummary {
    /// Metadata.
    pub meta: SecretMeta,
    /// `(version id, labels)` of each version that has labels.
    pub stages: Vec<(String, Vec<String>)>,
}

/// Which secrets [`Store::list`] returns. Every condition narrows the listing, and
/// each is answered from an index, so that a listing of a few secrets costs the same
/// however many others the store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Also secrets scheduled for deletion.
    pub include_deleted: bool,
    /// Only names starting with this.
    pub prefix: Option<String>,
    /// Only secrets with a rotator.
    pub rotating: bool,
    /// Only secrets scheduled for deletion at or before this time.
    pub deletion_due: Option<DateTime<Utc>>,
}

impl Listing {
    /// Every secret not scheduled for deletion.
    pub fn live() -> Self {
        Listing::default()
    }

    /// Every secret, those scheduled for deletion too.
    pub fn all() -> Self {
        Listing {
            include_deleted: true,
            ..Listing::default()
        }
    }

    /// The secrets whose recovery window ends at or before `at`.
    pub fn deletion_due(at: DateTime<Utc>) -> Self {
        Listing {
            include_deleted: true,
            deletion_due: Some(at),
            ..Listing::default()
        }
    }

    /// Only names starting with `prefix` (an empty prefix narrows nothing).
    pub fn under(mut self, prefix: &str) -> Self {
        self.prefix = (!prefix.is_empty()).then(|| prefix.to_string());
        self
    }

    /// Only secrets with a rotator.
    pub fn rotating(mut self) -> Self {
        self.rotating = true;
        self
    }

    /// The range of names the prefix allows: at or above the first, below the
    /// second (none when no name can be above every name with the prefix).
    pub(crate) fn name_range(&self) -> Option<(&str, Option<String>)> {
        let prefix = self.prefix.as_deref()?;
        Some((prefix, name_after(prefix)))
    }

    /// Whether `meta` belongs in this listing: the stores select with their indexes,
    /// and check each row with this, so that a collation cannot widen a listing.
    pub(crate) fn admits(&self, meta: &SecretMeta) -> bool {
        (self.include_deleted || meta.deletion_date.is_none())
            && self
                .prefix
                .as_deref()
                .is_none_or(|p| meta.name.starts_with(p))
            && (!self.rotating || meta.rotation.rotator.is_some())
            && self
                .deletion_due
                .is_none_or(|at| meta.deletion_date.is_some_and(|d| d <= at))
    }
}

/// The least string above every string starting with `prefix`, in code point order
/// (which is byte order in UTF-8): `prefix` with its last character raised by one.
fn name_after(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let raised = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(c) = raised {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A version to add.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Where a replicated version came from (JSON list of `{secret, version}`).
    pub source: Option<String>,
    /// Its id (the client request token, or an id the caller chose).
    pub id: String,
    /// Labels to move onto it.
    pub stages: Vec<String>,
    /// The sealed value.
    pub sealed: SealedValue,
}

/// A change to apply atomically.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Mutation {
    /// Create a secret, optionally with its first version. Idempotent when a secret
    /// of that name exists whose version `first_version.id` holds the same value.
    CreateSecret {
        /// Name.
        name: String,
        /// ARN.
        arn: String,
        /// Description.
        description: Option<String>,
        /// KMS key id as given by the client.
        kms_key_id: Option<String>,
        /// Tags.
        tags: Vec<Tag>,
        /// First version.
        first_version: Option<NewVersion>,
    },
    /// Add a version. Idempotent when the version exists with the same value digest;
    /// `ResourceExists` when it exists with another.
    PutVersion {
        /// The secret's store id.
        secret: i64,
        /// The version.
        version: NewVersion,
    },
    /// Change description and/or KMS key id (`None` leaves a field alone).
    UpdateMeta {
        /// The secret's store id.
        secret: i64,
        /// New description.
        description: Option<String>,
        /// New KMS key id.
        kms_key_id: Option<String>,
    },
    /// `UpdateSecretVersionStage`.
    MoveLabel {
        /// The secret's store id.
        secret: i64,
        /// The label.
        label: String,
        /// Version to move it to.
        move_to: Option<String>,
        /// Version to take it from.
        remove_from: Option<String>,
    },
    /// Add or replace tags.
    Tag {
        /// The secret's store id.
        secret: i64,
        /// Tags to set.
        tags: Vec<Tag>,
    },
    /// Remove tags by key.
    Untag {
        /// The secret's store id.
        secret: i64,
        /// Keys to remove.
        keys: Vec<String>,
    },
    /// Schedule deletion at `deletion_date`.
    ScheduleDeletion {
        /// The secret's store id.
        secret: i64,
        /// When it will be purged.
        deletion_date: DateTime<Utc>,
    },
    /// Cancel a scheduled deletion.
    Restore {
        /// The secret's store id.
        secret: i64,
    },
    /// Delete the secret and every version now.
    Purge {
        /// The secret's store id.
        secret: i64,
    },
    /// Delete up to `limit` outbox events older than `older_than`, oldest first, except
    /// what someone still needs: the newest event (it carries the sequence), events a
    /// subscription has not yet delivered (past the lowest cursor), and the latest
    /// `consumer.ack` of each (consumer, secret).
    PruneEvents {
        /// Events at or after this stay.
        older_than: DateTime<Utc>,
        /// Most events deleted by this call.
        limit: i64,
    },
    /// Remember that master key `key_id` seals data in this store.
    RecordMasterKey {
        /// The key's id.
        key_id: String,
    },
    /// A change to principals, policies or credentials.
    Access(AccessMutation),
    /// Replace a secret's rotation configuration and schedule.
    SetRotation {
        /// The secret's store id.
        secret: i64,
        /// The new state.
        rotation: RotationMeta,
    },
    /// Record a new rotation, running from `createSecret`, and take `AWSPENDING`
    /// off any other version. Replays when a rotation with this token exists;
    /// `InvalidRequest` when another one is running.
    StartRotation {
        /// The rotation (`status` running).
        record: RotationRecord,
    },
    /// Save a rotation's progress, with the secret's rotation state when given,
    /// in one transaction.
    SaveRotation {
        /// The rotation, found by secret and token.
        record: RotationRecord,
        /// The secret's new rotation state.
        rotation: Option<RotationMeta>,
        /// Take `AWSPENDING` off the rotation's version (it finished).
        release_pending: bool,
    },
    /// Register (or, with `replace`, change) a rotator.
    PutRotator {
        /// The rotator.
        rotator: RotatorRow,
        /// Whether an existing one may be replaced.
        replace: bool,
    },
    /// Remove a rotator.
    DeleteRotator {
        /// Its name.
        name: String,
    },
    /// Take or renew lease `name` for `holder` until `ttl_ms` from now. Answers
    /// [`Outcome::Lease`]: whether `holder` holds it, and its fencing epoch, which
    /// grows each time the lease changes hands.
    Lease {
        /// The lease's name.
        name: String,
        /// Who asks (a node id).
        holder: String,
        /// How long it is held without renewal, in milliseconds.
        ttl_ms: i64,
    },
    /// Give lease `name` up if `holder` holds it (a clean shutdown).
    ReleaseLease {
        /// The lease's name.
        name: String,
        /// Who holds it.
        holder: String,
    },
    /// Several mutations applied together or not at all (a source change and its
    /// replicas).
    Atomic(Vec<Mutation>),
    /// Add a replication rule (`ResourceExists` if the name is taken).
    PutRule {
        /// The rule.
        rule: RuleRow,
    },
    /// Remove a replication rule; its destinations stay, no longer owned.
    DeleteRule {
        /// Its name.
        name: String,
    },
    /// Mark secret `name` as owned by replication rule `rule` (or by none).
    MarkReplica {
        /// The destination's name.
        name: String,
        /// The owning rule.
        rule: Option<String>,
    },
    /// Mark destinations whose source was deleted (or restored).
    MarkSourceDeleted {
        /// The destinations' names.
        names: Vec<String>,
        /// Deleted or restored.
        deleted: bool,
    },
    /// Append an event that no other mutation records.
    AppendEvent {
        /// Its kind.
        kind: String,
        /// The secret it is about.
        secret: Option<String>,
        /// Details as JSON, never a secret value.
        detail: String,
    },
    /// Add a subscription to events (`ResourceExists` if the name is taken).
    PutSubscription {
        /// The subscription.
        subscription: SubscriptionRow,
    },
    /// Remove a subscription and its delivery log.
    DeleteSubscription {
        /// Its name.
        name: String,
    },
    /// Record a delivery attempt; with `advance`, the subscription's cursor moves to
    /// `seq` (delivered, or given up on).
    RecordDelivery {
        /// The subscription.
        subscription: String,
        /// The event.
        seq: i64,
        /// Which attempt, from 1.
        attempt: i64,
        /// `delivered`, `failed` or `dead`.
        status: String,
        /// What went wrong.
        error: Option<String>,
        /// Move the cursor to `seq`.
        advance: bool,
    },
    /// Record consumers' reports (a registration, a heartbeat, reads): each row
    /// replaces the consumer's previous one, keeping when it was first seen. A row
    /// whose secret no longer exists, whose consumer id another principal holds, or
    /// older than the stored one (reports from several nodes cross), is skipped.
    ReportConsumers {
        /// The reports.
        consumers: Vec<ConsumerRow>,
    },
    /// A registered consumer leaves (a clean exit): it is gone from now on. Only the
    /// principal that registered it may end it.
    EndConsumer {
        /// The secret's store id.
        secret: i64,
        /// The consumer id.
        consumer: String,
        /// The principal asking.
        principal: String,
    },
    /// Forget consumers gone (or, for readers, last seen) before `before`.
    PruneConsumers {
        /// The horizon.
        before: DateTime<Utc>,
    },
    /// Append consecutive audit entries `first..=last` (one JSON line each, in
    /// `lines`) to the audit log's store sink.
    AppendAudit {
        /// Sequence number of the first line.
        first: i64,
        /// Sequence number of the last line.
        last: i64,
        /// The lines, each ending in a newline.
        lines: String,
    },
}

/// How a consumer came to be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumerKind {
    /// It registered and heartbeats (an agent, `rotor run`, the client library).
    Registered,
    /// It read the secret over an API; it has no lease.
    Reader,
}

impl ConsumerKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerKind::Registered => "registered",
            ConsumerKind::Reader => "reader",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "registered" => Some(ConsumerKind::Registered),
            "reader" => Some(ConsumerKind::Reader),
            _ => None,
        }
    }
}

/// One consumer of one secret, as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRow {
    /// The secret's store id.
    pub secret: i64,
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
    /// When it was first seen (kept from the stored row on a report).
    pub first_seen: DateTime<Utc>,
    /// When it last reported.
    pub last_seen: DateTime<Utc>,
    /// A registered consumer's liveness deadline.
    pub expires: Option<DateTime<Utc>>,
}

/// Changes to who may do what.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AccessMutation {
    /// Create a principal (`ResourceExists` if the name is taken).
    CreatePrincipal {
        /// Name.
        name: String,
        /// `service` or `person`.
        kind: String,
    },
    /// Delete a principal with its tokens, keys and attachments.
    DeletePrincipal {
        /// Name.
        name: String,
    },
    /// Create or replace a policy.
    PutPolicy {
        /// Name.
        name: String,
        /// The policy as JSON.
        document: String,
    },
    /// Delete a policy, detaching it everywhere.
    DeletePolicy {
        /// Name.
        name: String,
    },
    /// Attach a policy to a principal.
    Attach {
        /// Principal name.
        principal: String,
        /// Policy name.
        policy: String,
    },
    /// Detach a policy from a principal.
    Detach {
        /// Principal name.
        principal: String,
        /// Policy name.
        policy: String,
    },
    /// Store a token's keyed hash.
    CreateToken {
        /// Public id (accessor).
        id: String,
        /// Principal name.
        principal: String,
        /// Keyed hash of the token.
        hash: Vec<u8>,
        /// Expiry, if any.
        expires: Option<DateTime<Utc>>,
    },
    /// Revoke a token.
    RevokeToken {
        /// Public id.
        id: String,
    },
    /// Store an access key pair, the secret sealed.
    CreateAccessKey {
        /// Access key id.
        id: String,
        /// Principal name.
        principal: String,
        /// The sealed secret access key (`digest` unused).
        sealed: SealedValue,
    },
    /// Delete an access key pair.
    DeleteAccessKey {
        /// Access key id.
        id: String,
    },
}

/// Secrets due for rotation, as `(store id, name)`, and when the next one after
/// them falls due.
pub type DueRotations = (Vec<(i64, String)>, Option<DateTime<Utc>>);

/// A change event from the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Gap-free sequence number.
    pub seq: i64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// `secret.created`, `version.put`, `label.moved`, `rotation.succeeded`, ...
    pub kind: String,
    /// The secret's name, when it is about one.
    pub secret: Option<String>,
    /// Details as JSON; never a secret value.
    pub detail: String,
}

/// A replication rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRow {
    /// Its name.
    pub name: String,
    /// `copy` or `merge`.
    pub kind: String,
    /// `copy`: a secret name, or a prefix ending in `/`.
    pub source: String,
    /// `copy`: a name, or a prefix for a prefix source; `merge`: the destination.
    pub destination: String,
    /// `merge`: the template.
    pub template: Option<String>,
    /// When it was added.
    pub created: DateTime<Utc>,
    /// Who added it.
    pub created_by: String,
}

/// A subscription to events.
#[derive(Debug, Clone)]
pub struct SubscriptionRow {
    /// Its name.
    pub name: String,
    /// Secrets whose name starts with this.
    pub prefix: String,
    /// Event kinds; empty for all.
    pub kinds: Vec<String>,
    /// `webhook` or `exec`.
    pub target_kind: String,
    /// JSON: `{"url": ...}` or `{"command": [...]}`.
    pub target: String,
    /// The signing key, sealed (`digest` unused).
    pub key: Option<SealedValue>,
    /// Every event up to this one has been handled.
    pub cursor: i64,
    /// When it was added.
    pub created: DateTime<Utc>,
    /// Who added it.
    pub created_by: String,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    /// Its id.
    pub id: i64,
    /// The subscription.
    pub subscription: String,
    /// The event.
    pub seq: i64,
    /// Which attempt.
    pub attempt: i64,
    /// `delivered`, `failed` or `dead`.
    pub status: String,
    /// When.
    pub at: DateTime<Utc>,
    /// What went wrong.
    pub error: Option<String>,
}

/// A registered rotator.
#[derive(Debug, Clone)]
pub struct RotatorRow {
    /// Its name, as a Lambda ARN's function name refers to it.
    pub name: String,
    /// `webhook`, `exec`, `lambda`, `postgres`, `mysql` or `random`.
    pub kind: String,
    /// Settings as JSON, without secrets.
    pub config: String,
    /// The signing key, sealed (`digest` unused).
    pub key: Option<SealedValue>,
    /// When it was registered.
    pub created: DateTime<Utc>,
    /// The principal that registered it (`None` for rotators from before this was kept).
    pub created_by: Option<String>,
}

/// A principal as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRow {
    /// Store id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// `service` or `person`.
    pub kind: String,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Names of attached policies.
    pub policies: Vec<String>,
}

/// A token as stored: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Public id.
    pub id: String,
    /// Owner's store id.
    pub principal_id: i64,
    /// Keyed hash of the token.
    pub hash: Vec<u8>,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Expiry.
    pub expires: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked: Option<DateTime<Utc>>,
}

/// An access key pair as stored.
#[derive(Debug, Clone)]
pub struct AccessKeyRow {
    /// Access key id.
    pub id: String,
    /// Owner's store id.
    pub principal_id: i64,
    /// The sealed secret access key.
    pub sealed: SealedValue,
    /// Creation time.
    pub created: DateTime<Utc>,
}

/// Everything about access control, read at once: it is small, and the engine keeps
/// it in memory.
#[derive(Debug, Clone, Default)]
pub struct AccessSnapshot {
    /// Principals with their attached policies.
    pub principals: Vec<PrincipalRow>,
    /// `(name, JSON document)` of every policy.
    pub policies: Vec<(String, String)>,
    /// Every token.
    pub tokens: Vec<TokenRow>,
    /// Every access key.
    pub access_keys: Vec<AccessKeyRow>,
}

/// What a mutation did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A secret was created (or `replayed`: an identical create was repeated).
    Created {
        /// Store id.
        id: i64,
        /// ARN (the existing one when replayed).
        arn: String,
        /// Whether this was an idempotent replay.
        replayed: bool,
    },
    /// A version was added (or `replayed`), now holding `labels`.
    Version {
        /// Its labels after the change.
        labels: Vec<String>,
        /// Whether this was an idempotent replay.
        replayed: bool,
        /// Whether the secret's rotation is enabled: a put that moves `AWSCURRENT`
        /// on such a secret counts as a rotation, and needs no second look to know.
        rotates: bool,
    },
    /// A rotation was recorded (or `replayed`: one with this token existed).
    Rotation {
        /// Whether this was an idempotent replay.
        replayed: bool,
    },
    /// The state of a lease after [`Mutation::Lease`].
    Lease {
        /// Whether the asking holder holds it now.
        held: bool,
        /// Its fencing epoch.
        epoch: i64,
    },
    /// What each mutation of an [`Mutation::Atomic`] did.
    All(Vec<Outcome>),
    /// Anything else succeeded.
    Done,
}

/// A storage backend.
pub trait Store: Send + Sync + 'static {
    /// The secret found by `lookup`, with its labeled versions.
    fn load<'a>(&'a self, lookup: &'a Lookup) -> BoxFuture<'a, Result<Option<SecretRecord>>>;
    /// One version of secret `secret` (its store id), labeled or not.
    fn load_version<'a>(
        &'a self,
        secret: i64,
        version_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredVersion>>>;
    /// Every version of secret `secret`, oldest first, without values.
    fn list_versions(&self, secret: i64) -> BoxFuture<'_, Result<Vec<VersionMeta>>>;
    /// The ids of the master keys recorded with [`Mutation::RecordMasterKey`].
    fn master_keys(&self) -> BoxFuture<'_, Result<Vec<String>>>;
    /// Principals, policies and credentials.
    fn access(&self) -> BoxFuture<'_, Result<AccessSnapshot>>;
    /// Audit entries of the store sink with a sequence number above `after`, in order.
    fn audit_entries(&self, after: i64) -> BoxFuture<'_, Result<Vec<(i64, String)>>>;
    /// The secrets `listing` selects, ordered by creation.
    fn list<'a>(&'a self, listing: &'a Listing) -> BoxFuture<'a, Result<Vec<SecretSummary>>>;
    /// The rotation of secret `secret` whose token is `token`.
    fn rotation<'a>(
        &'a self,
        secret: i64,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<RotationRecord>>>;
    /// The last `limit` rotations of secret `secret`, newest first.
    fn rotations(&self, secret: i64, limit: i64) -> BoxFuture<'_, Result<Vec<RotationRecord>>>;
    /// Every running rotation (including those waiting out a backoff).
    fn running_rotations(&self) -> BoxFuture<'_, Result<Vec<RotationRecord>>>;
    /// Up to `limit` secrets whose rotation is due at `now`, earliest first, as
    /// `(store id, name)`, and when the next one after those falls due.
    fn due_rotations(&self, now: DateTime<Utc>, limit: i64) -> BoxFuture<'_, Result<DueRotations>>;
    /// Every registered rotator, by name.
    fn rotators(&self) -> BoxFuture<'_, Result<Vec<RotatorRow>>>;
    /// Up to `limit` events with a sequence number above `after`, in order.
    fn events(&self, after: i64, limit: i64) -> BoxFuture<'_, Result<Vec<Event>>>;
    /// The sequence number of the last committed event, kept current: watchers wait
    /// on it instead of polling.
    fn event_feed(&self) -> tokio::sync::watch::Receiver<i64>;
    /// Every replication rule, by name.
    fn rules(&self) -> BoxFuture<'_, Result<Vec<RuleRow>>>;
    /// Every subscription, by name.
    fn subscriptions(&self) -> BoxFuture<'_, Result<Vec<SubscriptionRow>>>;
    /// The last `limit` delivery attempts (of one subscription, or of all), newest first.
    fn deliveries<'a>(
        &'a self,
        subscription: Option<&'a str>,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<DeliveryRow>>>;
    /// The consumers of the secrets with these store ids, by secret then consumer id.
    fn consumers<'a>(&'a self, secrets: &'a [i64]) -> BoxFuture<'a, Result<Vec<ConsumerRow>>>;
    /// Applies `mutation` durably, as of time `now`. Returns once committed.
    fn apply(&self, mutation: Mutation, now: DateTime<Utc>) -> BoxFuture<'_, Result<Outcome>>;
    /// Commits every write already accepted, then stops accepting writes.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// Records one group commit: how many mutations it carried and how long it took,
/// as the histograms `rotor_store_commit_mutations` and `rotor_store_commit_seconds`
/// (by backend), so that an operator sees whether writers share their commits.
pub(crate) fn record_commit(backend: &'static str, mutations: usize, started: std::time::Instant) {
    metrics::histogram!("rotor_store_commit_mutations", "backend" => backend)
        .record(mutations as f64);
    metrics::histogram!("rotor_store_commit_seconds", "backend" => backend)
        .record(started.elapsed().as_secs_f64());
}

/// The lease the rotation scheduler runs under. A rotation record whose `epoch` is
/// above 0 is saved only while this lease's epoch equals it (fencing).
pub const SCHEDULER_LEASE: &str = "scheduler";

/// The youngest creation time a pruning search of a secret with `total` versions
/// must look back to: 24 hours ago, or now once the secret is past
/// [`rotor_core::label::MAX_STORED_VERSIONS`] (then young versions may go too).
pub(crate) fn prune_horizon(total: usize, now: DateTime<Utc>) -> DateTime<Utc> {
    if total > rotor_core::label::MAX_STORED_VERSIONS {
        now
    } else {
        now - chrono::Duration::hours(rotor_core::label::MIN_PRUNE_AGE_HOURS)
    }
}

/// `tags` merged into the secret's own: a new key is added, a known one takes the new
/// value. Refused past [`rotor_core::model::MAX_TAGS`].
pub(crate) fn merge_tags(meta: &mut SecretMeta, tags: Vec<Tag>) -> Result<()> {
    for tag in tags {
        match meta.tags.iter_mut().find(|t| t.key == tag.key) {
            Some(t) => t.value = tag.value,
            None => meta.tags.push(tag),
        }
    }
    if meta.tags.len() > rotor_core::model::MAX_TAGS {
        return Err(rotor_core::Error::new(
            rotor_core::ErrorKind::LimitExceeded,
            format!(
                "A secret can have at most {} tags",
                rotor_core::model::MAX_TAGS
            ),
        ));
    }
    Ok(())
}

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_range_holds_exactly_the_names_with_the_prefix() {
        assert_eq!(name_after("/app/svc1/").as_deref(), Some("/app/svc10"));
        assert_eq!(name_after("a").as_deref(), Some("b"));
        assert_eq!(name_after(""), None);
        let top = char::MAX.to_string();
        assert_eq!(name_after(&format!("a{top}")).as_deref(), Some("b"));
        assert_eq!(name_after(&top), None);
        // Raising past the surrogates lands on the first character after them.
        assert_eq!(name_after("\u{d7ff}").as_deref(), Some("\u{e000}"));
        let listing = Listing::live().under("/app/");
        let (low, high) = listing.name_range().unwrap();
        for name in ["/app/", "/app/x", "/app/\u{10ffff}"] {
            assert!(name >= low && name < high.as_deref().unwrap(), "{name}");
        }
        for name in ["/app", "/apq", "/app0", "/b"] {
            assert!(name < low || name >= high.as_deref().unwrap(), "{name}");
        }
    }
}
