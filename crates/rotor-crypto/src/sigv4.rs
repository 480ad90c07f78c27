//! The arithmetic of [AWS Signature Version 4], header form, shared by the server's
//! verifier and every signer (the client's `aws` vault, tests, benchmarks): the
//! canonical request, the string to sign, the derived signing key and the signature.
//! Parsing and policy (which headers must be signed, clock skew, the payload hash a
//! server accepts) stay with the verifier.
//!
//! Checked against AWS's published test vectors: the Signature Version 4 test suite
//! (`get-vanilla`, `post-vanilla`, `get-vanilla-query-order-key-case`,
//! `post-vanilla-empty-query-value`) and the signing-key example of the IAM
//! documentation.
//!
//! [AWS Signature Version 4]: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
//!
//! ```
//! use rotor_crypto::sigv4;
//! let headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")];
//! let scope = sigv4::Credentials {
//!     access_key_id: "AKIDEXAMPLE",
//!     secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
//!     region: "us-east-1",
//!     service: "service",
//! };
//! let authorization = sigv4::authorization("GET", "/", "", &headers, b"", &scope);
//! assert!(authorization.ends_with("Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
//! ```

use std::fmt::Write as _;

/// The only algorithm Rotor signs and accepts.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Who signs, for which region and service.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The access key id.
    pub access_key_id: &'a str,
    /// The secret access key.
    pub secret_access_key: &'a str,
    /// The region of the scope.
    pub region: &'a str,
    /// The service of the scope.
    pub service: &'a str,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// The key a day's signatures in one region and service are made with:
/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
/// It changes once a day, so a verifier may keep it.
pub fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut key = crate::hmac_sha256(
        format!("AWS4{secret_access_key}").as_bytes(),
        date.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        key = crate::hmac_sha256(&key, part.as_bytes());
    }
    key
}

/// A [`signing_key`] ready to sign with: the HMAC's padded key blocks are computed
/// once, so each signature costs only the message's blocks. A verifier keeps one per
/// access key and scope for the day it is valid.
pub struct SigningKey(aws_lc_rs::hmac::Key);

impl SigningKey {
    /// The key of `secret_access_key` for `date` (`YYYYMMDD`), `region` and `service`.
    pub fn derive(secret_access_key: &str, date: &str, region: &str, service: &str) -> Self {
        let key = signing_key(secret_access_key, date, region, service);
        SigningKey(aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            &key,
        ))
    }

    /// The raw signature of `string_to_sign`.
    pub fn sign(&self, string_to_sign: &str) -> [u8; 32] {
        let tag = aws_lc_rs::hmac::sign(&self.0, string_to_sign.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// The raw signature of the [`string_to_sign`] of a canonical request whose hash
    /// is `canonical_hash`, without building the string.
    pub fn sign_request(
        &self,
        amz_date: &str,
        region: &str,
        service: &str,
        canonical_hash: &[u8; 32],
    ) -> [u8; 32] {
        // Gathered first and signed in one call: a dozen small updates of the
        // context cost more than the signature itself.
        let mut text = String::with_capacity(160);
        write_string_to_sign(&mut text, amz_date, region, service, canonical_hash);
        self.sign(&text)
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

fn write_canonical_request<N: AsRef<str>, V: AsRef<str>>(
    out: &mut String,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(N, V)],
    payload_hash: &str,
) {
    out.push_str(method);
    out.push('\n');
    out.push_str(if path.is_empty() { "/" } else { path });
    out.push('\n');
    out.push_str(&canonical_query(query));
    out.push('\n');
    for (name, value) in headers {
        out.push_str(name.as_ref());
        out.push(':');
        let mut words = value.as_ref().split_whitespace();
        if let Some(first) = words.next() {
            out.push_str(first);
            for word in words {
                out.push(' ');
                out.push_str(word);
            }
        }
        out.push('\n');
    }
    out.push('\n');
    for (i, (name, _)) in headers.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name.as_ref());
    }
    out.push('\n');
    out.push_str(payload_hash);
}

fn write_string_to_sign(
    out: &mut String,
    amz_date: &str,
    region: &str,
    service: &str,
    canonical_hash: &[u8; 32],
) {
    let mut hex = [0u8; 64];
    // Cannot fail: the buffer is exactly twice the hash's length.
    let _ = hex::encode_to_slice(canonical_hash, &mut hex);
    for piece in [
        ALGORITHM,
        "\n",
        amz_date,
        "\n",
        amz_date.get(..8).unwrap_or(""),
        "/",
        region,
        "/",
        service,
        "/aws4_request\n",
        std::str::from_utf8(&hex).unwrap_or_default(),
    ] {
        out.push_str(piece);
    }
}

/// The canonical request: `headers` are the signed headers, names in lower case and
/// sorted, values as received (their whitespace is collapsed here); `path` and
/// `query` are as sent (already percent-encoded); `payload_hash` is the hex SHA-256
/// of the body.
pub fn canonical_request<N: AsRef<str>, V: AsRef<str>>(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(N, V)],
    payload_hash: &str,
) -> String {
    let mut canonical = String::with_capacity(256);
    write_canonical_request(&mut canonical, method, path, query, headers, payload_hash);
    canonical
}

/// The SHA-256 of [`canonical_request`], hashed as it is written rather than built
/// first: what a verifier needs.
pub fn canonical_request_hash<N: AsRef<str>, V: AsRef<str>>(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(N, V)],
    payload_hash: &str,
) -> [u8; 32] {
    // Written out, then hashed in one call (its thirty-odd pieces one update each
    // cost more than the hashing).
    let mut text = String::with_capacity(512);
    write_canonical_request(&mut text, method, path, query, headers, payload_hash);
    crate::sha256(text.as_bytes())
}

/// The string to sign for `canonical` at `amz_date` (`YYYYMMDDTHHMMSSZ`) in the scope
/// of `region` and `service`.
pub fn string_to_sign(amz_date: &str, region: &str, service: &str, canonical: &str) -> String {
    let mut out = String::with_capacity(160);
    let hash = crate::sha256(canonical.as_bytes());
    write_string_to_sign(&mut out, amz_date, region, service, &hash);
    out
}

/// The hex signature of `string_to_sign` under a [`signing_key`].
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(crate::hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// Query parameters sorted by name then value, both as sent.
pub fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(query.len() + 1);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        let _ = write!(out, "{k}={v}");
    }
    out
}

/// Signs a request: the `Authorization` header value. `headers` hold every header to
/// sign (any case), including `host` and `x-amz-date`; the body is hashed here.
pub fn authorization(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    credentials: &Credentials<'_>,
) -> String {
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    headers.sort();
    let amz_date = headers
        .iter()
        .find(|(k, _)| k == "x-amz-date")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let date = amz_date.get(..8).unwrap_or("");
    let payload_hash = hex::encode(crate::sha256(body));
    let canonical = canonical_request(method, path, query, &headers, &payload_hash);
    let to_sign = string_to_sign(
        &amz_date,
        credentials.region,
        credentials.service,
        &canonical,
    );
    let key = SigningKey::derive(
        credentials.secret_access_key,
        date,
        credentials.region,
        credentials.service,
    );
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    format!(
        "{ALGORITHM} Credential={}/{date}/{}/{}/aws4_request, SignedHeaders={}, Signature={}",
        credentials.access_key_id,
        credentials.region,
        credentials.service,
        signed.join(";"),
        hex::encode(key.sign(&to_sign))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: Credentials<'static> = Credentials {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region: "us-east-1",
        service: "service",
    };
    const HEADERS: [(&str, &str); 2] = [
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
    ];

    fn suite_signature(method: &str, query: &str) -> String {
        let auth = authorization(method, "/", query, &HEADERS, b"", &SUITE);
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature="
            ),
            "{auth}"
        );
        auth.rsplit('=').next().unwrap_or_default().to_string()
    }

    /// AWS's Signature Version 4 test suite, the cases a JSON API request resembles.
    #[test]
    fn signs_the_aws_test_suite_vectors() {
        assert_eq!(
            suite_signature("GET", ""),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            "get-vanilla"
        );
        assert_eq!(
            suite_signature("POST", ""),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            "post-vanilla"
        );
        assert_eq!(
            suite_signature("GET", "Param2=value2&Param1=value1"),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            "get-vanilla-query-order-key-case"
        );
        assert_eq!(
            suite_signature("POST", "Param1=value1"),
            "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
            "post-vanilla-empty-query-value"
        );
    }

    /// The streaming forms a verifier uses sign exactly what the built strings do.
    #[test]
    fn hashing_as_written_signs_the_same() {
        let headers = [
            ("host", "example.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
        ];
        let payload = hex::encode(crate::sha256(b"{}"));
        let canonical = canonical_request("POST", "/", "b=2&a=1", &headers, &payload);
        let hash = canonical_request_hash("POST", "/", "b=2&a=1", &headers, &payload);
        assert_eq!(hash, crate::sha256(canonical.as_bytes()));
        let key = SigningKey::derive(SUITE.secret_access_key, "20150830", "us-east-1", "service");
        let built = string_to_sign("20150830T123600Z", "us-east-1", "service", &canonical);
        assert_eq!(
            key.sign_request("20150830T123600Z", "us-east-1", "service", &hash),
            key.sign(&built)
        );
    }

    /// post-vanilla's intermediate values: the hash of the canonical request.
    #[test]
    fn the_canonical_request_is_the_suites() {
        let headers = vec![
            ("host".to_string(), "example.amazonaws.com".to_string()),
            ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
        ];
        let empty = hex::encode(crate::sha256(b""));
        let canonical = canonical_request("POST", "/", "", &headers, &empty);
        assert_eq!(
            canonical,
            "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(crate::sha256(canonical.as_bytes())),
            "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87"
        );
    }

    /// The IAM documentation's example of deriving a signing key.
    #[test]
    fn derives_the_documented_signing_key() {
        assert_eq!(
            hex::encode(signing_key(
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                "20150830",
                "us-east-1",
                "iam"
            )),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn query_parameters_are_sorted_by_name_then_value() {
        assert_eq!(canonical_query("b=2&a=1&a=0&c"), "a=0&a=1&b=2&c=");
        assert_eq!(canonical_query(""), "");
    }
}
