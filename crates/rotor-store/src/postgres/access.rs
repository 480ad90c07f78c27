//! Principals, policies, credentials and the audit store sink, in PostgreSQL.

use super::db_error;
use super::queries::get;
use super::writer::{Change, Tx, db};
use crate::{
    AccessKeyRow, AccessMutation, AccessSnapshot, Outcome, PrincipalRow, SealedValue, TokenRow,
    from_millis, millis,
};
use chrono::{DateTime, Utc};
use rotor_core::{Error, Result};
use sqlx::postgres::{PgArguments, PgPool, Postgres};

/// The principal's id, its row locked against deletion until the transaction ends.
async fn principal_id(c: &mut Change, name: &str) -> Tx<i64> {
    let id = sqlx::query_scalar("SELECT id FROM principals WHERE name = $1 FOR SHARE")
        .bind(name)
        .fetch_optional(c.conn())
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found(format!("No principal named {name}")))?;
    Ok(id)
}

/// Checks that the policy exists, its row locked against deletion until the
/// transaction ends.
async fn policy_exists(c: &mut Change, name: &str) -> Tx<()> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT name FROM policies WHERE name = $1 FOR SHARE")
            .bind(name)
            .fetch_optional(c.conn())
            .await
            .map_err(db)?;
    found
        .map(|_| ())
        .ok_or_else(|| Error::not_found(format!("No policy named {name}")).into())
}

async fn exec(c: &mut Change, q: sqlx::query::Query<'_, Postgres, PgArguments>) -> Tx<u64> {
    Ok(q.execute(c.conn()).await.map_err(db)?.rows_affected())
}

pub(super) async fn apply(c: &mut Change, m: AccessMutation, now: DateTime<Utc>) -> Tx<Outcome> {
    match m {
        AccessMutation::CreatePrincipal { name, kind } => {
            // `DO NOTHING` rather than a check first: a concurrent create of the same
            // name on another node is waited for, then seen.
            let created = exec(
                c,
                sqlx::query(
                    "INSERT INTO principals (name, kind, created_at) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(&name)
                .bind(kind)
                .bind(millis(now)),
            )
            .await?;
            if created == 0 {
                return Err(
                    Error::exists(format!("A principal named {name} already exists")).into(),
                );
            }
        }
        AccessMutation::DeletePrincipal { name } => {
            let id = principal_id(c, &name).await?;
            for sql in [
                "DELETE FROM tokens WHERE principal_id = $1",
                "DELETE FROM access_keys WHERE principal_id = $1",
                "DELETE FROM principal_policies WHERE principal_id = $1",
                "DELETE FROM principals WHERE id = $1",
            ] {
                exec(c, sqlx::query(sql).bind(id)).await?;
            }
        }
        AccessMutation::PutPolicy { name, document } => {
            exec(
                c,
                sqlx::query(
                    "INSERT INTO policies (name, document, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at",
                )
                .bind(name)
                .bind(document)
                .bind(millis(now)),
            )
            .await?;
        }
        AccessMutation::DeletePolicy { name } => {
            policy_exists(c, &name).await?;
            exec(
                c,
                sqlx::query("DELETE FROM principal_policies WHERE policy = $1").bind(&name),
            )
            .await?;
            exec(
                c,
                sqlx::query("DELETE FROM policies WHERE name = $1").bind(&name),
            )
            .await?;
        }
        AccessMutation::Attach { principal, policy } => {
            let id = principal_id(c, &principal).await?;
            policy_exists(c, &policy).await?;
            exec(
                c,
                sqlx::query(
                    "INSERT INTO principal_policies (principal_id, policy) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(policy),
            )
            .await?;
        }
        AccessMutation::Detach { principal, policy } => {
            let id = principal_id(c, &principal).await?;
            let n = exec(
                c,
                sqlx::query(
                    "DELETE FROM principal_policies WHERE principal_id = $1 AND policy = $2",
                )
                .bind(id)
                .bind(&policy),
            )
            .await?;
            if n == 0 {
                return Err(Error::not_found(format!(
                    "Policy {policy} is not attached to {principal}"
                ))
                .into());
            }
        }
        AccessMutation::CreateToken {
            id,
            principal,
            hash,
            expires,
        } => {
            let pid = principal_id(c, &principal).await?;
            exec(
                c,
                sqlx::query(
                    "INSERT INTO tokens (id, principal_id, hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                )
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
                c,
                sqlx::query(
                    "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
                )
                .bind(millis(now))
                .bind(&id),
            )
            .await?;
            if n == 0 {
                return Err(Error::not_found(format!("No token with id {id}")).into());
            }
        }
        AccessMutation::CreateAccessKey {
            id,
            principal,
            sealed,
        } => {
            let pid = principal_id(c, &principal).await?;
            exec(
                c,
                sqlx::query(
                    "INSERT INTO access_keys (id, principal_id, ciphertext, wrapped_key, algorithm, key_id, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
                c,
                sqlx::query("DELETE FROM access_keys WHERE id = $1").bind(&id),
            )
            .await?;
            if n == 0 {
                return Err(Error::not_found(format!("No access key {id}")).into());
            }
        }
    }
    Ok(Outcome::Done)
}

pub(super) async fn append_audit(
    c: &mut Change,
    first: i64,
    last: i64,
    lines: String,
) -> Tx<Outcome> {
    // Appends take turns (readers are not blocked), so that the overlap check below
    // and the insert are one step even with several nodes appending.
    sqlx::query("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
        .execute(c.conn())
        .await
        .map_err(db)?;
    // Batches arrive in order, so the newest batch (found by primary key, without a
    // scan) is the only one that could overlap.
    let newest: Option<i64> =
        sqlx::query_scalar("SELECT last_seq FROM audit_log ORDER BY first_seq DESC LIMIT 1")
            .fetch_optional(c.conn())
            .await
            .map_err(db)?;
    if newest.is_some_and(|last| last >= first) {
        return Err(Error::exists(format!("audit entries from {first} are already stored")).into());
    }
    sqlx::query("INSERT INTO audit_log (first_seq, last_seq, lines) VALUES ($1, $2, $3)")
        .bind(first)
        .bind(last)
        .bind(lines)
        .execute(c.conn())
        .await
        .map_err(db)?;
    Ok(Outcome::Done)
}

pub(super) async fn snapshot(pool: &PgPool) -> Result<AccessSnapshot> {
    let mut principals = Vec::new();
    for r in sqlx::query("SELECT id, name, kind, created_at FROM principals ORDER BY id")
        .fetch_all(pool)
        .await
        .map_err(db_error)?
    {
        principals.push(PrincipalRow {
            id: get(&r, "id")?,
            name: get(&r, "name")?,
            kind: get(&r, "kind")?,
            created: from_millis(get(&r, "created_at")?),
            policies: Vec::new(),
        });
    }
    for r in sqlx::query("SELECT principal_id, policy FROM principal_policies")
        .fetch_all(pool)
        .await
        .map_err(db_error)?
    {
        let pid: i64 = get(&r, "principal_id")?;
        if let Some(p) = principals.iter_mut().find(|p| p.id == pid) {
            p.policies.push(get(&r, "policy")?);
        }
    }
    // By byte, as SQLite orders them, whatever the database's collation.
    for p in &mut principals {
        p.policies.sort();
    }
    let mut policies: Vec<(String, String)> = Vec::new();
    for r in sqlx::query("SELECT name, document FROM policies")
        .fetch_all(pool)
        .await
        .map_err(db_error)?
    {
        policies.push((get(&r, "name")?, get(&r, "document")?));
    }
    policies.sort();
    let mut tokens = Vec::new();
    for r in sqlx::query(
        "SELECT id, principal_id, hash, created_at, expires_at, revoked_at FROM tokens ORDER BY created_at, id",
    )
    .fetch_all(pool)
    .await
    .map_err(db_error)?
    {
        tokens.push(TokenRow {
            id: get(&r, "id")?,
            principal_id: get(&r, "principal_id")?,
            hash: get(&r, "hash")?,
            created: from_millis(get(&r, "created_at")?),
            expires: get::<Option<i64>>(&r, "expires_at")?.map(from_millis),
            revoked: get::<Option<i64>>(&r, "revoked_at")?.map(from_millis),
        });
    }
    let mut access_keys = Vec::new();
    for r in sqlx::query("SELECT * FROM access_keys ORDER BY created_at, id")
        .fetch_all(pool)
        .await
        .map_err(db_error)?
    {
        access_keys.push(AccessKeyRow {
            id: get(&r, "id")?,
            principal_id: get(&r, "principal_id")?,
            sealed: SealedValue {
                ciphertext: get(&r, "ciphertext")?,
                wrapped_key: get(&r, "wrapped_key")?,
                algorithm: get(&r, "algorithm")?,
                key_id: get(&r, "key_id")?,
                digest: Vec::new(),
            },
            created: from_millis(get(&r, "created_at")?),
        });
    }
    Ok(AccessSnapshot {
        principals,
        policies,
        tokens,
        access_keys,
    })
}

pub(super) async fn audit_entries(pool: &PgPool, after: i64) -> Result<Vec<(i64, String)>> {
    let rows = sqlx::query(
        "SELECT first_seq, lines FROM audit_log WHERE last_seq > $1 ORDER BY first_seq",
    )
    .bind(after)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    let mut out = Vec::new();
    for r in &rows {
        let first: i64 = get(r, "first_seq")?;
        let lines: String = get(r, "lines")?;
        for (i, line) in lines.lines().enumerate() {
            let seq = first + i as i64;
            if seq > after {
                out.push((seq, line.to_string()));
            }
        }
    }
    Ok(out)
}
