//! Where a vault's values come from: the [`Backend`] trait and the four kinds Rotor
//! ships, each a module of its own.
//!
//! | kind | RESOURCE is | `#VERSION` | options |
//! |---|---|---|---|
//! | [`rotor`] | a secret name on a Rotor server (native API) | `1` current, `2` previous | `stage`, `version_id` |
//! | [`aws`] | a `SecretId` on any Secrets Manager endpoint, Rotor's included | `1` current, `2` previous | `stage`, `version_id` |
//! | [`env`] | an environment variable, Kong's way: `-` to `_`, upper-cased, after `prefix` | `2` appends `_PREVIOUS` | `prefix` |
//! | [`file`] | a file under the vault's root directory | none | none |
//!
//! A reference's KEY (a JSON field) is taken by the resolver, the same for every kind.

pub mod aws;
pub mod env;
pub mod file;
pub mod rotor;

use crate::reference::Version;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future, as [`Backend::fetch`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One thing to fetch: a reference's resource and version, with the vault's options
/// overridden by the reference's own (the cache options excepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// What to look up.
    pub resource: String,
    /// `#VERSION`, if given.
    pub version: Option<Version>,
    /// Options, by name.
    pub options: BTreeMap<String, String>,
}

impl Lookup {
    /// A lookup of `resource` with no version or options.
    pub fn new(resource: &str) -> Self {
        Lookup {
            resource: resource.to_string(),
            version: None,
            options: BTreeMap::new(),
        }
    }

    /// The version as AWS staging label: none or `1` is `AWSCURRENT`, `2` is
    /// `AWSPREVIOUS` (Kong's convention); options `stage` and `version_id` win.
    pub(crate) fn stage_and_version_id(
        &self,
    ) -> Result<(Option<String>, Option<String>), BackendError> {
        let version_id = self.options.get("version_id").cloned();
        if let Some(stage) = self.options.get("stage") {
            return Ok((Some(stage.clone()), version_id));
        }
        if version_id.is_some() {
            return Ok((None, version_id));
        }
        match self.version.map(|v| (v, v.as_integer())) {
            None | Some((_, Some(1))) => Ok((Some("AWSCURRENT".into()), None)),
            Some((_, Some(2))) => Ok((Some("AWSPREVIOUS".into()), None)),
            Some((v, _)) => Err(BackendError::new(
                BackendErrorKind::Invalid,
                format!(
                    "version #{v} is not supported: use #1 (AWSCURRENT), #2 (AWSPREVIOUS), or ?stage= or ?version_id="
                ),
            )),
        }
    }
}

/// A fetched value.
pub struct Fetched {
    /// The value.
    pub value: SecretString,
    /// The version it is, when the vault says (Rotor and AWS do).
    pub version_id: Option<String>,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("value", &"[redacted]")
            .field("version_id", &self.version_id)
            .finish()
    }
}

/// Why a fetch failed. The message never holds a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    /// What kind of failure.
    pub kind: BackendErrorKind,
    /// What happened.
    pub message: String,
}

impl BackendError {
    /// An error of `kind`.
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> Self {
        BackendError {
            kind,
            message: message.into(),
        }
    }
}

/// The kinds of [`BackendError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// There is no such resource or version.
    NotFound,
    /// The vault refused our credentials.
    Denied,
    /// The vault could not be reached or failed.
    Unavailable,
    /// The lookup or the answer makes no sense (bad version, binary value, ...).
    Invalid,
}

/// A source of secret values.
///
/// Implementations must be cheap to call concurrently; the resolver makes sure one
/// resource is not fetched twice at once.
pub trait Backend: Send + Sync + 'static {
    /// Fetches one value.
    fn fetch<'a>(&'a self, lookup: &'a Lookup) -> BoxFuture<'a, Result<Fetched, BackendError>>;
}
