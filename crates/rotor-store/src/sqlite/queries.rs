//! Reading secrets from SQLite through the pool of read-only connections: a secret
//! with its labeled versions, one version, every version's metadata, the list of
//! secrets with their labels, and the master keys; and decoding the version rows,
//! whose labels SQLite aggregates into one newline-separated string.

use super::SqliteStore;
use crate::errors::db_error;
use crate::{
    Listing, Lookup, SealedValue, SecretRecord, SecretSummary, StoredVersion, from_millis,
};
use rotor_core::Result;
use rotor_core::model::VersionMeta;
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;
use std::collections::BTreeMap;

/// A secret's row beside each of its labeled versions (once, with empty version
/// columns, when none is labeled), in one statement: a read that misses the cache
/// costs one round trip to SQLite's worker thread, not two. The versions are found
/// through the secret's labels, so deprecated ones, which may be many, are not read.
macro_rules! record_query {
    ($key:literal) => {
        concat!(
            "SELECT s.*, v.version_id AS v_version_id, v.created_at AS v_created_at,
                    v.ciphertext AS v_ciphertext, v.wrapped_key AS v_wrapped_key,
                    v.algorithm AS v_algorithm, v.key_id AS v_key_id, v.digest AS v_digest,
                    (SELECT group_concat(l.label, char(10)) FROM labels l
                      WHERE l.secret_id = v.secret_id AND l.version_id = v.version_id) AS v_labels
             FROM secrets s
             LEFT JOIN versions v ON v.secret_id = s.id
               AND v.version_id IN (SELECT l.version_id FROM labels l WHERE l.secret_id = s.id)
             WHERE s.",
            $key,
            " = ? ORDER BY v.seq"
        )
    };
}

/// Secrets listed per statement: a listing holds one such batch of rows at a time,
/// not a row of every secret. Small in tests, so that they cross batches.
const LIST_BATCH: i64 = if cfg!(test) { 7 } else { 1000 };

impl SqliteStore {
    pub(super) async fn load_record(&self, lookup: &Lookup) -> Result<Option<SecretRecord>> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        let rows = match lookup {
            Lookup::Name(name) => sqlx::query(record_query!("name")).bind(name),
            Lookup::Arn(arn) => sqlx::query(record_query!("arn")).bind(arn),
        }
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let meta = crate::rows::secret_meta(first)?;
        let mut versions = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(version) = labeled_version(row)? {
                versions.push(version);
            }
        }
        Ok(Some(SecretRecord { meta, versions }))
    }

    pub(super) async fn load_one_version(
        &self,
        secret: i64,
        version_id: &str,
    ) -> Result<Option<StoredVersion>> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        let row = sqlx::query(
            "SELECT v.version_id, v.created_at, v.ciphertext, v.wrapped_key, v.algorithm, v.key_id, v.digest,
                    (SELECT group_concat(l.label, char(10)) FROM labels l
                      WHERE l.secret_id = v.secret_id AND l.version_id = v.version_id) AS labels
             FROM versions v WHERE v.secret_id = ? AND v.version_id = ?",
        )
        .bind(secret)
        .bind(version_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        row.as_ref().map(version_from_row).transpose()
    }

    pub(super) async fn all_versions(&self, secret: i64) -> Result<Vec<VersionMeta>> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        let rows = sqlx::query(
            "SELECT v.version_id, v.created_at, v.source,
                    (SELECT group_concat(l.label, char(10)) FROM labels l
                      WHERE l.secret_id = v.secret_id AND l.version_id = v.version_id) AS labels
             FROM versions v WHERE v.secret_id = ? ORDER BY v.seq",
        )
        .bind(secret)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                Ok(VersionMeta {
                    id: r.try_get("version_id").map_err(db_error)?,
                    labels: split_labels(r.try_get("labels").map_err(db_error)?),
                    created: from_millis(r.try_get("created_at").map_err(db_error)?),
                    source: r.try_get("source").map_err(db_error)?,
                })
            })
            .collect()
    }

    /// The secrets `listing` selects, with their labels, ordered by creation. Read in
    /// batches of [`LIST_BATCH`] inside one read transaction, so the listing is one
    /// snapshot while SQLite's rows for only one batch are held at a time; each row's
    /// labels come with it. A prefix is a range of the name index (batches follow
    /// names); otherwise batches follow ids, through the index of rotating secrets or
    /// of deletion dates when the listing asks only for those.
    pub(super) async fn list_summaries(&self, listing: &Listing) -> Result<Vec<SecretSummary>> {
        let range = listing.name_range();
        let sql = list_query(listing);
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        let mut snapshot = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(db_error)?;
        let mut listed: Vec<(i64, SecretSummary)> = Vec::new();
        let mut after_id = i64::MIN;
        let mut after_name = String::new();
        loop {
            // Built by `list_query` from constant fragments; values are parameters.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            query = match &range {
                Some((low, high)) => {
                    let query = query.bind(*low).bind(after_name.clone());
                    match high {
                        Some(high) => query.bind(high.clone()),
                        None => query,
                    }
                }
                None => query.bind(after_id),
            };
            if let Some(at) = listing.deletion_due {
                query = query.bind(crate::millis(at));
            }
            let rows = query
                .bind(LIST_BATCH)
                .fetch_all(&mut *snapshot)
                .await
                .map_err(db_error)?;
            for row in &rows {
                let meta = crate::rows::secret_meta(row)?;
                let created: i64 = row.try_get("created_at").map_err(db_error)?;
                after_id = meta.id;
                after_name.clone_from(&meta.name);
                if listing.admits(&meta) {
                    let stages = stages_of(row.try_get("stages").map_err(db_error)?);
                    listed.push((created, SecretSummary { meta, stages }));
                }
            }
            if (rows.len() as i64) < LIST_BATCH {
                break;
            }
        }
        snapshot.rollback().await.map_err(db_error)?;
        listed.sort_by_key(|(created, summary)| (*created, summary.meta.id));
        Ok(listed.into_iter().map(|(_, summary)| summary).collect())
    }

    pub(super) async fn master_key_ids(&self) -> Result<Vec<String>> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        sqlx::query_scalar("SELECT key_id FROM master_keys ORDER BY added_at")
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)
    }
}

/// The statement of one batch of `listing`. Its parameters: the prefix, the last
/// name listed (`''` at first: no name is empty) and the name every listed one is
/// below (when there is one), or the last id listed; then the deletion horizon, if
/// any; then the batch size.
fn list_query(listing: &Listing) -> String {
    let mut sql = String::from(
        "SELECT s.*, (SELECT group_concat(l.version_id || char(9) || l.label, char(10))
                       FROM labels l WHERE l.secret_id = s.id) AS stages
         FROM secrets s",
    );
    let by_name = listing.name_range().is_some();
    if !by_name {
        if listing.deletion_due.is_some() {
            sql.push_str(" INDEXED BY secrets_deletion");
        } else if listing.rotating {
            sql.push_str(" INDEXED BY secrets_rotating");
        }
    }
    match listing.name_range() {
        Some((_, Some(_))) => sql.push_str(" WHERE s.name >= ? AND s.name > ? AND s.name < ?"),
        Some((_, None)) => sql.push_str(" WHERE s.name >= ? AND s.name > ?"),
        None => sql.push_str(" WHERE s.id > ?"),
    }
    if !listing.include_deleted {
        sql.push_str(" AND s.deletion_date IS NULL");
    }
    if listing.rotating {
        sql.push_str(" AND s.rotator IS NOT NULL");
    }
    if listing.deletion_due.is_some() {
        sql.push_str(" AND s.deletion_date IS NOT NULL AND s.deletion_date <= ?");
    }
    sql.push_str(if by_name {
        " ORDER BY s.name LIMIT ?"
    } else {
        " ORDER BY s.id LIMIT ?"
    });
    sql
}

/// Labels as stored by `group_concat(label, char(10))`, sorted.
fn split_labels(joined: Option<String>) -> Vec<String> {
    let mut labels: Vec<String> = joined
        .map(|l| l.split('\n').map(str::to_string).collect())
        .unwrap_or_default();
    labels.sort();
    labels
}

/// `(version id, labels)` of each labeled version, by version id, labels sorted, from
/// `group_concat(version_id || char(9) || label, char(10))`: neither a version id nor
/// a label may hold a control character.
fn stages_of(joined: Option<String>) -> Vec<(String, Vec<String>)> {
    let mut by_version: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in joined.iter().flat_map(|j| j.split('\n')) {
        if let Some((version, label)) = pair.split_once('\t') {
            by_version
                .entry(version.to_string())
                .or_default()
                .push(label.to_string());
        }
    }
    for labels in by_version.values_mut() {
        labels.sort();
    }
    by_version.into_iter().collect()
}

/// The version columns (`v_...`) of a [`record_query`] row; none when the secret has
/// no labeled version.
fn labeled_version(r: &SqliteRow) -> Result<Option<StoredVersion>> {
    let Some(id) = r
        .try_get::<Option<String>, _>("v_version_id")
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    Ok(Some(StoredVersion {
        id,
        labels: split_labels(r.try_get("v_labels").map_err(db_error)?),
        created: from_millis(r.try_get("v_created_at").map_err(db_error)?),
        sealed: SealedValue {
            ciphertext: r.try_get("v_ciphertext").map_err(db_error)?,
            wrapped_key: r.try_get("v_wrapped_key").map_err(db_error)?,
            algorithm: r.try_get("v_algorithm").map_err(db_error)?,
            key_id: r.try_get("v_key_id").map_err(db_error)?,
            digest: r.try_get("v_digest").map_err(db_error)?,
        },
    }))
}

fn version_from_row(r: &SqliteRow) -> Result<StoredVersion> {
    Ok(StoredVersion {
        id: r.try_get("version_id").map_err(db_error)?,
        labels: split_labels(r.try_get("labels").map_err(db_error)?),
        created: from_millis(r.try_get("created_at").map_err(db_error)?),
        sealed: SealedValue {
            ciphertext: r.try_get("ciphertext").map_err(db_error)?,
            wrapped_key: r.try_get("wrapped_key").map_err(db_error)?,
            algorithm: r.try_get("algorithm").map_err(db_error)?,
            key_id: r.try_get("key_id").map_err(db_error)?,
            digest: r.try_get("digest").map_err(db_error)?,
        },
    })
}

#[cfg(test)]
mod tests {
    //! The reads above against the two-query forms they replaced, kept here as the
    //! reference: the same records and the same listings, over more secrets than one
    //! batch holds, created in an order their ids do not follow.

    use super::*;
    use crate::{Mutation, NewVersion, Store};
    use chrono::{DateTime, Utc};
    use rotor_core::model::Tag;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + secs, 0).unwrap_or_default()
    }

    fn version(id: &str, stages: &[&str]) -> NewVersion {
        NewVersion {
            source: None,
            id: id.into(),
            stages: stages.iter().map(|s| s.to_string()).collect(),
            sealed: SealedValue {
                ciphertext: format!("ct:{id}").into_bytes(),
                wrapped_key: format!("wk:{id}").into_bytes(),
                algorithm: "test".into(),
                key_id: "mk-test".into(),
                digest: format!("digest:{id}").into_bytes(),
            },
        }
    }

    /// Secrets with no version, one, several with moved and custom labels, and a
    /// deprecated one; some scheduled for deletion; creation times out of id order,
    /// with ties.
    async fn populated() -> (tempfile::TempDir, SqliteStore, usize) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("rotor.db"), false)
            .await
            .unwrap();
        let count = 3 * LIST_BATCH as usize + 2;
        for i in 0..count {
            let name = format!("app/s{i:02}");
            let created = at(((i * 5) % 11) as i64);
            let out = store
                .apply(
                    Mutation::CreateSecret {
                        arn: format!("arn:aws:secretsmanager:us-east-1:1:secret:{name}-AbCdEf"),
                        name,
                        description: (i % 2 == 0).then(|| format!("secret {i}")),
                        kms_key_id: None,
                        tags: vec![Tag {
                            key: "n".into(),
                            value: i.to_string(),
                        }],
                        first_version: (i % 5 != 0)
                            .then(|| version(&format!("a{i}"), &["AWSCURRENT"])),
                    },
                    created,
                )
                .await
                .unwrap();
            let crate::Outcome::Created { id, .. } = out else {
                panic!("create answered {out:?}");
            };
            if i % 3 == 0 && i % 5 != 0 {
                for (v, stages) in [
                    (format!("b{i}"), vec!["AWSCURRENT", "custom"]),
                    (format!("c{i}"), vec!["AWSPENDING"]),
                    (format!("d{i}"), vec!["AWSCURRENT"]),
                ] {
                    store
                        .apply(
                            Mutation::PutVersion {
                                secret: id,
                                version: version(&v, &stages),
                            },
                            created,
                        )
                        .await
                        .unwrap();
                }
            }
            if i % 4 == 1 {
                store
                    .apply(
                        Mutation::ScheduleDeletion {
                            secret: id,
                            deletion_date: at(86_400 * 7),
                        },
                        created,
                    )
                    .await
                    .unwrap();
            }
        }
        (dir, store, count)
    }

    async fn old_record(store: &SqliteStore, lookup: &Lookup) -> Option<SecretRecord> {
        let mut conn = store.readers.acquire().await.unwrap();
        let row = match lookup {
            Lookup::Name(name) => sqlx::query("SELECT * FROM secrets WHERE name = ?").bind(name),
            Lookup::Arn(arn) => sqlx::query("SELECT * FROM secrets WHERE arn = ?").bind(arn),
        }
        .fetch_optional(&mut *conn)
        .await
        .unwrap()?;
        let meta = crate::rows::secret_meta(&row).unwrap();
        let rows = sqlx::query(
            "SELECT v.version_id, v.created_at, v.ciphertext, v.wrapped_key, v.algorithm, v.key_id, v.digest,
                    group_concat(l.label, char(10)) AS labels
             FROM labels l JOIN versions v ON v.secret_id = l.secret_id AND v.version_id = l.version_id
             WHERE l.secret_id = ? GROUP BY v.version_id ORDER BY v.seq",
        )
        .bind(meta.id)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let versions = rows.iter().map(|r| version_from_row(r).unwrap()).collect();
        Some(SecretRecord { meta, versions })
    }

    async fn old_list(store: &SqliteStore, include_deleted: bool) -> Vec<SecretSummary> {
        let mut conn = store.readers.acquire().await.unwrap();
        let rows = if include_deleted {
            sqlx::query("SELECT * FROM secrets ORDER BY created_at, id")
        } else {
            sqlx::query("SELECT * FROM secrets WHERE deletion_date IS NULL ORDER BY created_at, id")
        }
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let labels = sqlx::query("SELECT secret_id, version_id, label FROM labels ORDER BY label")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        let mut stages: BTreeMap<i64, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for r in labels {
            stages
                .entry(r.get("secret_id"))
                .or_default()
                .entry(r.get("version_id"))
                .or_default()
                .push(r.get("label"));
        }
        rows.iter()
            .map(|row| {
                let meta = crate::rows::secret_meta(row).unwrap();
                let stages = stages
                    .remove(&meta.id)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                SecretSummary { meta, stages }
            })
            .collect()
    }

    /// Debug output hides sealed bytes: they are compared on their own.
    fn same_records(a: &SecretRecord, b: &SecretRecord) {
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let sealed = |r: &SecretRecord| -> Vec<SealedValue> {
            r.versions.iter().map(|v| v.sealed.clone()).collect()
        };
        assert_eq!(sealed(a), sealed(b));
    }

    #[tokio::test]
    async fn a_record_reads_as_it_did_in_two_queries() {
        let (_dir, store, count) = populated().await;
        for i in 0..count {
            let name = format!("app/s{i:02}");
            let by_name = Lookup::Name(name.clone());
            let new = store.load_record(&by_name).await.unwrap().unwrap();
            same_records(&new, &old_record(&store, &by_name).await.unwrap());
            let by_arn = Lookup::Arn(new.meta.arn.clone());
            same_records(
                &store.load_record(&by_arn).await.unwrap().unwrap(),
                &old_record(&store, &by_arn).await.unwrap(),
            );
            let labeled = match (i % 5, i % 3) {
                (0, _) => 0,
                (_, 0) => 3,
                _ => 1,
            };
            assert_eq!(new.versions.len(), labeled, "{name}");
        }
        let missing = Lookup::Name("app/none".into());
        assert!(store.load_record(&missing).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn listings_read_in_batches_as_they_did_at_once() {
        let (_dir, store, count) = populated().await;
        for include_deleted in [false, true] {
            let listing = if include_deleted {
                Listing::all()
            } else {
                Listing::live()
            };
            let new = store.list_summaries(&listing).await.unwrap();
            let old = old_list(&store, include_deleted).await;
            assert_eq!(format!("{new:?}"), format!("{old:?}"));
            let deleted = (0..count).filter(|i| i % 4 == 1).count();
            let expected = if include_deleted {
                count
            } else {
                count - deleted
            };
            assert_eq!(new.len(), expected);
        }
    }
}
