//! Rotation on PostgreSQL: each secret's schedule columns, the rotation records and
//! the registered rotators.

use super::apply::{board, lock_meta, lock_secret, save_labels};
use super::db_error;
use super::queries::get;
use super::writer::{Change, Tx, db, taken};
use crate::errors::refuse_if_deleted;
use crate::rows::{adoption_json, gates_json, rotation_record, select_rotations, steps_json};
use crate::{DueRotations, Outcome, RotatorRow, SealedValue, from_millis, millis};
use chrono::{DateTime, Utc};
use rotor_core::label::AWSPENDING;
use rotor_core::model::{RotationMeta, RotationRecord, RotationStatus};
use rotor_core::{Error, Result};
use sqlx::postgres::PgPool;

async fn save_meta(c: &mut Change, secret: i64, r: &RotationMeta) -> Tx<()> {
    sqlx::query(
        "UPDATE secrets SET rotation_enabled = $1, rotator = $2, rotation_rules = $3,
         last_rotated_at = $4, next_rotation_at = $5, rotation_due_at = $6, rotation_failed = $7,
         rotation_principal = $8, rotation_adoption = $9 WHERE id = $10",
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
    .execute(c.conn())
    .await
    .map_err(db)?;
    Ok(())
}

async fn start(c: &mut Change, r: RotationRecord, now: DateTime<Utc>) -> Tx<Outcome> {
    super::lease::fence(c, r.epoch).await?;
    // The secret's lock makes "no other rotation is running" hold until the insert.
    let meta = lock_meta(c, r.secret).await?;
    refuse_if_deleted(&meta)?;
    let replay: Option<i64> =
        sqlx::query_scalar("SELECT id FROM rotations WHERE secret_id = $1 AND token = $2")
            .bind(r.secret)
            .bind(&r.token)
            .fetch_optional(c.conn())
            .await
            .map_err(db)?;
    if replay.is_some() {
        return Ok(Outcome::Rotation { replayed: true });
    }
    let running: Option<String> = sqlx::query_scalar(
        "SELECT token FROM rotations WHERE secret_id = $1 AND status = 'running' LIMIT 1",
    )
    .bind(r.secret)
    .fetch_optional(c.conn())
    .await
    .map_err(db)?;
    if running.is_some() {
        return Err(Error::invalid_request(
            "A previous rotation isn't complete. That rotation will be reattempted.",
        )
        .into());
    }
    // The new version takes AWSPENDING: a label left by an earlier rotation moves off.
    let before = board(c, r.secret, &[]).await?;
    if let Some(holder) = before.holder(AWSPENDING).map(str::to_owned)
        && holder != r.token
    {
        let mut after = before.clone();
        after.move_label(AWSPENDING, None, Some(&holder))?;
        save_labels(c, r.secret, &before, &after).await?;
    }
    sqlx::query(
        "INSERT INTO rotations (secret_id, token, rotator, status, step, attempt, started_at,
         updated_at, resume_at, steps, epoch) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
    .execute(c.conn())
    .await
    .map_err(db)?;
    // Started: the scheduler must not pick the secret again until it is rescheduled.
    sqlx::query("UPDATE secrets SET rotation_due_at = NULL WHERE id = $1")
        .bind(r.secret)
        .execute(c.conn())
        .await
        .map_err(db)?;
    c.emit(
        now,
        "rotation.started",
        Some(&meta.name),
        serde_json::json!({"token": r.token, "rotator": r.rotator}),
    );
    Ok(Outcome::Rotation { replayed: false })
}

async fn save(
    c: &mut Change,
    r: RotationRecord,
    meta: Option<RotationMeta>,
    release_pending: bool,
    now: DateTime<Utc>,
) -> Tx<Outcome> {
    super::lease::fence(c, r.epoch).await?;
    // Locked first, as every change to a secret's labels or schedule is.
    lock_secret(c, r.secret).await?;
    let changed = sqlx::query(
        "UPDATE rotations SET status = $1, step = $2, attempt = $3, updated_at = $4, finished_at = $5,
         resume_at = $6, error = $7, steps = $8, epoch = $9, gates = $10 WHERE secret_id = $11 AND token = $12",
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
    .execute(c.conn())
    .await
    .map_err(db)?
    .rows_affected();
    if changed == 0 {
        return Err(Error::not_found("No rotation with this token exists").into());
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
    c.emit(now, kind, Some(&r.name), detail);
    if let Some(meta) = meta {
        save_meta(c, r.secret, &meta).await?;
    }
    if release_pending {
        let before = board(c, r.secret, &[]).await?;
        if before.holder(AWSPENDING) == Some(r.token.as_str()) {
            let mut after = before.clone();
            after.move_label(AWSPENDING, None, Some(&r.token))?;
            save_labels(c, r.secret, &before, &after).await?;
            super::apply::touch(c, r.secret, now).await?;
        }
    }
    Ok(Outcome::Done)
}

async fn put_rotator(
    c: &mut Change,
    r: RotatorRow,
    replace: bool,
    now: DateTime<Utc>,
) -> Tx<Outcome> {
    let key = r.key.as_ref();
    let sql = if replace {
        "INSERT INTO rotators (name, kind, config, key_ciphertext, key_wrapped, key_algorithm, key_id, created_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind,
         config = excluded.config, created_by = excluded.created_by, key_ciphertext = excluded.key_ciphertext,
         key_wrapped = excluded.key_wrapped, key_algorithm = excluded.key_algorithm,
         key_id = excluded.key_id"
    } else {
        "INSERT INTO rotators (name, kind, config, key_ciphertext, key_wrapped, key_algorithm, key_id, created_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
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
        .execute(c.conn())
        .await
        .map_err(|e| {
            taken(db(e), || {
                format!("A rotator named {} already exists", r.name)
            })
        })?;
    Ok(Outcome::Done)
}

/// Applies a rotation mutation.
pub(super) async fn apply(
    c: &mut Change,
    mutation: crate::Mutation,
    now: DateTime<Utc>,
) -> Tx<Outcome> {
    use crate::Mutation as M;
    match mutation {
        M::SetRotation { secret, rotation } => {
            let meta = lock_meta(c, secret).await?;
            save_meta(c, secret, &rotation).await?;
            c.emit(
                now,
                "rotation.configured",
                Some(&meta.name),
                serde_json::json!({"enabled": rotation.enabled, "next_rotation": rotation.next_rotation}),
            );
            Ok(Outcome::Done)
        }
        M::StartRotation { record } => start(c, record, now).await,
        M::SaveRotation {
            record,
            rotation,
            release_pending,
        } => save(c, record, rotation, release_pending, now).await,
        M::PutRotator { rotator, replace } => put_rotator(c, rotator, replace, now).await,
        M::DeleteRotator { name } => {
            let gone = sqlx::query("DELETE FROM rotators WHERE name = $1")
                .bind(&name)
                .execute(c.conn())
                .await
                .map_err(db)?
                .rows_affected();
            if gone == 0 {
                return Err(Error::not_found(format!("No rotator named {name} exists")).into());
            }
            Ok(Outcome::Done)
        }
        _ => Err(Error::internal("not a rotation mutation").into()),
    }
}

/// The rotation of `secret` with `token`.
pub(super) async fn rotation(
    pool: &PgPool,
    secret: i64,
    token: &str,
) -> Result<Option<RotationRecord>> {
    sqlx::query(select_rotations!("WHERE r.secret_id = $1 AND r.token = $2"))
        .bind(secret)
        .bind(token)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(rotation_record)
        .transpose()
}

/// The last `limit` rotations of `secret`, newest first.
pub(super) async fn history(pool: &PgPool, secret: i64, limit: i64) -> Result<Vec<RotationRecord>> {
    sqlx::query(select_rotations!(
        "WHERE r.secret_id = $1 ORDER BY r.id DESC LIMIT $2"
    ))
    .bind(secret)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(db_error)?
    .iter()
    .map(rotation_record)
    .collect()
}

/// Every running rotation.
pub(super) async fn running(pool: &PgPool) -> Result<Vec<RotationRecord>> {
    sqlx::query(select_rotations!(
        "WHERE r.status = 'running' ORDER BY r.id"
    ))
    .fetch_all(pool)
    .await
    .map_err(db_error)?
    .iter()
    .map(rotation_record)
    .collect()
}

/// Secrets due for rotation at `now`, and the next due time after them.
pub(super) async fn due(pool: &PgPool, now: DateTime<Utc>, limit: i64) -> Result<DueRotations> {
    let rows = sqlx::query(
        "SELECT id, name FROM secrets WHERE rotation_due_at IS NOT NULL AND rotation_due_at <= $1
         ORDER BY rotation_due_at LIMIT $2",
    )
    .bind(millis(now))
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    let due = rows
        .iter()
        .map(|r| Ok((get(r, "id")?, get(r, "name")?)))
        .collect::<Result<Vec<_>>>()?;
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT rotation_due_at FROM secrets WHERE rotation_due_at IS NOT NULL AND rotation_due_at > $1
         ORDER BY rotation_due_at LIMIT 1",
    )
    .bind(millis(now))
    .fetch_optional(pool)
    .await
    .map_err(db_error)?;
    Ok((due, next.map(from_millis)))
}

/// Every rotator, by name.
pub(super) async fn rotators(pool: &PgPool) -> Result<Vec<RotatorRow>> {
    let mut all = sqlx::query("SELECT * FROM rotators")
        .fetch_all(pool)
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
        .collect::<Result<Vec<_>>>()?;
    // By byte, as SQLite orders them, whatever the database's collation.
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}
