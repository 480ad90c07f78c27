//! Applying a [`Mutation`] to SQLite, inside the savepoint the writer opened for it:
//! one function per kind of change to a secret, and the helpers they share with the
//! other write paths (`puts`, `rotation`): the secret's row, its [`LabelBoard`], the
//! label writes and the pruning of deprecated versions. Access, rotation and events
//! mutations are handed to their own modules.

use super::{access, events, puts, rotation};
use crate::errors::{db_error, refuse_if_deleted};
use crate::{Mutation, NewVersion, Outcome, from_millis, millis};
use chrono::{DateTime, Utc};
use rotor_core::label::{self, LabelBoard};
use rotor_core::model::SecretMeta;
use rotor_core::{Error, Result};
use sqlx::Row as _;
use sqlx::sqlite::SqliteConnection;
use std::collections::BTreeMap;

/// Applies one mutation inside the writer's transaction (its savepoint).
pub(super) async fn apply(
    conn: &mut SqliteConnection,
    mutation: Mutation,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    match mutation {
        m @ Mutation::CreateSecret { .. } => create_secret(conn, m, now).await,
        Mutation::PutVersion { secret, version } => put_one(conn, secret, version, now).await,
        Mutation::UpdateMeta {
            secret,
            description,
            kms_key_id,
        } => update_meta(conn, secret, description, kms_key_id, now).await,
        Mutation::MoveLabel {
            secret,
            label,
            move_to,
            remove_from,
        } => move_label(conn, secret, label, move_to, remove_from, now).await,
        Mutation::Tag { secret, tags } => {
            let mut meta = meta_by_id(conn, secret).await?;
            crate::merge_tags(&mut meta, tags)?;
            save_tags(conn, &meta, now).await
        }
        Mutation::Untag { secret, keys } => {
            let mut meta = meta_by_id(conn, secret).await?;
            meta.tags.retain(|t| !keys.contains(&t.key));
            save_tags(conn, &meta, now).await
        }
        Mutation::ScheduleDeletion {
            secret,
            deletion_date,
        } => schedule_deletion(conn, secret, deletion_date, now).await,
        Mutation::Restore { secret } => restore(conn, secret, now).await,
        Mutation::Access(m) => access::apply(conn, m, now).await,
        m @ (Mutation::SetRotation { .. }
        | Mutation::StartRotation { .. }
        | Mutation::SaveRotation { .. }
        | Mutation::PutRotator { .. }
        | Mutation::DeleteRotator { .. }
        | Mutation::Lease { .. }
        | Mutation::ReleaseLease { .. }) => rotation::apply(conn, m, now).await,
        Mutation::Atomic(all) => {
            let mut outcomes = Vec::with_capacity(all.len());
            for m in all {
                outcomes.push(Box::pin(apply(conn, m, now)).await?);
            }
            Ok(Outcome::All(outcomes))
        }
        m @ (Mutation::PutRule { .. }
        | Mutation::DeleteRule { .. }
        | Mutation::MarkReplica { .. }
        | Mutation::MarkSourceDeleted { .. }
        | Mutation::AppendEvent { .. }
        | Mutation::PutSubscription { .. }
        | Mutation::DeleteSubscription { .. }
        | Mutation::RecordDelivery { .. }) => events::apply(conn, m, now).await,
        Mutation::AppendAudit { first, last, lines } => {
            access::append_audit(conn, first, last, lines).await
        }
        Mutation::RecordMasterKey { key_id } => record_master_key(conn, key_id, now).await,
        Mutation::PruneEvents { older_than, limit } => prune_events(conn, older_than, limit).await,
        Mutation::Purge { secret } => purge(conn, secret, now).await,
        Mutation::ReportConsumers { consumers } => super::consumers::report(conn, consumers).await,
        Mutation::EndConsumer {
            secret,
            consumer,
            principal,
        } => super::consumers::end(conn, secret, &consumer, &principal, now).await,
        Mutation::PruneConsumers { before } => super::consumers::prune(conn, before).await,
    }
}

/// Creates a secret, with its first version if given. The same create again is a
/// replay when that version holds the same value, and a clash otherwise.
async fn create_secret(
    conn: &mut SqliteConnection,
    mutation: Mutation,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let Mutation::CreateSecret {
        name,
        arn,
        description,
        kms_key_id,
        tags,
        first_version,
    } = mutation
    else {
        return Err(Error::internal("not a create"));
    };
    let existing = sqlx::query("SELECT * FROM secrets WHERE name = ?")
        .bind(&name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
    if let Some(row) = existing {
        let meta = crate::rows::secret_meta(&row)?;
        if meta.is_deleted() {
            return Err(Error::invalid_request(format!(
                "You can't create this secret because a secret with the name {name} is already scheduled for deletion."
            )));
        }
        if let Some(v) = &first_version
            && stored_digest(conn, meta.id, &v.id).await?.as_ref() == Some(&v.sealed.digest)
        {
            return Ok(Outcome::Created {
                id: meta.id,
                arn: meta.arn,
                replayed: true,
            });
        }
        return Err(Error::exists(format!(
            "The operation failed because the secret {name} already exists."
        )));
    }
    let tags =
        serde_json::to_string(&tags).map_err(|_| Error::internal("tags could not be encoded"))?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO secrets (name, arn, description, kms_key_id, tags, created_at, last_changed_at)
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&name)
    .bind(&arn)
    .bind(description)
    .bind(kms_key_id)
    .bind(tags)
    .bind(millis(now))
    .bind(millis(now))
    .fetch_one(&mut *conn)
    .await
    .map_err(db_error)?;
    events::emit(
        conn,
        now,
        "secret.created",
        Some(&name),
        serde_json::json!({"arn": arn}),
    )
    .await?;
    if let Some(version) = first_version {
        put_one(conn, id, version, now).await?;
    }
    Ok(Outcome::Created {
        id,
        arn,
        replayed: false,
    })
}

async fn update_meta(
    conn: &mut SqliteConnection,
    secret: i64,
    description: Option<String>,
    kms_key_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let meta = meta_by_id(conn, secret).await?;
    refuse_if_deleted(&meta)?;
    sqlx::query(
        "UPDATE secrets SET description = COALESCE(?, description),
         kms_key_id = COALESCE(?, kms_key_id), last_changed_at = ? WHERE id = ?",
    )
    .bind(description)
    .bind(kms_key_id)
    .bind(millis(now))
    .bind(secret)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    events::emit(
        conn,
        now,
        "secret.updated",
        Some(&meta.name),
        serde_json::json!({}),
    )
    .await?;
    Ok(Outcome::Done)
}

async fn move_label(
    conn: &mut SqliteConnection,
    secret: i64,
    label: String,
    move_to: Option<String>,
    remove_from: Option<String>,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let meta = meta_by_id(conn, secret).await?;
    refuse_if_deleted(&meta)?;
    let named: Vec<&str> = [move_to.as_deref(), remove_from.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let before = board(conn, secret, &named).await?;
    let mut after = before.clone();
    after.move_label(&label, move_to.as_deref(), remove_from.as_deref())?;
    save_labels(conn, &[(secret, &before, &after)]).await?;
    touch(conn, secret, now).await?;
    events::emit(
        conn,
        now,
        "label.moved",
        Some(&meta.name),
        serde_json::json!({"label": label, "to": move_to, "from": remove_from}),
    )
    .await?;
    Ok(Outcome::Done)
}

async fn schedule_deletion(
    conn: &mut SqliteConnection,
    secret: i64,
    deletion_date: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let meta = meta_by_id(conn, secret).await?;
    refuse_if_deleted(&meta)?;
    sqlx::query("UPDATE secrets SET deletion_date = ?, deleted_date = ? WHERE id = ?")
        .bind(millis(deletion_date))
        .bind(millis(now))
        .bind(secret)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    events::emit(
        conn,
        now,
        "secret.deleted",
        Some(&meta.name),
        serde_json::json!({"deletion_date": deletion_date}),
    )
    .await?;
    Ok(Outcome::Done)
}

async fn restore(conn: &mut SqliteConnection, secret: i64, now: DateTime<Utc>) -> Result<Outcome> {
    let meta = meta_by_id(conn, secret).await?;
    events::emit(
        conn,
        now,
        "secret.restored",
        Some(&meta.name),
        serde_json::json!({}),
    )
    .await?;
    sqlx::query(
        "UPDATE secrets SET deletion_date = NULL, deleted_date = NULL, last_changed_at = ? WHERE id = ?",
    )
    .bind(millis(now))
    .bind(secret)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(Outcome::Done)
}

async fn record_master_key(
    conn: &mut SqliteConnection,
    key_id: String,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    sqlx::query(
        "INSERT INTO master_keys (key_id, added_at) VALUES (?, ?) ON CONFLICT (key_id) DO NOTHING",
    )
    .bind(key_id)
    .bind(millis(now))
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(Outcome::Done)
}

async fn prune_events(
    conn: &mut SqliteConnection,
    older_than: DateTime<Utc>,
    limit: i64,
) -> Result<Outcome> {
    sqlx::query(
        "DELETE FROM events WHERE seq IN (
           SELECT seq FROM events
           WHERE at < ?
             AND seq <= (SELECT seq FROM events WHERE at < ? ORDER BY at DESC, seq DESC LIMIT 1)
             AND seq < (SELECT MAX(seq) FROM events)
             AND seq <= COALESCE((SELECT MIN(cursor) FROM subscriptions), seq)
             AND NOT (kind = 'consumer.ack' AND seq IN (
               SELECT MAX(seq) FROM events WHERE kind = 'consumer.ack'
               GROUP BY secret, json_extract(detail, '$.consumer')))
           ORDER BY seq LIMIT ?)",
    )
    .bind(millis(older_than))
    .bind(millis(older_than))
    .bind(limit)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(Outcome::Done)
}

async fn purge(conn: &mut SqliteConnection, secret: i64, now: DateTime<Utc>) -> Result<Outcome> {
    let meta = meta_by_id(conn, secret).await?;
    events::emit(
        conn,
        now,
        "secret.purged",
        Some(&meta.name),
        serde_json::json!({}),
    )
    .await?;
    // Labels reference versions, versions reference the secret: delete in order
    // so the result does not depend on cascade settings.
    for sql in [
        "DELETE FROM rotations WHERE secret_id = ?",
        "DELETE FROM consumers WHERE secret_id = ?",
        "DELETE FROM labels WHERE secret_id = ?",
        "DELETE FROM versions WHERE secret_id = ?",
        "DELETE FROM secrets WHERE id = ?",
    ] {
        sqlx::query(sql)
            .bind(secret)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    Ok(Outcome::Done)
}

pub(super) async fn meta_by_id(conn: &mut SqliteConnection, id: i64) -> Result<SecretMeta> {
    let row = sqlx::query("SELECT * FROM secrets WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?
        .ok_or_else(|| Error::not_found("Secrets Manager can't find the specified secret."))?;
    crate::rows::secret_meta(&row)
}

/// The label board of a secret: its labeled versions only, so that its cost does not
/// grow with deprecated versions. `also` names versions to include even without
/// labels, once checked to exist (e.g. the target of a label move).
pub(super) async fn board(
    conn: &mut SqliteConnection,
    secret: i64,
    also: &[&str],
) -> Result<LabelBoard> {
    let labels = sqlx::query("SELECT label, version_id FROM labels WHERE secret_id = ?")
        .bind(secret)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
    let mut by_version: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in &labels {
        let label: String = row.try_get("label").map_err(db_error)?;
        let version: String = row.try_get("version_id").map_err(db_error)?;
        by_version.entry(version).or_default().push(label);
    }
    for id in also {
        if !by_version.contains_key(*id) && stored_digest(conn, secret, id).await?.is_some() {
            by_version.insert(id.to_string(), Vec::new());
        }
    }
    Ok(LabelBoard::from_versions(by_version))
}

/// Writes the label changes of each `(secret, before, after)`: at most one statement
/// for the labels that went and one for those that moved or came, whatever the count.
pub(super) async fn save_labels(
    conn: &mut SqliteConnection,
    changes: &[(i64, &LabelBoard, &LabelBoard)],
) -> Result<()> {
    let mut gone: Vec<(i64, String)> = Vec::new();
    let mut moved: Vec<(i64, String, String)> = Vec::new();
    for (secret, before, after) in changes {
        let (g, m) = after.label_changes(before);
        gone.extend(g.into_iter().map(|l| (*secret, l)));
        moved.extend(m.into_iter().map(|(l, v)| (*secret, l, v)));
    }
    for chunk in gone.chunks(puts::ROWS_PER_STATEMENT) {
        let sql = format!(
            "DELETE FROM labels WHERE (secret_id, label) IN (VALUES {})",
            vec!["(?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (secret, label) in chunk {
            q = q.bind(secret).bind(label);
        }
        q.execute(&mut *conn).await.map_err(db_error)?;
    }
    for chunk in moved.chunks(puts::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO labels (secret_id, label, version_id) VALUES {}
             ON CONFLICT (secret_id, label) DO UPDATE SET version_id = excluded.version_id",
            vec!["(?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (secret, label, version) in chunk {
            q = q.bind(secret).bind(label).bind(version);
        }
        q.execute(&mut *conn).await.map_err(db_error)?;
    }
    Ok(())
}

pub(super) async fn touch(
    conn: &mut SqliteConnection,
    secret: i64,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("UPDATE secrets SET last_changed_at = ? WHERE id = ?")
        .bind(millis(now))
        .bind(secret)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn stored_digest(
    conn: &mut SqliteConnection,
    secret: i64,
    version: &str,
) -> Result<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT digest FROM versions WHERE secret_id = ? AND version_id = ?")
        .bind(secret)
        .bind(version)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)
}

/// Applies a single put through the same code as a run of puts.
async fn put_one(
    conn: &mut SqliteConnection,
    secret: i64,
    version: NewVersion,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let run = [puts::Put {
        secret,
        version,
        now,
    }];
    puts::apply_run(conn, &run)
        .await?
        .pop()
        .unwrap_or_else(|| Err(Error::internal("a run of one put gave no outcome")))
}

/// Deletes deprecated versions past the limit, by the rule in
/// [`rotor_core::label::prunable`]; the index on `(secret_id, created_at)` keeps the
/// search to versions old enough to go.
pub(super) async fn prune(
    conn: &mut SqliteConnection,
    secret: i64,
    total: usize,
    now: DateTime<Utc>,
) -> Result<()> {
    if total <= label::MAX_VERSIONS {
        return Ok(());
    }
    // Of the oldest unlabeled versions, only those that go whatever their age and
    // those old enough to go: not every young one (up to 900 of them) each time.
    let rows = sqlx::query(
        "SELECT version_id, created_at FROM (
           SELECT v.version_id, v.created_at,
                  row_number() OVER (ORDER BY v.created_at, v.seq) AS n
           FROM versions v
           WHERE v.secret_id = ? AND v.created_at <= ?
             AND NOT EXISTS (SELECT 1 FROM labels l
                             WHERE l.secret_id = v.secret_id AND l.version_id = v.version_id))
         WHERE n <= ? AND (created_at <= ? OR n <= ?)
         ORDER BY n",
    )
    .bind(secret)
    .bind(millis(crate::prune_horizon(total, now)))
    .bind(label::prune_candidates(total) as i64)
    .bind(millis(
        now - chrono::Duration::hours(label::MIN_PRUNE_AGE_HOURS),
    ))
    .bind(label::prune_regardless_of_age(total) as i64)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    let mut candidates = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("version_id").map_err(db_error)?;
        let created: i64 = r.try_get("created_at").map_err(db_error)?;
        candidates.push((id, from_millis(created)));
    }
    let doomed = label::prunable(total, &candidates, now);
    if doomed.is_empty() {
        return Ok(());
    }
    // One statement for the lot, the ids as a JSON array.
    let ids = serde_json::to_string(&doomed)
        .map_err(|_| Error::internal("version ids could not be encoded"))?;
    sqlx::query(
        "DELETE FROM versions WHERE secret_id = ? AND version_id IN (SELECT value FROM json_each(?))",
    )
    .bind(secret)
    .bind(ids)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    sqlx::query("UPDATE secrets SET version_count = version_count - ? WHERE id = ?")
        .bind(doomed.len() as i64)
        .bind(secret)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn save_tags(
    conn: &mut SqliteConnection,
    meta: &SecretMeta,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let tags = serde_json::to_string(&meta.tags)
        .map_err(|_| Error::internal("tags could not be encoded"))?;
    sqlx::query("UPDATE secrets SET tags = ?, last_changed_at = ? WHERE id = ?")
        .bind(tags)
        .bind(millis(now))
        .bind(meta.id)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    events::emit(
        conn,
        now,
        "secret.updated",
        Some(&meta.name),
        serde_json::json!({}),
    )
    .await?;
    Ok(Outcome::Done)
}
