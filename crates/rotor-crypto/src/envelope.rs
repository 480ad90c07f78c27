//! Sealing and opening version values.

use crate::master::MasterKey;
use aws_lc_rs::aead::{
    AES_256_GCM, AES_256_GCM_SIV, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey,
};
use aws_lc_rs::hmac;
use zeroize::Zeroizing;

/// The algorithm id stored with each version and bound into its associated data.
pub const ALGORITHM: &str = "AES256GCM-DK1";

/// A sealed value as stored: the encrypted value, its wrapped data key and the id of
/// the master key that wrapped it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// nonce ‖ ciphertext ‖ tag of the value.
    pub ciphertext: Vec<u8>,
    /// nonce ‖ ciphertext ‖ tag of the data key.
    pub wrapped_key: Vec<u8>,
    /// Algorithm id ([`ALGORITHM`]).
    pub algorithm: String,
    /// Id of the master key that wrapped the data key.
    pub key_id: String,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("ciphertext_len", &self.ciphertext.len())
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// The parts of a sealed value, borrowed from wherever they are stored.
#[derive(Clone, Copy)]
pub struct SealedRef<'a> {
    /// nonce ‖ ciphertext ‖ tag of the value.
    pub ciphertext: &'a [u8],
    /// nonce ‖ ciphertext ‖ tag of the data key.
    pub wrapped_key: &'a [u8],
    /// Algorithm id.
    pub algorithm: &'a str,
    /// Master key id.
    pub key_id: &'a str,
}

impl std::fmt::Debug for SealedRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedRef")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Sealing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptError {
    /// The crypto library refused (out of randomness, bad key).
    #[error("encryption failed")]
    Crypto,
}

/// Opening failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// The row was sealed under a master key this server does not hold.
    #[error("version was sealed under master key {0}, which is not loaded")]
    UnknownKey(String),
    /// The algorithm id is not one this build knows.
    #[error("unknown algorithm {0}")]
    UnknownAlgorithm(String),
    /// Authentication failed: the data was altered or belongs to another version.
    #[error("ciphertext failed authentication")]
    Tampered,
}

/// Encrypts and decrypts version values under one master key.
pub struct Envelope {
    master: MasterKey,
    wrap: LessSafeKey,
    digest: hmac::Key,
    tokens: hmac::Key,
    audit: hmac::Key,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("key_id", &self.master.id())
            .finish()
    }
}

fn aad(arn: &str, version_id: &str, algorithm: &str, key_id: &str) -> Vec<u8> {
    // Length-prefixed, so that no two different tuples encode alike.
    let mut out = Vec::with_capacity(arn.len() + version_id.len() + 64);
    for part in [arn, version_id, algorithm, key_id] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

fn seal_with(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, EncryptError> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| EncryptError::Crypto)?;
    let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
    buf.extend_from_slice(&nonce);
    buf.extend_from_slice(plaintext);
    let mut tail = buf.split_off(NONCE_LEN);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut tail,
    )
    .map_err(|_| EncryptError::Crypto)?;
    buf.extend_from_slice(&tail);
    tail.iter_mut().for_each(|b| *b = 0);
    Ok(buf)
}

fn open_with(
    key: &LessSafeKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(DecryptError::Tampered);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| DecryptError::Tampered)?;
    let mut buf = Zeroizing::new(body.to_vec());
    let len = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| DecryptError::Tampered)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

impl Envelope {
    /// An envelope using `master` to wrap data keys.
    pub fn new(master: MasterKey) -> Self {
        let wrap = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM_SIV, master.bytes()).expect("a 32-byte key is valid"),
        );
        Envelope {
            digest: master.purpose_key(b"rotor value digest v1"),
            tokens: master.purpose_key(b"rotor token hash v1"),
            audit: master.purpose_key(b"rotor audit chain v1"),
            master,
            wrap,
        }
    }

    /// The id of the master key in use.
    pub fn key_id(&self) -> &str {
        self.master.id()
    }

    /// Encrypts `plaintext` for version `version_id` of the secret `arn`.
    pub fn seal(
        &self,
        arn: &str,
        version_id: &str,
        plaintext: &[u8],
    ) -> Result<Sealed, EncryptError> {
        let mut data_key = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(&mut data_key[..]).map_err(|_| EncryptError::Crypto)?;
        let bound = aad(arn, version_id, ALGORITHM, self.master.id());
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &data_key[..]).map_err(|_| EncryptError::Crypto)?,
        );
        let ciphertext = seal_with(&key, &bound, plaintext)?;
        let wrapped_key = seal_with(&self.wrap, &bound, &data_key[..])?;
        Ok(Sealed {
            ciphertext,
            wrapped_key,
            algorithm: ALGORITHM.to_string(),
            key_id: self.master.id().to_string(),
        })
    }

    /// Decrypts a version sealed by [`Envelope::seal`] with the same `arn` and
    /// `version_id`.
    pub fn open(
        &self,
        arn: &str,
        version_id: &str,
        sealed: &Sealed,
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        self.open_parts(
            arn,
            version_id,
            SealedRef {
                ciphertext: &sealed.ciphertext,
                wrapped_key: &sealed.wrapped_key,
                algorithm: &sealed.algorithm,
                key_id: &sealed.key_id,
            },
        )
    }

    /// [`Envelope::open`] on borrowed parts, so a reader need not copy a stored row.
    pub fn open_parts(
        &self,
        arn: &str,
        version_id: &str,
        sealed: SealedRef<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        if sealed.key_id != self.master.id() {
            return Err(DecryptError::UnknownKey(sealed.key_id.to_string()));
        }
        if sealed.algorithm != ALGORITHM {
            return Err(DecryptError::UnknownAlgorithm(sealed.algorithm.to_string()));
        }
        let bound = aad(arn, version_id, sealed.algorithm, sealed.key_id);
        let data_key = open_with(&self.wrap, &bound, sealed.wrapped_key)?;
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &data_key).map_err(|_| DecryptError::Tampered)?,
        );
        open_with(&key, &bound, sealed.ciphertext)
    }

    /// The keyed hash a bearer token is stored as. Keyed, so that the database alone
    /// does not let anyone check guesses.
    pub fn token_hash(&self, token: &str) -> Vec<u8> {
        hmac::sign(&self.tokens, token.as_bytes()).as_ref().to_vec()
    }

    /// The HMAC of the audit log's hash chain and of its hashed request fields.
    pub fn audit_mac(&self, data: &[u8]) -> Vec<u8> {
        hmac::sign(&self.audit, data).as_ref().to_vec()
    }

    /// A keyed digest of a value, stored beside it so that "same token, same value"
    /// can be decided without decrypting. Keyed by the master key, so it reveals
    /// nothing to someone holding only the database.
    pub fn value_digest(&self, tagged_value: &[u8]) -> Vec<u8> {
        hmac::sign(&self.digest, tagged_value).as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:a-AAAAAA";

    #[test]
    fn ciphertext_is_bound_to_arn_and_version() {
        let env = Envelope::new(MasterKey::generate());
        let sealed = env.seal(ARN, "v1", b"value").unwrap();
        assert!(env.open(ARN, "v2", &sealed).is_err());
        assert!(env.open("arn:other", "v1", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped.ciphertext[20] ^= 1;
        assert!(matches!(
            env.open(ARN, "v1", &flipped),
            Err(DecryptError::Tampered)
        ));
    }

    #[test]
    fn each_version_gets_a_fresh_data_key() {
        let env = Envelope::new(MasterKey::generate());
        let a = env.seal(ARN, "v1", b"same").unwrap();
        let b = env.seal(ARN, "v1", b"same").unwrap();
        assert_ne!(a.wrapped_key, b.wrapped_key);
        assert_ne!(a.ciphertext, b.ciphertext);
        assert!(!a.ciphertext.windows(4).any(|w| w == b"same"));
    }

    #[test]
    fn another_master_key_cannot_open() {
        let a = Envelope::new(MasterKey::generate());
        let b = Envelope::new(MasterKey::generate());
        let sealed = a.seal(ARN, "v1", b"value").unwrap();
        assert!(matches!(
            b.open(ARN, "v1", &sealed),
            Err(DecryptError::UnknownKey(_))
        ));
    }

    #[test]
    fn digests_are_keyed() {
        let a = Envelope::new(MasterKey::generate());
        let b = Envelope::new(MasterKey::generate());
        assert_eq!(a.value_digest(b"x"), a.value_digest(b"x"));
        assert_ne!(a.value_digest(b"x"), b.value_digest(b"x"));
        assert_ne!(a.value_digest(b"x"), a.value_digest(b"y"));
    }
}
