//! The operations of Alibaba's KMS Secrets Manager API, each a translation onto the
//! [`SecretService`] (and [`Rotations`]) that the AWS and native APIs use.

use super::AcsError;
use super::params::Params;
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
use serde_json::{Value, json};

type Answer = Result<Value, AcsError>;

/// Runs operation `op` (one of [`super::OPERATIONS`]).
pub(super) async fn dispatch(app: &App, c: &Caller, op: &str, p: &Params, region: &str) -> Answer {
    match op {
        "CreateSecret" => create_secret(app, c, p, region).await,
        "GetSecretValue" => get_secret_value(app, c, p).await,
        "PutSecretValue" => put_secret_value(app, c, p).await,
        "UpdateSecretVersionStage" => update_secret_version_stage(app, c, p).await,
        "ListSecretVersionIds" => list_secret_version_ids(app, c, p).await,
        "DescribeSecret" => describe_secret(app, c, p).await,
        "ListSecrets" => list_secrets(app, c, p).await,
        "UpdateSecret" => update_secret(app, c, p).await,
        "DeleteSecret" => delete_secret(app, c, p).await,
        "RestoreSecret" => restore_secret(app, c, p).await,
        "GetRandomPassword" => get_random_password(app, p),
        "RotateSecret" => rotate_secret(app, c, p).await,
        "UpdateSecretRotationPolicy" => update_rotation_policy(app, c, p).await,
        "TagResource" => tag_resource(app, c, p).await,
        "UntagResource" => untag_resource(app, c, p).await,
        "ListTagResources" => list_tag_resources(app, c, p).await,
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
    let items: Vec<Value> = serde_json::from_str(text).map_err(|_| {
        AcsError::invalid("Tags must be a JSON array of {\"TagKey\", \"TagValue\"}")
    })?;
    if items.len() > 20 {
        return Err(AcsError::invalid("A secret can have at most 20 tags"));
    }
    items
        .iter()
        .map(|t| match (t["TagKey"].as_str(), t["TagValue"].as_str()) {
            (Some(k), _) if k.starts_with("aliyun") || k.starts_with("acs:") => Err(
                AcsError::invalid(format!("The tag key {k:?} is reserved (aliyun…, acs:…)")),
            ),
            (Some(k), v) if k.chars().count() <= 128 && v.unwrap_or("").chars().count() <= 128 => {
                Ok(Tag {
                    key: k.to_string(),
                    value: v.unwrap_or("").to_string(),
                })
            }
            (Some(_), _) => Err(AcsError::invalid(
                "Tag keys and values are at most 128 characters",
            )),
            _ => Err(AcsError::invalid("Each tag needs a TagKey")),
        })
        .collect()
}

fn tags_out(tags: &[Tag]) -> Value {
    let list: Vec<Value> = tags
        .iter()
        .map(|t| json!({"TagKey": t.key, "TagValue": t.value}))
        .collect();
    json!({ "Tag": list })
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

fn stages_out(labels: &[String]) -> Value {
    let list: Vec<String> = labels.iter().map(|l| stage_out(l)).collect();
    json!({ "VersionStage": list })
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

fn rotation_out(meta: &SecretMeta, out: &mut serde_json::Map<String, Value>) {
    let r = &meta.rotation;
    out.insert(
        "AutomaticRotation".into(),
        json!(if r.enabled { "Enabled" } else { "Disabled" }),
    );
    if let Some(t) = r.last_rotated {
        out.insert("LastRotationDate".into(), json!(time(t)));
    }
    if let Some(t) = r.next_rotation.filter(|_| r.enabled) {
        out.insert("NextRotationDate".into(), json!(time(t)));
    }
    if let Some(days) = r
        .rules
        .as_deref()
        .and_then(|j| serde_json::from_str::<RotationRules>(j).ok())
        .and_then(|rules| rules.automatically_after_days)
    {
        out.insert(
            "RotationInterval".into(),
            json!(format!("{}s", days * 86_400)),
        );
    }
}

// ---- the operations ----

async fn create_secret(app: &App, c: &Caller, p: &Params, region: &str) -> Answer {
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
    Ok(json!({
        "Arn": arn(region, app.service.account_id(), &created.name),
        "SecretName": created.name,
        "VersionId": created.version_id,
        "SecretType": "Generic",
    }))
}

async fn get_secret_value(app: &App, c: &Caller, p: &Params) -> Answer {
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
        SecretValue::String(s) => (s.expose_secret().to_string(), "text"),
        SecretValue::Binary(b) => (B64.encode(b.expose_secret()), "binary"),
    };
    let mut out = json!({
        "SecretName": v.name,
        "VersionId": v.version_id,
        "CreateTime": time(v.created),
        "SecretData": data,
        "SecretDataType": kind,
        "VersionStages": stages_out(&v.stages),
        "SecretType": "Generic",
    });
    if flag(p, "FetchExtendedConfig")? == Some(true) {
        let d = app.service.describe(c, name).await?;
        if let Value::Object(map) = &mut out {
            rotation_out(&d.meta, map);
            map.insert("ExtendedConfig".into(), json!(""));
        }
    }
    Ok(out)
}

async fn put_secret_value(app: &App, c: &Caller, p: &Params) -> Answer {
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
    Ok(json!({
        "SecretName": put.name,
        "VersionId": put.version_id,
        "VersionStages": stages_out(&put.stages),
    }))
}

async fn update_secret_version_stage(app: &App, c: &Caller, p: &Params) -> Answer {
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
    Ok(json!({ "SecretName": name }))
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

async fn list_secret_version_ids(app: &App, c: &Caller, p: &Params) -> Answer {
    let name = secret_name(p)?;
    let deprecated = flag(p, "IncludeDeprecated")?.unwrap_or(false);
    let (number, size) = paging(p, 10)?;
    let (record, versions) = app.service.list_versions(c, name, deprecated).await?;
    let total = versions.len();
    let list: Vec<Value> = page_of(versions, number, size)
        .iter()
        .map(|v| {
            json!({
                "VersionId": v.id,
                "CreateTime": time(v.created),
                "VersionStages": stages_out(&v.labels),
            })
        })
        .collect();
    Ok(json!({
        "SecretName": record.meta.name,
        "TotalCount": total,
        "PageNumber": number,
        "PageSize": size,
        "VersionIds": { "VersionId": list },
    }))
}

fn describe_out(app: &App, meta: &SecretMeta, tags: bool) -> Value {
    let mut out = serde_json::Map::new();
    let region = meta.arn.split(':').nth(3).unwrap_or(&app.default_region);
    out.insert(
        "Arn".into(),
        json!(arn(region, app.service.account_id(), &meta.name)),
    );
    out.insert("SecretName".into(), json!(meta.name));
    out.insert("SecretType".into(), json!("Generic"));
    if let Some(d) = &meta.description {
        out.insert("Description".into(), json!(d));
    }
    out.insert(
        "EncryptionKeyId".into(),
        json!(meta.kms_key_id.as_deref().unwrap_or("")),
    );
    out.insert("CreateTime".into(), json!(time(meta.created)));
    out.insert("UpdateTime".into(), json!(time(meta.last_changed)));
    if let Some(d) = meta.deletion_date {
        out.insert("PlannedDeleteTime".into(), json!(time(d)));
    }
    rotation_out(meta, &mut out);
    if tags {
        out.insert("Tags".into(), tags_out(&meta.tags));
    }
    Value::Object(out)
}

async fn describe_secret(app: &App, c: &Caller, p: &Params) -> Answer {
    let name = secret_name(p)?;
    let d = app.service.describe(c, name).await?;
    let tags = flag(p, "FetchTags")?.unwrap_or(false);
    Ok(describe_out(app, &d.meta, tags))
}

/// `Filters`: `[{"Key": "SecretName", "Values": ["a", "b"]}]`, keys `SecretName`,
/// `Description`, `TagKey`, `TagValue` (each value a prefix, as AWS's filters).
fn filters_of(p: &Params) -> Result<Vec<Filter>, AcsError> {
    let Some(text) = p.get("Filters").filter(|t| !t.is_empty()) else {
        return Ok(Vec::new());
    };
    let items: Vec<Value> = serde_json::from_str(text)
        .map_err(|_| AcsError::invalid("Filters must be a JSON array of {\"Key\", \"Values\"}"))?;
    items
        .iter()
        .map(|f| {
            let key = match f["Key"].as_str().unwrap_or("") {
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
            let values: Vec<String> = f["Values"]
                .as_array()
                .map(|v| v.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            Filter::new(key, values).map_err(AcsError::from)
        })
        .collect()
}

async fn list_secrets(app: &App, c: &Caller, p: &Params) -> Answer {
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
    let list: Vec<Value> = page_of(all, number, size)
        .iter()
        .map(|s| describe_out(app, &s.meta, tags))
        .collect();
    Ok(json!({
        "PageNumber": number,
        "PageSize": size,
        "TotalCount": total,
        "SecretList": { "Secret": list },
    }))
}

async fn update_secret(app: &App, c: &Caller, p: &Params) -> Answer {
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
    Ok(json!({ "SecretName": name }))
}

async fn delete_secret(app: &App, c: &Caller, p: &Params) -> Answer {
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
    Ok(json!({ "SecretName": d.name, "PlannedDeleteTime": time(d.deletion_date) }))
}

async fn restore_secret(app: &App, c: &Caller, p: &Params) -> Answer {
    let name = secret_name(p)?;
    let (_, name) = app.service.restore(c, name).await?;
    Ok(json!({ "SecretName": name }))
}

fn get_random_password(app: &App, p: &Params) -> Answer {
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
    Ok(json!({ "RandomPassword": app.service.random_password(&spec)? }))
}

async fn rotate_secret(app: &App, c: &Caller, p: &Params) -> Answer {
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
    Ok(json!({
        "Arn": arn(&region, app.service.account_id(), &done.name),
        "SecretName": done.name,
        "VersionId": done.version_id,
    }))
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

async fn update_rotation_policy(app: &App, c: &Caller, p: &Params) -> Answer {
    let name = secret_name(p)?;
    let enable = flag(p, "EnableAutomaticRotation")?
        .ok_or_else(|| AcsError::missing("EnableAutomaticRotation"))?;
    if enable {
        set_rotation_policy(app, c, name, p).await?;
    } else {
        app.rotations.cancel(c, name).await?;
    }
    Ok(json!({ "SecretName": name }))
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

async fn tag_resource(app: &App, c: &Caller, p: &Params) -> Answer {
    only_secrets(p)?;
    let name = secret_name(p)?;
    let tags = tags_of(p)?;
    if tags.is_empty() {
        return Err(AcsError::missing("Tags"));
    }
    app.service.tag(c, name, tags).await?;
    Ok(json!({}))
}

async fn untag_resource(app: &App, c: &Caller, p: &Params) -> Answer {
    only_secrets(p)?;
    let name = secret_name(p)?;
    let keys = list_of(required(p, "TagKeys")?)?;
    app.service.untag(c, name, keys).await?;
    Ok(json!({}))
}

/// `ListTagResources` for secrets: `ResourceType` `secret`, the secrets as
/// `ResourceId.N`, optionally only the tags `Tag.N.Key` names.
async fn list_tag_resources(app: &App, c: &Caller, p: &Params) -> Answer {
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
            list.push(json!({
                "ResourceId": d.meta.name,
                "ResourceType": "secret",
                "TagKey": t.key,
                "TagValue": t.value,
            }));
        }
    }
    Ok(json!({ "TagResources": { "TagResource": list } }))
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
