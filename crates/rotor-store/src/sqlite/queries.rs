//! Reading secrets from SQLite through the pool of read-only connections: a secret
//! with its labeled versions, one version, every version's metadata, the list of
//! secrets with their labels, and the master keys; and decoding the version rows,
//! whose labels SQLite aggregates into one newline-separated string.

use super::SqliteStore;
use crate::errors::db_error;
use crate::{Lookup, SealedValue, SecretRecord, SecretSummary, StoredVersion, from_millis};
use rotor_core::Result;
use rotor_core::model::VersionMeta;
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;
use std::collections::BTreeMap;

impl SqliteStore {
    pub(super) async fn load_record(&self, lookup: &Lookup) -> Result<Option<SecretRecord>> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        let row = match lookup {
            Lookup::Name(name) => sqlx::query("SELECT * FROM secrets WHERE name = ?").bind(name),
            Lookup::Arn(arn) => sqlx::query("SELECT * FROM secrets WHERE arn = ?").bind(arn),
        }
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let meta = crate::rows::secret_meta(&row)?;
        // Labeled versions only: their number does not grow with deprecated ones.
        let rows = sqlx::query(
            "SELECT v.version_id, v.created_at, v.ciphertext, v.wrapped_key, v.algorithm, v.key_id, v.digest,
                    group_concat(l.label, char(10)) AS labels
             FROM labels l JOIN versions v ON v.secret_id = l.secret_id AND v.version_id = l.version_id
             WHERE l.secret_id = ? GROUP BY v.version_id ORDER BY v.seq",
        )
        .bind(meta.id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        let versions = rows
            .iter()
            .map(version_from_row)
            .collect::<Result<Vec<_>>>()?;
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

    pub(super) async fn list_summaries(&self, include_deleted: bool) -> Result<Vec<SecretSummary>> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        let rows = if include_deleted {
            sqlx::query("SELECT * FROM secrets ORDER BY created_at, id")
        } else {
            sqlx::query("SELECT * FROM secrets WHERE deletion_date IS NULL ORDER BY created_at, id")
        }
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        let labels = sqlx::query("SELECT secret_id, version_id, label FROM labels ORDER BY label")
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        let mut stages: BTreeMap<i64, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for r in labels {
            let secret: i64 = r.try_get("secret_id").map_err(db_error)?;
            let version: String = r.try_get("version_id").map_err(db_error)?;
            let label: String = r.try_get("label").map_err(db_error)?;
            stages
                .entry(secret)
                .or_default()
                .entry(version)
                .or_default()
                .push(label);
        }
        rows.iter()
            .map(|row| {
                let meta = crate::rows::secret_meta(row)?;
                let stages = stages
                    .remove(&meta.id)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                Ok(SecretSummary { meta, stages })
            })
            .collect()
    }

    pub(super) async fn master_key_ids(&self) -> Result<Vec<String>> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        sqlx::query_scalar("SELECT key_id FROM master_keys ORDER BY added_at")
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)
    }
}

/// Labels as stored by `group_concat(label, char(10))`, sorted.
fn split_labels(joined: Option<String>) -> Vec<String> {
    let mut labels: Vec<String> = joined
        .map(|l| l.split('\n').map(str::to_string).collect())
        .unwrap_or_default();
    labels.sort();
    labels
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
