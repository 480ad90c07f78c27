//! The AWS Secrets Manager API: JSON 1.1 over `POST /`, the operation named by
//! `X-Amz-Target: secretsmanager.<Op>`, every request SigV4-signed.
//!
//! Field names, defaults and limits follow the [API reference]. This module only
//! translates: it parses the request, calls the [`SecretService`], and shapes the
//! answer; the rules live in the service and in `rotor-core`.
//!
//! [API reference]: https://docs.aws.amazon.com/secretsmanager/latest/apireference/Welcome.html

use crate::error::AwsError;
use crate::serve::PeerAddr;
use crate::{App, audit, metrics, sigv4};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use rotor_core::Error;
use rotor_core::filter::Filter;
use rotor_core::model::Tag;
use rotor_core::password::PasswordSpec;
use rotor_core::schedule::RotationRules;
use rotor_core::value::SecretValue;
use rotor_engine::rotation::{RotateRequest, Rotated, Rotations};
use rotor_engine::{
    Caller, CreateSecret, ListSecrets, PutValue, SecretService, SortBy, SortOrder, VersionValue,
};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Instant;

/// Largest request body accepted. A 64 KiB value fits with room for JSON escaping.
pub const MAX_BODY: usize = 1024 * 1024;

const TARGET_PREFIX: &str = "secretsmanager.";

// Header names made once: a lookup by `&str` parses the name each time.
const X_AMZ_TARGET: HeaderName = HeaderName::from_static("x-amz-target");
const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");

/// Handles `POST /`.
pub async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let peer = parts.extensions.get::<PeerAddr>().copied();
    let target = parts
        .headers
        .get(&X_AMZ_TARGET)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let op = operation_name(&target);
    let request_id = request_id();
    let mut principal = None;
    let mut subject = audit::Subject::default();
    let result = async {
        let body = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|_| AwsError {
                code: "RequestEntityTooLargeException",
                message: format!("The request body exceeds the limit of {MAX_BODY} bytes"),
                status: StatusCode::PAYLOAD_TOO_LARGE,
            })?;
        if app.audit.is_some() {
            subject = audit::aws_subject(&body);
        }
        let mut caller = None;
        let verified = sigv4::verify_with(
            &sigv4::SignedRequest {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query().unwrap_or(""),
                headers: &parts.headers,
                body: &body,
            },
            Utc::now(),
            |akid, scope| {
                let session = parts
                    .headers
                    .get(&X_AMZ_SECURITY_TOKEN)
                    .and_then(|v| v.to_str().ok());
                let (key, who) = app.access.signing_key(akid, session, scope)?;
                caller = Some(who);
                Some(key)
            },
        )
        .map_err(|e| AwsError {
            code: e.aws_type(),
            message: e.message(),
            status: StatusCode::UNAUTHORIZED,
        })?;
        let mut caller =
            caller.ok_or_else(|| Error::internal("verified request without a caller"))?;
        if let Some(PeerAddr(addr)) = peer {
            // Its reads make it a consumer of what it read (see rotor_engine::consumers).
            caller = caller.from_address(addr.ip());
        }
        principal = Some(caller.name().to_string());
        dispatch(
            &app.service,
            &app.rotations,
            &caller,
            op,
            &target,
            &body,
            &verified.region,
        )
        .await
    }
    .await;
    let mut response = match result {
        Ok(value) => {
            let mut resp = (StatusCode::OK, Body::from(value)).into_response();
            resp.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("application/x-amz-json-1.1"),
            );
            resp
        }
        Err(e) => e.into_response(),
    };
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", id);
    }
    let response = audit::record(
        &app,
        "aws",
        op,
        request_id,
        principal,
        peer.as_ref(),
        subject,
        response,
        || {
            AwsError {
                code: "InternalServiceError",
                message: "The request could not be audited, so it was refused".into(),
                status: StatusCode::INTERNAL_SERVER_ERROR,
            }
            .into_response()
        },
    )
    .await;
    metrics::observe("aws", op, response.status().as_u16(), start);
    response
}

/// A request id unique within this process, in UUID form as AWS's are: a random
/// base drawn once, plus a counter (cheaper than fresh randomness per request).
pub fn request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static BASE: OnceLock<u128> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| u128::from_le_bytes(rotor_crypto::random::bytes::<16>()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    uuid::Uuid::from_u128(base.wrapping_add(u128::from(n))).to_string()
}

/// The operations the AWS API serves.
pub(crate) const OPERATIONS: &[&str] = &[
    "CreateSecret",
    "PutSecretValue",
    "GetSecretValue",
    "BatchGetSecretValue",
    "UpdateSecret",
    "UpdateSecretVersionStage",
    "ListSecretVersionIds",
    "DescribeSecret",
    "ListSecrets",
    "DeleteSecret",
    "RestoreSecret",
    "GetRandomPassword",
    "TagResource",
    "UntagResource",
    "RotateSecret",
    "CancelRotateSecret",
];

/// The operation's name for metrics: one of a fixed set, so labels stay bounded.
fn operation_name(target: &str) -> &'static str {
    target
        .strip_prefix(TARGET_PREFIX)
        .and_then(|op| OPERATIONS.iter().find(|o| **o == op).copied())
        .unwrap_or("unknown")
}

async fn dispatch(
    service: &SecretService,
    rotations: &Arc<Rotations>,
    c: &Caller,
    op: &'static str,
    target: &str,
    body: &Bytes,
    region: &str,
) -> Result<Vec<u8>, AwsError> {
    let out = match op {
        "CreateSecret" => create_secret(service, c, parse(body)?, region).await?,
        "PutSecretValue" => put_secret_value(service, c, parse(body)?).await?,
        "GetSecretValue" => return get_secret_value(service, c, parse(body)?).await,
        "BatchGetSecretValue" => batch_get_secret_value(service, c, parse(body)?).await?,
        "UpdateSecret" => update_secret(service, c, parse(body)?).await?,
        "UpdateSecretVersionStage" => update_secret_version_stage(service, c, parse(body)?).await?,
        "ListSecretVersionIds" => list_secret_version_ids(service, c, parse(body)?).await?,
        "DescribeSecret" => describe_secret(service, c, parse(body)?).await?,
        "ListSecrets" => list_secrets(service, c, parse(body)?).await?,
        "DeleteSecret" => delete_secret(service, c, parse(body)?, region).await?,
        "RestoreSecret" => restore_secret(service, c, parse(body)?).await?,
        "GetRandomPassword" => get_random_password(service, c, parse(body)?)?,
        "TagResource" => tag_resource(service, c, parse(body)?).await?,
        "UntagResource" => untag_resource(service, c, parse(body)?).await?,
        "RotateSecret" => rotate_secret(rotations, c, parse(body)?).await?,
        "CancelRotateSecret" => {
            let req: SecretIdOnlyRef = parse(body)?;
            rotated_out(rotations.cancel(c, &req.secret_id).await?)
        }
        _ => {
            return Err(AwsError::client(
                "UnknownOperationException",
                format!(
                    "Unknown operation {target:?}: X-Amz-Target must be secretsmanager.<Operation>"
                ),
            ));
        }
    };
    serde_json::to_vec(&out).map_err(|_| Error::internal("response encoding failed").into())
}

/// Parses a request body. A missing required field is a `ValidationException`; any
/// other mismatch (bad JSON, wrong type) a `SerializationException`.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, AwsError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        if msg.starts_with("missing field") {
            AwsError::client(
                "ValidationException",
                format!("1 validation error detected: {msg}"),
            )
        } else {
            AwsError::serialization(format!("The request body could not be read: {msg}"))
        }
    })
}

fn epoch(t: DateTime<Utc>) -> Value {
    json!(t.timestamp_millis() as f64 / 1000.0)
}

fn value_from(
    string: Option<SecretString>,
    binary: Option<String>,
) -> Result<Option<SecretValue>, AwsError> {
    match (string, binary) {
        (Some(_), Some(_)) => Err(Error::invalid_parameter(
            "You can't specify both a binary secret value and a string secret value in the same secret.",
        )
        .into()),
        (Some(s), None) => Ok(Some(SecretValue::from_secret_string(s)?)),
        (None, Some(b)) => {
            let bytes = B64
                .decode(b.as_bytes())
                .map_err(|_| AwsError::serialization("SecretBinary is not valid base64"))?;
            Ok(Some(SecretValue::binary(bytes)?))
        }
        (None, None) => Ok(None),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagIn {
    key: String,
    #[serde(default)]
    value: String,
}

fn tags_in(tags: Option<Vec<TagIn>>) -> Vec<Tag> {
    tags.unwrap_or_default()
        .into_iter()
        .map(|t| Tag {
            key: t.key,
            value: t.value,
        })
        .collect()
}

fn tags_out(tags: &[Tag]) -> Value {
    tags.iter()
        .map(|t| json!({"Key": t.key, "Value": t.value}))
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FilterIn {
    key: Option<String>,
    values: Option<Vec<String>>,
}

fn filters_in(filters: Option<Vec<FilterIn>>) -> Result<Vec<Filter>, AwsError> {
    let filters = filters.unwrap_or_default();
    if filters.len() > 10 {
        return Err(Error::validation("At most 10 filters are allowed").into());
    }
    filters
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let key = f.key.as_deref().unwrap_or("");
            if rotor_core::filter::FilterKey::parse(key).is_err() {
                // AWS's model validation, in its words.
                return Err(Error::validation(format!(
                    "1 validation error detected: Value '{key}' at 'filters.{}.member.key' failed to satisfy constraint: Member must satisfy enum value set: [description, name, tag-key, tag-value, primary-region, owning-service, all]",
                    i + 1
                ))
                .into());
            }
            Filter::new(key, f.values.unwrap_or_default()).map_err(Into::into)
        })
        .collect()
}

fn page<T>(
    items: Vec<T>,
    max: Option<i64>,
    next: Option<&str>,
    limit: i64,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    crate::pagination::page(items, max, next, limit).map_err(Into::into)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateSecretIn {
    name: String,
    client_request_token: Option<String>,
    description: Option<String>,
    kms_key_id: Option<String>,
    secret_string: Option<SecretString>,
    secret_binary: Option<String>,
    tags: Option<Vec<TagIn>>,
    add_replica_regions: Option<Vec<Value>>,
}

async fn create_secret(
    s: &SecretService,
    c: &Caller,
    req: CreateSecretIn,
    region: &str,
) -> Result<Value, AwsError> {
    if req.add_replica_regions.is_some_and(|r| !r.is_empty()) {
        return Err(
            Error::invalid_request("Replica regions are not supported by this server").into(),
        );
    }
    let value = value_from(req.secret_string, req.secret_binary)?;
    let created = s
        .create(
            c,
            CreateSecret {
                name: req.name,
                region: region.to_string(),
                token: req.client_request_token,
                description: req.description,
                kms_key_id: req.kms_key_id,
                value,
                tags: tags_in(req.tags),
            },
        )
        .await?;
    let mut out = json!({"ARN": created.arn, "Name": created.name});
    if let Some(v) = created.version_id {
        out["VersionId"] = json!(v);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutSecretValueIn {
    secret_id: String,
    client_request_token: Option<String>,
    secret_string: Option<SecretString>,
    secret_binary: Option<String>,
    version_stages: Option<Vec<String>>,
}

async fn put_secret_value(
    s: &SecretService,
    c: &Caller,
    req: PutSecretValueIn,
) -> Result<Value, AwsError> {
    let value = value_from(req.secret_string, req.secret_binary)?.ok_or_else(|| {
        Error::invalid_request("You must provide either SecretString or SecretBinary.")
    })?;
    let given = req.version_stages.clone().unwrap_or_default();
    let mut put = s
        .put_value(
            c,
            PutValue {
                secret_id: req.secret_id,
                token: req.client_request_token,
                value,
                stages: req.version_stages,
            },
        )
        .await?;
    // In the order given, as AWS answers (any other label after them).
    put.stages
        .sort_by_key(|l| given.iter().position(|g| g == l).unwrap_or(usize::MAX));
    Ok(
        json!({"ARN": put.arn, "Name": put.name, "VersionId": put.version_id, "VersionStages": put.stages}),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetSecretValueIn {
    secret_id: String,
    version_id: Option<String>,
    version_stage: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SecretValueOut<'a> {
    #[serde(rename = "ARN")]
    arn: &'a str,
    name: &'a str,
    version_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_string: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_binary: Option<String>,
    version_stages: &'a [String],
    created_date: f64,
}

fn value_out(v: &VersionValue) -> SecretValueOut<'_> {
    let (secret_string, secret_binary) = match &v.value {
        SecretValue::String(s) => (Some(s.expose_secret()), None),
        SecretValue::Binary(b) => (None, Some(B64.encode(b.expose_secret()))),
    };
    SecretValueOut {
        arn: &v.arn,
        name: &v.name,
        version_id: &v.version_id,
        secret_string,
        secret_binary,
        version_stages: &v.stages,
        created_date: v.created.timestamp_millis() as f64 / 1000.0,
    }
}

async fn get_secret_value(
    s: &SecretService,
    c: &Caller,
    req: GetSecretValueIn,
) -> Result<Vec<u8>, AwsError> {
    let v = s
        .get_value(
            c,
            &req.secret_id,
            req.version_id.as_deref(),
            req.version_stage.as_deref(),
        )
        .await?;
    serde_json::to_vec(&value_out(&v))
        .map_err(|_| Error::internal("response encoding failed").into())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchGetIn {
    secret_id_list: Option<Vec<String>>,
    filters: Option<Vec<FilterIn>>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

async fn batch_get_secret_value(
    s: &SecretService,
    c: &Caller,
    req: BatchGetIn,
) -> Result<Value, AwsError> {
    let ids = match (req.secret_id_list, req.filters) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(Error::invalid_parameter(
                "Either 'SecretIdList' or 'Filters' must be provided, but not both.",
            )
            .into());
        }
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > 20 {
                return Err(Error::validation("SecretIdList must hold 1 to 20 ids").into());
            }
            if req.max_results.is_some() {
                return Err(Error::invalid_parameter(
                    "'Filters' not specified. 'Filters' must also be specified when 'MaxResults' is provided.",
                )
                .into());
            }
            ids
        }
        (None, Some(filters)) => {
            let filters = filters_in(Some(filters))?;
            let all = s
                .list(
                    c,
                    &ListSecrets {
                        filters,
                        ..Default::default()
                    },
                )
                .await?;
            let names: Vec<String> = all.into_iter().map(|x| x.meta.arn).collect();
            let (page_ids, next) = page(names, req.max_results, req.next_token.as_deref(), 20)?;
            let (values, errors) = s.batch_get(c, &page_ids).await;
            return Ok(batch_out(&values, &errors, next));
        }
    };
    let (values, errors) = s.batch_get(c, &ids).await;
    Ok(batch_out(&values, &errors, None))
}

fn batch_out(
    values: &[VersionValue],
    errors: &[rotor_engine::BatchError],
    next: Option<String>,
) -> Value {
    let values: Vec<Value> = values
        .iter()
        .map(|v| serde_json::to_value(value_out(v)).unwrap_or(Value::Null))
        .collect();
    let errors: Vec<Value> = errors
        .iter()
        .map(|e| json!({"SecretId": e.secret_id, "ErrorCode": e.error.kind.aws_type(), "Message": e.error.message}))
        .collect();
    let mut out = json!({"SecretValues": values, "Errors": errors});
    if let Some(n) = next {
        out["NextToken"] = json!(n);
    }
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateSecretIn {
    secret_id: String,
    client_request_token: Option<String>,
    description: Option<String>,
    kms_key_id: Option<String>,
    secret_string: Option<SecretString>,
    secret_binary: Option<String>,
}

async fn update_secret(
    s: &SecretService,
    c: &Caller,
    req: UpdateSecretIn,
) -> Result<Value, AwsError> {
    let value = value_from(req.secret_string, req.secret_binary)?;
    let (arn, name, version) = s
        .update(
            c,
            &req.secret_id,
            req.client_request_token,
            req.description,
            req.kms_key_id,
            value,
        )
        .await?;
    let mut out = json!({"ARN": arn, "Name": name});
    if let Some(v) = version {
        out["VersionId"] = json!(v);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateStageIn {
    secret_id: String,
    version_stage: String,
    move_to_version_id: Option<String>,
    remove_from_version_id: Option<String>,
}

async fn update_secret_version_stage(
    s: &SecretService,
    c: &Caller,
    req: UpdateStageIn,
) -> Result<Value, AwsError> {
    let (arn, name) = s
        .update_stage(
            c,
            &req.secret_id,
            &req.version_stage,
            req.move_to_version_id,
            req.remove_from_version_id,
        )
        .await?;
    Ok(json!({"ARN": arn, "Name": name}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListVersionsIn {
    secret_id: String,
    max_results: Option<i64>,
    next_token: Option<String>,
    include_deprecated: Option<bool>,
}

async fn list_secret_version_ids(
    s: &SecretService,
    c: &Caller,
    req: ListVersionsIn,
) -> Result<Value, AwsError> {
    let (record, versions) = s
        .list_versions(c, &req.secret_id, req.include_deprecated.unwrap_or(false))
        .await?;
    let (versions, next) = page(versions, req.max_results, req.next_token.as_deref(), 100)?;
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({"VersionId": v.id, "VersionStages": v.labels, "CreatedDate": epoch(v.created),
                   "KmsKeyIds": [record.meta.kms_key_id.as_deref().unwrap_or("DefaultEncryptionKey")]})
        })
        .collect();
    let mut out = json!({"Versions": versions, "ARN": record.meta.arn, "Name": record.meta.name});
    if let Some(n) = next {
        out["NextToken"] = json!(n);
    }
    Ok(out)
}

fn describe_out(
    meta: &rotor_core::model::SecretMeta,
    stages: &[(String, Vec<String>)],
    field: &str,
) -> Value {
    let mut out = Map::new();
    out.insert("ARN".into(), json!(meta.arn));
    out.insert("Name".into(), json!(meta.name));
    if let Some(d) = &meta.description {
        out.insert("Description".into(), json!(d));
    }
    if let Some(k) = &meta.kms_key_id {
        out.insert("KmsKeyId".into(), json!(k));
    }
    let r = &meta.rotation;
    // AWS leaves it out for a secret never configured for rotation.
    if r.enabled || r.rotator.is_some() || r.rules.is_some() {
        out.insert("RotationEnabled".into(), json!(r.enabled));
    }
    if let Some(rotator) = &r.rotator {
        out.insert("RotationLambdaARN".into(), json!(rotator));
    }
    if let Some(rules) = r
        .rules
        .as_deref()
        .and_then(|j| serde_json::from_str::<Value>(j).ok())
    {
        out.insert("RotationRules".into(), rules);
    }
    if let Some(t) = r.last_rotated {
        out.insert("LastRotatedDate".into(), epoch(t));
    }
    if let Some(t) = r.next_rotation.filter(|_| r.enabled) {
        out.insert("NextRotationDate".into(), epoch(t));
    }
    if let Some(failed) = &r.failed {
        // Not in AWS's shape (SDKs ignore it): why the last rotation failed.
        out.insert("RotorRotationError".into(), json!(failed));
    }
    out.insert("LastChangedDate".into(), epoch(meta.last_changed));
    if let Some(d) = meta.deletion_date {
        out.insert("DeletedDate".into(), epoch(d));
    }
    if !meta.tags.is_empty() {
        out.insert("Tags".into(), tags_out(&meta.tags));
    }
    let stages: Map<String, Value> = stages
        .iter()
        .map(|(id, l)| (id.clone(), json!(l)))
        .collect();
    out.insert(field.into(), Value::Object(stages));
    out.insert("CreatedDate".into(), epoch(meta.created));
    Value::Object(out)
}

async fn describe_secret(
    s: &SecretService,
    c: &Caller,
    req: SecretIdOnlyRef,
) -> Result<Value, AwsError> {
    let d = s.describe(c, &req.secret_id).await?;
    let mut out = describe_out(&d.meta, &d.versions_to_stages, "VersionIdsToStages");
    if let (Some(t), Value::Object(map)) = (d.last_accessed, &mut out) {
        map.insert("LastAccessedDate".into(), epoch(t));
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RotateSecretIn {
    secret_id: String,
    client_request_token: Option<String>,
    #[serde(rename = "RotationLambdaARN")]
    rotation_lambda_arn: Option<String>,
    rotation_rules: Option<RotationRules>,
    rotate_immediately: Option<bool>,
}

async fn rotate_secret(
    rotations: &Arc<Rotations>,
    c: &Caller,
    req: RotateSecretIn,
) -> Result<Value, AwsError> {
    // AWS's length for a token (Alibaba's API takes shorter version ids).
    if req
        .client_request_token
        .as_ref()
        .is_some_and(|t| !(32..=64).contains(&t.len()))
    {
        return Err(
            Error::invalid_parameter("ClientRequestToken must be 32-64 characters long.").into(),
        );
    }
    let done = rotations
        .rotate_secret(
            c,
            RotateRequest {
                secret_id: req.secret_id,
                token: req.client_request_token,
                rotator: req.rotation_lambda_arn,
                rules: req.rotation_rules,
                rotate_immediately: req.rotate_immediately,
                adoption: None,
            },
        )
        .await?;
    Ok(rotated_out(done))
}

fn rotated_out(done: Rotated) -> Value {
    let mut out = json!({"ARN": done.arn, "Name": done.name});
    if let Some(v) = done.version_id {
        out["VersionId"] = json!(v);
    }
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SecretIdOnlyRef {
    secret_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListSecretsIn {
    include_planned_deletion: Option<bool>,
    max_results: Option<i64>,
    next_token: Option<String>,
    filters: Option<Vec<FilterIn>>,
    sort_order: Option<String>,
    sort_by: Option<String>,
}

async fn list_secrets(
    s: &SecretService,
    c: &Caller,
    req: ListSecretsIn,
) -> Result<Value, AwsError> {
    let sort_order = match req.sort_order.as_deref() {
        None | Some("asc") => SortOrder::Asc,
        Some("desc") => SortOrder::Desc,
        Some(other) => {
            return Err(
                Error::validation(format!("SortOrder must be asc or desc, got {other:?}")).into(),
            );
        }
    };
    let sort_by = match req.sort_by.as_deref() {
        None | Some("created-date") | Some("last-accessed-date") => SortBy::CreatedDate,
        Some("last-changed-date") => SortBy::LastChangedDate,
        Some("name") => SortBy::Name,
        Some(other) => {
            return Err(Error::validation(format!(
                "SortBy must be created-date, last-accessed-date, last-changed-date or name, got {other:?}"
            ))
            .into());
        }
    };
    let all = s
        .list(
            c,
            &ListSecrets {
                include_planned_deletion: req.include_planned_deletion.unwrap_or(false),
                filters: filters_in(req.filters)?,
                sort_order,
                sort_by,
                prefix: None,
            },
        )
        .await?;
    let (secrets, next) = page(all, req.max_results, req.next_token.as_deref(), 100)?;
    let ids: Vec<i64> = secrets.iter().map(|x| x.meta.id).collect();
    let accessed = s.last_accessed(&ids).await?;
    let list: Vec<Value> = secrets
        .iter()
        .map(|x| {
            let mut out = describe_out(&x.meta, &x.stages, "SecretVersionsToStages");
            if let (Some(t), Value::Object(map)) = (accessed.get(&x.meta.id), &mut out) {
                map.insert("LastAccessedDate".into(), epoch(*t));
            }
            out
        })
        .collect();
    let mut out = json!({"SecretList": list});
    if let Some(n) = next {
        out["NextToken"] = json!(n);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteSecretIn {
    secret_id: String,
    recovery_window_in_days: Option<i64>,
    force_delete_without_recovery: Option<bool>,
}

async fn delete_secret(
    s: &SecretService,
    c: &Caller,
    req: DeleteSecretIn,
    region: &str,
) -> Result<Value, AwsError> {
    let force = req.force_delete_without_recovery.unwrap_or(false);
    let deleted = s
        .delete(c, &req.secret_id, req.recovery_window_in_days, force)
        .await;
    let d = match deleted {
        // A forced delete of a secret that is not there is done, as on AWS. (A plain
        // name is authorized before it is looked up: the caller may delete it.)
        Err(e)
            if force
                && e.kind == rotor_core::ErrorKind::ResourceNotFound
                && !req.secret_id.starts_with("arn:") =>
        {
            let arn = format!(
                "arn:aws:secretsmanager:{region}:{}:secret:{}",
                s.account_id(),
                req.secret_id
            );
            return Ok(json!({"ARN": arn, "Name": req.secret_id, "DeletionDate": epoch(s.now())}));
        }
        other => other?,
    };
    Ok(json!({"ARN": d.arn, "Name": d.name, "DeletionDate": epoch(d.deletion_date)}))
}

async fn restore_secret(
    s: &SecretService,
    c: &Caller,
    req: SecretIdOnlyRef,
) -> Result<Value, AwsError> {
    let (arn, name) = s.restore(c, &req.secret_id).await?;
    Ok(json!({"ARN": arn, "Name": name}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RandomPasswordIn {
    password_length: Option<i64>,
    exclude_characters: Option<String>,
    exclude_numbers: Option<bool>,
    exclude_punctuation: Option<bool>,
    exclude_uppercase: Option<bool>,
    exclude_lowercase: Option<bool>,
    include_space: Option<bool>,
    require_each_included_type: Option<bool>,
}

fn get_random_password(
    s: &SecretService,
    _: &Caller,
    req: RandomPasswordIn,
) -> Result<Value, AwsError> {
    let length = req.password_length.unwrap_or(32);
    if !(1..=4096).contains(&length) {
        return Err(Error::invalid_parameter(format!(
            "PasswordLength must be between 1 and 4096, got {length}"
        ))
        .into());
    }
    let spec = PasswordSpec {
        length: length as usize,
        exclude_characters: req.exclude_characters.unwrap_or_default(),
        exclude_numbers: req.exclude_numbers.unwrap_or(false),
        exclude_punctuation: req.exclude_punctuation.unwrap_or(false),
        exclude_uppercase: req.exclude_uppercase.unwrap_or(false),
        exclude_lowercase: req.exclude_lowercase.unwrap_or(false),
        include_space: req.include_space.unwrap_or(false),
        require_each_included_type: req.require_each_included_type.unwrap_or(true),
    };
    Ok(json!({"RandomPassword": s.random_password(&spec)?}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceIn {
    secret_id: String,
    tags: Vec<TagIn>,
}

async fn tag_resource(
    s: &SecretService,
    c: &Caller,
    req: TagResourceIn,
) -> Result<Value, AwsError> {
    s.tag(c, &req.secret_id, tags_in(Some(req.tags))).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagResourceIn {
    secret_id: String,
    tag_keys: Vec<String>,
}

async fn untag_resource(
    s: &SecretService,
    c: &Caller,
    req: UntagResourceIn,
) -> Result<Value, AwsError> {
    s.untag(c, &req.secret_id, req.tag_keys).await?;
    Ok(json!({}))
}
