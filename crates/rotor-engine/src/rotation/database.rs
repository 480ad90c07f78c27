//! The built-in `postgres` and `mysql` rotators, with AWS's two strategies.
//!
//! The secret holds AWS's JSON shape: `engine`, `host`, `port`, `username`,
//! `password`, `dbname`, and optionally `masterarn`, the secret of a user allowed
//! to change other users' passwords.
//!
//! - **single-user**: the user gets a new password (set by the master, or by the
//!   user itself). Between `setSecret` and `finishSecret` the old password no longer
//!   works, so a client may briefly fail to log in.
//! - **alternating-users** (blue/green): versions alternate between `user` and
//!   `user_clone`; the master creates the clone with the same privileges. The
//!   previous version's credentials keep working until the rotation after next,
//!   so clients never fail to log in.
//!
//! The master is used only for a principal allowed to read it (see
//! [`super::Rotations::acting`]), and only on the server the secret names: its
//! `engine`, `host` and `port` must be the secret's. Errors met while using it say
//! what failed, never what the master holds (its user, host, or shape).

use super::rotators::{BoxFuture, Ctx, Invalidates, Rotator, Traits};
use rotor_core::model::Step;
use rotor_core::password::PasswordSpec;
use rotor_core::value::SecretValue;
use rotor_core::{Error, Result};
use rotor_targets::{Driver, Login, TargetError, TargetErrorKind};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Strategy {
    #[default]
    SingleUser,
    AlternatingUsers,
}

/// Characters AWS's database rotation functions leave out of passwords, since
/// connection strings and shells treat them specially.
const EXCLUDED: &str = "/@\"'\\:";

fn default_length() -> usize {
    32
}

fn default_excluded() -> String {
    EXCLUDED.to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    strategy: Strategy,
    #[serde(default = "default_length")]
    password_length: usize,
    #[serde(default = "default_excluded")]
    exclude_characters: String,
}

/// A database rotator.
pub(super) struct Database {
    driver: &'static dyn Driver,
    config: Config,
}

/// The credential fields of a secret value.
struct Creds {
    doc: serde_json::Map<String, serde_json::Value>,
    login: Login,
    engine: Option<String>,
}

fn parse_creds(value: &SecretValue, which: &str) -> Result<Creds> {
    let bad = || {
        Error::invalid_request(format!(
            "The {which} value is not a JSON object with host, username and password"
        ))
    };
    let SecretValue::String(s) = value else {
        return Err(bad());
    };
    let doc: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(s.expose_secret()).map_err(|_| bad())?;
    let text = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let port = match doc.get("port") {
        Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Some(serde_json::Value::String(p)) => p.parse().ok(),
        _ => None,
    };
    let login = Login {
        host: text("host").ok_or_else(bad)?,
        port: port.ok_or_else(|| {
            Error::invalid_request(format!("The {which} value has no valid port"))
        })?,
        username: text("username").ok_or_else(bad)?,
        password: SecretString::from(text("password").ok_or_else(bad)?),
        dbname: text("dbname"),
    };
    Ok(Creds {
        engine: text("engine"),
        doc,
        login,
    })
}

/// A failure of a change made with the master's login: what failed, not the
/// database's words, which may name the master's user or host.
fn master_error(e: TargetError) -> Error {
    let what = match e.kind {
        TargetErrorKind::AuthFailed => "the database refused the master secret's login",
        TargetErrorKind::Unreachable => "the database could not be reached",
        TargetErrorKind::Other => "the database refused the change made with the master secret",
    };
    Error::invalid_request(what)
}

fn target_error(e: TargetError) -> Error {
    let what = match e.kind {
        TargetErrorKind::AuthFailed => "the database refused the login",
        TargetErrorKind::Unreachable => "the database could not be reached",
        TargetErrorKind::Other => "the database refused the change",
    };
    Error::invalid_request(format!("{what}: {}", e.message))
}

/// `user` ↔ `user_clone`.
fn other_user(username: &str) -> String {
    match username.strip_suffix("_clone") {
        Some(base) => base.to_string(),
        None => format!("{username}_clone"),
    }
}

impl Database {
    /// Single user changes `AWSCURRENT`'s password in place; alternating users change
    /// `AWSPREVIOUS`'s user, and can retire it.
    pub(super) fn traits(config: &serde_json::Value) -> Traits {
        match serde_json::from_value::<Config>(config.clone()).map(|c| c.strategy) {
            Ok(Strategy::AlternatingUsers) => Traits {
                invalidates: Invalidates::Previous,
                retires: true,
            },
            _ => Traits {
                invalidates: Invalidates::Current,
                retires: false,
            },
        }
    }

    pub(super) fn validate(kind: &str, config: serde_json::Value) -> Result<serde_json::Value> {
        let db = Self::from_config(kind, config)?;
        rotor_crypto::random::password(&db.spec())?;
        serde_json::to_value(&db.config)
            .map_err(|_| Error::internal("rotator settings could not be encoded"))
    }

    pub(super) fn from_config(kind: &str, config: serde_json::Value) -> Result<Self> {
        let driver = rotor_targets::driver(kind)
            .ok_or_else(|| Error::invalid_parameter(format!("No database driver for {kind}")))?;
        let config: Config = serde_json::from_value(config).map_err(|e| {
            Error::invalid_parameter(format!("Invalid {kind} rotator settings: {e}"))
        })?;
        Ok(Database { driver, config })
    }

    fn spec(&self) -> PasswordSpec {
        PasswordSpec {
            length: self.config.password_length,
            exclude_characters: self.config.exclude_characters.clone(),
            ..PasswordSpec::default()
        }
    }

    /// The master login, when the value names a master the acting principal may
    /// read, for the same database server as `creds`.
    async fn master(&self, ctx: &Ctx<'_>, creds: &Creds) -> Result<Option<Login>> {
        let Some(value) = ctx.master_current().await? else {
            return Ok(None);
        };
        let unusable = || {
            Error::invalid_request(
                "the master secret named by masterarn is not a database credential for this secret's server (engine, host and port must match)",
            )
        };
        let master = parse_creds(&value, "master").map_err(|_| unusable())?;
        let same_engine = match (&master.engine, &creds.engine) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => true,
        };
        if !same_engine
            || !master.login.host.eq_ignore_ascii_case(&creds.login.host)
            || master.login.port != creds.login.port
        {
            return Err(unusable());
        }
        Ok(Some(master.login))
    }

    async fn create(&self, ctx: &Ctx<'_>) -> Result<()> {
        if ctx.pending_exists().await? {
            return Ok(());
        }
        let current = parse_creds(&ctx.current().await?, "AWSCURRENT")?;
        let mut doc = current.doc;
        let password = rotor_crypto::random::password(&self.spec())?;
        doc.insert("password".into(), password.into());
        if self.config.strategy == Strategy::AlternatingUsers {
            doc.insert(
                "username".into(),
                other_user(&current.login.username).into(),
            );
        }
        let text = serde_json::Value::Object(doc).to_string();
        ctx.put_pending(SecretValue::string(text)?).await
    }

    async fn set(&self, ctx: &Ctx<'_>) -> Result<()> {
        let pending = parse_creds(&ctx.pending().await?, "AWSPENDING")?;
        let current = parse_creds(&ctx.current().await?, "AWSCURRENT")?;
        // The pending version is whatever was stored under the rotation's token, which
        // a client may have chosen: it may change only the user this strategy rotates.
        let expected = match self.config.strategy {
            Strategy::SingleUser => current.login.username.clone(),
            Strategy::AlternatingUsers => other_user(&current.login.username),
        };
        if pending.login.username != expected {
            return Err(Error::invalid_request(
                "the AWSPENDING version's username is not the user this rotation changes",
            ));
        }
        let master = self.master(ctx, &current).await?;
        match self.config.strategy {
            Strategy::SingleUser => {
                if self.driver.check_login(&pending.login).await.is_ok() {
                    return Ok(());
                }
                let (admin, error): (_, fn(TargetError) -> Error) = match master {
                    Some(master) => (master, master_error),
                    None => (current.login.clone(), target_error),
                };
                self.driver
                    .set_password(
                        &admin,
                        &pending.login.username,
                        pending.login.password.expose_secret(),
                    )
                    .await
                    .map_err(error)
            }
            Strategy::AlternatingUsers => {
                let admin = master.ok_or_else(|| {
                    Error::invalid_request(
                        "Alternating-users rotation needs a masterarn in the secret's value",
                    )
                })?;
                self.driver
                    .ensure_clone(
                        &admin,
                        &current.login.username,
                        &pending.login.username,
                        pending.login.password.expose_secret(),
                    )
                    .await
                    .map_err(master_error)
            }
        }
    }

    async fn test(&self, ctx: &Ctx<'_>) -> Result<()> {
        let pending = parse_creds(&ctx.pending().await?, "AWSPENDING")?;
        self.driver
            .check_login(&pending.login)
            .await
            .map_err(target_error)
    }

    /// Alternating users: stops the `AWSPREVIOUS` user from logging in, through the
    /// master. Only ever the user that is not `AWSCURRENT`'s; the next rotation's
    /// `setSecret` lets it in again with its new password.
    async fn retire(&self, ctx: &Ctx<'_>) -> Result<()> {
        if self.config.strategy != Strategy::AlternatingUsers {
            return Ok(());
        }
        let current = parse_creds(&ctx.current().await?, "AWSCURRENT")?;
        let previous = parse_creds(&ctx.previous().await?, "AWSPREVIOUS")?;
        if previous.login.username != other_user(&current.login.username) {
            return Err(Error::invalid_request(
                "the AWSPREVIOUS version's username is not the user this rotation alternates with",
            ));
        }
        let admin = self.master(ctx, &current).await?.ok_or_else(|| {
            Error::invalid_request(
                "Retiring the previous user needs a masterarn in the secret's value",
            )
        })?;
        self.driver
            .disable_login(&admin, &previous.login.username)
            .await
            .map_err(master_error)
    }

    /// Single-user only: puts the `AWSCURRENT` password back, logging in as the
    /// master or with the new password the database may now hold.
    async fn put_back(&self, ctx: &Ctx<'_>) -> Result<()> {
        if self.config.strategy != Strategy::SingleUser {
            return Ok(());
        }
        let current = parse_creds(&ctx.current().await?, "AWSCURRENT")?;
        if self.driver.check_login(&current.login).await.is_ok() {
            return Ok(());
        }
        let (admin, error): (_, fn(TargetError) -> Error) = match self.master(ctx, &current).await?
        {
            Some(master) => (master, master_error),
            None => {
                let pending = parse_creds(&ctx.pending().await?, "AWSPENDING")?;
                if pending.login.username != current.login.username {
                    return Err(Error::invalid_request(
                        "the AWSPENDING version's username is not the user this rotation changes",
                    ));
                }
                (pending.login, target_error)
            }
        };
        self.driver
            .set_password(
                &admin,
                &current.login.username,
                current.login.password.expose_secret(),
            )
            .await
            .map_err(error)
    }
}

impl Rotator for Database {
    fn step<'a>(&'a self, ctx: &'a Ctx<'a>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            match ctx.step {
                Step::CreateSecret => self.create(ctx).await,
                Step::SetSecret => self.set(ctx).await,
                Step::TestSecret => self.test(ctx).await,
                Step::FinishSecret => ctx.finish().await,
                Step::RetirePrevious => self.retire(ctx).await,
            }
        })
    }

    fn revert<'a>(&'a self, ctx: &'a Ctx<'a>) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.put_back(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_alternate() {
        assert_eq!(other_user("app"), "app_clone");
        assert_eq!(other_user("app_clone"), "app");
    }

    #[test]
    fn creds_accept_aws_shapes() {
        let v = SecretValue::string(
            r#"{"engine":"postgres","host":"db","port":"5432","username":"u","password":"p","dbname":"d","masterarn":"m"}"#.into(),
        )
        .unwrap();
        let c = parse_creds(&v, "test").unwrap();
        assert_eq!(c.login.port, 5432);
        assert_eq!(c.engine.as_deref(), Some("postgres"));
        let v = SecretValue::string(r#"{"host":"db","port":5432,"username":"u"}"#.into()).unwrap();
        let e = parse_creds(&v, "AWSCURRENT").err().unwrap();
        assert!(e.message.contains("AWSCURRENT"), "{}", e.message);
    }
}
