//! The master key: where it comes from and how it is named.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use zeroize::Zeroizing;

/// The key that wraps every data key.
pub struct MasterKey {
    id: String,
    bytes: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("bytes", &"[redacted]")
            .finish()
    }
}

/// Loading or creating the master key failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MasterKeyError {
    /// The key material is not 32 bytes of base64.
    #[error("master key must be 32 bytes, base64-encoded ({0})")]
    Malformed(&'static str),
    /// Reading or writing the key file failed.
    #[error("master key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The system's random source failed.
    #[error("no randomness available")]
    Random,
}

impl MasterKey {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let d = digest::digest(
            &digest::SHA256,
            &[b"rotor master key id\0".as_slice(), &bytes].concat(),
        );
        MasterKey {
            id: format!("mk-{}", hex::encode(&d.as_ref()[..8])),
            bytes: Zeroizing::new(bytes),
        }
    }

    /// A key from base64 text (as in `ROTOR_MASTER_KEY` or a key file).
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| MasterKeyError::Malformed("not base64"))?,
        );
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| MasterKeyError::Malformed("wrong length"))?;
        Ok(Self::from_bytes(bytes))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
        Self::from_bytes(bytes)
    }

    /// Reads the key file at `path`, or creates it (mode 0600) with a fresh key when it
    /// does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, MasterKeyError> {
        let io = |source| MasterKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&Zeroizing::new(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                aws_lc_rs::rand::fill(&mut bytes).map_err(|_| MasterKeyError::Random)?;
                let key = Self::from_bytes(bytes);
                let text = Zeroizing::new(STANDARD.encode(key.bytes()));
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io)?;
                file.write_all(text.as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Reads an existing key file.
    pub fn load(path: &Path) -> Result<Self, MasterKeyError> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| MasterKeyError::Io {
                    path: path.display().to_string(),
                    source,
                })?,
            );
        Self::from_base64(&text)
    }

    /// The key's id, derived from its bytes (safe to store and log).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes[..]
    }

    /// A key derived from this one for one `purpose` (an HMAC-SHA256 key): what the
    /// holders of the master key, and only they, can compute alike.
    pub fn purpose_key(&self, purpose: &[u8]) -> aws_lc_rs::hmac::Key {
        use aws_lc_rs::hmac;
        let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, self.bytes()), purpose);
        hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn generated_key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = MasterKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(a.id(), b.id());
        assert!(!format!("{a:?}").contains(&STANDARD.encode(a.bytes())));
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64(&STANDARD.encode([1u8; 16])).is_err());
        assert!(MasterKey::from_base64(&STANDARD.encode([1u8; 32])).is_ok());
    }
}
