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
    /// Where the request came from, when it came over the network.
    source: Option<std::net::IpAddr>,
    /// Whether its reads make it an implicit consumer (see [`crate::consumers`]).
    tracked: bool,
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
            source: None,
            tracked: true,
        }
    }

    /// The server itself (background sweeps, tests of the service alone): not bound
    /// by policies.
    pub fn system(name: &str) -> Self {
        Caller {
            name: name.into(),
            policies: Arc::from(Vec::new()),
            unrestricted: true,
            source: None,
            tracked: false,
        }
    }

    /// The same caller, asking from `address`.
    pub fn from_address(mut self, address: std::net::IpAddr) -> Self {
        self.source = Some(address);
        self
    }

    /// The same caller, whose reads do not make it an implicit consumer: a registered
    /// consumer (its registration says what it uses), a rotator's scoped credentials.
    pub fn untracked(mut self) -> Self {
        self.tracked = false;
        self
    }

    /// The address a tracked reader reads from, if its reads are tracked.
    pub(crate) fn reader_address(&self) -> Option<std::net::IpAddr> {
        self.source.filter(|_| self.tracked)
    }

    pub(crate) fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }

    /// The principal's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `other` is bound by the very same policies (not merely equal ones).
    pub fn same_policies(&self, other: &Caller) -> bool {
        self.unrestricted == other.unrestricted && Arc::ptr_eq(&self.policies, &other.policies)
    }

    /// Whether `capability` on `path` is allowed.
    pub fn may(&self, capability: Capability, path: &str) -> bool {
        self.unrestricted || policy::evaluate(&self.policies, capability, path).is_allowed()
    }

    /// Whether `capability` is allowed on every secret name `glob` matches.
    pub fn covers(&self, capability: Capability, glob: &str) -> bool {
        self.unrestricted || policy::covers(&self.policies, capability, glob)
    }

    /// `Ok` when the caller holds everything `grant` allows, so it may hand `grant`
    /// on (attach it, or write it); otherwise `AccessDenied` naming the first
    /// capability and paths it lacks. Deny statements restrict and need nothing.
    pub fn authorize_grant(&self, grant: &Policy) -> Result<()> {
        for statement in &grant.statements {
            if statement.effect == policy::Effect::Deny {
                continue;
            }
            for capability in &statement.capabilities {
                for glob in &statement.paths {
                    if !self.covers(*capability, glob) {
                        return Err(Error::new(
                            ErrorKind::AccessDenied,
                            format!(
                                "{} may not grant {capability} on {glob} (policy {}): it does not hold it on every path that matches",
                                self.name, grant.name
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
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
