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
mod rotators;
mod runner;

use crate::access::AccessService;
use crate::caller::Caller;
use crate::service::SecretService;
use chrono::{DateTime, Duration, Utc};
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

/// The next schedule of `meta` after a rotation (or configuration) at `last`.
pub(crate) fn reschedule(
    meta: &mut RotationMeta,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<()> {
    let rules = match (&meta.rules, meta.enabled) {
        (Some(rules), true) => rules,
        _ => {
            meta.next_rotation = None;
            meta.due = None;
            return Ok(());
        }
    };
    let rules: RotationRules = serde_json::from_str(rules)
        .map_err(|_| Error::internal("stored rotation rules are not valid JSON"))?;
    let schedule = Schedule::parse(&rules)?;
    match schedule.next_window(last, now) {
        Some(window) => {
            meta.next_rotation = Some(window.start);
            meta.due = Some(pick_in_window(window.start, window.end));
        }
        None => {
            meta.next_rotation = None;
            meta.due = None;
        }
    }
    Ok(())
}

/// A random start inside the window, so that secrets sharing a schedule do not all
/// rotate at its first second; leaves the last tenth of the window for the run.
fn pick_in_window(start: DateTime<Utc>, end: DateTime<Utc>) -> DateTime<Utc> {
    let span = (end - start).num_milliseconds() * 9 / 10;
    if span <= 0 {
        return start;
    }
    let offset = rotor_crypto::random::below(span as usize) as i64;
    start + Duration::milliseconds(offset)
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

    /// The scheduler lease's epoch while this node holds it.
    pub fn leader_epoch(&self) -> Option<i64> {
        *self.epoch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes or renews the scheduler lease. Only its holder starts and advances
    /// rotations; every step it saves carries the lease's epoch, and the store
    /// refuses a save under an epoch that is no longer the lease's.
    pub async fn renew_lease(&self) -> Result<Option<i64>> {
        let ttl_ms = self.settings.lease.as_millis() as i64;
        let out = self
            .store()
            .apply(
                Mutation::Lease {
                    name: rotor_store::SCHEDULER_LEASE.into(),
                    holder: self.node.clone(),
                    ttl_ms,
                },
                self.now(),
            )
            .await?;
        let held = match out {
            Outcome::Lease { held: true, epoch } => Some(epoch),
            _ => None,
        };
        let mut mine = self.epoch.lock().unwrap_or_else(|e| e.into_inner());
        if *mine != held {
            match held {
                Some(epoch) => {
                    tracing::info!(node = %self.node, epoch, "this node runs the rotation scheduler")
                }
                None => {
                    tracing::info!(node = %self.node, "another node runs the rotation scheduler")
                }
            }
        }
        *mine = held;
        Ok(held)
    }

    /// Gives the scheduler lease up (a clean shutdown), so another node takes over
    /// at once instead of after the lease time.
    pub async fn release_lease(&self) {
        let _ = self
            .store()
            .apply(
                Mutation::ReleaseLease {
                    name: rotor_store::SCHEDULER_LEASE.into(),
                    holder: self.node.clone(),
                },
                self.now(),
            )
            .await;
        *self.epoch.lock().unwrap_or_else(|e| e.into_inner()) = None;
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

    /// How many rotation runs this process has driven (for metrics and tests).
    pub fn runs(&self) -> u64 {
        self.runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// When the secret's current value names a master secret (`masterarn`), `caller`
    /// must be allowed to read it: a rotation would log in with it for the caller.
    async fn check_master(&self, caller: &Caller, record: &SecretRecord) -> Result<()> {
        if rotators::current_field(&self.service, record, "masterarn")
            .await?
            .is_none()
        {
            return Ok(());
        }
        self.master_for(caller, record).await.map(|_| ())
    }

    /// The master secret `record`'s current value names, resolved for `principal`,
    /// who must be allowed to read it; `None` when the value names none.
    pub(crate) async fn master_for(
        &self,
        principal: &Caller,
        record: &SecretRecord,
    ) -> Result<Option<Arc<SecretRecord>>> {
        let Some(master) = rotators::current_field(&self.service, record, "masterarn").await?
        else {
            return Ok(None);
        };
        match self
            .service
            .resolve_for(principal, Capability::Read, &master)
            .await
        {
            Ok(m) if !m.meta.is_deleted() => Ok(Some(m)),
            _ => Err(master_refused(principal.name())),
        }
    }

    /// The principal a rotation of `record` through `rotator` acts for, with its
    /// policies as they are now; an error when it may not rotate: it is gone, it lost
    /// `rotate` on the secret or the rotator, or the rotator runs commands and its
    /// registrant lost `exec`.
    pub(crate) fn acting(&self, record: &SecretRecord, rotator: &RotatorRow) -> Result<Caller> {
        let denied = |m: String| Error::new(ErrorKind::AccessDenied, m);
        let Some(name) = record.meta.rotation.principal.as_deref() else {
            return Err(denied(
                "no principal is recorded for this secret's rotation (it was configured by an older Rotor): configure it again with RotateSecret or `rotor rotation set`, and it runs as you".into(),
            ));
        };
        let principal = self.access.principal(name).ok_or_else(|| {
            denied(format!(
                "the principal {name} that configured this rotation no longer exists"
            ))
        })?;
        principal.authorize(Capability::Rotate, &record.meta.name)?;
        principal.authorize(Capability::Rotate, &rotator_path(&rotator.name))?;
        if runs_commands(&rotator.kind) {
            let may_exec = rotator
                .created_by
                .as_deref()
                .and_then(|r| self.access.principal(r))
                .is_some_and(|r| r.may(Capability::Exec, &rotator_path(&rotator.name)));
            if !may_exec {
                return Err(denied(format!(
                    "rotator {} runs commands on the server, and the principal that registered it may no longer do so",
                    rotator.name
                )));
            }
        }
        Ok(principal)
    }

    async fn rotator_row(&self, name: &str) -> Result<RotatorRow> {
        self.store()
            .rotators()
            .await?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| {
                Error::invalid_request(format!(
                    "Rotor has no rotator named {name}; create it with `rotor rotator create {name}`"
                ))
            })
    }

    /// `RotateSecret`.
    pub async fn rotate_secret(
        self: &Arc<Self>,
        caller: &Caller,
        req: RotateRequest,
    ) -> Result<Rotated> {
        if let Some(token) = &req.token {
            name::validate_version_id(token)?;
        }
        let record = self
            .service
            .resolve_for(caller, Capability::Rotate, &req.secret_id)
            .await?;
        if record.meta.is_deleted() {
            return Err(Error::invalid_request(
                "You can't perform this operation on the secret because it was marked for deletion.",
            ));
        }
        let mut meta = record.meta.rotation.clone();
        let rotator = match req.rotator.as_deref().or(meta.rotator.as_deref()) {
            Some(r) => r.to_string(),
            None => {
                return Err(Error::invalid_request(
                    "No Lambda rotation function ARN is associated with this secret.",
                ));
            }
        };
        let rotator_row = self.rotator_row(rotator_name(&rotator)?).await?;
        caller.authorize(Capability::Rotate, &rotator_path(&rotator_row.name))?;
        self.check_master(caller, &record).await?;
        if let Some(rules) = &req.rules {
            Schedule::parse(rules)?;
            meta.rules = Some(
                serde_json::to_string(rules)
                    .map_err(|_| Error::internal("rules could not be encoded"))?,
            );
        }
        let immediately = req.rotate_immediately.unwrap_or(true);
        let secret = record.meta.id;
        // AWS: AWSPENDING on a version other than AWSCURRENT means a previous
        // rotation is still in progress; the scheduler will reattempt it.
        if let Some(pending) = unfinished(&record)
            && req.token.as_deref() != Some(pending)
        {
            return Err(Error::invalid_request(
                "A previous rotation isn't complete. That rotation will be reattempted.",
            ));
        }
        let running = self
            .store()
            .running_rotations()
            .await?
            .into_iter()
            .find(|r| r.secret == secret);
        if let Some(r) = running
            && req.token.as_deref() != Some(r.token.as_str())
        {
            return Err(Error::invalid_request(
                "A previous rotation isn't complete. That rotation will be reattempted.",
            ));
        }
        let now = self.now();
        meta.rotator = Some(rotator.clone());
        meta.enabled = meta.rules.is_some();
        // From now on, every rotation of this secret acts for the caller.
        meta.principal = Some(caller.name().to_string());
        let last = meta.last_rotated.unwrap_or(now);
        reschedule(&mut meta, last, now)?;
        self.service.set_rotation(&record, meta).await?;
        let mut version_id = None;
        if immediately && self.leader_epoch().is_none() {
            // On a single node this takes the lease; on several, the holder will
            // pick the rotation up.
            let _ = self.renew_lease().await;
        }
        if immediately {
            let token = req
                .token
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            self.start(&record, &token, rotator_name(&rotator)?).await?;
            self.drive(secret, record.meta.name.clone(), token.clone());
            version_id = Some(token);
        }
        self.wake.notify_one();
        Ok(Rotated {
            arn: record.meta.arn.clone(),
            name: record.meta.name.clone(),
            version_id,
        })
    }

    /// Records a new rotation and starts driving it in the background.
    async fn start(&self, secret: &SecretRecord, token: &str, rotator: &str) -> Result<()> {
        let now = self.now();
        let name = &secret.meta.name;
        let record = RotationRecord {
            secret: secret.meta.id,
            name: name.clone(),
            token: token.to_string(),
            rotator: rotator.to_string(),
            status: RotationStatus::Running,
            step: Step::CreateSecret,
            attempt: 1,
            started: now,
            updated: now,
            finished: None,
            resume_at: None,
            error: None,
            steps: Vec::new(),
            // Started by the scheduler's holder: fenced. Elsewhere (an API call on
            // another node): unfenced, and the holder picks it up.
            epoch: self.leader_epoch().unwrap_or(0),
        };
        let out = self
            .service
            .apply_rotation(name, &secret.meta.arn, Mutation::StartRotation { record })
            .await?;
        if let Outcome::Rotation { replayed: false } = out {
            tracing::info!(secret = %name, rotation = %token, "rotation started");
            metrics::counter!("rotor_rotations_started_total").increment(1);
        }
        Ok(())
    }

    /// Runs the rotation of version `token` again from its first step, with a
    /// fresh count of attempts (or starts one with that token, when none exists).
    async fn reattempt(&self, secret: &SecretRecord, token: &str, rotator: &str) -> Result<String> {
        match self.store().rotation(secret.meta.id, token).await? {
            None => self.start(secret, token, rotator).await?,
            Some(mut r) => {
                let mut meta = secret.meta.rotation.clone();
                meta.due = None;
                r.status = RotationStatus::Running;
                r.step = Step::CreateSecret;
                r.attempt = 1;
                r.finished = None;
                r.resume_at = None;
                self.service
                    .apply_rotation(
                        &secret.meta.name,
                        &secret.meta.arn,
                        Mutation::SaveRotation {
                            record: r,
                            rotation: Some(meta),
                            release_pending: false,
                        },
                    )
                    .await?;
                tracing::info!(secret = %secret.meta.name, rotation = %token, "unfinished rotation reattempted");
            }
        }
        Ok(token.to_string())
    }

    /// `CancelRotateSecret`: turns scheduled rotation off and stops a running
    /// rotation after its current step. The half-made version keeps `AWSPENDING`,
    /// as AWS leaves it.
    pub async fn cancel(&self, caller: &Caller, secret_id: &str) -> Result<Rotated> {
        let record = self
            .service
            .resolve_for(caller, Capability::Rotate, secret_id)
            .await?;
        if record.meta.is_deleted() {
            return Err(Error::invalid_request(
                "You can't perform this operation on the secret because it was marked for deletion.",
            ));
        }
        if !record.meta.rotation.enabled && record.meta.rotation.rotator.is_none() {
            return Err(Error::invalid_request(
                "Secrets Manager can't cancel rotation because rotation isn't configured for this secret.",
            ));
        }
        let running = self
            .store()
            .running_rotations()
            .await?
            .into_iter()
            .find(|r| r.secret == record.meta.id);
        let mut meta = record.meta.rotation.clone();
        meta.enabled = false;
        meta.next_rotation = None;
        meta.due = None;
        let version_id = match running {
            Some(mut r) => {
                let now = self.now();
                r.status = RotationStatus::Cancelled;
                r.finished = Some(now);
                r.resume_at = None;
                let token = r.token.clone();
                self.service
                    .apply_rotation(
                        &record.meta.name,
                        &record.meta.arn,
                        Mutation::SaveRotation {
                            record: r,
                            rotation: Some(meta),
                            release_pending: false,
                        },
                    )
                    .await?;
                Some(token)
            }
            None => {
                self.service.set_rotation(&record, meta).await?;
                None
            }
        };
        Ok(Rotated {
            arn: record.meta.arn.clone(),
            name: record.meta.name.clone(),
            version_id,
        })
    }

    /// The rotation configuration, schedule and latest rotation of a secret.
    pub async fn view(&self, caller: &Caller, secret_id: &str) -> Result<RotationView> {
        let cached = self
            .service
            .resolve_for(caller, Capability::Describe, secret_id)
            .await?;
        let latest = self.store().rotations(cached.meta.id, 1).await?.pop();
        // Read after the rotation record, past the cache: a view never shows a
        // finished rotation with the schedule from before it.
        let record = self
            .store()
            .load(&rotor_store::Lookup::Arn(cached.meta.arn.clone()))
            .await?
            .ok_or_else(|| Error::not_found("Secrets Manager can't find the specified secret."))?;
        Ok(RotationView {
            arn: record.meta.arn.clone(),
            name: record.meta.name.clone(),
            meta: record.meta.rotation.clone(),
            latest,
        })
    }

    /// The last `limit` rotations of a secret, newest first.
    pub async fn history(
        &self,
        caller: &Caller,
        secret_id: &str,
        limit: i64,
    ) -> Result<Vec<RotationRecord>> {
        let record = self
            .service
            .resolve_for(caller, Capability::Describe, secret_id)
            .await?;
        self.store()
            .rotations(record.meta.id, limit.clamp(1, 1000))
            .await
    }

    /// Sets when a secret's next rotation is due, bypassing its schedule: for tests
    /// and benchmarks of the scheduler. Needs `rotate` on the secret.
    pub async fn set_due(
        &self,
        caller: &Caller,
        secret_id: &str,
        due: DateTime<Utc>,
    ) -> Result<()> {
        let record = self
            .service
            .resolve_for(caller, Capability::Rotate, secret_id)
            .await?;
        let mut meta = record.meta.rotation.clone();
        meta.due = Some(due);
        meta.next_rotation = Some(due);
        self.service.set_rotation(&record, meta).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Runs the scheduler until the process ends: first resumes every rotation left
    /// running (by a crash, or a restart), then starts rotations as they fall due.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let sleep = match me.tick().await {
                    Ok(sleep) => sleep,
                    Err(e) => {
                        tracing::error!(error = %e, "rotation scheduler pass failed");
                        me.settings.poll
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(sleep) => {}
                    _ = me.wake.notified() => {}
                }
            }
        })
    }

    /// One scheduler pass: resumes running rotations that are due, starts due
    /// secrets' rotations. Returns how long to sleep before the next pass.
    pub async fn tick(self: &Arc<Self>) -> Result<std::time::Duration> {
        // Renew well before the lease runs out; a follower asks as often.
        let renew = (self.settings.lease / 3).min(self.settings.poll);
        if self.renew_lease().await?.is_none() {
            return Ok(renew);
        }
        let now = self.now();
        let mut next: Option<DateTime<Utc>> = None;
        for r in self.store().running_rotations().await? {
            match r.resume_at {
                Some(at) if at > now => next = Some(next.map_or(at, |n| n.min(at))),
                _ => self.drive(r.secret, r.name.clone(), r.token.clone()),
            }
        }
        // A secret that could not start stays due: try each once per pass.
        let mut tried = HashSet::new();
        loop {
            let (due, after) = self.store().due_rotations(self.now(), 64).await?;
            if let Some(at) = after {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
            let full = due.len() == 64;
            let mut new = false;
            for (secret, name) in due {
                if tried.insert(secret) {
                    new = true;
                    self.start_scheduled(secret, &name).await;
                }
            }
            if !full || !new {
                break;
            }
        }
        let poll = renew;
        Ok(match next {
            Some(at) => (at - self.now()).to_std().unwrap_or_default().min(poll),
            None => poll,
        })
    }

    async fn start_scheduled(self: &Arc<Self>, secret: i64, name: &str) {
        // Read from the store, not this node's cache: another node may have changed
        // the secret a moment ago.
        let fresh = || async {
            self.store()
                .load(&rotor_store::Lookup::Name(name.to_string()))
                .await
        };
        let started = async {
            let record = fresh().await?.ok_or_else(|| Error::not_found("gone"))?;
            let rotator = record.meta.rotation.rotator.clone();
            match rotator {
                Some(r) if record.meta.rotation.enabled && !record.meta.is_deleted() => {
                    match unfinished(&record) {
                        // The rotation that left AWSPENDING is reattempted.
                        Some(token) => self.reattempt(&record, token, rotator_name(&r)?).await,
                        None => {
                            let token = uuid::Uuid::new_v4().to_string();
                            self.start(&record, &token, rotator_name(&r)?).await?;
                            Ok(token)
                        }
                    }
                }
                _ => Err(Error::invalid_request("rotation is not enabled")),
            }
        }
        .await;
        let e = match started {
            Ok(token) => return self.drive(secret, name.to_string(), token),
            Err(e) => e,
        };
        // Only a secret whose state says it should not rotate now (disabled,
        // deleted, gone, or rotating already) comes off the schedule, until that
        // state changes. Anything else, such as a save refused because the lease
        // changed hands meanwhile, leaves it due for the next pass: a secret taken
        // off the schedule by mistake would never rotate again.
        let record = match fresh().await {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(read) => {
                tracing::error!(secret = %name, error = %e, read = %read, "cannot start a scheduled rotation");
                return;
            }
        };
        let rotating = match self.store().running_rotations().await {
            Ok(running) => running.iter().any(|r| r.secret == secret),
            Err(_) => false,
        };
        let idle = !record.meta.rotation.enabled
            || record.meta.rotation.rotator.is_none()
            || record.meta.is_deleted();
        if idle || rotating {
            tracing::info!(secret = %name, reason = %e.message, "scheduled rotation skipped");
            let mut meta = record.meta.rotation.clone();
            meta.due = None;
            let _ = self.service.set_rotation(&record, meta).await;
        } else {
            tracing::warn!(secret = %name, error = %e, "cannot start a scheduled rotation now; it stays due");
        }
    }

    /// Drives rotation `token` of `secret` in the background, unless this process
    /// already does.
    fn drive(self: &Arc<Self>, secret: i64, name: String, token: String) {
        if self.leader_epoch().is_none() {
            // The lease holder resumes it on its next pass.
            return;
        }
        let key = (secret, token.clone());
        if !self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone())
        {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let permit = me.slots.clone().acquire_owned().await;
            me.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Err(e) = runner::run(&me, secret, &name, &token).await {
                tracing::error!(secret = %name, rotation = %token, error = %e, "rotation runner stopped");
            }
            drop(permit);
            me.active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            // A retry may now be due sooner than the scheduler's next pass.
            me.wake.notify_one();
        });
    }

    /// Waits until no rotation is being driven by this process (for tests).
    pub async fn idle(&self) {
        loop {
            if self
                .active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Wakes the scheduler now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Registers a rotator. Returns the webhook signing key, shown only this once.
    pub async fn create_rotator(
        &self,
        caller: &Caller,
        name: &str,
        kind: &str,
        config: serde_json::Value,
        replace: bool,
    ) -> Result<Option<String>> {
        rotators::validate_name(name)?;
        caller.authorize(Capability::Admin, &rotator_path(name))?;
        if runs_commands(kind) {
            // Running a command on the server is a right of its own.
            caller.authorize(Capability::Exec, &rotator_path(name))?;
        }
        let config = rotators::validate(kind, config)?;
        let (key, shown) = if kind == "webhook" {
            let key = rotor_crypto::random::token("whk_");
            let sealed = self
                .service
                .envelope()
                .seal(rotators::KEY_AAD, name, key.as_bytes())
                .map_err(|_| Error::internal("encryption failed"))?;
            (
                Some(SealedValue {
                    ciphertext: sealed.ciphertext,
                    wrapped_key: sealed.wrapped_key,
                    algorithm: sealed.algorithm,
                    key_id: sealed.key_id,
                    digest: Vec::new(),
                }),
                Some(key),
            )
        } else {
            (None, None)
        };
        let row = RotatorRow {
            name: name.to_string(),
            kind: kind.to_string(),
            config: config.to_string(),
            key,
            created: self.now(),
            created_by: Some(caller.name().to_string()),
        };
        self.store()
            .apply(
                Mutation::PutRotator {
                    rotator: row,
                    replace,
                },
                self.now(),
            )
            .await?;
        Ok(shown)
    }

    /// Every rotator the caller may see.
    pub async fn rotators(&self, caller: &Caller) -> Result<Vec<RotatorInfo>> {
        Ok(self
            .store()
            .rotators()
            .await?
            .into_iter()
            .filter(|r| caller.may(Capability::Admin, &rotator_path(&r.name)))
            .map(RotatorInfo::from)
            .collect())
    }

    /// One rotator.
    pub async fn rotator(&self, caller: &Caller, name: &str) -> Result<RotatorInfo> {
        caller.authorize(Capability::Admin, &rotator_path(name))?;
        self.rotator_row(name)
            .await
            .map(RotatorInfo::from)
            .map_err(|_| Error::not_found(format!("No rotator named {name} exists")))
    }

    /// Removes a rotator.
    pub async fn delete_rotator(&self, caller: &Caller, name: &str) -> Result<()> {
        caller.authorize(Capability::Admin, &rotator_path(name))?;
        self.store()
            .apply(
                Mutation::DeleteRotator {
                    name: name.to_string(),
                },
                self.now(),
            )
            .await?;
        Ok(())
    }
}
