//! A Rotor server, through its native API ([`Client::get_value`]).

use super::{Backend, BackendError, BackendErrorKind, BoxFuture, Fetched, Lookup};
use crate::{Client, ClientError};
use std::sync::Arc;

/// Reads RESOURCE as a secret name; `#2` or `?stage=AWSPREVIOUS` reads the previous
/// version, `?version_id=` a given one.
#[derive(Debug, Clone)]
pub struct RotorBackend {
    client: Arc<Client>,
}

impl RotorBackend {
    /// Reads through `client`.
    pub fn new(client: Arc<Client>) -> Self {
        RotorBackend { client }
    }
}

pub(super) fn client_error(e: ClientError) -> BackendError {
    match e {
        ClientError::Api {
            status,
            kind,
            message,
        } => {
            let k = match status {
                404 => BackendErrorKind::NotFound,
                401 | 403 => BackendErrorKind::Denied,
                s if s >= 500 => BackendErrorKind::Unavailable,
                _ => BackendErrorKind::Invalid,
            };
            BackendError::new(k, format!("{kind}: {message}"))
        }
        ClientError::Transport { .. } => {
            BackendError::new(BackendErrorKind::Unavailable, e.to_string())
        }
        other => BackendError::new(BackendErrorKind::Invalid, other.to_string()),
    }
}

impl Backend for RotorBackend {
    fn fetch<'a>(&'a self, lookup: &'a Lookup) -> BoxFuture<'a, Result<Fetched, BackendError>> {
        Box::pin(async move {
            let (stage, version_id) = lookup.stage_and_version_id()?;
            let doc = self
                .client
                .get_value(&lookup.resource, version_id.as_deref(), stage.as_deref())
                .await
                .map_err(client_error)?;
            match doc.value {
                Some(value) => Ok(Fetched {
                    value: value.into_secret(),
                    version_id: Some(doc.version_id),
                }),
                None if doc.value_base64.is_some() => Err(BackendError::new(
                    BackendErrorKind::Invalid,
                    format!(
                        "{} holds a binary value; references resolve to text",
                        lookup.resource
                    ),
                )),
                None => Err(BackendError::new(
                    BackendErrorKind::Invalid,
                    "the server's answer has no value",
                )),
            }
        })
    }
}
