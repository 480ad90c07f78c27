//! Applying a run of `PutVersion`s together: the heart of group commit.
//!
//! One by one, a put costs several round trips to SQLite's worker thread. A run of puts
//! instead reads the state of every secret it touches in three queries, applies the
//! label rules in memory through [`LabelBoard`] in arrival order (so the outcome is
//! exactly what the puts would give one after another), decides every refusal before
//! anything is written, and then writes all accepted versions, label moves and
//! counters with a few multi-row statements. Only a database failure can fail the
//! writes, and then the caller rolls the whole run back.

use super::apply::{prune, save_labels};
use crate::errors::db_error;
use crate::runs::{self, SecretState};
use crate::{Outcome, millis};
use chrono::{DateTime, Utc};
use rotor_core::Result;
use rotor_core::label::{self, LabelBoard};
use sqlx::Row as _;
use sqlx::sqlite::SqliteConnection;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Rows per multi-row statement, well under SQLite's limit on bound parameters.
pub(super) const ROWS_PER_STATEMENT: usize = 100;

pub(crate) use crate::runs::Put;

fn placeholders(n: usize, one: &str) -> String {
    vec![one; n].join(", ")
}

/// Applies `puts` in order. The outer `Err` is a database failure (nothing of the run
/// may be kept); otherwise each put gets its own outcome.
pub(crate) async fn apply_run(
    conn: &mut SqliteConnection,
    puts: &[Put],
) -> Result<Vec<Result<Outcome>>> {
    let secrets: Vec<i64> = puts
        .iter()
        .map(|p| p.secret)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut states = load_states(conn, &secrets).await?;
    let mut digests = load_digests(conn, puts).await?;

    let (results, accepted) = runs::decide(puts, &mut states, &mut digests);

    insert_versions(conn, &accepted).await?;
    let mut events = Vec::new();
    for (put, _) in &accepted {
        if let Some(state) = states.get(&put.secret) {
            for (kind, name, detail) in runs::events(put, state) {
                events.push((put.now, kind, name, detail));
            }
        }
    }
    super::events::emit_many(conn, &events).await?;
    let changed: Vec<(i64, &LabelBoard, &LabelBoard)> = states
        .iter()
        .filter(|(_, s)| s.last_changed.is_some())
        .map(|(id, s)| (*id, &s.before, &s.board))
        .collect();
    save_labels(conn, &changed).await?;
    let counted: Vec<(i64, &SecretState, DateTime<Utc>)> = states
        .iter()
        .filter_map(|(id, s)| Some((*id, s, s.last_changed?)))
        .collect();
    save_counters(conn, &counted).await?;
    for (secret, state, now) in counted {
        // Only look for versions to prune when some may go.
        if label::may_prune(
            state.count as usize,
            state.oldest.map(crate::from_millis),
            now,
        ) {
            prune(conn, secret, state.count as usize, now).await?;
        }
    }
    Ok(results)
}

/// Writes each changed secret's counters: one statement for up to
/// [`ROWS_PER_STATEMENT`] secrets, not one each (a run of puts spread over many
/// secrets paid a statement, and a hop to the connection's thread, per secret).
async fn save_counters(
    conn: &mut SqliteConnection,
    counted: &[(i64, &SecretState, DateTime<Utc>)],
) -> Result<()> {
    for chunk in counted.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "UPDATE secrets SET next_seq = u.column2, version_count = u.column3,
                                last_changed_at = u.column4
             FROM (VALUES {}) AS u WHERE secrets.id = u.column1",
            vec!["(?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, state, now) in chunk {
            q = q
                .bind(id)
                .bind(state.next_seq)
                .bind(state.count)
                .bind(millis(*now));
        }
        q.execute(&mut *conn).await.map_err(db_error)?;
    }
    Ok(())
}

async fn load_states(
    conn: &mut SqliteConnection,
    secrets: &[i64],
) -> Result<BTreeMap<i64, SecretState>> {
    let mut states = BTreeMap::new();
    for chunk in secrets.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT s.id, s.name, s.deletion_date, s.rotation_enabled, s.next_seq, s.version_count,
                    (SELECT MIN(v.created_at) FROM versions v WHERE v.secret_id = s.id) AS oldest
             FROM secrets s WHERE s.id IN ({})",
            placeholders(chunk.len(), "?")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id);
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db_error)? {
            states.insert(
                row.try_get("id").map_err(db_error)?,
                SecretState {
                    name: row.try_get("name").map_err(db_error)?,
                    deletion_date: row.try_get("deletion_date").map_err(db_error)?,
                    rotates: row
                        .try_get::<i64, _>("rotation_enabled")
                        .map_err(db_error)?
                        != 0,
                    next_seq: row.try_get("next_seq").map_err(db_error)?,
                    count: row.try_get("version_count").map_err(db_error)?,
                    oldest: row.try_get("oldest").map_err(db_error)?,
                    before: LabelBoard::default(),
                    board: LabelBoard::default(),
                    last_changed: None,
                },
            );
        }
        let sql = format!(
            "SELECT secret_id, label, version_id FROM labels WHERE secret_id IN ({})",
            placeholders(chunk.len(), "?")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id);
        }
        let mut labels: BTreeMap<i64, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for row in q.fetch_all(&mut *conn).await.map_err(db_error)? {
            let secret: i64 = row.try_get("secret_id").map_err(db_error)?;
            let version: String = row.try_get("version_id").map_err(db_error)?;
            labels
                .entry(secret)
                .or_default()
                .entry(version)
                .or_default()
                .push(row.try_get("label").map_err(db_error)?);
        }
        for (secret, by_version) in labels {
            if let Some(state) = states.get_mut(&secret) {
                state.before = LabelBoard::from_versions(by_version);
                state.board = state.before.clone();
            }
        }
    }
    Ok(states)
}

async fn load_digests(
    conn: &mut SqliteConnection,
    puts: &[Put],
) -> Result<HashMap<(i64, String), Vec<u8>>> {
    let mut digests = HashMap::new();
    for chunk in puts.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT secret_id, version_id, digest FROM versions WHERE (secret_id, version_id) IN (VALUES {})",
            placeholders(chunk.len(), "(?, ?)")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for put in chunk {
            q = q.bind(put.secret).bind(&put.version.id);
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db_error)? {
            digests.insert(
                (
                    row.try_get("secret_id").map_err(db_error)?,
                    row.try_get("version_id").map_err(db_error)?,
                ),
                row.try_get("digest").map_err(db_error)?,
            );
        }
    }
    Ok(digests)
}

async fn insert_versions(conn: &mut SqliteConnection, accepted: &[(&Put, i64)]) -> Result<()> {
    for chunk in accepted.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO versions (secret_id, version_id, seq, created_at, ciphertext, wrapped_key, algorithm, key_id, digest, source)
             VALUES {}",
            placeholders(chunk.len(), "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (put, seq) in chunk {
            let v = &put.version;
            q = q
                .bind(put.secret)
                .bind(&v.id)
                .bind(seq)
                .bind(millis(put.now))
                .bind(&v.sealed.ciphertext)
                .bind(&v.sealed.wrapped_key)
                .bind(&v.sealed.algorithm)
                .bind(&v.sealed.key_id)
                .bind(&v.sealed.digest)
                .bind(&v.source);
        }
        q.execute(&mut *conn).await.map_err(db_error)?;
    }
    Ok(())
}
