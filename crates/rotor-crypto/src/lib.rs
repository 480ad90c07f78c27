//! Envelope encryption of secret versions, master keys, value digests and randomness.
//!
//! Each version is encrypted under its own fresh 256-bit data key with AES-256-GCM.
//! The associated data binds the ciphertext to the secret's ARN, the version id, the
//! algorithm and the master key id, so a stored ciphertext cannot be moved to another
//! secret or version unnoticed. The data key is wrapped by the master key with
//! AES-256-GCM-SIV (nonce-misuse resistant, since the master key encrypts many keys).
//! Rows record the master key id, so re-wrapping under a new master key can proceed
//! one row at a time.
//!
//! ```
//! use rotor_crypto::{Envelope, MasterKey};
//!
//! let envelope = Envelope::new(MasterKey::generate());
//! let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbC123";
//! let sealed = envelope.seal(arn, "v1", b"s3cr3t").unwrap();
//! assert_eq!(&envelope.open(arn, "v1", &sealed).unwrap()[..], b"s3cr3t");
//! // The same ciphertext does not open as another version.
//! assert!(envelope.open(arn, "v2", &sealed).is_err());
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod envelope;
mod master;
pub mod random;
pub mod sigv4;

pub use envelope::{ALGORITHM, DecryptError, EncryptError, Envelope, Sealed, SealedRef};
pub use master::{MasterKey, MasterKeyError};

/// Whether `a` and `b` are equal, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// SHA-256 of `data`: the payload hash SigV4 signs.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// A SHA-256 over data given in parts.
pub struct Sha256(aws_lc_rs::digest::Context);

impl Sha256 {
    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything added.
    pub fn finish(self) -> [u8; 32] {
        let digest = self.0.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        out
    }
}

/// A SHA-256 to feed in parts (a backup's digest over every version).
pub fn sha256_stream() -> Sha256 {
    Sha256(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256))
}

/// HMAC-SHA256 of `data` under `key`: how webhook bodies are signed.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let tag = aws_lc_rs::hmac::sign(&key, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}
