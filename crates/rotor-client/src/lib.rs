//! A client for Rotor's native `/v1` API.
//!
//! Each method maps to one route and returns the JSON document the server sends; errors
//! carry the server's typed error (`ResourceNotFoundException`, ...) and HTTP status.
//! The AWS-compatible API is meant to be used through an AWS SDK instead.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rotor_client::ClientError> {
//! let client = rotor_client::Client::new("http://127.0.0.1:8200", "root-token")?;
//! let v = client.get_value("/dba/mongo/password", None, Some("current")).await?;
//! println!("{}", v["version_id"]);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod backend;
pub mod cache;
mod consumers;
mod events;
pub mod reference;
pub mod resolver;
pub mod webhook;

#[cfg(test)]
mod fuzz_tests;

pub use events::{HookTarget, NewSubscription, Watch};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// A rotation schedule, as [`Client::set_rotation`] takes it.
pub use rotor_core::schedule::RotationRules;

const NAME: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

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

fn value_fields(body: &mut Value, value: &NewValue) {
    use base64::Engine as _;
    match value {
        NewValue::Text(s) => body["value"] = json!(s.expose_secret()),
        NewValue::Bytes(b) => {
            body["value_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(b))
        }
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
        })
    }

    fn url(&self, resource: &str, name: Option<&str>) -> String {
        match name {
            Some(n) => format!(
                "{}/v1/{resource}/{}",
                self.addr,
                utf8_percent_encode(n, NAME)
            ),
            None => format!("{}/v1/{resource}", self.addr),
        }
    }

    async fn call(
        &self,
        method: Method,
        url: String,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(self.token.expose_secret())
            .query(query);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let transport = |e: reqwest::Error| ClientError::Transport {
            addr: self.addr.clone(),
            reason: e.to_string(),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(transport)?;
        let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(doc);
        }
        let kind = doc["error"]["type"].as_str().unwrap_or(match status {
            StatusCode::UNAUTHORIZED => "UnauthenticatedException",
            _ => "HttpError",
        });
        let message = doc["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status}"));
        Err(ClientError::Api {
            status: status.as_u16(),
            kind: kind.to_string(),
            message,
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
    ) -> Result<Value, ClientError> {
        let mut body = json!({"name": name, "description": description, "version_id": version_id});
        body["tags"] = tags
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        if let Some(v) = value {
            value_fields(&mut body, v);
        }
        self.call(Method::POST, self.url("secrets", None), &[], Some(body))
            .await
    }

    /// Puts a new version.
    pub async fn put(
        &self,
        name: &str,
        value: &NewValue,
        version_id: Option<&str>,
        stages: &[String],
    ) -> Result<Value, ClientError> {
        let mut body = json!({"version_id": version_id});
        if !stages.is_empty() {
            body["stages"] = json!(stages);
        }
        value_fields(&mut body, value);
        self.call(
            Method::PUT,
            self.url("secrets", Some(name)),
            &[],
            Some(body),
        )
        .await
    }

    /// Reads a version's value: by id, by label (aliases allowed), or AWSCURRENT.
    pub async fn get_value(
        &self,
        name: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut q = Vec::new();
        if let Some(v) = version_id {
            q.push(("version_id", v.to_string()));
        }
        if let Some(s) = stage {
            q.push(("stage", s.to_string()));
        }
        self.call(Method::GET, self.url("secrets", Some(name)), &q, None)
            .await
    }

    /// Describes a secret.
    pub async fn describe(&self, name: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, self.url("metadata", Some(name)), &[], None)
            .await
    }

    /// Lists secrets, following pages to the end.
    pub async fn list(
        &self,
        prefix: Option<&str>,
        include_deleted: bool,
    ) -> Result<Vec<Value>, ClientError> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut q = vec![("include_deleted", include_deleted.to_string())];
            if let Some(p) = prefix {
                q.push(("prefix", p.to_string()));
            }
            if let Some(n) = &next {
                q.push(("next_token", n.clone()));
            }
            let page = self
                .call(Method::GET, self.url("secrets", None), &q, None)
                .await?;
            out.extend(page["secrets"].as_array().cloned().unwrap_or_default());
            match page["next_token"].as_str() {
                Some(n) => next = Some(n.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// Lists versions.
    pub async fn versions(
        &self,
        name: &str,
        include_deprecated: bool,
    ) -> Result<Value, ClientError> {
        self.call(
            Method::GET,
            self.url("versions", Some(name)),
            &[("include_deprecated", include_deprecated.to_string())],
            None,
        )
        .await
    }

    /// Moves or removes a staging label.
    pub async fn stage(
        &self,
        name: &str,
        stage: &str,
        move_to: Option<&str>,
        remove_from: Option<&str>,
    ) -> Result<Value, ClientError> {
        let body = json!({"stage": stage, "move_to": move_to, "remove_from": remove_from});
        self.call(
            Method::POST,
            self.url("stages", Some(name)),
            &[],
            Some(body),
        )
        .await
    }

    /// Deletes a secret (scheduled, or at once with `force`).
    pub async fn delete(
        &self,
        name: &str,
        recovery_window_days: Option<i64>,
        force: bool,
    ) -> Result<Value, ClientError> {
        let mut q = vec![("force", force.to_string())];
        if let Some(d) = recovery_window_days {
            q.push(("recovery_window_days", d.to_string()));
        }
        self.call(Method::DELETE, self.url("secrets", Some(name)), &q, None)
            .await
    }

    /// Cancels a scheduled deletion.
    pub async fn restore(&self, name: &str) -> Result<Value, ClientError> {
        self.call(Method::POST, self.url("restore", Some(name)), &[], None)
            .await
    }

    /// Adds tags.
    pub async fn tag(&self, name: &str, tags: &[(String, String)]) -> Result<Value, ClientError> {
        let tags: serde_json::Map<String, Value> =
            tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        self.call(
            Method::POST,
            self.url("tags", Some(name)),
            &[],
            Some(json!({"tags": tags})),
        )
        .await
    }

    /// Removes tags.
    pub async fn untag(&self, name: &str, keys: &[String]) -> Result<Value, ClientError> {
        self.call(
            Method::DELETE,
            self.url("tags", Some(name)),
            &[("keys", keys.join(","))],
            None,
        )
        .await
    }

    /// Generates a random password; `options` uses the native API's field names.
    pub async fn password(&self, options: Value) -> Result<Value, ClientError> {
        self.call(Method::POST, self.url("password", None), &[], Some(options))
            .await
    }

    /// Shows a secret's rotation: configuration, schedule and latest rotation.
    pub async fn rotation(&self, name: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, self.url("rotation", Some(name)), &[], None)
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
    ) -> Result<Value, ClientError> {
        let body = json!({"rotator": rotator, "rules": rules,
                          "rotate_immediately": rotate_immediately, "version_id": version_id});
        self.call(
            Method::PUT,
            self.url("rotation", Some(name)),
            &[],
            Some(body),
        )
        .await
    }

    /// Rotates a secret now with its configured rotator, creating version `version_id`
    /// (a UUID when `None`).
    pub async fn rotate(&self, name: &str, version_id: Option<&str>) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            self.url("rotate", Some(name)),
            &[],
            Some(json!({"version_id": version_id})),
        )
        .await
    }

    /// Lists a secret's last `limit` rotations (default 20), newest first.
    pub async fn rotation_history(
        &self,
        name: &str,
        limit: Option<i64>,
    ) -> Result<Value, ClientError> {
        let q: Vec<_> = limit
            .map(|l| ("limit", l.to_string()))
            .into_iter()
            .collect();
        self.call(
            Method::GET,
            self.url("rotation-history", Some(name)),
            &q,
            None,
        )
        .await
    }

    /// Turns a secret's scheduled rotation off and stops a running rotation
    /// (`CancelRotateSecret`).
    pub async fn cancel_rotation(&self, name: &str) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            self.url("cancel-rotation", Some(name)),
            &[],
            None,
        )
        .await
    }

    /// Adds a replication rule (`copy` from `source`, or `merge` with `template`).
    pub async fn add_replication(
        &self,
        name: &str,
        kind: &str,
        source: Option<&str>,
        destination: &str,
        template: Option<&str>,
    ) -> Result<Value, ClientError> {
        let body = json!({"name": name, "kind": kind, "source": source,
                          "destination": destination, "template": template});
        self.call(Method::POST, self.url("replication", None), &[], Some(body))
            .await
    }

    /// Lists replication rules.
    pub async fn list_replication(&self) -> Result<Value, ClientError> {
        self.call(Method::GET, self.url("replication", None), &[], None)
            .await
    }

    /// Shows a replication rule.
    pub async fn replication(&self, name: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, self.url("replication", Some(name)), &[], None)
            .await
    }

    /// Removes a replication rule (its destinations stay).
    pub async fn remove_replication(&self, name: &str) -> Result<Value, ClientError> {
        self.call(
            Method::DELETE,
            self.url("replication", Some(name)),
            &[],
            None,
        )
        .await
    }

    /// Repairs destinations that drifted from their sources.
    pub async fn sync_replication(&self) -> Result<Value, ClientError> {
        self.call(Method::POST, self.url("replication-sync", None), &[], None)
            .await
    }

    fn sys_url(&self, path: &str) -> String {
        format!("{}/v1/sys/{path}", self.addr)
    }

    fn enc(part: &str) -> String {
        utf8_percent_encode(part, NAME).to_string()
    }

    /// Creates a principal (`service` or `person`).
    pub async fn create_principal(&self, name: &str, kind: &str) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            self.sys_url("principals"),
            &[],
            Some(json!({"name": name, "kind": kind})),
        )
        .await
    }

    /// Lists principals.
    pub async fn list_principals(&self) -> Result<Value, ClientError> {
        self.call(Method::GET, self.sys_url("principals"), &[], None)
            .await
    }

    /// Deletes a principal with its tokens and keys.
    pub async fn delete_principal(&self, name: &str) -> Result<Value, ClientError> {
        self.call(
            Method::DELETE,
            self.sys_url(&format!("principals/{}", Self::enc(name))),
            &[],
            None,
        )
        .await
    }

    /// Creates or replaces a policy from its statements.
    pub async fn put_policy(&self, name: &str, statements: Value) -> Result<Value, ClientError> {
        let url = self.sys_url(&format!("policies/{}", Self::enc(name)));
        self.call(
            Method::PUT,
            url,
            &[],
            Some(json!({"statements": statements})),
        )
        .await
    }

    /// Reads a policy.
    pub async fn get_policy(&self, name: &str) -> Result<Value, ClientError> {
        self.call(
            Method::GET,
            self.sys_url(&format!("policies/{}", Self::enc(name))),
            &[],
            None,
        )
        .await
    }

    /// Lists policies.
    pub async fn list_policies(&self) -> Result<Value, ClientError> {
        self.call(Method::GET, self.sys_url("policies"), &[], None)
            .await
    }

    /// Deletes a policy.
    pub async fn delete_policy(&self, name: &str) -> Result<Value, ClientError> {
        self.call(
            Method::DELETE,
            self.sys_url(&format!("policies/{}", Self::enc(name))),
            &[],
            None,
        )
        .await
    }

    /// Attaches (or, with `attach` false, detaches) a policy to a principal.
    pub async fn attach_policy(
        &self,
        principal: &str,
        policy: &str,
        attach: bool,
    ) -> Result<Value, ClientError> {
        let url = self.sys_url(&format!(
            "principals/{}/policies/{}",
            Self::enc(principal),
            Self::enc(policy)
        ));
        let method = if attach { Method::PUT } else { Method::DELETE };
        self.call(method, url, &[], None).await
    }

    /// Creates a token for `principal`, optionally expiring after `ttl_secs`.
    pub async fn create_token(
        &self,
        principal: &str,
        ttl_secs: Option<i64>,
    ) -> Result<Value, ClientError> {
        let body = json!({"principal": principal, "ttl_secs": ttl_secs});
        self.call(Method::POST, self.sys_url("tokens"), &[], Some(body))
            .await
    }

    /// Looks up a token (by id or value), or the caller's own when `None`.
    pub async fn lookup_token(&self, token: Option<&str>) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            self.sys_url("tokens/lookup"),
            &[],
            Some(json!({"token": token})),
        )
        .await
    }

    /// Revokes a token (by id or value).
    pub async fn revoke_token(&self, token: &str) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            self.sys_url("tokens/revoke"),
            &[],
            Some(json!({"token": token})),
        )
        .await
    }

    /// Creates an access key pair for `principal`.
    pub async fn create_access_key(&self, principal: &str) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            self.sys_url("access-keys"),
            &[],
            Some(json!({"principal": principal})),
        )
        .await
    }

    /// Deletes an access key pair.
    pub async fn delete_access_key(&self, id: &str) -> Result<Value, ClientError> {
        self.call(
            Method::DELETE,
            self.sys_url(&format!("access-keys/{}", Self::enc(id))),
            &[],
            None,
        )
        .await
    }
    /// Registers a rotator of `kind` (`webhook`, `exec`, `lambda`, `postgres`, `mysql`,
    /// `random`) with its settings; `replace` overwrites one of the same name. A
    /// webhook's answer holds its `signing_key`, shown only this once.
    pub async fn create_rotator(
        &self,
        name: &str,
        kind: &str,
        config: Value,
        replace: bool,
    ) -> Result<Value, ClientError> {
        let body = json!({"name": name, "type": kind, "config": config, "replace": replace});
        self.call(Method::POST, self.sys_url("rotators"), &[], Some(body))
            .await
    }

    /// Lists rotators.
    pub async fn list_rotators(&self) -> Result<Value, ClientError> {
        self.call(Method::GET, self.sys_url("rotators"), &[], None)
            .await
    }

    /// Shows a rotator (never its signing key).
    pub async fn rotator(&self, name: &str) -> Result<Value, ClientError> {
        self.call(
            Method::GET,
            self.sys_url(&format!("rotators/{}", Self::enc(name))),
            &[],
            None,
        )
        .await
    }

    /// Deletes a rotator.
    pub async fn delete_rotator(&self, name: &str) -> Result<Value, ClientError> {
        self.call(
            Method::DELETE,
            self.sys_url(&format!("rotators/{}", Self::enc(name))),
            &[],
            None,
        )
        .await
    }
}
