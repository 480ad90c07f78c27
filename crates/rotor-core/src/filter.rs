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
            // The region a secret was created in, as its ARN names it.
            FilterKey::PrimaryRegion => s.arn.split(':').nth(3).is_some_and(|r| r.starts_with(v)),
            // No secret here is managed by another service.
            FilterKey::OwningService => false,
            FilterKey::All => {
                let mut attrs: Vec<&str> = vec![s.name.as_str()];
                attrs.extend(s.description.as_deref());
                attrs.extend(
                    s.tags
                        .iter()
                        .flat_map(|t| [t.key.as_str(), t.value.as_str()]),
                );
                let attr_words: Vec<String> = attrs.iter().flat_map(|a| words(a)).collect();
                words(v).iter().all(|word| {
                    attrs.iter().any(|a| a.to_lowercase().starts_with(word))
                        || attr_words.iter().any(|a| a.starts_with(word))
                })
            }
        }
    }
}

/// The words of `text` as AWS's search splits them, lower-cased: letters and digits
/// only, a word ending where a lower-case letter meets an upper-case one, a letter
/// meets a digit (or the reverse), or at anything else (`credsDatabase#892`: `creds`,
/// `database`, `892`).
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut prev: Option<char> = None;
    for c in text.chars() {
        let boundary = match prev {
            _ if !c.is_alphanumeric() => true,
            Some(p) => {
                (p.is_lowercase() && c.is_uppercase())
                    || (p.is_alphabetic() && c.is_numeric())
                    || (p.is_numeric() && c.is_alphabetic())
            }
            None => false,
        };
        if boundary && !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
            prev = Some(c);
        } else {
            prev = None;
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Whether `secret` passes every filter.
pub fn matches_all(filters: &[Filter], secret: &SecretMeta) -> bool {
    filters.iter().all(|f| f.matches(secret))
}

/// A prefix every name passing `filters` starts with (the longest the `name` filters
/// give: the common prefix of one filter's positive values), so that a store can
/// range over its name index instead of reading every secret. None when the filters
/// do not narrow names.
pub fn name_prefix(filters: &[Filter]) -> Option<String> {
    filters
        .iter()
        .filter(|f| f.key == FilterKey::Name)
        .filter_map(|f| {
            let mut positive = f.values.iter().filter(|v| !v.starts_with('!'));
            let first = positive.next()?;
            Some(positive.fold(first.as_str(), |common, v| {
                let shared = common
                    .char_indices()
                    .zip(v.chars())
                    .find(|((_, a), b)| a != b)
                    .map_or(common.len().min(v.len()), |((i, _), _)| i);
                &common[..shared]
            }))
        })
        .max_by_key(|p| p.len())
        .filter(|p| !p.is_empty())
        .map(str::to_string)
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
    fn primary_region_is_the_arns_region_as_a_prefix() {
        let mut s = secret("prod/db", None, &[]);
        s.arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf".into();
        assert!(f("primary-region", &["eu-west-1"]).matches(&s));
        assert!(f("primary-region", &["eu-"]).matches(&s));
        assert!(!f("primary-region", &["us-east-1"]).matches(&s));
        assert!(f("primary-region", &["!us-"]).matches(&s));
        assert!(!f("owning-service", &["rds"]).matches(&s));
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
    fn name_filters_give_the_prefix_every_match_shares() {
        let prefix = |filters: &[Filter]| name_prefix(filters);
        assert_eq!(prefix(&[]), None);
        assert_eq!(
            prefix(&[f("name", &["/app/svc/"])]).as_deref(),
            Some("/app/svc/")
        );
        assert_eq!(
            prefix(&[f("name", &["/app/svc1", "/app/svc2", "!/app/svc1/x"])]).as_deref(),
            Some("/app/svc")
        );
        assert_eq!(prefix(&[f("name", &["dev", "prod"])]), None);
        assert_eq!(prefix(&[f("name", &["!prod"])]), None);
        assert_eq!(
            prefix(&[f("name", &["/a/bc", "/a/b"])]).as_deref(),
            Some("/a/b")
        );
        assert_eq!(
            prefix(&[
                f("name", &["/a/"]),
                f("tag-key", &["x"]),
                f("name", &["/a/b/"])
            ])
            .as_deref(),
            Some("/a/b/")
        );
        assert_eq!(prefix(&[f("description", &["/a/"])]), None);
        // Every secret the filters pass starts with the prefix.
        let names = ["/app/svc1/db", "/app/svc2/db", "/app/svc1/x", "/app/other"];
        let filters = [f("name", &["/app/svc1", "/app/svc2", "!/app/svc1/x"])];
        let p = prefix(&filters).unwrap();
        for name in names {
            let s = secret(name, None, &[]);
            if matches_all(&filters, &s) {
                assert!(name.starts_with(&p), "{name}");
            }
        }
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
    fn all_splits_words_as_aws_does() {
        assert_eq!(words("credsDatabase#892"), ["creds", "database", "892"]);
        assert_eq!(words("My_Secret v2"), ["my", "secret", "v", "2"]);
        assert_eq!(words("HTTPServer"), ["httpserver"]);
        let s = secret("app/creds-store", Some("Payments Database 892"), &[]);
        // Every word of the value must be found, each as the start of a word.
        assert!(f("all", &["credsDatabase-892"]).matches(&s));
        assert!(f("all", &["PAYMENTS"]).matches(&s));
        assert!(!f("all", &["credsStaging"]).matches(&s));
        assert!(!f("all", &["ments"]).matches(&s));
    }

    #[test]
    fn bad_filters_are_refused() {
        assert!(Filter::new("colour", vec!["x".into()]).is_err());
        assert!(Filter::new("name", vec![]).is_err());
        assert!(Filter::new("name", vec!["semi;colon".into()]).is_err());
    }
}
