//! Who is asking, and what their policies let them do.

use rotor_core::policy::{self, Capability, Decision, Policy};
use rotor_core::{Error, ErrorKind, Result};
use std::sync::Arc;

/// An authenticated principal with its policies, as every operation receives it.
#[derive(Clone)]
pub struct Caller {
    name: Arc<str>,
    policies: Arc<[Policy]>,
    unrestricted: bool,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Caller {
    /// A principal bound by `policies`.
    pub fn new(name: &str, policies: Arc<[Policy]>) -> Self {
        Caller {
            name: name.into(),
            policies,
            unrestricted: false,
        }
    }

    /// The server itself (background sweeps, tests of the service alone): not bound
    /// by policies.
    pub fn system(name: &str) -> Self {
        Caller {
            name: name.into(),
            policies: Arc::from(Vec::new()),
            unrestricted: true,
        }
    }

    /// The principal's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `capability` on `path` is allowed.
    pub fn may(&self, capability: Capability, path: &str) -> bool {
        self.unrestricted || policy::evaluate(&self.policies, capability, path).is_allowed()
    }

    /// `Ok` when `capability` on `path` is allowed, otherwise an `AccessDenied` error
    /// saying which capability on which path was missing, and why.
    pub fn authorize(&self, capability: Capability, path: &str) -> Result<()> {
        if self.unrestricted {
            return Ok(());
        }
        let why = match policy::evaluate(&self.policies, capability, path) {
            Decision::Allowed => return Ok(()),
            Decision::DeniedBy(p) => format!("policy {p} denies it"),
            Decision::NotGranted => "no policy grants it".to_string(),
        };
        Err(Error::new(
            ErrorKind::AccessDenied,
            format!("{} is not allowed to {capability} {path}: {why}", self.name),
        ))
    }
}
