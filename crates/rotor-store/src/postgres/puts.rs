//! Adding a version to a secret on PostgreSQL.
//!
//! The secret's row is locked first, so puts to one secret from every node take turns;
//! then the existing digest decides between a new version, a replay and a clash, and
//! [`LabelBoard`] moves the labels exactly as on SQLite.

use super::apply::{board, prune, save_labels, stored_digest};
use super::events;
use super::queries::get;
use super::writer::{Change, Tx, db};
use crate::errors::refuse_if_deleted_date;
use crate::runs::{self, SecretState};
use crate::{NewVersion, Outcome, millis};
use chrono::{DateTime, Utc};
use rotor_core::label::{self, LabelBoard};
use rotor_core::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

/// Adds `version` to secret `secret`, or replays it.
pub(super) async fn put(
    c: &mut Change,
    secret: i64,
    version: NewVersion,
    now: DateTime<Utc>,
) -> Tx<Outcome> {
    let row = sqlx::query(
        "SELECT name, deletion_date, rotation_enabled, next_seq, version_count FROM secrets WHERE id = $1 FOR UPDATE",
    )
    .bind(secret)
    .fetch_optional(c.conn())
    .await
    .map_err(db)?
    .ok_or_else(|| Error::not_found("Secrets Manager can't find the specified secret."))?;
    let name: String = get(&row, "name")?;
    refuse_if_deleted_date(get(&row, "deletion_date")?)?;
    let rotates = get::<i64>(&row, "rotation_enabled")? != 0;
    let seq = get::<i64>(&row, "next_seq")? + 1;
    let count = get::<i64>(&row, "version_count")? + 1;

    let id = &version.id;
    let before = board(c, secret, &[]).await?;
    if let Some(digest) = stored_digest(c, secret, id).await? {
        return if digest == version.sealed.digest {
            Ok(Outcome::Version {
                labels: before.labels_of(id),
                replayed: true,
                rotates,
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
        rotates,
    })
}

pub(super) use crate::runs::Put;

/// Applies a run of puts in order, as SQLite's group commit does: the state of every
/// secret they touch is read in three statements (rows locked), the label rules run in
/// memory through [`LabelBoard`] in arrival order (so each outcome is what the puts
/// would give one after another), every refusal is decided before anything is
/// written, and the accepted versions, label moves and counters are written with a
/// few multi-row statements. The outer `Err` fails the whole run (nothing of it may be
/// kept); otherwise each put has its own outcome.
pub(super) async fn apply_run(c: &mut Change, puts: &[Put]) -> Tx<Vec<Result<Outcome>>> {
    let mut secrets: Vec<i64> = puts.iter().map(|p| p.secret).collect();
    secrets.sort_unstable();
    secrets.dedup();
    let (mut states, mut digests) = load_states(c, &secrets, puts).await?;

    let (results, accepted) = runs::decide(puts, &mut states, &mut digests);
    if accepted.is_empty() {
        return Ok(results);
    }

    for (put, _) in &accepted {
        if let Some(state) = states.get(&put.secret) {
            for (kind, name, detail) in runs::events(put, state) {
                c.emit(put.now, kind, Some(name), detail);
            }
        }
    }
    write_run(c, &accepted, &states).await?;
    for (secret, state) in &states {
        let Some(now) = state.last_changed else {
            continue;
        };
        // Only look for versions to prune when some may go.
        if label::may_prune(
            state.count as usize,
            state.oldest.map(crate::from_millis),
            now,
        ) {
            prune(c, *secret, state.count as usize, now).await?;
        }
    }
    Ok(results)
}

/// The state of the run's secrets, in one statement: their rows (locked already, with
/// the batch's first statement, so that this one sees what the previous holder of a
/// lock committed), their labels, the digests of the versions the run names that exist
/// already, and the oldest version of each secret that may have some to prune. The
/// digests and the oldest versions are looked up one key at a time (lateral
/// subqueries): an index probe each, whatever the planner thinks of a table whose
/// statistics lag behind a burst of puts (a join and a grouped MIN left to it may scan
/// every version to hash them).
async fn load_states(
    c: &mut Change,
    secrets: &[i64],
    puts: &[Put],
) -> Tx<(BTreeMap<i64, SecretState>, HashMap<(i64, String), Vec<u8>>)> {
    // The oldest version matters only to a secret that may have versions to prune.
    let put_secrets: Vec<i64> = puts.iter().map(|p| p.secret).collect();
    let put_versions: Vec<&str> = puts.iter().map(|p| p.version.id.as_str()).collect();
    let rows = sqlx::query(
        "SELECT 'secret' AS kind, id AS secret_id, name, NULL AS version_id, NULL::bytea AS digest,
                deletion_date, rotation_enabled, next_seq, version_count, NULL::bigint AS oldest
         FROM secrets WHERE id = ANY($1)
         UNION ALL
         SELECT 'label', secret_id, label, version_id, NULL, NULL, NULL, NULL, NULL, NULL
         FROM labels WHERE secret_id = ANY($1)
         UNION ALL
         SELECT 'digest', w.secret_id, NULL, w.version_id, v.digest, NULL, NULL, NULL, NULL, NULL
         FROM UNNEST($2::bigint[], $3::text[]) AS w (secret_id, version_id)
         CROSS JOIN LATERAL (
           SELECT digest FROM versions
           WHERE secret_id = w.secret_id AND version_id = w.version_id) v
         UNION ALL
         SELECT 'oldest', s.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, v.created_at
         FROM secrets s
         CROSS JOIN LATERAL (
           SELECT created_at FROM versions WHERE secret_id = s.id
           ORDER BY created_at LIMIT 1) v
         WHERE s.id = ANY($1) AND s.version_count >= $4",
    )
    .bind(secrets)
    .bind(&put_secrets)
    .bind(&put_versions)
    .bind(label::MAX_VERSIONS as i64)
    .fetch_all(c.conn())
    .await
    .map_err(db)?;
    let mut states = BTreeMap::new();
    let mut oldest = HashMap::new();
    let mut labels: BTreeMap<i64, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut digests = HashMap::new();
    for row in &rows {
        let secret: i64 = get(row, "secret_id")?;
        match get::<&str>(row, "kind")? {
            "secret" => {
                states.insert(
                    secret,
                    SecretState {
                        name: get(row, "name")?,
                        deletion_date: get(row, "deletion_date")?,
                        rotates: get::<i64>(row, "rotation_enabled")? != 0,
                        next_seq: get(row, "next_seq")?,
                        count: get(row, "version_count")?,
                        oldest: None,
                        before: LabelBoard::default(),
                        board: LabelBoard::default(),
                        last_changed: None,
                    },
                );
            }
            "label" => labels
                .entry(secret)
                .or_default()
                .entry(get(row, "version_id")?)
                .or_default()
                .push(get(row, "name")?),
            "digest" => {
                digests.insert((secret, get(row, "version_id")?), get(row, "digest")?);
            }
            _ => {
                oldest.insert(secret, get::<Option<i64>>(row, "oldest")?);
            }
        }
    }
    for (secret, state) in states.iter_mut() {
        state.oldest = oldest.remove(secret).flatten();
        if let Some(by_version) = labels.remove(secret) {
            state.before = LabelBoard::from_versions(by_version);
            state.board = state.before.clone();
        }
    }
    Ok((states, digests))
}

/// Writes what a run accepted in one statement: the new versions, the labels that
/// went and those that moved or came, and each changed secret's counters.
async fn write_run(
    c: &mut Change,
    accepted: &[(&Put, i64)],
    states: &BTreeMap<i64, SecretState>,
) -> Tx<()> {
    let n = accepted.len();
    let (mut secret, mut id, mut seq, mut at) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut ciphertext, mut wrapped, mut algorithm, mut key_id, mut digest, mut source) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (put, s) in accepted {
        let v = &put.version;
        secret.push(put.secret);
        id.push(v.id.as_str());
        seq.push(*s);
        at.push(millis(put.now));
        ciphertext.push(v.sealed.ciphertext.as_slice());
        wrapped.push(v.sealed.wrapped_key.as_slice());
        algorithm.push(v.sealed.algorithm.as_str());
        key_id.push(v.sealed.key_id.as_str());
        digest.push(v.sealed.digest.as_slice());
        source.push(v.source.as_deref());
    }
    let (mut gone_secret, mut gone_label) = (Vec::new(), Vec::new());
    let (mut moved_secret, mut moved_label, mut moved_version) =
        (Vec::new(), Vec::new(), Vec::new());
    let (mut ids, mut seqs, mut counts, mut ats) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, state) in states {
        let Some(now) = state.last_changed else {
            continue;
        };
        let (gone, moved) = state.board.label_changes(&state.before);
        for label in gone {
            gone_secret.push(*id);
            gone_label.push(label);
        }
        for (label, version) in moved {
            moved_secret.push(*id);
            moved_label.push(label);
            moved_version.push(version);
        }
        ids.push(*id);
        seqs.push(state.next_seq);
        counts.push(state.count);
        ats.push(millis(now));
    }
    // The sub-statements touch different rows (a label that went is not one that
    // moved), and the labels' foreign key is checked at the end of the statement,
    // when the versions they name are in. When the batch is this run alone, the same
    // statement numbers and writes its events.
    const WRITE: &str = "WITH added AS (
            INSERT INTO versions (secret_id, version_id, seq, created_at, ciphertext, wrapped_key,
                                  algorithm, key_id, digest, source)
            SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bytea[],
                                 $6::bytea[], $7::text[], $8::text[], $9::bytea[], $10::text[])),
         gone AS (
            DELETE FROM labels l USING UNNEST($11::bigint[], $12::text[]) AS g (secret_id, label)
            WHERE l.secret_id = g.secret_id AND l.label = g.label),
         moved AS (
            INSERT INTO labels (secret_id, label, version_id)
            SELECT * FROM UNNEST($13::bigint[], $14::text[], $15::text[])
            ON CONFLICT (secret_id, label) DO UPDATE SET version_id = excluded.version_id),
         counted AS (
            UPDATE secrets SET next_seq = u.seq, version_count = u.count, last_changed_at = u.at
            FROM UNNEST($16::bigint[], $17::bigint[], $18::bigint[], $19::bigint[])
              AS u (id, seq, count, at)
            WHERE secrets.id = u.id)";
    static ALONE: LazyLock<Arc<str>> =
        LazyLock::new(|| format!("{WRITE} SELECT NULL::bigint AS last").into());
    static WITH_EVENTS: LazyLock<Arc<str>> =
        LazyLock::new(|| format!("{WRITE}, {}", events::numbering(20)).into());
    let numbered = c
        .events_inline
        .then(|| events::Columns::take(c))
        .filter(|e| !e.is_empty());
    let sql = if numbered.is_some() {
        &WITH_EVENTS
    } else {
        &ALONE
    };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(Arc::clone(sql)))
        .bind(&secret)
        .bind(&id)
        .bind(&seq)
        .bind(&at)
        .bind(&ciphertext)
        .bind(&wrapped)
        .bind(&algorithm)
        .bind(&key_id)
        .bind(&digest)
        .bind(&source)
        .bind(&gone_secret)
        .bind(&gone_label)
        .bind(&moved_secret)
        .bind(&moved_label)
        .bind(&moved_version)
        .bind(&ids)
        .bind(&seqs)
        .bind(&counts)
        .bind(&ats);
    if let Some(columns) = &numbered {
        query = columns.bind(query);
    }
    let row = query.fetch_one(c.conn()).await.map_err(db)?;
    if let Some(last) = get::<Option<i64>>(&row, "last")? {
        c.written = Some(last);
    }
    Ok(())
}
