//! `/v1/replication`: replication rules between namespaces, and the sync that
//! repairs destinations that drifted. Each repair is also written to the audit log.

use crate::App;
use crate::error::NativeError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use rotor_engine::Caller;
use rotor_engine::audit::AuditRecord;
use rotor_engine::replication::{Repair, RuleInfo, RuleSpec};
use serde_json::{Value, json};
use std::sync::Arc;

type Result<T> = std::result::Result<T, NativeError>;

/// The operations of [`router`]'s routes.
pub(crate) const OPERATIONS: crate::auth::Operations = &[
    ("POST", "/v1/replication", "AddReplicationRule"),
    ("GET", "/v1/replication", "ListReplicationRules"),
    ("GET", "/v1/replication/{name}", "DescribeReplicationRule"),
    ("DELETE", "/v1/replication/{name}", "RemoveReplicationRule"),
    ("POST", "/v1/replication-sync", "SyncReplicas"),
];

/// The replication routes (authenticated).
pub(crate) fn router(app: Arc<App>) -> Router<Arc<App>> {
    let routes = Router::new()
        .route("/v1/replication", post(add).get(list))
        .route("/v1/replication/{name}", get(show).delete(remove))
        .route("/v1/replication-sync", post(sync));
    crate::auth::guard(routes, app, OPERATIONS)
}

fn rule_json(r: &RuleInfo) -> Value {
    json!({"name": r.name, "kind": r.kind, "source": r.source, "destination": r.destination,
           "template": r.template, "sources": r.sources,
           "created": r.created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
           "created_by": r.created_by})
}

fn repairs_json(repairs: &[Repair]) -> Value {
    json!(repairs)
}

/// Writes one audit entry per repair, as `principal`.
pub async fn audit_repairs(app: &App, principal: &str, repairs: &[Repair]) {
    let Some(log) = &app.audit else { return };
    for r in repairs {
        let record = AuditRecord {
            time: chrono::Utc::now(),
            request_id: uuid::Uuid::new_v4().to_string(),
            principal: Some(principal.to_string()),
            api: "replication",
            operation: "RepairReplica",
            secret: Some(r.destination.clone()),
            version_id: Some(r.version.clone()),
            decision: "allow",
            status: 200,
            ..Default::default()
        };
        if let Err(e) = log.append(record).await {
            tracing::error!(error = %e, "cannot audit a replica repair");
        }
    }
}

async fn add(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    spec: std::result::Result<Json<RuleSpec>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let spec = spec
        .map(|Json(v)| v)
        .map_err(|e| NativeError::bad_request(e.body_text()))?;
    let (rule, repairs) = app.service.add_rule(&caller, spec).await?;
    audit_repairs(&app, caller.name(), &repairs).await;
    Ok((
        StatusCode::CREATED,
        Json(json!({"rule": rule_json(&rule), "repairs": repairs_json(&repairs)})),
    ))
}

async fn list(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>> {
    let rules = app.service.list_rules(&caller).await?;
    Ok(Json(
        json!({"rules": rules.iter().map(rule_json).collect::<Vec<_>>()}),
    ))
}

async fn show(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    Ok(Json(rule_json(&app.service.rule(&caller, &name).await?)))
}

async fn remove(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    app.service.remove_rule(&caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn sync(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>> {
    let repairs = app.service.sync_replicas(&caller).await?;
    audit_repairs(&app, caller.name(), &repairs).await;
    Ok(Json(json!({"repairs": repairs_json(&repairs)})))
}
