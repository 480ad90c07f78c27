//! AWS Signature Version 4: verifying the requests AWS SDKs send, and signing requests
//! for tests and benchmarks.
//!
//! Implements the header form of [SigV4]: the canonical request, the string to sign and
//! the derived signing key. Only what the Secrets Manager JSON protocol uses is
//! supported: the `Authorization` header (no presigned query strings).
//!
//! [SigV4]: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
//!
//! ```
//! use axum::http::HeaderMap;
//! use rotor_server::sigv4::{sign, verify, SignedRequest};
//!
//! let body = br#"{"SecretId":"prod/db"}"#;
//! let mut headers = vec![
//!     ("host".to_string(), "127.0.0.1:8200".to_string()),
//!     ("x-amz-date".to_string(), "20261121T120000Z".to_string()),
//!     ("x-amz-target".to_string(), "secretsmanager.GetSecretValue".to_string()),
//! ];
//! let auth = sign("POST", "/", "", &headers, body, "AKID", "SECRET", "us-east-1", "secretsmanager");
//! headers.push(("authorization".to_string(), auth));
//! let map: HeaderMap = headers.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect();
//! let now = chrono::DateTime::parse_from_rfc3339("2026-11-21T12:01:00Z").unwrap().into();
//! let req = SignedRequest { method: "POST", path: "/", query: "", headers: &map, body };
//! let ok = verify(&req, now, |akid| (akid == "AKID").then(|| "SECRET".to_string())).unwrap();
//! assert_eq!(ok.region, "us-east-1");
//! ```

use axum::http::{HeaderMap, HeaderName};
use chrono::{DateTime, Utc};
use rotor_crypto::sigv4::{self as math, ALGORITHM, SigningKey};
use rotor_engine::SigningScope;
use std::borrow::{Borrow, Cow};
/// How far a request's `X-Amz-Date` may be from the server's clock.
pub const MAX_SKEW_SECS: i64 = 15 * 60;

/// Why a request's signature was not accepted, as the AWS exception a client expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SigV4Error {
    /// No `Authorization` header.
    #[error("MissingAuthenticationTokenException: Missing Authentication Token")]
    Missing,
    /// The header is not a well-formed SigV4 authorization.
    #[error("IncompleteSignatureException: {0}")]
    Incomplete(String),
    /// The access key id is not known.
    #[error("UnrecognizedClientException: The security token included in the request is invalid.")]
    UnknownKey,
    /// The signature does not match, or the request is too old or too new.
    #[error("InvalidSignatureException: {0}")]
    Mismatch(String),
}

impl SigV4Error {
    /// The message to send, without the exception name.
    pub fn message(&self) -> String {
        let text = self.to_string();
        match text.split_once(": ") {
            Some((_, message)) => message.to_string(),
            None => text,
        }
    }

    /// The AWS exception name.
    pub fn aws_type(&self) -> &'static str {
        match self {
            SigV4Error::Missing => "MissingAuthenticationTokenException",
            SigV4Error::Incomplete(_) => "IncompleteSignatureException",
            SigV4Error::UnknownKey => "UnrecognizedClientException",
            SigV4Error::Mismatch(_) => "InvalidSignatureException",
        }
    }
}

// Headers looked up by name made once: a lookup by `&str` parses the name each time.
const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const X_AMZ_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");

/// The parts of an HTTP request that a signature covers. (`Debug` leaves the body
/// out: it can hold a secret value.)
pub struct SignedRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path as sent (already percent-encoded).
    pub path: &'a str,
    /// Raw query string, without `?`.
    pub query: &'a str,
    /// All request headers.
    pub headers: &'a HeaderMap,
    /// The body.
    pub body: &'a [u8],
}

impl std::fmt::Debug for SignedRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Who signed a verified request, and for which region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The access key id that signed.
    pub access_key_id: String,
    /// The region of the credential scope.
    pub region: String,
}

struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, SigV4Error> {
    let incomplete = |m: &str| SigV4Error::Incomplete(m.to_string());
    let rest = value
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| incomplete("Authorization header must use AWS4-HMAC-SHA256"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let credential =
        credential.ok_or_else(|| incomplete("Authorization header requires 'Credential'"))?;
    let signed =
        signed.ok_or_else(|| incomplete("Authorization header requires 'SignedHeaders'"))?;
    let signature =
        signature.ok_or_else(|| incomplete("Authorization header requires 'Signature'"))?;
    let mut scope = credential.split('/');
    let mut part = || scope.next();
    let (Some(access_key_id), Some(date), Some(region), Some(service), Some("aws4_request"), None) =
        (part(), part(), part(), part(), part(), part())
    else {
        return Err(incomplete(
            "Credential must be ACCESS_KEY/DATE/REGION/SERVICE/aws4_request",
        ));
    };
    let signed_headers: Vec<&str> = signed.split(';').collect();
    if !signed_headers.contains(&"host") {
        return Err(incomplete("SignedHeaders must include 'host'"));
    }
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// Verifies `req`'s signature at time `now`. `secret_for` returns the secret access
/// key of an access key id, or `None` when it is unknown.
pub fn verify(
    req: &SignedRequest<'_>,
    now: DateTime<Utc>,
    secret_for: impl FnOnce(&str) -> Option<String>,
) -> Result<Verified, SigV4Error> {
    verify_with(req, now, |akid, scope| {
        let secret = secret_for(akid)?;
        Some(SigningKey::derive(
            &secret,
            scope.date,
            scope.region,
            scope.service,
        ))
    })
}

/// Verifies `req`'s signature at time `now` with the signing key `key_for` gives for
/// the access key id and the scope the request names (`None`: the key is unknown).
/// What the server uses: the access service keeps each key's derivation for the day.
pub fn verify_with<K: Borrow<SigningKey>>(
    req: &SignedRequest<'_>,
    now: DateTime<Utc>,
    key_for: impl FnOnce(&str, &SigningScope<'_>) -> Option<K>,
) -> Result<Verified, SigV4Error> {
    let header = req
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(SigV4Error::Missing)?
        .to_str()
        .map_err(|_| SigV4Error::Incomplete("Authorization header is not ASCII".into()))?;
    let auth = parse_authorization(header)?;
    let amz_date = req
        .headers
        .get(&X_AMZ_DATE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| SigV4Error::Incomplete("X-Amz-Date header is required".into()))?;
    let when = parse_amz_date(amz_date)
        .ok_or_else(|| SigV4Error::Incomplete("X-Amz-Date must be YYYYMMDDTHHMMSSZ".into()))?;
    if !amz_date.starts_with(auth.date) {
        return Err(SigV4Error::Mismatch(
            "Date in Credential scope does not match X-Amz-Date".into(),
        ));
    }
    if (now - when).num_seconds().abs() > MAX_SKEW_SECS {
        return Err(SigV4Error::Mismatch(format!(
            "Signature expired: {amz_date} is now earlier or later than 15 minutes from the server's time"
        )));
    }
    let scope = SigningScope {
        date: auth.date,
        region: auth.region,
        service: auth.service,
    };
    let key = key_for(auth.access_key_id, &scope).ok_or(SigV4Error::UnknownKey)?;
    let mut headers: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let mut values = req
            .headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let value = match (values.next(), values.next()) {
            (None, _) => {
                return Err(SigV4Error::Mismatch(format!(
                    "Signed header '{name}' is missing from the request"
                )));
            }
            (Some(one), None) => Cow::Borrowed(one),
            (Some(first), Some(second)) => {
                let mut all = vec![first, second];
                all.extend(values);
                Cow::Owned(all.join(","))
            }
        };
        headers.push((name, value));
    }
    let payload_hash = payload_hash(req)?;
    let canonical =
        math::canonical_request_hash(req.method, req.path, req.query, &headers, &payload_hash);
    let expected = key
        .borrow()
        .sign_request(amz_date, auth.region, auth.service, &canonical);
    let mut given = [0u8; 32];
    let well_formed = hex::decode_to_slice(auth.signature, &mut given).is_ok();
    if !(well_formed && rotor_crypto::constant_time_eq(&expected, &given)) {
        return Err(SigV4Error::Mismatch(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
                .into(),
        ));
    }
    Ok(Verified {
        access_key_id: auth.access_key_id.to_string(),
        region: auth.region.to_string(),
    })
}

/// `YYYYMMDDTHHMMSSZ` as a time, read by position (the format is fixed; chrono's
/// format parser costs more than the rest of the header checks together).
fn parse_amz_date(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(4, 6)?, num(6, 8)?)?;
    let time = chrono::NaiveTime::from_hms_opt(num(9, 11)?, num(11, 13)?, num(13, 15)?)?;
    Some(date.and_time(time).and_utc())
}

/// The SHA-256 of the body, always computed from the body itself. A client may send
/// it in `x-amz-content-sha256` as well; a header that disagrees with the body, or that
/// opts out of covering it (`UNSIGNED-PAYLOAD`, streaming forms), is refused, so a
/// captured signature never vouches for another body.
fn payload_hash(req: &SignedRequest<'_>) -> Result<String, SigV4Error> {
    let mut hex = [0u8; 64];
    // Cannot fail: the buffer is exactly twice the hash's length.
    let _ = hex::encode_to_slice(rotor_crypto::sha256(req.body), &mut hex);
    match req.headers.get(&X_AMZ_CONTENT_SHA256) {
        Some(claimed) if !claimed.as_bytes().eq_ignore_ascii_case(&hex) => {
            Err(SigV4Error::Mismatch(
                "The x-amz-content-sha256 header must be the SHA-256 of the request body".into(),
            ))
        }
        _ => Ok(String::from_utf8_lossy(&hex).into_owned()),
    }
}

/// Signs a request, returning the `Authorization` header value. `headers` must hold
/// every header to sign, including `host` and `x-amz-date`. The arithmetic is
/// [`rotor_crypto::sigv4`]'s, which every signer shares.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    access_key_id: &str,
    secret_access_key: &str,
    region: &str,
    service: &str,
) -> String {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    math::authorization(
        method,
        path,
        query,
        &headers,
        body,
        &math::Credentials {
            access_key_id,
            secret_access_key,
            region,
            service,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(secret: &str, date: &str) -> (HeaderMap, Vec<u8>) {
        let body = br#"{"Name":"x"}"#.to_vec();
        let mut headers = vec![
            ("host".to_string(), "localhost:1".to_string()),
            ("x-amz-date".to_string(), date.to_string()),
            (
                "content-type".to_string(),
                "application/x-amz-json-1.1".to_string(),
            ),
        ];
        let auth = sign(
            "POST",
            "/",
            "",
            &headers,
            &body,
            "AK",
            secret,
            "eu-west-1",
            "secretsmanager",
        );
        headers.push(("authorization".into(), auth));
        let map = headers
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect();
        (map, body)
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().into()
    }

    #[test]
    fn a_signed_request_verifies_and_a_tampered_one_does_not() {
        let (headers, body) = request("S3CRET", "20261121T100000Z");
        let req = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: &body,
        };
        let ok = verify(&req, at("2026-11-21T10:05:00Z"), |_| Some("S3CRET".into())).unwrap();
        assert_eq!(ok.region, "eu-west-1");
        assert_eq!(ok.access_key_id, "AK");

        let wrong_key = verify(&req, at("2026-11-21T10:05:00Z"), |_| Some("OTHER".into()));
        assert!(matches!(wrong_key, Err(SigV4Error::Mismatch(_))));

        let tampered = SignedRequest {
            body: br#"{"Name":"y"}"#,
            ..req
        };
        assert!(matches!(
            verify(&tampered, at("2026-11-21T10:05:00Z"), |_| Some(
                "S3CRET".into()
            )),
            Err(SigV4Error::Mismatch(_))
        ));
    }

    #[test]
    fn the_signature_covers_the_body_whatever_the_content_hash_header_says() {
        let (mut headers, body) = request("S3CRET", "20261121T100000Z");
        let original = hex::encode(rotor_crypto::sha256(&body));
        let now = at("2026-11-21T10:05:00Z");
        let check = |headers: &HeaderMap, body: &[u8]| {
            let req = SignedRequest {
                method: "POST",
                path: "/",
                query: "",
                headers,
                body,
            };
            verify(&req, now, |_| Some("S3CRET".into()))
        };
        headers.insert("x-amz-content-sha256", original.parse().unwrap());
        assert!(check(&headers, &body).is_ok(), "the true hash is accepted");
        let forged = br#"{"Name":"someone-elses"}"#;
        assert!(
            matches!(check(&headers, forged), Err(SigV4Error::Mismatch(_))),
            "the original body's hash does not carry a signature over to another body"
        );
        for claimed in ["UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"] {
            headers.insert("x-amz-content-sha256", claimed.parse().unwrap());
            assert!(matches!(
                check(&headers, &body),
                Err(SigV4Error::Mismatch(_))
            ));
        }
    }

    /// The other direction of AWS's test suite: the suite's signed `post-vanilla`
    /// request verifies, and one changed byte does not.
    #[test]
    fn verifies_the_aws_test_suite_post_vanilla_request() {
        let headers: HeaderMap = [
            ("host", "example.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
        .collect();
        let req = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        let secret = |id: &str| {
            (id == "AKIDEXAMPLE").then(|| "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_string())
        };
        let ok = verify(&req, at("2015-08-30T12:40:00Z"), secret).unwrap();
        assert_eq!(ok.region, "us-east-1");
        let get = SignedRequest {
            method: "GET",
            ..req
        };
        assert!(matches!(
            verify(&get, at("2015-08-30T12:40:00Z"), secret),
            Err(SigV4Error::Mismatch(_))
        ));
    }

    #[test]
    fn stale_unknown_and_missing_are_told_apart() {
        let (headers, body) = request("S3CRET", "20261121T100000Z");
        let req = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: &body,
        };
        let stale = verify(&req, at("2026-11-21T10:30:00Z"), |_| Some("S3CRET".into()));
        assert!(matches!(stale, Err(SigV4Error::Mismatch(m)) if m.contains("expired")));
        assert_eq!(
            verify(&req, at("2026-11-21T10:00:00Z"), |_| None),
            Err(SigV4Error::UnknownKey)
        );
        let empty = HeaderMap::new();
        let bare = SignedRequest {
            headers: &empty,
            ..req
        };
        assert_eq!(
            verify(&bare, Utc::now(), |_| None),
            Err(SigV4Error::Missing)
        );
    }
}
