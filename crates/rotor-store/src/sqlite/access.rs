//! Principals, policies, credentials and the audit store sink, in SQLite.

use crate::errors::db_error;
use crate::{
    AccessKeyRow, AccessMutation, AccessSnapshot, Outcome, PrincipalRow, SealedValue, TokenRow,
    from_millis, millis,
};
use chrono::{DateTime, Utc};
use rotor_core::{Error, Result};
use sqlx::Row as _;
use sqlx::sqlite::SqliteConnection;

async fn principal_id(conn: &mut SqliteConnection, name: &str) -> Result<i64> {
    sqlx::query_scalar("SELECT id FROM principals WHERE name = ?")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?
        .ok_or_else(|| Error::not_found(format!("No principal named {name}")))
}

async fn policy_exists(conn: &mut SqliteConnection, name: &str) -> Result<()> {
    let found: Option<String> = sqlx::query_scalar("SELECT name FROM policies WHERE name = ?")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
    found
        .map(|_| ())
        .ok_or_else(|| Error::not_found(format!("No policy named {name}")))
}

async fn exec(
    conn: &mut SqliteConnection,
    q: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
) -> Result<u64> {
    Ok(q.execute(&mut *conn)
        .await
        .map_err(db_error)?
        .rows_affected())
}

pub(super) async fn apply(
    conn: &mut SqliteConnection,
    m: AccessMutation,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    match m {
        AccessMutation::CreatePrincipal { name, kind } => {
            let taken = sqlx::query_scalar::<_, i64>("SELECT id FROM principals WHERE name = ?")
                .bind(&name)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_error)?;
            if taken.is_some() {
                return Err(Error::exists(format!(
                    "A principal named {name} already exists"
                )));
            }
            exec(
                conn,
                sqlx::query("INSERT INTO principals (name, kind, created_at) VALUES (?, ?, ?)")
                    .bind(name)
                    .bind(kind)
                    .bind(millis(now)),
            )
            .await?;
        }
        AccessMutation::DeletePrincipal { name } => {
            let id = principal_id(conn, &name).await?;
            for sql in [
                "DELETE FROM tokens WHERE principal_id = ?",
                "DELETE FROM access_keys WHERE principal_id = ?",
                "DELETE FROM principal_policies WHERE principal_id = ?",
                "DELETE FROM principals WHERE id = ?",
            ] {
                exec(conn, sqlx::query(sql).bind(id)).await?;
            }
        }
        AccessMutation::PutPolicy { name, document } => {
            exec(
                conn,
                sqlx::query(
                    "INSERT INTO policies (name, document, updated_at) VALUES (?, ?, ?)
                     ON CONFLICT (name) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at",
                )
                .bind(name)
                .bind(document)
                .bind(millis(now)),
            )
            .await?;
        }
        AccessMutation::DeletePolicy { name } => {
            policy_exists(conn, &name).await?;
            exec(
                conn,
                sqlx::query("DELETE FROM principal_policies WHERE policy = ?").bind(&name),
            )
            .await?;
            exec(
                conn,
                sqlx::query("DELETE FROM policies WHERE name = ?").bind(&name),
            )
            .await?;
        }
        AccessMutation::Attach { principal, policy } => {
            let id = principal_id(conn, &principal).await?;
            policy_exists(conn, &policy).await?;
            exec(conn, sqlx::query("INSERT INTO principal_policies (principal_id, policy) VALUES (?, ?) ON CONFLICT DO NOTHING").bind(id).bind(policy)).await?;
        }
        AccessMutation::Detach { principal, policy } => {
            let id = principal_id(conn, &principal).await?;
            let n = exec(
                conn,
                sqlx::query("DELETE FROM principal_policies WHERE principal_id = ? AND policy = ?")
                    .bind(id)
                    .bind(&policy),
            )
            .await?;
            if n == 0 {
                return Err(Error::not_found(format!(
                    "Policy {policy} is not attached to {principal}"
                )));
            }
        }
        AccessMutation::CreateToken {
            id,
            principal,
            hash,
            expires,
        } => {
            let pid = principal_id(conn, &principal).await?;
            exec(
                conn,
                sqlx::query("INSERT INTO tokens (id, principal_id, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
                    .bind(id)
                    .bind(pid)
                    .bind(hash)
                    .bind(millis(now))
                    .bind(expires.map(millis)),
            )
            .await?;
        }
        AccessMutation::RevokeToken { id } => {
            let n = exec(
                conn,
                sqlx::query("UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
                    .bind(millis(now))
                    .bind(&id),
            )
            .await?;
            if n == 0 {
                return Err(Error::not_found(format!("No token with id {id}")));
            }
        }
        AccessMutation::CreateAccessKey {
            id,
            principal,
            sealed,
        } => {
            let pid = principal_id(conn, &principal).await?;
            exec(
                conn,
                sqlx::query(
                    "INSERT INTO access_keys (id, principal_id, ciphertext, wrapped_key, algorithm, key_id, created_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(id)
                .bind(pid)
                .bind(sealed.ciphertext)
                .bind(sealed.wrapped_key)
                .bind(sealed.algorithm)
                .bind(sealed.key_id)
                .bind(millis(now)),
            )
            .await?;
        }
        AccessMutation::DeleteAccessKey { id } => {
            let n = exec(
                conn,
                sqlx::query("DELETE FROM access_keys WHERE id = ?").bind(&id),
            )
            .await?;
            if n == 0 {
                return Err(Error::not_found(format!("No access key {id}")));
            }
        }
    }
    Ok(Outcome::Done)
}

pub(super) async fn append_audit(
    conn: &mut SqliteConnection,
    first: i64,
    last: i64,
    lines: String,
) -> Result<Outcome> {
    // Batches arrive in order, so the newest batch (found by primary key, without a
    // scan) is the only one that could overlap.
    let newest: Option<i64> =
        sqlx::query_scalar("SELECT last_seq FROM audit_log ORDER BY first_seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?;
    if newest.is_some_and(|last| last >= first) {
        return Err(Error::exists(format!(
            "audit entries from {first} are already stored"
        )));
    }
    sqlx::query("INSERT INTO audit_log (first_seq, last_seq, lines) VALUES (?, ?, ?)")
        .bind(first)
        .bind(last)
        .bind(lines)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(Outcome::Done)
}

pub(super) async fn snapshot(conn: &mut SqliteConnection) -> Result<AccessSnapshot> {
    let mut principals = Vec::new();
    for r in sqlx::query("SELECT id, name, kind, created_at FROM principals ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?
    {
        principals.push(PrincipalRow {
            id: r.try_get("id").map_err(db_error)?,
            name: r.try_get("name").map_err(db_error)?,
            kind: r.try_get("kind").map_err(db_error)?,
            created: from_millis(r.try_get("created_at").map_err(db_error)?),
            policies: Vec::new(),
        });
    }
    for r in sqlx::query("SELECT principal_id, policy FROM principal_policies ORDER BY policy")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?
    {
        let pid: i64 = r.try_get("principal_id").map_err(db_error)?;
        if let Some(p) = principals.iter_mut().find(|p| p.id == pid) {
            p.policies.push(r.try_get("policy").map_err(db_error)?);
        }
    }
    let mut policies = Vec::new();
    for r in sqlx::query("SELECT name, document FROM policies ORDER BY name")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?
    {
        policies.push((
            r.try_get("name").map_err(db_error)?,
            r.try_get("document").map_err(db_error)?,
        ));
    }
    let mut tokens = Vec::new();
    for r in sqlx::query("SELECT id, principal_id, hash, created_at, expires_at, revoked_at FROM tokens ORDER BY created_at").fetch_all(&mut *conn).await.map_err(db_error)? {
        tokens.push(TokenRow {
            id: r.try_get("id").map_err(db_error)?,
            principal_id: r.try_get("principal_id").map_err(db_error)?,
            hash: r.try_get("hash").map_err(db_error)?,
            created: from_millis(r.try_get("created_at").map_err(db_error)?),
            expires: r.try_get::<Option<i64>, _>("expires_at").map_err(db_error)?.map(from_millis),
            revoked: r.try_get::<Option<i64>, _>("revoked_at").map_err(db_error)?.map(from_millis),
        });
    }
    let mut access_keys = Vec::new();
    for r in sqlx::query("SELECT * FROM access_keys ORDER BY created_at")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?
    {
        access_keys.push(AccessKeyRow {
            id: r.try_get("id").map_err(db_error)?,
            principal_id: r.try_get("principal_id").map_err(db_error)?,
            sealed: SealedValue {
                ciphertext: r.try_get("ciphertext").map_err(db_error)?,
                wrapped_key: r.try_get("wrapped_key").map_err(db_error)?,
                algorithm: r.try_get("algorithm").map_err(db_error)?,
                key_id: r.try_get("key_id").map_err(db_error)?,
                digest: Vec::new(),
            },
            created: from_millis(r.try_get("created_at").map_err(db_error)?),
        });
    }
    Ok(AccessSnapshot {
        principals,
        policies,
        tokens,
        access_keys,
    })
}

pub(super) async fn audit_entries(
    conn: &mut SqliteConnection,
    after: i64,
) -> Result<Vec<(i64, String)>> {
    let rows =
        sqlx::query("SELECT first_seq, lines FROM audit_log WHERE last_seq > ? ORDER BY first_seq")
            .bind(after)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
    let mut out = Vec::new();
    for r in &rows {
        let first: i64 = r.try_get("first_seq").map_err(db_error)?;
        let lines: String = r.try_get("lines").map_err(db_error)?;
        for (i, line) in lines.lines().enumerate() {
            let seq = first + i as i64;
            if seq > after {
                out.push((seq, line.to_string()));
            }
        }
    }
    Ok(out)
}
