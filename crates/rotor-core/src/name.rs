//! Secret names, version ids, ARNs, and how a `SecretId` names a secret.
//!
//! Names follow AWS's rule: 1–512 characters from letters, digits and `/_+=.@-`, which
//! admits path-like names such as `/dba/passpack/services/mp/mongo/password`. An ARN is
//! `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX`, the six-character suffix
//! telling apart a secret from an earlier one of the same name.

use crate::error::{Error, Result};

/// The longest secret name AWS accepts.
pub const MAX_NAME_LEN: usize = 512;
/// The longest version id (`ClientRequestToken`) accepted.
pub const MAX_VERSION_ID_LEN: usize = 64;

/// Checks a secret name, returning a `ValidationException` that says what is wrong.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::validation(format!(
            "Invalid name: a secret name must be 1 to {MAX_NAME_LEN} characters long, got {}",
            name.len()
        )));
    }
    if let Some(bad) = name.chars().find(|c| !is_name_char(*c)) {
        return Err(Error::validation(format!(
            "Invalid name: character {bad:?} is not allowed; use letters, digits and /_+=.@-"
        )));
    }
    if name.starts_with("arn:") {
        return Err(Error::validation(
            "Invalid name: a secret name can't start with \"arn:\"",
        ));
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)
}

/// Checks a version id, whether chosen by the caller (`v2`) or a UUID token.
pub fn validate_version_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_VERSION_ID_LEN {
        return Err(Error::validation(format!(
            "Invalid version id: it must be 1 to {MAX_VERSION_ID_LEN} characters long, got {}",
            id.len()
        )));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        return Err(Error::validation(format!(
            "Invalid version id: character {bad:?} is not allowed; use letters, digits and -_."
        )));
    }
    Ok(())
}

/// Checks the name of a rotator, subscription or replication rule (`what`): 1 to
/// `max` ASCII letters, digits and the characters of `extra`.
pub fn validate_identifier(what: &str, name: &str, max: usize, extra: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c));
    if ok {
        return Ok(());
    }
    let quoted: Vec<String> = extra.chars().map(|c| format!("{c:?}")).collect();
    let allowed = match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(Error::invalid_parameter(format!(
        "A {what} name must be 1 to {max} letters, digits, {allowed}, got {name:?}"
    )))
}

/// Checks a region's name: 1–32 lowercase letters, digits and `-` (`us-east-1`).
pub fn validate_region(region: &str) -> Result<()> {
    let ok = (1..=32).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "Invalid region {region:?}: use 1 to 32 lowercase letters, digits and -"
        )))
    }
}

/// Builds the ARN of a secret.
pub fn arn(region: &str, account: &str, name: &str, suffix: &str) -> String {
    format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-{suffix}")
}

/// How a request's `SecretId` names a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef<'a> {
    /// A plain name.
    Name(&'a str),
    /// An ARN: `full` as given, and `resource`, the part after `secret:` (either
    /// `NAME-XXXXXX` for a full ARN or `NAME` for a partial one).
    Arn {
        /// The ARN as given.
        full: &'a str,
        /// What follows `:secret:`.
        resource: &'a str,
    },
}

impl<'a> SecretRef<'a> {
    /// Parses a `SecretId`. An ARN must name the `secretsmanager` service and a
    /// `secret` resource.
    pub fn parse(id: &'a str) -> Result<Self> {
        if id.is_empty() || id.len() > 2048 {
            return Err(Error::validation(
                "Invalid SecretId: it must be 1 to 2048 characters long",
            ));
        }
        if !id.starts_with("arn:") {
            return Ok(SecretRef::Name(id));
        }
        // arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:RESOURCE
        let parts: Vec<&str> = id.splitn(7, ':').collect();
        match parts.as_slice() {
            [_, _, "secretsmanager", _, _, "secret", resource] if !resource.is_empty() => {
                Ok(SecretRef::Arn { full: id, resource })
            }
            _ => Err(Error::validation(format!(
                "Invalid SecretId: {id:?} is not a Secrets Manager secret ARN"
            ))),
        }
    }
}

/// The six-character ARN suffix, drawn from `random` bytes.
pub fn arn_suffix(random: [u8; 6]) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    random
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_say_what_they_allow() {
        assert!(validate_identifier("rotator", "pg-main_2", 64, "-_").is_ok());
        let e = validate_identifier("rotator", "pg main", 64, "-_").unwrap_err();
        assert_eq!(
            e.message,
            "A rotator name must be 1 to 64 letters, digits, '-' or '_', got \"pg main\""
        );
        let e = validate_identifier("rule", "", 128, "-_.").unwrap_err();
        assert!(
            e.message
                .contains("1 to 128 letters, digits, '-', '_' or '.'")
        );
        assert!(validate_identifier("rule", &"a".repeat(129), 128, "-_.").is_err());
        assert!(validate_identifier("rule", "é", 128, "-_.").is_err());
    }

    #[test]
    fn names_follow_aws_rules() {
        for ok in [
            "prod/db",
            "/dba/passpack/services/mp/mongo/password",
            "a+b=c.d@e_f-g",
        ] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "has space", "semi;colon", "ünïcode", "arn:aws:x"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert!(validate_name(&"a".repeat(512)).is_ok());
        assert!(validate_name(&"a".repeat(513)).is_err());
    }

    #[test]
    fn secret_ids_parse_as_names_and_arns() {
        assert_eq!(
            SecretRef::parse("prod/db").unwrap(),
            SecretRef::Name("prod/db")
        );
        let full = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbC123";
        assert_eq!(
            SecretRef::parse(full).unwrap(),
            SecretRef::Arn {
                full,
                resource: "prod/db-AbC123"
            }
        );
        assert!(SecretRef::parse("arn:aws:s3:::bucket").is_err());
        assert!(SecretRef::parse("").is_err());
    }

    #[test]
    fn arn_suffix_is_six_alphanumerics() {
        let s = arn_suffix([0, 61, 62, 255, 7, 100]);
        assert_eq!(s.len(), 6);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
