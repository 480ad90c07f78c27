//! Rotation: `RotateSecret` and `CancelRotateSecret` with AWS's semantics, the
//! registered rotators, the durable runner of the four steps, and the scheduler.
//!
//! A rotation is a record in the store (secret, token, step, attempt, status).
//! The runner records each finished step before it starts the next, so a server
//! killed at any point resumes the rotation at its unfinished step. A failed step
//! retries the whole rotation (every step is idempotent per token) after an
//! exponential backoff, up to [`Settings::max_attempts`]; then the rotation is
//! marked failed and `AWSCURRENT` stays on the last good version.
//!
//! The scheduler reads due secrets from an index on their due time, sleeps until
//! the next one, and runs at most [`Settings::concurrency`] rotations at once.
//!
//! Where things are: `operations` (what callers ask for), `scheduler` (the lease and
//! the loop), `runner` (the four steps of one rotation), `registry` (named rotators),
//! `rotators` (what each kind of rotator does) and `database` (the built-in
//! PostgreSQL and MySQL rotators).
//!
//! # Who a rotation acts for
//!
//! The server is nobody's deputy. A rotation runs as the principal that last
//! configured or started it ([`RotationMeta::principal`]), and every step is
//! authorized with that principal's policies as they are when the step runs: it
//! needs `rotate` on the secret and on the rotator (`sys/rotators/NAME`), and a
//! master secret named by the value's `masterarn` is read only if the principal may
//! `read` it. A rotator that runs commands (`exec`, `lambda`) runs only while the
//! principal that registered it still holds `exec` on it. A principal that is gone,
//! or lost a right, makes the step fail; nothing is done in its name.

mod database;
mod gates;
pub mod health;
mod operations;
mod registry;
mod rotators;
mod runner;
mod scheduler;

use crate::access::AccessService;
use crate::caller::Caller;
use crate::service::SecretService;
use chrono::{DateTime, Utc};
use rotor_core::label::{AWSCURRENT, AWSPENDING};
use rotor_core::model::{RotationMeta, RotationRecord, RotationStatus, Step};
use rotor_core::name;
use rotor_core::policy::Capability;
use rotor_core::schedule::{RotationRules, Schedule};
use rotor_core::{Error, ErrorKind, Result};
use rotor_store::{Mutation, Outcome, RotatorRow, SealedValue, SecretRecord, Store};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{Notify, Semaphore};

pub use operations::Retirement;
pub use rotators::{KINDS, RotatorInfo};

/// How rotations run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Attempts of a whole rotation before it is marked failed.
    pub max_attempts: i64,
    /// Wait before the second attempt; doubled for each later one.
    pub backoff: std::time::Duration,
    /// Longest wait between attempts.
    pub max_backoff: std::time::Duration,
    /// Longest a step may take.
    pub step_timeout: std::time::Duration,
    /// Rotations running at once.
    pub concurrency: usize,
    /// Longest the scheduler sleeps before looking at the store again (other nodes
    /// may have changed schedules).
    pub poll: std::time::Duration,
    /// How long the scheduler lease lasts without renewal: when its holder dies,
    /// another node takes over within this time.
    pub lease: std::time::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_attempts: 5,
            backoff: std::time::Duration::from_secs(30),
            max_backoff: std::time::Duration::from_secs(3600),
            step_timeout: std::time::Duration::from_secs(120),
            concurrency: 16,
            poll: std::time::Duration::from_secs(5),
            lease: std::time::Duration::from_secs(15),
        }
    }
}

/// `RotateSecret`.
#[derive(Debug, Clone, Default)]
pub struct RotateRequest {
    /// Which secret.
    pub secret_id: String,
    /// The new version's id; generated when absent.
    pub token: Option<String>,
    /// `RotationLambdaARN`: a Lambda ARN whose function name is a rotator, or a
    /// rotator's name. The secret's rotator when absent.
    pub rotator: Option<String>,
    /// The schedule. The secret's schedule when absent.
    pub rules: Option<RotationRules>,
    /// Rotate now (the default) or only at the next window.
    pub rotate_immediately: Option<bool>,
    /// A change to what rotations do about the secret's consumers.
    pub adoption: Option<rotor_core::model::AdoptionChange>,
}

/// `RotateSecret`'s and `CancelRotateSecret`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// The new version's id, when a rotation started (or was cancelled).
    pub version_id: Option<String>,
}

/// A secret's rotation configuration, schedule and latest rotation.
#[derive(Debug, Clone)]
pub struct RotationView {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// Configuration and schedule.
    pub meta: RotationMeta,
    /// The latest rotation.
    pub latest: Option<RotationRecord>,
}

/// Rotations of all secrets: the API operations, the runner and the scheduler.
pub struct Rotations {
    service: Arc<SecretService>,
    access: Arc<AccessService>,
    settings: Settings,
    /// The server's own address, handed to rotators so they can call back.
    endpoint: RwLock<Option<String>>,
    /// Rotations this process is driving, so none runs twice at once.
    active: Mutex<HashSet<(i64, String)>>,
    slots: Arc<Semaphore>,
    wake: Notify,
    runs: std::sync::atomic::AtomicU64,
    /// This node's name in the scheduler lease.
    node: String,
    /// The lease's fencing epoch while this node holds it.
    epoch: Mutex<Option<i64>>,
}

impl std::fmt::Debug for Rotations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotations")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Where a rotator name comes from in `RotationLambdaARN`:
/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`, or a plain name.
pub fn rotator_name(lambda_arn: &str) -> Result<&str> {
    if !lambda_arn.starts_with("arn:") {
        rotators::validate_name(lambda_arn)?;
        return Ok(lambda_arn);
    }
    let parts: Vec<&str> = lambda_arn.splitn(8, ':').collect();
    match parts.as_slice() {
        ["arn", _, "lambda", _, _, "function", name, ..] if !name.is_empty() => {
            rotators::validate_name(name)?;
            Ok(name)
        }
        _ => Err(Error::invalid_parameter(format!(
            "RotationLambdaARN must look like arn:aws:lambda:REGION:ACCOUNT:function:NAME, got {lambda_arn}"
        ))),
    }
}

fn system() -> Caller {
    Caller::system("rotor-rotation")
}

/// The path whose `rotate` capability lets a principal use a rotator, and whose
/// `admin` capability lets it manage it.
pub(crate) fn rotator_path(name: &str) -> String {
    format!("sys/rotators/{name}")
}

/// Rotator kinds that run a command on the server's machine.
fn runs_commands(kind: &str) -> bool {
    matches!(kind, "exec" | "lambda")
}

/// The refusal when a master secret cannot be used for `principal`. One message
/// whether the master is missing, unreadable or unusable, so it tells nobody what
/// lies in another namespace.
pub(crate) fn master_refused(principal: &str) -> Error {
    Error::new(
        ErrorKind::AccessDenied,
        format!(
            "the master secret named by masterarn cannot be used for {principal}: it must exist and {principal} must be allowed to read it"
        ),
    )
}

/// The version holding `AWSPENDING` without `AWSCURRENT`: what a rotation that did
/// not finish left.
fn unfinished(record: &SecretRecord) -> Option<&str> {
    record
        .versions
        .iter()
        .find(|v| {
            v.labels.iter().any(|l| l == AWSPENDING) && !v.labels.iter().any(|l| l == AWSCURRENT)
        })
        .map(|v| v.id.as_str())
}

/// The next schedule of `meta` after a rotation (or configuration) at `last`, its
/// start picked at random inside the window.
pub(crate) fn reschedule(
    meta: &mut RotationMeta,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<()> {
    rotor_core::schedule::reschedule(meta, last, now, rotor_crypto::random::below)
}

impl Rotations {
    /// Rotations over `service`, issuing rotators' credentials through `access`.
    pub fn new(
        service: Arc<SecretService>,
        access: Arc<AccessService>,
        settings: Settings,
    ) -> Self {
        let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        Rotations {
            service,
            access,
            settings,
            endpoint: RwLock::new(None),
            active: Mutex::new(HashSet::new()),
            slots,
            wake: Notify::new(),
            runs: Default::default(),
            node: format!(
                "{}:{}:{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "node".into()),
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            epoch: Mutex::new(None),
        }
    }

    /// This node's name in the scheduler lease (`HOST:PID:RANDOM`).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Tells rotators where this server listens (`http://127.0.0.1:8200`).
    pub fn set_endpoint(&self, endpoint: &str) {
        *self.endpoint.write().unwrap_or_else(|e| e.into_inner()) = Some(endpoint.to_string());
    }

    pub(crate) fn endpoint(&self) -> Option<String> {
        self.endpoint
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn store(&self) -> Arc<dyn Store> {
        self.service.store()
    }

    fn now(&self) -> DateTime<Utc> {
        self.service.now()
    }

    /// Records an event about secret `name` (ARN `arn`) that no stored change carries
    /// (a gate waiting or passing, a retirement), invalidating what caches it.
    async fn event(
        &self,
        name: &str,
        arn: &str,
        kind: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        self.service
            .apply_rotation(
                name,
                arn,
                Mutation::AppendEvent {
                    kind: kind.to_string(),
                    secret: Some(name.to_string()),
                    detail: detail.to_string(),
                },
            )
            .await
            .map(|_| ())
    }

    /// How many rotation runs this process has driven (for metrics and tests).
    pub fn runs(&self) -> u64 {
        self.runs.load(std::sync::atomic::Ordering::Relaxed)
    }
}
