//! The scheduler: the lease that makes one node schedule, the loop that starts due
//! rotations (at most [`Settings::concurrency`](super::Settings) at once), and the
//! tasks that drive each one.

use super::*;

impl Rotations {
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
    pub(super) fn drive(self: &Arc<Self>, secret: i64, name: String, token: String) {
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
            me.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            loop {
                let permit = me.slots.clone().acquire_owned().await;
                let ran = runner::run(&me, secret, &name, &token).await;
                // A rotation waiting at a gate holds no slot while it waits.
                drop(permit);
                match ran {
                    Ok(Some(wait)) => tokio::time::sleep(wait).await,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(secret = %name, rotation = %token, error = %e, "rotation runner stopped");
                        break;
                    }
                }
            }
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
}
