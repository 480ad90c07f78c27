//! PostgreSQL: passwords as client-side SCRAM-SHA-256 verifiers, clones from the
//! catalogs' ACLs.

use crate::hash::scram_sha256_verifier;
use crate::{
    BoxFuture, CONNECT_TIMEOUT, Driver, Login, NameLimit, TargetError, TargetErrorKind,
    check_clone_names, check_name, check_password, scrub,
};
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};
use std::collections::BTreeMap;

/// PostgreSQL's identifier limit (`NAMEDATALEN - 1`).
const NAME_LIMIT: NameLimit = NameLimit::Bytes(63);

/// The database a login without `dbname` connects to, as AWS's rotation functions do.
const DEFAULT_DATABASE: &str = "postgres";

/// The [`Driver`] for PostgreSQL and Aurora PostgreSQL.
///
/// [`Driver::set_password`] runs `ALTER ROLE "user" WITH PASSWORD '<verifier>'` with a
/// SCRAM-SHA-256 verifier computed here, so the server stores it as is; a role may
/// change its own password that way. Passwords must be ASCII (see the crate docs).
///
/// [`Driver::ensure_clone`] works in one transaction, in the database of the admin's
/// login (`postgres` when it names none), and copies from `source` to `clone`:
/// - the role attributes `SUPERUSER`, `CREATEDB`, `CREATEROLE`, `REPLICATION`,
///   `BYPASSRLS`, `NOINHERIT` and the connection limit, when `source` has them
///   (`clone` always gets `LOGIN`; nothing is taken away from an existing clone);
/// - membership in every role `source` is a direct member of, with the admin option;
/// - privileges granted to `source` on every database of the cluster (`CONNECT`,
///   `CREATE`, `TEMPORARY`), and in the admin's database on schemas (`USAGE`,
///   `CREATE`), tables, views, materialized views, foreign tables, sequences, columns
///   and functions/procedures (`EXECUTE`), each with its grant option. On objects
///   `source` owns, the owner's privileges (`SELECT`, `INSERT`, ...) are granted,
///   not ownership: `clone` cannot `ALTER` or `DROP` them.
///
/// Not copied: per-role settings (`ALTER ROLE ... SET`), default privileges, large
/// objects, types, tablespaces, and privileges in other databases. A superuser
/// `source` gets a superuser `clone` and no object privileges (it needs none).
#[derive(Debug, Clone, Copy, Default)]
pub struct Postgres;

impl Driver for Postgres {
    fn check_login<'a>(&'a self, login: &'a Login) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            let mut conn = connect(login).await?;
            sqlx::query_scalar::<_, i32>("SELECT 1")
                .fetch_one(&mut conn)
                .await
                .map_err(|e| error("running SELECT 1", e, &[]))?;
            close(conn).await;
            Ok(())
        })
    }

    fn set_password<'a>(
        &'a self,
        admin: &'a Login,
        username: &'a str,
        new_password: &'a str,
    ) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            check_name("user name", username, NAME_LIMIT)?;
            check_password(new_password)?;
            let verifier = scram_sha256_verifier(new_password)?;
            let mut conn = connect(admin).await?;
            sqlx::raw_sql(AssertSqlSafe(password_statement(
                "ALTER", username, "", &verifier,
            )))
            .execute(&mut conn)
            .await
            .map_err(|e| {
                let context = format!("setting the password of {}", quote_ident(username));
                error(&context, e, &[&verifier])
            })?;
            close(conn).await;
            Ok(())
        })
    }

    fn ensure_clone<'a>(
        &'a self,
        admin: &'a Login,
        source: &'a str,
        clone: &'a str,
        new_password: &'a str,
    ) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            check_name("source user name", source, NAME_LIMIT)?;
            check_name("clone user name", clone, NAME_LIMIT)?;
            check_clone_names(source, clone)?;
            check_password(new_password)?;
            let verifier = scram_sha256_verifier(new_password)?;
            let mut conn = connect(admin).await?;
            let context = format!("cloning {} as {}", quote_ident(source), quote_ident(clone));
            let fail = |e| error(&context, e, &[&verifier]);
            let mut tx = conn.begin().await.map_err(fail)?;
            let statements = clone_statements(&mut tx, source, clone, &verifier).await?;
            for statement in statements {
                sqlx::raw_sql(AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
            }
            tx.commit().await.map_err(fail)?;
            close(conn).await;
            Ok(())
        })
    }

    fn disable_login<'a>(
        &'a self,
        admin: &'a Login,
        username: &'a str,
    ) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            check_name("user name", username, NAME_LIMIT)?;
            let mut conn = connect(admin).await?;
            sqlx::raw_sql(AssertSqlSafe(format!(
                "ALTER ROLE {} WITH NOLOGIN",
                quote_ident(username)
            )))
            .execute(&mut conn)
            .await
            .map_err(|e| {
                let context = format!("disabling the login of {}", quote_ident(username));
                error(&context, e, &[])
            })?;
            close(conn).await;
            Ok(())
        })
    }
}

/// `CREATE`/`ALTER ROLE "user" WITH LOGIN <attributes> PASSWORD '<verifier>'`. The
/// verifier is base64, `$` and `:`: nothing to escape.
fn password_statement(verb: &str, username: &str, attributes: &str, verifier: &str) -> String {
    format!(
        "{verb} ROLE {} WITH{attributes} PASSWORD '{verifier}'",
        quote_ident(username)
    )
}

/// The role attributes of `source` worth copying: those it has beyond the defaults.
#[derive(Debug, Clone, Copy)]
struct Attributes {
    rolsuper: bool,
    rolinherit: bool,
    rolcreaterole: bool,
    rolcreatedb: bool,
    rolreplication: bool,
    rolbypassrls: bool,
    rolconnlimit: i32,
}

impl Attributes {
    /// ` LOGIN SUPERUSER ...`: only the attributes `source` has, so that an admin
    /// without superuser can clone an ordinary role.
    fn clause(&self) -> String {
        let mut clause = String::from(" LOGIN");
        for (has, keyword) in [
            (self.rolsuper, " SUPERUSER"),
            (!self.rolinherit, " NOINHERIT"),
            (self.rolcreaterole, " CREATEROLE"),
            (self.rolcreatedb, " CREATEDB"),
            (self.rolreplication, " REPLICATION"),
            (self.rolbypassrls, " BYPASSRLS"),
        ] {
            if has {
                clause.push_str(keyword);
            }
        }
        if self.rolconnlimit >= 0 {
            clause.push_str(&format!(" CONNECTION LIMIT {}", self.rolconnlimit));
        }
        clause
    }
}

/// Schemas whose objects belong to the system, never granted on.
const SYSTEM_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/// Privileges to grant, gathered per object so that each object takes one `GRANT`.
#[derive(Default)]
struct Grants {
    /// (`ON ...` clause, with grant option) → privileges, each with its column if any.
    by_object: BTreeMap<(String, bool), Vec<String>>,
}

impl Grants {
    /// Adds `privilege` (optionally on `column`) on `object` (`ON TABLE "s"."t"`).
    fn add(
        &mut self,
        privilege: String,
        column: Option<&str>,
        object: String,
        grantable: bool,
    ) -> Result<(), TargetError> {
        // The privilege names come from the server; only keywords may be spliced in.
        if !privilege
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b' ')
        {
            return Err(TargetError::other(format!(
                "Unexpected privilege name {privilege:?} in the catalog"
            )));
        }
        let privilege = match column {
            Some(column) => format!("{privilege} ({})", quote_ident(column)),
            None => privilege,
        };
        self.by_object
            .entry((object, grantable))
            .or_default()
            .push(privilege);
        Ok(())
    }

    /// `GRANT <privileges> ON ... TO <to> [WITH GRANT OPTION]`, one per object.
    fn statements(self, to: &str) -> impl Iterator<Item = String> {
        self.by_object
            .into_iter()
            .map(move |((object, grantable), privileges)| {
                let option = if grantable { " WITH GRANT OPTION" } else { "" };
                format!("GRANT {} {object} TO {to}{option}", privileges.join(", "))
            })
    }
}

/// The statements that make `clone` a copy of `source`, read from the catalogs.
async fn clone_statements(
    conn: &mut PgConnection,
    source: &str,
    clone: &str,
    verifier: &str,
) -> Result<Vec<String>, TargetError> {
    let context = format!("reading the privileges of {}", quote_ident(source));
    let fail = |e| error(&context, e, &[]);
    let (
        rolsuper,
        rolinherit,
        rolcreaterole,
        rolcreatedb,
        rolreplication,
        rolbypassrls,
        rolconnlimit,
    ) = sqlx::query_as(
        "SELECT rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolreplication, \
             rolbypassrls, rolconnlimit FROM pg_roles WHERE rolname = $1",
    )
    .bind(source)
    .fetch_optional(&mut *conn)
    .await
    .map_err(fail)?
    .ok_or_else(|| TargetError::other(format!("Role {} does not exist", quote_ident(source))))?;
    let attributes = Attributes {
        rolsuper,
        rolinherit,
        rolcreaterole,
        rolcreatedb,
        rolreplication,
        rolbypassrls,
        rolconnlimit,
    };
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(clone)
            .fetch_one(&mut *conn)
            .await
            .map_err(fail)?;

    let to = quote_ident(clone);
    let verb = if exists { "ALTER" } else { "CREATE" };
    let mut statements = vec![password_statement(
        verb,
        clone,
        &attributes.clause(),
        verifier,
    )];

    let memberships: Vec<(String, bool)> = sqlx::query_as(
        "SELECT r.rolname::text, bool_or(m.admin_option) FROM pg_auth_members m \
         JOIN pg_roles r ON r.oid = m.roleid \
         WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = $1) \
         GROUP BY r.rolname ORDER BY r.rolname",
    )
    .bind(source)
    .fetch_all(&mut *conn)
    .await
    .map_err(fail)?;
    for (role, admin_option) in memberships {
        // The previous rotation's clone may be a member of `clone` itself.
        if role != clone {
            let option = if admin_option {
                " WITH ADMIN OPTION"
            } else {
                ""
            };
            statements.push(format!("GRANT {} TO {to}{option}", quote_ident(&role)));
        }
    }

    let mut grants = Grants::default();
    let databases: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT a.privilege_type, d.datname::text, a.is_grantable FROM pg_database d, \
         LATERAL aclexplode(COALESCE(d.datacl, acldefault('d'::\"char\", d.datdba))) a \
         WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1) ORDER BY 2, 1",
    )
    .bind(source)
    .fetch_all(&mut *conn)
    .await
    .map_err(fail)?;
    for (privilege, database, grantable) in databases {
        grants.add(
            privilege,
            None,
            format!("ON DATABASE {}", quote_ident(&database)),
            grantable,
        )?;
    }

    if !attributes.rolsuper {
        let schemas: Vec<(String, String, bool)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT a.privilege_type, n.nspname::text, a.is_grantable FROM pg_namespace n, \
             LATERAL aclexplode(COALESCE(n.nspacl, acldefault('n'::\"char\", n.nspowner))) a \
             WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1) AND {SYSTEM_SCHEMAS} \
             ORDER BY 2, 1"
        )))
        .bind(source)
        .fetch_all(&mut *conn)
        .await
        .map_err(fail)?;
        for (privilege, schema, grantable) in schemas {
            grants.add(
                privilege,
                None,
                format!("ON SCHEMA {}", quote_ident(&schema)),
                grantable,
            )?;
        }

        let relations: Vec<(String, String, String, bool, bool)> =
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT a.privilege_type, n.nspname::text, c.relname::text, c.relkind = 'S', \
                 a.is_grantable FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, \
                 LATERAL aclexplode(COALESCE(c.relacl, acldefault( \
                     (CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::\"char\", c.relowner))) a \
                 WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1) \
                 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND {SYSTEM_SCHEMAS} \
                 ORDER BY 2, 3, 1"
            )))
            .bind(source)
            .fetch_all(&mut *conn)
            .await
            .map_err(fail)?;
        for (privilege, schema, name, sequence, grantable) in relations {
            let kind = if sequence { "SEQUENCE" } else { "TABLE" };
            let object = format!("ON {kind} {}.{}", quote_ident(&schema), quote_ident(&name));
            grants.add(privilege, None, object, grantable)?;
        }

        let columns: Vec<(String, String, String, String, bool)> =
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT a.privilege_type, n.nspname::text, c.relname::text, att.attname::text, \
                 a.is_grantable FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace, LATERAL aclexplode(att.attacl) a \
                 WHERE att.attacl IS NOT NULL AND att.attnum > 0 AND NOT att.attisdropped \
                 AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1) AND {SYSTEM_SCHEMAS} \
                 ORDER BY 2, 3, 4, 1"
            )))
            .bind(source)
            .fetch_all(&mut *conn)
            .await
            .map_err(fail)?;
        for (privilege, schema, table, column, grantable) in columns {
            let object = format!("ON TABLE {}.{}", quote_ident(&schema), quote_ident(&table));
            grants.add(privilege, Some(&column), object, grantable)?;
        }

        // regprocedure prints the signature quoted and schema-qualified as this
        // session's search_path needs, which is the session that grants.
        let routines: Vec<(String, String, bool)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT a.privilege_type, p.oid::regprocedure::text, a.is_grantable FROM pg_proc p \
             JOIN pg_namespace n ON n.oid = p.pronamespace, \
             LATERAL aclexplode(COALESCE(p.proacl, acldefault('f'::\"char\", p.proowner))) a \
             WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1) AND {SYSTEM_SCHEMAS} \
             ORDER BY 2, 1"
        )))
        .bind(source)
        .fetch_all(&mut *conn)
        .await
        .map_err(fail)?;
        for (privilege, signature, grantable) in routines {
            grants.add(
                privilege,
                None,
                format!("ON ROUTINE {signature}"),
                grantable,
            )?;
        }
    }

    statements.extend(grants.statements(&to));
    Ok(statements)
}

/// Opens a connection with `login`, within [`CONNECT_TIMEOUT`].
async fn connect(login: &Login) -> Result<PgConnection, TargetError> {
    let options = PgConnectOptions::new_without_pgpass()
        .host(&login.host)
        .port(login.port)
        .username(&login.username)
        .password(login.password.expose_secret())
        .database(login.dbname.as_deref().unwrap_or(DEFAULT_DATABASE))
        .application_name("rotor")
        // Statements carry password verifiers: keep them out of the logs.
        .disable_statement_logging();
    let context = format!(
        "logging in to {}:{} as {}",
        login.host,
        login.port,
        quote_ident(&login.username)
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(error(&context, e, &[])),
        Err(_) => Err(TargetError::new(
            TargetErrorKind::Unreachable,
            format!("{context}: no answer within {CONNECT_TIMEOUT:?}"),
        )),
    }
}

/// Closes politely; a failure to say goodbye changes nothing for the caller.
async fn close(conn: PgConnection) {
    let _ = conn.close().await;
}

/// Maps an sqlx error to a [`TargetError`], with `secrets` scrubbed from the message.
fn error(context: &str, e: sqlx::Error, secrets: &[&str]) -> TargetError {
    let kind = match &e {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // invalid_password, invalid_authorization_specification
            Some("28P01" | "28000") => TargetErrorKind::AuthFailed,
            // admin_shutdown, crash_shutdown, cannot_connect_now
            Some("57P01" | "57P02" | "57P03") => TargetErrorKind::Unreachable,
            _ => TargetErrorKind::Other,
        },
        sqlx::Error::Io(_) => TargetErrorKind::Unreachable,
        _ => TargetErrorKind::Other,
    };
    TargetError::new(kind, scrub(format!("{context}: {e}"), secrets))
}

/// A PostgreSQL identifier in double quotes, inner `"` doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("app"), "\"app\"");
        assert_eq!(quote_ident("a\"b'c"), "\"a\"\"b'c\"");
    }

    #[test]
    fn grants_are_gathered_per_object() {
        let mut grants = Grants::default();
        let table = || "ON TABLE \"s\".\"t\"".to_string();
        grants.add("SELECT".into(), None, table(), false).unwrap();
        grants.add("INSERT".into(), None, table(), false).unwrap();
        grants
            .add("UPDATE".into(), Some("c"), table(), false)
            .unwrap();
        grants.add("SELECT".into(), None, table(), true).unwrap();
        assert!(
            grants
                .add("SELECT; DROP".into(), None, table(), true)
                .is_err()
        );
        let statements: Vec<String> = grants.statements("\"x\"").collect();
        assert_eq!(
            statements,
            [
                "GRANT SELECT, INSERT, UPDATE (\"c\") ON TABLE \"s\".\"t\" TO \"x\"",
                "GRANT SELECT ON TABLE \"s\".\"t\" TO \"x\" WITH GRANT OPTION",
            ]
        );
    }

    #[test]
    fn attributes_name_only_what_source_has() {
        let plain = Attributes {
            rolsuper: false,
            rolinherit: true,
            rolcreaterole: false,
            rolcreatedb: false,
            rolreplication: false,
            rolbypassrls: false,
            rolconnlimit: -1,
        };
        assert_eq!(plain.clause(), " LOGIN");
        let rich = Attributes {
            rolinherit: false,
            rolcreatedb: true,
            rolconnlimit: 5,
            ..plain
        };
        assert_eq!(
            rich.clause(),
            " LOGIN NOINHERIT CREATEDB CONNECTION LIMIT 5"
        );
    }
}
