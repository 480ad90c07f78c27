//! `/v1/sys/...`: principals, policies, tokens, access keys and rotators. Every route
//! needs the `admin` capability on the matching `sys/...` path, except a token's lookup
//! of itself. Secrets (tokens, secret access keys, webhook signing keys) appear once,
//! in the answer that creates them.

use crate::App;
use crate::auth::Routes;
use crate::error::NativeError;
use crate::extract::{Body, OptionalBody};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Duration;
use rotor_api::sys as api;
use rotor_api::{Deleted, Sensitive};
use rotor_core::policy::Policy;
use rotor_engine::rotation::RotatorInfo;
use rotor_engine::{Caller, PrincipalInfo, TokenInfo};
use std::sync::Arc;

type Result<T> = std::result::Result<T, NativeError>;

/// The `/v1/sys` routes.
pub(crate) fn routes() -> Routes {
    Routes::new()
        .at::<api::CreatePrincipal, _, _>(create_principal)
        .at::<api::ListPrincipals, _, _>(list_principals)
        .at::<api::DeletePrincipal, _, _>(delete_principal)
        .at::<api::AttachPolicy, _, _>(attach)
        .at::<api::DetachPolicy, _, _>(detach)
        .at::<api::ListPolicies, _, _>(list_policies)
        .at::<api::PutPolicy, _, _>(put_policy)
        .at::<api::GetPolicy, _, _>(get_policy)
        .at::<api::DeletePolicy, _, _>(delete_policy)
        .at::<api::CreateToken, _, _>(create_token)
        .at::<api::LookupToken, _, _>(lookup_token)
        .at::<api::RevokeToken, _, _>(revoke_token)
        .at::<api::CreateAccessKey, _, _>(create_access_key)
        .at::<api::DeleteAccessKey, _, _>(delete_access_key)
        .at::<api::CreateRotator, _, _>(create_rotator)
        .at::<api::ListRotators, _, _>(list_rotators)
        .at::<api::DescribeRotator, _, _>(get_rotator)
        .at::<api::DeleteRotator, _, _>(delete_rotator)
}

fn principal_out(p: &PrincipalInfo) -> api::Principal {
    api::Principal {
        name: p.name.clone(),
        kind: p.kind.clone(),
        created: p.created.into(),
        policies: p.policies.clone(),
        tokens: p.tokens.clone(),
        access_keys: p.access_keys.clone(),
    }
}

fn token_out(t: &TokenInfo) -> api::Token {
    api::Token {
        id: t.id.clone(),
        principal: t.principal.clone(),
        created: t.created.into(),
        expires: t.expires.map(Into::into),
        revoked: t.revoked.map(Into::into),
    }
}

fn deleted(what: String) -> Json<Deleted> {
    Json(Deleted { deleted: what })
}

async fn create_principal(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Body(req): Body<api::NewPrincipal>,
) -> Result<(StatusCode, Json<api::NewPrincipal>)> {
    app.access
        .create_principal(&caller, &req.name, req.kind.as_str())
        .await?;
    Ok((StatusCode::CREATED, Json(req)))
}

async fn list_principals(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<api::PrincipalList>> {
    let all = app.access.list_principals(&caller)?;
    Ok(Json(api::PrincipalList {
        principals: all.iter().map(principal_out).collect(),
    }))
}

async fn delete_principal(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Deleted>> {
    app.access.delete_principal(&caller, &name).await?;
    Ok(deleted(name))
}

async fn attach(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((name, policy)): Path<(String, String)>,
) -> Result<Json<api::Attachment>> {
    app.access.attach(&caller, &name, &policy).await?;
    Ok(Json(api::Attachment {
        principal: name,
        attached: policy,
    }))
}

async fn detach(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((name, policy)): Path<(String, String)>,
) -> Result<Json<api::Detachment>> {
    app.access.detach(&caller, &name, &policy).await?;
    Ok(Json(api::Detachment {
        principal: name,
        detached: policy,
    }))
}

async fn put_policy(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Body(req): Body<api::PolicyBody>,
) -> Result<Json<Policy>> {
    let policy = Policy {
        name,
        statements: req.statements,
    };
    app.access.put_policy(&caller, &policy).await?;
    Ok(Json(policy))
}

async fn get_policy(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Policy>> {
    Ok(Json(app.access.get_policy(&caller, &name)?))
}

async fn list_policies(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<api::PolicyList>> {
    Ok(Json(api::PolicyList {
        policies: app.access.list_policies(&caller)?,
    }))
}

async fn delete_policy(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Deleted>> {
    app.access.delete_policy(&caller, &name).await?;
    Ok(deleted(name))
}

async fn create_token(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Body(req): Body<api::TokenRequest>,
) -> Result<(StatusCode, Json<api::NewToken>)> {
    let ttl = match req.ttl_secs {
        Some(secs) if !(1..=api::MAX_TOKEN_TTL_SECS).contains(&secs) => {
            return Err(rotor_core::Error::invalid_parameter(format!(
                "ttl_secs must be between 1 and {}, got {secs}",
                api::MAX_TOKEN_TTL_SECS
            ))
            .into());
        }
        Some(secs) => Some(Duration::seconds(secs)),
        None => None,
    };
    let (info, token) = app
        .access
        .create_token(&caller, &req.principal, ttl)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(api::NewToken {
            info: token_out(&info),
            token: token.into(),
        }),
    ))
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
    OptionalBody(req): OptionalBody<api::TokenRef>,
) -> Result<Json<api::Token>> {
    let which = req
        .token
        .map(|t| t.expose().to_string())
        .or_else(|| own_token(&headers))
        .unwrap_or_default();
    Ok(Json(token_out(&app.access.lookup_token(&caller, &which)?)))
}

async fn revoke_token(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Body(req): Body<api::TokenToRevoke>,
) -> Result<Json<api::Token>> {
    let which = req.token;
    Ok(Json(token_out(
        &app.access.revoke_token(&caller, which.expose()).await?,
    )))
}

async fn create_access_key(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Body(req): Body<api::AccessKeyRequest>,
) -> Result<(StatusCode, Json<api::NewAccessKey>)> {
    let (id, secret) = app
        .access
        .create_access_key(&caller, &req.principal)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(api::NewAccessKey {
            principal: req.principal,
            access_key_id: id,
            secret_access_key: secret.into(),
        }),
    ))
}

async fn delete_access_key(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Deleted>> {
    app.access.delete_access_key(&caller, &id).await?;
    Ok(deleted(id))
}

fn rotator_out(r: RotatorInfo, signing_key: Option<String>) -> api::Rotator {
    api::Rotator {
        name: r.name,
        kind: r.kind,
        config: r.config,
        created: r.created.into(),
        signing_key: signing_key.map(Sensitive::new),
    }
}

async fn create_rotator(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Body(req): Body<api::NewRotator>,
) -> Result<(StatusCode, Json<api::Rotator>)> {
    let key = app
        .rotations
        .create_rotator(
            &caller,
            &req.name,
            req.kind.as_str(),
            req.config,
            req.replace,
        )
        .await?;
    // Answer with the settings as stored (validated, defaults filled in).
    let stored = app.rotations.rotator(&caller, &req.name).await?;
    Ok((StatusCode::CREATED, Json(rotator_out(stored, key))))
}

async fn list_rotators(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<api::RotatorList>> {
    let all = app.rotations.rotators(&caller).await?;
    Ok(Json(api::RotatorList {
        rotators: all.into_iter().map(|r| rotator_out(r, None)).collect(),
    }))
}

async fn get_rotator(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<api::Rotator>> {
    let r = app.rotations.rotator(&caller, &name).await?;
    Ok(Json(rotator_out(r, None)))
}

async fn delete_rotator(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Deleted>> {
    app.rotations.delete_rotator(&caller, &name).await?;
    Ok(deleted(name))
}
