//! The consumer registry over HTTP (see [`rotor_engine::consumers`]):
//!
//! - `POST /v1/consumers` `{consumer, secret, version_id, lease_secs}`: a consumer
//!   registers the version it uses, or renews its lease (`read` on the secret). The
//!   server records the peer address it came from as `host`.
//! - `DELETE /v1/consumers/NAME?consumer=ID`: a consumer leaves.
//! - `GET /v1/consumers/NAME`: each version with its live and gone consumers
//!   (`describe` on the secret).

use crate::App;
use crate::audit::AuditNote;
use crate::auth::Routes;
use crate::error::NativeError;
use crate::extract::{Body, Params};
use crate::serve::PeerAddr;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rotor_api::Timestamp;
use rotor_api::consumers as api;
use rotor_engine::Caller;
use rotor_engine::consumers::{ConsumerState, Registration};
use std::sync::Arc;

type Result<T> = std::result::Result<T, NativeError>;

/// The consumer routes.
pub(crate) fn routes() -> Routes {
    Routes::new()
        .at::<api::RegisterConsumer, _, _>(register)
        .at::<api::ListConsumers, _, _>(list)
        .at::<api::DeregisterConsumer, _, _>(deregister)
}

fn noted(resp: impl IntoResponse, name: String) -> Response {
    let mut resp = resp.into_response();
    resp.extensions_mut().insert(AuditNote {
        secret: Some(name),
        sensitive: Vec::new(),
    });
    resp
}

async fn register(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    peer: Option<Extension<PeerAddr>>,
    Body(req): Body<api::Registration>,
) -> Result<Response> {
    let reg = Registration {
        consumer: req.consumer,
        secret: req.secret,
        version_id: req.version_id,
        host: peer.map(|Extension(p)| p.0.ip().to_string()),
        lease_secs: req.lease_secs,
    };
    let done = app.service.register_consumer(&caller, &reg).await?;
    let out = Json(api::Registered {
        name: done.name.clone(),
        consumer: reg.consumer,
        version_id: reg.version_id,
        expires: done.expires.into(),
    });
    Ok(noted(out, done.name))
}

async fn deregister(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Params(q): Params<api::ConsumerQuery>,
) -> Result<Response> {
    let name = app
        .service
        .deregister_consumer(&caller, &name, &q.consumer)
        .await?;
    let out = Json(api::Deregistered {
        name: name.clone(),
        consumer: q.consumer,
    });
    Ok(noted(out, name))
}

fn consumer_out(c: ConsumerState) -> api::Consumer {
    api::Consumer {
        consumer: c.consumer,
        kind: c.kind.as_str().to_string(),
        version_id: c.version_id,
        principal: c.principal,
        host: c.host,
        first_seen: c.first_seen.into(),
        last_seen: c.last_seen.into(),
        live_until: Timestamp(c.live_until),
        through: c.through,
    }
}

async fn list(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<api::ConsumerList>> {
    let c = app.service.consumers(&caller, &name).await?;
    Ok(Json(api::ConsumerList {
        name: c.name,
        current_version: c.current_version,
        versions: c
            .versions
            .into_iter()
            .map(|v| api::VersionConsumers {
                version_id: v.version_id,
                stages: v.stages,
                live: v.live.into_iter().map(consumer_out).collect(),
                gone: v.gone.into_iter().map(consumer_out).collect(),
            })
            .collect(),
    }))
}
