//! Any endpoint speaking the [AWS Secrets Manager API] (JSON 1.1), Rotor's own
//! included: one `GetSecretValue`, signed with SigV4 by [`rotor_crypto::sigv4`], over plain
//! reqwest, so the client needs no AWS SDK.
//!
//! [AWS Secrets Manager API]: https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html

use super::{Backend, BackendError, BackendErrorKind, BoxFuture, Fetched, Lookup};
use rotor_crypto::sigv4;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// Reads RESOURCE as a `SecretId`; `#2` or `?stage=AWSPREVIOUS` reads the previous
/// version, `?version_id=` a given one.
pub struct AwsBackend {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    region: String,
    access_key_id: String,
    secret_access_key: SecretString,
    session_token: Option<SecretString>,
}

impl std::fmt::Debug for AwsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsBackend")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl AwsBackend {
    /// Signs with the access key pair for `region` and posts to `endpoint` (for AWS:
    /// `https://secretsmanager.REGION.amazonaws.com`; for Rotor: its listen address).
    pub fn new(
        endpoint: &str,
        region: &str,
        access_key_id: &str,
        secret_access_key: SecretString,
    ) -> Result<Self, BackendError> {
        let invalid = |m: String| BackendError::new(BackendErrorKind::Invalid, m);
        let endpoint = reqwest::Url::parse(endpoint)
            .map_err(|e| invalid(format!("endpoint {endpoint:?} is not a URL: {e}")))?;
        if endpoint.host_str().is_none() {
            return Err(invalid(format!("endpoint {endpoint} has no host")));
        }
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| invalid(format!("HTTP client: {e}")))?;
        Ok(AwsBackend {
            http,
            endpoint,
            region: region.to_string(),
            access_key_id: access_key_id.to_string(),
            secret_access_key,
            session_token: None,
        })
    }

    /// Sends `X-Amz-Security-Token` too (temporary credentials).
    pub fn with_session_token(mut self, token: SecretString) -> Self {
        self.session_token = Some(token);
        self
    }

    fn host(&self) -> String {
        let host = self.endpoint.host_str().unwrap_or_default();
        match self.endpoint.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
    }
}

fn error_kind(status: u16, aws_type: &str) -> BackendErrorKind {
    match aws_type {
        "ResourceNotFoundException" => BackendErrorKind::NotFound,
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignatureException"
        | "MissingAuthenticationTokenException"
        | "AccessDeniedException"
        | "ExpiredTokenException" => BackendErrorKind::Denied,
        _ if status >= 500 => BackendErrorKind::Unavailable,
        _ => BackendErrorKind::Invalid,
    }
}

impl Backend for AwsBackend {
    fn fetch<'a>(&'a self, lookup: &'a Lookup) -> BoxFuture<'a, Result<Fetched, BackendError>> {
        Box::pin(async move {
            let (stage, version_id) = lookup.stage_and_version_id()?;
            let mut body = json!({ "SecretId": lookup.resource });
            if let Some(s) = stage {
                body["VersionStage"] = json!(s);
            }
            if let Some(v) = version_id {
                body["VersionId"] = json!(v);
            }
            let body = serde_json::to_vec(&body).unwrap_or_default();
            let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
            let host = self.host();
            let token = self
                .session_token
                .as_ref()
                .map(|t| t.expose_secret().to_string());
            let mut headers = vec![
                ("host", host.as_str()),
                ("x-amz-date", amz_date.as_str()),
                ("x-amz-target", "secretsmanager.GetSecretValue"),
                ("content-type", "application/x-amz-json-1.1"),
            ];
            if let Some(t) = &token {
                headers.push(("x-amz-security-token", t.as_str()));
            }
            let authorization = sigv4::authorization(
                "POST",
                self.endpoint.path(),
                self.endpoint.query().unwrap_or(""),
                &headers,
                &body,
                &sigv4::Credentials {
                    access_key_id: &self.access_key_id,
                    secret_access_key: self.secret_access_key.expose_secret(),
                    region: &self.region,
                    service: "secretsmanager",
                },
            );
            let mut req = self.http.post(self.endpoint.clone()).body(body);
            for (name, value) in headers.iter().filter(|(n, _)| *n != "host") {
                req = req.header(*name, *value);
            }
            let unavailable = |e: reqwest::Error| {
                BackendError::new(
                    BackendErrorKind::Unavailable,
                    format!("cannot reach {}: {e}", self.endpoint),
                )
            };
            let resp = req
                .header("authorization", authorization)
                .send()
                .await
                .map_err(unavailable)?;
            let status = resp.status().as_u16();
            let text = resp.text().await.map_err(unavailable)?;
            let mut doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if !(200..300).contains(&status) {
                let raw = doc["__type"].as_str().unwrap_or("HttpError");
                let aws_type = raw.rsplit('#').next().unwrap_or(raw);
                let message = doc["message"]
                    .as_str()
                    .or(doc["Message"].as_str())
                    .unwrap_or("")
                    .to_string();
                return Err(BackendError::new(
                    error_kind(status, aws_type),
                    format!("{aws_type} (HTTP {status}): {message}"),
                ));
            }
            let version_id = doc["VersionId"].as_str().map(str::to_string);
            match doc.get_mut("SecretString").map(Value::take) {
                Some(Value::String(s)) => Ok(Fetched {
                    value: SecretString::from(s),
                    version_id,
                }),
                _ if doc.get("SecretBinary").is_some() => Err(BackendError::new(
                    BackendErrorKind::Invalid,
                    format!(
                        "{} holds a binary value; references resolve to text",
                        lookup.resource
                    ),
                )),
                _ => Err(BackendError::new(
                    BackendErrorKind::Invalid,
                    "the answer has no SecretString",
                )),
            }
        })
    }
}
