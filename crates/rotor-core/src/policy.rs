//! Access policies: which capabilities a principal has on which secret paths.
//!
//! A policy is a list of statements; each allows or denies some capabilities on some
//! path globs. A request is allowed when some statement of the principal's policies
//! allows the capability on the secret's name and none denies it: deny wins, and
//! nothing is allowed by default.
//!
//! Globs match secret names: `*` matches any run of characters within one path
//! segment (no `/`), `**` any run across segments. So `/app/message-processor/*`
//! covers `/app/message-processor/db` but not `/app/message-processor/replicated/db`,
//! which `/app/message-processor/**` covers.
//!
//! ```
//! use rotor_core::policy::{Capability, Policy, evaluate};
//! let p: Policy = serde_json::from_str(r#"{"name": "mp", "statements": [
//!     {"effect": "allow", "capabilities": ["read"], "paths": ["/app/message-processor/**"]},
//!     {"effect": "deny", "capabilities": ["read"], "paths": ["/app/message-processor/secret-sauce"]}
//! ]}"#).unwrap();
//! let ps = std::slice::from_ref(&p);
//! assert!(evaluate(ps, Capability::Read, "/app/message-processor/replicated/mongo/user").is_allowed());
//! assert!(!evaluate(ps, Capability::Read, "/app/message-processor/secret-sauce").is_allowed());
//! assert!(!evaluate(&[p], Capability::Read, "/dba/mongo/user").is_allowed());
//! ```

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a principal may do to a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Read values (`GetSecretValue`, `BatchGetSecretValue`).
    Read,
    /// Create secrets and change values, labels, descriptions and tags.
    Write,
    /// See the secret in listings.
    List,
    /// Read metadata (`DescribeSecret`, `ListSecretVersionIds`).
    Describe,
    /// Configure and run rotation.
    Rotate,
    /// Delete and restore.
    Delete,
    /// Replicate the secret elsewhere.
    Share,
    /// Manage principals, tokens, keys and policies.
    Admin,
    /// Run commands on the server's machine: register `exec` and `lambda` rotators
    /// (`sys/rotators/NAME`) and `exec` subscriptions (`sys/subscriptions/NAME`).
    /// Only the root policy grants it unless an operator writes it into one.
    Exec,
}

impl Capability {
    /// Every capability, in a fixed order.
    pub const ALL: [Capability; 9] = [
        Capability::Read,
        Capability::Write,
        Capability::List,
        Capability::Describe,
        Capability::Rotate,
        Capability::Delete,
        Capability::Share,
        Capability::Admin,
        Capability::Exec,
    ];

    /// The lowercase name used in policies and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Read => "read",
            Capability::Write => "write",
            Capability::List => "list",
            Capability::Describe => "describe",
            Capability::Rotate => "rotate",
            Capability::Delete => "delete",
            Capability::Share => "share",
            Capability::Admin => "admin",
            Capability::Exec => "exec",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Grants.
    Allow,
    /// Refuses, whatever else grants.
    Deny,
}

/// One rule of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// Allow or deny.
    pub effect: Effect,
    /// The capabilities it covers.
    #[schemars(length(min = 1))]
    pub capabilities: Vec<Capability>,
    /// Path globs of the secrets it covers (`*` within a segment, `**` across): 1 to
    /// 512 letters, digits and `/_+=.@-*`, never `***`.
    #[schemars(length(min = 1), extend("items" = {
        "type": "string",
        "pattern": "^[A-Za-z0-9/_+=.@*-]{1,512}$",
        "not": {"pattern": "\\*\\*\\*"},
    }))]
    pub paths: Vec<String>,
}

/// A named list of statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The policy's name.
    pub name: String,
    /// Its statements.
    pub statements: Vec<Statement>,
}

impl Policy {
    /// Checks that the policy can mean something: a name, and statements each with
    /// capabilities and well-formed globs.
    pub fn validate(&self) -> Result<()> {
        validate_policy_name(&self.name)?;
        if self.statements.is_empty() {
            return Err(Error::invalid_parameter(
                "A policy needs at least one statement",
            ));
        }
        for (i, s) in self.statements.iter().enumerate() {
            if s.capabilities.is_empty() {
                return Err(Error::invalid_parameter(format!(
                    "Statement {i} lists no capabilities"
                )));
            }
            if s.paths.is_empty() {
                return Err(Error::invalid_parameter(format!(
                    "Statement {i} lists no paths"
                )));
            }
            for p in &s.paths {
                validate_glob(p).map_err(|e| {
                    Error::invalid_parameter(format!("Statement {i}: {}", e.message))
                })?;
            }
        }
        Ok(())
    }
}

/// Checks a policy or principal name: 1–128 of letters, digits and `-_.@`.
pub fn validate_policy_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "Invalid name {name:?}: use 1 to 128 letters, digits and -_.@"
        )))
    }
}

/// Checks a path glob: 1–512 characters of what names allow plus `*`, and no `***`.
pub fn validate_glob(glob: &str) -> Result<()> {
    if glob.is_empty() || glob.len() > 512 {
        return Err(Error::invalid_parameter(
            "A path glob must be 1 to 512 characters long",
        ));
    }
    if glob.contains("***") {
        return Err(Error::invalid_parameter(format!(
            "Path glob {glob:?} has `***`; use `*` or `**`"
        )));
    }
    if let Some(bad) = glob
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-*".contains(*c)))
    {
        return Err(Error::invalid_parameter(format!(
            "Path glob {glob:?} has the character {bad:?}"
        )));
    }
    Ok(())
}

/// Whether `glob` matches the secret name `path`, in time linear in the path (times
/// the glob's pieces): a glob full of `**` cannot make a request expensive.
pub fn glob_matches(glob: &str, path: &str) -> bool {
    if !glob.contains('*') {
        return glob == path;
    }
    // The common grant `/team/**`: a prefix.
    if let Some(prefix) = glob.strip_suffix("**")
        && !prefix.contains('*')
    {
        return path.starts_with(prefix);
    }
    Glob::new(glob).matches(path.as_bytes())
}

/// The outcome of evaluating policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Some statement allows and none denies.
    Allowed,
    /// A statement of the named policy denies.
    DeniedBy(String),
    /// No statement allows.
    NotGranted,
}

impl Decision {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed)
    }
}

/// Evaluates `policies` for `capability` on `path`. Deny wins; nothing is allowed by
/// default.
pub fn evaluate(policies: &[Policy], capability: Capability, path: &str) -> Decision {
    let mut allowed = false;
    for policy in policies {
        for s in &policy.statements {
            if !s.capabilities.contains(&capability)
                || !s.paths.iter().any(|g| glob_matches(g, path))
            {
                continue;
            }
            match s.effect {
                Effect::Deny => return Decision::DeniedBy(policy.name.clone()),
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allowed
    } else {
        Decision::NotGranted
    }
}

/// Whether `policies` allow `capability` on every secret name `glob` matches: each
/// such name is allowed by some statement, and no deny statement reaches any of them.
///
/// This is how a grant is checked against what its granter holds: a principal may
/// hand on (attach, or write into a policy) only what it holds itself, so a
/// delegated admin of `sys/principals/team-*` cannot give anyone `**`. It compares
/// the languages of globs, not their text: `/dba/team/*` does not cover
/// `/dba/team/**`, and `allow /dba/**` with `deny /dba/team/x` does not cover
/// `/dba/team/*`.
///
/// ```
/// use rotor_core::policy::{Capability, Policy, covers};
/// let p: Policy = serde_json::from_str(r#"{"name": "dba", "statements": [
///     {"effect": "allow", "capabilities": ["read"], "paths": ["/dba/**"]},
///     {"effect": "deny", "capabilities": ["read"], "paths": ["/dba/team/secret-sauce"]}
/// ]}"#).unwrap();
/// let ps = std::slice::from_ref(&p);
/// assert!(covers(ps, Capability::Read, "/dba/other/*"));
/// assert!(!covers(ps, Capability::Read, "/dba/team/*"));
/// assert!(!covers(ps, Capability::Read, "/app/**"));
/// ```
pub fn covers(policies: &[Policy], capability: Capability, glob: &str) -> bool {
    let globs = |effect: Effect| -> Vec<Glob> {
        policies
            .iter()
            .flat_map(|p| &p.statements)
            .filter(|s| s.effect == effect && s.capabilities.contains(&capability))
            .flat_map(|s| s.paths.iter().map(|g| Glob::new(g)))
            .collect()
    };
    let (allows, denies) = (globs(Effect::Allow), globs(Effect::Deny));
    let wanted = Glob::new(glob);
    if allows.is_empty() {
        return false;
    }
    // Every character any glob names, '/', and one character none names, which
    // stands for all the others: names outside this alphabet behave like it.
    let mut alphabet: Vec<u8> = std::iter::once(&wanted)
        .chain(&allows)
        .chain(&denies)
        .flat_map(|g| g.literals())
        .chain(std::iter::once(b'/'))
        .collect();
    alphabet.sort_unstable();
    alphabet.dedup();
    if let Some(other) = NAME_BYTES.iter().find(|c| !alphabet.contains(c)) {
        alphabet.push(*other);
    }
    // Explore (wanted's states, every allow's states, every deny's states) over the
    // alphabet: a reachable state where `wanted` accepts while no allow does, or
    // some deny does, is a name the glob matches that the policies do not allow.
    type Config = (Vec<usize>, Vec<Vec<usize>>, Vec<Vec<usize>>);
    let start: Config = (
        wanted.start(),
        allows.iter().map(Glob::start).collect(),
        denies.iter().map(Glob::start).collect(),
    );
    let mut seen = std::collections::HashSet::new();
    let mut frontier = vec![start];
    while let Some(config) = frontier.pop() {
        if !seen.insert(config.clone()) {
            continue;
        }
        if seen.len() > 200_000 {
            // Too many combinations to decide: refuse, as a deny would.
            return false;
        }
        let (w, a, d) = &config;
        if wanted.accepts(w)
            && (!a.iter().zip(&allows).any(|(s, g)| g.accepts(s))
                || d.iter().zip(&denies).any(|(s, g)| g.accepts(s)))
        {
            return false;
        }
        for &c in &alphabet {
            let next_w = wanted.step(w, c);
            if next_w.is_empty() {
                continue;
            }
            let next_a = a.iter().zip(&allows).map(|(s, g)| g.step(s, c)).collect();
            let next_d = d.iter().zip(&denies).map(|(s, g)| g.step(s, c)).collect();
            frontier.push((next_w, next_a, next_d));
        }
    }
    true
}

/// The bytes secret names are made of.
const NAME_BYTES: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_+=.@-";

/// A glob as a small automaton: state `i` means the first `i` pieces matched.
struct Glob(Vec<Piece>);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Piece {
    Byte(u8),
    /// `*`: any bytes but `/`.
    Star,
    /// `**`: any bytes.
    Stars,
}

impl Glob {
    fn new(glob: &str) -> Self {
        let bytes = glob.as_bytes();
        let mut pieces = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i..] {
                [b'*', b'*', ..] => {
                    pieces.push(Piece::Stars);
                    i += 2;
                }
                [b'*', ..] => {
                    pieces.push(Piece::Star);
                    i += 1;
                }
                [c, ..] => {
                    pieces.push(Piece::Byte(c));
                    i += 1;
                }
                [] => unreachable!("i < len"),
            }
        }
        Glob(pieces)
    }

    fn literals(&self) -> impl Iterator<Item = u8> + '_ {
        self.0.iter().filter_map(|p| match p {
            Piece::Byte(c) => Some(*c),
            _ => None,
        })
    }

    /// `states` with every state reachable past stars added, sorted.
    fn close(&self, mut states: Vec<usize>) -> Vec<usize> {
        let mut i = 0;
        while i < states.len() {
            let s = states[i];
            if matches!(self.0.get(s), Some(Piece::Star | Piece::Stars))
                && !states.contains(&(s + 1))
            {
                states.push(s + 1);
            }
            i += 1;
        }
        states.sort_unstable();
        states.dedup();
        states
    }

    fn start(&self) -> Vec<usize> {
        self.close(vec![0])
    }

    fn step(&self, states: &[usize], c: u8) -> Vec<usize> {
        let mut next = Vec::new();
        for &s in states {
            match self.0.get(s) {
                Some(Piece::Byte(b)) if *b == c => next.push(s + 1),
                Some(Piece::Star) if c != b'/' => next.push(s),
                Some(Piece::Stars) => next.push(s),
                _ => {}
            }
        }
        self.close(next)
    }

    fn accepts(&self, states: &[usize]) -> bool {
        states.contains(&self.0.len())
    }

    /// Runs the automaton over `path`: each byte moves every live state at once, so
    /// the cost is at most the path's length times the glob's pieces.
    fn matches(&self, path: &[u8]) -> bool {
        let n = self.0.len();
        let mut live = vec![false; n + 1];
        let mut next = vec![false; n + 1];
        live[0] = true;
        self.close_in_place(&mut live);
        for &c in path {
            next.fill(false);
            let mut any = false;
            for (s, piece) in self.0.iter().enumerate() {
                if !live[s] {
                    continue;
                }
                let to = match piece {
                    Piece::Byte(b) if *b == c => s + 1,
                    Piece::Star if c != b'/' => s,
                    Piece::Stars => s,
                    _ => continue,
                };
                next[to] = true;
                any = true;
            }
            if !any {
                return false;
            }
            self.close_in_place(&mut next);
            std::mem::swap(&mut live, &mut next);
        }
        live[n]
    }

    /// Adds the states reachable past stars (a star may match nothing).
    fn close_in_place(&self, states: &mut [bool]) {
        for (s, piece) in self.0.iter().enumerate() {
            if states[s] && matches!(piece, Piece::Star | Piece::Stars) {
                states[s + 1] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_star_stays_in_its_segment() {
        assert!(glob_matches("/app/mp/*", "/app/mp/db"));
        assert!(!glob_matches("/app/mp/*", "/app/mp/replicated/db"));
        assert!(!glob_matches("/app/mp/*", "/app/mp"));
        assert!(glob_matches("/app/*/db", "/app/mp/db"));
        assert!(glob_matches("prod/*-db", "prod/orders-db"));
    }

    #[test]
    fn double_star_crosses_segments() {
        assert!(glob_matches(
            "/dba/**",
            "/dba/passpack/services/mp/mongo/user"
        ));
        assert!(glob_matches("/dba/**", "/dba/"));
        assert!(!glob_matches("/dba/**", "/dbax/y"));
        assert!(glob_matches("**", "anything/at/all"));
        assert!(glob_matches(
            "/app/**/password",
            "/app/mp/replicated/mongo/password"
        ));
        assert!(!glob_matches(
            "/app/**/password",
            "/app/mp/replicated/mongo/user"
        ));
    }

    /// Found by fuzzing (issue 11): matching backtracked, so a glob of many `**`
    /// against a long name took exponential time on every request it was checked for.
    #[test]
    fn a_glob_full_of_double_stars_matches_in_linear_time() {
        let glob = format!("{}x", "**/a**".repeat(20));
        let path = "a/".repeat(200);
        let started = std::time::Instant::now();
        assert!(!glob_matches(&glob, &path));
        assert!(glob_matches(&glob, &format!("{path}x")));
        assert!(started.elapsed() < std::time::Duration::from_millis(200));
        assert!(glob_matches("/a/*/b/**", "/a/x/b/c/d"));
        assert!(!glob_matches("/a/*/b/**", "/a/x/y/b/c"));
        assert!(glob_matches("*", "top"));
        assert!(!glob_matches("*", "a/b"));
        assert!(glob_matches("**x", "a/b/x"));
    }

    #[test]
    fn exact_paths_match_only_themselves() {
        assert!(glob_matches("prod/db", "prod/db"));
        assert!(!glob_matches("prod/db", "prod/db2"));
    }

    fn policy(statements: &[(Effect, &[Capability], &[&str])]) -> Policy {
        Policy {
            name: "p".into(),
            statements: statements
                .iter()
                .map(|(e, c, p)| Statement {
                    effect: *e,
                    capabilities: c.to_vec(),
                    paths: p.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn deny_wins_and_nothing_is_allowed_by_default() {
        let p = policy(&[
            (
                Effect::Allow,
                &[Capability::Read, Capability::List],
                &["/app/**"],
            ),
            (Effect::Deny, &[Capability::Read], &["/app/secret"]),
        ]);
        let ps = std::slice::from_ref(&p);
        assert_eq!(evaluate(ps, Capability::Read, "/app/x"), Decision::Allowed);
        assert_eq!(
            evaluate(ps, Capability::Read, "/app/secret"),
            Decision::DeniedBy("p".into())
        );
        assert_eq!(
            evaluate(ps, Capability::List, "/app/secret"),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(ps, Capability::Write, "/app/x"),
            Decision::NotGranted
        );
        assert_eq!(
            evaluate(&[], Capability::Read, "/app/x"),
            Decision::NotGranted
        );
    }

    #[test]
    fn bad_policies_are_refused() {
        assert!(policy(&[(Effect::Allow, &[], &["/a"])]).validate().is_err());
        assert!(
            policy(&[(Effect::Allow, &[Capability::Read], &[])])
                .validate()
                .is_err()
        );
        assert!(
            policy(&[(Effect::Allow, &[Capability::Read], &["/a/***"])])
                .validate()
                .is_err()
        );
        assert!(
            policy(&[(Effect::Allow, &[Capability::Read], &["/a b"])])
                .validate()
                .is_err()
        );
        assert!(
            policy(&[(Effect::Allow, &[Capability::Read], &["/a/**"])])
                .validate()
                .is_ok()
        );
        let json = r#"{"name": "x", "statements": [{"effect": "allow", "capabilities": ["fly"], "paths": ["/a"]}]}"#;
        assert!(serde_json::from_str::<Policy>(json).is_err());
    }

    #[test]
    fn coverage_compares_what_globs_match_not_their_text() {
        use Capability::*;
        let p = policy(&[
            (Effect::Allow, &[Read, Share], &["/dba/**"]),
            (Effect::Allow, &[Read], &["/app/*/db"]),
            (Effect::Deny, &[Read], &["/dba/team/secret-sauce"]),
        ]);
        let ps = std::slice::from_ref(&p);
        assert!(covers(ps, Read, "/dba/x/**"));
        assert!(covers(ps, Read, "/dba/other/*"));
        assert!(
            covers(ps, Share, "/dba/team/**"),
            "the deny is on read only"
        );
        assert!(!covers(ps, Read, "/dba/team/*"), "the deny falls inside");
        assert!(!covers(ps, Read, "/dba/team/**"));
        assert!(!covers(ps, Read, "**"));
        assert!(covers(ps, Read, "/app/mp/db"));
        assert!(covers(ps, Read, "/app/*/db"));
        assert!(
            !covers(ps, Read, "/app/**/db"),
            "** crosses segments, * does not"
        );
        assert!(!covers(ps, Write, "/dba/x"));
        // A single star in a policy does not cover a double star in a grant.
        let team = policy(&[(Effect::Allow, &[Read], &["/dba/team/*"])]);
        assert!(!covers(std::slice::from_ref(&team), Read, "/dba/team/**"));
        assert!(covers(std::slice::from_ref(&team), Read, "/dba/team/*"));
        // Root covers everything; nothing covers anything with no policies.
        let root = policy(&[(Effect::Allow, &Capability::ALL, &["**"])]);
        assert!(covers(std::slice::from_ref(&root), Admin, "sys/**"));
        assert!(!covers(&[], Read, "/a"));
        // Covering agrees with evaluation on concrete names.
        for name in [
            "/dba/team/secret-sauce",
            "/dba/team/x",
            "/app/mp/db",
            "/app/a/b/db",
        ] {
            assert_eq!(
                covers(ps, Read, name),
                evaluate(ps, Read, name).is_allowed(),
                "{name}"
            );
        }
    }
}
