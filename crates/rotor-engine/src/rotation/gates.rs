//! Adoption gates: before a step that invalidates a credential, wait until no live
//! consumer uses it.
//!
//! - Before `setSecret`: a rotator that changes the user on `AWSPREVIOUS` (alternating
//!   users, and any external rotator, which is taken to follow AWS's scheme) waits
//!   until no live consumer uses the `AWSPREVIOUS` version. A rotator that changes the
//!   password in place (single user) breaks every consumer of `AWSCURRENT` at once,
//!   and no wait helps: with live consumers it is refused unless the policy says
//!   `proceed`.
//! - Before `retirePrevious` (after `finishSecret`, when the policy asks for it): wait
//!   until every live consumer has moved off the new `AWSPREVIOUS`.
//!
//! A gate that waits is recorded in the rotation ([`GateRun`]) before the runner lets
//! go, so a server killed while it waits resumes waiting from the same start, and
//! its timeout counts from there. When the timeout passes with consumers still on the
//! version, the policy decides: `fail` (the rotation fails before `setSecret`, with
//! `AWSCURRENT` unchanged; before `retirePrevious`, the previous credential is left
//! valid) or `proceed`.

use super::Rotations;
use super::rotators::{self, Invalidates};
use rotor_core::label::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::model::{GateRun, OnTimeout, RotationRecord, Step};
use rotor_core::{Error, Result};
use rotor_store::SecretRecord;
use std::time::Duration;

/// How often a waiting gate looks at the consumers again.
pub(super) const POLL: Duration = Duration::from_millis(250);

/// How long after `finishSecret` the retirement gate may first pass: readers are
/// written to the registry in batches (every 250 ms on each node), so a read of the
/// old `AWSCURRENT` made just before it moved must have had time to land (found by
/// the protocol model: without it, a reader could lose its credential).
const READS_SETTLE: chrono::Duration = chrono::Duration::milliseconds(1000);

/// What the runner does about a gate.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Run the step.
    Pass,
    /// Look again after [`POLL`]; `changed` when the record must be saved.
    Wait {
        /// Whether the gate started or its consumers changed.
        changed: bool,
    },
    /// Skip the step (a retirement timed out under `fail`).
    Skip,
    /// Fail the rotation for good, with this error.
    Fail(Error),
}

fn holder<'a>(record: &'a SecretRecord, label: &str) -> Option<&'a str> {
    record
        .versions
        .iter()
        .find(|v| v.labels.iter().any(|l| l == label))
        .map(|v| v.id.as_str())
}

/// Decides whether `step` of rotation `r` of `record` may run now, recording the
/// gate in `r.gates`.
pub(super) async fn check(
    rot: &Rotations,
    record: &SecretRecord,
    r: &mut RotationRecord,
    step: Step,
) -> Result<Verdict> {
    let policy = record.meta.rotation.adoption;
    if !policy.wait_for_consumers {
        return Ok(Verdict::Pass);
    }
    let invalidates = match step {
        Step::SetSecret => match rot.rotator_row(&r.rotator).await {
            Ok(row) => rotators::traits(&row).invalidates,
            // The step itself fails the same way, and says why.
            Err(_) => return Ok(Verdict::Pass),
        },
        Step::RetirePrevious => Invalidates::Previous,
        _ => return Ok(Verdict::Pass),
    };
    let version = match invalidates {
        Invalidates::Nothing => return Ok(Verdict::Pass),
        Invalidates::Current => holder(record, AWSCURRENT),
        Invalidates::Previous => holder(record, AWSPREVIOUS),
    };
    let Some(version) = version.map(str::to_string) else {
        return Ok(Verdict::Pass);
    };
    // This node's reads are written now; other nodes' within their flush interval.
    rot.service.flush_reads().await?;
    let now = rot.now();
    if step == Step::RetirePrevious
        && let Some(finished) = r
            .steps
            .iter()
            .rev()
            .find(|s| s.step == Step::FinishSecret.as_str())
        && now < finished.started + chrono::Duration::milliseconds(finished.millis) + READS_SETTLE
    {
        return Ok(Verdict::Wait { changed: false });
    }
    let consumers = rot.service.consumers_of(record).await?;
    let mut holding: Vec<String> = consumers
        .live_on(&version)
        .into_iter()
        .map(|c| match &c.through {
            Some(replica) => format!("{} (through {replica})", c.consumer),
            None => c.consumer.clone(),
        })
        .collect();
    holding.sort();
    let attempt = r.attempt;
    let open = r
        .gates
        .iter()
        .position(|g| g.step == step.as_str() && g.attempt == attempt && g.passed.is_none());
    let close = |r: &mut RotationRecord, outcome: &str, waiting_for: Vec<String>| {
        let gate = match open {
            Some(i) => &mut r.gates[i],
            None => {
                r.gates.push(GateRun {
                    step: step.as_str().to_string(),
                    version: version.clone(),
                    attempt,
                    started: now,
                    waiting_for: Vec::new(),
                    passed: None,
                    outcome: None,
                });
                r.gates.last_mut().expect("just pushed")
            }
        };
        gate.waiting_for = waiting_for;
        gate.passed = Some(now);
        gate.outcome = Some(outcome.to_string());
        let waited = (now - gate.started).to_std().unwrap_or_default();
        metrics::counter!("rotor_rotation_gates_total", "step" => step.as_str(), "outcome" => outcome.to_string())
            .increment(1);
        metrics::histogram!("rotor_rotation_gate_seconds", "step" => step.as_str())
            .record(waited.as_secs_f64());
    };
    if holding.is_empty() {
        close(
            r,
            if open.is_some() { "adopted" } else { "clear" },
            Vec::new(),
        );
        if open.is_some() {
            event(rot, record, "rotation.adopted", r, step, &version, &[]).await?;
        }
        return Ok(Verdict::Pass);
    }
    if invalidates == Invalidates::Current {
        // Waiting cannot help: every consumer of AWSCURRENT breaks when it changes.
        if policy.on_timeout == OnTimeout::Proceed {
            close(r, "proceeded", holding);
            return Ok(Verdict::Pass);
        }
        let message = format!(
            "a single-user rotation would break the live consumers of AWSCURRENT ({}); use the alternating-users strategy, or set the adoption policy's on_timeout to proceed",
            holding.join(", ")
        );
        close(r, "refused", holding);
        return Ok(Verdict::Fail(Error::invalid_request(message)));
    }
    let Some(i) = open else {
        r.gates.push(GateRun {
            step: step.as_str().to_string(),
            version: version.clone(),
            attempt,
            started: now,
            waiting_for: holding.clone(),
            passed: None,
            outcome: None,
        });
        event(rot, record, "rotation.waiting", r, step, &version, &holding).await?;
        tracing::info!(secret = %record.meta.name, rotation = %r.token, step = step.as_str(), consumers = %holding.join(", "), "rotation waits for its consumers");
        return Ok(Verdict::Wait { changed: true });
    };
    let started = r.gates[i].started;
    let timeout = chrono::Duration::seconds(policy.adoption_timeout_secs.max(0));
    if now - started < timeout {
        let changed = r.gates[i].waiting_for != holding;
        r.gates[i].waiting_for = holding;
        return Ok(Verdict::Wait { changed });
    }
    match (policy.on_timeout, step) {
        (OnTimeout::Proceed, _) => {
            close(r, "proceeded", holding);
            Ok(Verdict::Pass)
        }
        (OnTimeout::Fail, Step::RetirePrevious) => {
            tracing::warn!(secret = %record.meta.name, rotation = %r.token, consumers = %holding.join(", "), "the previous credential stays valid: consumers still use it");
            close(r, "timed_out", holding);
            Ok(Verdict::Skip)
        }
        (OnTimeout::Fail, _) => {
            let message = format!(
                "consumers still use version {version} after {} s: {}",
                policy.adoption_timeout_secs,
                holding.join(", ")
            );
            close(r, "timed_out", holding);
            Ok(Verdict::Fail(Error::invalid_request(message)))
        }
    }
}

async fn event(
    rot: &Rotations,
    record: &SecretRecord,
    kind: &str,
    r: &RotationRecord,
    step: Step,
    version: &str,
    consumers: &[String],
) -> Result<()> {
    let detail = serde_json::json!({
        "token": r.token,
        "step": step.as_str(),
        "version": version,
        "consumers": consumers,
    });
    rot.event(&record.meta.name, &record.meta.arn, kind, detail)
        .await
}
