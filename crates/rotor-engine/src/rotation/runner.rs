//! Drives one rotation through its steps, recording each before the next starts.

use super::gates::{self, Verdict};
use super::rotators::{self, Ctx};
use super::{Rotations, reschedule};
use rotor_core::label::AWSCURRENT;
use rotor_core::model::{RotationRecord, RotationStatus, Step, StepRun};
use rotor_core::{Error, Result};
use rotor_store::Mutation;
use std::sync::Arc;
use std::time::Instant;

/// Runs rotation `token` of `secret` from its recorded step until it succeeds,
/// fails for good, waits for a retry, or is cancelled: `Ok(None)`. `Ok(Some(wait))`
/// when it waits at an adoption gate: call again after `wait`.
pub(super) async fn run(
    rot: &Arc<Rotations>,
    secret: i64,
    name: &str,
    token: &str,
) -> Result<Option<std::time::Duration>> {
    let store = rot.store();
    loop {
        let Some(mut r) = store.rotation(secret, token).await? else {
            return Ok(None);
        };
        if r.status != RotationStatus::Running || r.resume_at.is_some_and(|t| t > rot.now()) {
            return Ok(None);
        }
        // Only the scheduler lease's holder advances a rotation, under its epoch.
        let Some(epoch) = rot.leader_epoch() else {
            return Ok(None);
        };
        r.epoch = epoch;
        let record = rot.service.resolve(name).await?;
        let step = r.step;
        match gates::check(rot, &record, &mut r, step).await? {
            Verdict::Pass => {}
            Verdict::Wait { changed } => {
                if changed {
                    save(rot, name, &record.meta.arn, r, None).await?;
                }
                return Ok(Some(gates::POLL));
            }
            Verdict::Skip => return succeed(rot, name, token, r).await.map(|_| None),
            Verdict::Fail(e) => {
                return give_up(rot, name, token, r, step, e).await.map(|_| None);
            }
        }
        let started = rot.now();
        let clock = Instant::now();
        let result = async {
            let row = rot.rotator_row(&r.rotator).await?;
            // Authorized for the principal it acts for, as of now, at every step.
            let principal = rot.acting(&record, &row)?;
            let rotator = rotators::build(&row, rot)?;
            let ctx = Ctx {
                rot,
                secret,
                name,
                arn: &record.meta.arn,
                token,
                step,
                principal,
            };
            match tokio::time::timeout(rot.settings.step_timeout, rotator.step(&ctx)).await {
                Ok(done) => done,
                Err(_) => Err(Error::invalid_request(format!(
                    "the step took longer than {} s",
                    rot.settings.step_timeout.as_secs()
                ))),
            }
        }
        .await;
        // A cancellation during the step wins: stop without recording it.
        match store.rotation(secret, token).await? {
            Some(now) if now.status == RotationStatus::Running => {}
            _ => return Ok(None),
        }
        let millis = clock.elapsed().as_millis() as i64;
        metrics::histogram!("rotor_rotation_step_seconds", "step" => step.as_str())
            .record(millis as f64 / 1000.0);
        match result {
            Ok(()) => {
                r.steps.push(StepRun {
                    step: step.as_str().to_string(),
                    attempt: r.attempt,
                    started,
                    millis,
                });
                r.error = None;
                match next_step(rot, &record, &r, step).await {
                    Some(Step::RetirePrevious) if step == Step::FinishSecret => {
                        // AWSCURRENT has moved: for AWS clients the rotation is over
                        // and the schedule moves on, though retiring the previous
                        // credential may wait for its consumers.
                        let fresh = rot.service.resolve(name).await?;
                        if !holds_current(&fresh, token) {
                            return failed_attempt(rot, name, token, r, step, not_current())
                                .await
                                .map(|_| None);
                        }
                        r.step = Step::RetirePrevious;
                        let meta = rotated(rot, &fresh)?;
                        save(rot, name, &record.meta.arn, r, Some(meta)).await?;
                    }
                    Some(next) => {
                        r.step = next;
                        save(rot, name, &record.meta.arn, r, None).await?;
                    }
                    None => {
                        if step == Step::RetirePrevious {
                            retired_event(rot, &record, &r).await?;
                        }
                        return succeed(rot, name, token, r).await.map(|_| None);
                    }
                }
            }
            // AWSCURRENT has moved: a failed retirement does not undo the rotation
            // (a retry from createSecret would fail against the new AWSCURRENT). The
            // previous credential stays valid; an event and a metric say so.
            Err(e) if step == Step::RetirePrevious => {
                tracing::warn!(secret = %name, rotation = %token, error = %e.message, "retiring the previous credential failed; it stays valid");
                metrics::counter!("rotor_rotation_retirements_failed_total").increment(1);
                let detail = serde_json::json!({"token": token, "error": e.message});
                rot.event(name, &record.meta.arn, "rotation.retire_failed", detail)
                    .await?;
                return succeed(rot, name, token, r).await.map(|_| None);
            }
            Err(e) => {
                return failed_attempt(rot, name, token, r, step, e)
                    .await
                    .map(|_| None);
            }
        }
    }
}

/// The step after `step`: AWS's four, then `retirePrevious` when the secret's
/// adoption policy asks for it and the rotator can.
async fn next_step(
    rot: &Rotations,
    record: &rotor_store::SecretRecord,
    r: &RotationRecord,
    step: Step,
) -> Option<Step> {
    if let Some(next) = step.next() {
        return Some(next);
    }
    let retire = step == Step::FinishSecret
        && record.meta.rotation.adoption.retire_previous
        && rot
            .rotator_row(&r.rotator)
            .await
            .is_ok_and(|row| rotators::traits(&row).retires);
    retire.then_some(Step::RetirePrevious)
}

async fn retired_event(
    rot: &Rotations,
    record: &rotor_store::SecretRecord,
    r: &RotationRecord,
) -> Result<()> {
    metrics::counter!("rotor_rotation_retirements_total").increment(1);
    let version = r
        .gates
        .iter()
        .rev()
        .find(|g| g.step == Step::RetirePrevious.as_str())
        .map(|g| g.version.clone());
    let detail = serde_json::json!({"token": r.token, "version": version});
    rot.event(
        &record.meta.name,
        &record.meta.arn,
        "rotation.retired",
        detail,
    )
    .await
}

async fn save(
    rot: &Rotations,
    name: &str,
    arn: &str,
    record: RotationRecord,
    rotation: Option<rotor_core::model::RotationMeta>,
) -> Result<()> {
    let release_pending = record.status == RotationStatus::Succeeded;
    rot.service
        .apply_rotation(
            name,
            arn,
            Mutation::SaveRotation {
                record,
                rotation,
                release_pending,
            },
        )
        .await
        .map(|_| ())
}

/// After `finishSecret`: the new version must hold `AWSCURRENT`; `AWSPENDING` comes
/// off it, and the schedule moves on.
async fn succeed(rot: &Rotations, name: &str, token: &str, mut r: RotationRecord) -> Result<()> {
    let record = rot.service.resolve(name).await?;
    if !holds_current(&record, token) {
        return failed_attempt(rot, name, token, r, Step::FinishSecret, not_current()).await;
    }
    let now = rot.now();
    // After retirePrevious the rotation counted as done when AWSCURRENT moved.
    let meta = if r.step == Step::RetirePrevious {
        record.meta.rotation.clone()
    } else {
        rotated(rot, &record)?
    };
    r.status = RotationStatus::Succeeded;
    r.finished = Some(now);
    r.resume_at = None;
    save(rot, name, &record.meta.arn, r, Some(meta)).await?;
    metrics::counter!("rotor_rotations_total", "result" => "succeeded").increment(1);
    tracing::info!(secret = %name, rotation = %token, "rotation succeeded");
    Ok(())
}

/// Whether `AWSCURRENT` is on version `token`.
fn holds_current(record: &rotor_store::SecretRecord, token: &str) -> bool {
    record
        .versions
        .iter()
        .any(|v| v.id == token && v.labels.iter().any(|l| l == AWSCURRENT))
}

fn not_current() -> Error {
    Error::invalid_request("finishSecret returned, but AWSCURRENT is not on the new version")
}

/// The secret's rotation settings once a rotation has moved `AWSCURRENT`: rotated now,
/// no failure, the next one scheduled.
fn rotated(
    rot: &Rotations,
    record: &rotor_store::SecretRecord,
) -> Result<rotor_core::model::RotationMeta> {
    let now = rot.now();
    let mut meta = record.meta.rotation.clone();
    meta.last_rotated = Some(now);
    meta.failed = None;
    reschedule(&mut meta, now, now)?;
    Ok(meta)
}

/// A step failed: retry the whole rotation after a backoff, or give up.
async fn failed_attempt(
    rot: &Rotations,
    name: &str,
    token: &str,
    r: RotationRecord,
    step: Step,
    e: Error,
) -> Result<()> {
    ended(rot, name, token, r, step, e, true).await
}

/// A gate decided the rotation must not go on: it fails now, without retrying (a
/// retry would meet the same consumers).
async fn give_up(
    rot: &Rotations,
    name: &str,
    token: &str,
    r: RotationRecord,
    step: Step,
    e: Error,
) -> Result<()> {
    ended(rot, name, token, r, step, e, false).await
}

async fn ended(
    rot: &Rotations,
    name: &str,
    token: &str,
    mut r: RotationRecord,
    step: Step,
    e: Error,
    retry: bool,
) -> Result<()> {
    let record = rot.service.resolve(name).await?;
    let message = format!("{}: {}", step.as_str(), e.message);
    tracing::warn!(secret = %name, rotation = %token, attempt = r.attempt, error = %message, "rotation step failed");
    r.error = Some(message.clone());
    let now = rot.now();
    if retry && r.attempt < rot.settings.max_attempts {
        let exponent = (r.attempt - 1).clamp(0, 20) as u32;
        let wait = rot
            .settings
            .backoff
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(rot.settings.max_backoff);
        r.attempt += 1;
        r.step = Step::CreateSecret;
        r.resume_at = Some(now + chrono::Duration::from_std(wait).unwrap_or_default());
        metrics::counter!("rotor_rotation_retries_total").increment(1);
        return save(rot, name, &record.meta.arn, r, None).await;
    }
    // Giving up. A database rotator that already changed the password puts the
    // current one back, so AWSCURRENT keeps logging in.
    if step >= Step::SetSecret
        && let Ok(row) = rot.rotator_row(&r.rotator).await
        && let Ok(principal) = rot.acting(&record, &row)
        && let Ok(rotator) = rotators::build(&row, rot)
    {
        let ctx = Ctx {
            rot,
            secret: r.secret,
            name,
            arn: &record.meta.arn,
            token,
            step,
            principal,
        };
        if let Err(revert) = rotator.revert(&ctx).await {
            tracing::error!(secret = %name, rotation = %token, error = %revert.message, "could not put the current credential back");
        }
    }
    let mut meta = record.meta.rotation.clone();
    meta.failed = Some(message);
    reschedule(&mut meta, now, now)?;
    r.status = RotationStatus::Failed;
    r.finished = Some(now);
    r.resume_at = None;
    save(rot, name, &record.meta.arn, r, Some(meta)).await?;
    metrics::counter!("rotor_rotations_total", "result" => "failed").increment(1);
    tracing::error!(secret = %name, rotation = %token, "rotation failed after its last attempt; AWSCURRENT is unchanged");
    Ok(())
}
