//! Consumer acknowledgements over HTTP (see [`rotor_engine::consumers`]):
//!
//! - `POST /v1/consumers` `{consumer, secret, version_id}`: a consumer reports the
//!   version of a secret it has in use (`read` on the secret). The server records the
//!   peer address it came from as `host`.
//! - `GET /v1/consumers/NAME`: the latest report of each consumer, and whether the
//!   version it reported is `AWSCURRENT` (`describe` on the secret).

use crate::App;
use crate::audit::AuditNote;
use crate::auth::Routes;
use crate::error::NativeError;
use crate::extract::Body;
use crate::serve::PeerAddr;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rotor_api::consumers as api;
use rotor_engine::Caller;
use rotor_engine::consumers::{ConsumerAck, SCAN_LIMIT};
use std::sync::Arc;

type Result<T> = std::result::Result<T, NativeError>;

/// The consumer routes.
pub(crate) fn routes() -> Routes {
    Routes::new()
        .at::<api::AcknowledgeVersion, _, _>(acknowledge)
        .at::<api::ListConsumers, _, _>(list)
}

async fn acknowledge(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    peer: Option<Extension<PeerAddr>>,
    Body(req): Body<api::Acknowledgement>,
) -> Result<Response> {
    let ack = ConsumerAck {
        consumer: req.consumer,
        secret: req.secret,
        version_id: req.version_id,
        host: peer.map(|Extension(p)| p.0.ip().to_string()),
    };
    let name = app.service.acknowledge(&caller, &ack).await?;
    let mut resp = Json(api::Acknowledged {
        name: name.clone(),
        consumer: ack.consumer,
        version_id: ack.version_id,
    })
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
) -> Result<Json<api::ConsumerList>> {
    let c = app.service.consumers(&caller, &name).await?;
    Ok(Json(api::ConsumerList {
        name: c.name,
        current_version: c.current_version,
        consumers: c
            .consumers
            .into_iter()
            .map(|s| api::Consumer {
                consumer: s.consumer,
                version_id: s.version_id,
                stages: s.stages,
                current: s.current,
                host: s.host,
                at: s.at.into(),
                seq: s.seq,
            })
            .collect(),
        complete: c.complete,
        scan_limit: SCAN_LIMIT,
    }))
}
