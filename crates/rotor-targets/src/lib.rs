//! The database side of credential rotation: the [`Driver`]s that Rotor's built-in
//! `postgres` and `mysql` rotators (AWS's single-user and alternating-users
//! strategies, see the [AWS Secrets Manager rotation strategies][strategies]) use to
//! check a login, set a user's password and keep a clone of a user.
//!
//! - [`Postgres`] speaks to PostgreSQL (and Aurora PostgreSQL). Passwords are sent as
//!   SCRAM-SHA-256 verifiers computed here ([RFC 5803] format, as PostgreSQL stores
//!   them), so the plaintext never crosses the wire nor lands in a server log. Such
//!   passwords must be ASCII: PostgreSQL normalizes others with SASLprep first, which
//!   is not implemented here (Rotor's generated passwords are ASCII).
//! - [`MySql`] speaks to MariaDB and MySQL (and Aurora MySQL). Passwords are sent as
//!   `mysql_native_password` hashes (`*` and the hex of SHA1(SHA1(password))).
//!
//! Connections are made for each call with the [`Login`] given, field by field (never
//! through a URL holding the password), with a [`CONNECT_TIMEOUT`], without TLS.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rotor_targets::TargetError> {
//! use rotor_targets::{Login, TargetErrorKind};
//! let driver = rotor_targets::driver("postgres").expect("a built-in engine");
//! let admin = Login {
//!     host: "127.0.0.1".into(),
//!     port: 5432,
//!     username: "postgres".into(),
//!     password: "admin password".into(),
//!     dbname: Some("app".into()),
//! };
//! driver.set_password(&admin, "app", "new password").await?;
//! let app = Login { username: "app".into(), password: "new password".into(), ..admin };
//! match driver.check_login(&app).await {
//!     Err(e) if e.kind == TargetErrorKind::AuthFailed => println!("refused: {e}"),
//!     other => other?,
//! }
//! # Ok(()) }
//! ```
//!
//! [strategies]: https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotation-strategy.html
//! [RFC 5803]: https://www.rfc-editor.org/rfc/rfc5803
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod hash;
mod mysql;
mod postgres;

pub use mysql::MySql;
pub use postgres::Postgres;

use secrecy::SecretString;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed future, so that [`Driver`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How long opening a connection (TCP, handshake and authentication) may take before
/// the target counts as [`TargetErrorKind::Unreachable`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and as whom to log in. `Debug` prints the password as `[redacted]`.
#[derive(Clone)]
pub struct Login {
    /// The server's host name or address.
    pub host: String,
    /// The server's TCP port.
    pub port: u16,
    /// The user to log in as.
    pub username: String,
    /// That user's password.
    pub password: SecretString,
    /// The database to connect to. PostgreSQL uses `postgres` when it is `None` (as
    /// AWS's rotation functions do); MySQL selects no database.
    pub dbname: Option<String>,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("dbname", &self.dbname)
            .finish()
    }
}

/// What went wrong talking to a target. The message never contains a password nor a
/// password hash.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TargetError {
    /// Which kind of failure, for the engine to decide what to do next.
    pub kind: TargetErrorKind,
    /// What happened, for a person.
    pub message: String,
}

/// The kinds of [`TargetError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetErrorKind {
    /// The server rejected the credential: wrong user name or password
    /// (PostgreSQL SQLSTATE `28P01`/`28000`, MySQL error 1045).
    AuthFailed,
    /// The server could not be reached: refused or reset connection, unknown host,
    /// time-out, or a server starting up or shutting down.
    Unreachable,
    /// Anything else: a refused statement (missing privilege, unknown user), an
    /// invalid user name or password, a protocol error.
    Other,
}

impl TargetError {
    /// An error of `kind`.
    pub fn new(kind: TargetErrorKind, message: impl Into<String>) -> TargetError {
        TargetError {
            kind,
            message: message.into(),
        }
    }

    /// An error of kind [`TargetErrorKind::Other`].
    pub fn other(message: impl Into<String>) -> TargetError {
        TargetError::new(TargetErrorKind::Other, message)
    }
}

/// What a rotator needs from a database engine. Every call opens its own connection
/// and closes it before returning.
pub trait Driver: Send + Sync {
    /// Opens a fresh connection with `login` and runs `SELECT 1`. Used by
    /// `testSecret`, and to find out whether a credential still works.
    fn check_login<'a>(&'a self, login: &'a Login) -> BoxFuture<'a, Result<(), TargetError>>;

    /// Connected as `admin`, sets `username`'s password to `new_password`. The
    /// plaintext is hashed here and only the hash is sent. `admin` may be `username`
    /// itself (single-user rotation: a user changes its own password).
    fn set_password<'a>(
        &'a self,
        admin: &'a Login,
        username: &'a str,
        new_password: &'a str,
    ) -> BoxFuture<'a, Result<(), TargetError>>;

    /// Connected as `admin`, makes sure user `clone` exists with the privileges of
    /// `source`, then sets its password like [`Driver::set_password`]. When `clone`
    /// already exists, its password is reset and the privileges of `source` are granted
    /// again (additively: nothing is revoked), so a grant made to `source` since the
    /// last rotation reaches `clone` too. What is copied is listed on each driver.
    fn ensure_clone<'a>(
        &'a self,
        admin: &'a Login,
        source: &'a str,
        clone: &'a str,
        new_password: &'a str,
    ) -> BoxFuture<'a, Result<(), TargetError>>;

    /// Connected as `admin`, stops `username` from logging in (PostgreSQL `NOLOGIN`,
    /// MariaDB/MySQL `ACCOUNT LOCK`): the retirement of a previous credential.
    /// Connections already open stay open. [`Driver::ensure_clone`] and
    /// [`Driver::set_password`] let the user log in again.
    fn disable_login<'a>(
        &'a self,
        admin: &'a Login,
        username: &'a str,
    ) -> BoxFuture<'a, Result<(), TargetError>>;
}

/// The driver for an engine name as AWS's database secrets spell it: `postgres`,
/// `postgresql`, `aurora-postgresql` → [`Postgres`]; `mysql`, `mariadb`,
/// `aurora-mysql`, `aurora` → [`MySql`]. Case-insensitive.
pub fn driver(engine: &str) -> Option<&'static dyn Driver> {
    match engine.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" | "aurora-postgresql" => Some(&Postgres),
        "mysql" | "mariadb" | "aurora-mysql" | "aurora" => Some(&MySql),
        _ => None,
    }
}

/// Replaces every occurrence of each non-empty secret in `message` with `[redacted]`.
/// Servers may quote a statement back in an error (MySQL's "near '...'"); the
/// statements hold hashes, never plaintext, and neither may reach a message.
fn scrub(message: String, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(message, |m, s| m.replace(s, "[redacted]"))
}

/// How long a user name may be.
#[derive(Debug, Clone, Copy)]
enum NameLimit {
    /// PostgreSQL's `NAMEDATALEN - 1`.
    Bytes(usize),
    /// MariaDB's `mysql.user.User` column width.
    Chars(usize),
}

/// Checks a user name against what the engines refuse: empty, NUL, too long.
fn check_name(what: &str, name: &str, limit: NameLimit) -> Result<(), TargetError> {
    if name.is_empty() {
        return Err(TargetError::other(format!("The {what} is empty")));
    }
    if name.contains('\0') {
        return Err(TargetError::other(format!(
            "The {what} contains a NUL character"
        )));
    }
    let (len, max, unit) = match limit {
        NameLimit::Bytes(max) => (name.len(), max, "bytes"),
        NameLimit::Chars(max) => (name.chars().count(), max, "characters"),
    };
    if len > max {
        return Err(TargetError::other(format!(
            "The {what} {name:?} is longer than {max} {unit}"
        )));
    }
    Ok(())
}

/// Checks the clone's name against the source's.
fn check_clone_names(source: &str, clone: &str) -> Result<(), TargetError> {
    if source == clone {
        return Err(TargetError::other(format!(
            "The clone must be another user than {source:?}"
        )));
    }
    Ok(())
}

/// Checks a new password: the engines take an empty one as "no password".
fn check_password(password: &str) -> Result<(), TargetError> {
    if password.is_empty() {
        return Err(TargetError::other("The new password is empty"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_map_to_drivers() {
        for engine in ["postgres", "postgresql", "aurora-postgresql", "PostgreSQL"] {
            assert!(driver(engine).is_some(), "{engine}");
        }
        for engine in ["mysql", "mariadb", "aurora-mysql", "aurora"] {
            assert!(driver(engine).is_some(), "{engine}");
        }
        assert!(driver("oracle").is_none());
    }

    #[test]
    fn login_debug_redacts_the_password() {
        let login = Login {
            host: "db".into(),
            port: 5432,
            username: "app".into(),
            password: "hunter2".into(),
            dbname: None,
        };
        let shown = format!("{login:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("[redacted]") && shown.contains("app"),
            "{shown}"
        );
    }

    #[test]
    fn scrub_removes_secrets() {
        assert_eq!(
            scrub("near '*ABC' at line 1".into(), &["*ABC", ""]),
            "near '[redacted]' at line 1"
        );
    }

    #[test]
    fn names_are_checked() {
        let pg = NameLimit::Bytes(63);
        assert!(check_name("user name", "", pg).is_err());
        assert!(check_name("user name", "a\0b", pg).is_err());
        let e = check_name("user name", &"x".repeat(64), pg).unwrap_err();
        assert!(e.message.contains("longer than 63 bytes"), "{e}");
        assert!(check_name("user name", "o'brien", pg).is_ok());
        // 40 two-byte characters: too long for PostgreSQL, fine for MariaDB.
        let wide = "é".repeat(40);
        assert!(check_name("user name", &wide, pg).is_err());
        assert!(check_name("user name", &wide, NameLimit::Chars(80)).is_ok());
        assert!(check_clone_names("app", "app").is_err());
        assert!(check_password("").is_err());
    }
}
