//! Alibaba Cloud's KMS Secrets Manager API (version 2016-01-20), beside AWS's on the
//! same store: RPC style on `POST /` and `GET /`, the operation named by the
//! `x-acs-action` header (signature V3) or the `Action` parameter (signature V1),
//! parameters in the query string and a form body, answers in Alibaba's JSON shape.
//!
//! Labels are one set seen through each API's names: `ACSCurrent`, `ACSPrevious` and
//! `ACSPending` here are `AWSCURRENT`, `AWSPREVIOUS` and `AWSPENDING` on the AWS and
//! native APIs; other labels are the same everywhere. Like the AWS module, this one
//! only translates: the rules live in the [`SecretService`].

mod ops;
pub mod params;
mod shapes;
pub mod signature;

use crate::serve::PeerAddr;
use crate::{App, audit, metrics};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use params::Params;
use rotor_core::{Error, ErrorKind};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// The API version served.
pub const VERSION: &str = "2016-01-20";

/// Whether a request to `/` is Alibaba's rather than AWS's: Alibaba's headers, an
/// `Action` parameter, or a form body (AWS's JSON protocol sends neither).
pub fn claims(parts: &Parts) -> bool {
    let h = &parts.headers;
    if h.contains_key("x-acs-action") || h.contains_key("x-acs-version") {
        return true;
    }
    if h.contains_key("x-amz-target") {
        return false;
    }
    let query = parts.uri.query().unwrap_or("");
    query.split('&').any(|p| p.starts_with("Action="))
        || h.get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
}

/// An error in Alibaba's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcsError {
    /// The error code, such as `Forbidden.ResourceNotFound`.
    pub code: &'static str,
    /// The message.
    pub message: String,
    /// HTTP status.
    pub status: StatusCode,
}

impl AcsError {
    fn new(code: &'static str, status: u16, message: impl Into<String>) -> AcsError {
        AcsError {
            code,
            message: message.into(),
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        }
    }

    /// A parameter that is missing.
    pub fn missing(name: &str) -> AcsError {
        AcsError::new(
            "MissingParameter",
            400,
            format!(
                "The input parameter \"{name}\" that is mandatory for processing this request is not supplied."
            ),
        )
    }

    /// A parameter that is malformed.
    pub fn invalid(message: impl Into<String>) -> AcsError {
        AcsError::new("InvalidParameter", 400, message)
    }

    fn body(&self, request_id: &str) -> Vec<u8> {
        let body = ErrorBody {
            request_id,
            host_id: "rotor",
            code: self.code,
            message: &self.message,
            recommend: "See the Alibaba Cloud API section of Rotor's README",
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// An error as Alibaba sends it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody<'a> {
    request_id: &'a str,
    host_id: &'a str,
    code: &'a str,
    message: &'a str,
    recommend: &'a str,
}

impl From<Error> for AcsError {
    fn from(e: Error) -> Self {
        let (code, status) = match e.kind {
            ErrorKind::ResourceNotFound => ("Forbidden.ResourceNotFound", 404),
            ErrorKind::ResourceExists => ("Rejected.ResourceExist", 409),
            ErrorKind::InvalidParameter | ErrorKind::Validation => ("InvalidParameter", 400),
            ErrorKind::InvalidRequest if in_delete_window(&e) => {
                ("Rejected.ResourceInDeleteWindow", 409)
            }
            ErrorKind::InvalidRequest => ("InvalidParameter", 400),
            ErrorKind::InvalidNextToken => ("InvalidParameter", 400),
            ErrorKind::LimitExceeded => ("Rejected.LimitExceeded", 400),
            ErrorKind::AccessDenied => ("Forbidden.NoPermission", 403),
            ErrorKind::Unauthenticated => ("InvalidAccessKeyId.NotFound", 404),
            _ => ("InternalFailure", 500),
        };
        AcsError::new(code, status, e.message)
    }
}

/// Whether `e` refuses a secret scheduled for deletion (a change to it, or a new one of
/// its name): AWS answers both with `InvalidRequestException`, Alibaba with its own code.
fn in_delete_window(e: &Error) -> bool {
    e.message.contains("marked for deletion") || e.message.contains("scheduled for deletion")
}

/// The operations served, by their Alibaba names.
pub(crate) const OPERATIONS: &[&str] = &[
    "CreateSecret",
    "GetSecretValue",
    "PutSecretValue",
    "UpdateSecretVersionStage",
    "ListSecretVersionIds",
    "DescribeSecret",
    "ListSecrets",
    "UpdateSecret",
    "DeleteSecret",
    "RestoreSecret",
    "GetRandomPassword",
    "RotateSecret",
    "UpdateSecretRotationPolicy",
    "TagResource",
    "UntagResource",
    "ListTagResources",
];

/// Handles an Alibaba request on `/`.
pub async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let peer = parts.extensions.get::<PeerAddr>().copied();
    let request_id = crate::aws_api::request_id().to_uppercase();
    let mut op = "unknown";
    let mut principal = None;
    let mut subject = audit::Subject::default();
    let result = async {
        let body = axum::body::to_bytes(body, crate::aws_api::MAX_BODY)
            .await
            .map_err(|_| AcsError::new("InvalidParameter", 413, "The request body is too large"))?;
        let form = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        let params = Params::from_query_and_form(
            parts.uri.query().unwrap_or(""),
            form.then_some(body.as_ref()),
        );
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        // V3 names the action and version in signed headers, V1 in signed parameters
        // (its SDK sends the headers too, unsigned: they must not decide anything).
        let v3 = header("authorization").is_some_and(|a| a.starts_with(signature::V3_ALGORITHM));
        let named = |header_name: &str, param: &str| -> Result<Option<String>, AcsError> {
            let (signed, other) = if v3 {
                (header(header_name), params.get(param))
            } else {
                (params.get(param), header(header_name))
            };
            match (signed, other) {
                (Some(a), Some(b)) if a != b => Err(AcsError::invalid(format!(
                    "The {header_name} header and the {param} parameter disagree"
                ))),
                (Some(a), _) => Ok(Some(a.to_string())),
                (None, _) => Ok(None),
            }
        };
        let action = named("x-acs-action", "Action")?.ok_or_else(|| AcsError::missing("Action"))?;
        let version = named("x-acs-version", "Version")?;
        op = OPERATIONS
            .iter()
            .find(|o| **o == action)
            .copied()
            .unwrap_or("unknown");
        if app.audit.is_some() {
            subject = ops::subject(&params);
        }
        let mut caller = None;
        signature::verify(
            &signature::SignedParts {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query().unwrap_or(""),
                headers: &parts.headers,
                body: &body,
                params: &params,
            },
            chrono::Utc::now(),
            &app.acs_nonces,
            |akid| {
                let token = header("x-acs-security-token").or_else(|| params.get("SecurityToken"));
                let (secret, who) = app.access.access_key(akid, token)?;
                caller = Some(who);
                Some(secret)
            },
        )
        .map_err(|e| AcsError::new(e.code(), e.status(), e.message()))?;
        let mut caller =
            caller.ok_or_else(|| Error::internal("verified request without a caller"))?;
        principal = Some(caller.name().to_string());
        if let Some(PeerAddr(addr)) = peer {
            caller = caller.from_address(addr.ip());
        }
        match version.as_deref() {
            Some(VERSION) => {}
            Some(other) => {
                return Err(AcsError::new(
                    "InvalidVersion",
                    400,
                    format!(
                        "Specified parameter Version {other:?} is not valid; this API is {VERSION}"
                    ),
                ));
            }
            None => return Err(AcsError::missing("Version")),
        }
        if op == "unknown" {
            return Err(AcsError::new(
                "InvalidAction.NotFound",
                404,
                format!("Specified api {action:?} is not found, please check your url and method."),
            ));
        }
        let region = params
            .get("RegionId")
            .filter(|r| rotor_core::name::validate_region(r).is_ok())
            .unwrap_or(&app.default_region)
            .to_string();
        ops::dispatch(&app, &caller, op, &params, &region, &request_id).await
    }
    .await;
    let response = match result {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => {
            let mut resp = json_response(e.status, e.body(&request_id));
            resp.extensions_mut()
                .insert(crate::error::ErrorType(e.code));
            resp
        }
    };
    let response = audit::record(
        &app,
        "alibaba",
        op,
        request_id.clone(),
        principal,
        peer.as_ref(),
        subject,
        response,
        || {
            let e = AcsError::new(
                "InternalFailure",
                500,
                "The request could not be audited, so it was refused",
            );
            json_response(e.status, e.body(&request_id))
        },
    )
    .await;
    metrics::observe("alibaba", op, response.status().as_u16(), start);
    response
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, Body::from(body)).into_response();
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    resp
}
