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
use crate::auth::Routes;
use crate::error::NativeError;
use crate::extract::{Body, OptionalBody, Params};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rotor_api::rotation as rot;
use rotor_api::secrets as api;
use rotor_api::{Sensitive, Timestamp};
use rotor_core::label::resolve_alias;
use rotor_core::model::{RotationRecord, SecretMeta, Tag};
use rotor_core::password::PasswordSpec;
use rotor_core::value::SecretValue;
use rotor_engine::rotation::{RotateRequest, Rotated, RotationView};
use rotor_engine::{Caller, CreateSecret, ListSecrets, PutValue, SortOrder};
use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::sync::Arc;

type Result<T> = std::result::Result<T, NativeError>;

/// The secret and rotation routes.
pub(crate) fn routes() -> Routes {
    Routes::new()
        .at::<api::CreateSecret, _, _>(create)
        .at::<api::ListSecrets, _, _>(list)
        .at::<api::GetSecretValue, _, _>(get_value)
        .at::<api::PutSecretValue, _, _>(put_value)
        .at::<api::DeleteSecret, _, _>(delete)
        .at::<api::DescribeSecret, _, _>(describe)
        .at::<api::UpdateSecret, _, _>(update_meta)
        .at::<api::RestoreSecret, _, _>(restore)
        .at::<api::ListSecretVersionIds, _, _>(versions)
        .at::<api::UpdateSecretVersionStage, _, _>(move_stage)
        .at::<api::TagResource, _, _>(tag)
        .at::<api::UntagResource, _, _>(untag)
        .at::<api::GetRandomPassword, _, _>(password)
        .at::<rot::DescribeRotation, _, _>(rotation)
        .at::<rot::ConfigureRotation, _, _>(set_rotation)
        .at::<rot::RotationHealth, _, _>(rotation_health)
        .at::<rot::RetirePrevious, _, _>(retire_previous)
        .at::<rot::ListRotations, _, _>(rotation_history)
        .at::<rot::CancelRotateSecret, _, _>(cancel_rotation)
        .at::<rot::RotateSecret, _, _>(rotate)
}

fn value_in(value: Option<Sensitive>, value_base64: Option<String>) -> Result<Option<SecretValue>> {
    match (value, value_base64) {
        (Some(_), Some(_)) => Err(NativeError::bad_request(
            "Give either value or value_base64, not both",
        )),
        (Some(v), None) => Ok(Some(SecretValue::from_secret_string(v.into_secret())?)),
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

fn description(meta: &SecretMeta, stages: &[(String, Vec<String>)]) -> api::Description {
    api::Description {
        name: meta.name.clone(),
        arn: meta.arn.clone(),
        description: meta.description.clone(),
        kms_key_id: meta.kms_key_id.clone(),
        tags: meta
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect(),
        created: meta.created.into(),
        last_changed: meta.last_changed.into(),
        deletion_date: meta.deletion_date.map(Timestamp),
        versions: stages.iter().cloned().collect(),
    }
}

async fn create(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Body(req): Body<api::NewSecret>,
) -> Result<Response> {
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
    let out = api::Created {
        name: created.name,
        arn: created.arn,
        version_id: created.version_id,
    };
    let mut resp = (StatusCode::CREATED, Json(out)).into_response();
    resp.extensions_mut().insert(note);
    Ok(resp)
}

async fn list(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Params(q): Params<api::ListQuery>,
) -> Result<Json<api::SecretList>> {
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
                prefix: q.prefix.clone(),
                ..Default::default()
            },
        )
        .await?;
    let (page, next) = crate::pagination::page(all, q.max_results, q.next_token.as_deref(), 1000)?;
    Ok(Json(api::SecretList {
        secrets: page
            .iter()
            .map(|s| description(&s.meta, &s.stages))
            .collect(),
        next_token: next,
    }))
}

async fn get_value(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Params(q): Params<api::GetQuery>,
) -> Result<Json<api::Value>> {
    let stage = q.stage.as_deref().map(resolve_alias);
    let v = app
        .service
        .get_value(&caller, &name, q.version_id.as_deref(), stage)
        .await?;
    let (value, value_base64) = match &v.value {
        SecretValue::String(s) => (Some(Sensitive::from(s.clone())), None),
        SecretValue::Binary(b) => (None, Some(B64.encode(b.expose_secret()))),
    };
    Ok(Json(api::Value {
        name: v.name,
        arn: v.arn,
        version_id: v.version_id,
        stages: v.stages,
        created: v.created.into(),
        value,
        value_base64,
    }))
}

async fn put_value(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Body(req): Body<api::NewValue>,
) -> Result<Json<api::Put>> {
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
    Ok(Json(api::Put {
        name: put.name,
        arn: put.arn,
        version_id: put.version_id,
        stages: put.stages,
    }))
}

async fn delete(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Params(q): Params<api::DeleteQuery>,
) -> Result<Json<api::Deletion>> {
    let d = app
        .service
        .delete(&caller, &name, q.recovery_window_days, q.force)
        .await?;
    Ok(Json(api::Deletion {
        name: d.name,
        arn: d.arn,
        deletion_date: d.deletion_date.into(),
    }))
}

async fn describe(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<api::Description>> {
    let d = app.service.describe(&caller, &name).await?;
    Ok(Json(description(&d.meta, &d.versions_to_stages)))
}

async fn update_meta(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Body(req): Body<api::MetadataUpdate>,
) -> Result<Json<api::NameArn>> {
    let (arn, name, _) = app
        .service
        .update(&caller, &name, None, req.description, None, None)
        .await?;
    Ok(Json(api::NameArn { name, arn }))
}

async fn restore(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<api::NameArn>> {
    let (arn, name) = app.service.restore(&caller, &name).await?;
    Ok(Json(api::NameArn { name, arn }))
}

async fn versions(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Params(q): Params<api::VersionsQuery>,
) -> Result<Json<api::VersionList>> {
    let (record, versions) = app
        .service
        .list_versions(&caller, &name, q.include_deprecated)
        .await?;
    Ok(Json(api::VersionList {
        name: record.meta.name.clone(),
        arn: record.meta.arn.clone(),
        versions: versions
            .into_iter()
            .map(|v| api::Version {
                version_id: v.id,
                stages: v.labels,
                created: v.created.into(),
            })
            .collect(),
    }))
}

async fn move_stage(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Body(req): Body<api::StageMove>,
) -> Result<Json<api::NameArn>> {
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
    Ok(Json(api::NameArn { name, arn }))
}

async fn tag(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Body(req): Body<api::Tags>,
) -> Result<Json<api::Description>> {
    app.service.tag(&caller, &name, tags_in(req.tags)).await?;
    describe(State(app), Extension(caller), Path(name)).await
}

async fn untag(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Params(q): Params<api::UntagQuery>,
) -> Result<Json<api::Description>> {
    let keys = q
        .keys
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    app.service.untag(&caller, &name, keys).await?;
    describe(State(app), Extension(caller), Path(name)).await
}

async fn password(
    State(app): State<Arc<App>>,
    OptionalBody(req): OptionalBody<api::PasswordSpec>,
) -> Result<Json<api::Password>> {
    let spec = PasswordSpec {
        length: req.length.map_or(32, |n| n as usize),
        exclude_characters: req.exclude_characters.unwrap_or_default(),
        exclude_numbers: req.exclude_numbers,
        exclude_punctuation: req.exclude_punctuation,
        exclude_uppercase: req.exclude_uppercase,
        exclude_lowercase: req.exclude_lowercase,
        include_space: req.include_space,
        require_each_included_type: req.require_each_included_type.unwrap_or(true),
    };
    Ok(Json(api::Password {
        password: Sensitive::new(app.service.random_password(&spec)?),
    }))
}

/// How a rotation is shown: by the version it creates, never by a value.
fn rotation_out(r: &RotationRecord) -> rot::Rotation {
    rot::Rotation {
        version_id: r.token.clone(),
        rotator: r.rotator.clone(),
        status: r.status.as_str().into(),
        step: r.step.as_str().into(),
        attempt: r.attempt,
        started: r.started.into(),
        updated: r.updated.into(),
        finished: r.finished.map(Timestamp),
        resume_at: r.resume_at.map(Timestamp),
        error: r.error.clone(),
        steps: r
            .steps
            .iter()
            .map(|s| rot::StepRun {
                step: s.step.clone(),
                attempt: s.attempt,
                started: s.started.into(),
                millis: s.millis,
            })
            .collect(),
        gates: r
            .gates
            .iter()
            .map(|g| rot::Gate {
                step: g.step.clone(),
                version_id: g.version.clone(),
                attempt: g.attempt,
                started: g.started.into(),
                waiting_for: g.waiting_for.clone(),
                passed: g.passed.map(Timestamp),
                outcome: g.outcome.clone(),
            })
            .collect(),
    }
}

fn rotation_state(v: &RotationView) -> rot::RotationState {
    let m = &v.meta;
    // Stored rules were validated when set; an unreadable one shows as its text.
    let rules = m.rules.as_deref().map(|r| {
        serde_json::from_str::<serde_json::Value>(r)
            .unwrap_or_else(|_| serde_json::Value::String(r.into()))
    });
    rot::RotationState {
        name: v.name.clone(),
        arn: v.arn.clone(),
        enabled: m.enabled,
        rotator: m.rotator.clone(),
        rules,
        last_rotated: m.last_rotated.map(Timestamp),
        next_rotation: m.next_rotation.filter(|_| m.enabled).map(Timestamp),
        failed: m.failed.clone(),
        principal: m.principal.clone(),
        adoption: m.adoption,
        latest: v.latest.as_ref().map(rotation_out),
    }
}

fn rotated(r: Rotated) -> Json<rot::Rotated> {
    Json(rot::Rotated {
        name: r.name,
        arn: r.arn,
        version_id: r.version_id,
    })
}

async fn rotation(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<rot::RotationState>> {
    let view = app.rotations.view(&caller, &name).await?;
    Ok(Json(rotation_state(&view)))
}

async fn retire_previous(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    OptionalBody(req): OptionalBody<rot::RetireRequest>,
) -> Result<Json<rot::Retired>> {
    let done = app
        .rotations
        .retire_previous(&caller, &name, req.wait)
        .await?;
    Ok(Json(rot::Retired {
        name: done.name,
        version_id: done.version_id,
        by: done.by.to_string(),
    }))
}

async fn rotation_health(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<rot::Health>> {
    let h = app.rotations.health(&caller).await?;
    Ok(Json(rot::Health {
        overdue: h
            .overdue
            .into_iter()
            .map(|o| rot::OverdueRotation {
                name: o.name,
                due: o.due.into(),
                overdue_secs: o.for_secs,
            })
            .collect(),
        failed: h
            .failed
            .into_iter()
            .map(|f| rot::FailedRotation {
                name: f.name,
                error: f.error,
                since: f.since.map(Timestamp),
            })
            .collect(),
        waiting: h
            .waiting
            .into_iter()
            .map(|w| rot::WaitingRotation {
                name: w.name,
                version_id: w.token,
                step: w.step,
                held_version_id: w.version,
                consumers: w.consumers,
                waiting_secs: w.for_secs,
            })
            .collect(),
        lagging: h
            .lagging
            .into_iter()
            .map(|l| rot::LaggingConsumer {
                name: l.name,
                consumer: l.consumer.consumer,
                version_id: l.consumer.version_id,
                current_version_id: l.current_version,
                lagging_secs: l.for_secs,
            })
            .collect(),
    }))
}

async fn set_rotation(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Body(req): Body<rot::RotationConfig>,
) -> Result<Json<rot::Rotated>> {
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
                adoption: req.adoption,
            },
        )
        .await?;
    Ok(rotated(done))
}

async fn rotation_history(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Params(q): Params<rot::HistoryQuery>,
) -> Result<Json<rot::History>> {
    let all = app
        .rotations
        .history(&caller, &name, q.limit.unwrap_or(20))
        .await?;
    Ok(Json(rot::History {
        rotations: all.iter().map(rotation_out).collect(),
    }))
}

async fn cancel_rotation(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<rot::Rotated>> {
    Ok(rotated(app.rotations.cancel(&caller, &name).await?))
}

async fn rotate(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    OptionalBody(req): OptionalBody<rot::RotateNow>,
) -> Result<Json<rot::Rotated>> {
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
    Ok(rotated(done))
}
