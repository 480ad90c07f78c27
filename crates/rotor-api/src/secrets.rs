//! Secrets: values, versions, labels, metadata and tags (`/v1/secrets`,
//! `/v1/metadata`, `/v1/versions`, `/v1/stages`, `/v1/tags`, `/v1/restore`,
//! `/v1/password`). Labels accept the aliases `current`, `previous`, `pending`,
//! `ACSCurrent` and `ACSPrevious`.

use crate::{Sensitive, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A secret name: 1–512 letters, digits and `/_+=.@-`.
pub const NAME_PATTERN: &str = r"^[A-Za-z0-9/_+=.@-]{1,512}$";
/// A version id: 1–64 letters, digits and `-_.`.
pub const VERSION_ID_PATTERN: &str = r"^[A-Za-z0-9._-]{1,64}$";
/// A staging label: 1–256 characters, no control characters.
pub const LABEL_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]{1,256}$";
/// A region: 1–32 lowercase letters, digits and `-` (`us-east-1`).
pub const REGION_PATTERN: &str = r"^[a-z0-9-]{1,32}$";

/// A body with both a text and a binary value (either may be left out or null).
fn both_values() -> serde_json::Value {
    serde_json::json!({
        "required": ["value", "value_base64"],
        "properties": {"value": {"type": "string"}, "value_base64": {"type": "string"}},
    })
}

/// A body with a text or a binary value.
fn one_value() -> serde_json::Value {
    serde_json::json!([
        {"required": ["value"], "properties": {"value": {"type": "string"}}},
        {"required": ["value_base64"], "properties": {"value_base64": {"type": "string"}}},
    ])
}

crate::endpoint! {
    /// Create a secret, with a first value or none.
    CreateSecret: Post "/v1/secrets" => 201 json(Created), body NewSecret;
    /// List the secrets the caller may see, a page at a time.
    ListSecrets: Get "/v1/secrets" => 200 json(SecretList), query ListQuery;
    /// Read a value: AWSCURRENT, or the version or label asked for.
    GetSecretValue: Get "/v1/secrets/{*name}" => 200 json(Value), query GetQuery;
    /// Store a new version; it becomes AWSCURRENT unless labels are given.
    PutSecretValue: Put "/v1/secrets/{*name}" => 200 json(Put), body NewValue;
    /// Schedule a deletion (7–30 days), or delete at once with `force`.
    DeleteSecret: Delete "/v1/secrets/{*name}" => 200 json(Deletion), query DeleteQuery;
    /// A secret's metadata and its versions' labels.
    DescribeSecret: Get "/v1/metadata/{*name}" => 200 json(Description);
    /// Change a secret's description.
    UpdateSecret: Patch "/v1/metadata/{*name}" => 200 json(NameArn), body MetadataUpdate;
    /// Cancel a scheduled deletion.
    RestoreSecret: Post "/v1/restore/{*name}" => 200 json(NameArn);
    /// A secret's versions with their labels.
    ListSecretVersionIds: Get "/v1/versions/{*name}" => 200 json(VersionList), query VersionsQuery;
    /// Move a staging label to a version, or take it off one.
    UpdateSecretVersionStage: Post "/v1/stages/{*name}" => 200 json(NameArn), body StageMove;
    /// Add or change tags.
    TagResource: Post "/v1/tags/{*name}" => 200 json(Description), body Tags;
    /// Remove tags by key.
    UntagResource: Delete "/v1/tags/{*name}" => 200 json(Description), query UntagQuery;
    /// A random password.
    GetRandomPassword: Post "/v1/password" => 200 json(Password), optional body PasswordSpec;
}

/// A new secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("not" = both_values()))]
pub struct NewSecret {
    /// Its name.
    #[schemars(extend("pattern" = NAME_PATTERN))]
    pub name: String,
    /// A text value (at most 65,536 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536))]
    pub value: Option<Sensitive>,
    /// A binary value, base64 (at most 65,536 bytes decoded); not with `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "byte"), length(min = 4, max = 87384))]
    pub value_base64: Option<String>,
    /// At most 2,048 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub description: Option<String>,
    /// Tags: keys 1–128 characters, values at most 256.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "TagMap")]
    pub tags: BTreeMap<String, String>,
    /// The first version's id (`ClientRequestToken`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = VERSION_ID_PATTERN))]
    pub version_id: Option<String>,
    /// The region it lives in; the server's default when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = REGION_PATTERN))]
    pub region: Option<String>,
}

/// Tags as a JSON object, for the schema: keys 1–128 characters, values at most 256.
#[derive(JsonSchema)]
#[schemars(extend("propertyNames" = {"minLength": 1, "maxLength": 128, "not": {"pattern": "^aws:"}}, "additionalProperties" = {"type": "string", "maxLength": 256}, "maxProperties" = 50))]
#[allow(dead_code)]
struct TagMap {}

/// A created secret.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Created {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// The first version's id, when it was given a value.
    pub version_id: Option<String>,
}

/// `GET /v1/secrets`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only names starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Also secrets scheduled for deletion.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_deleted: bool,
    /// Page size, 1–1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_results: Option<i64>,
    /// The previous page's `next_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// Names in descending order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub desc: bool,
}

/// A page of secrets.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SecretList {
    /// The secrets, by name.
    pub secrets: Vec<Description>,
    /// Where the next page starts; none on the last.
    pub next_token: Option<String>,
}

/// A secret's metadata.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Description {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// Its description.
    pub description: Option<String>,
    /// The key id given at creation (AWS API), if any.
    pub kms_key_id: Option<String>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// When it was created.
    pub created: Timestamp,
    /// When it last changed.
    pub last_changed: Timestamp,
    /// When it will be deleted, if scheduled.
    pub deletion_date: Option<Timestamp>,
    /// Each version with labels, by id.
    pub versions: BTreeMap<String, Vec<String>>,
}

/// `GET /v1/secrets/NAME`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    /// A version id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// A staging label or alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// A value.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Value {
    /// The secret's name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// The version read.
    pub version_id: String,
    /// Its labels.
    pub stages: Vec<String>,
    /// When the version was created.
    pub created: Timestamp,
    /// A text value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Sensitive>,
    /// A binary value, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
}

/// A new version.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("not" = both_values(), "anyOf" = one_value()))]
pub struct NewValue {
    /// A text value (at most 65,536 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536))]
    pub value: Option<Sensitive>,
    /// A binary value, base64; not with `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "byte"), length(min = 4, max = 87384))]
    pub value_base64: Option<String>,
    /// Its id (`ClientRequestToken`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = VERSION_ID_PATTERN))]
    pub version_id: Option<String>,
    /// Its labels (1–20); AWSCURRENT when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 20), inner(regex(pattern = LABEL_PATTERN)))]
    pub stages: Option<Vec<String>>,
}

/// A stored version.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Put {
    /// The secret's name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// The version's id.
    pub version_id: String,
    /// Its labels.
    pub stages: Vec<String>,
}

/// `DELETE /v1/secrets/NAME`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Days before the deletion, 7–30 (30 when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 7, max = 30))]
    pub recovery_window_days: Option<i64>,
    /// Delete at once, without recovery.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// A scheduled (or done) deletion.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Deletion {
    /// The secret's name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// When it is (or was) deleted.
    pub deletion_date: Timestamp,
}

/// A secret's name and ARN.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct NameArn {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
}

/// `PATCH /v1/metadata/NAME`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataUpdate {
    /// The new description (at most 2,048 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub description: Option<String>,
}

/// `GET /v1/versions/NAME`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionsQuery {
    /// Also versions without labels.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_deprecated: bool,
}

/// A secret's versions.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VersionList {
    /// The secret's name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// Its versions.
    pub versions: Vec<Version>,
}

/// One version.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Version {
    /// Its id.
    pub version_id: String,
    /// Its labels.
    pub stages: Vec<String>,
    /// When it was created.
    pub created: Timestamp,
}

/// `POST /v1/stages/NAME`: what AWS's `UpdateSecretVersionStage` takes, with
/// `move_to`, `remove_from` or both.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("anyOf" = [
    {"required": ["move_to"], "properties": {"move_to": {"type": "string"}}},
    {"required": ["remove_from"], "properties": {"remove_from": {"type": "string"}}},
]))]
pub struct StageMove {
    /// The label.
    #[schemars(extend("pattern" = LABEL_PATTERN))]
    pub stage: String,
    /// The version it moves to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = VERSION_ID_PATTERN))]
    pub move_to: Option<String>,
    /// The version it leaves (required when the label is on one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = VERSION_ID_PATTERN))]
    pub remove_from: Option<String>,
}

/// `POST /v1/tags/NAME`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tags {
    /// The tags to add or change.
    #[schemars(with = "TagMap")]
    pub tags: BTreeMap<String, String>,
}

/// `DELETE /v1/tags/NAME`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UntagQuery {
    /// The keys to remove, comma-separated.
    pub keys: String,
}

/// `POST /v1/password`: what AWS's `GetRandomPassword` takes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordSpec {
    /// 1–4096 characters (32 when left out).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "rotor_core::number::optional"
    )]
    #[schemars(range(min = 1, max = 4096))]
    pub length: Option<u32>,
    /// Characters never used (at most 4,096).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub exclude_characters: Option<String>,
    /// No digits.
    pub exclude_numbers: bool,
    /// No punctuation.
    pub exclude_punctuation: bool,
    /// No uppercase letters.
    pub exclude_uppercase: bool,
    /// No lowercase letters.
    pub exclude_lowercase: bool,
    /// The space character may appear.
    pub include_space: bool,
    /// At least one of each included type (true when left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_each_included_type: Option<bool>,
}

/// A random password.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Password {
    /// The password.
    pub password: Sensitive,
}
