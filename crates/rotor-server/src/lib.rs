//! Rotor's HTTP server.
//!
//! - [`aws_api`]: the [AWS Secrets Manager API] (JSON 1.1, `POST /`,
//!   `X-Amz-Target: secretsmanager.<Op>`), every request verified with [`sigv4`];
//! - [`native`]: the `/v1` REST API with bearer tokens, described by `/v1/openapi.json`;
//! - `/v1/watch`, `/v1/events` and `/v1/sys/subscriptions`: change events, streamed
//!   (Server-Sent Events), long-polled, or pushed to webhooks and local commands;
//! - `/v1/consumers`: which version of a secret each consumer has in use;
//! - `/healthz`, `/readyz`, `/metrics` (Prometheus text);
//! - [`serve`]: the accept loop, TLS with certificates reloadable at run time, and a
//!   graceful drain on shutdown.
//!
//! Routers only translate between HTTP and the [`SecretService`]; they hold no rules.
//!
//! [AWS Secrets Manager API]: https://docs.aws.amazon.com/secretsmanager/latest/apireference/Welcome.html
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use rotor_server::App;
//! use rotor_engine::{AccessService, SecretService};
//! use std::sync::Arc;
//! let store = Arc::new(rotor_store::sqlite::SqliteStore::ephemeral().await?);
//! let service = Arc::new(SecretService::with_random_key(store, "123456789012"));
//! let access = Arc::new(AccessService::load(service.store(), service.envelope(), service.clock()).await?);
//! access.bootstrap(Some("root-token"), Some(("AKID", "secret"))).await?;
//! let app = App::new(service, access, None);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! rotor_server::serve::serve(listener, app.router(), None, std::future::pending()).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod alibaba;
mod audit;
mod auth;
pub mod aws_api;
mod consumers;
pub mod error;
mod extract;
pub mod metrics;
pub mod native;
mod openapi;
pub mod pagination;
pub mod replication;
pub mod serve;
pub mod sigv4;
mod sys;
mod watch;

#[cfg(test)]
mod fuzz_tests;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use rotor_engine::audit::AuditLog;
use rotor_engine::events::{self, Events};
use rotor_engine::rotation::{self, Rotations};
use rotor_engine::{AccessService, SecretService};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// State shared by every request.
pub struct App {
    /// The secret service.
    pub service: Arc<SecretService>,
    /// Authentication and access management.
    pub access: Arc<AccessService>,
    /// Rotation: the API operations; the server spawns its scheduler.
    pub rotations: Arc<Rotations>,
    /// Change events: watches and subscriptions; the server spawns their dispatcher.
    pub events: Arc<Events>,
    /// The audit log; `None` when switched off.
    pub audit: Option<Arc<AuditLog>>,
    /// Region for ARNs of secrets created over the native API.
    pub default_region: String,
    /// Nonces of Alibaba-signed requests seen within the replay window.
    pub(crate) acs_nonces: alibaba::signature::Nonces,
    metrics: Option<PrometheusHandle>,
    ready: AtomicBool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

impl App {
    /// State over `service`, authenticating with `access`, auditing to `audit`.
    pub fn new(
        service: Arc<SecretService>,
        access: Arc<AccessService>,
        audit: Option<Arc<AuditLog>>,
    ) -> Arc<Self> {
        let rotations = Arc::new(Rotations::new(
            service.clone(),
            access.clone(),
            rotation::Settings::default(),
        ));
        Self::with_rotations(service, access, rotations, audit)
    }

    /// State with rotations configured by the caller.
    pub fn with_rotations(
        service: Arc<SecretService>,
        access: Arc<AccessService>,
        rotations: Arc<Rotations>,
        audit: Option<Arc<AuditLog>>,
    ) -> Arc<Self> {
        let events = Arc::new(Events::new(
            service.clone(),
            access.clone(),
            events::Settings::default(),
        ));
        Self::with_events(service, access, rotations, events, audit)
    }

    /// State with rotations and event delivery configured by the caller.
    pub fn with_events(
        service: Arc<SecretService>,
        access: Arc<AccessService>,
        rotations: Arc<Rotations>,
        events: Arc<Events>,
        audit: Option<Arc<AuditLog>>,
    ) -> Arc<Self> {
        service.bind_access(&access);
        Arc::new(App {
            service,
            access,
            rotations,
            events,
            audit,
            default_region: "us-east-1".into(),
            acs_nonces: Default::default(),
            metrics: metrics::install(),
            ready: AtomicBool::new(true),
        })
    }

    /// Marks the server as not ready (draining), so `/readyz` answers 503, and ends
    /// watch streams, which would otherwise hold the drain up.
    pub fn set_draining(&self) {
        self.ready.store(false, Ordering::SeqCst);
        self.events.close();
    }

    /// Every route.
    pub fn router(self: &Arc<Self>) -> Router {
        let mut router = Router::new()
            .route("/", post(front_door).get(front_door))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text));
        let mut specs = Vec::new();
        for routes in native_routes() {
            let (routes, described) = routes.guard(self.clone());
            router = router.merge(routes);
            specs.extend(described);
        }
        router
            .route("/v1/openapi.json", get(openapi::serve(&specs)))
            .fallback(not_found)
            .with_state(self.clone())
    }
}

/// The native API's routers.
fn native_routes() -> [auth::Routes; 5] {
    [
        native::routes(),
        sys::routes(),
        watch::routes(),
        replication::routes(),
        consumers::routes(),
    ]
}

/// Every endpoint the native API routes.
#[cfg(test)]
pub(crate) fn all_specs() -> Vec<&'static rotor_api::Spec> {
    native_routes()
        .into_iter()
        .flat_map(auth::Routes::into_specs)
        .collect()
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.ready.load(Ordering::SeqCst) {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response()
    }
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    match &app.metrics {
        Some(h) => ([("content-type", "text/plain; version=0.0.4")], h.render()).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics unavailable").into_response(),
    }
}

/// `/`: Alibaba's RPC API when the request is Alibaba's ([`alibaba::claims`]), else
/// AWS's JSON API on `POST`.
async fn front_door(state: State<Arc<App>>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let alibaba = alibaba::claims(&parts);
    let req = axum::extract::Request::from_parts(parts, body);
    if alibaba {
        alibaba::handle(state, req).await
    } else if req.method() == axum::http::Method::POST {
        aws_api::handle(state, req).await
    } else {
        not_found().await
    }
}

async fn not_found() -> Response {
    error::NativeError {
        kind: "NotFoundException",
        message: "No such route: the AWS API is POST /, the native API lives under /v1/ (see /v1/openapi.json)".into(),
        status: StatusCode::NOT_FOUND,
    }
    .into_response()
}
