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
        if t.key.is_empty() || t.key.len() > 128 {
            return Err(crate::Error::validation(
                "Invalid tag: a tag key must be 1 to 128 characters long",
            ));
        }
        if t.value.len() > 256 {
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
}
