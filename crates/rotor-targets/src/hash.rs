//! The password hashes the servers store, computed here so that only they are sent.

use crate::TargetError;
use aws_lc_rs::{digest, hmac, pbkdf2};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::num::NonZeroU32;
use zeroize::Zeroizing;

/// PostgreSQL's default (`scram_iterations` before PostgreSQL 16 is fixed at 4096).
const SCRAM_ITERATIONS: NonZeroU32 = NonZeroU32::new(4096).unwrap();

/// A PostgreSQL SCRAM-SHA-256 verifier for `password` with a fresh 16-byte salt:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` ([RFC 5803]).
///
/// PostgreSQL runs the password through SASLprep first; for ASCII that changes
/// nothing (control characters make SASLprep fail, and PostgreSQL then uses the raw
/// bytes too). Other passwords are refused rather than hashed in a way the server
/// would not reproduce.
///
/// [RFC 5803]: https://www.rfc-editor.org/rfc/rfc5803
pub(crate) fn scram_sha256_verifier(password: &str) -> Result<String, TargetError> {
    if !password.is_ascii() {
        return Err(TargetError::other(
            "PostgreSQL passwords must be ASCII: SASLprep of other characters is not implemented",
        ));
    }
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt)
        .map_err(|_| TargetError::other("The system random source failed"))?;
    Ok(scram_sha256_verifier_with(
        password.as_bytes(),
        &salt,
        SCRAM_ITERATIONS,
    ))
}

fn scram_sha256_verifier_with(password: &[u8], salt: &[u8], iterations: NonZeroU32) -> String {
    let mut salted = Zeroizing::new([0u8; 32]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        password,
        &mut salted[..],
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salted[..]);
    let client_key = hmac::sign(&key, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let server_key = hmac::sign(&key, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        BASE64.encode(salt),
        BASE64.encode(stored_key),
        BASE64.encode(server_key)
    )
}

/// The `mysql_native_password` hash of `password`: `*` and the uppercase hex of
/// SHA1(SHA1(password)), as `PASSWORD()` computes it.
pub(crate) fn mysql_native_password_hash(password: &str) -> String {
    let sha1 = &digest::SHA1_FOR_LEGACY_USE_ONLY;
    let inner = digest::digest(sha1, password.as_bytes());
    let outer = digest::digest(sha1, inner.as_ref());
    format!("*{}", hex::encode_upper(outer))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values computed with Python's hashlib/hmac, independently of this code.
    #[test]
    fn scram_verifier_matches_an_independent_computation() {
        let salt: Vec<u8> = (0..16).collect();
        assert_eq!(
            scram_sha256_verifier_with(b"pencil", &salt, SCRAM_ITERATIONS),
            "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$zHCdol2044/ZyWzPLi7oxApCkamKw9Z+E4U/QApd/5Y=:dd5peBOitVnLNFu7VmwP+HiDaaw4OUCv396eVCWhYiE="
        );
    }

    #[test]
    fn scram_salts_differ_and_non_ascii_is_refused() {
        let a = scram_sha256_verifier("pw").unwrap();
        let b = scram_sha256_verifier("pw").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("SCRAM-SHA-256$4096:"), "{a}");
        assert!(scram_sha256_verifier("pässword").is_err());
    }

    /// `SELECT PASSWORD('secretpw')` on MariaDB 10.11.
    #[test]
    fn native_hash_matches_mariadb() {
        assert_eq!(
            mysql_native_password_hash("secretpw"),
            "*7648E52EC79D4BB879B7B913F0B8BBF8DC4AB6CC"
        );
    }
}
