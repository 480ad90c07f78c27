//! Authentication of the native API: a bearer token on every `/v1` route, the caller
//! it names put in the request's extensions for the handlers, and each request
//! recorded (audit log, metrics) under the operation its route names.
//!
//! Each router lists its operations beside its routes, by method and route pattern
//! (what axum's [`MatchedPath`] gives), and wraps its routes with [`guard`]:
//!
//! ```ignore
//! auth::guard(
//!     Router::new().route("/v1/things/{name}", get(show)),
//!     app,
//!     &[("GET", "/v1/things/{name}", "DescribeThing")],
//! )
//! ```

use crate::error::NativeError;
use crate::serve::PeerAddr;
use crate::{App, audit, metrics};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;

/// A router's operations: `(method, route pattern, operation name)`.
pub(crate) type Operations = &'static [(&'static str, &'static str, &'static str)];

#[derive(Clone)]
struct Guard {
    app: Arc<App>,
    operations: Operations,
}

impl Guard {
    /// The operation of a request, by its method and the route it matched.
    fn operation(&self, req: &Request) -> &'static str {
        let Some(route) = req.extensions().get::<MatchedPath>() else {
            return "unknown";
        };
        let method = req.method().as_str();
        self.operations
            .iter()
            .find(|(m, pattern, _)| *m == method && *pattern == route.as_str())
            .map_or("unknown", |(_, _, op)| op)
    }
}

/// `router`'s routes, each authenticated and recorded under its name in `operations`.
pub(crate) fn guard(
    router: Router<Arc<App>>,
    app: Arc<App>,
    operations: Operations,
) -> Router<Arc<App>> {
    router.route_layer(axum::middleware::from_fn_with_state(
        Guard { app, operations },
        authenticate,
    ))
}

async fn authenticate(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let app = guard.app.clone();
    let op = guard.operation(&req);
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let peer = req.extensions().get::<PeerAddr>().copied();
    let subject = match app.audit {
        Some(_) => audit::native_subject(req.uri().path(), req.uri().query()),
        None => audit::Subject::default(),
    };
    let request_id = crate::aws_api::request_id();
    let authenticated = token.map(|t| app.access.authenticate_token(t));
    let mut principal = None;
    let mut req = req;
    let mut response = match authenticated {
        Some(Ok(caller)) => {
            principal = Some(caller.name().to_string());
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Some(Err(e)) => NativeError::from(e).into_response(),
        None => NativeError::unauthenticated().into_response(),
    };
    if let Ok(id) = axum::http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", id);
    }
    let response = audit::record(
        &app,
        "native",
        op,
        request_id,
        principal,
        peer.as_ref(),
        subject,
        response,
        audit::native_failure,
    )
    .await;
    metrics::observe("native", op, response.status().as_u16(), start);
    response
}

#[cfg(test)]
mod tests {
    /// Every route of every router names its operation exactly once.
    #[test]
    fn every_operation_table_is_unambiguous() {
        let tables: &[super::Operations] = &[
            crate::native::OPERATIONS,
            crate::sys::OPERATIONS,
            crate::watch::OPERATIONS,
            crate::replication::OPERATIONS,
            crate::consumers::OPERATIONS,
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (method, pattern, op) in tables.iter().flat_map(|t| t.iter()) {
            assert!(
                seen.insert((*method, *pattern)),
                "{method} {pattern} is named twice"
            );
            assert!(
                op.chars().next().is_some_and(|c| c.is_ascii_uppercase()),
                "{op}"
            );
        }
    }
}
