//! Building each request's audit record and appending it before the response goes
//! out. If the entry cannot be written, the client gets an error instead of the
//! response (fail-closed).

use crate::App;
use crate::error::ErrorType;
use crate::serve::PeerAddr;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rotor_engine::audit::AuditRecord;
use serde::Deserialize;
use serde_json::Value;

/// What a handler knows that the request line does not show (a name given in the
/// body, sensitive fields), left in the response's extensions for the audit entry.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditNote {
    pub(crate) secret: Option<String>,
    pub(crate) sensitive: Vec<(&'static str, String)>,
}

/// The request fields an audit entry records, from either API.
#[derive(Debug, Default)]
pub(crate) struct Subject {
    pub(crate) secret: Option<String>,
    pub(crate) version_id: Option<String>,
    pub(crate) labels: Vec<String>,
    /// `(field, value)` to record only as an HMAC.
    pub(crate) sensitive: Vec<(&'static str, String)>,
}

/// The fields of an AWS API request body that an audit entry records. Values
/// (`SecretString`, `SecretBinary`) are not read.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct AwsFields {
    secret_id: Option<String>,
    name: Option<String>,
    version_id: Option<String>,
    client_request_token: Option<String>,
    move_to_version_id: Option<String>,
    version_stage: Option<String>,
    version_stages: Option<Vec<String>>,
    description: Option<String>,
    tags: Option<Vec<Value>>,
}

pub(crate) fn aws_subject(body: &[u8]) -> Subject {
    let f: AwsFields = serde_json::from_slice(body).unwrap_or_default();
    let mut sensitive = Vec::new();
    if let Some(d) = f.description {
        sensitive.push(("description", d));
    }
    for t in f.tags.unwrap_or_default() {
        if let (Some(k), Some(v)) = (t["Key"].as_str(), t["Value"].as_str()) {
            sensitive.push(("tag", format!("{k}={v}")));
        }
    }
    Subject {
        secret: f.secret_id.or(f.name),
        version_id: f
            .version_id
            .or(f.client_request_token)
            .or(f.move_to_version_id),
        labels: f
            .version_stages
            .unwrap_or_default()
            .into_iter()
            .chain(f.version_stage)
            .collect(),
        sensitive,
    }
}

/// What a native request names: the secret from the path, version and stage from the
/// query.
pub(crate) fn native_subject(path: &str, query: Option<&str>) -> Subject {
    let mut subject = Subject::default();
    let rest = path.strip_prefix("/v1/").unwrap_or("");
    if let Some((resource, name)) = rest.split_once('/')
        && resource != "sys"
        && !name.is_empty()
    {
        subject.secret = Some(
            percent_encoding::percent_decode_str(name)
                .decode_utf8_lossy()
                .into_owned(),
        );
    }
    for pair in query.unwrap_or("").split('&') {
        match pair.split_once('=') {
            Some(("version_id", v)) => subject.version_id = Some(v.to_string()),
            Some(("stage", v)) => subject.labels.push(v.to_string()),
            _ => {}
        }
    }
    subject
}

fn decision(status: u16, error: Option<&str>) -> &'static str {
    match (status, error) {
        (401, _)
        | (
            _,
            Some(
                "MissingAuthenticationTokenException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "IncompleteSignatureException"
                | "UnauthenticatedException"
                // Alibaba's API.
                | "MissingSignature"
                | "IncompleteSignature"
                | "InvalidAccessKeyId.NotFound"
                | "SignatureDoesNotMatch"
                | "ContentSHA256Mismatch"
                | "InvalidTimeStamp.Expired"
                | "SignatureNonceUsed",
            ),
        ) => "unauthenticated",
        (403, _) | (_, Some("AccessDeniedException" | "Forbidden.NoPermission")) => "deny",
        _ => "allow",
    }
}

/// Appends the record of `response` and returns it, or returns the error that replaces
/// it when the audit log cannot be written.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record(
    app: &App,
    api: &'static str,
    operation: &'static str,
    request_id: String,
    principal: Option<String>,
    peer: Option<&PeerAddr>,
    subject: Subject,
    mut response: Response,
    on_failure: impl FnOnce() -> Response,
) -> Response {
    let Some(log) = &app.audit else {
        return response;
    };
    let mut subject = subject;
    if let Some(note) = response.extensions_mut().remove::<AuditNote>() {
        subject.secret = subject.secret.or(note.secret);
        subject.sensitive.extend(note.sensitive);
    }
    let status = response.status().as_u16();
    let error = response.extensions().get::<ErrorType>().map(|e| e.0);
    let entry = AuditRecord {
        time: Utc::now(),
        request_id,
        source: peer.map(|p| p.0.to_string()),
        principal,
        api,
        operation,
        secret: subject.secret,
        version_id: subject.version_id,
        labels: subject.labels,
        decision: decision(status, error),
        status,
        error: error.map(str::to_string),
        hashed: subject
            .sensitive
            .iter()
            .map(|(f, v)| (f.to_string(), log.hash(f, v)))
            .collect(),
    };
    match log.append(entry).await {
        Ok(()) => response,
        Err(e) => {
            tracing::error!(error = %e, "request refused: audit entry not written");
            on_failure()
        }
    }
}

/// The native API's answer when the audit log cannot be written.
pub(crate) fn native_failure() -> Response {
    let mut resp = crate::error::NativeError {
        kind: "InternalServiceError",
        message: "The request could not be audited, so it was refused".into(),
        status: StatusCode::INTERNAL_SERVER_ERROR,
    }
    .into_response();
    resp.headers_mut()
        .insert("x-audit", HeaderValue::from_static("failed"));
    resp
}
