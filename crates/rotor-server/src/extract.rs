//! The native API's extractors: a JSON body that must be an object of the
//! endpoint's type, and query parameters; each failure a typed `400` in the native
//! error shape. (serde would otherwise take a JSON array for a struct.)

use crate::error::NativeError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// A JSON object body of type `T`.
pub(crate) struct Body<T>(pub T);

/// A JSON object body of type `T`, or `T::default()` when the request has none.
pub(crate) struct OptionalBody<T>(pub T);

/// Query parameters of type `T`.
pub(crate) struct Params<T>(pub T);

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

async fn bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, NativeError> {
    if !is_json(req.headers()) {
        return Err(NativeError::bad_request(
            "Send the body as JSON, with Content-Type: application/json",
        ));
    }
    Bytes::from_request(req, state)
        .await
        .map_err(|e| NativeError::bad_request(e.body_text()))
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, NativeError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(NativeError::bad_request("The body must be a JSON object"));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| NativeError::bad_request(format!("Invalid body: {e}")))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = NativeError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        parse(&bytes(req, state).await?).map(Body)
    }
}

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalBody<T> {
    type Rejection = NativeError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !req.headers().contains_key(axum::http::header::CONTENT_TYPE) {
            let body = Bytes::from_request(req, state)
                .await
                .map_err(|e| NativeError::bad_request(e.body_text()))?;
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalBody(T::default()));
            }
            return Err(NativeError::bad_request(
                "Send the body as JSON, with Content-Type: application/json",
            ));
        }
        parse(&bytes(req, state).await?).map(OptionalBody)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = NativeError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Params(q))
            .map_err(|e| NativeError::bad_request(e.body_text()))
    }
}
