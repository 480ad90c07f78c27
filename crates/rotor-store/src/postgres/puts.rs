//! Adding a version to a secret on PostgreSQL.
//!
//! The secret's row is locked first, so puts to one secret from every node take turns;
//! then the existing digest decides between a new version, a replay and a clash, and
//! [`LabelBoard`] moves the labels exactly as on SQLite.

use super::apply::{board, prune, save_labels, stored_digest};
use super::queries::get;
use super::writer::{Change, Tx, db};
use crate::errors::refuse_if_deleted_date;
use crate::{NewVersion, Outcome, millis};
use chrono::{DateTime, Utc};
use rotor_core::Error;
use rotor_core::label;

/// Adds `version` to secret `secret`, or replays it.
pub(super) async fn put(
    c: &mut Change,
    secret: i64,
    version: NewVersion,
    now: DateTime<Utc>,
) -> Tx<Outcome> {
    let row = sqlx::query(
        "SELECT name, deletion_date, next_seq, version_count FROM secrets WHERE id = $1 FOR UPDATE",
    )
    .bind(secret)
    .fetch_optional(c.conn())
    .await
    .map_err(db)?
    .ok_or_else(|| Error::not_found("Secrets Manager can't find the specified secret."))?;
    let name: String = get(&row, "name")?;
    refuse_if_deleted_date(get(&row, "deletion_date")?)?;
    let seq = get::<i64>(&row, "next_seq")? + 1;
    let count = get::<i64>(&row, "version_count")? + 1;

    let id = &version.id;
    let before = board(c, secret, &[]).await?;
    if let Some(digest) = stored_digest(c, secret, id).await? {
        return if digest == version.sealed.digest {
            Ok(Outcome::Version {
                labels: before.labels_of(id),
                replayed: true,
            })
        } else {
            Err(Error::exists(format!(
                "A version with ClientRequestToken {id} already exists with a different value; \
                 you can't modify an existing version, only create a new one"
            ))
            .into())
        };
    }
    let mut after = before.clone();
    after.put_version(id, &version.stages)?;

    let v = &version;
    sqlx::query(
        "INSERT INTO versions (secret_id, version_id, seq, created_at, ciphertext, wrapped_key, algorithm, key_id, digest, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(secret)
    .bind(id)
    .bind(seq)
    .bind(millis(now))
    .bind(&v.sealed.ciphertext)
    .bind(&v.sealed.wrapped_key)
    .bind(&v.sealed.algorithm)
    .bind(&v.sealed.key_id)
    .bind(&v.sealed.digest)
    .bind(&v.source)
    .execute(c.conn())
    .await
    .map_err(db)?;
    let labels = after.labels_of(id);
    let source: Option<serde_json::Value> = v
        .source
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    c.emit(
        now,
        "version.put",
        Some(&name),
        serde_json::json!({"version": id, "labels": labels, "source": source}),
    );
    if let Some(source) = source {
        c.emit(
            now,
            "replication.applied",
            Some(&name),
            serde_json::json!({"version": id, "labels": labels, "source": source}),
        );
    }
    save_labels(c, secret, &before, &after).await?;
    sqlx::query(
        "UPDATE secrets SET next_seq = $1, version_count = $2, last_changed_at = $3 WHERE id = $4",
    )
    .bind(seq)
    .bind(count)
    .bind(millis(now))
    .bind(secret)
    .execute(c.conn())
    .await
    .map_err(db)?;
    if count as usize > label::MAX_VERSIONS {
        // Only look for versions to prune when some may go.
        let oldest: Option<i64> =
            sqlx::query_scalar("SELECT MIN(created_at) FROM versions WHERE secret_id = $1")
                .bind(secret)
                .fetch_one(c.conn())
                .await
                .map_err(db)?;
        if label::may_prune(count as usize, oldest.map(crate::from_millis), now) {
            prune(c, secret, count as usize, now).await?;
        }
    }
    Ok(Outcome::Version {
        labels,
        replayed: false,
    })
}
