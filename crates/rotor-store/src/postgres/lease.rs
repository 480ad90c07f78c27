//! Leases on PostgreSQL: the scheduler's, with its fencing epoch. Times come from
//! the database's clock, so the nodes' clocks need not agree.

use super::writer::{Change, Tx, db};
use crate::Outcome;
use rotor_core::Error;

/// The database's clock, in milliseconds since the epoch.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// Refuses a save of a rotation advanced under a scheduler lease that has since
/// changed hands.
pub(super) async fn fence(c: &mut Change, epoch: i64) -> Tx<()> {
    if epoch == 0 {
        return Ok(());
    }
    // FOR SHARE: a takeover (which updates the row) waits for this save, or this
    // save sees the new epoch.
    let current: Option<i64> =
        sqlx::query_scalar("SELECT epoch FROM leases WHERE name = $1 FOR SHARE")
            .bind(crate::SCHEDULER_LEASE)
            .fetch_optional(c.conn())
            .await
            .map_err(db)?;
    if current == Some(epoch) {
        Ok(())
    } else {
        Err(Error::invalid_request(format!(
            "Fenced: this rotation was advanced under scheduler epoch {epoch}, and the lease is now at {}",
            current.unwrap_or(0)
        ))
        .into())
    }
}

/// Takes, renews or reports lease `name`.
pub(super) async fn lease(c: &mut Change, name: &str, holder: &str, ttl_ms: i64) -> Tx<Outcome> {
    sqlx::query(
        "INSERT INTO leases (name, holder, epoch, expires_at) VALUES ($1, '', 0, 0)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .execute(c.conn())
    .await
    .map_err(db)?;
    let sql = format!(
        "SELECT holder, epoch, expires_at, {NOW_MS} AS now FROM leases WHERE name = $1 FOR UPDATE"
    );
    let (current, epoch, expires, now): (String, i64, i64, i64) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_one(c.conn())
            .await
            .map_err(db)?;
    let (held, epoch) = if current == holder && expires > now {
        (true, epoch)
    } else if expires <= now {
        (true, epoch + 1)
    } else {
        return Ok(Outcome::Lease { held: false, epoch });
    };
    sqlx::query("UPDATE leases SET holder = $1, epoch = $2, expires_at = $3 WHERE name = $4")
        .bind(holder)
        .bind(epoch)
        .bind(now + ttl_ms)
        .bind(name)
        .execute(c.conn())
        .await
        .map_err(db)?;
    Ok(Outcome::Lease { held, epoch })
}

/// Expires lease `name` if `holder` holds it.
pub(super) async fn release(c: &mut Change, name: &str, holder: &str) -> Tx<Outcome> {
    sqlx::query("UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2")
        .bind(name)
        .bind(holder)
        .execute(c.conn())
        .await
        .map_err(db)?;
    Ok(Outcome::Done)
}
