//! `GetRandomPassword` options and the character classes they select.

use crate::error::{Error, Result};

/// AWS's punctuation set.
pub const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// The options of `GetRandomPassword`, with AWS's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordSpec {
    /// Length, 1–4096 (default 32).
    pub length: usize,
    /// Characters never to use.
    pub exclude_characters: String,
    /// No digits.
    pub exclude_numbers: bool,
    /// No punctuation.
    pub exclude_punctuation: bool,
    /// No upper-case letters.
    pub exclude_uppercase: bool,
    /// No lower-case letters.
    pub exclude_lowercase: bool,
    /// Allow the space character.
    pub include_space: bool,
    /// At least one character of every included class (default true).
    pub require_each_included_type: bool,
}

impl Default for PasswordSpec {
    fn default() -> Self {
        PasswordSpec {
            length: 32,
            exclude_characters: String::new(),
            exclude_numbers: false,
            exclude_punctuation: false,
            exclude_uppercase: false,
            exclude_lowercase: false,
            include_space: false,
            require_each_included_type: true,
        }
    }
}

impl PasswordSpec {
    /// The non-empty character classes this spec allows, after exclusions.
    pub fn classes(&self) -> Result<Vec<Vec<char>>> {
        if self.length == 0 || self.length > 4096 {
            return Err(Error::invalid_parameter(format!(
                "PasswordLength must be between 1 and 4096, got {}",
                self.length
            )));
        }
        if self.exclude_characters.chars().count() > 4096 {
            return Err(Error::validation(
                "ExcludeCharacters must be at most 4096 characters long",
            ));
        }
        let mut classes = Vec::new();
        let mut add = |on: bool, chars: &mut dyn Iterator<Item = char>| {
            if on {
                let class: Vec<char> = chars
                    .filter(|c| !self.exclude_characters.contains(*c))
                    .collect();
                if !class.is_empty() {
                    classes.push(class);
                }
            }
        };
        add(!self.exclude_lowercase, &mut ('a'..='z'));
        add(!self.exclude_uppercase, &mut ('A'..='Z'));
        add(!self.exclude_numbers, &mut ('0'..='9'));
        add(!self.exclude_punctuation, &mut PUNCTUATION.chars());
        add(self.include_space, &mut std::iter::once(' '));
        if classes.is_empty() {
            return Err(Error::invalid_parameter(
                "The password options exclude every character: nothing is left to choose from",
            ));
        }
        if self.require_each_included_type && classes.len() > self.length {
            return Err(Error::invalid_parameter(format!(
                "PasswordLength {} is too short to include one of each of the {} required character types",
                self.length,
                classes.len()
            )));
        }
        Ok(classes)
    }

    /// Generates a password; `below(n)` must return a uniformly random number in `0..n`.
    pub fn generate(&self, mut below: impl FnMut(usize) -> usize) -> Result<String> {
        let classes = self.classes()?;
        let all: Vec<char> = classes.iter().flatten().copied().collect();
        let mut out: Vec<char> = (0..self.length).map(|_| all[below(all.len())]).collect();
        if self.require_each_included_type {
            // Put one of each class at distinct random positions.
            let mut positions: Vec<usize> = (0..self.length).collect();
            for (i, class) in classes.iter().enumerate() {
                let j = i + below(positions.len() - i);
                positions.swap(i, j);
                out[positions[i]] = class[below(class.len())];
            }
        }
        Ok(out.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> impl FnMut(usize) -> usize {
        let mut x: usize = 12345;
        move |n| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % n
        }
    }

    #[test]
    fn default_password_has_every_class() {
        let p = PasswordSpec::default().generate(counter()).unwrap();
        assert_eq!(p.chars().count(), 32);
        assert!(p.chars().any(|c| c.is_ascii_lowercase()));
        assert!(p.chars().any(|c| c.is_ascii_uppercase()));
        assert!(p.chars().any(|c| c.is_ascii_digit()));
        assert!(p.chars().any(|c| PUNCTUATION.contains(c)));
    }

    #[test]
    fn exclusions_are_honoured() {
        let spec = PasswordSpec {
            length: 200,
            exclude_punctuation: true,
            exclude_uppercase: true,
            exclude_characters: "abc012".into(),
            include_space: true,
            ..Default::default()
        };
        let p = spec.generate(counter()).unwrap();
        assert!(p.chars().all(
            |c| (c.is_ascii_lowercase() || c.is_ascii_digit() || c == ' ') && !"abc012".contains(c)
        ));
        assert!(p.contains(' '));
    }

    #[test]
    fn impossible_specs_are_refused() {
        let none = PasswordSpec {
            exclude_lowercase: true,
            exclude_uppercase: true,
            exclude_numbers: true,
            exclude_punctuation: true,
            ..Default::default()
        };
        assert!(none.generate(counter()).is_err());
        let short = PasswordSpec {
            length: 3,
            ..Default::default()
        };
        assert!(short.generate(counter()).is_err());
        let zero = PasswordSpec {
            length: 0,
            ..Default::default()
        };
        assert!(zero.generate(counter()).is_err());
    }
}
