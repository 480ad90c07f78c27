//! Applying a [`Mutation`] to PostgreSQL inside its [`Change`]: the locks taken first
//! (the secret's row, or an `Atomic` change's secrets in id order), one function per
//! kind of change to a secret, and the helpers they share with the other write paths
//! (`puts`, `rotation`): the secret's [`LabelBoard`], the label writes and the pruning
//! of deprecated versions. Access, rotation, lease and events mutations are handed to
//! their own modules.

use super::queries::get;
use super::writer::{Abort, Change, Tx, db};
use super::{access, events, lease, puts, rotation};
use crate::errors::refuse_if_deleted;
use crate::{Mutation, Outcome, from_millis, millis};
use chrono::{DateTime, Utc};
use rotor_core::Error;
use rotor_core::label::{self, LabelBoard};
use rotor_core::model::SecretMeta;
use std::collections::BTreeMap;

/// Applies one mutation inside `c`'s transaction.
pub(super) async fn apply(c: &mut Change, mutation: Mutation, now: DateTime<Utc>) -> Tx<Outcome> {
    match mutation {
        Mutation::Lease {
            name,
            holder,
            ttl_ms,
        } => lease::lease(c, &name, &holder, ttl_ms).await,
        Mutation::ReleaseLease { name, holder } => lease::release(c, &name, &holder).await,
        m @ Mutation::CreateSecret { .. } => create_secret(c, m, now).await,
        Mutation::PutVersion { secret, version } => puts::put(c, secret, version, now).await,
        Mutation::UpdateMeta {
            secret,
            description,
            kms_key_id,
        } => update_meta(c, secret, description, kms_key_id, now).await,
        Mutation::MoveLabel {
            secret,
            label,
            move_to,
            remove_from,
        } => move_label(c, secret, label, move_to, remove_from, now).await,
        Mutation::Tag { secret, tags } => {
            let mut meta = lock_meta(c, secret).await?;
            crate::merge_tags(&mut meta, tags)?;
            save_tags(c, &meta, now).await
        }
        Mutation::Untag { secret, keys } => {
            let mut meta = lock_meta(c, secret).await?;
            meta.tags.retain(|t| !keys.contains(&t.key));
            save_tags(c, &meta, now).await
        }
        Mutation::ScheduleDeletion {
            secret,
            deletion_date,
        } => schedule_deletion(c, secret, deletion_date, now).await,
        Mutation::Restore { secret } => restore(c, secret, now).await,
        Mutation::Access(m) => access::apply(c, m, now).await,
        m @ (Mutation::SetRotation { .. }
        | Mutation::StartRotation { .. }
        | Mutation::SaveRotation { .. }
        | Mutation::PutRotator { .. }
        | Mutation::DeleteRotator { .. }) => rotation::apply(c, m, now).await,
        // Its secrets were locked in id order with the batch's first statement
        // ([`super::writer`]): two nodes replicating between the same secrets in
        // opposite orders wait for each other instead of deadlocking.
        Mutation::Atomic(all) => {
            let mut outcomes = Vec::with_capacity(all.len());
            for m in all {
                outcomes.push(Box::pin(apply(c, m, now)).await?);
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
        | Mutation::RecordDelivery { .. }) => events::apply(c, m, now).await,
        Mutation::AppendAudit { first, last, lines } => {
            access::append_audit(c, first, last, lines).await
        }
        Mutation::RecordMasterKey { key_id } => record_master_key(c, key_id, now).await,
        Mutation::PruneEvents { older_than, limit } => prune_events(c, older_than, limit).await,
        Mutation::Purge { secret } => purge(c, secret, now).await,
        Mutation::ReportConsumers { consumers } => super::consumers::report(c, consumers).await,
        Mutation::EndConsumer {
            secret,
            consumer,
            principal,
        } => super::consumers::end(c, secret, &consumer, &principal, now).await,
        Mutation::PruneConsumers { before } => super::consumers::prune(c, before).await,
    }
}

async fn update_meta(
    c: &mut Change,
    secret: i64,
    description: Option<String>,
    kms_key_id: Option<String>,
    now: DateTime<Utc>,
) -> Tx<Outcome> {
    let meta = lock_meta(c, secret).await?;
    refuse_if_deleted(&meta)?;
    sqlx::query(
        "UPDATE secrets SET description = COALESCE($1, description),
         kms_key_id = COALESCE($2, kms_key_id), last_changed_at = $3 WHERE id = $4",
    )
    .bind(description)
    .bind(kms_key_id)
    .bind(millis(now))
    .bind(secret)
    .execute(c.conn())
    .await
    .map_err(db)?;
    c.emit(
        now,
        "secret.updated",
        Some(&meta.name),
        serde_json::json!({}),
    );
    Ok(Outcome::Done)
}

async fn move_label(
    c: &mut Change,
    secret: i64,
    label: String,
    move_to: Option<String>,
    remove_from: Option<String>,
    now: DateTime<Utc>,
) -> Tx<Outcome> {
    let meta = lock_meta(c, secret).await?;
    refuse_if_deleted(&meta)?;
    let named: Vec<&str> = [move_to.as_deref(), remove_from.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let before = board(c, secret, &named).await?;
    let mut after = before.clone();
    after.move_label(&label, move_to.as_deref(), remove_from.as_deref())?;
    save_labels(c, secret, &before, &after).await?;
    touch(c, secret, now).await?;
    c.emit(
        now,
        "label.moved",
        Some(&meta.name),
        serde_json::json!({"label": label, "to": move_to, "from": remove_from}),
    );
    Ok(Outcome::Done)
}

async fn schedule_deletion(
    c: &mut Change,
    secret: i64,
    deletion_date: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Tx<Outcome> {
    let meta = lock_meta(c, secret).await?;
    refuse_if_deleted(&meta)?;
    sqlx::query("UPDATE secrets SET deletion_date = $1, deleted_date = $2 WHERE id = $3")
        .bind(millis(deletion_date))
        .bind(millis(now))
        .bind(secret)
        .execute(c.conn())
        .await
        .map_err(db)?;
    c.emit(
        now,
        "secret.deleted",
        Some(&meta.name),
        serde_json::json!({"deletion_date": deletion_date}),
    );
    Ok(Outcome::Done)
}

async fn restore(c: &mut Change, secret: i64, now: DateTime<Utc>) -> Tx<Outcome> {
    let meta = lock_meta(c, secret).await?;
    c.emit(
        now,
        "secret.restored",
        Some(&meta.name),
        serde_json::json!({}),
    );
    sqlx::query(
        "UPDATE secrets SET deletion_date = NULL, deleted_date = NULL, last_changed_at = $1 WHERE id = $2",
    )
    .bind(millis(now))
    .bind(secret)
    .execute(c.conn())
    .await
    .map_err(db)?;
    Ok(Outcome::Done)
}

async fn record_master_key(c: &mut Change, key_id: String, now: DateTime<Utc>) -> Tx<Outcome> {
    sqlx::query(
        "INSERT INTO master_keys (key_id, added_at) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING",
    )
    .bind(key_id)
    .bind(millis(now))
    .execute(c.conn())
    .await
    .map_err(db)?;
    Ok(Outcome::Done)
}

async fn prune_events(c: &mut Change, older_than: DateTime<Utc>, limit: i64) -> Tx<Outcome> {
    sqlx::query(
        "DELETE FROM events WHERE seq IN (
           SELECT seq FROM events
           WHERE at < $1
             AND seq <= (SELECT seq FROM events WHERE at < $1 ORDER BY at DESC, seq DESC LIMIT 1)
             AND seq < (SELECT MAX(seq) FROM events)
             AND seq <= COALESCE((SELECT MIN(cursor) FROM subscriptions), seq)
             AND NOT (kind = 'consumer.ack' AND seq IN (
               SELECT MAX(seq) FROM events WHERE kind = 'consumer.ack'
               GROUP BY secret, (detail::jsonb)->>'consumer'))
           ORDER BY seq LIMIT $2)",
    )
    .bind(millis(older_than))
    .bind(limit)
    .execute(c.conn())
    .await
    .map_err(db)?;
    Ok(Outcome::Done)
}

async fn purge(c: &mut Change, secret: i64, now: DateTime<Utc>) -> Tx<Outcome> {
    let meta = lock_meta(c, secret).await?;
    c.emit(
        now,
        "secret.purged",
        Some(&meta.name),
        serde_json::json!({}),
    );
    // Labels reference versions, versions reference the secret: delete in order
    // so the result does not depend on cascade settings.
    for sql in [
        "DELETE FROM rotations WHERE secret_id = $1",
        "DELETE FROM consumers WHERE secret_id = $1",
        "DELETE FROM labels WHERE secret_id = $1",
        "DELETE FROM versions WHERE secret_id = $1",
        "DELETE FROM secrets WHERE id = $1",
    ] {
        sqlx::query(sql)
            .bind(secret)
            .execute(c.conn())
            .await
            .map_err(db)?;
    }
    Ok(Outcome::Done)
}

async fn create_secret(c: &mut Change, mutation: Mutation, now: DateTime<Utc>) -> Tx<Outcome> {
    let Mutation::CreateSecret {
        name,
        arn,
        description,
        kms_key_id,
        tags,
        first_version,
    } = mutation
    else {
        return Err(Error::internal("not a create").into());
    };
    let existing = sqlx::query("SELECT * FROM secrets WHERE name = $1")
        .bind(&name)
        .fetch_optional(c.conn())
        .await
        .map_err(db)?;
    if let Some(row) = existing {
        let meta = crate::rows::secret_meta(&row)?;
        if meta.is_deleted() {
            return Err(Error::invalid_request(format!(
                "You can't create this secret because a secret with the name {name} is already scheduled for deletion."
            ))
            .into());
        }
        if let Some(v) = &first_version
            && stored_digest(c, meta.id, &v.id).await?.as_ref() == Some(&v.sealed.digest)
        {
            return Ok(Outcome::Created {
                id: meta.id,
                arn: meta.arn,
                replayed: true,
            });
        }
        return Err(Error::exists(format!(
            "The operation failed because the secret {name} already exists."
        ))
        .into());
    }
    let tags =
        serde_json::to_string(&tags).map_err(|_| Error::internal("tags could not be encoded"))?;
    // Another node may be creating the same name: the insert waits for it, and if it
    // committed, the mutation runs again and finds it above (a replay, or a clash).
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO secrets (name, arn, description, kms_key_id, tags, created_at, last_changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(&name)
    .bind(&arn)
    .bind(description)
    .bind(kms_key_id)
    .bind(tags)
    .bind(millis(now))
    .bind(millis(now))
    .fetch_optional(c.conn())
    .await
    .map_err(db)?;
    let Some(id) = id else {
        return Err(Abort::Conflict);
    };
    c.emit(
        now,
        "secret.created",
        Some(&name),
        serde_json::json!({"arn": arn}),
    );
    if let Some(version) = first_version {
        puts::put(c, id, version, now).await?;
    }
    Ok(Outcome::Created {
        id,
        arn,
        replayed: false,
    })
}

async fn save_tags(c: &mut Change, meta: &SecretMeta, now: DateTime<Utc>) -> Tx<Outcome> {
    let tags = serde_json::to_string(&meta.tags)
        .map_err(|_| Error::internal("tags could not be encoded"))?;
    sqlx::query("UPDATE secrets SET tags = $1, last_changed_at = $2 WHERE id = $3")
        .bind(tags)
        .bind(millis(now))
        .bind(meta.id)
        .execute(c.conn())
        .await
        .map_err(db)?;
    c.emit(
        now,
        "secret.updated",
        Some(&meta.name),
        serde_json::json!({}),
    );
    Ok(Outcome::Done)
}

/// The store ids of the secrets that `m` changes, named by id.
/// The secrets `m` changes (and so locks).
pub(super) fn secrets_of(m: &Mutation, ids: &mut Vec<i64>) {
    match m {
        Mutation::PutVersion { secret, .. }
        | Mutation::UpdateMeta { secret, .. }
        | Mutation::MoveLabel { secret, .. }
        | Mutation::Tag { secret, .. }
        | Mutation::Untag { secret, .. }
        | Mutation::ScheduleDeletion { secret, .. }
        | Mutation::Restore { secret }
        | Mutation::Purge { secret }
        | Mutation::SetRotation { secret, .. } => ids.push(*secret),
        Mutation::StartRotation { record } | Mutation::SaveRotation { record, .. } => {
            ids.push(record.secret)
        }
        Mutation::Atomic(all) => all.iter().for_each(|m| secrets_of(m, ids)),
        _ => {}
    }
}

/// The secret's metadata, its row locked until the transaction ends: every mutation
/// of a secret goes through here (or [`lock_secret`]) before reading anything else.
pub(super) async fn lock_meta(c: &mut Change, id: i64) -> Tx<SecretMeta> {
    let row = sqlx::query("SELECT * FROM secrets WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(c.conn())
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found("Secrets Manager can't find the specified secret."))?;
    Ok(crate::rows::secret_meta(&row)?)
}

/// Locks the secret's row until the transaction ends; whether it exists.
pub(super) async fn lock_secret(c: &mut Change, id: i64) -> Tx<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM secrets WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(c.conn())
        .await
        .map_err(db)?;
    Ok(found.is_some())
}

/// The label board of a secret: its labeled versions only, so that its cost does not
/// grow with deprecated versions. `also` names versions to include even without
/// labels, once checked to exist (e.g. the target of a label move). Call with the
/// secret's row locked.
pub(super) async fn board(c: &mut Change, secret: i64, also: &[&str]) -> Tx<LabelBoard> {
    let rows = sqlx::query("SELECT label, version_id FROM labels WHERE secret_id = $1")
        .bind(secret)
        .fetch_all(c.conn())
        .await
        .map_err(db)?;
    let mut by_version: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in &rows {
        let label: String = get(row, "label")?;
        let version: String = get(row, "version_id")?;
        by_version.entry(version).or_default().push(label);
    }
    for id in also {
        if !by_version.contains_key(*id) && stored_digest(c, secret, id).await?.is_some() {
            by_version.insert(id.to_string(), Vec::new());
        }
    }
    Ok(LabelBoard::from_versions(by_version))
}

/// Writes the label changes from `before` to `after` of one secret: at most one
/// statement for the labels that went and one for those that moved or came.
pub(super) async fn save_labels(
    c: &mut Change,
    secret: i64,
    before: &LabelBoard,
    after: &LabelBoard,
) -> Tx<()> {
    let (gone, moved) = after.label_changes(before);
    if !gone.is_empty() {
        sqlx::query("DELETE FROM labels WHERE secret_id = $1 AND label = ANY($2)")
            .bind(secret)
            .bind(&gone)
            .execute(c.conn())
            .await
            .map_err(db)?;
    }
    if !moved.is_empty() {
        let (labels, versions): (Vec<String>, Vec<String>) = moved.into_iter().unzip();
        sqlx::query(
            "INSERT INTO labels (secret_id, label, version_id)
             SELECT $1, l, v FROM UNNEST($2::text[], $3::text[]) AS m (l, v)
             ON CONFLICT (secret_id, label) DO UPDATE SET version_id = excluded.version_id",
        )
        .bind(secret)
        .bind(&labels)
        .bind(&versions)
        .execute(c.conn())
        .await
        .map_err(db)?;
    }
    Ok(())
}

pub(super) async fn touch(c: &mut Change, secret: i64, now: DateTime<Utc>) -> Tx<()> {
    sqlx::query("UPDATE secrets SET last_changed_at = $1 WHERE id = $2")
        .bind(millis(now))
        .bind(secret)
        .execute(c.conn())
        .await
        .map_err(db)?;
    Ok(())
}

pub(super) async fn stored_digest(
    c: &mut Change,
    secret: i64,
    version: &str,
) -> Tx<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT digest FROM versions WHERE secret_id = $1 AND version_id = $2")
        .bind(secret)
        .bind(version)
        .fetch_optional(c.conn())
        .await
        .map_err(db)
}

/// Deletes deprecated versions past the limit, by the rule in
/// [`rotor_core::label::prunable`].
pub(super) async fn prune(c: &mut Change, secret: i64, total: usize, now: DateTime<Utc>) -> Tx<()> {
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
           WHERE v.secret_id = $1 AND v.created_at <= $2
             AND NOT EXISTS (SELECT 1 FROM labels l
                             WHERE l.secret_id = v.secret_id AND l.version_id = v.version_id)) c
         WHERE n <= $3 AND (created_at <= $4 OR n <= $5)
         ORDER BY n",
    )
    .bind(secret)
    .bind(millis(crate::prune_horizon(total, now)))
    .bind(label::prune_candidates(total) as i64)
    .bind(millis(
        now - chrono::Duration::hours(label::MIN_PRUNE_AGE_HOURS),
    ))
    .bind(label::prune_regardless_of_age(total) as i64)
    .fetch_all(c.conn())
    .await
    .map_err(db)?;
    let mut candidates = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = get(r, "version_id")?;
        candidates.push((id, from_millis(get(r, "created_at")?)));
    }
    let doomed = label::prunable(total, &candidates, now);
    if doomed.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM versions WHERE secret_id = $1 AND version_id = ANY($2)")
        .bind(secret)
        .bind(&doomed)
        .execute(c.conn())
        .await
        .map_err(db)?;
    sqlx::query("UPDATE secrets SET version_count = version_count - $1 WHERE id = $2")
        .bind(doomed.len() as i64)
        .bind(secret)
        .execute(c.conn())
        .await
        .map_err(db)?;
    Ok(())
}
