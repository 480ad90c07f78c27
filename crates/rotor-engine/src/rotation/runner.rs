//! Drives one rotation through its steps, recording each before the next starts.

use super::rotators::{self, Ctx};
use super::{Rotations, reschedule};
use rotor_core::label::AWSCURRENT;
use rotor_core::model::{RotationRecord, RotationStatus, Step, StepRun};
use rotor_core::{Error, Result};
use rotor_store::Mutation;
use std::sync::Arc;
use std::time::Instant;

/// Runs rotation `token` of `secret` from its recorded step until it succeeds,
/// fails for good, waits for a retry, or is cancelled.
pub(super) async fn run(rot: &Arc<Rotations>, secret: i64, name: &str, token: &str) -> Result<()> {
    let store = rot.store();
    loop {
        let Some(mut r) = store.rotation(secret, token).await? else {
            return Ok(());
        };
        if r.status != RotationStatus::Running || r.resume_at.is_some_and(|t| t > rot.now()) {
            return Ok(());
        }
        // Only the scheduler lease's holder advances a rotation, under its epoch.
        let Some(epoch) = rot.leader_epoch() else {
            return Ok(());
        };
        r.epoch = epoch;
        let record = rot.service.resolve(name).await?;
        let step = r.step;
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
            _ => return Ok(()),
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
                match step.next() {
                    Some(next) => {
                        r.step = next;
                        save(rot, name, &record.meta.arn, r, None).await?;
                    }
                    None => return succeed(rot, name, token, r).await,
                }
            }
            Err(e) => return failed_attempt(rot, name, token, r, step, e).await,
        }
    }
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
    let holder = |label: &str| {
        record
            .versions
            .iter()
            .find(|v| v.labels.iter().any(|l| l == label))
            .map(|v| v.id.clone())
    };
    if holder(AWSCURRENT).as_deref() != Some(token) {
        let e = Error::invalid_request(
            "finishSecret returned, but AWSCURRENT is not on the new version",
        );
        return failed_attempt(
            rot,
            name,
            token,
            r,
            rotor_core::model::Step::FinishSecret,
            e,
        )
        .await;
    }
    let now = rot.now();
    let mut meta = record.meta.rotation.clone();
    meta.last_rotated = Some(now);
    meta.failed = None;
    reschedule(&mut meta, now, now)?;
    r.status = RotationStatus::Succeeded;
    r.finished = Some(now);
    r.resume_at = None;
    save(rot, name, &record.meta.arn, r, Some(meta)).await?;
    metrics::counter!("rotor_rotations_total", "result" => "succeeded").increment(1);
    tracing::info!(secret = %name, rotation = %token, "rotation succeeded");
    Ok(())
}

/// A step failed: retry the whole rotation after a backoff, or give up.
async fn failed_attempt(
    rot: &Rotations,
    name: &str,
    token: &str,
    mut r: RotationRecord,
    step: Step,
    e: Error,
) -> Result<()> {
    let record = rot.service.resolve(name).await?;
    let message = format!("{}: {}", step.as_str(), e.message);
    tracing::warn!(secret = %name, rotation = %token, attempt = r.attempt, error = %message, "rotation step failed");
    r.error = Some(message.clone());
    let now = rot.now();
    if r.attempt < rot.settings.max_attempts {
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
