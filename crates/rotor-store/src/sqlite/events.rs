//! The events outbox, replication rules and subscriptions on SQLite.

use crate::errors::db_error;
use crate::{DeliveryRow, Event, Outcome, RuleRow, SubscriptionRow, millis};
use chrono::{DateTime, Utc};
use rotor_core::{Error, ErrorKind, Result};
use sqlx::sqlite::SqliteConnection;

/// Appends one event in the current transaction.
pub(super) async fn emit(
    conn: &mut SqliteConnection,
    now: DateTime<Utc>,
    kind: &str,
    secret: Option<&str>,
    detail: serde_json::Value,
) -> Result<()> {
    sqlx::query("INSERT INTO events (at, kind, secret, detail) VALUES (?, ?, ?, ?)")
        .bind(millis(now))
        .bind(kind)
        .bind(secret)
        .bind(detail.to_string())
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Appends several events with one statement.
pub(super) async fn emit_many(
    conn: &mut SqliteConnection,
    events: &[(DateTime<Utc>, &str, &str, serde_json::Value)],
) -> Result<()> {
    for chunk in events.chunks(super::puts::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO events (at, kind, secret, detail) VALUES {}",
            vec!["(?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (at, kind, secret, detail) in chunk {
            q = q
                .bind(millis(*at))
                .bind(*kind)
                .bind(*secret)
                .bind(detail.to_string());
        }
        q.execute(&mut *conn).await.map_err(db_error)?;
    }
    Ok(())
}

/// The last event's sequence number (0 when there is none).
pub(super) async fn last(conn: &mut SqliteConnection) -> Result<i64> {
    sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)
}

pub(super) async fn events(
    conn: &mut SqliteConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<Event>> {
    sqlx::query("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?")
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?
        .iter()
        .map(crate::rows::event)
        .collect()
}

pub(super) async fn rules(conn: &mut SqliteConnection) -> Result<Vec<RuleRow>> {
    sqlx::query("SELECT * FROM replication_rules ORDER BY name")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?
        .iter()
        .map(crate::rows::rule)
        .collect()
}

pub(super) async fn subscriptions(conn: &mut SqliteConnection) -> Result<Vec<SubscriptionRow>> {
    sqlx::query("SELECT * FROM subscriptions ORDER BY name")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?
        .iter()
        .map(crate::rows::subscription)
        .collect()
}

pub(super) async fn deliveries(
    conn: &mut SqliteConnection,
    subscription: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRow>> {
    sqlx::query(
        "SELECT * FROM deliveries WHERE (? IS NULL OR subscription = ?) ORDER BY id DESC LIMIT ?",
    )
    .bind(subscription)
    .bind(subscription)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?
    .iter()
    .map(crate::rows::delivery)
    .collect()
}

fn taken(e: Error, what: String) -> Error {
    if e.kind == ErrorKind::ResourceExists {
        Error::exists(what)
    } else {
        e
    }
}

/// Applies an events, replication or subscription mutation.
pub(super) async fn apply(
    conn: &mut SqliteConnection,
    mutation: crate::Mutation,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    use crate::Mutation as M;
    match mutation {
        M::PutRule { rule } => put_rule(conn, rule, now).await,
        M::DeleteRule { name } => {
            let gone = sqlx::query("DELETE FROM replication_rules WHERE name = ?")
                .bind(&name)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?
                .rows_affected();
            if gone == 0 {
                return Err(Error::not_found(format!(
                    "No replication rule named {name} exists"
                )));
            }
            sqlx::query("UPDATE secrets SET replica_of = NULL WHERE replica_of = ?")
                .bind(&name)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            emit(
                conn,
                now,
                "replication.rule_removed",
                None,
                serde_json::json!({"rule": name}),
            )
            .await?;
            Ok(Outcome::Done)
        }
        M::MarkReplica { name, rule } => {
            sqlx::query("UPDATE secrets SET replica_of = ? WHERE name = ?")
                .bind(rule)
                .bind(&name)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            Ok(Outcome::Done)
        }
        M::MarkSourceDeleted { names, deleted } => {
            for name in names {
                let changed = sqlx::query(
                    "UPDATE secrets SET source_deleted = ? WHERE name = ? AND source_deleted <> ?",
                )
                .bind(i64::from(deleted))
                .bind(&name)
                .bind(i64::from(deleted))
                .execute(&mut *conn)
                .await
                .map_err(db_error)?
                .rows_affected();
                if changed > 0 {
                    let kind = if deleted {
                        "replication.source_deleted"
                    } else {
                        "replication.source_restored"
                    };
                    emit(conn, now, kind, Some(&name), serde_json::json!({})).await?;
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
            emit(conn, now, &kind, secret.as_deref(), detail).await?;
            Ok(Outcome::Done)
        }
        M::PutSubscription { subscription: s } => put_subscription(conn, s, now).await,
        M::DeleteSubscription { name } => {
            sqlx::query("DELETE FROM deliveries WHERE subscription = ?")
                .bind(&name)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            let gone = sqlx::query("DELETE FROM subscriptions WHERE name = ?")
                .bind(&name)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?
                .rows_affected();
            if gone == 0 {
                return Err(Error::not_found(format!(
                    "No subscription named {name} exists"
                )));
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
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&subscription)
            .bind(seq)
            .bind(attempt)
            .bind(&status)
            .bind(millis(now))
            .bind(error)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
            if advance {
                sqlx::query("UPDATE subscriptions SET cursor = MAX(cursor, ?) WHERE name = ?")
                    .bind(seq)
                    .bind(&subscription)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_error)?;
            }
            Ok(Outcome::Done)
        }
        _ => Err(Error::internal("not an events mutation")),
    }
}

/// Adds a replication rule.
async fn put_rule(
    conn: &mut SqliteConnection,
    rule: RuleRow,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    sqlx::query(
        "INSERT INTO replication_rules (name, kind, source, destination, template, created_at, created_by)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&rule.name)
    .bind(&rule.kind)
    .bind(&rule.source)
    .bind(&rule.destination)
    .bind(&rule.template)
    .bind(millis(now))
    .bind(&rule.created_by)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        taken(db_error(e), format!("A replication rule named {} already exists", rule.name))
    })?;
    emit(
        conn,
        now,
        "replication.rule_added",
        None,
        serde_json::json!({"rule": rule.name, "kind": rule.kind,
                           "source": rule.source, "destination": rule.destination}),
    )
    .await?;
    Ok(Outcome::Done)
}

/// Adds a subscription.
async fn put_subscription(
    conn: &mut SqliteConnection,
    s: SubscriptionRow,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let key = s.key.as_ref();
    let kinds = serde_json::to_string(&s.kinds)
        .map_err(|_| Error::internal("event kinds could not be encoded"))?;
    sqlx::query(
        "INSERT INTO subscriptions (name, prefix, kinds, target_kind, target, key_ciphertext,
         key_wrapped, key_algorithm, key_id, cursor, created_at, created_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        taken(
            db_error(e),
            format!("A subscription named {} already exists", s.name),
        )
    })?;
    Ok(Outcome::Done)
}
