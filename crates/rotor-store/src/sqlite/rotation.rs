//! Rotation on SQLite: each secret's schedule columns, the rotation records and the
//! registered rotators.

use super::apply::{board, meta_by_id, save_labels};
use crate::errors::{db_error, refuse_if_deleted};
use crate::rows::{adoption_json, gates_json, rotation_record, select_rotations, steps_json};
use crate::{DueRotations, Outcome, RotatorRow, SealedValue, from_millis, millis};
use chrono::{DateTime, Utc};
use rotor_core::label::AWSPENDING;
use rotor_core::model::{RotationMeta, RotationRecord, RotationStatus};
use rotor_core::{Error, Result};
use sqlx::Row as _;
use sqlx::sqlite::{SqliteConnection, SqliteRow};

fn get<'r, T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>>(
    row: &'r SqliteRow,
    column: &str,
) -> Result<T> {
    row.try_get(column).map_err(db_error)
}

async fn save_meta(conn: &mut SqliteConnection, secret: i64, r: &RotationMeta) -> Result<()> {
    sqlx::query(
        "UPDATE secrets SET rotation_enabled = ?, rotator = ?, rotation_rules = ?,
         last_rotated_at = ?, next_rotation_at = ?, rotation_due_at = ?, rotation_failed = ?,
         rotation_principal = ?, rotation_adoption = ? WHERE id = ?",
    )
    .bind(i64::from(r.enabled))
    .bind(&r.rotator)
    .bind(&r.rules)
    .bind(r.last_rotated.map(millis))
    .bind(r.next_rotation.map(millis))
    .bind(r.due.map(millis))
    .bind(&r.failed)
    .bind(&r.principal)
    .bind(adoption_json(&r.adoption)?)
    .bind(secret)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Refuses a save of a rotation advanced under a scheduler lease that has since
/// changed hands.
async fn fence(conn: &mut SqliteConnection, epoch: i64) -> Result<()> {
    if epoch == 0 {
        return Ok(());
    }
    let current: Option<i64> = sqlx::query_scalar("SELECT epoch FROM leases WHERE name = ?")
        .bind(crate::SCHEDULER_LEASE)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
    if current == Some(epoch) {
        Ok(())
    } else {
        Err(Error::invalid_request(format!(
            "Fenced: this rotation was advanced under scheduler epoch {epoch}, and the lease is now at {}",
            current.unwrap_or(0)
        )))
    }
}

/// Takes, renews or reports lease `name`.
async fn lease(
    conn: &mut SqliteConnection,
    name: &str,
    holder: &str,
    ttl_ms: i64,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let now = millis(now);
    let row: Option<(String, i64, i64)> =
        sqlx::query_as("SELECT holder, epoch, expires_at FROM leases WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?;
    let (held, epoch) = match row {
        None => {
            sqlx::query("INSERT INTO leases (name, holder, epoch, expires_at) VALUES (?, ?, 1, ?)")
                .bind(name)
                .bind(holder)
                .bind(now + ttl_ms)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            (true, 1)
        }
        Some((h, epoch, expires)) if h == holder && expires > now => {
            sqlx::query("UPDATE leases SET expires_at = ? WHERE name = ?")
                .bind(now + ttl_ms)
                .bind(name)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            (true, epoch)
        }
        Some((_, epoch, expires)) if expires <= now => {
            sqlx::query("UPDATE leases SET holder = ?, epoch = ?, expires_at = ? WHERE name = ?")
                .bind(holder)
                .bind(epoch + 1)
                .bind(now + ttl_ms)
                .bind(name)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            (true, epoch + 1)
        }
        Some((_, epoch, _)) => (false, epoch),
    };
    Ok(Outcome::Lease { held, epoch })
}

async fn start(
    conn: &mut SqliteConnection,
    r: RotationRecord,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    fence(conn, r.epoch).await?;
    let meta = meta_by_id(conn, r.secret).await?;
    refuse_if_deleted(&meta)?;
    if rotation(conn, r.secret, &r.token).await?.is_some() {
        return Ok(Outcome::Rotation { replayed: true });
    }
    let running: Option<String> = sqlx::query_scalar(
        "SELECT token FROM rotations WHERE secret_id = ? AND status = 'running' LIMIT 1",
    )
    .bind(r.secret)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    if running.is_some() {
        return Err(Error::invalid_request(
            "A previous rotation isn't complete. That rotation will be reattempted.",
        ));
    }
    // The new version takes AWSPENDING: a label left by an earlier rotation moves off.
    let before = board(conn, r.secret, &[]).await?;
    if let Some(holder) = before.holder(AWSPENDING).map(str::to_owned)
        && holder != r.token
    {
        let mut after = before.clone();
        after.move_label(AWSPENDING, None, Some(&holder))?;
        save_labels(conn, &[(r.secret, &before, &after)]).await?;
    }
    sqlx::query(
        "INSERT INTO rotations (secret_id, token, rotator, status, step, attempt, started_at,
         updated_at, resume_at, steps, epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(r.secret)
    .bind(&r.token)
    .bind(&r.rotator)
    .bind(r.status.as_str())
    .bind(r.step.as_str())
    .bind(r.attempt)
    .bind(millis(r.started))
    .bind(millis(now))
    .bind(r.resume_at.map(millis))
    .bind(steps_json(&r)?)
    .bind(r.epoch)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    // Started: the scheduler must not pick the secret again until it is rescheduled.
    sqlx::query("UPDATE secrets SET rotation_due_at = NULL WHERE id = ?")
        .bind(r.secret)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    super::events::emit(
        conn,
        now,
        "rotation.started",
        Some(&meta.name),
        serde_json::json!({"token": r.token, "rotator": r.rotator}),
    )
    .await?;
    Ok(Outcome::Rotation { replayed: false })
}

async fn save(
    conn: &mut SqliteConnection,
    r: RotationRecord,
    meta: Option<RotationMeta>,
    release_pending: bool,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    fence(conn, r.epoch).await?;
    let changed = sqlx::query(
        "UPDATE rotations SET status = ?, step = ?, attempt = ?, updated_at = ?, finished_at = ?,
         resume_at = ?, error = ?, steps = ?, epoch = ?, gates = ? WHERE secret_id = ? AND token = ?",
    )
    .bind(r.status.as_str())
    .bind(r.step.as_str())
    .bind(r.attempt)
    .bind(millis(now))
    .bind(r.finished.map(millis))
    .bind(r.resume_at.map(millis))
    .bind(&r.error)
    .bind(steps_json(&r)?)
    .bind(r.epoch)
    .bind(gates_json(&r)?)
    .bind(r.secret)
    .bind(&r.token)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?
    .rows_affected();
    if changed == 0 {
        return Err(Error::not_found("No rotation with this token exists"));
    }
    let (kind, detail) = match r.status {
        RotationStatus::Succeeded => ("rotation.succeeded", serde_json::json!({"token": r.token})),
        RotationStatus::Failed => (
            "rotation.failed",
            serde_json::json!({"token": r.token, "error": r.error, "attempt": r.attempt}),
        ),
        RotationStatus::Cancelled => ("rotation.cancelled", serde_json::json!({"token": r.token})),
        RotationStatus::Running if r.resume_at.is_some() => (
            "rotation.retrying",
            serde_json::json!({"token": r.token, "error": r.error, "attempt": r.attempt}),
        ),
        RotationStatus::Running => (
            "rotation.step",
            serde_json::json!({"token": r.token, "attempt": r.attempt,
                               "step": r.steps.last().map(|s| s.step.clone())}),
        ),
    };
    super::events::emit(conn, now, kind, Some(&r.name), detail).await?;
    if let Some(meta) = meta {
        save_meta(conn, r.secret, &meta).await?;
    }
    if release_pending {
        let before = board(conn, r.secret, &[]).await?;
        if before.holder(AWSPENDING) == Some(r.token.as_str()) {
            let mut after = before.clone();
            after.move_label(AWSPENDING, None, Some(&r.token))?;
            save_labels(conn, &[(r.secret, &before, &after)]).await?;
            super::apply::touch(conn, r.secret, now).await?;
        }
    }
    Ok(Outcome::Done)
}

async fn put_rotator(
    conn: &mut SqliteConnection,
    r: RotatorRow,
    replace: bool,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let key = r.key.as_ref();
    let sql = if replace {
        "INSERT INTO rotators (name, kind, config, key_ciphertext, key_wrapped, key_algorithm, key_id, created_at, created_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind,
         config = excluded.config, created_by = excluded.created_by, key_ciphertext = excluded.key_ciphertext,
         key_wrapped = excluded.key_wrapped, key_algorithm = excluded.key_algorithm,
         key_id = excluded.key_id"
    } else {
        "INSERT INTO rotators (name, kind, config, key_ciphertext, key_wrapped, key_algorithm, key_id, created_at, created_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    };
    sqlx::query(sql)
        .bind(&r.name)
        .bind(&r.kind)
        .bind(&r.config)
        .bind(key.map(|k| k.ciphertext.clone()))
        .bind(key.map(|k| k.wrapped_key.clone()))
        .bind(key.map(|k| k.algorithm.clone()))
        .bind(key.map(|k| k.key_id.clone()))
        .bind(millis(now))
        .bind(&r.created_by)
        .execute(&mut *conn)
        .await
        .map_err(|e| match db_error(e) {
            e if e.kind == rotor_core::ErrorKind::ResourceExists => {
                Error::exists(format!("A rotator named {} already exists", r.name))
            }
            e => e,
        })?;
    Ok(Outcome::Done)
}

/// Applies a rotation mutation.
pub(super) async fn apply(
    conn: &mut SqliteConnection,
    mutation: crate::Mutation,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    use crate::Mutation as M;
    match mutation {
        M::SetRotation { secret, rotation } => {
            let meta = meta_by_id(conn, secret).await?;
            save_meta(conn, secret, &rotation).await?;
            super::events::emit(
                conn,
                now,
                "rotation.configured",
                Some(&meta.name),
                serde_json::json!({"enabled": rotation.enabled, "next_rotation": rotation.next_rotation}),
            )
            .await?;
            Ok(Outcome::Done)
        }
        M::StartRotation { record } => start(conn, record, now).await,
        M::Lease {
            name,
            holder,
            ttl_ms,
        } => lease(conn, &name, &holder, ttl_ms, now).await,
        M::ReleaseLease { name, holder } => {
            // Expire it now: the next node to ask takes it with a new epoch.
            sqlx::query("UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ?")
                .bind(name)
                .bind(holder)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            Ok(Outcome::Done)
        }
        M::SaveRotation {
            record,
            rotation,
            release_pending,
        } => save(conn, record, rotation, release_pending, now).await,
        M::PutRotator { rotator, replace } => put_rotator(conn, rotator, replace, now).await,
        M::DeleteRotator { name } => {
            let gone = sqlx::query("DELETE FROM rotators WHERE name = ?")
                .bind(&name)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?
                .rows_affected();
            if gone == 0 {
                return Err(Error::not_found(format!("No rotator named {name} exists")));
            }
            Ok(Outcome::Done)
        }
        _ => Err(Error::internal("not a rotation mutation")),
    }
}

/// The rotation of `secret` with `token`.
pub(super) async fn rotation(
    conn: &mut SqliteConnection,
    secret: i64,
    token: &str,
) -> Result<Option<RotationRecord>> {
    sqlx::query(select_rotations!("WHERE r.secret_id = ? AND r.token = ?"))
        .bind(secret)
        .bind(token)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(rotation_record)
        .transpose()
}

/// The last `limit` rotations of `secret`, newest first.
pub(super) async fn history(
    conn: &mut SqliteConnection,
    secret: i64,
    limit: i64,
) -> Result<Vec<RotationRecord>> {
    sqlx::query(select_rotations!(
        "WHERE r.secret_id = ? ORDER BY r.id DESC LIMIT ?"
    ))
    .bind(secret)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?
    .iter()
    .map(rotation_record)
    .collect()
}

/// Every running rotation.
pub(super) async fn running(conn: &mut SqliteConnection) -> Result<Vec<RotationRecord>> {
    sqlx::query(select_rotations!(
        "WHERE r.status = 'running' ORDER BY r.id"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?
    .iter()
    .map(rotation_record)
    .collect()
}

/// Secrets due for rotation at `now`, and the next due time after them.
pub(super) async fn due(
    conn: &mut SqliteConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<DueRotations> {
    let rows = sqlx::query(
        "SELECT id, name FROM secrets WHERE rotation_due_at IS NOT NULL AND rotation_due_at <= ?
         ORDER BY rotation_due_at LIMIT ?",
    )
    .bind(millis(now))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    let due = rows
        .iter()
        .map(|r| Ok((get(r, "id")?, get(r, "name")?)))
        .collect::<Result<Vec<_>>>()?;
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT rotation_due_at FROM secrets WHERE rotation_due_at IS NOT NULL AND rotation_due_at > ?
         ORDER BY rotation_due_at LIMIT 1",
    )
    .bind(millis(now))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok((due, next.map(from_millis)))
}

/// Every rotator.
pub(super) async fn rotators(conn: &mut SqliteConnection) -> Result<Vec<RotatorRow>> {
    sqlx::query("SELECT * FROM rotators ORDER BY name")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?
        .iter()
        .map(|row| {
            let ciphertext: Option<Vec<u8>> = get(row, "key_ciphertext")?;
            let key = match ciphertext {
                Some(ciphertext) => Some(SealedValue {
                    ciphertext,
                    wrapped_key: get(row, "key_wrapped")?,
                    algorithm: get(row, "key_algorithm")?,
                    key_id: get(row, "key_id")?,
                    digest: Vec::new(),
                }),
                None => None,
            };
            Ok(RotatorRow {
                name: get(row, "name")?,
                kind: get(row, "kind")?,
                config: get(row, "config")?,
                key,
                created: from_millis(get(row, "created_at")?),
                created_by: get(row, "created_by")?,
            })
        })
        .collect()
}
