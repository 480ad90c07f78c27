//! Files: a secret per file under one root directory, as mounted by Kubernetes or
//! Docker secrets.

use super::{Backend, BackendError, BackendErrorKind, BoxFuture, Fetched, Lookup};
use secrecy::SecretString;
use std::path::{Component, Path, PathBuf};

/// Reads RESOURCE as a path under `root` (a leading `/` is ignored; `..` is refused).
/// The whole content is the value; a reference's KEY takes a field of it as JSON.
#[derive(Debug, Clone)]
pub struct FileBackend {
    root: PathBuf,
}

impl FileBackend {
    /// Files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileBackend { root: root.into() }
    }

    fn path(&self, resource: &str) -> Result<PathBuf, BackendError> {
        let relative = Path::new(resource.trim_start_matches('/'));
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(BackendError::new(
                BackendErrorKind::Invalid,
                format!("{resource:?} must stay under the vault's directory"),
            ));
        }
        Ok(self.root.join(relative))
    }
}

impl Backend for FileBackend {
    fn fetch<'a>(&'a self, lookup: &'a Lookup) -> BoxFuture<'a, Result<Fetched, BackendError>> {
        Box::pin(async move {
            if lookup.version.is_some_and(|v| v.as_integer() != Some(1)) {
                return Err(BackendError::new(
                    BackendErrorKind::Invalid,
                    "the file vault has no versions",
                ));
            }
            let path = self.path(&lookup.resource)?;
            let bytes = tokio::fs::read(&path).await.map_err(|e| {
                let kind = match e.kind() {
                    std::io::ErrorKind::NotFound => BackendErrorKind::NotFound,
                    std::io::ErrorKind::PermissionDenied => BackendErrorKind::Denied,
                    _ => BackendErrorKind::Unavailable,
                };
                BackendError::new(kind, format!("cannot read {}: {e}", path.display()))
            })?;
            let text = String::from_utf8(bytes).map_err(|_| {
                BackendError::new(
                    BackendErrorKind::Invalid,
                    format!("{} is not UTF-8", path.display()),
                )
            })?;
            Ok(Fetched {
                value: SecretString::from(text),
                version_id: None,
            })
        })
    }
}
