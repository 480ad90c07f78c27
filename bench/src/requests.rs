//! The requests the benchmark sends: native API, AWS JSON 1.1 API signed with SigV4, and
//! plain GETs.

use crate::load::Template;
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method};
use std::net::SocketAddr;

pub const REGION: &str = "us-east-1";
pub const SERVICE: &str = "secretsmanager";

/// Root credentials handed to the Rotor server under test.
#[derive(Debug, Clone)]
pub struct Creds {
    pub token: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Creds {
    pub fn generate() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Creds {
            token: format!("rotor-bench-{id}"),
            access_key_id: "AKIAROTORBENCH000001".to_string(),
            secret_access_key: format!("rotor-bench-secret-{id}"),
        }
    }
}

fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).expect("valid header name"),
            HeaderValue::from_str(v).expect("valid header value"),
        );
    }
    map
}

/// `GET path` with a `Host` header and optional headers.
pub fn get(addr: SocketAddr, path: &str, extra: &[(String, String)]) -> Template {
    let mut pairs = vec![("host".to_string(), addr.to_string())];
    pairs.extend_from_slice(extra);
    Template {
        method: Method::GET,
        path: path.to_string(),
        headers: header_map(&pairs),
        body: Bytes::new(),
    }
}

pub fn bearer(token: &str) -> (String, String) {
    ("authorization".to_string(), format!("Bearer {token}"))
}

/// `POST /v1/secrets` creating `name` with `value`.
pub fn native_create(addr: SocketAddr, token: &str, name: &str, value: &str) -> Template {
    let body = serde_json::json!({ "name": name, "value": value }).to_string();
    let pairs = vec![
        ("host".to_string(), addr.to_string()),
        ("content-type".to_string(), "application/json".to_string()),
        bearer(token),
    ];
    Template {
        method: Method::POST,
        path: "/v1/secrets".to_string(),
        headers: header_map(&pairs),
        body: Bytes::from(body),
    }
}

/// `GET /v1/secrets/{name}`; `name` must need no percent-encoding.
pub fn native_read(addr: SocketAddr, token: &str, name: &str) -> Template {
    get(addr, &format!("/v1/secrets/{name}"), &[bearer(token)])
}

/// A signed AWS Secrets Manager request (`POST /`, JSON 1.1) for `action`, signed now.
pub fn aws(addr: SocketAddr, creds: &Creds, action: &str, body: Vec<u8>) -> Template {
    let date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut pairs = vec![
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        ("host".to_string(), addr.to_string()),
        ("x-amz-date".to_string(), date),
        (
            "x-amz-target".to_string(),
            format!("secretsmanager.{action}"),
        ),
    ];
    let auth = rotor_server::sigv4::sign(
        "POST",
        "/",
        "",
        &pairs,
        &body,
        &creds.access_key_id,
        &creds.secret_access_key,
        REGION,
        SERVICE,
    );
    pairs.push(("authorization".to_string(), auth));
    Template {
        method: Method::POST,
        path: "/".to_string(),
        headers: header_map(&pairs),
        body: Bytes::from(body),
    }
}

pub fn aws_create(addr: SocketAddr, creds: &Creds, name: &str, value: &str) -> Template {
    let body = serde_json::json!({ "Name": name, "SecretString": value }).to_string();
    aws(addr, creds, "CreateSecret", body.into_bytes())
}

pub fn aws_get(addr: SocketAddr, creds: &Creds, name: &str) -> Template {
    let body = serde_json::json!({ "SecretId": name }).to_string();
    aws(addr, creds, "GetSecretValue", body.into_bytes())
}

/// A `PutSecretValue` with a fresh `ClientRequestToken` and signature.
pub fn aws_put(addr: SocketAddr, creds: &Creds, name: &str, n: u64) -> Template {
    let body = serde_json::json!({
        "SecretId": name,
        "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
        "SecretString": format!("v-{n}"),
    })
    .to_string();
    aws(addr, creds, "PutSecretValue", body.into_bytes())
}

/// The value stored in the read benchmark's secret: `size` printable bytes.
pub fn secret_value(size: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..size)
        .map(|i| ALPHABET[(i * 7 + 3) % ALPHABET.len()] as char)
        .collect()
}
