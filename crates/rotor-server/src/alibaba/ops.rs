//! The operations of Alibaba's KMS Secrets Manager API, each a translation onto the
//! [`SecretService`] (and [`Rotations`]) that the AWS and native APIs use.

use super::AcsError;
use super::params::Params;
use super::shapes::{self, Reply, Stages, Tags};
use crate::App;
use crate::audit::Subject;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use rotor_core::filter::Filter;
use rotor_core::label;
use rotor_core::model::{SecretMeta, Tag};
use rotor_core::name;
use rotor_core::password::PasswordSpec;
use rotor_core::schedule::RotationRules;
use rotor_core::value::SecretValue;
use rotor_engine::rotation::RotateRequest;
use rotor_engine::{Caller, CreateSecret, ListSecrets, PutValue, SortBy, SortOrder};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::borrow::Cow;

/// An answer's body, or the error to send instead.
type Answer = Result<Vec<u8>, AcsError>;

/// The answer `body` to request `id`.
fn reply(id: &str, body: impl Serialize) -> Answer {
    serde_json::to_vec(&Reply {
        request_id: id,
        body,
    })
    .map_err(|_| rotor_core::Error::internal("response encoding failed").into())
}

/// Runs operation `op` (one of [`super::OPERATIONS`]) for request `id`.
pub(super) async fn dispatch(
    app: &App,
    c: &Caller,
    op: &str,
    p: &Params,
    region: &str,
    id: &str,
) -> Answer {
    match op {
        "CreateSecret" => create_secret(app, c, p, region, id).await,
        "GetSecretValue" => get_secret_value(app, c, p, id).await,
        "PutSecretValue" => put_secret_value(app, c, p, id).await,
        "UpdateSecretVersionStage" => update_secret_version_stage(app, c, p, id).await,
        "ListSecretVersionIds" => list_secret_version_ids(app, c, p, id).await,
        "DescribeSecret" => describe_secret(app, c, p, id).await,
        "ListSecrets" => list_secrets(app, c, p, id).await,
        "UpdateSecret" => update_secret(app, c, p, id).await,
        "DeleteSecret" => delete_secret(app, c, p, id).await,
        "RestoreSecret" => restore_secret(app, c, p, id).await,
        "GetRandomPassword" => get_random_password(app, p, id),
        "RotateSecret" => rotate_secret(app, c, p, id).await,
        "UpdateSecretRotationPolicy" => update_rotation_policy(app, c, p, id).await,
        "TagResource" => tag_resource(app, c, p, id).await,
        "UntagResource" => untag_resource(app, c, p, id).await,
        "ListTagResources" => list_tag_resources(app, c, p, id).await,
        _ => Err(AcsError::invalid(format!("Unknown operation {op}"))),
    }
}

/// What a request names, for its audit entry. Values (`SecretData`) are not read.
pub(super) fn subject(p: &Params) -> Subject {
    let mut sensitive = Vec::new();
    if let Some(d) = p.get("Description") {
        sensitive.push(("description", d.to_string()));
    }
    if let Some(t) = p.get("Tags") {
        sensitive.push(("tag", t.to_string()));
    }
    let mut labels: Vec<String> = p
        .get("VersionStages")
        .map(|v| list_of(v).unwrap_or_default())
        .unwrap_or_default();
    labels.extend(p.get("VersionStage").map(str::to_string));
    Subject {
        secret: p.get("SecretName").map(str::to_string),
        version_id: p
            .get("VersionId")
            .or_else(|| p.get("MoveToVersion"))
            .map(str::to_string),
        labels,
        sensitive,
    }
}

// ---- parameters ----

/// `SecretName`: a name, or Alibaba's ARN of one (`acs:kms:REGION:ACCOUNT:secret/NAME`).
fn secret_name(p: &Params) -> Result<&str, AcsError> {
    let given = required(p, "SecretName")?;
    Ok(match given.strip_prefix("acs:kms:") {
        Some(rest) => rest.split_once(":secret/").map_or(given, |(_, name)| name),
        None => given,
    })
}

fn required<'a>(p: &'a Params, name: &str) -> Result<&'a str, AcsError> {
    p.get(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AcsError::missing(name))
}

fn flag(p: &Params, name: &str) -> Result<Option<bool>, AcsError> {
    match p.get(name) {
        None | Some("") => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(AcsError::invalid(format!(
            "The parameter {name} must be true or false, got {v:?}"
        ))),
    }
}

fn number(
    p: &Params,
    name: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, AcsError> {
    match p.get(name) {
        None | Some("") => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(AcsError::invalid(format!(
                "The parameter {name} must be a number from {} to {}, got {v:?}",
                range.start(),
                range.end()
            ))),
        },
    }
}

/// A list parameter: a JSON array of strings (as the SDKs send it), or one value.
fn list_of(v: &str) -> Result<Vec<String>, AcsError> {
    let v = v.trim();
    if v.starts_with('[') {
        serde_json::from_str(v)
            .map_err(|_| AcsError::invalid(format!("{v:?} is not a JSON array of strings")))
    } else if v.is_empty() {
        Ok(Vec::new())
    } else {
        Ok(vec![v.to_string()])
    }
}

/// `Tags`: `[{"TagKey": "k", "TagValue": "v"}]`.
fn tags_of(p: &Params) -> Result<Vec<Tag>, AcsError> {
    let Some(text) = p.get("Tags").filter(|t| !t.is_empty()) else {
        return Ok(Vec::new());
    };
    let items: Vec<shapes::TagIn> = serde_json::from_str(text).map_err(|_| {
        AcsError::invalid("Tags must be a JSON array of {\"TagKey\", \"TagValue\"}")
    })?;
    if items.len() > 20 {
        return Err(AcsError::invalid("A secret can have at most 20 tags"));
    }
    items
        .into_iter()
        .map(|t| {
            if t.tag_key.starts_with("aliyun") || t.tag_key.starts_with("acs:") {
                return Err(AcsError::invalid(format!(
                    "The tag key {:?} is reserved (aliyun…, acs:…)",
                    t.tag_key
                )));
            }
            if t.tag_key.chars().count() > 128 || t.tag_value.chars().count() > 128 {
                return Err(AcsError::invalid(
                    "Tag keys and values are at most 128 characters",
                ));
            }
            Ok(Tag {
                key: t.tag_key,
                value: t.tag_value,
            })
        })
        .collect()
}

fn tags_out(tags: &[Tag]) -> Tags {
    Tags {
        list: tags
            .iter()
            .map(|t| shapes::TagOut {
                tag_key: t.key.clone(),
                tag_value: t.value.clone(),
            })
            .collect(),
    }
}

/// Alibaba's name for a label.
fn stage_out(label: &str) -> String {
    match label {
        label::AWSCURRENT => "ACSCurrent".into(),
        label::AWSPREVIOUS => "ACSPrevious".into(),
        label::AWSPENDING => "ACSPending".into(),
        other => other.into(),
    }
}

fn stages_out(labels: &[String]) -> Stages {
    Stages {
        list: labels.iter().map(|l| stage_out(l)).collect(),
    }
}

fn stage_in(label: &str) -> String {
    label::resolve_alias(label).to_string()
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A secret's name as Alibaba's API accepts it: the AWS rules, at most 192
/// characters, and not under Alibaba's reserved `acs/`.
fn check_name(name: &str) -> Result<(), AcsError> {
    name::validate_name(name)?;
    if name.chars().count() > 192 || name.starts_with("acs/") {
        return Err(AcsError::invalid(format!(
            "The SecretName {name:?} is invalid: use 1 to 192 letters, digits and _/+=.@-, not starting with acs/"
        )));
    }
    Ok(())
}

/// The largest `SecretData` Alibaba's API takes (the AWS API takes 64 KiB).
const MAX_SECRET_DATA: usize = 30 * 1024;

/// `SecretData` read as `SecretDataType` says (`text`, the default, or `binary`:
/// base64).
fn value_of(p: &Params) -> Result<SecretValue, AcsError> {
    let data = p
        .get("SecretData")
        .ok_or_else(|| AcsError::missing("SecretData"))?;
    if data.len() > MAX_SECRET_DATA {
        return Err(AcsError::invalid(format!(
            "SecretData must be at most {MAX_SECRET_DATA} bytes"
        )));
    }
    match p.get("SecretDataType").unwrap_or("text") {
        "text" => Ok(SecretValue::from_secret_string(SecretString::from(
            data.to_string(),
        ))?),
        "binary" => {
            let bytes = B64.decode(data.as_bytes()).map_err(|_| {
                AcsError::invalid("SecretData must be base64 when SecretDataType is binary")
            })?;
            Ok(SecretValue::binary(bytes)?)
        }
        other => Err(AcsError::invalid(format!(
            "SecretDataType must be text or binary, got {other:?}"
        ))),
    }
}

/// Alibaba's ARN of a secret.
fn arn(region: &str, account: &str, name: &str) -> String {
    format!("acs:kms:{region}:{account}:secret/{name}")
}

fn rotation_out(meta: &SecretMeta) -> shapes::Rotation {
    let r = &meta.rotation;
    shapes::Rotation {
        automatic_rotation: if r.enabled { "Enabled" } else { "Disabled" },
        last_rotation_date: r.last_rotated.map(time),
        next_rotation_date: r.next_rotation.filter(|_| r.enabled).map(time),
        rotation_interval: r
            .rules
            .as_deref()
            .and_then(|j| serde_json::from_str::<RotationRules>(j).ok())
            .and_then(|rules| rules.automatically_after_days)
            .map(|days| format!("{}s", days * 86_400)),
    }
}

// ---- the operations ----

async fn create_secret(app: &App, c: &Caller, p: &Params, region: &str, id: &str) -> Answer {
    let name = required(p, "SecretName")?;
    check_name(name)?;
    let version_id = required(p, "VersionId")?;
    let value = value_of(p)?;
    if let Some(k) = ["ExtendedConfig", "DKMSInstanceId"]
        .iter()
        .find(|k| p.get(k).is_some_and(|v| !v.is_empty()))
    {
        return Err(AcsError::invalid(format!(
            "{k} is not supported: Rotor keeps Generic secrets in its own store"
        )));
    }
    if let Some(t) = p
        .get("SecretType")
        .filter(|t| !t.is_empty() && *t != "Generic")
    {
        return Err(AcsError::invalid(format!(
            "SecretType {t:?} is not supported: Rotor keeps Generic secrets (rotation comes from its rotators)"
        )));
    }
    if flag(p, "EnableAutomaticRotation")? == Some(true) {
        // Checked before anything is stored: a new secret has no rotator yet.
        return Err(AcsError::invalid(
            "EnableAutomaticRotation needs a rotator, which a new secret does not have: create the secret, attach a rotator (Rotor's API or CLI), then call UpdateSecretRotationPolicy",
        ));
    }
    let created = app
        .service
        .create(
            c,
            CreateSecret {
                name: name.to_string(),
                region: region.to_string(),
                token: Some(version_id.to_string()),
                description: p.get("Description").map(str::to_string),
                kms_key_id: p.get("EncryptionKeyId").map(str::to_string),
                value: Some(value),
                tags: tags_of(p)?,
            },
        )
        .await?;
    reply(
        id,
        shapes::Created {
            arn: arn(region, app.service.account_id(), &created.name),
            secret_name: created.name,
            version_id: created.version_id,
            secret_type: "Generic",
        },
    )
}

async fn get_secret_value(app: &App, c: &Caller, p: &Params, id: &str) -> Answer {
    let name = secret_name(p)?;
    let stage = p
        .get("VersionStage")
        .filter(|s| !s.is_empty())
        .map(stage_in);
    let v = app
        .service
        .get_value(
            c,
            name,
            p.get("VersionId").filter(|s| !s.is_empty()),
            stage.as_deref(),
        )
        .await?;
    let (data, kind) = match &v.value {
        SecretValue::String(s) => (Cow::Borrowed(s.expose_secret()), "text"),
        SecretValue::Binary(b) => (Cow::Owned(B64.encode(b.expose_secret())), "binary"),
    };
    let extended = flag(p, "FetchExtendedConfig")? == Some(true);
    let rotation = match extended {
        true => Some(rotation_out(&app.service.describe(c, name).await?.meta)),
        false => None,
    };
    reply(
        id,
        shapes::SecretValueOut {
            secret_name: &v.name,
            version_id: &v.version_id,
            create_time: time(v.created),
            secret_data: data,
            secret_data_type: kind,
            version_stages: stages_out(&v.stages),
            secret_type: "Generic",
            rotation,
            extended_config: extended.then_some(""),
        },
    )
}

async fn put_secret_value(app: &App, c: &Caller, p: &Params, id: &str) -> Answer {
    let name = secret_name(p)?;
    let version_id = required(p, "VersionId")?;
    let value = value_of(p)?;
    let stages = match p.get("VersionStages") {
        Some(s) if !s.is_empty() => Some(list_of(s)?.iter().map(|l| stage_in(l)).collect()),
        _ => None,
    };
    let put = app
        .service
        .put_value(
            c,
            PutValue {
                secret_id: name.to_string(),
                token: Some(version_id.to_string()),
                value,
                stages,
            },
        )
        .await?;
    reply(
        id,
        shapes::Put {
            secret_name: put.name,
            version_id: put.version_id,
            version_stages: stages_out(&put.stages),
        },
    )
}

async fn update_secret_version_stage(app: &App, c: &Caller, p: &Params, id: &str) -> Answer {
    let name = secret_name(p)?;
    let stage = stage_in(required(p, "VersionStage")?);
    let move_to = p.get("MoveToVersion").filter(|s| !s.is_empty());
    let remove_from = p.get("RemoveFromVersion").filter(|s| !s.is_empty());
    if move_to.is_none() && remove_from.is_none() {
        return Err(AcsError::invalid(
            "Either MoveToVersion or RemoveFromVersion is required",
        ));
    }
    // Alibaba moves a label from wherever it is; AWS asks to be told where that is.
    let mut remove_from = remove_from.map(str::to_string);
    if let (Some(to), None) = (move_to, &remove_from) {
        let d = app.service.describe(c, name).await?;
        remove_from = d
            .versions_to_stages
            .iter()
            .find(|(id, labels)| id != to && labels.contains(&stage))
            .map(|(id, _)| id.clone());
    }
    let (_, name) = app
        .service
        .update_stage(c, name, &stage, move_to.map(str::to_string), remove_from)
        .await?;
    reply(
        id,
        shapes::Named {
            secret_name: name.to_string(),
        },
    )
}

/// `PageNumber` (from 1) and `PageSize` (1 to 100, `default` when absent).
fn paging(p: &Params, default: i64) -> Result<(i64, i64), AcsError> {
    let number = number(p, "PageNumber", 1..=1_000_000)?.unwrap_or(1);
    let size = self::number(p, "PageSize", 1..=100)?.unwrap_or(default);
    Ok((number, size))
}

fn page_of<T>(items: Vec<T>, number: i64, size: i64) -> Vec<T> {
    let start = ((number - 1) * size) as usize;
    items.into_iter().skip(start).take(size as usize).collect()
}

async fn list_secret_version_ids(app: &App, c: &Caller, p: &Params, id: &str) -> Answer {
    let name = secret_name(p)?;
    let deprecated = flag(p, "IncludeDeprecated")?.unwrap_or(false);
    let (number, size) = paging(p, 10)?;
    let (record, versions) = app.service.list_versions(c, name, deprecated).await?;
    let total = versions.len();
    let list = page_of(versions, number, size)
        .into_iter()
        .map(|v| shapes::VersionOut {
            create_time: time(v.created),
            version_stages: stages_out(&v.labels),
            version_id: v.id,
        })
        .collect();
    reply(
        id,
        shapes::VersionList {
            secret_name: record.meta.name.clone(),
            total_count: total,
            page_number: number,
            page_size: size,
            version_ids: shapes::Versions { list },
        },
    )
}

fn describe_out(app: &App, meta: &SecretMeta, tags: bool) -> shapes::Description {
    let region = meta.arn.split(':').nth(3).unwrap_or(&app.default_region);
    shapes::Description {
        arn: arn(region, app.service.account_id(), &meta.name),
        secret_name: meta.name.clone(),
        secret_type: "Generic",
        description: meta.description.clone(),
        encryption_key_id: meta.kms_key_id.clone().unwrap_or_default(),
        create_time: time(meta.created),
        update_time: time(meta.last_changed),
        planned_delete_time: meta.deletion_date.map(time),
        rotation: rotation_out(meta),
        tags: tags.then(|| tags_out(&meta.tags)),
    }
}

async fn describe_secret(app: &App, c: &Caller, p: &Params, id: &str) -> Answer {
    let name = secret_name(p)?;
    let d = app.service.describe(c, name).await?;
    let tags = flag(p, "FetchTags")?.unwrap_or(false);
    reply(id, describe_out(app, &d.meta, tags))
}

/// `Filters`: `[{"Key": "SecretName", "Values": ["a", "b"]}]`, keys `SecretName`,
/// `Description`, `TagKey`, `TagValue` (each value a prefix, as AWS's filters).
fn filters_of(p: &Params) -> Result<Vec<Filter>, AcsError> {
    let Some(text) = p.get("Filters").filter(|t| !t.is_empty()) else {
        return Ok(Vec::new());
    };
    let items: Vec<shapes::FilterIn> = serde_json::from_str(text)
        .map_err(|_| AcsError::invalid("Filters must be a JSON array of {\"Key\", \"Values\"}"))?;
    items
        .into_iter()
        .map(|f| {
            let key = match f.key.as_str() {
                "SecretName" => "name",
                "Description" => "description",
                "TagKey" => "tag-key",
                "TagValue" => "tag-value",
                other => {
                    return Err(AcsError::invalid(format!(
                        "Filter key {other:?} is not supported: use SecretName, Description, TagKey or TagValue"
                    )));
                }
            };
            Filter::new(key, f.values).map_err(AcsError::from)
        })
        .collect()
}

async fn list_secrets(app: &App, c: &Caller, p: &Params, id: &str) -> Answer {
    let (number, size) = paging(p, 10)?;
    let tags = flag(p, "FetchTags")?.unwrap_or(false);
    let all = app
        .service
        .list(
            c,
            &ListSecrets {
                include_planned_deletion: true,
                filters: filters_of(p)?,
                sort_order: SortOrder::Asc,
                sort_by: SortBy::CreatedDate,
                prefix: None,
            },
        )
        .await?;
    let total = all.len();
    let list = page_of(all, number, size)
        .iter()
        .map(|s| describe_out(app, &s.meta, tags))
        .collect();
    reply(
        id,
        shapes::SecretList {
            page_number: number,
            page_size: size,
            total_count: total,
            secret_list: shapes::Secrets { list },
        },
    )
}

async fn update_secret(app: &App, c: &Caller, p: &Params, id: &str) -> Answer {
    let name = secret_name(p)?;
    if p.iter().any(|(k, _)| k.starts_with("ExtendedConfig")) {
        return Err(AcsError::invalid(
            "ExtendedConfig is not supported: Rotor keeps Generic secrets in its own store",
        ));
    }
    let (_, name, _) = app
        .service
        .update(
            c,
            name,
            None,
            p.get("Description").map(str::to_string),
            None,
            None,
        )
        .await?;
    reply(
        id,
        shapes::Named {
            secret_name: name.to_string(),
        },
    )
}

async fn delete_secret(app: &App, c: &Caller, p: &Params, id: &str) -> Answer {
    let name = secret_name(p)?;
    let force = flag(p, "ForceDeleteWithoutRecovery")?.unwrap_or(false);
    let window = number(p, "RecoveryWindowInDays", 7..=30)?;
    if force && window.is_some() {
        return Err(AcsError::invalid(
            "RecoveryWindowInDays and ForceDeleteWithoutRecovery cannot both be given",
        ));
    }
    let d = app
        .service
        .delete(
            c,
            name,
            Some(window.unwrap_or(30)).filter(|_| !force),
            force,
        )
        .await?;
    reply(
        id,
        shapes::Deleted {
            secret_name: d.name,
            planned_delete_time: time(d.deletion_date),
        },
    )
}

async fn restore_secret(app: &App, c: &Caller, p: &Params, id: &str) -> Answer {
    let name = secret_name(p)?;
    let (_, name) = app.service.restore(c, name).await?;
    reply(
        id,
        shapes::Named {
            secret_name: name.to_string(),
        },
    )
}

fn get_random_password(app: &App, p: &Params, id: &str) -> Answer {
    let length = number(p, "PasswordLength", 8..=128)?.unwrap_or(32);
    let spec = PasswordSpec {
        length: length as usize,
        exclude_characters: p.get("ExcludeCharacters").unwrap_or("").to_string(),
        exclude_numbers: flag(p, "ExcludeNumbers")?.unwrap_or(false),
        exclude_punctuation: flag(p, "ExcludePunctuation")?.unwrap_or(false),
        exclude_uppercase: flag(p, "ExcludeUppercase")?.unwrap_or(false),
        exclude_lowercase: flag(p, "ExcludeLowercase")?.unwrap_or(false),
        include_space: false,
        require_each_included_type: flag(p, "RequireEachIncludedType")?.unwrap_or(true),
    };
    reply(
        id,
        shapes::RandomPassword {
            random_password: app.service.random_password(&spec)?,
        },
    )
}

async fn rotate_secret(app: &App, c: &Caller, p: &Params, id: &str) -> Answer {
    let name = secret_name(p)?;
    let version_id = required(p, "VersionId")?;
    let done = app
        .rotations
        .rotate_secret(
            c,
            RotateRequest {
                secret_id: name.to_string(),
                token: Some(version_id.to_string()),
                rotator: None,
                rules: None,
                rotate_immediately: Some(true),
                adoption: None,
            },
        )
        .await?;
    let region = done
        .arn
        .split(':')
        .nth(3)
        .unwrap_or(&app.default_region)
        .to_string();
    reply(
        id,
        shapes::Rotated {
            arn: arn(&region, app.service.account_id(), &done.name),
            secret_name: done.name,
            version_id: done.version_id,
        },
    )
}

/// `RotationInterval`: `7d`, `12h` or `604800s`, whole days from 6 hours (rounded up
/// to a day, the finest schedule `RotationRules` takes) to 365 days.
fn interval_days(text: &str) -> Result<i64, AcsError> {
    let bad = || {
        AcsError::invalid(format!(
            "RotationInterval {text:?} is invalid: use a number of days (7d), hours (168h) or seconds (604800s), from 6 hours to 365 days"
        ))
    };
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "d" => n.checked_mul(86_400),
        "h" => n.checked_mul(3_600),
        "s" => Some(n),
        _ => None,
    }
    .ok_or_else(bad)?;
    if !(6 * 3_600..=365 * 86_400).contains(&seconds) {
        return Err(bad());
    }
    Ok((seconds + 86_399) / 86_400)
}

async fn set_rotation_policy(
    app: &App,
    c: &Caller,
    name: &str,
    p: &Params,
) -> Result<(), AcsError> {
    let interval = required(p, "RotationInterval")?;
    let days = interval_days(interval)?;
    app.rotations
        .rotate_secret(
            c,
            RotateRequest {
                secret_id: name.to_string(),
                token: None,
                rotator: None,
                rules: Some(RotationRules {
                    automatically_after_days: Some(days),
                    ..Default::default()
                }),
                rotate_immediately: Some(false),
                adoption: None,
            },
        )
        .await?;
    Ok(())
}

async fn update_rotation_policy(app: &App, c: &Caller, p: &Params, id: &str) -> Answer {
    let name = secret_name(p)?;
    let enable = flag(p, "EnableAutomaticRotation")?
        .ok_or_else(|| AcsError::missing("EnableAutomaticRotation"))?;
    if enable {
        set_rotation_policy(app, c, name, p).await?;
    } else {
        app.rotations.cancel(c, name).await?;
    }
    reply(
        id,
        shapes::Named {
            secret_name: name.to_string(),
        },
    )
}

/// Only secrets carry tags here: Rotor keeps no KMS keys or certificates.
fn only_secrets(p: &Params) -> Result<(), AcsError> {
    match ["KeyId", "CertificateId"].iter().find(|k| p.has(k)) {
        Some(k) => Err(AcsError::invalid(format!(
            "{k} is not supported: Rotor keeps secrets only (use SecretName)"
        ))),
        None => Ok(()),
    }
}

async fn tag_resource(app: &App, c: &Caller, p: &Params, id: &str) -> Answer {
    only_secrets(p)?;
    let name = secret_name(p)?;
    let tags = tags_of(p)?;
    if tags.is_empty() {
        return Err(AcsError::missing("Tags"));
    }
    app.service.tag(c, name, tags).await?;
    reply(id, shapes::Empty {})
}

async fn untag_resource(app: &App, c: &Caller, p: &Params, id: &str) -> Answer {
    only_secrets(p)?;
    let name = secret_name(p)?;
    let keys = list_of(required(p, "TagKeys")?)?;
    app.service.untag(c, name, keys).await?;
    reply(id, shapes::Empty {})
}

/// `ListTagResources` for secrets: `ResourceType` `secret`, the secrets as
/// `ResourceId.N`, optionally only the tags `Tag.N.Key` names.
async fn list_tag_resources(app: &App, c: &Caller, p: &Params, id: &str) -> Answer {
    match p.get("ResourceType") {
        Some(t) if t.eq_ignore_ascii_case("secret") => {}
        Some(t) => {
            return Err(AcsError::invalid(format!(
                "ResourceType {t:?} is not supported: Rotor keeps secrets only (secret)"
            )));
        }
        None => return Err(AcsError::missing("ResourceType")),
    }
    let numbered = |prefix: &str, suffix: &str| -> Vec<String> {
        (1..)
            .map_while(|i| p.get(&format!("{prefix}.{i}{suffix}")).map(str::to_string))
            .collect()
    };
    let ids = numbered("ResourceId", "");
    if ids.is_empty() {
        return Err(AcsError::missing("ResourceId.1"));
    }
    let keys = numbered("Tag", ".Key");
    let mut list = Vec::new();
    for id in &ids {
        let d = app.service.describe(c, id).await?;
        for t in d
            .meta
            .tags
            .iter()
            .filter(|t| keys.is_empty() || keys.contains(&t.key))
        {
            list.push(shapes::TagResource {
                resource_id: d.meta.name.clone(),
                resource_type: "secret",
                tag_key: t.key.clone(),
                tag_value: t.value.clone(),
            });
        }
    }
    reply(
        id,
        shapes::TagResources {
            tag_resources: shapes::TagResourceList { list },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_intervals_are_read_in_days_hours_or_seconds() {
        assert_eq!(interval_days("7d").unwrap(), 7);
        assert_eq!(interval_days("604800s").unwrap(), 7);
        assert_eq!(interval_days("36h").unwrap(), 2);
        assert!(interval_days("1h").is_err());
        assert!(interval_days("400d").is_err());
        assert!(interval_days("7w").is_err());
        assert!(interval_days("").is_err());
    }

    #[test]
    fn labels_are_shown_with_alibabas_names_and_read_with_either() {
        assert_eq!(stage_out("AWSCURRENT"), "ACSCurrent");
        assert_eq!(stage_out("AWSPREVIOUS"), "ACSPrevious");
        assert_eq!(stage_out("MyPendingLabel"), "MyPendingLabel");
        assert_eq!(stage_in("ACSCurrent"), "AWSCURRENT");
        assert_eq!(stage_in("MyPendingLabel"), "MyPendingLabel");
    }

    #[test]
    fn names_follow_alibabas_rules_on_this_api() {
        assert!(check_name("mydbconninfo").is_ok());
        assert!(check_name("acs/ram/user").is_err());
        assert!(check_name(&"a".repeat(193)).is_err());
        assert!(check_name("a b").is_err());
    }
}
