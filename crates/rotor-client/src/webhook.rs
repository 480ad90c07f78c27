//! Checking a webhook Rotor sent: its signature and its age.
//!
//! Rotor signs each webhook body with the subscription's (or rotator's) key: the
//! `x-rotor-timestamp` header holds the Unix time in seconds at sending, and
//! `x-rotor-signature` is `sha256=` followed by the hex of
//! `HMAC-SHA256(key, "{timestamp}.{body}")`. A receiver accepts a request only when
//! the signature matches and the timestamp is within [`MAX_AGE`] of its own clock, so
//! a captured request cannot be replayed later. Within the window, a receiver that
//! must not act twice keeps the `x-rotor-delivery` ids it has seen.
//!
//! ```
//! use rotor_client::webhook::{self, VerifyError};
//! let key = b"key shown once at creation";
//! let body = br#"{"kind":"version.put"}"#;
//! let now = 1_700_000_000;
//! let signature = webhook::sign(key, now, body);
//! assert_eq!(webhook::verify_at(key, "1700000000", &signature, body, now), Ok(()));
//! assert_eq!(
//!     webhook::verify_at(key, "1700000000", &signature, body, now + 301),
//!     Err(VerifyError::Stale)
//! );
//! ```

use aws_lc_rs::hmac;

/// How far a request's timestamp may be from the receiver's clock, either way.
pub const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);

/// A webhook request failed its check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The `x-rotor-timestamp` header is not a Unix time in seconds.
    #[error("x-rotor-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    /// The `x-rotor-signature` header is not `sha256=` and 64 hex digits.
    #[error("x-rotor-signature is not sha256= followed by 64 hex digits")]
    BadSignatureFormat,
    /// The signature does not match the body, timestamp and key.
    #[error("the signature does not match the body and timestamp under this key")]
    Mismatch,
    /// The timestamp is more than [`MAX_AGE`] away from now: a replay, or a clock off.
    #[error("the request was signed more than 5 minutes away from now (a replay?)")]
    Stale,
}

/// The `x-rotor-signature` value for `body` sent at `timestamp` under `key`.
pub fn sign(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        &signed_bytes(&timestamp.to_string(), body),
    );
    format!("sha256={}", hex::encode(tag.as_ref()))
}

/// Checks a request against the system clock: see [`verify_at`].
pub fn verify(
    key: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
) -> Result<(), VerifyError> {
    verify_at(
        key,
        timestamp,
        signature,
        body,
        chrono::Utc::now().timestamp(),
    )
}

/// Checks the `x-rotor-timestamp` and `x-rotor-signature` headers of a request with
/// `body` at Unix time `now`: the signature must match (compared in constant time)
/// and the timestamp be within [`MAX_AGE`] of `now`.
pub fn verify_at(
    key: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let tag = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .filter(|t| t.len() == 32)
        .ok_or(VerifyError::BadSignatureFormat)?;
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        &signed_bytes(timestamp.trim(), body),
        &tag,
    )
    .map_err(|_| VerifyError::Mismatch)?;
    if now.abs_diff(sent) > MAX_AGE.as_secs() {
        return Err(VerifyError::Stale);
    }
    Ok(())
}

fn signed_bytes(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut signed = Vec::with_capacity(timestamp.len() + 1 + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    signed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_request_verifies_within_five_minutes_only() {
        let key = b"k";
        let body = b"{}";
        let sig = sign(key, 1000, body);
        assert_eq!(verify_at(key, "1000", &sig, body, 1000 + 300), Ok(()));
        assert_eq!(verify_at(key, "1000", &sig, body, 1000 - 300), Ok(()));
        assert_eq!(
            verify_at(key, "1000", &sig, body, 1301),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify_at(key, "1000", &sig, b"{ }", 1000),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_at(key, "1001", &sig, body, 1000),
            Err(VerifyError::Mismatch),
            "the timestamp is signed too"
        );
        assert_eq!(
            verify_at(b"other", "1000", &sig, body, 1000),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_at(key, "soon", &sig, body, 1000),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verify_at(key, "1000", "sha1=00", body, 1000),
            Err(VerifyError::BadSignatureFormat)
        );
    }
}
