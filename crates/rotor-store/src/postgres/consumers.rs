//! The consumer registry on PostgreSQL: reports (registrations, heartbeats, reads),
//! a consumer leaving, pruning, and reading a secret's consumers.

use super::db_error;
use super::writer::{Change, Tx, db};
use crate::{ConsumerRow, Outcome, millis};
use chrono::{DateTime, Utc};
use rotor_core::Result;
use sqlx::postgres::PgPool;

/// Upserts the reports in one statement; a row of a secret that is gone, or of a
/// consumer id another principal holds, changes nothing.
pub(super) async fn report(c: &mut Change, rows: Vec<ConsumerRow>) -> Tx<Outcome> {
    let mut secret = Vec::with_capacity(rows.len());
    let mut consumer = Vec::with_capacity(rows.len());
    let mut kind = Vec::with_capacity(rows.len());
    let mut version = Vec::with_capacity(rows.len());
    let mut principal = Vec::with_capacity(rows.len());
    let mut host = Vec::with_capacity(rows.len());
    let mut seen = Vec::with_capacity(rows.len());
    let mut expires = Vec::with_capacity(rows.len());
    for r in rows {
        secret.push(r.secret);
        consumer.push(r.consumer);
        kind.push(r.kind.as_str());
        version.push(r.version_id);
        principal.push(r.principal);
        host.push(r.host);
        seen.push(millis(r.last_seen));
        expires.push(r.expires.map(millis));
    }
    // One row per (secret, consumer) per statement: ON CONFLICT may not touch a row twice.
    sqlx::query(
        "INSERT INTO consumers (secret_id, consumer, kind, version_id, principal, host,
                                first_seen, last_seen, expires_at)
         SELECT DISTINCT ON (u.s, u.c) u.s, u.c, u.k, u.v, u.p, u.h, u.t, u.t, u.e
         FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::bigint[], $8::bigint[]) WITH ORDINALITY AS u(s, c, k, v, p, h, t, e, n)
         WHERE EXISTS (SELECT 1 FROM secrets WHERE id = u.s)
         ORDER BY u.s, u.c, u.n DESC
         ON CONFLICT (secret_id, consumer) DO UPDATE SET
            kind = excluded.kind, version_id = excluded.version_id, host = excluded.host,
            last_seen = excluded.last_seen, expires_at = excluded.expires_at
         WHERE consumers.principal = excluded.principal
           AND consumers.last_seen <= excluded.last_seen",
    )
    .bind(&secret)
    .bind(&consumer)
    .bind(&kind)
    .bind(&version)
    .bind(&principal)
    .bind(&host)
    .bind(&seen)
    .bind(&expires)
    .execute(c.conn())
    .await
    .map_err(db)?;
    Ok(Outcome::Done)
}

/// A registered consumer of `secret` leaves: its lease ends now.
pub(super) async fn end(
    c: &mut Change,
    secret: i64,
    consumer: &str,
    principal: &str,
    now: DateTime<Utc>,
) -> Tx<Outcome> {
    sqlx::query(
        "UPDATE consumers SET expires_at = $1 WHERE secret_id = $2 AND consumer = $3
           AND principal = $4 AND kind = 'registered'",
    )
    .bind(millis(now))
    .bind(secret)
    .bind(consumer)
    .bind(principal)
    .execute(c.conn())
    .await
    .map_err(db)?;
    Ok(Outcome::Done)
}

/// Forgets consumers gone, or readers last seen, before `before`.
pub(super) async fn prune(c: &mut Change, before: DateTime<Utc>) -> Tx<Outcome> {
    sqlx::query(
        "DELETE FROM consumers WHERE (expires_at IS NOT NULL AND expires_at < $1)
            OR (expires_at IS NULL AND last_seen < $1)",
    )
    .bind(millis(before))
    .execute(c.conn())
    .await
    .map_err(db)?;
    Ok(Outcome::Done)
}

/// The consumers of `secrets`, by secret then consumer id.
pub(super) async fn of(pool: &PgPool, secrets: &[i64]) -> Result<Vec<ConsumerRow>> {
    let rows = sqlx::query(
        "SELECT * FROM consumers WHERE secret_id = ANY($1) ORDER BY secret_id, consumer",
    )
    .bind(secrets)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    rows.iter().map(crate::rows::consumer).collect()
}
