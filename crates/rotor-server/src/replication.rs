//! `/v1/replication`: replication rules between namespaces, and the sync that
//! repairs destinations that drifted. Each repair is also written to the audit log.

use crate::App;
use crate::auth::Routes;
use crate::error::NativeError;
use crate::extract::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use rotor_api::replication as api;
use rotor_engine::Caller;
use rotor_engine::audit::AuditRecord;
use rotor_engine::replication::{Kind, Repair, RuleInfo, RuleSpec};
use std::sync::Arc;

type Result<T> = std::result::Result<T, NativeError>;

/// The replication routes.
pub(crate) fn routes() -> Routes {
    Routes::new()
        .at::<api::AddReplicationRule, _, _>(add)
        .at::<api::ListReplicationRules, _, _>(list)
        .at::<api::DescribeReplicationRule, _, _>(show)
        .at::<api::RemoveReplicationRule, _, _>(remove)
        .at::<api::SyncReplicas, _, _>(sync)
}

fn rule_out(r: RuleInfo) -> api::Rule {
    api::Rule {
        name: r.name,
        kind: match r.kind {
            Kind::Copy => api::RuleKind::Copy,
            Kind::Merge => api::RuleKind::Merge,
        },
        source: r.source,
        destination: r.destination,
        template: r.template,
        sources: r.sources,
        created: r.created.into(),
        created_by: r.created_by,
    }
}

fn repairs_out(repairs: &[Repair]) -> Vec<api::Repair> {
    repairs
        .iter()
        .map(|r| api::Repair {
            rule: r.rule.clone(),
            destination: r.destination.clone(),
            version: r.version.clone(),
        })
        .collect()
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
    Body(spec): Body<api::NewRule>,
) -> Result<(StatusCode, Json<api::RuleAdded>)> {
    let spec = RuleSpec {
        name: spec.name,
        kind: match spec.kind {
            api::RuleKind::Copy => Kind::Copy,
            api::RuleKind::Merge => Kind::Merge,
        },
        source: spec.source,
        destination: spec.destination,
        template: spec.template,
    };
    let (rule, repairs) = app.service.add_rule(&caller, spec).await?;
    audit_repairs(&app, caller.name(), &repairs).await;
    Ok((
        StatusCode::CREATED,
        Json(api::RuleAdded {
            rule: rule_out(rule),
            repairs: repairs_out(&repairs),
        }),
    ))
}

async fn list(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<api::RuleList>> {
    let rules = app.service.list_rules(&caller).await?;
    Ok(Json(api::RuleList {
        rules: rules.into_iter().map(rule_out).collect(),
    }))
}

async fn show(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<api::Rule>> {
    Ok(Json(rule_out(app.service.rule(&caller, &name).await?)))
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
) -> Result<Json<api::Repairs>> {
    let repairs = app.service.sync_replicas(&caller).await?;
    audit_repairs(&app, caller.name(), &repairs).await;
    Ok(Json(api::Repairs {
        repairs: repairs_out(&repairs),
    }))
}
