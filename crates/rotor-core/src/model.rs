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
    /// What rotations do about the secret's consumers.
    pub adoption: AdoptionPolicy,
}

/// What a rotation does when an invalidating step would break a live consumer: wait
/// for it to adopt the new version, up to a timeout, then fail or go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct AdoptionPolicy {
    /// Wait for live consumers before a step that invalidates the credential they
    /// use (it only waits when there are some).
    pub wait_for_consumers: bool,
    /// How long a gate waits, in seconds.
    pub adoption_timeout_secs: i64,
    /// What happens when that time runs out with consumers still on the old version.
    pub on_timeout: OnTimeout,
    /// After `finishSecret`, retire the previous credential once every live consumer
    /// has adopted the new one.
    pub retire_previous: bool,
    /// How long a reader that is not a registered consumer (an AWS SDK caching a value,
    /// say) counts as using the version it last read, in seconds.
    pub assume_adopted_after_secs: i64,
}

impl Default for AdoptionPolicy {
    fn default() -> Self {
        AdoptionPolicy {
            wait_for_consumers: true,
            adoption_timeout_secs: 600,
            on_timeout: OnTimeout::Fail,
            retire_previous: false,
            assume_adopted_after_secs: 3600,
        }
    }
}

/// The longest a gate may wait, in seconds (a day).
pub const MAX_ADOPTION_TIMEOUT_SECS: i64 = 86_400;

/// The longest a reader may count as using what it last read, in seconds (a week).
pub const MAX_ASSUME_ADOPTED_AFTER_SECS: i64 = 604_800;

/// A change to an [`AdoptionPolicy`]: the fields given replace the policy's.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct AdoptionChange {
    /// Wait for live consumers before invalidating what they use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_consumers: Option<bool>,
    /// How long a gate waits, in seconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::number::optional"
    )]
    #[schemars(range(min = 0, max = 86_400))]
    pub adoption_timeout_secs: Option<i64>,
    /// What happens when a gate's time runs out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<OnTimeout>,
    /// Retire the previous credential once every live consumer has adopted the new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_previous: Option<bool>,
    /// How long a reader counts as using the version it last read, in seconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::number::optional"
    )]
    #[schemars(range(min = 0, max = 604_800))]
    pub assume_adopted_after_secs: Option<i64>,
}

impl AdoptionChange {
    /// `policy` with this change applied; `InvalidParameter` for a value out of range.
    pub fn apply(&self, mut policy: AdoptionPolicy) -> crate::Result<AdoptionPolicy> {
        let range = |what: &str, v: i64, max: i64| {
            if (0..=max).contains(&v) {
                Ok(v)
            } else {
                Err(crate::Error::invalid_parameter(format!(
                    "{what} must be 0 to {max} seconds"
                )))
            }
        };
        if let Some(v) = self.wait_for_consumers {
            policy.wait_for_consumers = v;
        }
        if let Some(v) = self.adoption_timeout_secs {
            policy.adoption_timeout_secs =
                range("adoption_timeout_secs", v, MAX_ADOPTION_TIMEOUT_SECS)?;
        }
        if let Some(v) = self.on_timeout {
            policy.on_timeout = v;
        }
        if let Some(v) = self.retire_previous {
            policy.retire_previous = v;
        }
        if let Some(v) = self.assume_adopted_after_secs {
            policy.assume_adopted_after_secs = range(
                "assume_adopted_after_secs",
                v,
                MAX_ASSUME_ADOPTED_AFTER_SECS,
            )?;
        }
        Ok(policy)
    }
}

/// What a gate does when its timeout passes with consumers still waiting.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// The rotation fails and `AWSCURRENT` stays; nothing is invalidated.
    #[default]
    Fail,
    /// The step runs anyway.
    Proceed,
}

impl OnTimeout {
    /// The configured and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            OnTimeout::Fail => "fail",
            OnTimeout::Proceed => "proceed",
        }
    }
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
    /// Rotor's own, after `finishSecret` when the adoption policy asks for it: disable
    /// the previous credential once no live consumer uses it. Sent only to rotators
    /// that declared they handle it.
    RetirePrevious,
}

impl Step {
    /// AWS's four steps in order (Rotor's [`Step::RetirePrevious`] may follow).
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
            Step::RetirePrevious => "retirePrevious",
        }
    }

    /// Parses AWS's name of a step.
    pub fn parse(s: &str) -> Option<Self> {
        Step::ALL
            .into_iter()
            .chain([Step::RetirePrevious])
            .find(|st| st.as_str() == s)
    }

    /// The step after this one.
    pub fn next(self) -> Option<Step> {
        match self {
            Step::CreateSecret => Some(Step::SetSecret),
            Step::SetSecret => Some(Step::TestSecret),
            Step::TestSecret => Some(Step::FinishSecret),
            Step::FinishSecret | Step::RetirePrevious => None,
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

/// A gate a rotation passed, or waits at: before a step that invalidates a
/// credential, the live consumers still using it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRun {
    /// The step it guards (`setSecret`, `retirePrevious`).
    pub step: String,
    /// The version whose consumers it waits for.
    pub version: String,
    /// Which attempt of the rotation it belongs to.
    pub attempt: i64,
    /// When it started waiting (a restarted server keeps waiting from here).
    pub started: DateTime<Utc>,
    /// The consumers it waited for when last checked.
    pub waiting_for: Vec<String>,
    /// When it was decided.
    pub passed: Option<DateTime<Utc>>,
    /// How: `clear` (no live consumer held it), `adopted` (they moved on), `timed_out`
    /// (the rotation failed, or the retirement was skipped), `proceeded` (went on
    /// after the timeout, as the policy said).
    pub outcome: Option<String>,
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
    /// The adoption gates it met, in order.
    pub gates: Vec<GateRun>,
}
