//! MariaDB and MySQL: passwords as `mysql_native_password` hashes, clones by replaying
//! `SHOW GRANTS`.

use crate::hash::mysql_native_password_hash;
use crate::{
    BoxFuture, CONNECT_TIMEOUT, Driver, Login, NameLimit, TargetError, TargetErrorKind,
    check_clone_names, check_name, check_password, scrub,
};
use secrecy::ExposeSecret;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};

/// MariaDB's user name limit (`mysql.user.User` is `char(80)`); MySQL's is 32, and
/// the server says so itself.
const NAME_LIMIT: NameLimit = NameLimit::Chars(80);

/// The [`Driver`] for MariaDB, MySQL and Aurora MySQL.
///
/// [`Driver::set_password`] runs ``ALTER USER `user`@`host` IDENTIFIED WITH
/// mysql_native_password AS '*<hash>'`` for every host entry of the user, the hash
/// computed here. When the admin is the user itself, it changes the account it
/// logged in as (`SET PASSWORD = '*<hash>'` on MariaDB, which needs no privilege;
/// `ALTER USER CURRENT_USER() ...` on MySQL). The `WITH ... AS` form is the one
/// MariaDB and MySQL 5.7/8.0 both accept (MySQL 8 dropped `IDENTIFIED BY PASSWORD`);
/// MySQL 8.4 ships with `mysql_native_password` disabled.
///
/// [`Driver::ensure_clone`] creates `clone` on every host `source` has (`CREATE USER
/// IF NOT EXISTS`), sets its password, and replays `SHOW GRANTS FOR source@host`
/// with the clone as grantee: global, database, table, column and routine
/// privileges, `PROXY`, role grants and the default role, resource limits and
/// `REQUIRE` (TLS) options, each with its grant option. The authentication clause
/// of the source is left out. Statements are not transactional on these servers: a
/// failure part-way leaves a partial clone, which the next call completes.
#[derive(Debug, Clone, Copy, Default)]
pub struct MySql;

impl Driver for MySql {
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
            let hash = mysql_native_password_hash(new_password);
            let mut conn = connect(admin).await?;
            let context = format!("setting the password of {}", quote_name(username));
            let fail = |e| error(&context, e, &[&hash]);
            let statements = if admin.username == username {
                let version: String = sqlx::query_scalar("SELECT VERSION()")
                    .fetch_one(&mut conn)
                    .await
                    .map_err(fail)?;
                if version.contains("MariaDB") {
                    vec![format!("SET PASSWORD = '{hash}'")]
                } else {
                    vec![format!(
                        "ALTER USER CURRENT_USER() IDENTIFIED WITH mysql_native_password AS '{hash}'"
                    )]
                }
            } else {
                hosts(&mut conn, username)
                    .await?
                    .iter()
                    .map(|host| alter_password(&account(username, host), &hash))
                    .collect()
            };
            for statement in statements {
                sqlx::raw_sql(AssertSqlSafe(statement))
                    .execute(&mut conn)
                    .await
                    .map_err(fail)?;
            }
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
            let hash = mysql_native_password_hash(new_password);
            let mut conn = connect(admin).await?;
            let context = format!("cloning {} as {}", quote_name(source), quote_name(clone));
            let fail = |e| error(&context, e, &[&hash]);
            for host in hosts(&mut conn, source).await? {
                let target = account(clone, &host);
                let mut statements = vec![
                    format!(
                        "CREATE USER IF NOT EXISTS {target} \
                         IDENTIFIED WITH mysql_native_password AS '{hash}'"
                    ),
                    // Resets the password of a clone that already existed.
                    alter_password(&target, &hash),
                ];
                let grants = sqlx::raw_sql(AssertSqlSafe(format!(
                    "SHOW GRANTS FOR {}",
                    account(source, &host)
                )))
                .fetch_all(&mut conn)
                .await
                .map_err(fail)?;
                for row in grants {
                    let line: String = row.try_get(0).map_err(fail)?;
                    if let Some(statement) = regrant(&line, source, &host, &target)? {
                        statements.push(statement);
                    }
                }
                for statement in statements {
                    sqlx::raw_sql(AssertSqlSafe(statement))
                        .execute(&mut conn)
                        .await
                        .map_err(fail)?;
                }
            }
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
            let context = format!("locking {}", quote_name(username));
            for host in hosts(&mut conn, username).await? {
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "ALTER USER {} ACCOUNT LOCK",
                    account(username, &host)
                )))
                .execute(&mut conn)
                .await
                .map_err(|e| error(&context, e, &[]))?;
            }
            close(conn).await;
            Ok(())
        })
    }
}

/// `ALTER USER <account> IDENTIFIED WITH mysql_native_password AS '<hash>' ACCOUNT
/// UNLOCK`: a new password for an account that may have been retired. The hash is
/// `*` and hex digits: nothing to escape.
fn alter_password(account: &str, hash: &str) -> String {
    format!("ALTER USER {account} IDENTIFIED WITH mysql_native_password AS '{hash}' ACCOUNT UNLOCK")
}

/// The host entries of `user`; an error when there are none.
async fn hosts(conn: &mut MySqlConnection, user: &str) -> Result<Vec<String>, TargetError> {
    let context = format!("reading the host entries of {}", quote_name(user));
    let hosts: Vec<String> =
        sqlx::query_scalar("SELECT CAST(Host AS CHAR) FROM mysql.user WHERE User = ? ORDER BY 1")
            .bind(user)
            .fetch_all(conn)
            .await
            .map_err(|e| error(&context, e, &[]))?;
    if hosts.is_empty() {
        return Err(TargetError::other(format!(
            "User {} does not exist",
            quote_name(user)
        )));
    }
    Ok(hosts)
}

/// A `SHOW GRANTS` line of `user`@`host` turned into the same grant to `target`, or
/// `None` for a line that grants nothing. The source's authentication clause
/// (`IDENTIFIED BY PASSWORD '*...'`, which MariaDB prints on the `USAGE` line) is
/// dropped. Errors never quote the line: it may hold the source's password hash.
fn regrant(
    line: &str,
    user: &str,
    host: &str,
    target: &str,
) -> Result<Option<String>, TargetError> {
    let keyword = if line.starts_with("GRANT ") {
        " TO "
    } else if line.starts_with("SET DEFAULT ROLE ") {
        " FOR "
    } else {
        return Ok(None);
    };
    // MariaDB and MySQL print accounts in backticks, except MariaDB's PROXY line.
    let spellings = [
        account(user, host),
        format!(
            "'{}'@'{}'",
            user.replace('\'', "''"),
            host.replace('\'', "''")
        ),
        format!(
            "'{}'@'{}'",
            user.replace('\'', "\\'"),
            host.replace('\'', "\\'")
        ),
    ];
    let found = spellings
        .iter()
        .filter_map(|spelling| {
            let needle = format!("{keyword}{spelling}");
            line.rfind(&needle).map(|at| (at, needle.len()))
        })
        .max();
    let Some((at, len)) = found else {
        return Err(TargetError::other(format!(
            "A SHOW GRANTS line of {} does not name that account where expected",
            account(user, host)
        )));
    };
    let tail = without_authentication(&line[at + len..]);
    Ok(Some(format!("{}{keyword}{target}{tail}", &line[..at])))
}

/// `tail` (what follows the grantee) without a leading `IDENTIFIED ...` clause, up to
/// the `REQUIRE` or `WITH` clauses that follow it, outside quotes.
fn without_authentication(tail: &str) -> &str {
    if !tail.starts_with(" IDENTIFIED ") {
        return tail;
    }
    let bytes = tail.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == b'\\' && q == b'\'' => i += 1,
            Some(q) if b == q => {
                if bytes.get(i + 1) == Some(&q) {
                    i += 1;
                } else {
                    quote = None;
                }
            }
            Some(_) => {}
            None if b == b'\'' || b == b'`' || b == b'"' => quote = Some(b),
            None => {
                let rest = &tail[i..];
                if rest.starts_with(" REQUIRE ") || rest.starts_with(" WITH ") {
                    return rest;
                }
            }
        }
        i += 1;
    }
    ""
}

/// Opens a connection with `login`, within [`CONNECT_TIMEOUT`].
async fn connect(login: &Login) -> Result<MySqlConnection, TargetError> {
    let mut options = MySqlConnectOptions::new()
        .host(&login.host)
        .port(login.port)
        .username(&login.username)
        .password(login.password.expose_secret())
        // Statements carry password hashes: keep them out of the logs.
        .disable_statement_logging();
    if let Some(database) = &login.dbname {
        options = options.database(database);
    }
    let context = format!(
        "logging in to {}:{} as {}",
        login.host,
        login.port,
        quote_name(&login.username)
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, MySqlConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(error(&context, e, &[])),
        Err(_) => Err(TargetError::new(
            TargetErrorKind::Unreachable,
            format!("{context}: no answer within {CONNECT_TIMEOUT:?}"),
        )),
    }
}

/// Closes politely; a failure to say goodbye changes nothing for the caller.
async fn close(conn: MySqlConnection) {
    let _ = conn.close().await;
}

/// Maps an sqlx error to a [`TargetError`], with `secrets` scrubbed from the message
/// (a syntax error quotes the statement back).
fn error(context: &str, e: sqlx::Error, secrets: &[&str]) -> TargetError {
    let kind = match &e {
        sqlx::Error::Database(db) => match db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number)
        {
            // ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR
            Some(1045 | 1698) => TargetErrorKind::AuthFailed,
            // ER_SERVER_SHUTDOWN
            Some(1053) => TargetErrorKind::Unreachable,
            _ => TargetErrorKind::Other,
        },
        sqlx::Error::Io(_) => TargetErrorKind::Unreachable,
        _ => TargetErrorKind::Other,
    };
    TargetError::new(kind, scrub(format!("{context}: {e}"), secrets))
}

/// A user or host name in backticks, inner backticks doubled. Unlike a string
/// literal, this means the same whatever the session's `sql_mode`
/// (`NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`).
fn quote_name(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `` `user`@`host` ``.
fn account(user: &str, host: &str) -> String {
    format!("{}@{}", quote_name(user), quote_name(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted() {
        assert_eq!(account("o'b`x\\", "%"), "`o'b``x\\`@`%`");
    }

    #[test]
    fn grants_are_replayed_for_the_target() {
        let target = account("app_clone", "%");
        let cases = [
            (
                "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*7648E52EC79D4BB879B7B913F0B8BBF8DC4AB6CC'",
                "GRANT USAGE ON *.* TO `app_clone`@`%`",
            ),
            (
                "GRANT SELECT, INSERT ON `shop`.`orders` TO `app`@`%` WITH GRANT OPTION",
                "GRANT SELECT, INSERT ON `shop`.`orders` TO `app_clone`@`%` WITH GRANT OPTION",
            ),
            (
                "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED VIA ed25519 USING 'x WITH y' OR unix_socket REQUIRE SSL WITH MAX_USER_CONNECTIONS 3",
                "GRANT USAGE ON *.* TO `app_clone`@`%` REQUIRE SSL WITH MAX_USER_CONNECTIONS 3",
            ),
            (
                "GRANT PROXY ON ''@'%' TO 'app'@'%' WITH GRANT OPTION",
                "GRANT PROXY ON ''@'%' TO `app_clone`@`%` WITH GRANT OPTION",
            ),
            (
                "GRANT `reader` TO `app`@`%`",
                "GRANT `reader` TO `app_clone`@`%`",
            ),
            (
                "SET DEFAULT ROLE `reader` FOR `app`@`%`",
                "SET DEFAULT ROLE `reader` FOR `app_clone`@`%`",
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(
                regrant(line, "app", "%", &target).unwrap().as_deref(),
                Some(expected),
                "{line}"
            );
        }
        assert_eq!(regrant("REVOKE x", "app", "%", &target).unwrap(), None);
        let e = regrant(
            "GRANT USAGE ON *.* TO `other`@`%` IDENTIFIED BY PASSWORD '*AB'",
            "app",
            "%",
            &target,
        )
        .unwrap_err();
        assert!(!e.message.contains("*AB"), "{e}");
    }

    #[test]
    fn a_table_named_like_the_grantee_does_not_confuse_the_rewrite() {
        let line = "GRANT SELECT ON `d`.` TO ``app``@``%``` TO `app`@`%`";
        assert_eq!(
            regrant(line, "app", "%", "`c`@`%`").unwrap().as_deref(),
            Some("GRANT SELECT ON `d`.` TO ``app``@``%``` TO `c`@`%`")
        );
    }
}
