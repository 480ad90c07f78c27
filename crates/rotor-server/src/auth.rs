//! Authentication of the native API: a bearer token on every `/v1` route, the caller
//! it names put in the request's extensions for the handlers, and each request
//! recorded (audit log, metrics) under the operation its route names.
//!
//! Each router registers its routes from [`rotor_api`]'s endpoints with [`Routes`],
//! so every route has its operation name (what the audit log and metrics record,
//! found by the route axum matched, [`MatchedPath`]) and its description in
//! `/v1/openapi.json`; no route exists without them:
//!
//! ```ignore
//! Routes::new()
//!     .at::<api::secrets::GetSecretValue, _, _>(get_value)
//!     .guard(app)
//! ```

use crate::error::NativeError;
use crate::serve::PeerAddr;
use crate::{App, audit, metrics};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::handler::Handler;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use rotor_api::{Endpoint, Method, Spec};
use std::sync::Arc;
use std::time::Instant;

/// A router's routes, each registered from its endpoint's [`Spec`].
pub(crate) struct Routes {
    router: Router<Arc<App>>,
    specs: Vec<&'static Spec>,
}

impl Routes {
    pub(crate) fn new() -> Self {
        Routes {
            router: Router::new(),
            specs: Vec::new(),
        }
    }

    /// Routes `E`'s method and route to `handler`.
    pub(crate) fn at<E: Endpoint, H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, Arc<App>>,
        T: 'static,
    {
        let spec = E::spec();
        let filter = match spec.method {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Put => MethodFilter::PUT,
            Method::Patch => MethodFilter::PATCH,
            Method::Delete => MethodFilter::DELETE,
        };
        self.router = self.router.route(spec.route, on(filter, handler));
        self.specs.push(spec);
        self
    }

    /// The specs of the routes.
    #[cfg(test)]
    pub(crate) fn into_specs(self) -> Vec<&'static Spec> {
        self.specs
    }

    /// The routes, each authenticated and recorded under its operation, and their
    /// specs.
    pub(crate) fn guard(self, app: Arc<App>) -> (Router<Arc<App>>, Vec<&'static Spec>) {
        let guard = Guard {
            app,
            specs: self.specs.clone().into(),
        };
        let router = self
            .router
            .route_layer(axum::middleware::from_fn_with_state(guard, authenticate));
        (router, self.specs)
    }
}

#[derive(Clone)]
struct Guard {
    app: Arc<App>,
    specs: Arc<[&'static Spec]>,
}

impl Guard {
    /// The operation of a request, by its method and the route it matched.
    fn operation(&self, req: &Request) -> &'static str {
        let Some(route) = req.extensions().get::<MatchedPath>() else {
            return "unknown";
        };
        let method = req.method().as_str();
        self.specs
            .iter()
            .find(|s| s.method.as_str() == method && s.route == route.as_str())
            .map_or("unknown", |s| s.operation)
    }
}

/// The header a registered consumer (the agent, `rotor run`, the client library)
/// sends with its reads.
pub const CONSUMER_HEADER: &str = "x-rotor-consumer";

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
        Some(Ok(mut caller)) => {
            principal = Some(caller.name().to_string());
            if let Some(PeerAddr(addr)) = peer {
                caller = caller.from_address(addr.ip());
            }
            // A registered consumer says what it uses; its reads are not an implicit
            // consumer's (rotor_engine::consumers).
            if req.headers().contains_key(CONSUMER_HEADER) {
                caller = caller.untracked();
            }
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
    /// Every route of every router names its operation exactly once, and the OpenAPI
    /// document describes each.
    #[test]
    fn every_route_is_named_once_and_described() {
        let specs = crate::all_specs();
        let mut seen = std::collections::BTreeSet::new();
        let mut operations = std::collections::BTreeSet::new();
        for spec in &specs {
            assert!(
                seen.insert((spec.method.as_str(), spec.route)),
                "{} {} is routed twice",
                spec.method.as_str(),
                spec.route
            );
            assert!(operations.insert(spec.operation), "{}", spec.operation);
        }
        let doc = rotor_api::openapi::document(&specs, "test");
        for spec in &specs {
            let op = &doc["paths"][spec.openapi_path()][spec.method.as_str().to_lowercase()];
            assert_eq!(op["operationId"], spec.operation);
        }
    }
}
