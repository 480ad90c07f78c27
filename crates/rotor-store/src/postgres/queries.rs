//! Reading secrets from PostgreSQL through the pool, outside any mutation's
//! transaction: a secret with its labeled versions, one version, every version's
//! metadata, the list of secrets with their labels, and the master keys; and decoding
//! PostgreSQL rows, whose labels come as arrays.

use super::{PgStore, db_error};
use crate::{
    Listing, Lookup, SealedValue, SecretRecord, SecretSummary, StoredVersion, from_millis,
};
use rotor_core::Result;
use rotor_core::model::VersionMeta;
use sqlx::Row as _;
use sqlx::postgres::{PgRow, Postgres};
use std::collections::BTreeMap;

/// Column `column` of a row, a failure to decode it told as a database error.
pub(super) fn get<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(
    row: &'r PgRow,
    column: &str,
) -> Result<T> {
    row.try_get(column).map_err(db_error)
}

/// Labels as aggregated by the queries below, sorted by byte (as SQLite sorts), not by
/// the database's collation.
fn sorted(mut labels: Vec<String>) -> Vec<String> {
    labels.sort();
    labels
}

fn version_from_row(r: &PgRow) -> Result<StoredVersion> {
    Ok(StoredVersion {
        id: get(r, "version_id")?,
        labels: sorted(get(r, "labels")?),
        created: from_millis(get(r, "created_at")?),
        sealed: SealedValue {
            ciphertext: get(r, "ciphertext")?,
            wrapped_key: get(r, "wrapped_key")?,
            algorithm: get(r, "algorithm")?,
            key_id: get(r, "key_id")?,
            digest: get(r, "digest")?,
        },
    })
}

impl PgStore {
    pub(super) async fn load_record(&self, lookup: &Lookup) -> Result<Option<SecretRecord>> {
        let row = match lookup {
            Lookup::Name(name) => sqlx::query("SELECT * FROM secrets WHERE name = $1").bind(name),
            Lookup::Arn(arn) => sqlx::query("SELECT * FROM secrets WHERE arn = $1").bind(arn),
        }
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let meta = crate::rows::secret_meta(&row)?;
        // Labeled versions only: their number does not grow with deprecated ones.
        let rows = sqlx::query(
            "SELECT v.version_id, v.created_at, v.ciphertext, v.wrapped_key, v.algorithm, v.key_id, v.digest,
                    array_agg(l.label) AS labels
             FROM labels l JOIN versions v ON v.secret_id = l.secret_id AND v.version_id = l.version_id
             WHERE l.secret_id = $1 GROUP BY v.secret_id, v.version_id ORDER BY v.seq",
        )
        .bind(meta.id)
        .fetch_all(&self.pool)
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
        let row = sqlx::query(
            "SELECT v.version_id, v.created_at, v.ciphertext, v.wrapped_key, v.algorithm, v.key_id, v.digest,
                    ARRAY(SELECT l.label FROM labels l
                          WHERE l.secret_id = v.secret_id AND l.version_id = v.version_id) AS labels
             FROM versions v WHERE v.secret_id = $1 AND v.version_id = $2",
        )
        .bind(secret)
        .bind(version_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(version_from_row).transpose()
    }

    pub(super) async fn all_versions(&self, secret: i64) -> Result<Vec<VersionMeta>> {
        let rows = sqlx::query(
            "SELECT v.version_id, v.created_at, v.source,
                    ARRAY(SELECT l.label FROM labels l
                          WHERE l.secret_id = v.secret_id AND l.version_id = v.version_id) AS labels
             FROM versions v WHERE v.secret_id = $1 ORDER BY v.seq",
        )
        .bind(secret)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                Ok(VersionMeta {
                    id: get(r, "version_id")?,
                    labels: sorted(get(r, "labels")?),
                    created: from_millis(get(r, "created_at")?),
                    source: get(r, "source")?,
                })
            })
            .collect()
    }

    /// The secrets `listing` selects, with their labels, ordered by creation: the
    /// secrets in one statement (a prefix ranges over the byte-ordered name index),
    /// then the labels of those secrets in another.
    pub(super) async fn list_summaries(&self, listing: &Listing) -> Result<Vec<SecretSummary>> {
        let mut sql = String::from("SELECT * FROM secrets WHERE true");
        let mut n = 0;
        let mut param = || {
            n += 1;
            format!("${n}")
        };
        let range = listing.name_range();
        if let Some((_, high)) = &range {
            sql += &format!(" AND name COLLATE \"C\" >= {}", param());
            if high.is_some() {
                sql += &format!(" AND name COLLATE \"C\" < {}", param());
            }
        }
        if !listing.include_deleted {
            sql += " AND deletion_date IS NULL";
        }
        if listing.rotating {
            sql += " AND rotator IS NOT NULL";
        }
        if listing.deletion_due.is_some() {
            sql += &format!(" AND deletion_date <= {}", param());
        }
        sql += " ORDER BY created_at, id";
        // Built above from constant fragments only; every value is a bound parameter.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some((low, high)) = range {
            query = query.bind(low);
            if let Some(high) = high {
                query = query.bind(high);
            }
        }
        if let Some(at) = listing.deletion_due {
            query = query.bind(crate::millis(at));
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db_error)?;
        let mut metas = Vec::with_capacity(rows.len());
        for row in &rows {
            let meta = crate::rows::secret_meta(row)?;
            if listing.admits(&meta) {
                metas.push(meta);
            }
        }
        let ids: Vec<i64> = metas.iter().map(|m| m.id).collect();
        let labels = sqlx::query(
            "SELECT secret_id, version_id, label FROM labels WHERE secret_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut stages: BTreeMap<i64, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for r in labels {
            let secret: i64 = get(&r, "secret_id")?;
            let version: String = get(&r, "version_id")?;
            let label: String = get(&r, "label")?;
            stages
                .entry(secret)
                .or_default()
                .entry(version)
                .or_default()
                .push(label);
        }
        Ok(metas
            .into_iter()
            .map(|meta| {
                let stages = stages
                    .remove(&meta.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(version, labels)| (version, sorted(labels)))
                    .collect();
                SecretSummary { meta, stages }
            })
            .collect())
    }

    pub(super) async fn master_key_ids(&self) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT key_id FROM master_keys ORDER BY added_at, key_id")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }
}
