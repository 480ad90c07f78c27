//! The embedded SQLite backend.
//!
//! WAL mode, `synchronous=FULL`, foreign keys on. Reads go through a small pool of
//! connections. Writes go to one writer task that owns its own connection: it takes
//! every mutation waiting in its queue (up to [`MAX_BATCH`]), applies each inside a
//! savepoint of one `BEGIN IMMEDIATE` transaction, commits once, and only then
//! answers each caller. One fsync then covers many writes (group commit), and a
//! failed mutation rolls back to its savepoint without touching the others.

use crate::errors::{db_error, refuse_if_deleted, refuse_if_deleted_date};
use crate::{
    AccessSnapshot, BoxFuture, DeliveryRow, DueRotations, Event, Lookup, Mutation, NewVersion,
    Outcome, RotatorRow, RuleRow, SealedValue, SecretRecord, SecretSummary, Store, StoredVersion,
    SubscriptionRow, from_millis, millis,
};
use chrono::{DateTime, Utc};
use rotor_core::label::{self, LabelBoard};
use rotor_core::model::{RotationRecord, SecretMeta, VersionMeta};
use rotor_core::{Error, Result};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection as _, Row as _};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

mod access;
mod events;
mod puts;
mod rotation;

/// Most mutations committed in one transaction.
pub const MAX_BATCH: usize = 256;

enum Job {
    Apply {
        // Boxed: mutations are large, and the queue holds many jobs.
        mutation: Box<Mutation>,
        now: DateTime<Utc>,
        reply: oneshot::Sender<Result<Outcome>>,
    },
    Close(oneshot::Sender<()>),
}

/// A store in one SQLite database file.
pub struct SqliteStore {
    readers: SqlitePool,
    writer: mpsc::Sender<Job>,
    feed: tokio::sync::watch::Receiver<i64>,
    /// An ephemeral store's directory, removed when the store is dropped.
    scratch: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    /// `durable` selects `synchronous=FULL`; an ephemeral dev store passes `false`.
    pub async fn open(path: &Path, durable: bool) -> Result<Self> {
        create_private(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if durable {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Off
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let (feed_tx, feed) = tokio::sync::watch::channel(0);
        let writer = spawn_writer(options.clone(), feed_tx).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options.read_only(true))
            .await
            .map_err(db_error)?;
        Ok(SqliteStore {
            readers,
            writer,
            feed,
            scratch: None,
        })
    }

    /// A throw-away store: a database in a temporary directory removed when the store
    /// is dropped, written without fsync. For `--dev` and tests.
    pub async fn ephemeral() -> Result<Self> {
        let dir = tempfile::tempdir().map_err(|e| {
            tracing::error!(error = %e, "cannot create a temporary directory");
            Error::internal("cannot create a temporary directory")
        })?;
        let mut store = SqliteStore::open(&dir.path().join("rotor-dev.db"), false).await?;
        store.scratch = Some(dir);
        Ok(store)
    }

    /// An ephemeral store's temporary directory, where other throw-away files (a dev
    /// server's audit log) may go too.
    pub fn scratch_dir(&self) -> Option<&Path> {
        self.scratch.as_ref().map(|d| d.path())
    }
}

/// Creates the database file readable by the server's user only, when it is missing.
/// SQLite gives the WAL and shared-memory files the database file's mode, so the three
/// stay private.
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "cannot create the database file");
            Err(Error::internal("cannot create the database file"))
        }
    }
}

/// Starts the writer on a thread of its own with a single-threaded runtime: its many
/// short waits on SQLite then do not queue behind the server's request tasks.
/// Returns once the connection is open and migrated.
async fn spawn_writer(
    options: SqliteConnectOptions,
    feed: tokio::sync::watch::Sender<i64>,
) -> Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel(4096);
    let (ready_tx, ready_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("rotor-sqlite-writer".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the writer runtime");
                    let _ = ready_tx.send(Err(Error::internal("cannot start the store's writer")));
                    return;
                }
            };
            runtime.block_on(async move {
                let opened = async {
                    let mut conn = SqliteConnection::connect_with(&options)
                        .await
                        .map_err(db_error)?;
                    migrate(&mut conn).await?;
                    feed.send_replace(events::last(&mut conn).await?);
                    Ok::<_, Error>(conn)
                }
                .await;
                match opened {
                    Ok(conn) => {
                        let _ = ready_tx.send(Ok(()));
                        writer_loop(conn, rx, feed).await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })
        .map_err(|e| Error::internal(format!("cannot start the store's writer thread: {e}")))?;
    ready_rx
        .await
        .map_err(|_| Error::internal("the store's writer stopped while opening"))??;
    Ok(tx)
}

async fn migrate(conn: &mut SqliteConnection) -> Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    for (version, sql) in crate::migrate::SQLITE {
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_error)?;
        if done.is_some() {
            continue;
        }
        let mut tx = conn.begin().await.map_err(db_error)?;
        sqlx::raw_sql(*sql)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(millis(Utc::now()))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        tracing::info!(version, "applied SQLite migration");
    }
    Ok(())
}

async fn writer_loop(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Job>,
    feed: tokio::sync::watch::Sender<i64>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        let mut close = None;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Apply {
                    mutation,
                    now,
                    reply,
                } => batch.push((*mutation, now, reply)),
                Job::Close(done) => {
                    close = Some(done);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            run_batch(&mut conn, batch, &feed).await;
        }
        if let Some(done) = close {
            let _ = conn.close().await;
            let _ = done.send(());
            return;
        }
    }
}

type Pending = (Mutation, DateTime<Utc>, oneshot::Sender<Result<Outcome>>);

/// What one savepoint of a batch covers: a run of consecutive puts, applied together,
/// or any other single mutation.
enum Unit {
    Puts(Vec<(puts::Put, oneshot::Sender<Result<Outcome>>)>),
    One(Box<Pending>),
}

fn units(batch: Vec<Pending>) -> Vec<Unit> {
    let mut units: Vec<Unit> = Vec::new();
    for (mutation, now, reply) in batch {
        match mutation {
            Mutation::PutVersion { secret, version } => {
                let put = (
                    puts::Put {
                        secret,
                        version,
                        now,
                    },
                    reply,
                );
                match units.last_mut() {
                    Some(Unit::Puts(run)) => run.push(put),
                    _ => units.push(Unit::Puts(vec![put])),
                }
            }
            other => units.push(Unit::One(Box::new((other, now, reply)))),
        }
    }
    units
}

async fn run_batch(
    conn: &mut SqliteConnection,
    batch: Vec<Pending>,
    feed: &tokio::sync::watch::Sender<i64>,
) {
    // Each unit runs in its own savepoint, so a failed one rolls back alone. The
    // statement that ends one savepoint also opens the next: one round trip each.
    let units = units(batch);
    let mut done: Vec<(oneshot::Sender<Result<Outcome>>, Result<Outcome>)> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<Result<Outcome>>> = Vec::new();
    let begun = sqlx::raw_sql("BEGIN IMMEDIATE; SAVEPOINT unit")
        .execute(&mut *conn)
        .await;
    let mut broken = begun.err().map(db_error);
    let last = units.len().saturating_sub(1);
    for (i, unit) in units.into_iter().enumerate() {
        if broken.is_some() {
            match unit {
                Unit::Puts(run) => waiting.extend(run.into_iter().map(|(_, reply)| reply)),
                Unit::One(one) => waiting.push(one.2),
            }
            continue;
        }
        let kept = match unit {
            Unit::One(one) => {
                let (mutation, now, reply) = *one;
                let result = apply(conn, mutation, now).await;
                let ok = result.is_ok();
                done.push((reply, result));
                ok
            }
            Unit::Puts(run) => {
                let (items, replies): (Vec<_>, Vec<_>) = run.into_iter().unzip();
                match puts::apply_run(conn, &items).await {
                    // Refused puts wrote nothing; the accepted ones are kept.
                    Ok(results) => {
                        done.extend(replies.into_iter().zip(results));
                        true
                    }
                    Err(e) => {
                        done.extend(replies.into_iter().map(|r| (r, Err(e.clone()))));
                        false
                    }
                }
            }
        };
        let boundary = match (kept, i == last) {
            (true, false) => "RELEASE unit; SAVEPOINT unit",
            (false, false) => "ROLLBACK TO unit; RELEASE unit; SAVEPOINT unit",
            (true, true) => "RELEASE unit; COMMIT",
            (false, true) => "ROLLBACK TO unit; RELEASE unit; COMMIT",
        };
        if let Err(e) = sqlx::raw_sql(boundary).execute(&mut *conn).await {
            broken = Some(db_error(e));
        }
    }
    if let Some(err) = broken {
        // The transaction is in an unknown state: roll it all back and fail everyone,
        // including those whose own change had succeeded.
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
        for reply in done.into_iter().map(|(r, _)| r).chain(waiting) {
            let _ = reply.send(Err(err.clone()));
        }
        return;
    }
    // Watchers wait on the last committed event: moved before anyone hears back,
    // so the feed never trails an acknowledged write.
    if let Ok(seq) = events::last(conn).await {
        feed.send_if_modified(|last| {
            let newer = seq != *last;
            *last = seq;
            newer
        });
    }
    for (reply, result) in done {
        let _ = reply.send(result);
    }
}

async fn meta_by_id(conn: &mut SqliteConnection, id: i64) -> Result<SecretMeta> {
    let row = sqlx::query("SELECT * FROM secrets WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?
        .ok_or_else(|| Error::not_found("Secrets Manager can't find the specified secret."))?;
    crate::rows::secret_meta(&row)
}

/// The label board of a secret: its labeled versions only, so that its cost does not
/// grow with deprecated versions. `also` names versions to include even without
/// labels, once checked to exist (e.g. the target of a label move).
async fn board(conn: &mut SqliteConnection, secret: i64, also: &[&str]) -> Result<LabelBoard> {
    let labels = sqlx::query("SELECT label, version_id FROM labels WHERE secret_id = ?")
        .bind(secret)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
    let mut by_version: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in &labels {
        let label: String = row.try_get("label").map_err(db_error)?;
        let version: String = row.try_get("version_id").map_err(db_error)?;
        by_version.entry(version).or_default().push(label);
    }
    for id in also {
        if !by_version.contains_key(*id) && stored_digest(conn, secret, id).await?.is_some() {
            by_version.insert(id.to_string(), Vec::new());
        }
    }
    Ok(LabelBoard::from_versions(by_version))
}

/// Writes the label changes of each `(secret, before, after)`: at most one statement
/// for the labels that went and one for those that moved or came, whatever the count.
async fn save_labels(
    conn: &mut SqliteConnection,
    changes: &[(i64, &LabelBoard, &LabelBoard)],
) -> Result<()> {
    let mut gone: Vec<(i64, String)> = Vec::new();
    let mut moved: Vec<(i64, String, String)> = Vec::new();
    for (secret, before, after) in changes {
        let (g, m) = after.label_changes(before);
        gone.extend(g.into_iter().map(|l| (*secret, l)));
        moved.extend(m.into_iter().map(|(l, v)| (*secret, l, v)));
    }
    for chunk in gone.chunks(puts::ROWS_PER_STATEMENT) {
        let sql = format!(
            "DELETE FROM labels WHERE (secret_id, label) IN (VALUES {})",
            vec!["(?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (secret, label) in chunk {
            q = q.bind(secret).bind(label);
        }
        q.execute(&mut *conn).await.map_err(db_error)?;
    }
    for chunk in moved.chunks(puts::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO labels (secret_id, label, version_id) VALUES {}
             ON CONFLICT (secret_id, label) DO UPDATE SET version_id = excluded.version_id",
            vec!["(?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (secret, label, version) in chunk {
            q = q.bind(secret).bind(label).bind(version);
        }
        q.execute(&mut *conn).await.map_err(db_error)?;
    }
    Ok(())
}

async fn touch(conn: &mut SqliteConnection, secret: i64, now: DateTime<Utc>) -> Result<()> {
    sqlx::query("UPDATE secrets SET last_changed_at = ? WHERE id = ?")
        .bind(millis(now))
        .bind(secret)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn stored_digest(
    conn: &mut SqliteConnection,
    secret: i64,
    version: &str,
) -> Result<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT digest FROM versions WHERE secret_id = ? AND version_id = ?")
        .bind(secret)
        .bind(version)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)
}

/// Applies a single put through the same code as a run of puts.
async fn put_one(
    conn: &mut SqliteConnection,
    secret: i64,
    version: NewVersion,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let run = [puts::Put {
        secret,
        version,
        now,
    }];
    puts::apply_run(conn, &run)
        .await?
        .pop()
        .unwrap_or_else(|| Err(Error::internal("a run of one put gave no outcome")))
}

/// Deletes deprecated versions past the limit, by the rule in
/// [`rotor_core::label::prunable`]; the index on `(secret_id, created_at)` keeps the
/// search to versions old enough to go.
async fn prune(
    conn: &mut SqliteConnection,
    secret: i64,
    total: usize,
    now: DateTime<Utc>,
) -> Result<()> {
    if total <= label::MAX_VERSIONS {
        return Ok(());
    }
    let rows = sqlx::query(
        "SELECT v.version_id, v.created_at FROM versions v
         WHERE v.secret_id = ? AND v.created_at <= ?
           AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.secret_id = v.secret_id AND l.version_id = v.version_id)
         ORDER BY v.created_at, v.seq LIMIT ?",
    )
    .bind(secret)
    .bind(millis(crate::prune_horizon(total, now)))
    .bind(label::prune_candidates(total) as i64)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    let mut candidates = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("version_id").map_err(db_error)?;
        let created: i64 = r.try_get("created_at").map_err(db_error)?;
        candidates.push((id, from_millis(created)));
    }
    let doomed = label::prunable(total, &candidates, now);
    for id in &doomed {
        sqlx::query("DELETE FROM versions WHERE secret_id = ? AND version_id = ?")
            .bind(secret)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    if !doomed.is_empty() {
        sqlx::query("UPDATE secrets SET version_count = version_count - ? WHERE id = ?")
            .bind(doomed.len() as i64)
            .bind(secret)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

async fn apply(
    conn: &mut SqliteConnection,
    mutation: Mutation,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    match mutation {
        Mutation::CreateSecret {
            name,
            arn,
            description,
            kms_key_id,
            tags,
            first_version,
        } => {
            let existing = sqlx::query("SELECT * FROM secrets WHERE name = ?")
                .bind(&name)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_error)?;
            if let Some(row) = existing {
                let meta = crate::rows::secret_meta(&row)?;
                if meta.is_deleted() {
                    return Err(Error::invalid_request(format!(
                        "You can't create this secret because a secret with the name {name} is already scheduled for deletion."
                    )));
                }
                if let Some(v) = &first_version
                    && stored_digest(conn, meta.id, &v.id).await?.as_ref() == Some(&v.sealed.digest)
                {
                    return Ok(Outcome::Created {
                        id: meta.id,
                        arn: meta.arn,
                        replayed: true,
                    });
                }
                return Err(Error::exists(format!(
                    "The operation failed because the secret {name} already exists."
                )));
            }
            let tags = serde_json::to_string(&tags)
                .map_err(|_| Error::internal("tags could not be encoded"))?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO secrets (name, arn, description, kms_key_id, tags, created_at, last_changed_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(&name)
            .bind(&arn)
            .bind(description)
            .bind(kms_key_id)
            .bind(tags)
            .bind(millis(now))
            .bind(millis(now))
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error)?;
            events::emit(
                conn,
                now,
                "secret.created",
                Some(&name),
                serde_json::json!({"arn": arn}),
            )
            .await?;
            if let Some(version) = first_version {
                put_one(conn, id, version, now).await?;
            }
            Ok(Outcome::Created {
                id,
                arn,
                replayed: false,
            })
        }
        Mutation::PutVersion { secret, version } => put_one(conn, secret, version, now).await,
        Mutation::UpdateMeta {
            secret,
            description,
            kms_key_id,
        } => {
            let meta = meta_by_id(conn, secret).await?;
            refuse_if_deleted(&meta)?;
            sqlx::query(
                "UPDATE secrets SET description = COALESCE(?, description),
                 kms_key_id = COALESCE(?, kms_key_id), last_changed_at = ? WHERE id = ?",
            )
            .bind(description)
            .bind(kms_key_id)
            .bind(millis(now))
            .bind(secret)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
            events::emit(
                conn,
                now,
                "secret.updated",
                Some(&meta.name),
                serde_json::json!({}),
            )
            .await?;
            Ok(Outcome::Done)
        }
        Mutation::MoveLabel {
            secret,
            label,
            move_to,
            remove_from,
        } => {
            let meta = meta_by_id(conn, secret).await?;
            refuse_if_deleted(&meta)?;
            let named: Vec<&str> = [move_to.as_deref(), remove_from.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            let before = board(conn, secret, &named).await?;
            let mut after = before.clone();
            after.move_label(&label, move_to.as_deref(), remove_from.as_deref())?;
            save_labels(conn, &[(secret, &before, &after)]).await?;
            touch(conn, secret, now).await?;
            events::emit(
                conn,
                now,
                "label.moved",
                Some(&meta.name),
                serde_json::json!({"label": label, "to": move_to, "from": remove_from}),
            )
            .await?;
            Ok(Outcome::Done)
        }
        Mutation::Tag { secret, tags } => {
            let mut meta = meta_by_id(conn, secret).await?;
            crate::merge_tags(&mut meta, tags)?;
            save_tags(conn, &meta, now).await
        }
        Mutation::Untag { secret, keys } => {
            let mut meta = meta_by_id(conn, secret).await?;
            meta.tags.retain(|t| !keys.contains(&t.key));
            save_tags(conn, &meta, now).await
        }
        Mutation::ScheduleDeletion {
            secret,
            deletion_date,
        } => {
            let meta = meta_by_id(conn, secret).await?;
            refuse_if_deleted(&meta)?;
            sqlx::query("UPDATE secrets SET deletion_date = ?, deleted_date = ? WHERE id = ?")
                .bind(millis(deletion_date))
                .bind(millis(now))
                .bind(secret)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            events::emit(
                conn,
                now,
                "secret.deleted",
                Some(&meta.name),
                serde_json::json!({"deletion_date": deletion_date}),
            )
            .await?;
            Ok(Outcome::Done)
        }
        Mutation::Restore { secret } => {
            let meta = meta_by_id(conn, secret).await?;
            events::emit(
                conn,
                now,
                "secret.restored",
                Some(&meta.name),
                serde_json::json!({}),
            )
            .await?;
            sqlx::query(
                "UPDATE secrets SET deletion_date = NULL, deleted_date = NULL, last_changed_at = ? WHERE id = ?",
            )
            .bind(millis(now))
            .bind(secret)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
            Ok(Outcome::Done)
        }
        Mutation::Access(m) => access::apply(conn, m, now).await,
        m @ (Mutation::SetRotation { .. }
        | Mutation::StartRotation { .. }
        | Mutation::SaveRotation { .. }
        | Mutation::PutRotator { .. }
        | Mutation::DeleteRotator { .. }
        | Mutation::Lease { .. }
        | Mutation::ReleaseLease { .. }) => rotation::apply(conn, m, now).await,
        Mutation::Atomic(all) => {
            let mut outcomes = Vec::with_capacity(all.len());
            for m in all {
                outcomes.push(Box::pin(apply(conn, m, now)).await?);
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
        | Mutation::RecordDelivery { .. }) => events::apply(conn, m, now).await,
        Mutation::AppendAudit { first, last, lines } => {
            access::append_audit(conn, first, last, lines).await
        }
        Mutation::RecordMasterKey { key_id } => {
            sqlx::query("INSERT INTO master_keys (key_id, added_at) VALUES (?, ?) ON CONFLICT (key_id) DO NOTHING")
                .bind(key_id)
                .bind(millis(now))
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            Ok(Outcome::Done)
        }
        Mutation::PruneEvents { older_than, limit } => {
            sqlx::query(
                "DELETE FROM events WHERE seq IN (
                   SELECT seq FROM events
                   WHERE at < ?
                     AND seq < (SELECT MAX(seq) FROM events)
                     AND seq <= COALESCE((SELECT MIN(cursor) FROM subscriptions), seq)
                     AND NOT (kind = 'consumer.ack' AND seq IN (
                       SELECT MAX(seq) FROM events WHERE kind = 'consumer.ack'
                       GROUP BY secret, json_extract(detail, '$.consumer')))
                   ORDER BY seq LIMIT ?)",
            )
            .bind(millis(older_than))
            .bind(limit)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
            Ok(Outcome::Done)
        }
        Mutation::Purge { secret } => {
            let meta = meta_by_id(conn, secret).await?;
            events::emit(
                conn,
                now,
                "secret.purged",
                Some(&meta.name),
                serde_json::json!({}),
            )
            .await?;
            // Labels reference versions, versions reference the secret: delete in order
            // so the result does not depend on cascade settings.
            for sql in [
                "DELETE FROM rotations WHERE secret_id = ?",
                "DELETE FROM labels WHERE secret_id = ?",
                "DELETE FROM versions WHERE secret_id = ?",
                "DELETE FROM secrets WHERE id = ?",
            ] {
                sqlx::query(sql)
                    .bind(secret)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_error)?;
            }
            Ok(Outcome::Done)
        }
    }
}

async fn save_tags(
    conn: &mut SqliteConnection,
    meta: &SecretMeta,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let tags = serde_json::to_string(&meta.tags)
        .map_err(|_| Error::internal("tags could not be encoded"))?;
    sqlx::query("UPDATE secrets SET tags = ?, last_changed_at = ? WHERE id = ?")
        .bind(tags)
        .bind(millis(now))
        .bind(meta.id)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    events::emit(
        conn,
        now,
        "secret.updated",
        Some(&meta.name),
        serde_json::json!({}),
    )
    .await?;
    Ok(Outcome::Done)
}

/// Labels as stored by `group_concat(label, char(10))`, sorted.
fn split_labels(joined: Option<String>) -> Vec<String> {
    let mut labels: Vec<String> = joined
        .map(|l| l.split('\n').map(str::to_string).collect())
        .unwrap_or_default();
    labels.sort();
    labels
}

fn version_from_row(r: &SqliteRow) -> Result<StoredVersion> {
    Ok(StoredVersion {
        id: r.try_get("version_id").map_err(db_error)?,
        labels: split_labels(r.try_get("labels").map_err(db_error)?),
        created: from_millis(r.try_get("created_at").map_err(db_error)?),
        sealed: SealedValue {
            ciphertext: r.try_get("ciphertext").map_err(db_error)?,
            wrapped_key: r.try_get("wrapped_key").map_err(db_error)?,
            algorithm: r.try_get("algorithm").map_err(db_error)?,
            key_id: r.try_get("key_id").map_err(db_error)?,
            digest: r.try_get("digest").map_err(db_error)?,
        },
    })
}

impl SqliteStore {
    async fn load_record(&self, lookup: &Lookup) -> Result<Option<SecretRecord>> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        let row = match lookup {
            Lookup::Name(name) => sqlx::query("SELECT * FROM secrets WHERE name = ?").bind(name),
            Lookup::Arn(arn) => sqlx::query("SELECT * FROM secrets WHERE arn = ?").bind(arn),
        }
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let meta = crate::rows::secret_meta(&row)?;
        // Labeled versions only: their number does not grow with deprecated ones.
        let rows = sqlx::query(
            "SELECT v.version_id, v.created_at, v.ciphertext, v.wrapped_key, v.algorithm, v.key_id, v.digest,
                    group_concat(l.label, char(10)) AS labels
             FROM labels l JOIN versions v ON v.secret_id = l.secret_id AND v.version_id = l.version_id
             WHERE l.secret_id = ? GROUP BY v.version_id ORDER BY v.seq",
        )
        .bind(meta.id)
        .fetch_all(&mut *conn)
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
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        let row = sqlx::query(
            "SELECT v.version_id, v.created_at, v.ciphertext, v.wrapped_key, v.algorithm, v.key_id, v.digest,
                    (SELECT group_concat(l.label, char(10)) FROM labels l
                      WHERE l.secret_id = v.secret_id AND l.version_id = v.version_id) AS labels
             FROM versions v WHERE v.secret_id = ? AND v.version_id = ?",
        )
        .bind(secret)
        .bind(version_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        row.as_ref().map(version_from_row).transpose()
    }

    async fn all_versions(&self, secret: i64) -> Result<Vec<VersionMeta>> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        let rows = sqlx::query(
            "SELECT v.version_id, v.created_at, v.source,
                    (SELECT group_concat(l.label, char(10)) FROM labels l
                      WHERE l.secret_id = v.secret_id AND l.version_id = v.version_id) AS labels
             FROM versions v WHERE v.secret_id = ? ORDER BY v.seq",
        )
        .bind(secret)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                Ok(VersionMeta {
                    id: r.try_get("version_id").map_err(db_error)?,
                    labels: split_labels(r.try_get("labels").map_err(db_error)?),
                    created: from_millis(r.try_get("created_at").map_err(db_error)?),
                    source: r.try_get("source").map_err(db_error)?,
                })
            })
            .collect()
    }

    async fn list_summaries(&self, include_deleted: bool) -> Result<Vec<SecretSummary>> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        let rows = if include_deleted {
            sqlx::query("SELECT * FROM secrets ORDER BY created_at, id")
        } else {
            sqlx::query("SELECT * FROM secrets WHERE deletion_date IS NULL ORDER BY created_at, id")
        }
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        let labels = sqlx::query("SELECT secret_id, version_id, label FROM labels ORDER BY label")
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        let mut stages: BTreeMap<i64, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for r in labels {
            let secret: i64 = r.try_get("secret_id").map_err(db_error)?;
            let version: String = r.try_get("version_id").map_err(db_error)?;
            let label: String = r.try_get("label").map_err(db_error)?;
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
                    .collect();
                Ok(SecretSummary { meta, stages })
            })
            .collect()
    }
}

impl Store for SqliteStore {
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

    fn access(&self) -> BoxFuture<'_, Result<AccessSnapshot>> {
        Box::pin(async move {
            let mut conn = self.readers.acquire().await.map_err(db_error)?;
            access::snapshot(&mut conn).await
        })
    }

    fn audit_entries(&self, after: i64) -> BoxFuture<'_, Result<Vec<(i64, String)>>> {
        Box::pin(async move {
            let mut conn = self.readers.acquire().await.map_err(db_error)?;
            access::audit_entries(&mut conn, after).await
        })
    }

    fn master_keys(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let mut conn = self.readers.acquire().await.map_err(db_error)?;
            sqlx::query_scalar("SELECT key_id FROM master_keys ORDER BY added_at")
                .fetch_all(&mut *conn)
                .await
                .map_err(db_error)
        })
    }

    fn list(&self, include_deleted: bool) -> BoxFuture<'_, Result<Vec<SecretSummary>>> {
        Box::pin(self.list_summaries(include_deleted))
    }

    fn rotation<'a>(
        &'a self,
        secret: i64,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<RotationRecord>>> {
        Box::pin(async move {
            let mut conn = self.readers.acquire().await.map_err(db_error)?;
            rotation::rotation(&mut conn, secret, token).await
        })
    }

    fn rotations(&self, secret: i64, limit: i64) -> BoxFuture<'_, Result<Vec<RotationRecord>>> {
        Box::pin(async move {
            let mut conn = self.readers.acquire().await.map_err(db_error)?;
            rotation::history(&mut conn, secret, limit).await
        })
    }

    fn running_rotations(&self) -> BoxFuture<'_, Result<Vec<RotationRecord>>> {
        Box::pin(async move {
            let mut conn = self.readers.acquire().await.map_err(db_error)?;
            rotation::running(&mut conn).await
        })
    }

    fn due_rotations(&self, now: DateTime<Utc>, limit: i64) -> BoxFuture<'_, Result<DueRotations>> {
        Box::pin(async move {
            let mut conn = self.readers.acquire().await.map_err(db_error)?;
            rotation::due(&mut conn, now, limit).await
        })
    }

    fn rotators(&self) -> BoxFuture<'_, Result<Vec<RotatorRow>>> {
        Box::pin(async move {
            let mut conn = self.readers.acquire().await.map_err(db_error)?;
            rotation::rotators(&mut conn).await
        })
    }

    fn events(&self, after: i64, limit: i64) -> BoxFuture<'_, Result<Vec<Event>>> {
        Box::pin(async move {
            let mut conn = self.readers.acquire().await.map_err(db_error)?;
            events::events(&mut conn, after, limit).await
        })
    }

    fn event_feed(&self) -> tokio::sync::watch::Receiver<i64> {
        self.feed.clone()
    }

    fn rules(&self) -> BoxFuture<'_, Result<Vec<RuleRow>>> {
        Box::pin(async move {
            let mut conn = self.readers.acquire().await.map_err(db_error)?;
            events::rules(&mut conn).await
        })
    }

    fn subscriptions(&self) -> BoxFuture<'_, Result<Vec<SubscriptionRow>>> {
        Box::pin(async move {
            let mut conn = self.readers.acquire().await.map_err(db_error)?;
            events::subscriptions(&mut conn).await
        })
    }

    fn deliveries<'a>(
        &'a self,
        subscription: Option<&'a str>,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<DeliveryRow>>> {
        Box::pin(async move {
            let mut conn = self.readers.acquire().await.map_err(db_error)?;
            events::deliveries(&mut conn, subscription, limit).await
        })
    }

    fn apply(&self, mutation: Mutation, now: DateTime<Utc>) -> BoxFuture<'_, Result<Outcome>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.writer
                .send(Job::Apply {
                    mutation: Box::new(mutation),
                    now,
                    reply,
                })
                .await
                .map_err(|_| Error::internal("The store is shutting down"))?;
            answer
                .await
                .map_err(|_| Error::internal("The store is shutting down"))?
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let (done, wait) = oneshot::channel();
            if self.writer.send(Job::Close(done)).await.is_ok() {
                let _ = wait.await;
            }
            self.readers.close().await;
        })
    }
}
