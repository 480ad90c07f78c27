//! Consumer acknowledgements over HTTP (see [`rotor_engine::consumers`]):
//!
//! - `POST /v1/consumers` `{consumer, secret, version_id}`: a consumer reports the
//!   version of a secret it has in use (`read` on the secret). The server records the
//!   peer address it came from as `host`.
//! - `GET /v1/consumers/NAME`: the latest report of each consumer, and whether the
//!   version it reported is `AWSCURRENT` (`describe` on the secret).

use crate::App;
use crate::audit::AuditNote;
use crate::error::NativeError;
use crate::serve::PeerAddr;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use rotor_engine::Caller;
use rotor_engine::consumers::{ConsumerAck, SCAN_LIMIT};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

type Result<T> = std::result::Result<T, NativeError>;

/// The operations of [`router`]'s routes.
pub(crate) const OPERATIONS: crate::auth::Operations = &[
    ("POST", "/v1/consumers", "AcknowledgeVersion"),
    ("GET", "/v1/consumers/{*name}", "ListConsumers"),
];

/// The routes (authenticated).
pub(crate) fn router(app: Arc<App>) -> Router<Arc<App>> {
    let routes = Router::new()
        .route("/v1/consumers", post(acknowledge))
        .route("/v1/consumers/{*name}", get(list));
    crate::auth::guard(routes, app, OPERATIONS)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckIn {
    consumer: String,
    secret: String,
    version_id: String,
}

async fn acknowledge(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    peer: Option<Extension<PeerAddr>>,
    req: std::result::Result<Json<AckIn>, JsonRejection>,
) -> Result<Response> {
    let req = req
        .map(|Json(v)| v)
        .map_err(|e| NativeError::bad_request(e.body_text()))?;
    let ack = ConsumerAck {
        consumer: req.consumer,
        secret: req.secret,
        version_id: req.version_id,
        host: peer.map(|Extension(p)| p.0.ip().to_string()),
    };
    let name = app.service.acknowledge(&caller, &ack).await?;
    let mut resp = Json(json!({"name": name, "consumer": ack.consumer,
                               "version_id": ack.version_id}))
    .into_response();
    resp.extensions_mut().insert(AuditNote {
        secret: Some(name),
        sensitive: Vec::new(),
    });
    Ok(resp)
}

async fn list(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let c = app.service.consumers(&caller, &name).await?;
    let consumers: Vec<Value> = c
        .consumers
        .iter()
        .map(|s| {
            json!({
                "consumer": s.consumer,
                "version_id": s.version_id,
                "stages": s.stages,
                "current": s.current,
                "host": s.host,
                "at": s.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "seq": s.seq,
            })
        })
        .collect();
    Ok(Json(json!({
        "name": c.name,
        "current_version": c.current_version,
        "consumers": consumers,
        "complete": c.complete,
        "scan_limit": SCAN_LIMIT,
    })))
}
