//! The native `/v1` API: the same operations as the AWS API, as REST resources with
//! bearer tokens. Secret names may contain `/`; clients percent-encode them
//! (`/v1/secrets/%2Fdba%2Fmongo%2Fpassword`), though unencoded slashes work too.
//! Labels accept the aliases `current`, `previous`, `pending`, `ACSCurrent` and
//! `ACSPrevious`. The routes are described by `/v1/openapi.json`.
//!
//! Rotation has its own resources beside the secret's, since a name may end in
//! anything (`/app/rotation` is a valid secret name): `/v1/rotation/NAME` (the
//! configuration and latest rotation; `PUT` configures it), `/v1/rotation-history/NAME`,
//! `/v1/cancel-rotation/NAME` and `/v1/rotate/NAME` (rotate now).

use crate::App;
use crate::audit::AuditNote;
use crate::error::NativeError;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use rotor_core::label::resolve_alias;
use rotor_core::model::{RotationRecord, SecretMeta, Tag};
use rotor_core::password::PasswordSpec;
use rotor_core::schedule::RotationRules;
use rotor_core::value::SecretValue;
use rotor_engine::rotation::{RotateRequest, Rotated, RotationView};
use rotor_engine::{Caller, CreateSecret, ListSecrets, PutValue, SortOrder};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

type Result<T> = std::result::Result<T, NativeError>;

/// A JSON body, or a typed 400 saying what is wrong with it.
fn body<T>(b: std::result::Result<Json<T>, JsonRejection>) -> Result<T> {
    b.map(|Json(v)| v)
        .map_err(|e| NativeError::bad_request(e.body_text()))
}

/// An optional JSON body: none when the request has no `Content-Type`.
fn optional_body<T: Default>(b: std::result::Result<Option<Json<T>>, JsonRejection>) -> Result<T> {
    b.map(|b| b.map(|Json(v)| v).unwrap_or_default())
        .map_err(|e| NativeError::bad_request(e.body_text()))
}

/// Query parameters, or a typed 400 saying what is wrong with them.
fn query<T>(q: std::result::Result<Query<T>, QueryRejection>) -> Result<T> {
    q.map(|Query(v)| v)
        .map_err(|e| NativeError::bad_request(e.body_text()))
}

/// The operations of [`router`]'s routes.
pub(crate) const OPERATIONS: crate::auth::Operations = &[
    ("POST", "/v1/secrets", "CreateSecret"),
    ("GET", "/v1/secrets", "ListSecrets"),
    ("GET", "/v1/secrets/{*name}", "GetSecretValue"),
    ("PUT", "/v1/secrets/{*name}", "PutSecretValue"),
    ("DELETE", "/v1/secrets/{*name}", "DeleteSecret"),
    ("GET", "/v1/metadata/{*name}", "DescribeSecret"),
    ("PATCH", "/v1/metadata/{*name}", "UpdateSecret"),
    ("POST", "/v1/restore/{*name}", "RestoreSecret"),
    ("GET", "/v1/versions/{*name}", "ListSecretVersionIds"),
    ("POST", "/v1/stages/{*name}", "UpdateSecretVersionStage"),
    ("POST", "/v1/tags/{*name}", "TagResource"),
    ("DELETE", "/v1/tags/{*name}", "UntagResource"),
    ("GET", "/v1/rotation/{*name}", "DescribeRotation"),
    ("PUT", "/v1/rotation/{*name}", "RotateSecret"),
    ("GET", "/v1/rotation-history/{*name}", "ListRotations"),
    ("POST", "/v1/cancel-rotation/{*name}", "CancelRotateSecret"),
    ("POST", "/v1/rotate/{*name}", "RotateSecret"),
    ("POST", "/v1/password", "GetRandomPassword"),
];

/// The `/v1` secret routes (authenticated) over the shared state.
pub fn router(app: Arc<App>) -> Router<Arc<App>> {
    let routes = Router::new()
        .route("/v1/secrets", post(create).get(list))
        .route(
            "/v1/secrets/{*name}",
            get(get_value).put(put_value).delete(delete),
        )
        .route("/v1/metadata/{*name}", get(describe).patch(update_meta))
        .route("/v1/restore/{*name}", post(restore))
        .route("/v1/versions/{*name}", get(versions))
        .route("/v1/stages/{*name}", post(move_stage))
        .route("/v1/tags/{*name}", post(tag).delete(untag))
        .route("/v1/rotation/{*name}", get(rotation).put(set_rotation))
        .route("/v1/rotation-history/{*name}", get(rotation_history))
        .route("/v1/cancel-rotation/{*name}", post(cancel_rotation))
        .route("/v1/rotate/{*name}", post(rotate))
        .route("/v1/password", post(password));
    crate::auth::guard(routes, app, OPERATIONS)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn value_in(
    value: Option<SecretString>,
    value_base64: Option<String>,
) -> Result<Option<SecretValue>> {
    match (value, value_base64) {
        (Some(_), Some(_)) => Err(NativeError::bad_request(
            "Give either value or value_base64, not both",
        )),
        (Some(v), None) => Ok(Some(SecretValue::from_secret_string(v)?)),
        (None, Some(b)) => {
            let bytes = B64
                .decode(b)
                .map_err(|_| NativeError::bad_request("value_base64 is not valid base64"))?;
            Ok(Some(SecretValue::binary(bytes)?))
        }
        (None, None) => Ok(None),
    }
}

fn tags_in(tags: BTreeMap<String, String>) -> Vec<Tag> {
    tags.into_iter()
        .map(|(key, value)| Tag { key, value })
        .collect()
}

fn describe_json(meta: &SecretMeta, stages: &[(String, Vec<String>)]) -> Value {
    let tags: Map<String, Value> = meta
        .tags
        .iter()
        .map(|t| (t.key.clone(), json!(t.value)))
        .collect();
    let versions: Map<String, Value> = stages
        .iter()
        .map(|(id, l)| (id.clone(), json!(l)))
        .collect();
    json!({
        "name": meta.name,
        "arn": meta.arn,
        "description": meta.description,
        "kms_key_id": meta.kms_key_id,
        "tags": tags,
        "created": rfc3339(meta.created),
        "last_changed": rfc3339(meta.last_changed),
        "deletion_date": meta.deletion_date.map(rfc3339),
        "versions": versions,
    })
}

#[derive(Deserialize)]
struct CreateIn {
    name: String,
    value: Option<SecretString>,
    value_base64: Option<String>,
    description: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    version_id: Option<String>,
    region: Option<String>,
}

async fn create(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    req: std::result::Result<Json<CreateIn>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let req = body(req)?;
    let note = AuditNote {
        secret: Some(req.name.clone()),
        sensitive: req
            .description
            .iter()
            .map(|d| ("description", d.clone()))
            .chain(req.tags.iter().map(|(k, v)| ("tag", format!("{k}={v}"))))
            .collect(),
    };
    let created = app
        .service
        .create(
            &caller,
            CreateSecret {
                name: req.name,
                region: req.region.unwrap_or_else(|| app.default_region.clone()),
                token: req.version_id,
                description: req.description,
                kms_key_id: None,
                value: value_in(req.value, req.value_base64)?,
                tags: tags_in(req.tags),
            },
        )
        .await?;
    let mut resp = (
        StatusCode::CREATED,
        Json(json!({"name": created.name, "arn": created.arn, "version_id": created.version_id})),
    )
        .into_response();
    resp.extensions_mut().insert(note);
    Ok(resp)
}

#[derive(Deserialize)]
struct ListIn {
    prefix: Option<String>,
    #[serde(default)]
    include_deleted: bool,
    max_results: Option<i64>,
    next_token: Option<String>,
    #[serde(default)]
    desc: bool,
}

async fn list(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    q: std::result::Result<Query<ListIn>, QueryRejection>,
) -> Result<Json<Value>> {
    let q = query(q)?;
    let all = app
        .service
        .list(
            &caller,
            &ListSecrets {
                include_planned_deletion: q.include_deleted,
                sort_order: if q.desc {
                    SortOrder::Desc
                } else {
                    SortOrder::Asc
                },
                ..Default::default()
            },
        )
        .await?;
    let all: Vec<_> = all
        .into_iter()
        .filter(|s| {
            q.prefix
                .as_deref()
                .is_none_or(|p| s.meta.name.starts_with(p))
        })
        .collect();
    let (page, next) = crate::pagination::page(all, q.max_results, q.next_token.as_deref(), 1000)?;
    let secrets: Vec<Value> = page
        .iter()
        .map(|s| describe_json(&s.meta, &s.stages))
        .collect();
    Ok(Json(json!({"secrets": secrets, "next_token": next})))
}

#[derive(Deserialize)]
struct GetIn {
    version_id: Option<String>,
    stage: Option<String>,
}

/// A value as the native API returns it: built straight from the service's answer,
/// without an intermediate JSON tree.
#[derive(serde::Serialize)]
struct ValueOut<'a> {
    name: &'a str,
    arn: &'a str,
    version_id: &'a str,
    stages: &'a [String],
    created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
}

async fn get_value(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: std::result::Result<Query<GetIn>, QueryRejection>,
) -> Result<Response> {
    let q = query(q)?;
    let stage = q.stage.as_deref().map(resolve_alias);
    let v = app
        .service
        .get_value(&caller, &name, q.version_id.as_deref(), stage)
        .await?;
    let (value, value_base64) = match &v.value {
        SecretValue::String(s) => (Some(s.expose_secret()), None),
        SecretValue::Binary(b) => (None, Some(B64.encode(b.expose_secret()))),
    };
    let out = ValueOut {
        name: &v.name,
        arn: &v.arn,
        version_id: &v.version_id,
        stages: &v.stages,
        created: rfc3339(v.created),
        value,
        value_base64,
    };
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
struct PutIn {
    value: Option<SecretString>,
    value_base64: Option<String>,
    version_id: Option<String>,
    stages: Option<Vec<String>>,
}

async fn put_value(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    req: std::result::Result<Json<PutIn>, JsonRejection>,
) -> Result<Json<Value>> {
    let req = body(req)?;
    let value = value_in(req.value, req.value_base64)?
        .ok_or_else(|| NativeError::bad_request("Give a value (value or value_base64)"))?;
    let stages = req
        .stages
        .map(|s| s.iter().map(|l| resolve_alias(l).to_string()).collect());
    let put = app
        .service
        .put_value(
            &caller,
            PutValue {
                secret_id: name,
                token: req.version_id,
                value,
                stages,
            },
        )
        .await?;
    Ok(Json(
        json!({"name": put.name, "arn": put.arn, "version_id": put.version_id, "stages": put.stages}),
    ))
}

#[derive(Deserialize)]
struct DeleteIn {
    recovery_window_days: Option<i64>,
    #[serde(default)]
    force: bool,
}

async fn delete(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: std::result::Result<Query<DeleteIn>, QueryRejection>,
) -> Result<Json<Value>> {
    let q = query(q)?;
    let d = app
        .service
        .delete(&caller, &name, q.recovery_window_days, q.force)
        .await?;
    Ok(Json(
        json!({"name": d.name, "arn": d.arn, "deletion_date": rfc3339(d.deletion_date)}),
    ))
}

async fn describe(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let d = app.service.describe(&caller, &name).await?;
    Ok(Json(describe_json(&d.meta, &d.versions_to_stages)))
}

#[derive(Deserialize)]
struct UpdateIn {
    description: Option<String>,
}

async fn update_meta(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    req: std::result::Result<Json<UpdateIn>, JsonRejection>,
) -> Result<Json<Value>> {
    let req = body(req)?;
    let (arn, name, _) = app
        .service
        .update(&caller, &name, None, req.description, None, None)
        .await?;
    Ok(Json(json!({"name": name, "arn": arn})))
}

async fn restore(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let (arn, name) = app.service.restore(&caller, &name).await?;
    Ok(Json(json!({"name": name, "arn": arn})))
}

#[derive(Deserialize)]
struct VersionsIn {
    #[serde(default)]
    include_deprecated: bool,
}

async fn versions(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: std::result::Result<Query<VersionsIn>, QueryRejection>,
) -> Result<Json<Value>> {
    let q = query(q)?;
    let (record, versions) = app
        .service
        .list_versions(&caller, &name, q.include_deprecated)
        .await?;
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"version_id": v.id, "stages": v.labels, "created": rfc3339(v.created)}))
        .collect();
    Ok(Json(
        json!({"name": record.meta.name, "arn": record.meta.arn, "versions": versions}),
    ))
}

#[derive(Deserialize)]
struct StageIn {
    stage: String,
    move_to: Option<String>,
    remove_from: Option<String>,
}

async fn move_stage(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    req: std::result::Result<Json<StageIn>, JsonRejection>,
) -> Result<Json<Value>> {
    let req = body(req)?;
    let (arn, name) = app
        .service
        .update_stage(
            &caller,
            &name,
            resolve_alias(&req.stage),
            req.move_to,
            req.remove_from,
        )
        .await?;
    Ok(Json(json!({"name": name, "arn": arn})))
}

#[derive(Deserialize)]
struct TagIn {
    tags: BTreeMap<String, String>,
}

async fn tag(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    req: std::result::Result<Json<TagIn>, JsonRejection>,
) -> Result<Json<Value>> {
    let req = body(req)?;
    app.service.tag(&caller, &name, tags_in(req.tags)).await?;
    describe(State(app), Extension(caller), Path(name)).await
}

#[derive(Deserialize)]
struct UntagIn {
    keys: String,
}

async fn untag(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: std::result::Result<Query<UntagIn>, QueryRejection>,
) -> Result<Json<Value>> {
    let q = query(q)?;
    let keys = q
        .keys
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    app.service.untag(&caller, &name, keys).await?;
    describe(State(app), Extension(caller), Path(name)).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PasswordIn {
    length: Option<usize>,
    exclude_characters: Option<String>,
    exclude_numbers: bool,
    exclude_punctuation: bool,
    exclude_uppercase: bool,
    exclude_lowercase: bool,
    include_space: bool,
    require_each_included_type: Option<bool>,
}

async fn password(
    State(app): State<Arc<App>>,
    req: std::result::Result<Json<PasswordIn>, JsonRejection>,
) -> Result<Json<Value>> {
    let req = body(req)?;
    let spec = PasswordSpec {
        length: req.length.unwrap_or(32),
        exclude_characters: req.exclude_characters.unwrap_or_default(),
        exclude_numbers: req.exclude_numbers,
        exclude_punctuation: req.exclude_punctuation,
        exclude_uppercase: req.exclude_uppercase,
        exclude_lowercase: req.exclude_lowercase,
        include_space: req.include_space,
        require_each_included_type: req.require_each_included_type.unwrap_or(true),
    };
    Ok(Json(
        json!({"password": app.service.random_password(&spec)?}),
    ))
}

/// How a rotation is shown: by the version it creates, never by a value.
fn rotation_json(r: &RotationRecord) -> Value {
    let steps: Vec<Value> = r
        .steps
        .iter()
        .map(|s| json!({"step": s.step, "attempt": s.attempt, "started": rfc3339(s.started), "millis": s.millis}))
        .collect();
    json!({
        "version_id": r.token,
        "rotator": r.rotator,
        "status": r.status.as_str(),
        "step": r.step.as_str(),
        "attempt": r.attempt,
        "started": rfc3339(r.started),
        "updated": rfc3339(r.updated),
        "finished": r.finished.map(rfc3339),
        "resume_at": r.resume_at.map(rfc3339),
        "error": r.error,
        "steps": steps,
    })
}

fn rotation_view_json(v: &RotationView) -> Value {
    let m = &v.meta;
    // Stored rules were validated when set; an unreadable one shows as its text.
    let rules = m
        .rules
        .as_deref()
        .map(|r| serde_json::from_str::<Value>(r).unwrap_or_else(|_| json!(r)));
    json!({
        "name": v.name,
        "arn": v.arn,
        "enabled": m.enabled,
        "rotator": m.rotator,
        "rules": rules,
        "last_rotated": m.last_rotated.map(rfc3339),
        "next_rotation": m.next_rotation.filter(|_| m.enabled).map(rfc3339),
        "failed": m.failed,
        "principal": m.principal,
        "latest": v.latest.as_ref().map(rotation_json),
    })
}

fn rotated_json(r: Rotated) -> Json<Value> {
    Json(json!({"name": r.name, "arn": r.arn, "version_id": r.version_id}))
}

async fn rotation(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let view = app.rotations.view(&caller, &name).await?;
    Ok(Json(rotation_view_json(&view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotationIn {
    /// A rotator's name, or a Lambda ARN naming one.
    rotator: Option<String>,
    rules: Option<RotationRules>,
    /// Unlike the AWS API, configuring rotation here does not rotate unless asked.
    #[serde(default)]
    rotate_immediately: bool,
    /// The new version's id (`ClientRequestToken`).
    version_id: Option<String>,
}

async fn set_rotation(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    req: std::result::Result<Json<RotationIn>, JsonRejection>,
) -> Result<Json<Value>> {
    let req = body(req)?;
    let done = app
        .rotations
        .rotate_secret(
            &caller,
            RotateRequest {
                secret_id: name,
                token: req.version_id,
                rotator: req.rotator,
                rules: req.rules,
                rotate_immediately: Some(req.rotate_immediately),
            },
        )
        .await?;
    Ok(rotated_json(done))
}

#[derive(Deserialize)]
struct HistoryIn {
    limit: Option<i64>,
}

async fn rotation_history(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: std::result::Result<Query<HistoryIn>, QueryRejection>,
) -> Result<Json<Value>> {
    let q = query(q)?;
    let all = app
        .rotations
        .history(&caller, &name, q.limit.unwrap_or(20))
        .await?;
    let rotations: Vec<Value> = all.iter().map(rotation_json).collect();
    Ok(Json(json!({"rotations": rotations})))
}

async fn cancel_rotation(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    Ok(rotated_json(app.rotations.cancel(&caller, &name).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateIn {
    /// The new version's id (`ClientRequestToken`).
    version_id: Option<String>,
}

async fn rotate(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    req: std::result::Result<Option<Json<RotateIn>>, JsonRejection>,
) -> Result<Json<Value>> {
    let req = optional_body(req)?;
    let done = app
        .rotations
        .rotate_secret(
            &caller,
            RotateRequest {
                secret_id: name,
                token: req.version_id,
                rotate_immediately: Some(true),
                ..Default::default()
            },
        )
        .await?;
    Ok(rotated_json(done))
}
