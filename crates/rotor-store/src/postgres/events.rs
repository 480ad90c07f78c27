//! The events outbox, replication rules and subscriptions on PostgreSQL, and how
//! each node's event feed learns of events committed on other nodes.

use super::writer::{Change, Tx, db, taken};
use super::{FEED_POLL, db_error};
use crate::{DeliveryRow, Event, Outcome, RuleRow, SubscriptionRow, millis};
use chrono::{DateTime, Utc};
use rotor_core::{Error, Result};
use sqlx::postgres::{PgListener, PgPool};
use std::sync::Arc;
use tokio::sync::watch;

/// The channel each commit with events notifies, with the last `seq` as payload.
const CHANNEL: &str = "rotor_events";

/// An event appended by a mutation, numbered when the transaction is about to commit.
pub(super) struct Pending {
    pub(super) at: i64,
    pub(super) kind: String,
    pub(super) secret: Option<String>,
    pub(super) detail: String,
}

/// The transaction's events as columns, to bind to [`numbering`]'s parameters.
pub(super) struct Columns {
    count: i64,
    at: Vec<i64>,
    kind: Vec<String>,
    secret: Vec<Option<String>>,
    detail: Vec<String>,
}

impl Columns {
    /// Takes the events `c` appended so far.
    pub(super) fn take(c: &mut Change) -> Columns {
        let events = std::mem::take(&mut c.events);
        let mut columns = Columns {
            count: events.len() as i64,
            at: Vec::with_capacity(events.len()),
            kind: Vec::with_capacity(events.len()),
            secret: Vec::with_capacity(events.len()),
            detail: Vec::with_capacity(events.len()),
        };
        for e in events {
            columns.at.push(e.at);
            columns.kind.push(e.kind);
            columns.secret.push(e.secret);
            columns.detail.push(e.detail);
        }
        columns
    }

    /// Whether there are no events.
    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Binds the columns, in [`numbering`]'s order, after `query`'s other parameters.
    pub(super) fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(self.count)
            .bind(CHANNEL)
            .bind(&self.at)
            .bind(&self.kind)
            .bind(&self.secret)
            .bind(&self.detail)
    }
}

/// The part of a statement that numbers and writes events, its parameters from
/// `$first` on (bound by [`Columns::bind`]): common table expressions `bumped` and
/// `written`, to end a `WITH`, then the statement's final `SELECT`, which returns the
/// last number and queues the notification.
pub(super) fn numbering(first: usize) -> String {
    let p = |i: usize| format!("${}", first + i);
    format!(
        "bumped AS (UPDATE event_counter SET last = last + {n} RETURNING last),
         written AS (
           INSERT INTO events (seq, at, kind, secret, detail)
           SELECT b.last - {n} + e.n, e.at, e.kind, e.secret, e.detail
           FROM bumped b,
                UNNEST({at}::bigint[], {kind}::text[], {secret}::text[], {detail}::text[])
                  WITH ORDINALITY AS e (at, kind, secret, detail, n))
         SELECT last, pg_notify({channel}, last::text) FROM bumped",
        n = p(0),
        channel = p(1),
        at = p(2),
        kind = p(3),
        secret = p(4),
        detail = p(5),
    )
}

/// Numbers and writes the transaction's events, and queues a notification sent when
/// it commits. Returns the last number, if there were events. The counter's row stays
/// locked until the transaction ends: transactions with events commit one after
/// another, in `seq` order, so a reader never sees a number before a smaller one.
pub(super) async fn flush(c: &mut Change) -> Tx<Option<i64>> {
    if c.events.is_empty() {
        return Ok(None);
    }
    let columns = Columns::take(c);
    // One statement (one round trip while the counter is locked): take the numbers,
    // write the events under them, queue the notification.
    static SQL: std::sync::LazyLock<Arc<str>> =
        std::sync::LazyLock::new(|| format!("WITH {}", numbering(1)).into());
    let row = columns
        .bind(sqlx::query(sqlx::AssertSqlSafe(SQL.clone())))
        .fetch_one(c.conn())
        .await
        .map_err(db)?;
    Ok(Some(super::queries::get(&row, "last")?))
}

/// The last event's sequence number (0 when there is none).
pub(super) async fn last(pool: &PgPool) -> Result<i64> {
    sqlx::query_scalar("SELECT last FROM event_counter")
        .fetch_one(pool)
        .await
        .map_err(db_error)
}

/// Moves the feed on to `seq`, never back: notifications and polls may arrive late.
pub(super) fn advance(feed: &watch::Sender<i64>, seq: i64) {
    feed.send_if_modified(|last| {
        let newer = seq > *last;
        if newer {
            *last = seq;
        }
        newer
    });
}

/// Follows other nodes' commits through `LISTEN`. Ends when the pool closes.
pub(super) async fn listen(pool: PgPool, feed: Arc<watch::Sender<i64>>) {
    let mut warned = false;
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                if !std::mem::replace(&mut warned, true) {
                    tracing::warn!(error = %e, "cannot listen for events; polling only");
                }
                tokio::time::sleep(FEED_POLL * 10).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            if !std::mem::replace(&mut warned, true) {
                tracing::warn!(error = %e, "cannot listen for events; polling only");
            }
            tokio::time::sleep(FEED_POLL * 10).await;
            continue;
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    if let Ok(seq) = n.payload().parse() {
                        advance(&feed, seq);
                    }
                }
                // The connection was lost and made again: what was sent in between is
                // gone, so read the counter now rather than at the next poll.
                Ok(None) => {
                    if let Ok(seq) = last(&pool).await {
                        advance(&feed, seq);
                    }
                }
                Err(sqlx::Error::PoolClosed) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "event listener failed; starting again");
                    break;
                }
            }
        }
    }
}

/// Reads the counter every [`FEED_POLL`], in case a notification was lost. Ends when
/// the pool closes.
pub(super) async fn poll(pool: PgPool, feed: Arc<watch::Sender<i64>>) {
    let mut every = tokio::time::interval(FEED_POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        match sqlx::query_scalar::<_, i64>("SELECT last FROM event_counter")
            .fetch_one(&pool)
            .await
        {
            Ok(seq) => advance(&feed, seq),
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => tracing::debug!(error = %e, "cannot read the event counter"),
        }
    }
}

pub(super) async fn events(pool: &PgPool, after: i64, limit: i64) -> Result<Vec<Event>> {
    sqlx::query("SELECT * FROM events WHERE seq > $1 ORDER BY seq LIMIT $2")
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(crate::rows::event)
        .collect()
}

/// Every replication rule, by name.
pub(super) async fn rules(pool: &PgPool) -> Result<Vec<RuleRow>> {
    let mut all = sqlx::query("SELECT * FROM replication_rules")
        .fetch_all(pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(crate::rows::rule)
        .collect::<Result<Vec<_>>>()?;
    // By byte, as SQLite orders them, whatever the database's collation.
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// Every subscription, by name.
pub(super) async fn subscriptions(pool: &PgPool) -> Result<Vec<SubscriptionRow>> {
    let mut all = sqlx::query("SELECT * FROM subscriptions")
        .fetch_all(pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(crate::rows::subscription)
        .collect::<Result<Vec<_>>>()?;
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

pub(super) async fn deliveries(
    pool: &PgPool,
    subscription: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRow>> {
    sqlx::query(
        "SELECT * FROM deliveries WHERE ($1::text IS NULL OR subscription = $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(subscription)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(db_error)?
    .iter()
    .map(crate::rows::delivery)
    .collect()
}

/// Applies an events, replication or subscription mutation.
pub(super) async fn apply(
    c: &mut Change,
    mutation: crate::Mutation,
    now: DateTime<Utc>,
) -> Tx<Outcome> {
    use crate::Mutation as M;
    match mutation {
        M::PutRule { rule } => put_rule(c, rule, now).await,
        M::DeleteRule { name } => {
            let gone = sqlx::query("DELETE FROM replication_rules WHERE name = $1")
                .bind(&name)
                .execute(c.conn())
                .await
                .map_err(db)?
                .rows_affected();
            if gone == 0 {
                return Err(
                    Error::not_found(format!("No replication rule named {name} exists")).into(),
                );
            }
            sqlx::query("UPDATE secrets SET replica_of = NULL WHERE replica_of = $1")
                .bind(&name)
                .execute(c.conn())
                .await
                .map_err(db)?;
            c.emit(
                now,
                "replication.rule_removed",
                None,
                serde_json::json!({"rule": name}),
            );
            Ok(Outcome::Done)
        }
        M::MarkReplica { name, rule } => {
            sqlx::query("UPDATE secrets SET replica_of = $1 WHERE name = $2")
                .bind(rule)
                .bind(&name)
                .execute(c.conn())
                .await
                .map_err(db)?;
            Ok(Outcome::Done)
        }
        M::MarkSourceDeleted { names, deleted } => {
            for name in names {
                // The row lock and re-check of `UPDATE` make exactly one of two nodes
                // marking the same destination see a change and emit the event.
                let changed = sqlx::query(
                    "UPDATE secrets SET source_deleted = $1 WHERE name = $2 AND source_deleted <> $1",
                )
                .bind(i64::from(deleted))
                .bind(&name)
                .execute(c.conn())
                .await
                .map_err(db)?
                .rows_affected();
                if changed > 0 {
                    let kind = if deleted {
                        "replication.source_deleted"
                    } else {
                        "replication.source_restored"
                    };
                    c.emit(now, kind, Some(&name), serde_json::json!({}));
                }
            }
            Ok(Outcome::Done)
        }
        M::AppendEvent {
            kind,
            secret,
            detail,
        } => {
            let detail: serde_json::Value = serde_json::from_str(&detail)
                .map_err(|_| Error::internal("event details are not valid JSON"))?;
            c.emit(now, &kind, secret.as_deref(), detail);
            Ok(Outcome::Done)
        }
        M::PutSubscription { subscription: s } => put_subscription(c, s, now).await,
        M::DeleteSubscription { name } => {
            sqlx::query("DELETE FROM deliveries WHERE subscription = $1")
                .bind(&name)
                .execute(c.conn())
                .await
                .map_err(db)?;
            let gone = sqlx::query("DELETE FROM subscriptions WHERE name = $1")
                .bind(&name)
                .execute(c.conn())
                .await
                .map_err(db)?
                .rows_affected();
            if gone == 0 {
                return Err(
                    Error::not_found(format!("No subscription named {name} exists")).into(),
                );
            }
            Ok(Outcome::Done)
        }
        M::RecordDelivery {
            subscription,
            seq,
            attempt,
            status,
            error,
            advance,
        } => {
            sqlx::query(
                "INSERT INTO deliveries (subscription, seq, attempt, status, at, error)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&subscription)
            .bind(seq)
            .bind(attempt)
            .bind(&status)
            .bind(millis(now))
            .bind(error)
            .execute(c.conn())
            .await
            .map_err(db)?;
            if advance {
                sqlx::query(
                    "UPDATE subscriptions SET cursor = GREATEST(cursor, $1) WHERE name = $2",
                )
                .bind(seq)
                .bind(&subscription)
                .execute(c.conn())
                .await
                .map_err(db)?;
            }
            Ok(Outcome::Done)
        }
        _ => Err(Error::internal("not an events mutation").into()),
    }
}

/// Adds a replication rule.
async fn put_rule(c: &mut Change, rule: RuleRow, now: DateTime<Utc>) -> Tx<Outcome> {
    sqlx::query(
        "INSERT INTO replication_rules (name, kind, source, destination, template, created_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&rule.name)
    .bind(&rule.kind)
    .bind(&rule.source)
    .bind(&rule.destination)
    .bind(&rule.template)
    .bind(millis(now))
    .bind(&rule.created_by)
    .execute(c.conn())
    .await
    .map_err(|e| {
        taken(db(e), || {
            format!("A replication rule named {} already exists", rule.name)
        })
    })?;
    c.emit(
        now,
        "replication.rule_added",
        None,
        serde_json::json!({"rule": rule.name, "kind": rule.kind,
                           "source": rule.source, "destination": rule.destination}),
    );
    Ok(Outcome::Done)
}

/// Adds a subscription.
async fn put_subscription(c: &mut Change, s: SubscriptionRow, now: DateTime<Utc>) -> Tx<Outcome> {
    let key = s.key.as_ref();
    let kinds = serde_json::to_string(&s.kinds)
        .map_err(|_| Error::internal("event kinds could not be encoded"))?;
    sqlx::query(
        "INSERT INTO subscriptions (name, prefix, kinds, target_kind, target, key_ciphertext,
         key_wrapped, key_algorithm, key_id, cursor, created_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&s.name)
    .bind(&s.prefix)
    .bind(kinds)
    .bind(&s.target_kind)
    .bind(&s.target)
    .bind(key.map(|k| k.ciphertext.clone()))
    .bind(key.map(|k| k.wrapped_key.clone()))
    .bind(key.map(|k| k.algorithm.clone()))
    .bind(key.map(|k| k.key_id.clone()))
    .bind(s.cursor)
    .bind(millis(now))
    .bind(&s.created_by)
    .execute(c.conn())
    .await
    .map_err(|e| {
        taken(db(e), || {
            format!("A subscription named {} already exists", s.name)
        })
    })?;
    Ok(Outcome::Done)
}
