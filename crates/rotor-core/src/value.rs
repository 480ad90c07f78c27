//! Secret values: a string or bytes, at most 65,536 bytes, never shown by `Debug`.

use crate::error::{Error, Result};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use std::fmt;
use zeroize::Zeroizing;

/// Largest value a version may hold, in bytes.
pub const MAX_VALUE_LEN: usize = 65_536;

/// A secret's value, as `SecretString` or `SecretBinary`.
pub enum SecretValue {
    /// A text value.
    String(SecretString),
    /// A binary value.
    Binary(SecretBox<Vec<u8>>),
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretValue::String(_) => f.write_str("SecretValue::String([redacted])"),
            SecretValue::Binary(_) => f.write_str("SecretValue::Binary([redacted])"),
        }
    }
}

impl Clone for SecretValue {
    fn clone(&self) -> Self {
        match self {
            SecretValue::String(s) => SecretValue::String(s.expose_secret().into()),
            SecretValue::Binary(b) => {
                SecretValue::Binary(SecretBox::new(Box::new(b.expose_secret().clone())))
            }
        }
    }
}

const TAG_STRING: u8 = b's';
const TAG_BINARY: u8 = b'b';

impl SecretValue {
    /// A text value, checked against the size limit.
    pub fn string(s: String) -> Result<Self> {
        let v = SecretValue::String(s.into());
        v.check_len()?;
        Ok(v)
    }

    /// A text value already held as a `SecretString`, checked against the size limit.
    pub fn from_secret_string(s: SecretString) -> Result<Self> {
        let v = SecretValue::String(s);
        v.check_len()?;
        Ok(v)
    }

    /// A binary value, checked against the size limit.
    pub fn binary(b: Vec<u8>) -> Result<Self> {
        let v = SecretValue::Binary(SecretBox::new(Box::new(b)));
        v.check_len()?;
        Ok(v)
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        match self {
            SecretValue::String(s) => s.expose_secret().len(),
            SecretValue::Binary(b) => b.expose_secret().len(),
        }
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check_len(&self) -> Result<()> {
        let (len, field) = match self {
            SecretValue::String(s) => (s.expose_secret().len(), "SecretString"),
            SecretValue::Binary(b) => (b.expose_secret().len(), "SecretBinary"),
        };
        if len == 0 || len > MAX_VALUE_LEN {
            return Err(Error::validation(format!(
                "{field} must be 1 to {MAX_VALUE_LEN} bytes long, got {len}"
            )));
        }
        Ok(())
    }

    /// The value as bytes with a one-byte type tag, the form that is encrypted and
    /// digested. Zeroized when dropped.
    pub fn to_tagged_bytes(&self) -> Zeroizing<Vec<u8>> {
        let (tag, bytes) = match self {
            SecretValue::String(s) => (TAG_STRING, s.expose_secret().as_bytes()),
            SecretValue::Binary(b) => (TAG_BINARY, b.expose_secret().as_slice()),
        };
        let mut out = Zeroizing::new(Vec::with_capacity(bytes.len() + 1));
        out.push(tag);
        out.extend_from_slice(bytes);
        out
    }

    /// The inverse of [`SecretValue::to_tagged_bytes`].
    pub fn from_tagged_bytes(bytes: &[u8]) -> Result<Self> {
        match bytes.split_first() {
            Some((&TAG_STRING, rest)) => std::str::from_utf8(rest)
                .map(|s| SecretValue::String(s.into()))
                .map_err(|_| Error::internal("stored string value is not UTF-8")),
            Some((&TAG_BINARY, rest)) => {
                Ok(SecretValue::Binary(SecretBox::new(Box::new(rest.to_vec()))))
            }
            _ => Err(Error::internal("stored value has an unknown type tag")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let v = SecretValue::string("hunter2-very-secret".into()).unwrap();
        assert!(!format!("{v:?}").contains("hunter2"));
        let b = SecretValue::binary(b"bin-secret".to_vec()).unwrap();
        assert!(!format!("{b:?}").contains("bin-secret"));
    }

    #[test]
    fn size_limit_is_65536_bytes() {
        assert!(SecretValue::string("a".repeat(MAX_VALUE_LEN)).is_ok());
        assert!(SecretValue::string("a".repeat(MAX_VALUE_LEN + 1)).is_err());
        assert!(SecretValue::binary(vec![]).is_err());
    }

    #[test]
    fn tagged_bytes_round_trip() {
        let v = SecretValue::binary(vec![0, 1, 2]).unwrap();
        let back = SecretValue::from_tagged_bytes(&v.to_tagged_bytes()).unwrap();
        assert!(matches!(back, SecretValue::Binary(_)));
        assert_eq!(back.to_tagged_bytes(), v.to_tagged_bytes());
    }
}
