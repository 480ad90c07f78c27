//! Rotor's HTTP server.
//!
//! - [`aws_api`]: the [AWS Secrets Manager API] (JSON 1.1, `POST /`,
//!   `X-Amz-Target: secretsmanager.<Op>`), every request verified with [`sigv4`];
//! - [`native`]: the `/v1` REST API with bearer tokens, described by `/v1/openapi.json`;
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
//! use rotor_server::{App, Credentials};
//! use rotor_engine::SecretService;
//! use std::sync::Arc;
//! let service = Arc::new(SecretService::open_ephemeral("123456789012").await?);
//! let app = App::new(service, Credentials::new("root-token", "AKID", "secret"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! rotor_server::serve::serve(listener, app.router(), None, std::future::pending()).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod aws_api;
pub mod error;
pub mod metrics;
pub mod native;
mod openapi;
pub mod pagination;
pub mod serve;
pub mod sigv4;

use aws_lc_rs::constant_time;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use rotor_engine::SecretService;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The credentials the server accepts: the root bearer token and AWS-style key pairs.
pub struct Credentials {
    root_token: SecretString,
    access_keys: HashMap<String, SecretString>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("root_token", &"[redacted]")
            .field(
                "access_key_ids",
                &self.access_keys.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Credentials {
    /// The root token and one access key pair.
    pub fn new(root_token: &str, access_key_id: &str, secret_access_key: &str) -> Self {
        let mut access_keys = HashMap::new();
        access_keys.insert(
            access_key_id.to_string(),
            SecretString::from(secret_access_key),
        );
        Credentials {
            root_token: SecretString::from(root_token),
            access_keys,
        }
    }

    /// The secret key of `access_key_id`, if known.
    pub fn secret_for(&self, access_key_id: &str) -> Option<String> {
        self.access_keys
            .get(access_key_id)
            .map(|s| s.expose_secret().to_string())
    }

    /// Whether `token` is the root token (compared in constant time).
    pub fn token_is_valid(&self, token: &str) -> bool {
        constant_time::verify_slices_are_equal(
            token.as_bytes(),
            self.root_token.expose_secret().as_bytes(),
        )
        .is_ok()
    }
}

/// State shared by every request.
pub struct App {
    /// The secret service.
    pub service: Arc<SecretService>,
    /// Accepted credentials.
    pub credentials: Credentials,
    /// Region for ARNs of secrets created over the native API.
    pub default_region: String,
    metrics: Option<PrometheusHandle>,
    ready: AtomicBool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl App {
    /// State over `service`, accepting `credentials`.
    pub fn new(service: Arc<SecretService>, credentials: Credentials) -> Arc<Self> {
        Arc::new(App {
            service,
            credentials,
            default_region: "us-east-1".into(),
            metrics: metrics::install(),
            ready: AtomicBool::new(true),
        })
    }

    /// Marks the server as not ready (draining), so `/readyz` answers 503.
    pub fn set_draining(&self) {
        self.ready.store(false, Ordering::SeqCst);
    }

    /// Every route.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/", post(aws_api::handle))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .route("/v1/openapi.json", get(openapi::document))
            .merge(native::router(self.clone()))
            .fallback(not_found)
            .with_state(self.clone())
    }
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

async fn not_found() -> Response {
    error::NativeError {
        kind: "NotFoundException",
        message: "No such route: the AWS API is POST /, the native API lives under /v1/ (see /v1/openapi.json)".into(),
        status: StatusCode::NOT_FOUND,
    }
    .into_response()
}
