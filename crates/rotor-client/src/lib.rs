//! A client for Rotor's native `/v1` API.
//!
//! Each method is one endpoint of [`rotor_api`], the API's contract: it sends that
//! endpoint's typed query and body and returns its typed answer. Errors carry the
//! server's error type (`ResourceNotFoundException`, ...) and HTTP status. The
//! AWS-compatible API is meant to be used through an AWS SDK instead.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rotor_client::ClientError> {
//! let client = rotor_client::Client::new("http://127.0.0.1:8200", "root-token")?;
//! let v = client.get_value("/dba/mongo/password", None, Some("current")).await?;
//! println!("{}", v.version_id);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod backend;
pub mod cache;
pub mod consumers;
mod events;
pub mod reference;
pub mod resolver;
pub mod webhook;

#[cfg(test)]
mod fuzz_tests;

pub use events::{HookTarget, NewSubscription, Watch};
use reqwest::StatusCode;
use rotor_api::Endpoint;
use rotor_api::replication::RuleKind;
use rotor_api::sys::{PrincipalKind, RotatorKind};
use rotor_api::{Deleted, Sensitive, replication, rotation, secrets, sys};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;

/// A rotation schedule, as [`Client::set_rotation`] takes it.
pub use rotor_core::schedule::RotationRules;

/// A request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{kind}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Error type, e.g. `ResourceNotFoundException`.
        kind: String,
        /// Message.
        message: String,
    },
    /// The server could not be reached or answered something unreadable.
    #[error("cannot reach Rotor at {addr}: {reason}")]
    Transport {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The client was configured wrongly.
    #[error("{0}")]
    Config(String),
}

/// A connection to one Rotor server (cheap to clone: clones share connections).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    addr: String,
    token: SecretString,
    /// The registered consumer its requests are made for, if any.
    consumer: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// A value to store: text or bytes.
#[derive(Clone)]
pub enum NewValue {
    /// Text.
    Text(SecretString),
    /// Bytes.
    Bytes(Vec<u8>),
}

impl std::fmt::Debug for NewValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl NewValue {
    /// The value as the API carries it: `(value, value_base64)`, one of them set.
    fn wire(&self) -> (Option<Sensitive>, Option<String>) {
        use base64::Engine as _;
        match self {
            NewValue::Text(s) => (Some(Sensitive::from(s.clone())), None),
            NewValue::Bytes(b) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(b)),
            ),
        }
    }
}

/// The error of a failed answer: the server's [`rotor_api::ErrorBody`], or the status
/// alone when the body is not one (a proxy's page, say).
pub(crate) fn api_error(status: StatusCode, body: &str) -> ClientError {
    match serde_json::from_str::<rotor_api::ErrorBody>(body) {
        Ok(b) => ClientError::Api {
            status: status.as_u16(),
            kind: b.error.kind,
            message: b.error.message,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            kind: match status {
                StatusCode::UNAUTHORIZED => "UnauthenticatedException",
                _ => "HttpError",
            }
            .to_string(),
            message: format!("HTTP {status}"),
        },
    }
}

fn http_method(method: rotor_api::Method) -> reqwest::Method {
    match method {
        rotor_api::Method::Get => reqwest::Method::GET,
        rotor_api::Method::Post => reqwest::Method::POST,
        rotor_api::Method::Put => reqwest::Method::PUT,
        rotor_api::Method::Patch => reqwest::Method::PATCH,
        rotor_api::Method::Delete => reqwest::Method::DELETE,
    }
}

impl Client {
    /// A client for the server at `addr` (e.g. `http://127.0.0.1:8200`) using `token`.
    pub fn new(addr: &str, token: &str) -> Result<Self, ClientError> {
        if !(addr.starts_with("http://") || addr.starts_with("https://")) {
            return Err(ClientError::Config(format!(
                "ROTOR_ADDR must start with http:// or https://, got {addr:?}"
            )));
        }
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        Ok(Client {
            http,
            addr: addr.trim_end_matches('/').to_string(),
            token: SecretString::from(token),
            consumer: None,
        })
    }

    /// The same client, saying in each request (`X-Rotor-Consumer`) that it reads for
    /// registered consumer `consumer`: such reads are the consumer's, which reports
    /// what it uses, not an anonymous reader's.
    pub fn as_consumer(&self, consumer: &str) -> Client {
        Client {
            consumer: Some(consumer.to_string()),
            ..self.clone()
        }
    }

    /// A request to endpoint `E`, with `params` in place of its route's parameters.
    pub(crate) fn request<E: Endpoint>(&self, params: &[&str]) -> reqwest::RequestBuilder {
        let spec = E::spec();
        let req = self
            .http
            .request(
                http_method(spec.method),
                format!("{}{}", self.addr, spec.path(params)),
            )
            .bearer_auth(self.token.expose_secret());
        match &self.consumer {
            // The id when a header can carry it; its presence is what counts.
            Some(id) if id.bytes().all(|b| b.is_ascii_graphic()) => {
                req.header("x-rotor-consumer", id.as_str())
            }
            Some(_) => req.header("x-rotor-consumer", "1"),
            None => req,
        }
    }

    pub(crate) fn transport(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Transport {
            addr: self.addr.clone(),
            reason: e.to_string(),
        }
    }

    /// Calls endpoint `E`: `params` fill its route's parameters, in order. An answer
    /// without a body (`204`) reads as `()`.
    async fn send<E: Endpoint>(
        &self,
        params: &[&str],
        query: Option<&E::Query>,
        body: Option<&E::Body>,
    ) -> Result<E::Response, ClientError> {
        let mut req = self.request::<E>(params);
        if let Some(q) = query {
            req = req.query(q);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            return Err(api_error(status, &text));
        }
        let text = if text.trim().is_empty() {
            "null"
        } else {
            &text
        };
        serde_json::from_str(text).map_err(|e| {
            self.transport(format!("unreadable answer to {}: {e}", E::spec().operation))
        })
    }

    /// Creates a secret, optionally with a first value, description, tags and version id.
    pub async fn create(
        &self,
        name: &str,
        value: Option<&NewValue>,
        description: Option<&str>,
        tags: &[(String, String)],
        version_id: Option<&str>,
    ) -> Result<secrets::Created, ClientError> {
        let (value, value_base64) = value.map(NewValue::wire).unwrap_or_default();
        let body = secrets::NewSecret {
            name: name.to_string(),
            value,
            value_base64,
            description: description.map(str::to_string),
            tags: tags.iter().cloned().collect(),
            version_id: version_id.map(str::to_string),
            region: None,
        };
        self.send::<secrets::CreateSecret>(&[], None, Some(&body))
            .await
    }

    /// Puts a new version; it becomes AWSCURRENT unless `stages` are given.
    pub async fn put(
        &self,
        name: &str,
        value: &NewValue,
        version_id: Option<&str>,
        stages: &[String],
    ) -> Result<secrets::Put, ClientError> {
        let (value, value_base64) = value.wire();
        let body = secrets::NewValue {
            value,
            value_base64,
            version_id: version_id.map(str::to_string),
            stages: (!stages.is_empty()).then(|| stages.to_vec()),
        };
        self.send::<secrets::PutSecretValue>(&[name], None, Some(&body))
            .await
    }

    /// Reads a version's value: by id, by label (aliases allowed), or AWSCURRENT.
    pub async fn get_value(
        &self,
        name: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<secrets::Value, ClientError> {
        let query = secrets::GetQuery {
            version_id: version_id.map(str::to_string),
            stage: stage.map(str::to_string),
        };
        self.send::<secrets::GetSecretValue>(&[name], Some(&query), None)
            .await
    }

    /// Describes a secret.
    pub async fn describe(&self, name: &str) -> Result<secrets::Description, ClientError> {
        self.send::<secrets::DescribeSecret>(&[name], None, None)
            .await
    }

    /// Lists secrets, following pages to the end.
    pub async fn list(
        &self,
        prefix: Option<&str>,
        include_deleted: bool,
    ) -> Result<Vec<secrets::Description>, ClientError> {
        let mut query = secrets::ListQuery {
            prefix: prefix.map(str::to_string),
            include_deleted,
            ..Default::default()
        };
        let mut out = Vec::new();
        loop {
            let page = self
                .send::<secrets::ListSecrets>(&[], Some(&query), None)
                .await?;
            out.extend(page.secrets);
            match page.next_token {
                Some(next) => query.next_token = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Lists versions.
    pub async fn versions(
        &self,
        name: &str,
        include_deprecated: bool,
    ) -> Result<secrets::VersionList, ClientError> {
        let query = secrets::VersionsQuery { include_deprecated };
        self.send::<secrets::ListSecretVersionIds>(&[name], Some(&query), None)
            .await
    }

    /// Moves or removes a staging label.
    pub async fn stage(
        &self,
        name: &str,
        stage: &str,
        move_to: Option<&str>,
        remove_from: Option<&str>,
    ) -> Result<secrets::NameArn, ClientError> {
        let body = secrets::StageMove {
            stage: stage.to_string(),
            move_to: move_to.map(str::to_string),
            remove_from: remove_from.map(str::to_string),
        };
        self.send::<secrets::UpdateSecretVersionStage>(&[name], None, Some(&body))
            .await
    }

    /// Deletes a secret (scheduled, or at once with `force`).
    pub async fn delete(
        &self,
        name: &str,
        recovery_window_days: Option<i64>,
        force: bool,
    ) -> Result<secrets::Deletion, ClientError> {
        let query = secrets::DeleteQuery {
            recovery_window_days,
            force,
        };
        self.send::<secrets::DeleteSecret>(&[name], Some(&query), None)
            .await
    }

    /// Cancels a scheduled deletion.
    pub async fn restore(&self, name: &str) -> Result<secrets::NameArn, ClientError> {
        self.send::<secrets::RestoreSecret>(&[name], None, None)
            .await
    }

    /// Adds tags; answers the secret as tagged.
    pub async fn tag(
        &self,
        name: &str,
        tags: &[(String, String)],
    ) -> Result<secrets::Description, ClientError> {
        let body = secrets::Tags {
            tags: tags.iter().cloned().collect::<BTreeMap<_, _>>(),
        };
        self.send::<secrets::TagResource>(&[name], None, Some(&body))
            .await
    }

    /// Removes tags; answers the secret as left.
    pub async fn untag(
        &self,
        name: &str,
        keys: &[String],
    ) -> Result<secrets::Description, ClientError> {
        let query = secrets::UntagQuery {
            keys: keys.join(","),
        };
        self.send::<secrets::UntagResource>(&[name], Some(&query), None)
            .await
    }

    /// Generates a random password.
    pub async fn password(
        &self,
        spec: &secrets::PasswordSpec,
    ) -> Result<secrets::Password, ClientError> {
        self.send::<secrets::GetRandomPassword>(&[], None, Some(spec))
            .await
    }

    /// Shows a secret's rotation: configuration, schedule and latest rotation.
    pub async fn rotation(&self, name: &str) -> Result<rotation::RotationState, ClientError> {
        self.send::<rotation::DescribeRotation>(&[name], None, None)
            .await
    }

    /// Configures a secret's rotation (`RotateSecret`): the rotator (a name, or a
    /// Lambda ARN naming one) and the schedule, each kept as it is when `None`. Rotates
    /// at once only when `rotate_immediately`, creating version `version_id` (a UUID
    /// when `None`).
    pub async fn set_rotation(
        &self,
        name: &str,
        rotator: Option<&str>,
        rules: Option<&RotationRules>,
        rotate_immediately: bool,
        version_id: Option<&str>,
    ) -> Result<rotation::Rotated, ClientError> {
        let config = rotation::RotationConfig {
            rotator: rotator.map(str::to_string),
            rules: rules.cloned(),
            rotate_immediately,
            version_id: version_id.map(str::to_string),
            adoption: None,
        };
        self.configure_rotation(name, &config).await
    }

    /// Retires the previous credential of `name` after a change made by hand, once no
    /// live consumer uses it (waiting up to its adoption timeout when `wait`).
    pub async fn retire_previous(
        &self,
        name: &str,
        wait: bool,
    ) -> Result<rotation::Retired, ClientError> {
        let body = rotation::RetireRequest { wait };
        self.send::<rotation::RetirePrevious>(&[name], None, Some(&body))
            .await
    }

    /// Rotation health of the secrets this token may describe.
    pub async fn rotation_health(&self) -> Result<rotation::Health, ClientError> {
        self.send::<rotation::RotationHealth>(&[], None, None).await
    }

    /// Configures a secret's rotation with every setting [`rotation::RotationConfig`]
    /// has, the adoption policy included.
    pub async fn configure_rotation(
        &self,
        name: &str,
        config: &rotation::RotationConfig,
    ) -> Result<rotation::Rotated, ClientError> {
        self.send::<rotation::ConfigureRotation>(&[name], None, Some(config))
            .await
    }

    /// Rotates a secret now with its configured rotator, creating version `version_id`
    /// (a UUID when `None`).
    pub async fn rotate(
        &self,
        name: &str,
        version_id: Option<&str>,
    ) -> Result<rotation::Rotated, ClientError> {
        let body = rotation::RotateNow {
            version_id: version_id.map(str::to_string),
        };
        self.send::<rotation::RotateSecret>(&[name], None, Some(&body))
            .await
    }

    /// Lists a secret's last `limit` rotations (default 20), newest first.
    pub async fn rotation_history(
        &self,
        name: &str,
        limit: Option<i64>,
    ) -> Result<rotation::History, ClientError> {
        let query = rotation::HistoryQuery { limit };
        self.send::<rotation::ListRotations>(&[name], Some(&query), None)
            .await
    }

    /// Turns a secret's scheduled rotation off and stops a running rotation
    /// (`CancelRotateSecret`).
    pub async fn cancel_rotation(&self, name: &str) -> Result<rotation::Rotated, ClientError> {
        self.send::<rotation::CancelRotateSecret>(&[name], None, None)
            .await
    }

    /// Adds a replication rule (`copy` from `source`, or `merge` with `template`).
    pub async fn add_replication(
        &self,
        name: &str,
        kind: RuleKind,
        source: Option<&str>,
        destination: &str,
        template: Option<&str>,
    ) -> Result<replication::RuleAdded, ClientError> {
        let body = replication::NewRule {
            name: name.to_string(),
            kind,
            source: source.map(str::to_string),
            destination: destination.to_string(),
            template: template.map(str::to_string),
        };
        self.send::<replication::AddReplicationRule>(&[], None, Some(&body))
            .await
    }

    /// Lists replication rules.
    pub async fn list_replication(&self) -> Result<replication::RuleList, ClientError> {
        self.send::<replication::ListReplicationRules>(&[], None, None)
            .await
    }

    /// Shows a replication rule.
    pub async fn replication(&self, name: &str) -> Result<replication::Rule, ClientError> {
        self.send::<replication::DescribeReplicationRule>(&[name], None, None)
            .await
    }

    /// Removes a replication rule (its destinations stay).
    pub async fn remove_replication(&self, name: &str) -> Result<(), ClientError> {
        self.send::<replication::RemoveReplicationRule>(&[name], None, None)
            .await
    }

    /// Repairs destinations that drifted from their sources.
    pub async fn sync_replication(&self) -> Result<replication::Repairs, ClientError> {
        self.send::<replication::SyncReplicas>(&[], None, None)
            .await
    }

    /// Creates a principal.
    pub async fn create_principal(
        &self,
        name: &str,
        kind: PrincipalKind,
    ) -> Result<sys::NewPrincipal, ClientError> {
        let body = sys::NewPrincipal {
            name: name.to_string(),
            kind,
        };
        self.send::<sys::CreatePrincipal>(&[], None, Some(&body))
            .await
    }

    /// Lists principals.
    pub async fn list_principals(&self) -> Result<sys::PrincipalList, ClientError> {
        self.send::<sys::ListPrincipals>(&[], None, None).await
    }

    /// Deletes a principal with its tokens and keys.
    pub async fn delete_principal(&self, name: &str) -> Result<Deleted, ClientError> {
        self.send::<sys::DeletePrincipal>(&[name], None, None).await
    }

    /// Creates or replaces a policy from its statements.
    pub async fn put_policy(
        &self,
        name: &str,
        statements: &[rotor_core::policy::Statement],
    ) -> Result<rotor_core::policy::Policy, ClientError> {
        let body = sys::PolicyBody {
            statements: statements.to_vec(),
        };
        self.send::<sys::PutPolicy>(&[name], None, Some(&body))
            .await
    }

    /// Reads a policy.
    pub async fn get_policy(&self, name: &str) -> Result<rotor_core::policy::Policy, ClientError> {
        self.send::<sys::GetPolicy>(&[name], None, None).await
    }

    /// Lists policies.
    pub async fn list_policies(&self) -> Result<sys::PolicyList, ClientError> {
        self.send::<sys::ListPolicies>(&[], None, None).await
    }

    /// Deletes a policy.
    pub async fn delete_policy(&self, name: &str) -> Result<Deleted, ClientError> {
        self.send::<sys::DeletePolicy>(&[name], None, None).await
    }

    /// Attaches a policy to a principal.
    pub async fn attach_policy(
        &self,
        principal: &str,
        policy: &str,
    ) -> Result<sys::Attachment, ClientError> {
        self.send::<sys::AttachPolicy>(&[principal, policy], None, None)
            .await
    }

    /// Detaches a policy from a principal.
    pub async fn detach_policy(
        &self,
        principal: &str,
        policy: &str,
    ) -> Result<sys::Detachment, ClientError> {
        self.send::<sys::DetachPolicy>(&[principal, policy], None, None)
            .await
    }

    /// Creates a token for `principal`, optionally expiring after `ttl_secs`.
    pub async fn create_token(
        &self,
        principal: &str,
        ttl_secs: Option<i64>,
    ) -> Result<sys::NewToken, ClientError> {
        let body = sys::TokenRequest {
            principal: principal.to_string(),
            ttl_secs,
        };
        self.send::<sys::CreateToken>(&[], None, Some(&body)).await
    }

    /// Looks up a token (by id or value), or the caller's own when `None`.
    pub async fn lookup_token(&self, token: Option<&str>) -> Result<sys::Token, ClientError> {
        let body = sys::TokenRef {
            token: token.map(Sensitive::new),
        };
        self.send::<sys::LookupToken>(&[], None, Some(&body)).await
    }

    /// Revokes a token (by id or value).
    pub async fn revoke_token(&self, token: &str) -> Result<sys::Token, ClientError> {
        let body = sys::TokenToRevoke {
            token: Sensitive::new(token),
        };
        self.send::<sys::RevokeToken>(&[], None, Some(&body)).await
    }

    /// Creates an access key pair for `principal`.
    pub async fn create_access_key(
        &self,
        principal: &str,
    ) -> Result<sys::NewAccessKey, ClientError> {
        let body = sys::AccessKeyRequest {
            principal: principal.to_string(),
        };
        self.send::<sys::CreateAccessKey>(&[], None, Some(&body))
            .await
    }

    /// Deletes an access key pair.
    pub async fn delete_access_key(&self, id: &str) -> Result<Deleted, ClientError> {
        self.send::<sys::DeleteAccessKey>(&[id], None, None).await
    }

    /// Registers a rotator of `kind` with its settings (free-form: each kind has its
    /// own, see the README); `replace` overwrites one of the same name. A webhook's
    /// answer holds its `signing_key`, shown only this once.
    pub async fn create_rotator(
        &self,
        name: &str,
        kind: RotatorKind,
        config: serde_json::Value,
        replace: bool,
    ) -> Result<sys::Rotator, ClientError> {
        let body = sys::NewRotator {
            name: name.to_string(),
            kind,
            config,
            replace,
        };
        self.send::<sys::CreateRotator>(&[], None, Some(&body))
            .await
    }

    /// Lists rotators.
    pub async fn list_rotators(&self) -> Result<sys::RotatorList, ClientError> {
        self.send::<sys::ListRotators>(&[], None, None).await
    }

    /// Shows a rotator (never its signing key).
    pub async fn rotator(&self, name: &str) -> Result<sys::Rotator, ClientError> {
        self.send::<sys::DescribeRotator>(&[name], None, None).await
    }

    /// Deletes a rotator.
    pub async fn delete_rotator(&self, name: &str) -> Result<Deleted, ClientError> {
        self.send::<sys::DeleteRotator>(&[name], None, None).await
    }
}
