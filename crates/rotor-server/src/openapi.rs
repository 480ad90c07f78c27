//! `/v1/openapi.json`: the native API's description, generated once from the
//! endpoints the routers register (see [`rotor_api::openapi`]).

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use rotor_api::Spec;

/// A handler answering the document of `specs`, serialized once here.
pub(crate) fn serve(
    specs: &[&'static Spec],
) -> impl Fn() -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    let doc = rotor_api::openapi::document(specs, env!("CARGO_PKG_VERSION"));
    let body = Bytes::from(doc.to_string());
    move || std::future::ready(([(CONTENT_TYPE, "application/json")], body.clone()).into_response())
}
