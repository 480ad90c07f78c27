//! Rotation: `/v1/rotation/NAME` (the configuration and latest rotation; `PUT`
//! configures it), `/v1/rotation-history/NAME`, `/v1/cancel-rotation/NAME` and
//! `/v1/rotate/NAME` (rotate now). A rotation is shown by the version it creates,
//! never by a value.

use crate::Timestamp;
use crate::secrets::VERSION_ID_PATTERN;
use rotor_core::model::{AdoptionChange, AdoptionPolicy};
use rotor_core::schedule::RotationRules;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

crate::endpoint! {
    /// A secret's rotation configuration and its latest rotation.
    DescribeRotation: Get "/v1/rotation/{*name}" => 200 json(RotationState);
    /// Configure rotation (and, when asked, rotate at once).
    ConfigureRotation: Put "/v1/rotation/{*name}" => 200 json(Rotated), body RotationConfig;
    /// A secret's rotations, newest first.
    ListRotations: Get "/v1/rotation-history/{*name}" => 200 json(History), query HistoryQuery;
    /// Cancel the rotation in progress.
    CancelRotateSecret: Post "/v1/cancel-rotation/{*name}" => 200 json(Rotated);
    /// Rotate now, with the configured rotator.
    RotateSecret: Post "/v1/rotate/{*name}" => 200 json(Rotated), optional body RotateNow;
    /// Retire the previous credential after a change made by hand, once no live
    /// consumer uses it (through the secret's rotator, else a rotation.retired event).
    RetirePrevious: Post "/v1/retire-previous/{*name}" => 200 json(Retired), optional body RetireRequest;
    /// Rotation health of the secrets the caller may describe: overdue, failed and
    /// waiting rotations, and consumers lagging behind AWSCURRENT.
    RotationHealth: Get "/v1/sys/rotation-health" => 200 json(Health);
}

/// `POST /v1/retire-previous/NAME`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetireRequest {
    /// Wait (up to the secret's adoption timeout) for live consumers to move off the
    /// previous version, instead of refusing at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wait: bool,
}

/// A previous credential retired.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Retired {
    /// The secret.
    pub name: String,
    /// The version retired.
    pub version_id: String,
    /// `rotator` (its retirePrevious step ran) or `hook` (the rotation.retired event is
    /// for a subscription to act on).
    pub by: String,
}

/// Rotation health.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// Rotations past their start time and not started.
    pub overdue: Vec<OverdueRotation>,
    /// Secrets whose last rotation failed.
    pub failed: Vec<FailedRotation>,
    /// Rotations waiting for consumers to move on.
    pub waiting: Vec<WaitingRotation>,
    /// Live consumers on a version other than AWSCURRENT.
    pub lagging: Vec<LaggingConsumer>,
}

/// A rotation that should have started.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OverdueRotation {
    /// The secret.
    pub name: String,
    /// When it was due.
    pub due: Timestamp,
    /// For how long, in seconds.
    pub overdue_secs: i64,
}

/// A secret whose last rotation failed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FailedRotation {
    /// The secret.
    pub name: String,
    /// Why.
    pub error: String,
    /// When that rotation ended.
    pub since: Option<Timestamp>,
}

/// A rotation waiting at an adoption gate.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct WaitingRotation {
    /// The secret.
    pub name: String,
    /// The version the rotation creates.
    pub version_id: String,
    /// The step it waits before.
    pub step: String,
    /// The version its consumers still use.
    pub held_version_id: String,
    /// Who.
    pub consumers: Vec<String>,
    /// For how long, in seconds.
    pub waiting_secs: i64,
}

/// A live consumer behind AWSCURRENT.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LaggingConsumer {
    /// The secret.
    pub name: String,
    /// The consumer.
    pub consumer: String,
    /// The version it uses.
    pub version_id: String,
    /// The version holding AWSCURRENT.
    pub current_version_id: String,
    /// Since AWSCURRENT moved there, in seconds.
    pub lagging_secs: i64,
}

/// `PUT /v1/rotation/NAME`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// A rotator's name, or `arn:aws:lambda:REGION:ACCOUNT:function:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub rotator: Option<String>,
    /// When to rotate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<RotationRules>,
    /// Rotate at once too (unlike the AWS API, not unless asked).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rotate_immediately: bool,
    /// The id of the version the rotation creates (`ClientRequestToken`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = VERSION_ID_PATTERN))]
    pub version_id: Option<String>,
    /// What rotations do about the secret's consumers (the fields given change).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::optional_object"
    )]
    pub adoption: Option<AdoptionChange>,
}

/// `POST /v1/rotate/NAME`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateNow {
    /// The id of the version the rotation creates (`ClientRequestToken`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = VERSION_ID_PATTERN))]
    pub version_id: Option<String>,
}

/// A rotation started, configured or cancelled.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Rotated {
    /// The secret's name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// The version the rotation creates, if one runs.
    pub version_id: Option<String>,
}

/// A secret's rotation configuration and latest rotation.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RotationState {
    /// The secret's name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// Whether it rotates on a schedule.
    pub enabled: bool,
    /// The rotator, as configured.
    pub rotator: Option<String>,
    /// The schedule.
    pub rules: Option<serde_json::Value>,
    /// When it last rotated.
    pub last_rotated: Option<Timestamp>,
    /// When the next rotation window opens.
    pub next_rotation: Option<Timestamp>,
    /// Why the last rotation failed, if it did.
    pub failed: Option<String>,
    /// The principal rotations run as.
    pub principal: Option<String>,
    /// What rotations do about the secret's consumers.
    pub adoption: AdoptionPolicy,
    /// The latest rotation.
    pub latest: Option<Rotation>,
}

/// One rotation.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Rotation {
    /// The version it creates.
    pub version_id: String,
    /// The rotator.
    pub rotator: String,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// The next step (the last one tried, once finished).
    pub step: String,
    /// Which attempt, from 1.
    pub attempt: i64,
    /// When it started.
    pub started: Timestamp,
    /// When it last changed.
    pub updated: Timestamp,
    /// When it finished.
    pub finished: Option<Timestamp>,
    /// When it resumes after a backoff.
    pub resume_at: Option<Timestamp>,
    /// The last error.
    pub error: Option<String>,
    /// Its finished steps.
    pub steps: Vec<StepRun>,
    /// The adoption gates it met, in order.
    pub gates: Vec<Gate>,
}

/// An adoption gate: before a step that invalidates a credential, the live consumers
/// that still used it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Gate {
    /// The step it guards (`setSecret`, `retirePrevious`).
    pub step: String,
    /// The version whose consumers it waits for.
    pub version_id: String,
    /// The attempt it belongs to.
    pub attempt: i64,
    /// When it started.
    pub started: Timestamp,
    /// The consumers it waited for when last checked.
    pub waiting_for: Vec<String>,
    /// When it was decided; absent while it waits.
    pub passed: Option<Timestamp>,
    /// `clear`, `adopted`, `timed_out`, `proceeded` or `refused`; absent while it waits.
    pub outcome: Option<String>,
}

/// A finished step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StepRun {
    /// AWS's name of the step.
    pub step: String,
    /// The attempt that ran it.
    pub attempt: i64,
    /// When it started.
    pub started: Timestamp,
    /// How long it took.
    pub millis: i64,
}

/// `GET /v1/rotation-history/NAME`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// How many, newest first (20 when left out; taken as 1–1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// A secret's rotations.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct History {
    /// Newest first.
    pub rotations: Vec<Rotation>,
}
