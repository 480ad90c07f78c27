//! The rotators: what performs a rotation's steps.
//!
//! - `webhook`: POSTs AWS's Lambda event to a URL, signed with HMAC-SHA256.
//! - `exec`: runs a local command with the event on stdin.
//! - `lambda`: runs a Python rotation function written for AWS Lambda
//!   (`module.lambda_handler(event, context)`, boto3) through a small runner.
//! - `postgres` / `mysql`: built in, single-user or alternating-users.
//! - `random`: a new random value, for keys that have no system to update.
//!
//! External rotators (webhook, exec, lambda) get short-lived credentials that
//! allow only this secret (and reading its `masterarn`, when the rotation's
//! principal may read it): a bearer token for the native API, and an AWS key pair
//! with a session token for AWS SDKs. They are issued for one step and revoked when
//! it ends.

use super::Rotations;
use super::database::Database;
use crate::service::PutValue;
use rotor_core::label::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::model::Step;
use rotor_core::password::PasswordSpec;
use rotor_core::policy::{Capability, Effect, Policy, Statement};
use rotor_core::value::SecretValue;
use rotor_core::{Error, Result};
use rotor_store::RotatorRow;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

/// The kinds of rotator.
pub const KINDS: &[&str] = &["webhook", "exec", "lambda", "postgres", "mysql", "random"];

/// What binds a webhook signing key to its rotator when sealed.
pub(super) const KEY_AAD: &str = "rotor:rotator-key";

/// The Python runner of `lambda` rotators: reads the event from stdin and calls
/// the handler the way AWS Lambda does.
const LAMBDA_RUNNER: &str = include_str!("lambda_runner.py");

pub(super) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A rotator as listings show it (never its signing key).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RotatorInfo {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Settings.
    pub config: serde_json::Value,
    /// When it was registered.
    pub created: chrono::DateTime<chrono::Utc>,
    /// Who registered it.
    pub created_by: Option<String>,
}

impl From<RotatorRow> for RotatorInfo {
    fn from(r: RotatorRow) -> Self {
        RotatorInfo {
            config: serde_json::from_str(&r.config).unwrap_or(serde_json::Value::Null),
            name: r.name,
            kind: r.kind,
            created: r.created,
            created_by: r.created_by,
        }
    }
}

/// Rotator names are Lambda function names: 1–64 of `A-Za-z0-9-_`.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    rotor_core::name::validate_identifier("rotator", name, 64, "-_")
}

fn default_timeout() -> u64 {
    30_000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookConfig {
    url: String,
    #[serde(default = "default_timeout")]
    timeout_ms: u64,
    /// Handles Rotor's `retirePrevious` step (AWS's functions do not know it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    retire: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecConfig {
    command: Vec<String>,
    #[serde(default = "default_timeout")]
    timeout_ms: u64,
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Handles Rotor's `retirePrevious` step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    retire: bool,
}

fn default_python() -> String {
    "python3".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LambdaConfig {
    /// `module.function`.
    handler: String,
    /// Directory holding the module.
    code_dir: String,
    #[serde(default = "default_python")]
    python: String,
    #[serde(default = "default_timeout")]
    timeout_ms: u64,
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Handles Rotor's `retirePrevious` step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    retire: bool,
}

/// How a new random value is made: `GetRandomPassword`'s options, and the JSON
/// field to replace (the whole value when absent).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RandomConfig {
    #[serde(default = "default_length")]
    length: usize,
    #[serde(default)]
    exclude_characters: String,
    #[serde(default)]
    exclude_numbers: bool,
    #[serde(default)]
    exclude_punctuation: bool,
    #[serde(default)]
    exclude_uppercase: bool,
    #[serde(default)]
    exclude_lowercase: bool,
    #[serde(default)]
    field: Option<String>,
}

fn default_length() -> usize {
    32
}

impl RandomConfig {
    fn spec(&self) -> PasswordSpec {
        PasswordSpec {
            length: self.length,
            exclude_characters: self.exclude_characters.clone(),
            exclude_numbers: self.exclude_numbers,
            exclude_punctuation: self.exclude_punctuation,
            exclude_uppercase: self.exclude_uppercase,
            exclude_lowercase: self.exclude_lowercase,
            ..PasswordSpec::default()
        }
    }
}

fn parse<T: for<'de> Deserialize<'de>>(kind: &str, config: serde_json::Value) -> Result<T> {
    serde_json::from_value(config)
        .map_err(|e| Error::invalid_parameter(format!("Invalid {kind} rotator settings: {e}")))
}

/// Checks `config` for a rotator of `kind`; returns it with defaults filled in.
pub(super) fn validate(kind: &str, config: serde_json::Value) -> Result<serde_json::Value> {
    let normal = match kind {
        "webhook" => {
            let c: WebhookConfig = parse(kind, config)?;
            crate::hooks::check_destination(&c.url)?;
            serde_json::to_value(c)
        }
        "exec" => {
            let c: ExecConfig = parse(kind, config)?;
            if c.command.is_empty() {
                return Err(Error::invalid_parameter(
                    "An exec rotator needs a command (a list of arguments)",
                ));
            }
            serde_json::to_value(c)
        }
        "lambda" => {
            let c: LambdaConfig = parse(kind, config)?;
            if c.handler.rsplit_once('.').is_none() {
                return Err(Error::invalid_parameter(
                    "A lambda rotator's handler must look like module.function",
                ));
            }
            serde_json::to_value(c)
        }
        "random" => {
            let c: RandomConfig = parse(kind, config)?;
            rotor_crypto::random::password(&c.spec())?;
            serde_json::to_value(c)
        }
        "postgres" | "mysql" => return Database::validate(kind, config),
        other => {
            return Err(Error::invalid_parameter(format!(
                "Unknown rotator type {other:?}; one of {}",
                KINDS.join(", ")
            )));
        }
    };
    normal.map_err(|_| Error::internal("rotator settings could not be encoded"))
}

/// What a step runs with.
pub(super) struct Ctx<'a> {
    pub rot: &'a Rotations,
    pub secret: i64,
    pub name: &'a str,
    pub arn: &'a str,
    pub token: &'a str,
    pub step: Step,
    /// The principal the rotation acts for, with its policies as of this step.
    pub principal: crate::Caller,
}

/// A string field of the current value of `record` (read by the server itself: the
/// field's use is authorized by the caller).
pub(super) async fn current_field(
    service: &crate::SecretService,
    record: &rotor_store::SecretRecord,
    field: &str,
) -> Result<Option<String>> {
    let has_current = record
        .versions
        .iter()
        .any(|v| v.labels.iter().any(|l| l == AWSCURRENT));
    if !has_current || record.meta.is_deleted() {
        return Ok(None);
    }
    let value = service
        .get_value(&super::system(), &record.meta.arn, None, Some(AWSCURRENT))
        .await?
        .value;
    Ok(json_field(&value, field))
}

impl Ctx<'_> {
    /// Reads and writes of the secret being rotated: the acting principal's
    /// `rotate` on it (checked before the step) covers them, and nothing else.
    fn caller(&self) -> crate::Caller {
        crate::Caller::new(
            &format!("{} (rotating {})", self.principal.name(), self.name),
            std::sync::Arc::from(vec![Policy {
                name: "rotation".into(),
                statements: vec![Statement {
                    effect: Effect::Allow,
                    capabilities: vec![Capability::Read, Capability::Write, Capability::Describe],
                    paths: vec![self.name.to_string()],
                }],
            }]),
        )
    }

    /// Whether the new version exists.
    pub async fn pending_exists(&self) -> Result<bool> {
        Ok(self
            .rot
            .store()
            .load_version(self.secret, self.token)
            .await?
            .is_some())
    }

    /// The value holding `AWSCURRENT`.
    pub async fn current(&self) -> Result<SecretValue> {
        Ok(self
            .rot
            .service
            .get_value(&self.caller(), self.name, None, Some(AWSCURRENT))
            .await?
            .value)
    }

    /// The value holding `AWSPREVIOUS`.
    pub async fn previous(&self) -> Result<SecretValue> {
        Ok(self
            .rot
            .service
            .get_value(&self.caller(), self.name, None, Some(AWSPREVIOUS))
            .await?
            .value)
    }

    /// The new version's value.
    pub async fn pending(&self) -> Result<SecretValue> {
        Ok(self
            .rot
            .service
            .get_value(&self.caller(), self.name, Some(self.token), None)
            .await?
            .value)
    }

    /// The `AWSCURRENT` value of the master secret this secret's current value names
    /// (`masterarn`), read as the acting principal; `None` when it names none.
    /// Refused, with one message whatever the reason, when the principal may not
    /// read it.
    pub async fn master_current(&self) -> Result<Option<SecretValue>> {
        let record = self.rot.service.resolve(self.name).await?;
        let Some(master) = self.rot.master_for(&self.principal, &record).await? else {
            return Ok(None);
        };
        let value = self
            .rot
            .service
            .get_value(&self.principal, &master.meta.arn, None, Some(AWSCURRENT))
            .await
            .map_err(|_| super::master_refused(self.principal.name()))?;
        Ok(Some(value.value))
    }

    /// Stores the new version, labeled `AWSPENDING`.
    pub async fn put_pending(&self, value: SecretValue) -> Result<()> {
        self.rot
            .service
            .put_value(
                &self.caller(),
                PutValue {
                    secret_id: self.name.to_string(),
                    token: Some(self.token.to_string()),
                    value,
                    stages: Some(vec![AWSPENDING.to_string()]),
                },
            )
            .await?;
        Ok(())
    }

    /// Moves `AWSCURRENT` to the new version (AWSPREVIOUS follows), unless there.
    pub async fn finish(&self) -> Result<()> {
        let record = self.rot.service.resolve(self.name).await?;
        let current = record
            .versions
            .iter()
            .find(|v| v.labels.iter().any(|l| l == AWSCURRENT))
            .map(|v| v.id.clone());
        if current.as_deref() == Some(self.token) {
            return Ok(());
        }
        self.rot
            .service
            .update_stage(
                &self.caller(),
                self.name,
                AWSCURRENT,
                Some(self.token.to_string()),
                current,
            )
            .await?;
        Ok(())
    }

    /// The AWS region in the secret's ARN.
    fn region(&self) -> &str {
        self.arn.split(':').nth(3).unwrap_or("us-east-1")
    }

    /// The Lambda event of this step.
    fn event(&self, rotation_token: &str) -> Vec<u8> {
        serde_json::json!({
            "Step": self.step.as_str(),
            "SecretId": self.arn,
            "ClientRequestToken": self.token,
            "RotationToken": rotation_token,
        })
        .to_string()
        .into_bytes()
    }

    /// Credentials for an external rotator: this secret, and reading its master
    /// when the acting principal may read it.
    async fn scoped(&self) -> Result<crate::ScopedCredentials> {
        let mut read_only = Vec::new();
        let record = self.rot.service.resolve(self.name).await?;
        if let Ok(Some(master)) = self.rot.master_for(&self.principal, &record).await {
            read_only.push(master.meta.name.clone());
        }
        let mut statements = vec![Statement {
            effect: Effect::Allow,
            capabilities: vec![
                Capability::Read,
                Capability::Write,
                Capability::Describe,
                Capability::Rotate,
                Capability::List,
            ],
            paths: vec![self.name.to_string()],
        }];
        if !read_only.is_empty() {
            statements.push(Statement {
                effect: Effect::Allow,
                capabilities: vec![Capability::Read, Capability::Describe],
                paths: read_only,
            });
        }
        let policy = Policy {
            name: "rotation".into(),
            statements,
        };
        let ttl = chrono::Duration::from_std(self.rot.settings.step_timeout).unwrap_or_default()
            + chrono::Duration::minutes(1);
        Ok(self
            .rot
            .access
            .issue_scoped(&format!("rotation:{}", self.name), policy, ttl))
    }
}

/// A string field of a JSON secret value.
pub(super) fn json_field(value: &SecretValue, field: &str) -> Option<String> {
    let SecretValue::String(s) = value else {
        return None;
    };
    let doc: serde_json::Value = serde_json::from_str(s.expose_secret()).ok()?;
    doc.get(field)?.as_str().map(str::to_string)
}

/// What performs the steps.
pub(super) trait Rotator: Send + Sync {
    /// Runs `ctx.step`. Must be idempotent: a retried rotation runs every step again.
    fn step<'a>(&'a self, ctx: &'a Ctx<'a>) -> BoxFuture<'a, Result<()>>;

    /// After a rotation gave up past `setSecret`: make the target accept the
    /// `AWSCURRENT` credential again, where that is possible.
    fn revert<'a>(&'a self, _ctx: &'a Ctx<'a>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// What the runner must know of a rotator before a step, read from its settings
/// alone (no signing key opened, nothing built).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Traits {
    /// The credential its `setSecret` stops from working.
    pub invalidates: Invalidates,
    /// Whether it runs the `retirePrevious` step.
    pub retires: bool,
}

/// The traits of the rotator `row` describes. External rotators are taken to follow
/// AWS's alternating-users scheme (`setSecret` changes the user on `AWSPREVIOUS`) and
/// retire only when registered with `retire`.
pub(super) fn traits(row: &RotatorRow) -> Traits {
    let config: serde_json::Value = serde_json::from_str(&row.config).unwrap_or_default();
    match row.kind.as_str() {
        "random" => Traits {
            invalidates: Invalidates::Nothing,
            retires: false,
        },
        "postgres" | "mysql" => Database::traits(&config),
        _ => Traits {
            invalidates: Invalidates::Previous,
            retires: config["retire"] == true,
        },
    }
}

/// The credential a rotator's `setSecret` stops from working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Invalidates {
    /// None: a new value with no system behind it.
    Nothing,
    /// The one on `AWSCURRENT` (single user: the password changes in place).
    Current,
    /// The one on `AWSPREVIOUS` (alternating users).
    Previous,
}

/// The rotator a stored row describes.
pub(super) fn build(row: &RotatorRow, rot: &Rotations) -> Result<Box<dyn Rotator>> {
    let config: serde_json::Value = serde_json::from_str(&row.config)
        .map_err(|_| Error::internal("stored rotator settings are not valid JSON"))?;
    Ok(match row.kind.as_str() {
        "webhook" => {
            let c: WebhookConfig = parse("webhook", config)?;
            let sealed = row
                .key
                .as_ref()
                .ok_or_else(|| Error::internal("webhook rotator without a signing key"))?;
            let key = rot
                .service
                .envelope()
                .open_parts(
                    KEY_AAD,
                    &row.name,
                    rotor_crypto::SealedRef {
                        ciphertext: &sealed.ciphertext,
                        wrapped_key: &sealed.wrapped_key,
                        algorithm: &sealed.algorithm,
                        key_id: &sealed.key_id,
                    },
                )
                .map_err(|_| Error::internal("cannot open the webhook's signing key"))?;
            Box::new(Webhook {
                url: c.url,
                timeout: std::time::Duration::from_millis(c.timeout_ms),
                key: key.to_vec(),
            })
        }
        "exec" => {
            let c: ExecConfig = parse("exec", config)?;
            Box::new(Exec {
                argv: c.command,
                env: c.env,
                timeout: std::time::Duration::from_millis(c.timeout_ms),
                lambda: false,
            })
        }
        "lambda" => {
            let c: LambdaConfig = parse("lambda", config)?;
            let mut env = c.env;
            env.insert("PYTHONPATH".into(), c.code_dir.clone());
            env.insert("ROTOR_LAMBDA_HANDLER".into(), c.handler.clone());
            env.insert("ROTOR_LAMBDA_FUNCTION".into(), row.name.clone());
            env.insert(
                "ROTOR_LAMBDA_TIMEOUT_SECONDS".into(),
                (c.timeout_ms / 1000).max(1).to_string(),
            );
            Box::new(Exec {
                argv: vec![c.python, "-c".into(), LAMBDA_RUNNER.into()],
                env,
                timeout: std::time::Duration::from_millis(c.timeout_ms),
                lambda: true,
            })
        }
        "random" => Box::new(Random {
            config: parse("random", config)?,
        }),
        "postgres" | "mysql" => Box::new(Database::from_config(&row.kind, config)?),
        other => {
            return Err(Error::invalid_request(format!(
                "Rotator {} has an unknown type {other:?}",
                row.name
            )));
        }
    })
}

/// `random`: a new value from a template; nothing to set or test.
struct Random {
    config: RandomConfig,
}

impl Rotator for Random {
    fn step<'a>(&'a self, ctx: &'a Ctx<'a>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            match ctx.step {
                Step::CreateSecret => {
                    if ctx.pending_exists().await? {
                        return Ok(());
                    }
                    let fresh = rotor_crypto::random::password(&self.config.spec())?;
                    let value = match &self.config.field {
                        None => SecretValue::string(fresh)?,
                        Some(field) => {
                            let mut doc = match ctx.current().await {
                                Ok(SecretValue::String(s)) => {
                                    serde_json::from_str::<serde_json::Value>(s.expose_secret())
                                        .ok()
                                        .filter(serde_json::Value::is_object)
                                        .ok_or_else(|| {
                                            Error::invalid_request(
                                                "The current value is not a JSON object",
                                            )
                                        })?
                                }
                                Ok(SecretValue::Binary(_)) => {
                                    return Err(Error::invalid_request(
                                        "The current value is binary, not a JSON object",
                                    ));
                                }
                                Err(_) => serde_json::json!({}),
                            };
                            doc[field.as_str()] = serde_json::Value::String(fresh);
                            SecretValue::string(doc.to_string())?
                        }
                    };
                    ctx.put_pending(value).await
                }
                Step::SetSecret | Step::TestSecret | Step::RetirePrevious => Ok(()),
                Step::FinishSecret => ctx.finish().await,
            }
        })
    }
}

/// `webhook`: POST of the Lambda event, signed (see [`crate::hooks`]); any 2xx
/// answer is success.
struct Webhook {
    url: String,
    timeout: std::time::Duration,
    key: Vec<u8>,
}

impl Rotator for Webhook {
    fn step<'a>(&'a self, ctx: &'a Ctx<'a>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let creds = ctx.scoped().await?;
            let body = ctx.event(creds.token.expose_secret());
            let sent =
                crate::hooks::post_signed(&self.url, &self.key, body, self.timeout, &[]).await;
            ctx.rot.access.revoke_scoped(&creds);
            sent
        })
    }
}

/// `exec` and `lambda`: a local command with the event on stdin.
struct Exec {
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    timeout: std::time::Duration,
    lambda: bool,
}

impl Rotator for Exec {
    fn step<'a>(&'a self, ctx: &'a Ctx<'a>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let creds = ctx.scoped().await?;
            let result = self.run(ctx, &creds).await;
            ctx.rot.access.revoke_scoped(&creds);
            result
        })
    }
}

impl Exec {
    async fn run(&self, ctx: &Ctx<'_>, creds: &crate::ScopedCredentials) -> Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let endpoint = ctx.rot.endpoint().unwrap_or_default();
        let mut cmd = crate::hooks::command(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .envs(&self.env)
            .env("ROTOR_ADDR", &endpoint)
            .env("ROTOR_TOKEN", creds.token.expose_secret())
            .env("SECRETS_MANAGER_ENDPOINT", &endpoint)
            .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &endpoint)
            .env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
            .env(
                "AWS_SECRET_ACCESS_KEY",
                creds.secret_access_key.expose_secret(),
            )
            .env("AWS_SESSION_TOKEN", creds.session_token.expose_secret())
            .env("AWS_REGION", ctx.region())
            .env("AWS_DEFAULT_REGION", ctx.region())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            Error::invalid_request(format!("cannot run {}: {}", self.argv[0], e.kind()))
        })?;
        let event = ctx.event(creds.token.expose_secret());
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its input is fine.
            let _ = stdin.write_all(&event).await;
        }
        let mut stdout = child.stdout.take();
        let waited = tokio::time::timeout(self.timeout, async {
            let mut out = Vec::new();
            if let Some(s) = stdout.as_mut() {
                let _ = s.take(64 * 1024).read_to_end(&mut out).await;
            }
            (child.wait().await, out)
        })
        .await;
        let (status, out) = match waited {
            Ok((Ok(status), out)) => (status, out),
            Ok((Err(e), _)) => {
                return Err(Error::invalid_request(format!(
                    "waiting for the command failed: {}",
                    e.kind()
                )));
            }
            Err(_) => {
                return Err(Error::invalid_request(format!(
                    "the command took longer than {} ms and was killed",
                    self.timeout.as_millis()
                )));
            }
        };
        if status.success() {
            return Ok(());
        }
        if self.lambda {
            // The runner prints only the exception's type: its message could hold
            // anything, a secret value included.
            let text = String::from_utf8_lossy(&out);
            if let Some(kind) = text
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("ROTOR-LAMBDA-ERROR "))
            {
                let kind: String = kind
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                    .take(100)
                    .collect();
                return Err(Error::invalid_request(format!(
                    "the rotation function raised {kind}"
                )));
            }
        }
        Err(Error::invalid_request(match status.code() {
            Some(code) => format!("the command exited with status {code}"),
            None => "the command was killed by a signal".to_string(),
        }))
    }
}
