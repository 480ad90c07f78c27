//! The consumer registry on SQLite: reports (registrations, heartbeats, reads), a
//! consumer leaving, pruning, and reading a secret's consumers.

use crate::errors::db_error;
use crate::{ConsumerRow, Outcome, millis};
use chrono::{DateTime, Utc};
use rotor_core::Result;
use sqlx::sqlite::SqliteConnection;

/// Upserts each report; a row of a secret that is gone, or of a consumer id another
/// principal holds, changes nothing.
pub(super) async fn report(conn: &mut SqliteConnection, rows: Vec<ConsumerRow>) -> Result<Outcome> {
    for r in rows {
        sqlx::query(
            "INSERT INTO consumers (secret_id, consumer, kind, version_id, principal, host,
                                    first_seen, last_seen, expires_at)
             SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM secrets WHERE id = ?)
             ON CONFLICT (secret_id, consumer) DO UPDATE SET
                kind = excluded.kind, version_id = excluded.version_id, host = excluded.host,
                last_seen = excluded.last_seen, expires_at = excluded.expires_at
             WHERE consumers.principal = excluded.principal
               AND consumers.last_seen <= excluded.last_seen",
        )
        .bind(r.secret)
        .bind(&r.consumer)
        .bind(r.kind.as_str())
        .bind(&r.version_id)
        .bind(&r.principal)
        .bind(&r.host)
        .bind(millis(r.last_seen))
        .bind(millis(r.last_seen))
        .bind(r.expires.map(millis))
        .bind(r.secret)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    }
    Ok(Outcome::Done)
}

/// A registered consumer of `secret` leaves: its lease ends now.
pub(super) async fn end(
    conn: &mut SqliteConnection,
    secret: i64,
    consumer: &str,
    principal: &str,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    sqlx::query(
        "UPDATE consumers SET expires_at = ? WHERE secret_id = ? AND consumer = ?
           AND principal = ? AND kind = 'registered'",
    )
    .bind(millis(now))
    .bind(secret)
    .bind(consumer)
    .bind(principal)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(Outcome::Done)
}

/// Forgets consumers gone, or readers last seen, before `before`.
pub(super) async fn prune(conn: &mut SqliteConnection, before: DateTime<Utc>) -> Result<Outcome> {
    sqlx::query(
        "DELETE FROM consumers WHERE (expires_at IS NOT NULL AND expires_at < ?)
            OR (expires_at IS NULL AND last_seen < ?)",
    )
    .bind(millis(before))
    .bind(millis(before))
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(Outcome::Done)
}

/// The consumers of `secrets`, by secret then consumer id.
pub(super) async fn of(conn: &mut SqliteConnection, secrets: &[i64]) -> Result<Vec<ConsumerRow>> {
    let mut out = Vec::new();
    for secret in secrets {
        let rows = sqlx::query("SELECT * FROM consumers WHERE secret_id = ? ORDER BY consumer")
            .bind(secret)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        for row in &rows {
            out.push(crate::rows::consumer(row)?);
        }
    }
    Ok(out)
}
