//! Fuzzing of what the server reads from the network: the SigV4 `Authorization`
//! header and the request it signs, the AWS API's JSON bodies, Alibaba's parameters
//! and signatures, and the native API's paths, query strings and JSON bodies. Property tests: whatever arrives, the server
//! answers (an error or a result), never panics and never answers 500; an AWS error is
//! AWS-shaped JSON with `__type`; a request whose body or date changed after signing
//! never verifies.
//!
//! `ROTOR_FUZZ_CASES` sets the cases per property (default 256); README's "Fuzzing"
//! gives the 100,000-case release run. The router tests share one runtime and one
//! server per test, rebuilt every [`REBUILD_EVERY`] cases so the store stays small.

use crate::App;
use crate::sigv4::{SigV4Error, SignedRequest, sign, verify};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use rotor_engine::{AccessService, SecretService};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tower::ServiceExt as _;

const AKID: &str = "AKIDFUZZROOT";
const SECRET: &str = "fuzz-root-secret-access-key";
const TOKEN: &str = "fuzz-root-token";
const DATE: &str = "20261121T100000Z";

/// A server is rebuilt (fresh store) after this many requests, so that what the fuzz
/// creates does not make every later list slower.
const REBUILD_EVERY: usize = 2000;

/// The longest one request may take; a long poll (`/v1/events?wait=`) may take it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-21T10:05:00Z")
        .unwrap()
        .into()
}

// ---------------------------------------------------------------------------------
// Mutations and arbitrary values shared by the properties.

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the byte at (index modulo length) with this byte.
    Set(usize, u8),
    /// Flip one bit of the byte at (index modulo length).
    Flip(usize, u8),
    /// Insert bytes at (index modulo length + 1).
    Insert(usize, Vec<u8>),
    /// Remove up to `n` bytes from (index modulo length).
    Remove(usize, usize),
    /// Keep the first (index modulo length) bytes.
    Truncate(usize),
    /// Repeat a slice many times (long inputs).
    Repeat(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            any::<usize>(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 1..8),
                Just(b",".to_vec()),
                Just(b"/".to_vec()),
                Just(b"%".to_vec()),
                Just(b"\"".to_vec()),
                Just(b"{".to_vec()),
                Just(b"}".to_vec()),
                Just(b"[".to_vec()),
                Just(b"\\u0000".to_vec()),
                Just(b"\xff".to_vec()),
                Just("é".as_bytes().to_vec()),
            ]
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..8, 2usize..200).prop_map(|(i, n, k)| Mutation::Repeat(i, n, k)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    match m {
        Mutation::Set(i, b) if len > 0 => bytes[i % len] = *b,
        Mutation::Flip(i, bit) if len > 0 => bytes[i % len] ^= 1 << bit,
        Mutation::Insert(i, b) => {
            let at = i % (len + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Mutation::Remove(i, n) if len > 0 => {
            let at = i % len;
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::Truncate(i) => bytes.truncate(i % (len + 1)),
        Mutation::Repeat(i, n, k) if len > 0 => {
            let at = i % len;
            let slice = bytes[at..(at + n).min(len)].to_vec();
            let repeated = slice.repeat(*k);
            bytes.splice(at..at, repeated);
        }
        _ => {}
    }
}

fn mutated(bytes: &[u8], edits: &[Mutation]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for m in edits {
        mutate(&mut out, m);
    }
    out
}

/// Short text: often plain, sometimes odd (control characters, unicode, escapes).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9/_+=.@-]{0,24}",
        ".{0,24}",
        Just(String::new()),
        Just("/".repeat(300)),
        Just("a".repeat(3000)),
        Just("AWSCURRENT".to_string()),
        Just("fuzz/a".to_string()),
    ]
}

/// Numbers JSON carries, including the edges of i64 and floats.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-5i64..200).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        Just(json!(1e300)),
        Just(json!(-0.0)),
    ]
}

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A structural edit of a JSON object: a field replaced, removed or added.
#[derive(Debug, Clone)]
enum JsonEdit {
    Replace(usize, Value),
    Remove(usize),
    Add(String, Value),
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        (any::<usize>(), json_value()).prop_map(|(i, v)| JsonEdit::Replace(i, v)),
        any::<usize>().prop_map(JsonEdit::Remove),
        (text(), json_value()).prop_map(|(k, v)| JsonEdit::Add(k, v)),
    ]
}

fn edit_json(value: &mut Value, edit: &JsonEdit) {
    let Value::Object(map) = value else { return };
    let keys: Vec<String> = map.keys().cloned().collect();
    match edit {
        JsonEdit::Replace(i, v) if !keys.is_empty() => {
            map.insert(keys[i % keys.len()].clone(), v.clone());
        }
        JsonEdit::Remove(i) if !keys.is_empty() => {
            map.remove(&keys[i % keys.len()]);
        }
        JsonEdit::Add(k, v) => {
            map.insert(k.clone(), v.clone());
        }
        _ => {}
    }
}

/// A body: arbitrary bytes, arbitrary JSON, or one of `templates` edited as JSON and
/// then as bytes.
fn body_from(templates: Vec<Value>) -> impl Strategy<Value = Vec<u8>> {
    let n = templates.len();
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        6 => (
            0..n,
            proptest::collection::vec(json_edit(), 0..3),
            proptest::collection::vec(mutation(), 0..2),
        )
            .prop_map(move |(i, edits, muts)| {
                let mut v = templates[i].clone();
                for e in &edits {
                    edit_json(&mut v, e);
                }
                mutated(&serde_json::to_vec(&v).unwrap(), &muts)
            }),
    ]
}

// ---------------------------------------------------------------------------------
// SigV4.

fn signed_headers(body: &[u8], date: &str) -> Vec<(String, String)> {
    let mut headers = vec![
        ("host".to_string(), "localhost:8200".to_string()),
        ("x-amz-date".to_string(), date.to_string()),
        (
            "x-amz-target".to_string(),
            "secretsmanager.GetSecretValue".to_string(),
        ),
    ];
    let auth = sign(
        "POST",
        "/",
        "",
        &headers,
        body,
        AKID,
        SECRET,
        "us-east-1",
        "secretsmanager",
    );
    headers.push(("authorization".to_string(), auth));
    headers
}

/// The header map of `(name, value bytes)`, leaving out values HTTP cannot carry.
fn header_map(headers: &[(String, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(n, v);
        }
    }
    map
}

fn verify_at(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<crate::sigv4::Verified, SigV4Error> {
    let req = SignedRequest {
        method,
        path,
        query,
        headers,
        body,
    };
    verify(&req, now(), |id| (id == AKID).then(|| SECRET.to_string()))
}

/// Authorization headers shaped like SigV4 often enough to reach every check.
fn authorization() -> impl Strategy<Value = Vec<u8>> {
    let part = prop_oneof![
        "Credential=[A-Z]{0,4}(/[0-9]{0,8}){0,2}(/[a-z0-9-]{0,10}){0,3}(/aws4_request)?",
        Just(format!(
            "Credential={AKID}/20261121/us-east-1/secretsmanager/aws4_request"
        )),
        "SignedHeaders=(host|x-amz-date|[a-z;-]{0,12})(;(host|x-amz-date|[a-z-]{0,8})){0,4}",
        "Signature=[0-9a-f]{0,70}",
        ".{0,20}",
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..120),
        ".{0,120}".prop_map(String::into_bytes),
        (
            prop_oneof![
                Just("AWS4-HMAC-SHA256 ".to_string()),
                Just("AWS4-HMAC-SHA256".to_string()),
                ".{0,4}".prop_map(|s| format!("AWS4-HMAC-SHA256{s}")),
            ],
            proptest::collection::vec(part, 0..6),
            "[, ]{1,3}",
        )
            .prop_map(|(algo, parts, sep)| format!("{algo}{}", parts.join(&sep)).into_bytes()),
    ]
}

proptest! {
    #![proptest_config(rotor_testkit::fuzz_config())]

    /// Any `Authorization`, `X-Amz-Date` and `x-amz-content-sha256`, over any body:
    /// an error or a verification, never a panic; only the true signature verifies.
    #[test]
    fn fuzz_sigv4_arbitrary_authorization_headers(
        auth in authorization(),
        date in prop_oneof![
            Just(DATE.as_bytes().to_vec()),
            "[0-9TZ]{0,20}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..24),
        ],
        sha in proptest::option::of(prop_oneof![
            "[0-9a-fA-F]{0,70}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..70),
        ]),
        extra in proptest::collection::vec(("[a-z-]{1,12}", proptest::collection::vec(any::<u8>(), 0..20)), 0..3),
        body in proptest::collection::vec(any::<u8>(), 0..64),
        method in prop_oneof![Just("POST".to_string()), "[A-Z]{0,7}"],
        path in prop_oneof![Just("/".to_string()), ".{0,20}"],
        query in prop_oneof![Just(String::new()), ".{0,20}"],
    ) {
        let mut headers = vec![
            ("host".to_string(), b"localhost:8200".to_vec()),
            ("x-amz-date".to_string(), date),
            ("authorization".to_string(), auth),
        ];
        if let Some(sha) = sha {
            headers.push(("x-amz-content-sha256".to_string(), sha));
        }
        headers.extend(extra);
        let map = header_map(&headers);
        if let Ok(ok) = verify_at(&method, &path, &query, &map, &body) {
            // Random text does not forge an HMAC: only the key's owner signs.
            prop_assert_eq!(ok.access_key_id, AKID);
            let auth = map.get("authorization").unwrap().to_str().unwrap();
            prop_assert!(auth.contains("Signature="), "{auth}");
        }
    }

    /// A correctly signed request with its header, date, body, method, path or query
    /// edited: never a panic, and an edited body or date never verifies.
    #[test]
    fn fuzz_sigv4_mutated_signed_requests(
        body in prop_oneof![
            Just(br#"{"SecretId":"prod/db"}"#.to_vec()),
            proptest::collection::vec(any::<u8>(), 0..64),
        ],
        part in 0usize..7,
        edits in proptest::collection::vec(mutation(), 1..4),
    ) {
        let headers = signed_headers(&body, DATE);
        let mut pairs: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        let pristine = header_map(&pairs);
        prop_assert!(verify_at("POST", "/", "", &pristine, &body).is_ok(), "the unedited request verifies");

        let (mut method, mut path, mut query, mut new_body) =
            ("POST".to_string(), "/".to_string(), String::new(), body.clone());
        let lossy = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        match part {
            0 => pairs[3].1 = mutated(&pairs[3].1, &edits),
            1 => pairs[1].1 = mutated(&pairs[1].1, &edits),
            2 => new_body = mutated(&body, &edits),
            3 => method = lossy(mutated(method.as_bytes(), &edits)),
            4 => path = lossy(mutated(path.as_bytes(), &edits)),
            5 => query = lossy(mutated(query.as_bytes(), &edits)),
            _ => pairs[0].1 = mutated(&pairs[0].1, &edits),
        }
        let map = header_map(&pairs);
        let result = verify_at(&method, &path, &query, &map, &new_body);
        if new_body != body {
            prop_assert!(result.is_err(), "an edited body verified");
        }
        let date_changed = map.get("x-amz-date").map(|v| v.as_bytes()) != Some(DATE.as_bytes());
        if date_changed {
            prop_assert!(result.is_err(), "an edited date verified");
        }
        if let Ok(ok) = result {
            prop_assert_eq!(ok.access_key_id, AKID);
        }
    }
}

// ---------------------------------------------------------------------------------
// The router: one runtime for every case, one server per test.

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// A server with an ephemeral SQLite store, a root token and a root access key, and
/// secrets `fuzz/a` and `fuzz/b` for the requests to find.
async fn server() -> Router {
    let store = Arc::new(
        rotor_store::sqlite::SqliteStore::ephemeral()
            .await
            .expect("an ephemeral store"),
    );
    let service = Arc::new(SecretService::with_random_key(store, "123456789012"));
    let access = Arc::new(
        AccessService::load(service.store(), service.envelope(), service.clock())
            .await
            .expect("access"),
    );
    access
        .bootstrap(Some(TOKEN), Some((AKID, SECRET)))
        .await
        .expect("bootstrap");
    let router = App::new(service, access, None).router();
    for name in ["fuzz/a", "fuzz/b"] {
        let body = json!({"name": name, "value": r#"{"user":"u","password":"p"}"#});
        let req = Request::post("/v1/secrets")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        assert!(
            resp.status().is_success(),
            "seeding {name}: {}",
            resp.status()
        );
    }
    router
}

/// A server per test, rebuilt every [`REBUILD_EVERY`] requests.
struct Servers {
    slot: Mutex<Option<(usize, Router)>>,
}

impl Servers {
    const fn new() -> Self {
        Servers {
            slot: Mutex::new(None),
        }
    }

    fn get(&self) -> Router {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_mut() {
            Some((n, router)) if *n < REBUILD_EVERY => {
                *n += 1;
                router.clone()
            }
            _ => {
                let router = runtime().block_on(server());
                *slot = Some((1, router.clone()));
                router
            }
        }
    }
}

/// Sends `req`, giving the status, the content type and the body.
fn send(
    router: Router,
    req: Request<Body>,
    read_body: bool,
) -> Option<(StatusCode, String, Vec<u8>)> {
    runtime().block_on(async move {
        tokio::time::timeout(REQUEST_TIMEOUT, async move {
            let resp = router.oneshot(req).await.unwrap();
            let status = resp.status();
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = if read_body {
                axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            (status, content_type, body)
        })
        .await
        .ok()
    })
}

// ---------------------------------------------------------------------------------
// The AWS API.

const AWS_OPS: &[&str] = crate::aws_api::OPERATIONS;

/// Well-formed bodies of every operation, for the fuzz to edit.
fn aws_templates() -> Vec<Value> {
    vec![
        json!({"Name": "fuzz/new", "SecretString": "v", "Description": "d", "Tags": [{"Key": "k", "Value": "v"}]}),
        json!({"Name": "fuzz/bin", "SecretBinary": "AAEC", "ClientRequestToken": "0123456789abcdef0123456789abcdef"}),
        json!({"SecretId": "fuzz/a", "SecretString": "x", "VersionStages": ["AWSCURRENT"]}),
        json!({"SecretId": "fuzz/a", "SecretBinary": "AAEC", "ClientRequestToken": "0123456789abcdef0123456789abcdef"}),
        json!({"SecretId": "fuzz/a", "VersionStage": "AWSPREVIOUS"}),
        json!({"SecretId": "fuzz/a", "VersionId": "0123456789abcdef0123456789abcdef"}),
        json!({"SecretIdList": ["fuzz/a", "fuzz/b"]}),
        json!({"Filters": [{"Key": "name", "Values": ["fuzz"]}], "MaxResults": 5, "NextToken": "1"}),
        json!({"SecretId": "fuzz/b", "Description": "d", "KmsKeyId": "k", "SecretString": "y"}),
        json!({"SecretId": "fuzz/a", "VersionStage": "STAGE", "MoveToVersionId": "0123456789abcdef0123456789abcdef", "RemoveFromVersionId": "x"}),
        json!({"SecretId": "fuzz/a", "MaxResults": 2, "IncludeDeprecated": true, "NextToken": "2"}),
        json!({"MaxResults": 10, "Filters": [{"Key": "tag-key", "Values": ["!k"]}], "SortOrder": "desc", "IncludePlannedDeletion": true}),
        json!({"SecretId": "fuzz/b", "RecoveryWindowInDays": 7}),
        json!({"SecretId": "fuzz/b", "ForceDeleteWithoutRecovery": true}),
        json!({"SecretId": "fuzz/b"}),
        json!({"PasswordLength": 32, "ExcludeCharacters": "abc", "ExcludePunctuation": true, "RequireEachIncludedType": true}),
        json!({"SecretId": "fuzz/a", "Tags": [{"Key": "k", "Value": "v"}]}),
        json!({"SecretId": "fuzz/a", "TagKeys": ["k"]}),
        json!({"SecretId": "fuzz/a", "RotationRules": {"ScheduleExpression": "rate(10 days)", "Duration": "2h"}, "RotateImmediately": false}),
        json!({"SecretId": "fuzz/a", "RotationRules": {"AutomaticallyAfterDays": 30}, "RotationLambdaARN": "arn:aws:lambda:us-east-1:123456789012:function:x"}),
        json!({}),
    ]
}

static AWS_SERVERS: Servers = Servers::new();

proptest! {
    #![proptest_config(rotor_testkit::fuzz_config())]

    /// Signed `POST /` requests for every operation with arbitrary and edited JSON
    /// bodies: never a panic, never a 500, never a 401 (they are signed), and every
    /// error is `{"__type": ..., "Message": ...}`.
    #[test]
    fn fuzz_aws_api_json_bodies(
        op in prop_oneof![
            8 => proptest::sample::select(AWS_OPS).prop_map(|op| format!("secretsmanager.{op}")),
            1 => ".{0,30}",
            1 => "secretsmanager\\.[A-Za-z]{0,20}",
        ],
        body in body_from(aws_templates()),
        content_type in prop_oneof![
            Just(Some("application/x-amz-json-1.1".to_string())),
            Just(None),
            Just(Some("text/plain".to_string())),
        ],
    ) {
        let date = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let mut headers = vec![
            ("host".to_string(), "localhost".to_string()),
            ("x-amz-date".to_string(), date),
        ];
        if op.is_ascii() && HeaderValue::from_str(&op).is_ok() {
            headers.push(("x-amz-target".to_string(), op.clone()));
        }
        if let Some(ct) = content_type {
            headers.push(("content-type".to_string(), ct));
        }
        let auth = sign("POST", "/", "", &headers, &body, AKID, SECRET, "us-east-1", "secretsmanager");
        let mut req = Request::post("/");
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let req = req.header("authorization", auth).body(Body::from(body.clone())).unwrap();
        let (status, content_type, out) = send(AWS_SERVERS.get(), req, true)
            .ok_or_else(|| TestCaseError::fail(format!("{op} timed out")))?;
        let shown = String::from_utf8_lossy(&out);
        prop_assert!(status != StatusCode::INTERNAL_SERVER_ERROR, "{op} {:?}: 500 {shown}", String::from_utf8_lossy(&body));
        prop_assert!(status != StatusCode::UNAUTHORIZED, "{op}: a signed request was refused: {shown}");
        prop_assert_eq!(content_type, "application/x-amz-json-1.1");
        let doc: Value = serde_json::from_slice(&out)
            .map_err(|e| TestCaseError::fail(format!("{op}: not JSON ({e}): {shown}")))?;
        if !status.is_success() {
            prop_assert!(doc["__type"].is_string(), "{op}: {status} without __type: {shown}");
            prop_assert!(doc["Message"].is_string(), "{op}: {status} without Message: {shown}");
        }
    }
}

// ---------------------------------------------------------------------------------
// The native API.

/// Every `/v1` route: method and path, `{}` standing for one path parameter.
const NATIVE_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/secrets"),
    ("GET", "/v1/secrets"),
    ("GET", "/v1/secrets/{}"),
    ("PUT", "/v1/secrets/{}"),
    ("DELETE", "/v1/secrets/{}"),
    ("GET", "/v1/metadata/{}"),
    ("PATCH", "/v1/metadata/{}"),
    ("POST", "/v1/restore/{}"),
    ("GET", "/v1/versions/{}"),
    ("POST", "/v1/stages/{}"),
    ("POST", "/v1/tags/{}"),
    ("DELETE", "/v1/tags/{}"),
    ("GET", "/v1/rotation/{}"),
    ("PUT", "/v1/rotation/{}"),
    ("GET", "/v1/rotation-history/{}"),
    ("POST", "/v1/cancel-rotation/{}"),
    ("POST", "/v1/rotate/{}"),
    ("POST", "/v1/password"),
    ("POST", "/v1/sys/principals"),
    ("GET", "/v1/sys/principals"),
    ("DELETE", "/v1/sys/principals/{}"),
    ("PUT", "/v1/sys/principals/{}/policies/{}"),
    ("DELETE", "/v1/sys/principals/{}/policies/{}"),
    ("GET", "/v1/sys/policies"),
    ("PUT", "/v1/sys/policies/{}"),
    ("GET", "/v1/sys/policies/{}"),
    ("DELETE", "/v1/sys/policies/{}"),
    ("POST", "/v1/sys/tokens"),
    ("POST", "/v1/sys/tokens/lookup"),
    ("POST", "/v1/sys/tokens/revoke"),
    ("POST", "/v1/sys/access-keys"),
    ("DELETE", "/v1/sys/access-keys/{}"),
    ("POST", "/v1/sys/rotators"),
    ("GET", "/v1/sys/rotators"),
    ("GET", "/v1/sys/rotators/{}"),
    ("DELETE", "/v1/sys/rotators/{}"),
    ("GET", "/v1/watch"),
    ("GET", "/v1/events"),
    ("GET", "/v1/sys/subscriptions"),
    ("POST", "/v1/sys/subscriptions"),
    ("GET", "/v1/sys/subscriptions/{}"),
    ("DELETE", "/v1/sys/subscriptions/{}"),
    ("GET", "/v1/sys/subscriptions/{}/deliveries"),
    ("POST", "/v1/replication"),
    ("GET", "/v1/replication"),
    ("GET", "/v1/replication/{}"),
    ("DELETE", "/v1/replication/{}"),
    ("POST", "/v1/replication-sync"),
    ("POST", "/v1/consumers"),
    ("GET", "/v1/consumers/{}"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/nowhere/{}"),
];

/// Well-formed native bodies, for the fuzz to edit. None creates a rotator or a
/// subscription that runs anything: the fuzz must not start commands.
fn native_templates() -> Vec<Value> {
    vec![
        json!({"name": "fuzz/new", "value": "v", "description": "d", "tags": {"k": "v"}, "region": "eu-west-1"}),
        json!({"name": "fuzz/bin", "value_base64": "AAEC", "version_id": "0123456789abcdef0123456789abcdef"}),
        json!({"value": "x", "stages": ["AWSCURRENT", "custom"], "version_id": "0123456789abcdef0123456789abcdef"}),
        json!({"recovery_window_days": 7, "force": false}),
        json!({"description": "d"}),
        json!({"stage": "custom", "move_to": "0123456789abcdef0123456789abcdef", "remove_from": "x"}),
        json!({"tags": {"k": "v"}}),
        json!({"length": 40, "exclude_characters": "abc", "exclude_numbers": true, "require_each_included_type": true}),
        json!({"rotator": "none", "rules": {"ScheduleExpression": "cron(0 10 * * ? *)", "Duration": "3h"}, "rotate_immediately": false}),
        json!({"rules": {"AutomaticallyAfterDays": 1}}),
        json!({"version_id": "0123456789abcdef0123456789abcdef"}),
        json!({"name": "fuzz-principal", "kind": "service"}),
        json!({"name": "p", "statements": [{"effect": "allow", "capabilities": ["read", "list"], "paths": ["fuzz/**", "sys/*"]}]}),
        json!({"statements": [{"effect": "deny", "capabilities": ["admin"], "paths": ["**/x/**"]}]}),
        json!({"principal": "fuzz-principal", "ttl_seconds": 60, "policies": ["p"]}),
        json!({"token": "not-a-token"}),
        json!({"principal": "fuzz-principal"}),
        json!({"name": "rnd", "type": "random", "config": {"length": 20}, "replace": true}),
        json!({"name": "sub", "prefix": "fuzz/", "kinds": ["secret.updated"]}),
        json!({"name": "rule", "kind": "copy", "source": "fuzz/a", "destination": "fuzz/copy"}),
        json!({"name": "merge", "kind": "merge", "destination": "fuzz/merged", "template": "x=${fuzz/a#user}:${fuzz/b|urlencode}$$"}),
        json!({"consumer": "c", "secret": "fuzz/a", "version_id": "0123456789abcdef0123456789abcdef"}),
        json!({}),
    ]
}

/// One path parameter: a plain name, a name with `/` and odd bytes percent-encoded,
/// or raw text (whatever makes a valid URI).
fn path_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("fuzz/a".to_string()),
        Just("fuzz%2Fb".to_string()),
        Just("%2Ffuzz%2Fa".to_string()),
        "[a-zA-Z0-9_.-]{1,16}",
        text().prop_map(|t| {
            percent_encoding::utf8_percent_encode(&t, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        }),
        "[a-zA-Z0-9/%._~:@!$&'()*+,;=-]{0,30}",
        Just("%".to_string()),
        Just("%FF%FE".to_string()),
        Just("..".to_string()),
        Just("a".repeat(2000)),
    ]
}

fn query_string() -> impl Strategy<Value = String> {
    let pair = prop_oneof![
        Just("prefix=fuzz".to_string()),
        Just("max_results=2".to_string()),
        Just("next_token=1".to_string()),
        Just("include_deleted=true".to_string()),
        Just("desc=1".to_string()),
        Just("version_id=x".to_string()),
        Just("stage=current".to_string()),
        Just("keys=k,l".to_string()),
        Just("limit=-1".to_string()),
        Just("after=9223372036854775807".to_string()),
        Just("include_deprecated=yes".to_string()),
        "[a-z_]{1,12}=[a-zA-Z0-9%+._-]{0,12}",
        "[a-zA-Z0-9%=+&;._-]{0,20}",
    ];
    proptest::collection::vec(pair, 0..4).prop_map(|p| p.join("&"))
}

static NATIVE_SERVERS: Servers = Servers::new();

proptest! {
    #![proptest_config(rotor_testkit::fuzz_config())]

    /// Every `/v1` route with arbitrary path parameters, query strings and JSON
    /// bodies, as root: never a panic, never a 500; an error in JSON is
    /// `{"error": {"type": ..., "message": ...}}`.
    #[test]
    fn fuzz_native_api_paths_queries_and_bodies(
        route in proptest::sample::select(NATIVE_ROUTES),
        segments in proptest::collection::vec(path_segment(), 2),
        query in query_string(),
        body in prop_oneof![1 => Just(Vec::new()), 6 => body_from(native_templates())],
        json_type in prop_oneof![4 => Just(true), 1 => Just(false)],
    ) {
        let (method, pattern) = route;
        let mut path = pattern.replacen("{}", &segments[0], 1);
        path = path.replacen("{}", &segments[1], 1);
        // A long poll must not wait: `wait` is left out.
        let query: String = query
            .split('&')
            .filter(|p| !p.starts_with("wait"))
            .collect::<Vec<_>>()
            .join("&");
        let uri = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header("authorization", format!("Bearer {TOKEN}"));
        if json_type {
            req = req.header("content-type", "application/json");
        }
        let Ok(req) = req.body(Body::from(body.clone())) else {
            // Not a URI http accepts: nothing reaches the server.
            return Ok(());
        };
        // A watch is an endless stream: its status is all there is to check.
        let read_body = pattern != "/v1/watch";
        let (status, content_type, out) = send(NATIVE_SERVERS.get(), req, read_body)
            .ok_or_else(|| TestCaseError::fail(format!("{method} {uri} timed out")))?;
        let shown = String::from_utf8_lossy(&out);
        prop_assert!(
            status != StatusCode::INTERNAL_SERVER_ERROR,
            "{method} {uri} {:?}: 500 {shown}",
            String::from_utf8_lossy(&body)
        );
        prop_assert!(status != StatusCode::UNAUTHORIZED, "{method} {uri}: the root token was refused: {shown}");
        if read_body && status.is_client_error() && content_type.starts_with("application/json") {
            let doc: Value = serde_json::from_slice(&out)
                .map_err(|e| TestCaseError::fail(format!("{method} {uri}: not JSON ({e}): {shown}")))?;
            prop_assert!(doc["error"]["type"].is_string(), "{method} {uri}: {status}: {shown}");
        }
    }
}

// ---------------------------------------------------------------------------------
// Alibaba's API.

const ALIBABA_OPS: &[&str] = crate::alibaba::OPERATIONS;

/// The parameters Alibaba's operations take, for the fuzz to combine.
const ALIBABA_PARAMS: &[&str] = &[
    "SecretName",
    "SecretData",
    "SecretDataType",
    "VersionId",
    "VersionStage",
    "VersionStages",
    "MoveToVersion",
    "RemoveFromVersion",
    "Description",
    "Tags",
    "TagKeys",
    "Filters",
    "PageNumber",
    "PageSize",
    "IncludeDeprecated",
    "FetchTags",
    "FetchExtendedConfig",
    "RecoveryWindowInDays",
    "ForceDeleteWithoutRecovery",
    "PasswordLength",
    "ExcludeCharacters",
    "ExcludeNumbers",
    "RequireEachIncludedType",
    "EnableAutomaticRotation",
    "RotationInterval",
    "SecretType",
    "ResourceType",
    "ResourceId.1",
    "Tag.1.Key",
    "ExtendedConfig",
];

/// A parameter's value: plain, odd, or one of the JSON shapes the lists take.
fn alibaba_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => text(),
        1 => Just("fuzz/a".to_string()),
        1 => Just("ACSCurrent".to_string()),
        1 => Just(r#"["ACSCurrent","custom"]"#.to_string()),
        1 => Just(r#"[{"TagKey":"k","TagValue":"v"}]"#.to_string()),
        1 => Just(r#"[{"Key":"SecretName","Values":["fuzz"]}]"#.to_string()),
        1 => Just("True".to_string()),
        1 => "[0-9-]{1,12}",
        1 => "[0-9]{1,4}[dhsw]?",
        1 => json_value().prop_map(|v| v.to_string()),
    ]
}

fn alibaba_params() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(
        (
            prop_oneof![
                8 => proptest::sample::select(ALIBABA_PARAMS).prop_map(str::to_string),
                1 => "[A-Za-z.0-9]{1,12}",
            ],
            alibaba_value(),
        ),
        0..6,
    )
}

static ALIBABA_SERVERS: Servers = Servers::new();

/// A V3-signed Alibaba request: the parameters in the query, `SecretData` in a form
/// body as the V3 SDK sends it.
fn alibaba_request(action: &str, params: &[(String, String)]) -> Option<Request<Body>> {
    use crate::alibaba::params::encode;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NONCE: AtomicU64 = AtomicU64::new(0);
    let pairs = |keep: bool| {
        params
            .iter()
            .filter(|(k, _)| (k == "SecretData") == keep)
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    };
    let (query, body) = (pairs(false), pairs(true));
    let sha = hex::encode(rotor_crypto::sha256(body.as_bytes()));
    let date = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let nonce = format!("fuzz-{}", NONCE.fetch_add(1, Ordering::Relaxed));
    let headers = [
        ("host", "localhost"),
        ("x-acs-action", action),
        ("x-acs-version", crate::alibaba::VERSION),
        ("x-acs-date", date.as_str()),
        ("x-acs-signature-nonce", nonce.as_str()),
        ("x-acs-content-sha256", sha.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let auth = crate::alibaba::signature::v3_authorization(
        AKID, SECRET, "POST", "/", &query, &headers, &sha,
    );
    let mut req = Request::post(format!("/?{query}"));
    for (k, v) in headers {
        req = req.header(k, v);
    }
    req.header("authorization", auth)
        .body(Body::from(body))
        .ok()
}

proptest! {
    #![proptest_config(rotor_testkit::fuzz_config())]

    /// Signed Alibaba requests for every operation with arbitrary parameters: never a
    /// panic, never a 500, never a signature error (they are signed), and every error
    /// is `{RequestId, HostId, Code, Message, Recommend}`.
    #[test]
    fn fuzz_alibaba_api_parameters(
        action in prop_oneof![
            8 => proptest::sample::select(ALIBABA_OPS).prop_map(str::to_string),
            1 => "[A-Za-z]{0,20}",
        ],
        params in alibaba_params(),
    ) {
        let Some(req) = alibaba_request(&action, &params) else {
            return Ok(());
        };
        let (status, content_type, out) = send(ALIBABA_SERVERS.get(), req, true)
            .ok_or_else(|| TestCaseError::fail(format!("{action} timed out")))?;
        let shown = String::from_utf8_lossy(&out);
        prop_assert!(status != StatusCode::INTERNAL_SERVER_ERROR, "{action} {params:?}: 500 {shown}");
        prop_assert!(content_type.starts_with("application/json"), "{action}: {content_type}");
        let doc: Value = serde_json::from_slice(&out)
            .map_err(|e| TestCaseError::fail(format!("{action}: not JSON ({e}): {shown}")))?;
        prop_assert!(doc["RequestId"].is_string(), "{action}: no RequestId: {shown}");
        if !status.is_success() {
            let code = doc["Code"].as_str().unwrap_or("");
            prop_assert!(!code.is_empty() && doc["Message"].is_string(), "{action}: {status}: {shown}");
            prop_assert!(
                !code.contains("Signature") && !code.starts_with("InvalidAccessKeyId"),
                "{action}: a signed request was refused: {shown}"
            );
        }
    }

    /// Alibaba requests with arbitrary query strings, headers and bodies, signed or
    /// not: never a panic, never a 500, never a success without a valid signature.
    #[test]
    fn fuzz_alibaba_unsigned_and_mangled_requests(
        action in proptest::sample::select(ALIBABA_OPS),
        params in alibaba_params(),
        edits in proptest::collection::vec(mutation(), 1..4),
        target in 0..3usize,
    ) {
        let Some(signed) = alibaba_request(action, &params) else {
            return Ok(());
        };
        let (parts, body) = signed.into_parts();
        let body = runtime().block_on(axum::body::to_bytes(body, usize::MAX)).unwrap_or_default();
        let original_query = parts.uri.query().unwrap_or("").to_string();
        let original_body = body.to_vec();
        let mut query = original_query.as_bytes().to_vec();
        let mut auth = parts.headers["authorization"].as_bytes().to_vec();
        let mut body = body.to_vec();
        match target {
            0 => query = mutated(&query, &edits),
            1 => auth = mutated(&auth, &edits),
            _ => body = mutated(&body, &edits),
        }
        let uri = format!("/?{}", String::from_utf8_lossy(&query));
        let mut req = Request::post(uri.as_str());
        for (k, v) in parts.headers.iter().filter(|(k, _)| k.as_str() != "authorization") {
            req = req.header(k, v);
        }
        if let Ok(v) = HeaderValue::from_bytes(&auth) {
            req = req.header("authorization", v);
        }
        let Ok(req) = req.body(Body::from(body.clone())) else {
            return Ok(());
        };
        let (status, _, out) = send(ALIBABA_SERVERS.get(), req, true)
            .ok_or_else(|| TestCaseError::fail(format!("{action} timed out")))?;
        let shown = String::from_utf8_lossy(&out);
        prop_assert!(status != StatusCode::INTERNAL_SERVER_ERROR, "{action}: 500 {shown}");
        // An edit may leave the request as it was (a no-op, or one that decodes to the
        // same parameters): only such a request may be answered.
        if status.is_success() {
            use crate::alibaba::params::Params;
            let decoded = Params::decode_pairs(&String::from_utf8_lossy(&query));
            prop_assert_eq!(decoded, Params::decode_pairs(&original_query), "{}", shown);
            prop_assert_eq!(body, original_body, "{}", shown);
        }
    }
}
