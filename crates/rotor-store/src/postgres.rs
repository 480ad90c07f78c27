//! The PostgreSQL backend, for several `rotor server` nodes sharing one database.
//!
//! Every mutation is one transaction (`READ COMMITTED`) on a connection of a pool. A
//! mutation about a secret first locks the secret's row (`SELECT ... FOR UPDATE`), so
//! writers on every node take turns per secret, and what a writer reads after taking
//! the lock (labels, version digests, counters) is what the previous holder committed:
//! the rules of [`LabelBoard`] and "same token, same value is a replay" hold across
//! nodes; an `Atomic` change locks all of its secrets first, in id order. When
//! PostgreSQL still aborts a transaction to break a deadlock, or for a serialization
//! failure (under `SERIALIZABLE`, the default of some PostgreSQL-wire engines), the
//! mutation runs again from the start, up to [`MAX_ATTEMPTS`] times.
//!
//! Events are buffered while a mutation runs and written just before it commits,
//! numbered from the one-row `event_counter` table: its row lock makes event-writing
//! transactions commit in `seq` order, and a rolled-back one gives its numbers back, so
//! `seq` has no gaps across nodes. The same statement sends a `NOTIFY`. Each node's
//! [`Store::event_feed`] follows its own commits directly, the other nodes' through
//! `LISTEN`, and polls the counter every [`FEED_POLL`] in case a notification was lost.
//!
//! Migrations run in one transaction holding an exclusive lock on
//! `schema_migrations`, so nodes starting together apply each migration once. No
//! advisory locks: PostgreSQL-wire engines such as CockroachDB treat them as no-ops.

use crate::errors::{refuse_if_deleted, refuse_if_deleted_date};
use crate::{
    AccessSnapshot, BoxFuture, DeliveryRow, DueRotations, Event, Lookup, Mutation, Outcome,
    RotatorRow, RuleRow, SealedValue, SecretRecord, SecretSummary, Store, StoredVersion,
    SubscriptionRow, from_millis, millis,
};
use chrono::{DateTime, Utc};
use rotor_core::label::{self, LabelBoard};
use rotor_core::model::{RotationRecord, SecretMeta, VersionMeta};
use rotor_core::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow, Postgres};
use sqlx::{Row as _, Transaction};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod access;
mod events;
mod lease;
mod puts;
mod rotation;

/// How many times a mutation runs before a conflict is reported as a failure.
pub const MAX_ATTEMPTS: u32 = 6;

/// How often each node reads the event counter, in case a notification was lost.
pub const FEED_POLL: Duration = Duration::from_millis(500);

/// Connections per node.
const POOL_SIZE: u32 = 10;

/// A store in a PostgreSQL database, shared by any number of nodes.
pub struct PgStore {
    pool: PgPool,
    feed: Arc<watch::Sender<i64>>,
    /// The tasks that learn other nodes' events: the listener and the poll.
    followers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for PgStore {
    // The pool's options hold the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        for task in &self.followers {
            task.abort();
        }
    }
}

/// A database error as both backends tell it ([`crate::errors::db_error`]), except
/// that a closed pool means the store is shutting down.
pub(crate) fn db_error(e: sqlx::Error) -> Error {
    if let sqlx::Error::PoolClosed = e {
        return shutting_down();
    }
    crate::errors::db_error(e)
}

/// What a caller hears once [`Store::close`] has begun, as from SQLite.
fn shutting_down() -> Error {
    Error::internal("The store is shutting down")
}

/// Why a mutation's transaction ends without committing.
#[derive(Debug)]
pub(crate) enum Abort {
    /// Another transaction got in the way (PostgreSQL rolled this one back to break a
    /// deadlock, or for a serialization failure): running the mutation again from the
    /// start may succeed.
    Conflict,
    /// The answer to give the caller: the mutation is refused, or the store failed.
    Refuse(Error),
}

impl From<Error> for Abort {
    fn from(e: Error) -> Self {
        Abort::Refuse(e)
    }
}

/// The result of a step of a mutation.
pub(crate) type Tx<T> = std::result::Result<T, Abort>;

/// SQLSTATEs after which PostgreSQL has rolled the transaction back and running it
/// again is safe: `serialization_failure`, `deadlock_detected`.
const RETRYABLE: [&str; 2] = ["40001", "40P01"];

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// A database error inside a mutation: a conflict to retry, or a failure.
pub(crate) fn db(e: sqlx::Error) -> Abort {
    if sqlstate(&e).is_some_and(|code| RETRYABLE.contains(&code.as_str())) {
        tracing::debug!(error = %e, "transaction conflict");
        return Abort::Conflict;
    }
    Abort::Refuse(db_error(e))
}

/// A `ResourceExists` from a unique constraint, with a message that names the thing.
pub(crate) fn taken(a: Abort, what: impl FnOnce() -> String) -> Abort {
    match a {
        Abort::Refuse(e) if e.kind == rotor_core::ErrorKind::ResourceExists => {
            Abort::Refuse(Error::exists(what()))
        }
        other => other,
    }
}

/// One mutation's transaction, with the events it appends: they are numbered and
/// written just before the commit, so that the event counter stays locked briefly.
pub(crate) struct Change {
    tx: Transaction<'static, Postgres>,
    events: Vec<events::Pending>,
}

impl Change {
    /// The transaction's connection.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Appends an event, written with the transaction.
    pub(crate) fn emit(
        &mut self,
        now: DateTime<Utc>,
        kind: &str,
        secret: Option<&str>,
        detail: serde_json::Value,
    ) {
        self.events.push(events::Pending {
            at: millis(now),
            kind: kind.to_string(),
            secret: secret.map(str::to_string),
            detail: detail.to_string(),
        });
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`),
    /// applies migrations, and starts following events.
    pub async fn connect(url: &str) -> Result<PgStore> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| Error::invalid_parameter(format!("Not a PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options)
            .await
            .map_err(|e| Error::internal(format!("Cannot connect to PostgreSQL: {e}")))?;
        migrate(&pool).await?;
        let last = events::last(&pool).await?;
        let feed = Arc::new(watch::Sender::new(last));
        let followers = vec![
            tokio::spawn(events::listen(pool.clone(), feed.clone())),
            tokio::spawn(events::poll(pool.clone(), feed.clone())),
        ];
        Ok(PgStore {
            pool,
            feed,
            followers,
        })
    }
}

/// SQLSTATEs a migration meets when nodes start together: two `CREATE TABLE IF NOT
/// EXISTS` racing, the loser fails once the winner commits, with `unique_violation`,
/// `duplicate_table` or `duplicate_object` (the table's row type) depending on the
/// moment; then deadlocks and serialization failures.
const MIGRATION_RETRYABLE: [&str; 5] = ["23505", "42P07", "42710", "40001", "40P01"];

/// Applies the migrations not yet applied, all in one transaction that holds an
/// exclusive lock on `schema_migrations`: another node starting at the same time waits
/// for it, then finds nothing left to do.
async fn migrate(pool: &PgPool) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match migrate_once(pool).await {
            Ok(()) => return Ok(()),
            Err(e)
                if attempt < 10
                    && sqlstate(&e).is_some_and(|c| MIGRATION_RETRYABLE.contains(&c.as_str())) =>
            {
                tracing::debug!(error = %e, "migration raced another node; trying again");
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "migration failed");
                return Err(Error::internal(format!(
                    "Cannot migrate the PostgreSQL database: {e}"
                )));
            }
        }
    }
}

async fn migrate_once(pool: &PgPool) -> std::result::Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
         LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE",
    )
    .execute(&mut *tx)
    .await?;
    let done: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *tx)
        .await?;
    for (version, sql) in crate::migrate::POSTGRES {
        if done.contains(version) {
            continue;
        }
        sqlx::raw_sql(*sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(millis(Utc::now()))
            .execute(&mut *tx)
            .await?;
        tracing::info!(version, "applied PostgreSQL migration");
    }
    tx.commit().await
}

/// A short wait before trying again, growing with `attempt`, with jitter so that two
/// nodes that collided do not collide again in step.
fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let jitter = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % 5;
    Duration::from_millis((2u64 << attempt.min(6)) + jitter)
}

fn get<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(
    row: &'r PgRow,
    column: &str,
) -> Result<T> {
    row.try_get(column).map_err(db_error)
}

/// The secret's metadata, its row locked until the transaction ends: every mutation
/// of a secret goes through here (or [`lock_secret`]) before reading anything else.
async fn lock_meta(c: &mut Change, id: i64) -> Tx<SecretMeta> {
    let row = sqlx::query("SELECT * FROM secrets WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(c.conn())
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found("Secrets Manager can't find the specified secret."))?;
    Ok(crate::rows::secret_meta(&row)?)
}

/// Locks the secret's row until the transaction ends; whether it exists.
async fn lock_secret(c: &mut Change, id: i64) -> Tx<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM secrets WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(c.conn())
        .await
        .map_err(db)?;
    Ok(found.is_some())
}

/// The label board of a secret: its labeled versions only, so that its cost does not
/// grow with deprecated versions. `also` names versions to include even without
/// labels, once checked to exist (e.g. the target of a label move). Call with the
/// secret's row locked.
async fn board(c: &mut Change, secret: i64, also: &[&str]) -> Tx<LabelBoard> {
    let rows = sqlx::query("SELECT label, version_id FROM labels WHERE secret_id = $1")
        .bind(secret)
        .fetch_all(c.conn())
        .await
        .map_err(db)?;
    let mut by_version: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in &rows {
        let label: String = get(row, "label")?;
        let version: String = get(row, "version_id")?;
        by_version.entry(version).or_default().push(label);
    }
    for id in also {
        if !by_version.contains_key(*id) && stored_digest(c, secret, id).await?.is_some() {
            by_version.insert(id.to_string(), Vec::new());
        }
    }
    Ok(LabelBoard::from_versions(by_version))
}

/// Writes the label changes from `before` to `after` of one secret: at most one
/// statement for the labels that went and one for those that moved or came.
async fn save_labels(
    c: &mut Change,
    secret: i64,
    before: &LabelBoard,
    after: &LabelBoard,
) -> Tx<()> {
    let (gone, moved) = after.label_changes(before);
    if !gone.is_empty() {
        sqlx::query("DELETE FROM labels WHERE secret_id = $1 AND label = ANY($2)")
            .bind(secret)
            .bind(&gone)
            .execute(c.conn())
            .await
            .map_err(db)?;
    }
    if !moved.is_empty() {
        let (labels, versions): (Vec<String>, Vec<String>) = moved.into_iter().unzip();
        sqlx::query(
            "INSERT INTO labels (secret_id, label, version_id)
             SELECT $1, l, v FROM UNNEST($2::text[], $3::text[]) AS m (l, v)
             ON CONFLICT (secret_id, label) DO UPDATE SET version_id = excluded.version_id",
        )
        .bind(secret)
        .bind(&labels)
        .bind(&versions)
        .execute(c.conn())
        .await
        .map_err(db)?;
    }
    Ok(())
}

async fn touch(c: &mut Change, secret: i64, now: DateTime<Utc>) -> Tx<()> {
    sqlx::query("UPDATE secrets SET last_changed_at = $1 WHERE id = $2")
        .bind(millis(now))
        .bind(secret)
        .execute(c.conn())
        .await
        .map_err(db)?;
    Ok(())
}

async fn stored_digest(c: &mut Change, secret: i64, version: &str) -> Tx<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT digest FROM versions WHERE secret_id = $1 AND version_id = $2")
        .bind(secret)
        .bind(version)
        .fetch_optional(c.conn())
        .await
        .map_err(db)
}

/// Deletes deprecated versions past the limit, by the rule in
/// [`rotor_core::label::prunable`].
async fn prune(c: &mut Change, secret: i64, total: usize, now: DateTime<Utc>) -> Tx<()> {
    if total <= label::MAX_VERSIONS {
        return Ok(());
    }
    let rows = sqlx::query(
        "SELECT v.version_id, v.created_at FROM versions v
         WHERE v.secret_id = $1 AND v.created_at <= $2
           AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.secret_id = v.secret_id AND l.version_id = v.version_id)
         ORDER BY v.created_at, v.seq LIMIT $3",
    )
    .bind(secret)
    .bind(millis(crate::prune_horizon(total, now)))
    .bind(label::prune_candidates(total) as i64)
    .fetch_all(c.conn())
    .await
    .map_err(db)?;
    let mut candidates = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = get(r, "version_id")?;
        candidates.push((id, from_millis(get(r, "created_at")?)));
    }
    let doomed = label::prunable(total, &candidates, now);
    if doomed.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM versions WHERE secret_id = $1 AND version_id = ANY($2)")
        .bind(secret)
        .bind(&doomed)
        .execute(c.conn())
        .await
        .map_err(db)?;
    sqlx::query("UPDATE secrets SET version_count = version_count - $1 WHERE id = $2")
        .bind(doomed.len() as i64)
        .bind(secret)
        .execute(c.conn())
        .await
        .map_err(db)?;
    Ok(())
}

async fn create_secret(c: &mut Change, mutation: Mutation, now: DateTime<Utc>) -> Tx<Outcome> {
    let Mutation::CreateSecret {
        name,
        arn,
        description,
        kms_key_id,
        tags,
        first_version,
    } = mutation
    else {
        return Err(Error::internal("not a create").into());
    };
    let existing = sqlx::query("SELECT * FROM secrets WHERE name = $1")
        .bind(&name)
        .fetch_optional(c.conn())
        .await
        .map_err(db)?;
    if let Some(row) = existing {
        let meta = crate::rows::secret_meta(&row)?;
        if meta.is_deleted() {
            return Err(Error::invalid_request(format!(
                "You can't create this secret because a secret with the name {name} is already scheduled for deletion."
            ))
            .into());
        }
        if let Some(v) = &first_version
            && stored_digest(c, meta.id, &v.id).await?.as_ref() == Some(&v.sealed.digest)
        {
            return Ok(Outcome::Created {
                id: meta.id,
                arn: meta.arn,
                replayed: true,
            });
        }
        return Err(Error::exists(format!(
            "The operation failed because the secret {name} already exists."
        ))
        .into());
    }
    let tags =
        serde_json::to_string(&tags).map_err(|_| Error::internal("tags could not be encoded"))?;
    // Another node may be creating the same name: the insert waits for it, and if it
    // committed, the mutation runs again and finds it above (a replay, or a clash).
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO secrets (name, arn, description, kms_key_id, tags, created_at, last_changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(&name)
    .bind(&arn)
    .bind(description)
    .bind(kms_key_id)
    .bind(tags)
    .bind(millis(now))
    .bind(millis(now))
    .fetch_optional(c.conn())
    .await
    .map_err(db)?;
    let Some(id) = id else {
        return Err(Abort::Conflict);
    };
    c.emit(
        now,
        "secret.created",
        Some(&name),
        serde_json::json!({"arn": arn}),
    );
    if let Some(version) = first_version {
        puts::put(c, id, version, now).await?;
    }
    Ok(Outcome::Created {
        id,
        arn,
        replayed: false,
    })
}

async fn save_tags(c: &mut Change, meta: &SecretMeta, now: DateTime<Utc>) -> Tx<Outcome> {
    let tags = serde_json::to_string(&meta.tags)
        .map_err(|_| Error::internal("tags could not be encoded"))?;
    sqlx::query("UPDATE secrets SET tags = $1, last_changed_at = $2 WHERE id = $3")
        .bind(tags)
        .bind(millis(now))
        .bind(meta.id)
        .execute(c.conn())
        .await
        .map_err(db)?;
    c.emit(
        now,
        "secret.updated",
        Some(&meta.name),
        serde_json::json!({}),
    );
    Ok(Outcome::Done)
}

/// The store ids of the secrets that `m` changes, named by id.
fn secrets_of(m: &Mutation, ids: &mut Vec<i64>) {
    match m {
        Mutation::PutVersion { secret, .. }
        | Mutation::UpdateMeta { secret, .. }
        | Mutation::MoveLabel { secret, .. }
        | Mutation::Tag { secret, .. }
        | Mutation::Untag { secret, .. }
        | Mutation::ScheduleDeletion { secret, .. }
        | Mutation::Restore { secret }
        | Mutation::Purge { secret }
        | Mutation::SetRotation { secret, .. } => ids.push(*secret),
        Mutation::StartRotation { record } | Mutation::SaveRotation { record, .. } => {
            ids.push(record.secret)
        }
        Mutation::Atomic(all) => all.iter().for_each(|m| secrets_of(m, ids)),
        _ => {}
    }
}

/// Locks the secrets an `Atomic` change names, in id order, before any of its parts
/// runs: two nodes replicating between the same secrets in opposite orders then wait
/// for each other instead of deadlocking (which PostgreSQL takes a second to notice).
async fn lock_in_order(c: &mut Change, all: &[Mutation]) -> Tx<()> {
    let mut ids = Vec::new();
    all.iter().for_each(|m| secrets_of(m, &mut ids));
    ids.sort_unstable();
    ids.dedup();
    if ids.len() > 1 {
        sqlx::query("SELECT id FROM secrets WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(&ids)
            .fetch_all(c.conn())
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// Applies one mutation inside `c`'s transaction.
async fn apply(c: &mut Change, mutation: Mutation, now: DateTime<Utc>) -> Tx<Outcome> {
    match mutation {
        Mutation::Lease {
            name,
            holder,
            ttl_ms,
        } => lease::lease(c, &name, &holder, ttl_ms).await,
        Mutation::ReleaseLease { name, holder } => lease::release(c, &name, &holder).await,
        m @ Mutation::CreateSecret { .. } => create_secret(c, m, now).await,
        Mutation::PutVersion { secret, version } => puts::put(c, secret, version, now).await,
        Mutation::UpdateMeta {
            secret,
            description,
            kms_key_id,
        } => {
            let meta = lock_meta(c, secret).await?;
            refuse_if_deleted(&meta)?;
            sqlx::query(
                "UPDATE secrets SET description = COALESCE($1, description),
                 kms_key_id = COALESCE($2, kms_key_id), last_changed_at = $3 WHERE id = $4",
            )
            .bind(description)
            .bind(kms_key_id)
            .bind(millis(now))
            .bind(secret)
            .execute(c.conn())
            .await
            .map_err(db)?;
            c.emit(
                now,
                "secret.updated",
                Some(&meta.name),
                serde_json::json!({}),
            );
            Ok(Outcome::Done)
        }
        Mutation::MoveLabel {
            secret,
            label,
            move_to,
            remove_from,
        } => {
            let meta = lock_meta(c, secret).await?;
            refuse_if_deleted(&meta)?;
            let named: Vec<&str> = [move_to.as_deref(), remove_from.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            let before = board(c, secret, &named).await?;
            let mut after = before.clone();
            after.move_label(&label, move_to.as_deref(), remove_from.as_deref())?;
            save_labels(c, secret, &before, &after).await?;
            touch(c, secret, now).await?;
            c.emit(
                now,
                "label.moved",
                Some(&meta.name),
                serde_json::json!({"label": label, "to": move_to, "from": remove_from}),
            );
            Ok(Outcome::Done)
        }
        Mutation::Tag { secret, tags } => {
            let mut meta = lock_meta(c, secret).await?;
            crate::merge_tags(&mut meta, tags)?;
            save_tags(c, &meta, now).await
        }
        Mutation::Untag { secret, keys } => {
            let mut meta = lock_meta(c, secret).await?;
            meta.tags.retain(|t| !keys.contains(&t.key));
            save_tags(c, &meta, now).await
        }
        Mutation::ScheduleDeletion {
            secret,
            deletion_date,
        } => {
            let meta = lock_meta(c, secret).await?;
            refuse_if_deleted(&meta)?;
            sqlx::query("UPDATE secrets SET deletion_date = $1, deleted_date = $2 WHERE id = $3")
                .bind(millis(deletion_date))
                .bind(millis(now))
                .bind(secret)
                .execute(c.conn())
                .await
                .map_err(db)?;
            c.emit(
                now,
                "secret.deleted",
                Some(&meta.name),
                serde_json::json!({"deletion_date": deletion_date}),
            );
            Ok(Outcome::Done)
        }
        Mutation::Restore { secret } => {
            let meta = lock_meta(c, secret).await?;
            c.emit(
                now,
                "secret.restored",
                Some(&meta.name),
                serde_json::json!({}),
            );
            sqlx::query(
                "UPDATE secrets SET deletion_date = NULL, deleted_date = NULL, last_changed_at = $1 WHERE id = $2",
            )
            .bind(millis(now))
            .bind(secret)
            .execute(c.conn())
            .await
            .map_err(db)?;
            Ok(Outcome::Done)
        }
        Mutation::Access(m) => access::apply(c, m, now).await,
        m @ (Mutation::SetRotation { .. }
        | Mutation::StartRotation { .. }
        | Mutation::SaveRotation { .. }
        | Mutation::PutRotator { .. }
        | Mutation::DeleteRotator { .. }) => rotation::apply(c, m, now).await,
        Mutation::Atomic(all) => {
            lock_in_order(c, &all).await?;
            let mut outcomes = Vec::with_capacity(all.len());
            for m in all {
                outcomes.push(Box::pin(apply(c, m, now)).await?);
            }
            Ok(Outcome::All(outcomes))
        }
        m @ (Mutation::PutRule { .. }
        | Mutation::DeleteRule { .. }
        | Mutation::MarkReplica { .. }
        | Mutation::MarkSourceDeleted { .. }
        | Mutation::AppendEvent { .. }
        | Mutation::PutSubscription { .. }
        | Mutation::DeleteSubscription { .. }
        | Mutation::RecordDelivery { .. }) => events::apply(c, m, now).await,
        Mutation::AppendAudit { first, last, lines } => {
            access::append_audit(c, first, last, lines).await
        }
        Mutation::RecordMasterKey { key_id } => {
            sqlx::query(
                "INSERT INTO master_keys (key_id, added_at) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING",
            )
            .bind(key_id)
            .bind(millis(now))
            .execute(c.conn())
            .await
            .map_err(db)?;
            Ok(Outcome::Done)
        }
        Mutation::PruneEvents { older_than, limit } => {
            sqlx::query(
                "DELETE FROM events WHERE seq IN (
                   SELECT seq FROM events
                   WHERE at < $1
                     AND seq < (SELECT MAX(seq) FROM events)
                     AND seq <= COALESCE((SELECT MIN(cursor) FROM subscriptions), seq)
                     AND NOT (kind = 'consumer.ack' AND seq IN (
                       SELECT MAX(seq) FROM events WHERE kind = 'consumer.ack'
                       GROUP BY secret, (detail::jsonb)->>'consumer'))
                   ORDER BY seq LIMIT $2)",
            )
            .bind(millis(older_than))
            .bind(limit)
            .execute(c.conn())
            .await
            .map_err(db)?;
            Ok(Outcome::Done)
        }
        Mutation::Purge { secret } => {
            let meta = lock_meta(c, secret).await?;
            c.emit(
                now,
                "secret.purged",
                Some(&meta.name),
                serde_json::json!({}),
            );
            // Labels reference versions, versions reference the secret: delete in order
            // so the result does not depend on cascade settings.
            for sql in [
                "DELETE FROM rotations WHERE secret_id = $1",
                "DELETE FROM labels WHERE secret_id = $1",
                "DELETE FROM versions WHERE secret_id = $1",
                "DELETE FROM secrets WHERE id = $1",
            ] {
                sqlx::query(sql)
                    .bind(secret)
                    .execute(c.conn())
                    .await
                    .map_err(db)?;
            }
            Ok(Outcome::Done)
        }
    }
}

/// Labels as aggregated by the queries below, sorted by byte (as SQLite sorts), not by
/// the database's collation.
fn sorted(mut labels: Vec<String>) -> Vec<String> {
    labels.sort();
    labels
}

fn version_from_row(r: &PgRow) -> Result<StoredVersion> {
    Ok(StoredVersion {
        id: get(r, "version_id")?,
        labels: sorted(get(r, "labels")?),
        created: from_millis(get(r, "created_at")?),
        sealed: SealedValue {
            ciphertext: get(r, "ciphertext")?,
            wrapped_key: get(r, "wrapped_key")?,
            algorithm: get(r, "algorithm")?,
            key_id: get(r, "key_id")?,
            digest: get(r, "digest")?,
        },
    })
}

impl PgStore {
    /// Runs `mutation` in a transaction of its own, again from the start after a
    /// conflict, and moves the feed on to the events it committed.
    async fn apply_mutation(&self, mutation: Mutation, now: DateTime<Utc>) -> Result<Outcome> {
        let mut attempt = 0;
        loop {
            if self.pool.is_closed() {
                return Err(shutting_down());
            }
            attempt += 1;
            match self.attempt(&mutation, now).await {
                Ok((outcome, last)) => {
                    if let Some(seq) = last {
                        events::advance(&self.feed, seq);
                    }
                    return Ok(outcome);
                }
                Err(Abort::Refuse(e)) => return Err(e),
                Err(Abort::Conflict) if attempt < MAX_ATTEMPTS => {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(Abort::Conflict) => {
                    tracing::warn!(attempts = attempt, "mutation kept conflicting; giving up");
                    return Err(Error::internal(
                        "The store is too busy to complete the request; try again",
                    ));
                }
            }
        }
    }

    /// One try: the outcome and the last event number committed, if any.
    async fn attempt(&self, mutation: &Mutation, now: DateTime<Utc>) -> Tx<(Outcome, Option<i64>)> {
        let tx = self.pool.begin().await.map_err(db)?;
        let mut change = Change {
            tx,
            events: Vec::new(),
        };
        let done = async {
            let outcome = apply(&mut change, mutation.clone(), now).await?;
            let last = events::flush(&mut change).await?;
            Ok::<_, Abort>((outcome, last))
        }
        .await;
        match done {
            Ok(done) => {
                change.tx.commit().await.map_err(db)?;
                Ok(done)
            }
            Err(e) => {
                // Explicitly, so that the locks are gone before a retry or the answer.
                let _ = change.tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn load_record(&self, lookup: &Lookup) -> Result<Option<SecretRecord>> {
        let row = match lookup {
            Lookup::Name(name) => sqlx::query("SELECT * FROM secrets WHERE name = $1").bind(name),
            Lookup::Arn(arn) => sqlx::query("SELECT * FROM secrets WHERE arn = $1").bind(arn),
        }
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let meta = crate::rows::secret_meta(&row)?;
        // Labeled versions only: their number does not grow with deprecated ones.
        let rows = sqlx::query(
            "SELECT v.version_id, v.created_at, v.ciphertext, v.wrapped_key, v.algorithm, v.key_id, v.digest,
                    array_agg(l.label) AS labels
             FROM labels l JOIN versions v ON v.secret_id = l.secret_id AND v.version_id = l.version_id
             WHERE l.secret_id = $1 GROUP BY v.secret_id, v.version_id ORDER BY v.seq",
        )
        .bind(meta.id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let versions = rows
            .iter()
            .map(version_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(SecretRecord { meta, versions }))
    }

    async fn load_one_version(
        &self,
        secret: i64,
        version_id: &str,
    ) -> Result<Option<StoredVersion>> {
        let row = sqlx::query(
            "SELECT v.version_id, v.created_at, v.ciphertext, v.wrapped_key, v.algorithm, v.key_id, v.digest,
                    ARRAY(SELECT l.label FROM labels l
                          WHERE l.secret_id = v.secret_id AND l.version_id = v.version_id) AS labels
             FROM versions v WHERE v.secret_id = $1 AND v.version_id = $2",
        )
        .bind(secret)
        .bind(version_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(version_from_row).transpose()
    }

    async fn all_versions(&self, secret: i64) -> Result<Vec<VersionMeta>> {
        let rows = sqlx::query(
            "SELECT v.version_id, v.created_at, v.source,
                    ARRAY(SELECT l.label FROM labels l
                          WHERE l.secret_id = v.secret_id AND l.version_id = v.version_id) AS labels
             FROM versions v WHERE v.secret_id = $1 ORDER BY v.seq",
        )
        .bind(secret)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                Ok(VersionMeta {
                    id: get(r, "version_id")?,
                    labels: sorted(get(r, "labels")?),
                    created: from_millis(get(r, "created_at")?),
                    source: get(r, "source")?,
                })
            })
            .collect()
    }

    async fn list_summaries(&self, include_deleted: bool) -> Result<Vec<SecretSummary>> {
        let rows = if include_deleted {
            sqlx::query("SELECT * FROM secrets ORDER BY created_at, id")
        } else {
            sqlx::query("SELECT * FROM secrets WHERE deletion_date IS NULL ORDER BY created_at, id")
        }
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let labels = sqlx::query("SELECT secret_id, version_id, label FROM labels")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let mut stages: BTreeMap<i64, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for r in labels {
            let secret: i64 = get(&r, "secret_id")?;
            let version: String = get(&r, "version_id")?;
            let label: String = get(&r, "label")?;
            stages
                .entry(secret)
                .or_default()
                .entry(version)
                .or_default()
                .push(label);
        }
        rows.iter()
            .map(|row| {
                let meta = crate::rows::secret_meta(row)?;
                let stages = stages
                    .remove(&meta.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(version, labels)| (version, sorted(labels)))
                    .collect();
                Ok(SecretSummary { meta, stages })
            })
            .collect()
    }
}

impl Store for PgStore {
    fn load<'a>(&'a self, lookup: &'a Lookup) -> BoxFuture<'a, Result<Option<SecretRecord>>> {
        Box::pin(self.load_record(lookup))
    }

    fn load_version<'a>(
        &'a self,
        secret: i64,
        version_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredVersion>>> {
        Box::pin(self.load_one_version(secret, version_id))
    }

    fn list_versions(&self, secret: i64) -> BoxFuture<'_, Result<Vec<VersionMeta>>> {
        Box::pin(self.all_versions(secret))
    }

    fn master_keys(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            sqlx::query_scalar("SELECT key_id FROM master_keys ORDER BY added_at, key_id")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)
        })
    }

    fn access(&self) -> BoxFuture<'_, Result<AccessSnapshot>> {
        Box::pin(access::snapshot(&self.pool))
    }

    fn audit_entries(&self, after: i64) -> BoxFuture<'_, Result<Vec<(i64, String)>>> {
        Box::pin(access::audit_entries(&self.pool, after))
    }

    fn list(&self, include_deleted: bool) -> BoxFuture<'_, Result<Vec<SecretSummary>>> {
        Box::pin(self.list_summaries(include_deleted))
    }

    fn rotation<'a>(
        &'a self,
        secret: i64,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<RotationRecord>>> {
        Box::pin(rotation::rotation(&self.pool, secret, token))
    }

    fn rotations(&self, secret: i64, limit: i64) -> BoxFuture<'_, Result<Vec<RotationRecord>>> {
        Box::pin(rotation::history(&self.pool, secret, limit))
    }

    fn running_rotations(&self) -> BoxFuture<'_, Result<Vec<RotationRecord>>> {
        Box::pin(rotation::running(&self.pool))
    }

    fn due_rotations(&self, now: DateTime<Utc>, limit: i64) -> BoxFuture<'_, Result<DueRotations>> {
        Box::pin(rotation::due(&self.pool, now, limit))
    }

    fn rotators(&self) -> BoxFuture<'_, Result<Vec<RotatorRow>>> {
        Box::pin(rotation::rotators(&self.pool))
    }

    fn events(&self, after: i64, limit: i64) -> BoxFuture<'_, Result<Vec<Event>>> {
        Box::pin(events::events(&self.pool, after, limit))
    }

    fn event_feed(&self) -> watch::Receiver<i64> {
        self.feed.subscribe()
    }

    fn rules(&self) -> BoxFuture<'_, Result<Vec<RuleRow>>> {
        Box::pin(events::rules(&self.pool))
    }

    fn subscriptions(&self) -> BoxFuture<'_, Result<Vec<SubscriptionRow>>> {
        Box::pin(events::subscriptions(&self.pool))
    }

    fn deliveries<'a>(
        &'a self,
        subscription: Option<&'a str>,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<DeliveryRow>>> {
        Box::pin(events::deliveries(&self.pool, subscription, limit))
    }

    fn apply(&self, mutation: Mutation, now: DateTime<Utc>) -> BoxFuture<'_, Result<Outcome>> {
        Box::pin(self.apply_mutation(mutation, now))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for task in &self.followers {
                task.abort();
            }
            // Waits for the connections in use, so mutations under way commit first.
            self.pool.close().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_grows_and_stays_short() {
        assert!(backoff(1) < backoff(5));
        assert!(backoff(100) <= std::time::Duration::from_millis(132));
    }
}
