//! Secret references in [Kong's vault reference grammar], parsed to the same parts Kong's
//! `kong.vault.parse_reference` gives:
//!
//! ```text
//! {vault://NAME/RESOURCE[/KEY][?OPTION=VALUE&...][#VERSION]}
//! ```
//!
//! - **NAME** picks a configured vault (see [`crate::resolver::Vaults`]). It is the host
//!   of a URL: everything up to the first `/`, without a `userinfo@` prefix, a `:port`
//!   suffix or `[...]` brackets, and it is *not* percent-decoded.
//! - **RESOURCE** and **KEY** come from the path. Empty segments are dropped (`a//b` is
//!   `a/b`); when the path ends with `/` it is all resource and there is no key;
//!   otherwise, with two or more segments, the last one is the KEY (a field of the JSON
//!   object the vault returns) and the others, joined with `/`, are the RESOURCE.
//!   Each segment is percent-decoded twice, as Kong does (LuaSocket's `%XX` decoding,
//!   then `ngx.unescape_uri`, which also turns `+` into a space): `%2F` is a `/` inside
//!   a segment, `%252B` a literal `+`, `%2525` a literal `%`.
//! - **OPTIONS** are decoded like `ngx.decode_args`: `&`-separated, split at the first
//!   `=`, `+` and `%XX` decoded, empty keys skipped, a key without `=` is a flag, a
//!   repeated key keeps every value, at most 100 arguments. `ttl`, `neg_ttl` and
//!   `resurrect_ttl` are read as numbers of seconds by [`Reference::ttl`] and friends.
//! - **VERSION** is a number as Lua's `tonumber` reads it (`#1`, `#2`, `#0x10`, `#1e1`).
//!
//! # Path-like secret names
//!
//! A Rotor secret named `/app/svc/db` is addressed with its slashes percent-encoded, so
//! that the whole name is one segment:
//!
//! ```text
//! {vault://rotor/%2Fapp%2Fsvc%2Fdb}            the whole value
//! {vault://rotor/%2Fapp%2Fsvc%2Fdb/password}   the field "password" of a JSON value
//! ```
//!
//! Kong's own rule gives two more spellings of the same references, which this parser
//! accepts as Kong does: everything between the vault name and the last `/` is the
//! resource, so `{vault://rotor/%2Fapp/svc/db/password}` names field `password` of
//! `/app/svc/db` (only the *leading* slash needs encoding, since empty segments are
//! dropped), and a trailing slash means "no key": `{vault://rotor/%2Fapp/svc/db/}`.
//! [`Reference`]'s `Display` always writes the first, fully encoded form.
//!
//! # Where this differs from Kong
//!
//! Kong works on bytes; Rust strings are UTF-8. A part that is not UTF-8 once decoded
//! (`%FF`) is an error here, where Kong would pass the bytes on.
//!
//! [Kong's vault reference grammar]: https://docs.konghq.com/gateway/latest/kong-enterprise/secrets-management/reference-format/
//!
//! ```
//! use rotor_client::reference::Reference;
//!
//! let r = Reference::parse("{vault://rotor/%2Fapp%2Fdb/password?ttl=60#2}")?;
//! assert_eq!(r.name(), "rotor");
//! assert_eq!(r.resource(), "/app/db");
//! assert_eq!(r.key(), Some("password"));
//! assert_eq!(r.ttl()?, Some(std::time::Duration::from_secs(60)));
//! assert_eq!(r.version().map(|v| v.as_f64()), Some(2.0));
//! assert_eq!(r.to_string(), "{vault://rotor/%2Fapp%2Fdb/password?ttl=60#2}");
//!
//! let err = Reference::parse("{vault:///x}").unwrap_err();
//! assert_eq!(err.to_string(), "vault name must not be empty at byte 9");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(test)]
mod fuzzing;
mod lua;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

const PREFIX: &str = "{vault://";

/// The largest `ttl`, `neg_ttl` or `resurrect_ttl` Kong accepts (`DAO_MAX_TTL`, seconds).
pub const MAX_TTL_SECS: f64 = 1e8;

/// A parsed `{vault://...}` reference.
///
/// Two references are equal when they name the same parts, however they were spelled:
/// `{vault://env/a//b}` equals `{vault://env/a/b}`. `Display` writes the canonical form,
/// which [`Reference::parse`] reads back to an equal reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    name: String,
    resource: String,
    key: Option<String>,
    config: BTreeMap<String, Vec<ConfigValue>>,
    version: Option<Version>,
}

/// One value of a query option.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConfigValue {
    /// `?name` with no `=` (Lua gives `true`).
    Flag,
    /// `?name=text` (possibly empty).
    Text(String),
}

/// A reference's `#VERSION`: a number, as Kong keeps it. Vaults read `1` as the current
/// version and `2` as the previous one.
///
/// Equality compares the bits, so that `NaN` (which Lua's `tonumber` accepts) equals
/// itself.
#[derive(Debug, Clone, Copy)]
pub struct Version(f64);

impl Version {
    /// A version from a number.
    pub fn new(n: f64) -> Self {
        Version(if n.is_nan() { f64::NAN } else { n })
    }

    /// The number.
    pub fn as_f64(self) -> f64 {
        self.0
    }

    /// The number when it is a whole number that fits an `i64`.
    pub fn as_integer(self) -> Option<i64> {
        let n = self.0;
        (n.fract() == 0.0 && n.abs() < 9.0e15).then_some(n as i64)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Version {}

impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

impl fmt::Display for Version {
    /// A spelling Lua's `tonumber` reads back to the same number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n.is_nan() {
            f.write_str("nan")
        } else if n == 0.0 && n.is_sign_negative() {
            // `-0` would be read through LuaJIT's integer path, which loses the sign.
            f.write_str("-0.0")
        } else {
            write!(f, "{n}")
        }
    }
}

/// Which part of a reference an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// The `{vault://` opening or the closing `}`.
    Delimiters,
    /// NAME.
    Name,
    /// RESOURCE (or the path as a whole).
    Resource,
    /// KEY.
    Key,
    /// The `?` options.
    Options,
    /// The `#` version.
    Version,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Delimiters => "delimiters",
            Part::Name => "vault name",
            Part::Resource => "resource",
            Part::Key => "key",
            Part::Options => "options",
            Part::Version => "version",
        })
    }
}

/// What is wrong with a reference. Each kind notes the Kong error it corresponds to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceErrorKind {
    /// Kong: `not a reference`.
    #[error("reference must start with {{vault://")]
    MissingPrefix,
    /// Kong: `not a reference`.
    #[error("reference must end with }}")]
    MissingClosingBrace,
    /// Kong: `reference url is missing host`.
    #[error("vault name must not be empty")]
    EmptyName,
    /// Kong: `reference url is missing path`.
    #[error("a /RESOURCE must follow the vault name")]
    MissingResource,
    /// Kong: `reference url has empty path`.
    #[error("resource must not be empty")]
    EmptyResource,
    /// Kong: `reference url has invalid version`.
    #[error("version must be a number (as Lua's tonumber reads it), not {0:?}")]
    InvalidVersion(String),
    /// Kong: `reference url has invalid path`.
    #[error("resource must not be empty: the path holds only slashes")]
    OnlySlashes,
    /// Kong passes such bytes on; Rotor's names and values are UTF-8.
    #[error("{0} is not UTF-8 once percent-decoded")]
    NotUtf8(Part),
    /// Only when building a reference: a vault name cannot hold `/`.
    #[error("vault name must not contain /")]
    SlashInName,
    /// Only when building a reference: a key cannot be empty.
    #[error("key must not be empty")]
    EmptyKey,
    /// Only when building a reference: an option name cannot be empty.
    #[error("option name must not be empty")]
    EmptyOptionName,
    /// Only when building a reference: Kong reads at most 100 options.
    #[error("a reference holds at most 100 option values")]
    TooManyOptions,
}

/// A reference could not be parsed or built: what is wrong, and the byte offset in the
/// reference where the offending part starts (0 when building one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {at}")]
pub struct ReferenceError {
    /// What is wrong.
    pub kind: ReferenceErrorKind,
    /// Where the offending part starts.
    pub at: usize,
}

impl ReferenceError {
    fn new(kind: ReferenceErrorKind, at: usize) -> Self {
        ReferenceError { kind, at }
    }

    /// The part the error is about.
    pub fn part(&self) -> Part {
        use ReferenceErrorKind as K;
        match &self.kind {
            K::MissingPrefix | K::MissingClosingBrace => Part::Delimiters,
            K::EmptyName | K::SlashInName => Part::Name,
            K::MissingResource | K::EmptyResource | K::OnlySlashes => Part::Resource,
            K::InvalidVersion(_) => Part::Version,
            K::EmptyKey => Part::Key,
            K::EmptyOptionName | K::TooManyOptions => Part::Options,
            K::NotUtf8(part) => *part,
        }
    }
}

/// A cache option (`ttl`, `neg_ttl`, `resurrect_ttl`) whose value is not a number of
/// seconds Kong's schema accepts. Kong drops such a value silently, which leaves the
/// secret cached for good; Rotor refuses the reference instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("option {option} must be one number of seconds from 0 to 100000000, got {found}")]
pub struct OptionError {
    /// The option.
    pub option: &'static str,
    /// What was given, described (`"abc"`, `a flag`, `2 values`).
    pub found: String,
}

fn utf8(bytes: Vec<u8>, part: Part, at: usize) -> Result<String, ReferenceError> {
    String::from_utf8(bytes).map_err(|_| ReferenceError::new(ReferenceErrorKind::NotUtf8(part), at))
}

impl Reference {
    /// Kong's `is_reference`: starts with `{vault://` and ends with `}`. Says nothing of
    /// whether [`Reference::parse`] will accept it.
    pub fn is_reference(s: &str) -> bool {
        s.len() > PREFIX.len() && s.starts_with(PREFIX) && s.ends_with('}')
    }

    /// Parses a reference, giving the parts Kong's `parse_reference` gives, or an error
    /// naming the offending part and where it starts.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        use ReferenceErrorKind as K;
        if !s.starts_with(PREFIX) {
            let at = s
                .bytes()
                .zip(PREFIX.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(s.len());
            return Err(ReferenceError::new(K::MissingPrefix, at));
        }
        if s.len() == PREFIX.len() || !s.ends_with('}') {
            return Err(ReferenceError::new(K::MissingClosingBrace, s.len()));
        }
        let url = lua::split_url(&s[1..s.len() - 1], 1);
        let name = url
            .host
            .ok_or_else(|| ReferenceError::new(K::EmptyName, url.authority_at))?;
        let (path_at, path) = url
            .path
            .ok_or_else(|| ReferenceError::new(K::MissingResource, url.authority_end))?;
        let raw = &path[1..];
        if raw.is_empty() {
            return Err(ReferenceError::new(K::EmptyResource, path_at + 1));
        }
        let version = match url.fragment {
            None => None,
            Some((at, text)) => Some(Version::new(
                lua::tonumber(text.as_bytes())
                    .ok_or_else(|| ReferenceError::new(K::InvalidVersion(text.to_string()), at))?,
            )),
        };

        // Segments with their offsets, empty ones dropped, each `url.unescape`d.
        let mut segments: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut offset = path_at + 1;
        for seg in raw.split('/') {
            if !seg.is_empty() {
                segments.push((offset, lua::unescape_segment(seg.as_bytes())));
            }
            offset += seg.len() + 1;
        }
        // Kong's own spec pins these: a trailing `/` means the whole path is the
        // resource; otherwise the last of two or more segments is the key.
        let with_key = segments.len() >= 2 && !raw.ends_with('/');
        let (resource_segments, key) = if with_key {
            let (at, last) = segments.pop().expect("two or more segments");
            let key = utf8(lua::unescape_uri(&last), Part::Key, at)?;
            (segments, Some(key))
        } else {
            (segments, None)
        };
        let joined = resource_segments
            .iter()
            .map(|(_, s)| s.as_slice())
            .collect::<Vec<_>>()
            .join(&b'/');
        let resource = lua::unescape_uri(&joined);
        if resource.is_empty() {
            return Err(ReferenceError::new(K::OnlySlashes, path_at));
        }
        let resource = utf8(resource, Part::Resource, path_at + 1)?;

        let mut config: BTreeMap<String, Vec<ConfigValue>> = BTreeMap::new();
        if let Some((query_at, query)) = url.query {
            for arg in lua::decode_args(query.as_bytes()) {
                let at = query_at + arg.at;
                let key = utf8(arg.key, Part::Options, at)?;
                let value = match arg.value {
                    None => ConfigValue::Flag,
                    Some(v) => ConfigValue::Text(utf8(v, Part::Options, at)?),
                };
                config.entry(key).or_default().push(value);
            }
        }
        Ok(Reference {
            name: name.to_string(),
            resource,
            key,
            config,
            version,
        })
    }

    /// A reference to `resource` in vault `name`, with no key, options or version.
    pub fn new(name: &str, resource: &str) -> Result<Reference, ReferenceError> {
        use ReferenceErrorKind as K;
        if name.is_empty() {
            return Err(ReferenceError::new(K::EmptyName, 0));
        }
        if name.contains('/') {
            return Err(ReferenceError::new(K::SlashInName, 0));
        }
        if resource.is_empty() {
            return Err(ReferenceError::new(K::EmptyResource, 0));
        }
        Ok(Reference {
            name: name.to_string(),
            resource: resource.to_string(),
            key: None,
            config: BTreeMap::new(),
            version: None,
        })
    }

    /// The same reference, selecting field `key` of the JSON value.
    pub fn with_key(mut self, key: &str) -> Result<Reference, ReferenceError> {
        if key.is_empty() {
            return Err(ReferenceError::new(ReferenceErrorKind::EmptyKey, 0));
        }
        self.key = Some(key.to_string());
        Ok(self)
    }

    /// The same reference, asking for `version`.
    pub fn with_version(mut self, version: Version) -> Reference {
        self.version = Some(version);
        self
    }

    /// The same reference with one more value for option `name`.
    pub fn with_option(
        mut self,
        name: &str,
        value: ConfigValue,
    ) -> Result<Reference, ReferenceError> {
        if name.is_empty() {
            return Err(ReferenceError::new(ReferenceErrorKind::EmptyOptionName, 0));
        }
        if self.config.values().map(Vec::len).sum::<usize>() >= lua::MAX_ARGS {
            return Err(ReferenceError::new(ReferenceErrorKind::TooManyOptions, 0));
        }
        self.config.entry(name.to_string()).or_default().push(value);
        Ok(self)
    }

    /// NAME: the vault.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// RESOURCE: what the vault looks up (a secret name, a variable, a file).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// KEY: the field of the JSON value to return, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Every option, each with its values in order.
    pub fn config(&self) -> &BTreeMap<String, Vec<ConfigValue>> {
        &self.config
    }

    /// `#VERSION`, if given.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// Option `name` when it was given once, as text.
    pub fn option(&self, name: &str) -> Option<&str> {
        match self.config.get(name).map(Vec::as_slice) {
            Some([ConfigValue::Text(t)]) => Some(t),
            _ => None,
        }
    }

    /// `?ttl=`: how long a value is served before it is fetched again.
    pub fn ttl(&self) -> Result<Option<Duration>, OptionError> {
        self.seconds("ttl")
    }

    /// `?neg_ttl=`: how long a failed lookup is remembered.
    pub fn neg_ttl(&self) -> Result<Option<Duration>, OptionError> {
        self.seconds("neg_ttl")
    }

    /// `?resurrect_ttl=`: how long the last value is still served after it expired while
    /// refreshing it fails.
    pub fn resurrect_ttl(&self) -> Result<Option<Duration>, OptionError> {
        self.seconds("resurrect_ttl")
    }

    /// Reads a ttl option the way Kong's schema does: Lua's `tonumber`, then
    /// `between = { 0, 1e8 }`.
    fn seconds(&self, option: &'static str) -> Result<Option<Duration>, OptionError> {
        let Some(values) = self.config.get(option) else {
            return Ok(None);
        };
        let found = match values.as_slice() {
            [ConfigValue::Text(t)] => match lua::tonumber(t.as_bytes()) {
                Some(n) if (0.0..=MAX_TTL_SECS).contains(&n) => {
                    return Ok(Some(Duration::from_secs_f64(n)));
                }
                _ => format!("{t:?}"),
            },
            [ConfigValue::Flag] => "a flag".to_string(),
            many => format!("{} values", many.len()),
        };
        Err(OptionError { option, found })
    }

    /// The reference without its cache options and key: what identifies one fetch from a
    /// vault. References that differ only in key or ttls share it.
    pub fn fetch_identity(&self) -> Reference {
        let mut r = self.clone();
        r.key = None;
        for option in ["ttl", "neg_ttl", "resurrect_ttl"] {
            r.config.remove(option);
        }
        r
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Writes `s` so that LuaSocket's `%XX` decoding followed by `ngx.unescape_uri` gives it
/// back: bytes other than letters, digits and `-._~` as `%XX`, and `%` and `+` encoded
/// twice, since the second decoding would read them.
fn encode_segment(out: &mut String, s: &str) {
    for b in s.bytes() {
        match b {
            b'%' => out.push_str("%2525"),
            b'+' => out.push_str("%252B"),
            b if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => out.push(char::from(b)),
            b => push_escaped(out, b),
        }
    }
}

/// Writes `s` so that `ngx.unescape_uri` gives it back.
fn encode_arg(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            push_escaped(out, b);
        }
    }
}

fn push_escaped(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 15)]));
}

impl fmt::Display for Reference {
    /// The canonical form: resource and key fully percent-encoded (a path-like name is
    /// one segment), options sorted by name, and a host spelled so that LuaSocket's
    /// authority parsing gives it back (`@` before a name holding `@`, `:` after one
    /// holding `:`, brackets around one that looks bracketed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(self.name.len() + self.resource.len() + 16);
        out.push_str(PREFIX);
        let name = &self.name;
        if name.contains('@') {
            out.push('@');
        }
        let bracketed = name.len() >= 3 && name.starts_with('[') && name.ends_with(']');
        if bracketed {
            out.push('[');
        }
        out.push_str(name);
        if bracketed {
            out.push(']');
        }
        if name.contains(':') {
            out.push(':');
        }
        out.push('/');
        encode_segment(&mut out, &self.resource);
        if let Some(key) = &self.key {
            out.push('/');
            encode_segment(&mut out, key);
        }
        let mut first = true;
        for (name, values) in &self.config {
            for value in values {
                out.push(if first { '?' } else { '&' });
                first = false;
                encode_arg(&mut out, name);
                if let ConfigValue::Text(t) = value {
                    out.push('=');
                    encode_arg(&mut out, t);
                }
            }
        }
        if let Some(v) = self.version {
            out.push('#');
            out.push_str(&v.to_string());
        }
        out.push('}');
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests;
