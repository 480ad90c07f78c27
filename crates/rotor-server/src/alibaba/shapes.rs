//! The JSON Alibaba's API sends and takes: each answer's fields as the API reference
//! names them, lists wrapped as Alibaba wraps them (`VersionStages: {VersionStage:
//! [...]}`), and the JSON that list parameters (`Tags`, `Filters`) carry.

use serde::{Deserialize, Serialize};

/// An answer: the operation's fields and the request id.
#[derive(Serialize)]
pub(super) struct Reply<'a, T: Serialize> {
    #[serde(rename = "RequestId")]
    pub request_id: &'a str,
    #[serde(flatten)]
    pub body: T,
}

/// `{"VersionStage": [...]}`.
#[derive(Serialize)]
pub(super) struct Stages {
    #[serde(rename = "VersionStage")]
    pub list: Vec<String>,
}

/// `{"Tag": [...]}`.
#[derive(Serialize)]
pub(super) struct Tags {
    #[serde(rename = "Tag")]
    pub list: Vec<TagOut>,
}

/// A tag as Alibaba shows it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TagOut {
    pub tag_key: String,
    pub tag_value: String,
}

/// A tag in `Tags`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TagIn {
    pub tag_key: String,
    #[serde(default)]
    pub tag_value: String,
}

/// A filter in `ListSecrets`' `Filters`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct FilterIn {
    pub key: String,
    #[serde(default)]
    pub values: Vec<String>,
}

/// Just the secret's name (`UpdateSecretVersionStage`, `UpdateSecret`, ...).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Named {
    pub secret_name: String,
}

/// Nothing but the request id.
#[derive(Serialize)]
pub(super) struct Empty {}

/// `CreateSecret`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Created {
    pub arn: String,
    pub secret_name: String,
    pub version_id: Option<String>,
    pub secret_type: &'static str,
}

/// The rotation fields of `DescribeSecret`, and of `GetSecretValue` with
/// `FetchExtendedConfig`.
#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Rotation {
    pub automatic_rotation: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rotation_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_interval: Option<String>,
}

/// `GetSecretValue`. The value is borrowed from the version, never copied into a
/// string of its own unless it is binary (base64).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SecretValueOut<'a> {
    pub secret_name: &'a str,
    pub version_id: &'a str,
    pub create_time: String,
    pub secret_data: std::borrow::Cow<'a, str>,
    pub secret_data_type: &'static str,
    pub version_stages: Stages,
    pub secret_type: &'static str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_config: Option<&'static str>,
}

/// `PutSecretValue`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Put {
    pub secret_name: String,
    pub version_id: String,
    pub version_stages: Stages,
}

/// A version in `ListSecretVersionIds`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct VersionOut {
    pub version_id: String,
    pub create_time: String,
    pub version_stages: Stages,
}

/// `{"VersionId": [...]}`.
#[derive(Serialize)]
pub(super) struct Versions {
    #[serde(rename = "VersionId")]
    pub list: Vec<VersionOut>,
}

/// `ListSecretVersionIds`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct VersionList {
    pub secret_name: String,
    pub total_count: usize,
    pub page_number: i64,
    pub page_size: i64,
    pub version_ids: Versions,
}

/// `DescribeSecret`, and a secret in `ListSecrets`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Description {
    pub arn: String,
    pub secret_name: String,
    pub secret_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub encryption_key_id: String,
    pub create_time: String,
    pub update_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned_delete_time: Option<String>,
    #[serde(flatten)]
    pub rotation: Rotation,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
}

/// `{"Secret": [...]}`.
#[derive(Serialize)]
pub(super) struct Secrets {
    #[serde(rename = "Secret")]
    pub list: Vec<Description>,
}

/// `ListSecrets`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SecretList {
    pub page_number: i64,
    pub page_size: i64,
    pub total_count: usize,
    pub secret_list: Secrets,
}

/// `DeleteSecret`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Deleted {
    pub secret_name: String,
    pub planned_delete_time: String,
}

/// `GetRandomPassword`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RandomPassword {
    pub random_password: String,
}

/// `RotateSecret`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Rotated {
    pub arn: String,
    pub secret_name: String,
    pub version_id: Option<String>,
}

/// A tag in `ListTagResources`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TagResource {
    pub resource_id: String,
    pub resource_type: &'static str,
    pub tag_key: String,
    pub tag_value: String,
}

/// `{"TagResource": [...]}`.
#[derive(Serialize)]
pub(super) struct TagResourceList {
    #[serde(rename = "TagResource")]
    pub list: Vec<TagResource>,
}

/// `ListTagResources`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TagResources {
    pub tag_resources: TagResourceList,
}
