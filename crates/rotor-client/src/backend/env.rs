//! Environment variables, named as Kong's `env` vault names them.

use super::{Backend, BackendError, BackendErrorKind, BoxFuture, Fetched, Lookup};
use secrecy::SecretString;

/// Reads `PREFIX` + RESOURCE with `-` as `_`, upper-cased; version `2` reads the
/// variable with `_PREVIOUS` appended. `{vault://env/db-password?prefix=app_}` reads
/// `APP_DB_PASSWORD`.
#[derive(Debug, Default, Clone)]
pub struct EnvBackend;

impl EnvBackend {
    /// The variable `lookup` reads.
    pub fn variable(lookup: &Lookup) -> Result<String, BackendError> {
        let prefix = lookup
            .options
            .get("prefix")
            .map(String::as_str)
            .unwrap_or("");
        let mut name = format!("{prefix}{}", lookup.resource)
            .replace('-', "_")
            .to_ascii_uppercase();
        match lookup.version.map(|v| v.as_integer()) {
            None | Some(Some(1)) => {}
            Some(Some(2)) => name.push_str("_PREVIOUS"),
            Some(_) => {
                return Err(BackendError::new(
                    BackendErrorKind::Invalid,
                    "the env vault knows versions #1 and #2 (NAME_PREVIOUS) only",
                ));
            }
        }
        Ok(name)
    }
}

impl Backend for EnvBackend {
    fn fetch<'a>(&'a self, lookup: &'a Lookup) -> BoxFuture<'a, Result<Fetched, BackendError>> {
        Box::pin(async move {
            let name = Self::variable(lookup)?;
            match std::env::var(&name) {
                Ok(v) => Ok(Fetched {
                    value: SecretString::from(v),
                    version_id: None,
                }),
                Err(std::env::VarError::NotPresent) => Err(BackendError::new(
                    BackendErrorKind::NotFound,
                    format!("environment variable {name} is not set"),
                )),
                Err(std::env::VarError::NotUnicode(_)) => Err(BackendError::new(
                    BackendErrorKind::Invalid,
                    format!("environment variable {name} is not UTF-8"),
                )),
            }
        })
    }
}
