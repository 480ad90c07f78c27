//! Alibaba Cloud's request signatures, verified against Rotor's access keys (the same
//! key pairs as SigV4):
//!
//! - V3, `ACS3-HMAC-SHA256`: an `Authorization` header over a canonical request (method,
//!   path, sorted query, the signed headers, and the body's SHA-256 that the
//!   `x-acs-content-sha256` header carries and that is checked against the body);
//! - V1, `HMAC-SHA1`: a `Signature` parameter over every other parameter, sorted and
//!   percent-encoded, keyed with the secret and `&`.
//!
//! Both carry a timestamp, refused beyond [`MAX_SKEW_SECS`] of the server's clock, and a
//! nonce, refused when seen again within that window ([`Nonces`]).

use super::params::{Params, encode};
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// How far a request's timestamp may be from the server's clock.
pub const MAX_SKEW_SECS: i64 = 15 * 60;

/// The V3 algorithm name, as it starts the `Authorization` header.
pub const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// Headers a V3 signature must cover (and `content-type` when present): those that
/// name the operation, date the request and describe the body.
const SIGNED_HEADERS: [&str; 6] = [
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
];

/// Why a signature was not accepted, as Alibaba names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// No signature at all.
    Missing,
    /// A signature part is missing or malformed.
    Incomplete(String),
    /// The access key id is not known.
    UnknownKey,
    /// The signature does not match.
    Mismatch,
    /// The body is not the one the `x-acs-content-sha256` header describes.
    ContentMismatch,
    /// The timestamp is missing, malformed, or too far from the server's clock.
    Expired(String),
    /// The nonce was used already.
    NonceUsed,
    /// Too many requests within the replay window to remember their nonces.
    Throttled,
}

impl SignatureError {
    /// Alibaba's error code.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Missing => "MissingSignature",
            SignatureError::Incomplete(_) => "IncompleteSignature",
            SignatureError::UnknownKey => "InvalidAccessKeyId.NotFound",
            SignatureError::Mismatch => "SignatureDoesNotMatch",
            SignatureError::ContentMismatch => "ContentSHA256Mismatch",
            SignatureError::Expired(_) => "InvalidTimeStamp.Expired",
            SignatureError::NonceUsed => "SignatureNonceUsed",
            SignatureError::Throttled => "Rejected.Throttling",
        }
    }

    /// The HTTP status Alibaba answers with.
    pub fn status(&self) -> u16 {
        match self {
            SignatureError::UnknownKey => 404,
            SignatureError::Throttled => 429,
            _ => 400,
        }
    }

    /// The message.
    pub fn message(&self) -> String {
        match self {
            SignatureError::Missing => "The request is not signed: Signature (V1) or an Authorization header (V3) is required.".into(),
            SignatureError::Incomplete(why) => format!("The request signature does not conform to Aliyun standards: {why}"),
            SignatureError::UnknownKey => "Specified access key is not found.".into(),
            // Alibaba's message ends with the string it signed; the SDKs split the message
            // at its first colon. That string can hold secret values, so it is withheld.
            SignatureError::Mismatch => "Specified signature is not matched with our calculation. server string to sign is: withheld (it can hold secret values); check the access key secret and how the request is signed".into(),
            SignatureError::ContentMismatch => "x-acs-content-sha256 is not the SHA-256 of the request body.".into(),
            SignatureError::Expired(why) => format!("Specified time stamp or date value is expired: {why}"),
            SignatureError::NonceUsed => "Specified signature nonce was used already.".into(),
            SignatureError::Throttled => "Too many requests within the signature window; try again shortly.".into(),
        }
    }
}

/// A request whose signature checked out: who signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The access key id.
    pub access_key_id: String,
}

/// The parts of a request a signature covers. (`Debug` leaves the body and the
/// parameters' values out: they can hold a secret value.)
pub struct SignedParts<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path as sent.
    pub path: &'a str,
    /// Raw query string, without `?`.
    pub query: &'a str,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// The body as received.
    pub body: &'a [u8],
    /// Query and form parameters, decoded.
    pub params: &'a Params,
}

impl std::fmt::Debug for SignedParts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedParts")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("params", self.params)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Verifies `req`'s V3 or V1 signature at `now`, asking `secret_of` for the secret of an
/// access key id. The nonce is recorded in `nonces` only once the signature checks out.
pub fn verify(
    req: &SignedParts<'_>,
    now: DateTime<Utc>,
    nonces: &Nonces,
    secret_of: impl FnOnce(&str) -> Option<secrecy::SecretString>,
) -> Result<Verified, SignatureError> {
    use secrecy::ExposeSecret as _;
    let auth = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if let Some(auth) = auth.filter(|a| a.starts_with(V3_ALGORITHM)) {
        let parsed = parse_v3(auth)?;
        let date = header(req.headers, "x-acs-date")
            .ok_or_else(|| SignatureError::Incomplete("x-acs-date is required".into()))?;
        let nonce = header(req.headers, "x-acs-signature-nonce").ok_or_else(|| {
            SignatureError::Incomplete("x-acs-signature-nonce is required".into())
        })?;
        let content = header(req.headers, "x-acs-content-sha256")
            .ok_or_else(|| SignatureError::Incomplete("x-acs-content-sha256 is required".into()))?;
        let content_type = req
            .headers
            .contains_key("content-type")
            .then_some("content-type");
        for needed in SIGNED_HEADERS.iter().copied().chain(content_type) {
            if !parsed.signed_headers.contains(&needed) {
                return Err(SignatureError::Incomplete(format!(
                    "SignedHeaders must include {needed}"
                )));
            }
        }
        check_time(date, now)?;
        if !content.eq_ignore_ascii_case(&hex::encode(rotor_crypto::sha256(req.body))) {
            return Err(SignatureError::ContentMismatch);
        }
        let secret = secret_of(parsed.access_key_id).ok_or(SignatureError::UnknownKey)?;
        let canonical = v3_canonical_request(req, &parsed.signed_headers, content)?;
        let expected = v3_signature(secret.expose_secret().as_bytes(), &canonical);
        if !rotor_crypto::constant_time_eq(
            expected.as_bytes(),
            parsed.signature.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(SignatureError::Mismatch);
        }
        nonces.first_use(parsed.access_key_id, nonce, now)?;
        return Ok(Verified {
            access_key_id: parsed.access_key_id.to_string(),
        });
    }
    let Some(signature) = req.params.get("Signature") else {
        return Err(match auth {
            Some(_) => SignatureError::Incomplete(format!(
                "the Authorization header must use {V3_ALGORITHM}"
            )),
            None => SignatureError::Missing,
        });
    };
    let required = |name: &str| {
        req.params
            .get(name)
            .ok_or_else(|| SignatureError::Incomplete(format!("{name} is required")))
    };
    let access_key_id = required("AccessKeyId")?;
    let method = required("SignatureMethod")?;
    if method != "HMAC-SHA1" {
        return Err(SignatureError::Incomplete(format!(
            "SignatureMethod {method:?} is not supported; use HMAC-SHA1"
        )));
    }
    if let Some(version) = req.params.get("SignatureVersion")
        && version != "1.0"
    {
        return Err(SignatureError::Incomplete(format!(
            "SignatureVersion {version:?} is not supported; use 1.0"
        )));
    }
    let nonce = required("SignatureNonce")?;
    check_time(required("Timestamp")?, now)?;
    let secret = secret_of(access_key_id).ok_or(SignatureError::UnknownKey)?;
    let expected = v1_signature(secret.expose_secret(), req.method, req.params);
    if !rotor_crypto::constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        return Err(SignatureError::Mismatch);
    }
    nonces.first_use(access_key_id, nonce, now)?;
    Ok(Verified {
        access_key_id: access_key_id.to_string(),
    })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `Timestamp` / `x-acs-date`: `YYYY-MM-DDThh:mm:ssZ` (fractions allowed), within the
/// window.
fn check_time(value: &str, now: DateTime<Utc>) -> Result<(), SignatureError> {
    let at = DateTime::parse_from_rfc3339(value)
        .map_err(|_| {
            SignatureError::Expired(format!(
                "{value:?} is not a UTC time such as 2026-01-01T00:00:00Z"
            ))
        })?
        .with_timezone(&Utc);
    if (now - at).num_seconds().abs() > MAX_SKEW_SECS {
        return Err(SignatureError::Expired(format!(
            "{value} is more than {} minutes from the server's time",
            MAX_SKEW_SECS / 60
        )));
    }
    Ok(())
}

struct V3Auth<'a> {
    access_key_id: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_v3(value: &str) -> Result<V3Auth<'_>, SignatureError> {
    let rest = value.strip_prefix(V3_ALGORITHM).unwrap_or(value);
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let missing = |what: &str| SignatureError::Incomplete(format!("Authorization lacks {what}"));
    let access_key_id = credential
        .filter(|c| !c.is_empty())
        .ok_or_else(|| missing("Credential"))?;
    let signed_headers: Vec<&str> = signed
        .ok_or_else(|| missing("SignedHeaders"))?
        .split(';')
        .filter(|h| !h.is_empty())
        .collect();
    let signature = signature
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("Signature"))?;
    if signed_headers
        .iter()
        .any(|h| h.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Err(SignatureError::Incomplete(
            "SignedHeaders must be lower case".into(),
        ));
    }
    Ok(V3Auth {
        access_key_id,
        signed_headers,
        signature,
    })
}

/// V3's canonical request.
fn v3_canonical_request(
    req: &SignedParts<'_>,
    signed_headers: &[&str],
    content_sha256: &str,
) -> Result<String, SignatureError> {
    let mut out = String::with_capacity(512);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(if req.path.is_empty() { "/" } else { req.path });
    out.push('\n');
    out.push_str(&canonical_query(req.query));
    out.push('\n');
    for name in signed_headers {
        let mut values: Vec<&str> = req
            .headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .collect();
        values.sort_unstable();
        if values.is_empty() {
            return Err(SignatureError::Incomplete(format!(
                "the signed header {name} is not in the request"
            )));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(content_sha256);
    Ok(out)
}

/// The query's parameters decoded, encoded again as V3 wants, sorted.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = Params::decode_pairs(query)
        .into_iter()
        .map(|(k, v)| (encode(&k), encode(&v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// V3's signature of a canonical request: hex HMAC-SHA256 of the string to sign.
pub fn v3_signature(secret: &[u8], canonical_request: &str) -> String {
    let string_to_sign = format!(
        "{V3_ALGORITHM}\n{}",
        hex::encode(rotor_crypto::sha256(canonical_request.as_bytes()))
    );
    hex::encode(rotor_crypto::hmac_sha256(secret, string_to_sign.as_bytes()))
}

/// V1's signature: base64 HMAC-SHA1, keyed `secret&`, of `METHOD&%2F&` and the sorted,
/// encoded parameters (all but `Signature`).
pub fn v1_signature(secret: &str, method: &str, params: &Params) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| *k != "Signature")
        .map(|(k, v)| (encode(k), encode(v)))
        .collect();
    pairs.sort();
    let canonical = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let string_to_sign = format!("{method}&{}&{}", encode("/"), encode(&canonical));
    let key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        format!("{secret}&").as_bytes(),
    );
    B64.encode(aws_lc_rs::hmac::sign(&key, string_to_sign.as_bytes()).as_ref())
}

/// The V3 `Authorization` header for a request (for tests and tools): `headers` are the
/// ones to sign, lower-case names.
pub fn v3_authorization(
    access_key_id: &str,
    secret: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    content_sha256: &str,
) -> String {
    let mut sorted: Vec<(&str, &str)> = headers.to_vec();
    sorted.sort();
    let mut canonical = format!("{method}\n{path}\n{}\n", canonical_query(query));
    for (name, value) in &sorted {
        canonical.push_str(&format!("{name}:{}\n", value.trim()));
    }
    let names: Vec<&str> = sorted.iter().map(|(n, _)| *n).collect();
    canonical.push_str(&format!("\n{}\n{content_sha256}", names.join(";")));
    format!(
        "{V3_ALGORITHM} Credential={access_key_id},SignedHeaders={},Signature={}",
        names.join(";"),
        v3_signature(secret.as_bytes(), &canonical)
    )
}

/// Nonces seen within the replay window, per access key.
#[derive(Debug, Default)]
pub struct Nonces {
    seen: Mutex<NonceLog>,
}

#[derive(Debug, Default)]
struct NonceLog {
    by_key: HashMap<(String, String), DateTime<Utc>>,
    order: VecDeque<(DateTime<Utc>, String, String)>,
}

/// Nonces remembered at most: past that, requests are refused (fail closed) until
/// older nonces leave the window.
const MAX_NONCES: usize = 500_000;

impl Nonces {
    /// Records `nonce` of `access_key_id` at `now`; refuses a nonce seen within the
    /// window.
    pub fn first_use(
        &self,
        access_key_id: &str,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        if nonce.is_empty() || nonce.len() > 128 {
            return Err(SignatureError::Incomplete(
                "the signature nonce must be 1 to 128 characters".into(),
            ));
        }
        let mut log = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        // Twice the window: a timestamp may be that far ahead of the clock too.
        let horizon = now - chrono::Duration::seconds(2 * MAX_SKEW_SECS);
        while let Some((at, _, _)) = log.order.front() {
            if *at > horizon {
                break;
            }
            if let Some((_, key, n)) = log.order.pop_front() {
                log.by_key.remove(&(key, n));
            }
        }
        let key = (access_key_id.to_string(), nonce.to_string());
        if log.by_key.contains_key(&key) {
            return Err(SignatureError::NonceUsed);
        }
        if log.by_key.len() >= MAX_NONCES {
            return Err(SignatureError::Throttled);
        }
        log.order.push_back((now, key.0.clone(), key.1.clone()));
        log.by_key.insert(key, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_nonce_is_refused_within_the_window_and_forgotten_after() {
        let n = Nonces::default();
        let t = at("2026-12-04T10:00:00Z");
        assert!(n.first_use("AK", "a", t).is_ok());
        assert_eq!(n.first_use("AK", "a", t), Err(SignatureError::NonceUsed));
        // Another key's nonce is its own.
        assert!(n.first_use("AK2", "a", t).is_ok());
        let later = t + chrono::Duration::seconds(2 * MAX_SKEW_SECS + 1);
        assert!(n.first_use("AK", "a", later).is_ok());
    }

    #[test]
    fn times_outside_the_window_or_malformed_are_refused() {
        let now = at("2026-12-04T10:00:00Z");
        assert!(check_time("2026-12-04T10:14:00Z", now).is_ok());
        assert!(check_time("2026-12-04T09:44:00Z", now).is_err());
        assert!(check_time("2026-12-04T10:16:00Z", now).is_err());
        assert!(check_time("yesterday", now).is_err());
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    /// A request the V3 SDK (alibabacloud-kms20160120 3.3.1) signed, captured with its
    /// nonce and date pinned: key AKIDTEST / test-secret.
    fn sdk_v3_create() -> (String, HeaderMap, Vec<u8>) {
        let body = b"SecretData=s3cr3t+value%2B%2A~".to_vec();
        let h = headers(&[
            ("host", "127.0.0.1:18200"),
            ("x-acs-version", "2016-01-20"),
            ("x-acs-action", "CreateSecret"),
            (
                "user-agent",
                "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2",
            ),
            ("x-acs-date", "2025-01-02T03:04:05Z"),
            ("x-acs-signature-nonce", "0123456789abcdef0123456789abcdef"),
            ("accept", "application/json"),
            ("content-type", "application/x-www-form-urlencoded"),
            (
                "x-acs-content-sha256",
                "172d45598a1506ab26cde1ed5aa5a24d7bcc0755846eceba68da66ba8f0675e0",
            ),
            ("x-acs-credentials-provider", "static_ak"),
            (
                "authorization",
                "ACS3-HMAC-SHA256 Credential=AKIDTEST,SignedHeaders=accept;content-type;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=8bfa1b63121a7751ad5fa93f655a87c702127244d4b1ea7f71c6e21b183258d8",
            ),
        ]);
        let query =
            "Description=db+password&SecretDataType=text&SecretName=mydb%2Fpass&VersionId=v1";
        (query.to_string(), h, body)
    }

    fn check(
        query: &str,
        h: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
        nonces: &Nonces,
        secret: &str,
    ) -> Result<Verified, SignatureError> {
        let form = h.contains_key("content-type").then_some(body);
        let params = Params::from_query_and_form(query, form);
        let parts = SignedParts {
            method: "POST",
            path: "/",
            query,
            headers: h,
            body,
            params: &params,
        };
        verify(&parts, now, nonces, |akid| {
            (akid == "AKIDTEST").then(|| secrecy::SecretString::from(secret.to_string()))
        })
    }

    #[test]
    fn v3_verifies_what_alibabas_sdk_signed_and_nothing_changed() {
        let now = at("2025-01-02T03:05:00Z");
        let (query, h, body) = sdk_v3_create();
        let ok = check(&query, &h, &body, now, &Nonces::default(), "test-secret").unwrap();
        assert_eq!(ok.access_key_id, "AKIDTEST");
        // Replayed: the nonce was used.
        let nonces = Nonces::default();
        check(&query, &h, &body, now, &nonces, "test-secret").unwrap();
        assert_eq!(
            check(&query, &h, &body, now, &nonces, "test-secret"),
            Err(SignatureError::NonceUsed)
        );
        // Another secret, another query, another body, another time: each refused.
        let fresh = Nonces::default;
        assert_eq!(
            check(&query, &h, &body, now, &fresh(), "other"),
            Err(SignatureError::Mismatch)
        );
        let changed = query.replace("v1", "v2");
        assert_eq!(
            check(&changed, &h, &body, now, &fresh(), "test-secret"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(
                &query,
                &h,
                b"SecretData=other",
                now,
                &fresh(),
                "test-secret"
            ),
            Err(SignatureError::ContentMismatch)
        );
        assert!(matches!(
            check(
                &query,
                &h,
                &body,
                at("2025-01-02T03:30:00Z"),
                &fresh(),
                "test-secret"
            ),
            Err(SignatureError::Expired(_))
        ));
        // An operation header left out of the signature is refused.
        let mut unsigned = h.clone();
        let auth = unsigned["authorization"]
            .to_str()
            .unwrap()
            .replace("x-acs-action;", "");
        unsigned.insert("authorization", auth.parse().unwrap());
        assert!(matches!(
            check(&query, &unsigned, &body, now, &fresh(), "test-secret"),
            Err(SignatureError::Incomplete(_))
        ));
    }

    #[test]
    fn v1_verifies_what_alibabas_sdk_signed() {
        // aliyun-python-sdk-core 2.16.1's CreateSecret, nonce and timestamp pinned.
        let query = "SecretName=mydb%2Fpass&SecretData=s3cr3t%20value%2B%2A~&VersionId=v1&SecretDataType=text&Version=2016-01-20&Action=CreateSecret&Format=JSON&RegionId=cn-hangzhou&Timestamp=2025-01-02T03%3A04%3A05Z&SignatureMethod=HMAC-SHA1&SignatureType=&SignatureVersion=1.0&SignatureNonce=fedcba9876543210fedcba9876543210&AccessKeyId=AKIDTEST&Signature=so%2BHWRjbYx4J%2BL1cu6xjICU6UxQ%3D";
        let h = headers(&[("host", "127.0.0.1:18200")]);
        let now = at("2025-01-02T03:05:00Z");
        assert!(check(query, &h, b"", now, &Nonces::default(), "test-secret").is_ok());
        let changed = query.replace("VersionId=v1", "VersionId=v2");
        assert_eq!(
            check(&changed, &h, b"", now, &Nonces::default(), "test-secret"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(
                "Action=GetSecretValue",
                &h,
                b"",
                now,
                &Nonces::default(),
                "test-secret"
            ),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn v1_matches_alibabas_documented_example() {
        // The example of Alibaba's RPC signature documentation (ECS DescribeRegions,
        // key testid / testsecret).
        let query = "AccessKeyId=testid&Action=DescribeRegions&Format=XML&SignatureMethod=HMAC-SHA1&SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf&SignatureVersion=1.0&Timestamp=2016-02-23T12%3A46%3A24Z&Version=2014-05-26";
        let params = Params::from_query_and_form(query, None);
        assert_eq!(
            v1_signature("testsecret", "GET", &params),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }
}
