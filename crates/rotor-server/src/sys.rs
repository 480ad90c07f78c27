//! `/v1/sys/...`: principals, policies, tokens, access keys and rotators. Every route
//! needs the `admin` capability on the matching `sys/...` path, except a token's lookup
//! of itself. Secrets (tokens, secret access keys, webhook signing keys) appear once,
//! in the answer that creates them.

use crate::App;
use crate::error::NativeError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Duration, Utc};
use rotor_core::policy::{Policy, Statement};
use rotor_engine::rotation::RotatorInfo;
use rotor_engine::{Caller, PrincipalInfo, TokenInfo};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

type Result<T> = std::result::Result<T, NativeError>;

fn body<T>(b: std::result::Result<Json<T>, JsonRejection>) -> Result<T> {
    b.map(|Json(v)| v)
        .map_err(|e| NativeError::bad_request(e.body_text()))
}

/// The operations of [`router`]'s routes.
pub(crate) const OPERATIONS: crate::auth::Operations = &[
    ("POST", "/v1/sys/principals", "CreatePrincipal"),
    ("GET", "/v1/sys/principals", "ListPrincipals"),
    ("DELETE", "/v1/sys/principals/{name}", "DeletePrincipal"),
    (
        "PUT",
        "/v1/sys/principals/{name}/policies/{policy}",
        "AttachPolicy",
    ),
    (
        "DELETE",
        "/v1/sys/principals/{name}/policies/{policy}",
        "DetachPolicy",
    ),
    ("GET", "/v1/sys/policies", "ListPolicies"),
    ("PUT", "/v1/sys/policies/{name}", "PutPolicy"),
    ("GET", "/v1/sys/policies/{name}", "GetPolicy"),
    ("DELETE", "/v1/sys/policies/{name}", "DeletePolicy"),
    ("POST", "/v1/sys/tokens", "CreateToken"),
    ("POST", "/v1/sys/tokens/lookup", "LookupToken"),
    ("POST", "/v1/sys/tokens/revoke", "RevokeToken"),
    ("POST", "/v1/sys/access-keys", "CreateAccessKey"),
    ("DELETE", "/v1/sys/access-keys/{id}", "DeleteAccessKey"),
    ("POST", "/v1/sys/rotators", "CreateRotator"),
    ("GET", "/v1/sys/rotators", "ListRotators"),
    ("GET", "/v1/sys/rotators/{name}", "DescribeRotator"),
    ("DELETE", "/v1/sys/rotators/{name}", "DeleteRotator"),
];

/// The `/v1/sys` routes (authenticated).
pub(crate) fn router(app: Arc<App>) -> Router<Arc<App>> {
    let routes = Router::new()
        .route(
            "/v1/sys/principals",
            post(create_principal).get(list_principals),
        )
        .route("/v1/sys/principals/{name}", delete(delete_principal))
        .route(
            "/v1/sys/principals/{name}/policies/{policy}",
            put(attach).delete(detach),
        )
        .route("/v1/sys/policies", get(list_policies))
        .route(
            "/v1/sys/policies/{name}",
            put(put_policy).get(get_policy).delete(delete_policy),
        )
        .route("/v1/sys/tokens", post(create_token))
        .route("/v1/sys/tokens/lookup", post(lookup_token))
        .route("/v1/sys/tokens/revoke", post(revoke_token))
        .route("/v1/sys/access-keys", post(create_access_key))
        .route("/v1/sys/access-keys/{id}", delete(delete_access_key))
        .route("/v1/sys/rotators", post(create_rotator).get(list_rotators))
        .route(
            "/v1/sys/rotators/{name}",
            get(get_rotator).delete(delete_rotator),
        );
    crate::auth::guard(routes, app, OPERATIONS)
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn principal_json(p: &PrincipalInfo) -> Value {
    json!({"name": p.name, "kind": p.kind, "created": time(p.created), "policies": p.policies,
           "tokens": p.tokens, "access_keys": p.access_keys})
}

fn token_json(t: &TokenInfo) -> Value {
    json!({"id": t.id, "principal": t.principal, "created": time(t.created),
           "expires": t.expires.map(time), "revoked": t.revoked.map(time)})
}

#[derive(Deserialize)]
struct PrincipalIn {
    name: String,
    #[serde(default = "service_kind")]
    kind: String,
}

fn service_kind() -> String {
    "service".into()
}

async fn create_principal(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    req: std::result::Result<Json<PrincipalIn>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let req = body(req)?;
    app.access
        .create_principal(&caller, &req.name, &req.kind)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": req.name, "kind": req.kind})),
    ))
}

async fn list_principals(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>> {
    let all = app.access.list_principals(&caller)?;
    Ok(Json(
        json!({"principals": all.iter().map(principal_json).collect::<Vec<_>>()}),
    ))
}

async fn delete_principal(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    app.access.delete_principal(&caller, &name).await?;
    Ok(Json(json!({"deleted": name})))
}

async fn attach(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((name, policy)): Path<(String, String)>,
) -> Result<Json<Value>> {
    app.access.attach(&caller, &name, &policy).await?;
    Ok(Json(json!({"principal": name, "attached": policy})))
}

async fn detach(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((name, policy)): Path<(String, String)>,
) -> Result<Json<Value>> {
    app.access.detach(&caller, &name, &policy).await?;
    Ok(Json(json!({"principal": name, "detached": policy})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyIn {
    statements: Vec<Statement>,
}

async fn put_policy(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    req: std::result::Result<Json<PolicyIn>, JsonRejection>,
) -> Result<Json<Value>> {
    let policy = Policy {
        name,
        statements: body(req)?.statements,
    };
    app.access.put_policy(&caller, &policy).await?;
    Ok(Json(json!(policy)))
}

async fn get_policy(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    Ok(Json(json!(app.access.get_policy(&caller, &name)?)))
}

async fn list_policies(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>> {
    Ok(Json(
        json!({"policies": app.access.list_policies(&caller)?}),
    ))
}

async fn delete_policy(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    app.access.delete_policy(&caller, &name).await?;
    Ok(Json(json!({"deleted": name})))
}

#[derive(Deserialize)]
struct TokenIn {
    principal: String,
    ttl_secs: Option<i64>,
}

async fn create_token(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    req: std::result::Result<Json<TokenIn>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let req = body(req)?;
    let (info, token) = app
        .access
        .create_token(&caller, &req.principal, req.ttl_secs.map(Duration::seconds))
        .await?;
    let mut out = token_json(&info);
    out["token"] = json!(token.expose_secret());
    Ok((StatusCode::CREATED, Json(out)))
}

#[derive(Deserialize)]
struct TokenRef {
    /// A token id or the token itself; absent means the caller's own token.
    token: Option<String>,
}

/// The token the request was made with.
fn own_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

async fn lookup_token(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
    req: std::result::Result<Json<TokenRef>, JsonRejection>,
) -> Result<Json<Value>> {
    let which = body(req)?
        .token
        .or_else(|| own_token(&headers))
        .unwrap_or_default();
    Ok(Json(token_json(&app.access.lookup_token(&caller, &which)?)))
}

async fn revoke_token(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    req: std::result::Result<Json<TokenRef>, JsonRejection>,
) -> Result<Json<Value>> {
    let which = body(req)?
        .token
        .ok_or_else(|| NativeError::bad_request("Give the token or its id"))?;
    Ok(Json(token_json(
        &app.access.revoke_token(&caller, &which).await?,
    )))
}

#[derive(Deserialize)]
struct AccessKeyIn {
    principal: String,
}

async fn create_access_key(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    req: std::result::Result<Json<AccessKeyIn>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let req = body(req)?;
    let (id, secret) = app
        .access
        .create_access_key(&caller, &req.principal)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"principal": req.principal, "access_key_id": id, "secret_access_key": secret.expose_secret()}),
        ),
    ))
}

async fn delete_access_key(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    app.access.delete_access_key(&caller, &id).await?;
    Ok(Json(json!({"deleted": id})))
}

fn rotator_json(r: &RotatorInfo) -> Value {
    json!({"name": r.name, "type": r.kind, "config": r.config, "created": time(r.created)})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotatorIn {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "empty_object")]
    config: Value,
    #[serde(default)]
    replace: bool,
}

fn empty_object() -> Value {
    json!({})
}

async fn create_rotator(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    req: std::result::Result<Json<RotatorIn>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let req = body(req)?;
    let key = app
        .rotations
        .create_rotator(&caller, &req.name, &req.kind, req.config, req.replace)
        .await?;
    // Answer with the settings as stored (validated, defaults filled in).
    let mut out = rotator_json(&app.rotations.rotator(&caller, &req.name).await?);
    if let Some(key) = key {
        out["signing_key"] = json!(key);
    }
    Ok((StatusCode::CREATED, Json(out)))
}

async fn list_rotators(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>> {
    let all = app.rotations.rotators(&caller).await?;
    Ok(Json(
        json!({"rotators": all.iter().map(rotator_json).collect::<Vec<_>>()}),
    ))
}

async fn get_rotator(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    Ok(Json(rotator_json(
        &app.rotations.rotator(&caller, &name).await?,
    )))
}

async fn delete_rotator(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    app.rotations.delete_rotator(&caller, &name).await?;
    Ok(Json(json!({"deleted": name})))
}
