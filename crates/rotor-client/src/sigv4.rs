//! Signing requests with [AWS Signature Version 4], header form, for the `aws` vault
//! backend. Only what a Secrets Manager JSON request needs: no presigned URLs, no
//! chunked payloads.
//!
//! [AWS Signature Version 4]: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html

use aws_lc_rs::{digest, hmac};
use std::fmt::Write as _;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What a signature covers. `headers` are every header to sign, names in lower case,
/// including `host` and `x-amz-date` (`YYYYMMDDTHHMMSSZ`).
pub(crate) struct Request<'a> {
    pub method: &'a str,
    /// Already percent-encoded, as sent.
    pub path: &'a str,
    /// Raw query string without `?`.
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The signer's identity and scope.
pub(crate) struct Scope<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// The `Authorization` header value for `req`.
pub(crate) fn authorization(req: &Request<'_>, scope: &Scope<'_>) -> String {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    let amz_date = headers
        .iter()
        .find(|(k, _)| k == "x-amz-date")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let date = amz_date.get(..8).unwrap_or("");
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");

    let mut canonical = String::with_capacity(256);
    let path = if req.path.is_empty() { "/" } else { req.path };
    let _ = write!(
        canonical,
        "{}\n{path}\n{}\n",
        req.method,
        canonical_query(req.query)
    );
    for (name, value) in &headers {
        let _ = writeln!(canonical, "{name}:{value}");
    }
    let _ = write!(
        canonical,
        "\n{signed}\n{}",
        hex::encode(digest::digest(&digest::SHA256, req.body))
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{date}/{}/{}/aws4_request\n{}",
        scope.region,
        scope.service,
        hex::encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    );
    let mut key = hmac_sha256(
        format!("AWS4{}", scope.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [scope.region, scope.service, "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac_sha256(&key, string_to_sign.as_bytes()));
    format!(
        "{ALGORITHM} Credential={}/{date}/{}/{}/aws4_request, SignedHeaders={signed}, Signature={signature}",
        scope.access_key_id, scope.region, scope.service
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// Parameters sorted by name, then value, both as sent.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `get-vanilla` case of AWS's Signature Version 4 test suite.
    #[test]
    fn signs_the_aws_test_suite_get_vanilla_request() {
        let req = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: b"",
        };
        let scope = Scope {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            region: "us-east-1",
            service: "service",
        };
        assert_eq!(
            authorization(&req, &scope),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn query_parameters_are_sorted() {
        assert_eq!(canonical_query("b=2&a=1&a=0&c"), "a=0&a=1&b=2&c=");
    }
}
