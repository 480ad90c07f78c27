//! The errors both APIs send, in each API's shape.
//!
//! On the AWS API every error is `{"__type": ..., "Message": ...}` with the
//! `X-Amzn-ErrorType` header: HTTP 401 when the caller could not be authenticated
//! (missing, unknown or bad signature), 400 for the client's other errors and 500
//! for ours, as botocore and the AWS SDKs parse them. On the native API it is
//! `{"error": {"type": ..., "message": ...}}` with a status that says what happened.
//! Internal causes are logged where they happen and never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rotor_core::{Error, ErrorKind};

/// The error type of a failed response, left in its extensions for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorType(pub &'static str);

/// An error on the AWS API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// The exception name (`__type`).
    pub code: &'static str,
    /// The message.
    pub message: String,
    /// HTTP status.
    pub status: StatusCode,
}

impl AwsError {
    /// A client error (400).
    pub fn client(code: &'static str, message: impl Into<String>) -> Self {
        AwsError {
            code,
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    /// A body that is not JSON of the expected shape.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::client("SerializationException", message)
    }
}

impl From<Error> for AwsError {
    fn from(e: Error) -> Self {
        let status = match e.kind {
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        };
        AwsError {
            code: e.kind.aws_type(),
            message: e.message,
            status,
        }
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": self.code, "Message": self.message });
        let mut resp = (self.status, Json(body)).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        resp.extensions_mut().insert(ErrorType(self.code));
        resp
    }
}

/// An error on the native API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeError {
    /// Machine-readable type (AWS's exception names, for one vocabulary).
    pub kind: &'static str,
    /// The message.
    pub message: String,
    /// HTTP status.
    pub status: StatusCode,
}

impl NativeError {
    /// 401: no or bad credentials.
    pub fn unauthenticated() -> Self {
        NativeError {
            kind: "UnauthenticatedException",
            message: "A valid bearer token is required (Authorization: Bearer TOKEN)".into(),
            status: StatusCode::UNAUTHORIZED,
        }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        NativeError {
            kind: "BadRequestException",
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }
}

impl From<Error> for NativeError {
    fn from(e: Error) -> Self {
        let status = match e.kind {
            ErrorKind::ResourceNotFound => StatusCode::NOT_FOUND,
            ErrorKind::ResourceExists => StatusCode::CONFLICT,
            ErrorKind::AccessDenied => StatusCode::FORBIDDEN,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::InvalidRequest => StatusCode::CONFLICT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        NativeError {
            kind: e.kind.aws_type(),
            message: e.message,
            status,
        }
    }
}

impl IntoResponse for NativeError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "type": self.kind, "message": self.message } });
        let mut resp = (self.status, Json(body)).into_response();
        resp.extensions_mut().insert(ErrorType(self.kind));
        resp
    }
}
