//! The rotation operations callers ask for: `RotateSecret`, `CancelRotateSecret`,
//! the current rotation and its history, and who a rotation acts for.

use super::*;

impl Rotations {
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
        self.may_use(principal, record, rotator)
    }

    /// `principal`, when it may use `rotator` on `record` now: `rotate` on both, and
    /// for a rotator that runs commands, `exec` still held by its registrant.
    fn may_use(
        &self,
        principal: Caller,
        record: &SecretRecord,
        rotator: &RotatorRow,
    ) -> Result<Caller> {
        let denied = |m: String| Error::new(ErrorKind::AccessDenied, m);
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
        // A rotation whose finishSecret moved AWSCURRENT is over for the caller, who
        // may rotate again at once: its record closes a moment later. Everything below
        // reads the record once it has.
        let record = self.service.settled(record).await?;
        if record.meta.is_deleted() {
            return Err(Error::invalid_request(
                "You can't perform this operation on the secret because it was marked for deletion.",
            ));
        }
        let mut meta = record.meta.rotation.clone();
        // The rules are checked before the rotator, as AWS does.
        if let Some(rules) = &req.rules {
            Schedule::parse(rules)?;
        }
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
        if let Some(change) = &req.adoption {
            meta.adoption = change.apply(meta.adoption)?;
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
    pub(super) async fn start(
        &self,
        secret: &SecretRecord,
        token: &str,
        rotator: &str,
    ) -> Result<()> {
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
            gates: Vec::new(),
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
    pub(super) async fn reattempt(
        &self,
        secret: &SecretRecord,
        token: &str,
        rotator: &str,
    ) -> Result<String> {
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
                // Saved under this holder's epoch: the record's own may be a former
                // holder's, which the fence would refuse forever (found by the model).
                r.epoch = self.leader_epoch().unwrap_or(0);
                // A gate left open by an earlier attempt starts again: its timeout must
                // not count from the old start.
                for g in r.gates.iter_mut().filter(|g| g.passed.is_none()) {
                    g.passed = Some(self.now());
                    g.outcome = Some("abandoned".into());
                }
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
                // A person's cancel is not a scheduler's step: unfenced, so it is not
                // refused when the lease changed hands since the record was saved.
                r.epoch = 0;
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
}

/// What [`Rotations::retire_previous`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    /// The secret.
    pub name: String,
    /// The version retired (it held `AWSPREVIOUS`).
    pub version_id: String,
    /// `rotator` (its `retirePrevious` step ran) or `hook` (no rotator can: the
    /// `rotation.retired` event is for a subscription to act on).
    pub by: &'static str,
}

impl Rotations {
    /// Retires the credential on `AWSPREVIOUS` after a change made by hand (a new
    /// `AWSCURRENT` put by a person): once no live consumer uses it (waiting up to the
    /// secret's adoption timeout when `wait`, else refusing at once and naming them),
    /// through the secret's rotator when it can retire, else by recording a
    /// `rotation.retired` event for a subscription (a redeploy hook, a DBA's script) to
    /// act on. Needs `rotate` on the secret, and on its rotator when that runs.
    pub async fn retire_previous(
        self: &Arc<Self>,
        caller: &Caller,
        secret_id: &str,
        wait: bool,
    ) -> Result<Retirement> {
        let record = self
            .service
            .resolve_for(caller, Capability::Rotate, secret_id)
            .await?;
        let holder = |record: &SecretRecord, label: &str| {
            record
                .versions
                .iter()
                .find(|v| v.labels.iter().any(|l| l == label))
                .map(|v| v.id.clone())
        };
        let previous = holder(&record, rotor_core::label::AWSPREVIOUS).ok_or_else(|| {
            Error::invalid_request(format!(
                "{} has no AWSPREVIOUS version to retire",
                record.meta.name
            ))
        })?;
        let current = holder(&record, AWSCURRENT).unwrap_or_default();
        let timeout = record.meta.rotation.adoption.adoption_timeout_secs.max(0) as u64;
        let deadline = std::time::Instant::now()
            + std::time::Duration::from_secs(if wait { timeout } else { 0 });
        loop {
            let fresh = self.service.resolve(&record.meta.name).await?;
            if holder(&fresh, rotor_core::label::AWSPREVIOUS).as_deref() != Some(previous.as_str())
            {
                return Err(Error::invalid_request(format!(
                    "AWSPREVIOUS of {} moved while waiting; nothing was retired",
                    record.meta.name
                )));
            }
            let consumers = self.service.consumers_of(&fresh).await?;
            let holding: Vec<String> = consumers
                .live_on(&previous)
                .into_iter()
                .map(|c| c.consumer.clone())
                .collect();
            if holding.is_empty() {
                break;
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::invalid_request(format!(
                    "live consumers still use version {previous} of {}: {}; nothing was retired",
                    record.meta.name,
                    holding.join(", ")
                )));
            }
            tokio::time::sleep(super::gates::POLL).await;
        }
        let row = match record.meta.rotation.rotator.as_deref() {
            Some(r) => Some(self.rotator_row(rotator_name(r)?).await?),
            None => None,
        };
        let rotator = match &row {
            Some(row) if rotators::traits(row).retires => Some(rotators::build(row, self)?),
            _ => None,
        };
        let by = match (rotator, &row) {
            (Some(rotator), Some(row)) => {
                let principal = self.may_use(caller.clone(), &record, row)?;
                let ctx = rotators::Ctx {
                    rot: self,
                    secret: record.meta.id,
                    name: &record.meta.name,
                    arn: &record.meta.arn,
                    token: &current,
                    step: Step::RetirePrevious,
                    principal,
                };
                rotator.step(&ctx).await?;
                "rotator"
            }
            _ => "hook",
        };
        let detail = serde_json::json!({"version": previous, "manual": true, "by": by});
        self.event(
            &record.meta.name,
            &record.meta.arn,
            "rotation.retired",
            detail,
        )
        .await?;
        metrics::counter!("rotor_rotation_retirements_total").increment(1);
        Ok(Retirement {
            name: record.meta.name.clone(),
            version_id: previous,
            by,
        })
    }
}
