//! `ListSecrets` / `BatchGetSecretValue` filters.
//!
//! Keys and matching follow AWS: `name`, `tag-key`, `tag-value`, `primary-region` and
//! `owning-service` are case-sensitive prefix matches, `description` is a
//! case-insensitive prefix match, and `all` splits the value into words and looks for
//! each in every attribute, ignoring case. A value starting with `!` negates. Values
//! of one filter are alternatives; all filters must match.

use crate::error::{Error, Result};
use crate::model::SecretMeta;

/// A filter key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKey {
    /// `description`
    Description,
    /// `name`
    Name,
    /// `tag-key`
    TagKey,
    /// `tag-value`
    TagValue,
    /// `primary-region`
    PrimaryRegion,
    /// `owning-service`
    OwningService,
    /// `all`
    All,
}

impl FilterKey {
    /// Parses AWS's spelling of a key.
    pub fn parse(key: &str) -> Result<Self> {
        Ok(match key {
            "description" => FilterKey::Description,
            "name" => FilterKey::Name,
            "tag-key" => FilterKey::TagKey,
            "tag-value" => FilterKey::TagValue,
            "primary-region" => FilterKey::PrimaryRegion,
            "owning-service" => FilterKey::OwningService,
            "all" => FilterKey::All,
            other => {
                return Err(Error::validation(format!(
                    "Invalid filter key {other:?}: use description, name, tag-key, tag-value, primary-region, owning-service or all"
                )));
            }
        })
    }
}

/// One filter: a key and the values any of which may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// What attribute to look at.
    pub key: FilterKey,
    /// Prefixes; a leading `!` negates.
    pub values: Vec<String>,
}

impl Filter {
    /// A checked filter.
    pub fn new(key: &str, values: Vec<String>) -> Result<Self> {
        let key = FilterKey::parse(key)?;
        if values.is_empty() || values.len() > 10 {
            return Err(Error::validation(
                "Invalid filter: each filter takes 1 to 10 values",
            ));
        }
        for v in &values {
            let ok = v.len() <= 512
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || " :_@/+=.-!".contains(c));
            if !ok {
                return Err(Error::validation(format!(
                    "Invalid filter value {v:?}: up to 512 of letters, digits, spaces and :_@/+=.-!"
                )));
            }
        }
        Ok(Filter { key, values })
    }

    /// Whether `secret` passes this filter.
    pub fn matches(&self, secret: &SecretMeta) -> bool {
        let (negative, positive): (Vec<&str>, Vec<&str>) = self
            .values
            .iter()
            .map(String::as_str)
            .partition(|v| v.starts_with('!'));
        let any_positive =
            positive.is_empty() || positive.iter().any(|v| self.value_matches(secret, v));
        let no_negative = negative
            .iter()
            .all(|v| !self.value_matches(secret, &v[1..]));
        any_positive && no_negative
    }

    fn value_matches(&self, s: &SecretMeta, v: &str) -> bool {
        match self.key {
            FilterKey::Name => s.name.starts_with(v),
            FilterKey::Description => s
                .description
                .as_deref()
                .is_some_and(|d| d.to_lowercase().starts_with(&v.to_lowercase())),
            FilterKey::TagKey => s.tags.iter().any(|t| t.key.starts_with(v)),
            FilterKey::TagValue => s.tags.iter().any(|t| t.value.starts_with(v)),
            FilterKey::PrimaryRegion | FilterKey::OwningService => false,
            FilterKey::All => {
                let mut attrs: Vec<&str> = vec![s.name.as_str()];
                attrs.extend(s.description.as_deref());
                attrs.extend(
                    s.tags
                        .iter()
                        .flat_map(|t| [t.key.as_str(), t.value.as_str()]),
                );
                v.split_whitespace().all(|word| {
                    let word = word.to_lowercase();
                    attrs.iter().any(|a| {
                        let a = a.to_lowercase();
                        a.starts_with(&word)
                            || a.split(|c: char| !c.is_alphanumeric())
                                .any(|tok| tok.starts_with(&word))
                    })
                })
            }
        }
    }
}

/// Whether `secret` passes every filter.
pub fn matches_all(filters: &[Filter], secret: &SecretMeta) -> bool {
    filters.iter().all(|f| f.matches(secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tag;
    use chrono::Utc;

    fn secret(name: &str, desc: Option<&str>, tags: &[(&str, &str)]) -> SecretMeta {
        SecretMeta {
            id: 1,
            name: name.into(),
            arn: String::new(),
            description: desc.map(Into::into),
            kms_key_id: None,
            tags: tags
                .iter()
                .map(|(k, v)| Tag {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            created: Utc::now(),
            last_changed: Utc::now(),
            deletion_date: None,
            deleted_date: None,
            rotation: Default::default(),
            replica_of: None,
            source_deleted: false,
        }
    }

    fn f(key: &str, values: &[&str]) -> Filter {
        Filter::new(key, values.iter().map(|v| v.to_string()).collect()).unwrap()
    }

    #[test]
    fn name_is_a_case_sensitive_prefix() {
        let s = secret("prod/db", None, &[]);
        assert!(f("name", &["prod"]).matches(&s));
        assert!(!f("name", &["Prod"]).matches(&s));
        assert!(!f("name", &["db"]).matches(&s));
        assert!(f("name", &["dev", "prod"]).matches(&s));
    }

    #[test]
    fn negation_excludes() {
        let s = secret("prod/db", None, &[("team", "payments")]);
        assert!(!f("name", &["!prod"]).matches(&s));
        assert!(f("name", &["!dev"]).matches(&s));
        assert!(!f("tag-key", &["!team"]).matches(&s));
    }

    #[test]
    fn description_ignores_case_and_all_searches_words() {
        let s = secret(
            "prod/db",
            Some("Payments Database"),
            &[("env", "Production")],
        );
        assert!(f("description", &["payments"]).matches(&s));
        assert!(f("all", &["database"]).matches(&s));
        assert!(f("all", &["db production"]).matches(&s));
        assert!(!f("all", &["staging"]).matches(&s));
    }

    #[test]
    fn bad_filters_are_refused() {
        assert!(Filter::new("colour", vec!["x".into()]).is_err());
        assert!(Filter::new("name", vec![]).is_err());
        assert!(Filter::new("name", vec!["semi;colon".into()]).is_err());
    }
}
