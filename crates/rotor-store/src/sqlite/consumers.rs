//! The consumer registry on SQLite: reports (registrations, heartbeats, reads), a
//! consumer leaving, pruning, and reading a secret's consumers.

use crate::errors::db_error;
use crate::{ConsumerRow, Outcome, millis};
use chrono::{DateTime, Utc};
use rotor_core::Result;
use sqlx::sqlite::SqliteConnection;

/// Upserts each report, in order; a row of a secret that is gone, or of a consumer id
/// another principal holds, changes nothing. Many reports go in one statement (a
/// flush of readers may hold thousands): SQLite upserts the rows one after another in
/// the order the statement lists them (numbered, so that no plan reorders them), as
/// separate statements would.
pub(super) async fn report(conn: &mut SqliteConnection, rows: Vec<ConsumerRow>) -> Result<Outcome> {
    for chunk in rows.chunks(super::puts::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO consumers (secret_id, consumer, kind, version_id, principal, host,
                                    first_seen, last_seen, expires_at)
             SELECT r.column2, r.column3, r.column4, r.column5, r.column6, r.column7,
                    r.column8, r.column9, r.column10
             FROM (VALUES {}) AS r
             WHERE EXISTS (SELECT 1 FROM secrets WHERE id = r.column2)
             ORDER BY r.column1
             ON CONFLICT (secret_id, consumer) DO UPDATE SET
                kind = excluded.kind, version_id = excluded.version_id, host = excluded.host,
                last_seen = excluded.last_seen, expires_at = excluded.expires_at
             WHERE consumers.principal = excluded.principal
               AND consumers.last_seen <= excluded.last_seen",
            vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (n, r) in chunk.iter().enumerate() {
            q = q
                .bind(n as i64)
                .bind(r.secret)
                .bind(&r.consumer)
                .bind(r.kind.as_str())
                .bind(&r.version_id)
                .bind(&r.principal)
                .bind(&r.host)
                .bind(millis(r.last_seen))
                .bind(millis(r.last_seen))
                .bind(r.expires.map(millis));
        }
        q.execute(&mut *conn).await.map_err(db_error)?;
    }
    Ok(Outcome::Done)
}

/// A registered consumer of `secret` leaves: its lease ends now.
pub(super) async fn end(
    conn: &mut SqliteConnection,
    secret: i64,
    consumer: &str,
    principal: &str,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    sqlx::query(
        "UPDATE consumers SET expires_at = ? WHERE secret_id = ? AND consumer = ?
           AND principal = ? AND kind = 'registered'",
    )
    .bind(millis(now))
    .bind(secret)
    .bind(consumer)
    .bind(principal)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(Outcome::Done)
}

/// Forgets consumers gone, or readers last seen, before `before`.
pub(super) async fn prune(conn: &mut SqliteConnection, before: DateTime<Utc>) -> Result<Outcome> {
    sqlx::query(
        "DELETE FROM consumers WHERE (expires_at IS NOT NULL AND expires_at < ?)
            OR (expires_at IS NULL AND last_seen < ?)",
    )
    .bind(millis(before))
    .bind(millis(before))
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(Outcome::Done)
}

/// The consumers of `secrets`, by secret then consumer id.
pub(super) async fn of(conn: &mut SqliteConnection, secrets: &[i64]) -> Result<Vec<ConsumerRow>> {
    let mut out = Vec::new();
    for secret in secrets {
        let rows = sqlx::query("SELECT * FROM consumers WHERE secret_id = ? ORDER BY consumer")
            .bind(secret)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        for row in &rows {
            out.push(crate::rows::consumer(row)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::sqlite::SqliteStore;
    use crate::{ConsumerKind, ConsumerRow, Mutation, Store};
    use chrono::{DateTime, Utc};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + secs, 0).unwrap_or_default()
    }

    fn row(secret: i64, consumer: &str, version: &str, principal: &str, secs: i64) -> ConsumerRow {
        ConsumerRow {
            secret,
            consumer: consumer.into(),
            kind: if consumer.contains('@') {
                ConsumerKind::Reader
            } else {
                ConsumerKind::Registered
            },
            version_id: version.into(),
            principal: principal.into(),
            host: Some("10.0.0.1".into()),
            first_seen: at(secs),
            last_seen: at(secs),
            expires: (!consumer.contains('@')).then(|| at(secs + 60)),
        }
    }

    /// The registry after `reports`, each one mutation, in a store of two secrets.
    async fn registry(reports: Vec<Vec<ConsumerRow>>) -> Vec<ConsumerRow> {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("rotor.db"), false)
            .await
            .unwrap();
        for name in ["app/a", "app/b"] {
            store
                .apply(
                    Mutation::CreateSecret {
                        name: name.into(),
                        arn: format!("arn:aws:secretsmanager:us-east-1:1:secret:{name}-AbCdEf"),
                        description: None,
                        kms_key_id: None,
                        tags: vec![],
                        first_version: None,
                    },
                    at(0),
                )
                .await
                .unwrap();
        }
        for consumers in reports {
            store
                .apply(Mutation::ReportConsumers { consumers }, at(0))
                .await
                .unwrap();
        }
        store.consumers(&[1, 2]).await.unwrap()
    }

    /// One report of many rows, more than one statement holds, leaves the registry
    /// as the same rows reported one at a time: repeated consumers, a late report, a
    /// consumer id another principal holds, a secret that does not exist.
    #[tokio::test]
    async fn a_report_of_many_rows_upserts_them_in_order() {
        let mut rows = vec![
            row(1, "web-1", "v1", "app", 0),
            row(2, "web-1", "v1", "app", 0),
            row(1, "svc@10.0.0.9", "v1", "svc", 5),
            row(9_999, "web-9", "v1", "app", 0),
            row(1, "web-1", "v2", "app", 15),
            row(1, "web-1", "v9", "intruder", 20),
            row(1, "web-1", "v1", "app", 10),
            row(1, "svc@10.0.0.9", "v2", "svc", 30),
        ];
        rows.extend(
            (0..250).map(|i| row(1 + i % 2, &format!("r{}@10.0.1.1", i % 120), "v1", "svc", i)),
        );
        let together = registry(vec![rows.clone()]).await;
        let one_by_one = registry(rows.into_iter().map(|r| vec![r]).collect()).await;
        assert_eq!(together, one_by_one);
        let web = together
            .iter()
            .find(|r| r.secret == 1 && r.consumer == "web-1")
            .unwrap();
        assert_eq!(
            (web.version_id.as_str(), web.principal.as_str()),
            ("v2", "app")
        );
        assert_eq!((web.first_seen, web.last_seen), (at(0), at(15)));
        // web-1 of both secrets, svc's reader, and 120 readers (r0..r119, each of one
        // secret: 120 is even).
        assert_eq!(together.len(), 123);
    }
}
