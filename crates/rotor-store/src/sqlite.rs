//! The embedded SQLite backend.
//!
//! WAL mode, `synchronous=FULL`, foreign keys on. Reads go through a small pool of
//! connections. Writes go to one writer task that owns its own connection: it takes
//! every mutation waiting in its queue (up to [`MAX_BATCH`]), applies each inside a
//! savepoint of one `BEGIN IMMEDIATE` transaction, commits once, and only then
//! answers each caller. One fsync then covers many writes (group commit), and a
//! failed mutation rolls back to its savepoint without touching the others.
//!
//! This file opens the database, migrates it and dispatches [`Store`]'s calls. The
//! writer task is in `writer`, the applying of each [`Mutation`] in `apply` (with
//! `puts`, `access`, `rotation` and `events` for theirs), and the reads of secrets
//! in `queries`.

use crate::errors::db_error;
use crate::{
    AccessSnapshot, BoxFuture, ConsumerRow, DeliveryRow, DueRotations, Event, Listing, Lookup,
    Mutation, Outcome, RotatorRow, RuleRow, SecretRecord, SecretSummary, Store, StoredVersion,
    SubscriptionRow, millis,
};
use chrono::{DateTime, Utc};
use rotor_core::model::{RotationRecord, VersionMeta};
use rotor_core::{Error, Result};
use sqlx::Connection as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

mod access;
mod apply;
pub mod backup;
mod consumers;
mod events;
mod puts;
mod queries;
mod rotation;
mod writer;

/// Most mutations committed in one transaction.
pub const MAX_BATCH: usize = 256;

/// A store in one SQLite database file.
pub struct SqliteStore {
    readers: SqlitePool,
    writer: mpsc::Sender<writer::Job>,
    feed: tokio::sync::watch::Receiver<i64>,
    /// An ephemeral store's directory, removed when the store is dropped.
    scratch: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// How much of the database each reading connection maps (address space: the pages
/// are the OS's page cache of the file, shared and reclaimable, not the process's).
const READER_MMAP_BYTES: u64 = 1 << 31;

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
        let writer = writer::spawn_writer(options.clone(), feed_tx).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(
                options
                    .read_only(true)
                    // Reads map the file instead of copying each page in with a
                    // system call: a read of a secret not in Rotor's own cache walks a
                    // few B-tree pages, and with a large store those are rarely in
                    // SQLite's small page cache (45% more such reads per second at
                    // 100,000 secrets). SQLite caps the size at its compile-time limit.
                    .pragma("mmap_size", READER_MMAP_BYTES.to_string()),
            )
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

/// Applies the migrations not yet applied, each in a transaction of its own.
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
        Box::pin(self.master_key_ids())
    }

    fn list<'a>(&'a self, listing: &'a Listing) -> BoxFuture<'a, Result<Vec<SecretSummary>>> {
        Box::pin(self.list_summaries(listing))
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

    fn consumers<'a>(&'a self, secrets: &'a [i64]) -> BoxFuture<'a, Result<Vec<ConsumerRow>>> {
        Box::pin(async move {
            let mut conn = self.readers.acquire().await.map_err(db_error)?;
            consumers::of(&mut conn, secrets).await
        })
    }

    fn apply(&self, mutation: Mutation, now: DateTime<Utc>) -> BoxFuture<'_, Result<Outcome>> {
        Box::pin(writer::submit(&self.writer, mutation, now))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            writer::stop(&self.writer).await;
            self.readers.close().await;
        })
    }
}
