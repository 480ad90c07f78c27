//! The parameters of an Alibaba RPC request: the query string's and, for a form body,
//! the body's, decoded; and the percent-encoding Alibaba's signatures use.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use secrecy::{ExposeSecret as _, SecretString};

/// Everything but RFC 3986's unreserved characters is encoded, `%XX` upper case.
const ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` percent-encoded as Alibaba's signatures encode it (a space is `%20`).
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, ENCODED).to_string()
}

/// A request's parameters in the order they came, query first. Any of them may be a
/// secret value (`SecretData`), so each is held as a [`SecretString`] and `Debug`
/// shows only the names.
#[derive(Clone, Default)]
pub struct Params(Vec<(String, SecretString)>);

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}=[redacted]")))
            .finish()
    }
}

impl Params {
    /// The parameters of `query` and of a form-encoded `form` body.
    pub fn from_query_and_form(query: &str, form: Option<&[u8]>) -> Params {
        let mut pairs = Params::decode_pairs(query);
        if let Some(body) = form {
            pairs.extend(Params::decode_pairs(&String::from_utf8_lossy(body)));
        }
        Params(
            pairs
                .into_iter()
                .map(|(k, v)| (k, SecretString::from(v)))
                .collect(),
        )
    }

    /// `a=1&b=2` decoded (`+` is a space, as in forms).
    pub fn decode_pairs(text: &str) -> Vec<(String, String)> {
        text.split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(k), decode(v))
            })
            .collect()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.expose_secret())
    }

    /// Every parameter.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.expose_secret()))
    }

    /// Whether `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

fn decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(encode("a b*c~d/e+f=g"), "a%20b%2Ac~d%2Fe%2Bf%3Dg");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn debug_shows_names_not_values() {
        let p = Params::from_query_and_form("SecretName=a", Some(b"SecretData=hunter2"));
        let shown = format!("{p:?}");
        assert!(
            shown.contains("SecretData") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn query_and_form_are_decoded_in_order() {
        let p = Params::from_query_and_form("A=1&B=x%20y", Some(b"C=a+b&A=2"));
        assert_eq!(p.get("A"), Some("1"));
        assert_eq!(p.get("B"), Some("x y"));
        assert_eq!(p.get("C"), Some("a b"));
        assert_eq!(p.iter().count(), 4);
    }
}
