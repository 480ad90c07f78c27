//! What the store keeps about a secret and its versions, apart from the values.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A resource tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Tag key, 1–128 characters.
    pub key: String,
    /// Tag value, 0–256 characters.
    pub value: String,
}

/// Most tags one secret may carry.
pub const MAX_TAGS: usize = 50;

/// Checks tag keys and values against AWS's limits.
pub fn validate_tags(tags: &[Tag]) -> crate::Result<()> {
    for t in tags {
        if t.key.is_empty() || t.key.chars().count() > 128 {
            return Err(crate::Error::validation(
                "Invalid tag: a tag key must be 1 to 128 characters long",
            ));
        }
        if t.value.chars().count() > 256 {
            return Err(crate::Error::validation(
                "Invalid tag: a tag value must be at most 256 characters long",
            ));
        }
        if t.key.starts_with("aws:") {
            return Err(crate::Error::invalid_parameter(
                "Invalid tag: keys starting with \"aws:\" are reserved",
            ));
        }
    }
    Ok(())
}

/// A secret's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMeta {
    /// Store-internal id.
    pub id: i64,
    /// The secret's name.
    pub name: String,
    /// The secret's ARN, fixed at creation.
    pub arn: String,
    /// Free text.
    pub description: Option<String>,
    /// The KMS key id a client asked for; kept and echoed, the master key encrypts.
    pub kms_key_id: Option<String>,
    /// Tags in the order they were added.
    pub tags: Vec<Tag>,
    /// When the secret was created.
    pub created: DateTime<Utc>,
    /// When the secret or its versions last changed.
    pub last_changed: DateTime<Utc>,
    /// When a scheduled deletion takes effect; `None` when not scheduled.
    pub deletion_date: Option<DateTime<Utc>>,
    /// When deletion was requested.
    pub deleted_date: Option<DateTime<Utc>>,
    /// Rotation configuration and state.
    pub rotation: RotationMeta,
    /// The replication rule that owns this secret, when it is a destination.
    pub replica_of: Option<String>,
    /// Whether a source of this destination was deleted.
    pub source_deleted: bool,
}

/// A secret's rotation configuration and where its schedule stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RotationMeta {
    /// Whether rotation runs on a schedule.
    pub enabled: bool,
    /// The rotator as the client named it (a Lambda ARN or a rotator name).
    pub rotator: Option<String>,
    /// The rotation rules as JSON (AWS's `RotationRules` shape).
    pub rules: Option<String>,
    /// When the secret was last rotated (a manual `AWSCURRENT` change counts).
    pub last_rotated: Option<DateTime<Utc>>,
    /// Start of the next rotation window.
    pub next_rotation: Option<DateTime<Utc>>,
    /// When inside that window the scheduler will start the rotation.
    pub due: Option<DateTime<Utc>>,
    /// Why the last rotation failed, when it did (never a secret value).
    pub failed: Option<String>,
    /// The principal rotations run as: the last one to configure or start rotation.
    /// Every step is authorized with its policies at the time the step runs.
    pub principal: Option<String>,
}

impl SecretMeta {
    /// Whether the secret is scheduled for deletion.
    pub fn is_deleted(&self) -> bool {
        self.deletion_date.is_some()
    }
}

/// A version's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionMeta {
    /// The version id.
    pub id: String,
    /// Its staging labels.
    pub labels: Vec<String>,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// Where a replicated version came from (JSON list of `{secret, version}`).
    pub source: Option<String>,
}

/// Where a rotation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RotationStatus {
    /// Running, or waiting out a backoff before its next attempt.
    Running,
    /// Finished: the new version is `AWSCURRENT`.
    Succeeded,
    /// Gave up after its last attempt; `AWSCURRENT` stayed where it was.
    Failed,
    /// Cancelled by `CancelRotateSecret`.
    Cancelled,
}

impl RotationStatus {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            RotationStatus::Running => "running",
            RotationStatus::Succeeded => "succeeded",
            RotationStatus::Failed => "failed",
            RotationStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            RotationStatus::Running,
            RotationStatus::Succeeded,
            RotationStatus::Failed,
            RotationStatus::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// A step of the rotation protocol, named as AWS's Lambda event names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// Create the new version, labeled `AWSPENDING`.
    CreateSecret,
    /// Make the target system accept the new credential.
    SetSecret,
    /// Check that the new credential works.
    TestSecret,
    /// Move `AWSCURRENT` to the new version.
    FinishSecret,
}

impl Step {
    /// The four steps in order.
    pub const ALL: [Step; 4] = [
        Step::CreateSecret,
        Step::SetSecret,
        Step::TestSecret,
        Step::FinishSecret,
    ];

    /// AWS's name of the step.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::CreateSecret => "createSecret",
            Step::SetSecret => "setSecret",
            Step::TestSecret => "testSecret",
            Step::FinishSecret => "finishSecret",
        }
    }

    /// Parses AWS's name of a step.
    pub fn parse(s: &str) -> Option<Self> {
        Step::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The step after this one.
    pub fn next(self) -> Option<Step> {
        match self {
            Step::CreateSecret => Some(Step::SetSecret),
            Step::SetSecret => Some(Step::TestSecret),
            Step::TestSecret => Some(Step::FinishSecret),
            Step::FinishSecret => None,
        }
    }
}

/// One finished step of a rotation, as its history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRun {
    /// AWS's name of the step.
    pub step: String,
    /// Which attempt of the rotation ran it.
    pub attempt: i64,
    /// When it started.
    pub started: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub millis: i64,
}

/// A rotation as stored: durable, so that a restarted server resumes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationRecord {
    /// The secret's store id.
    pub secret: i64,
    /// The secret's name (read with the record; not stored with it).
    pub name: String,
    /// The `ClientRequestToken`: the id of the version being created.
    pub token: String,
    /// The rotator's name.
    pub rotator: String,
    /// Where it stands.
    pub status: RotationStatus,
    /// The next step to run (the last one tried, once finished).
    pub step: Step,
    /// Which attempt of the whole rotation this is, from 1.
    pub attempt: i64,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it last changed.
    pub updated: DateTime<Utc>,
    /// When it finished.
    pub finished: Option<DateTime<Utc>>,
    /// A rotation waiting out a backoff resumes at this time.
    pub resume_at: Option<DateTime<Utc>>,
    /// The last error (never a secret value).
    pub error: Option<String>,
    /// Finished steps.
    pub steps: Vec<StepRun>,
    /// Fencing epoch of the scheduler lease that last advanced it.
    pub epoch: i64,
}
