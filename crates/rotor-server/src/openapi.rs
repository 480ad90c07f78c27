//! `/v1/openapi.json`: the native API's description, generated once from the
//! endpoints the routers register (see [`rotor_api::openapi`]).

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use rotor_api::Spec;
use std::sync::Arc;

/// A handler answering the document of `specs`.
pub(crate) fn serve(
    specs: &[&'static Spec],
) -> impl Fn() -> std::future::Ready<axum::response::Response> + Clone + Send + Sync + 'static {
    let doc = rotor_api::openapi::document(specs, env!("CARGO_PKG_VERSION"));
    let body: Arc<str> = doc.to_string().into();
    move || {
        std::future::ready(([(CONTENT_TYPE, "application/json")], body.to_string()).into_response())
    }
}
