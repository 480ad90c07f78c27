//! The PostgreSQL backend, for several `rotor server` nodes sharing one database.
//!
//! Mutations are committed in batches (group commit, see `writer`): a few lanes per
//! node each take the mutations waiting and run them in one transaction (`READ
//! COMMITTED`), each in a savepoint; a secret's mutations always take the same lane.
//! A batch first locks all the secrets it changes, in id order. A mutation about a
//! secret first locks the secret's row (`SELECT ... FOR UPDATE`), so
//! writers on every node take turns per secret, and what a writer reads after taking
//! the lock (labels, version digests, counters) is what the previous holder committed:
//! the rules of [`LabelBoard`](rotor_core::label::LabelBoard) and "same token, same value is a replay" hold across
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
//!
//! This file connects, migrates and dispatches [`Store`]'s calls. The transaction and
//! its retries are in `writer`, the applying of each [`Mutation`] in `apply` (with
//! `puts`, `access`, `rotation`, `lease` and `events` for theirs), and the reads of
//! secrets in `queries`.

use crate::{
    AccessSnapshot, BoxFuture, ConsumerRow, DeliveryRow, DueRotations, Event, Listing, Lookup,
    Mutation, Outcome, RotatorRow, RuleRow, SecretRecord, SecretSummary, Store, StoredVersion,
    SubscriptionRow, millis,
};
use chrono::{DateTime, Utc};
use rotor_core::model::{RotationRecord, VersionMeta};
use rotor_core::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use forward::{ForwardConfig, ForwardStats, WRITER_LEASE};

mod access;
mod apply;
mod consumers;
mod events;
mod forward;
mod lease;
mod puts;
mod queries;
mod rotation;
mod writer;

/// How many times a mutation runs before a conflict is reported as a failure.
pub const MAX_ATTEMPTS: u32 = 6;

/// How often each node reads the event counter, in case a notification was lost.
pub const FEED_POLL: Duration = Duration::from_millis(500);

/// Connections per node.
const POOL_SIZE: u32 = 10;

/// Write lanes per node (each holds a connection while it commits a batch).
const LANES: usize = 1;

/// Most mutations one lane commits in one transaction.
pub const MAX_BATCH: usize = 64;

/// A store in a PostgreSQL database, shared by any number of nodes.
pub struct PgStore {
    pool: PgPool,
    feed: Arc<watch::Sender<i64>>,
    /// Where mutations are committed.
    lanes: Arc<writer::Lanes>,
    /// Where puts go when another node is the writer.
    forward: Option<forward::Forward>,
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
        self.lanes.abort();
        if let Some(forward) = &self.forward {
            forward.abort();
        }
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

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`),
    /// applies migrations, and starts following events.
    pub async fn connect(url: &str) -> Result<PgStore> {
        PgStore::connect_with(url, None).await
    }

    /// [`PgStore::connect`], forwarding puts to the writer node when `forward` is
    /// given ([`ForwardConfig`]; see `forward`).
    pub async fn connect_with(url: &str, forward: Option<ForwardConfig>) -> Result<PgStore> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| Error::invalid_parameter(format!("Not a PostgreSQL URL: {e}")))?;
        // Every statement planned with the statistics and size of its tables at the
        // time it runs. A generic plan is fixed after a statement's fifth run on a
        // connection: made while a new store was nearly empty, it scans whole tables
        // (the foreign key checks of every label moved among them, a fifth of a
        // millisecond each at a thousand versions a secret) until autovacuum's next
        // analyze, and at two thousand writes a second that halved the throughput.
        let options = options.options([("plan_cache_mode", "force_custom_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options.clone())
            .await
            .map_err(|e| Error::internal(format!("Cannot connect to PostgreSQL: {e}")))?;
        migrate(&pool).await?;
        let last = events::last(&pool).await?;
        let feed = Arc::new(watch::Sender::new(last));
        let followers = vec![
            tokio::spawn(events::listen(pool.clone(), feed.clone())),
            tokio::spawn(events::poll(pool.clone(), feed.clone())),
        ];
        // The lanes commit through connections of their own: taking one from the
        // shared pool at each batch waited behind the reads (a millisecond a batch
        // under load, a sixth of it).
        let lane_pool = PgPoolOptions::new()
            .max_connections(LANES as u32)
            .min_connections(LANES as u32)
            .connect_with(options)
            .await
            .map_err(|e| Error::internal(format!("Cannot connect to PostgreSQL: {e}")))?;
        let lanes = Arc::new(writer::Lanes::start(&lane_pool, &feed, LANES));
        let forward = match forward {
            Some(config) => Some(forward::Forward::start(config, &pool, &lanes, &feed).await?),
            None => None,
        };
        Ok(PgStore {
            pool,
            feed,
            lanes,
            forward,
            followers,
        })
    }

    /// What write forwarding has done, when this node takes part in it.
    pub fn forwarding(&self) -> Option<ForwardStats> {
        self.forward.as_ref().map(forward::Forward::stats)
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
                    && writer::sqlstate(&e)
                        .is_some_and(|c| MIGRATION_RETRYABLE.contains(&c.as_str())) =>
            {
                tracing::debug!(error = %e, "migration raced another node; trying again");
                tokio::time::sleep(writer::backoff(attempt)).await;
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
        Box::pin(self.master_key_ids())
    }

    fn access(&self) -> BoxFuture<'_, Result<AccessSnapshot>> {
        Box::pin(access::snapshot(&self.pool))
    }

    fn audit_entries(&self, after: i64) -> BoxFuture<'_, Result<Vec<(i64, String)>>> {
        Box::pin(access::audit_entries(&self.pool, after))
    }

    fn list<'a>(&'a self, listing: &'a Listing) -> BoxFuture<'a, Result<Vec<SecretSummary>>> {
        Box::pin(self.list_summaries(listing))
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

    fn consumers<'a>(&'a self, secrets: &'a [i64]) -> BoxFuture<'a, Result<Vec<ConsumerRow>>> {
        Box::pin(consumers::of(&self.pool, secrets))
    }

    fn apply(&self, mutation: Mutation, now: DateTime<Utc>) -> BoxFuture<'_, Result<Outcome>> {
        Box::pin(self.apply_mutation(mutation, now))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Mutations queued and under way commit first.
            if let Some(forward) = &self.forward {
                forward.stop().await;
            }
            self.lanes.stop().await;
            for task in &self.followers {
                task.abort();
            }
            self.pool.close().await;
        })
    }
}
