//! Fuzzing from well-formed inputs: valid rotation schedules, secret ids, filters and
//! policies, edited a character at a time, so that the fuzz reaches the deep checks
//! of each parser (the sibling `fuzzing` module starts from generated text). What
//! parses must behave: a schedule prints back to itself and its windows move forward
//! in bounded time; glob matching agrees with a plain reference matcher and stays
//! fast on `**`-heavy globs; a policy that validates evaluates without a panic.
//!
//! `ROTOR_FUZZ_CASES` sets the cases per property (default 256); README's "Fuzzing"
//! gives the 100,000-case release run.

use crate::filter::Filter;
use crate::model::{SecretMeta, Tag};
use crate::name::{SecretRef, validate_name};
use crate::policy::{Capability, Policy, covers, evaluate, glob_matches, validate_glob};
use crate::schedule::{RotationRules, Schedule};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use rotor_testkit::fuzz::{edited_text as edited, text_edits as edits};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------
// Schedules.

const SCHEDULES: &[&str] = &[
    "rate(10 days)",
    "rate(1 day)",
    "rate(4 hours)",
    "rate(23 hours)",
    "rate(1000 days)",
    "cron(0 16 L * ? *)",
    "cron(0 8,12,16 ? * MON-FRI *)",
    "cron(0 0 15W * ? *)",
    "cron(0 1 LW */2 ? *)",
    "cron(0 10 L-3 JAN,JUL ? *)",
    "cron(0 4 ? * 6#3 *)",
    "cron(0 4 ? * 6L *)",
    "cron(0 */6 * * ? *)",
    "cron(0 0 29 2 ? *)",
    "cron(0 0 31 1-12/2 ? *)",
    "cron(0 12 ? * L *)",
    "cron(0 0,4,8,12,16,20 1-7 * ? *)",
];

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

fn rules() -> impl Strategy<Value = RotationRules> {
    let expression = (
        proptest::sample::select(SCHEDULES),
        edits("0123456789 ,-*/?#LW()ratecronhoudysMONFRIJANUL"),
    )
        .prop_map(|(s, e)| edited(s, &e));
    let duration = proptest::option::of(prop_oneof![
        (1u32..25).prop_map(|h| format!("{h}h")),
        "[0-9h]{0,4}",
    ]);
    prop_oneof![
        4 => (expression, duration.clone()).prop_map(|(e, d)| RotationRules {
            automatically_after_days: None,
            duration: d,
            schedule_expression: Some(e),
        }),
        1 => (prop_oneof![1i64..1001, any::<i64>()], duration).prop_map(|(n, d)| RotationRules {
            automatically_after_days: Some(n),
            duration: d,
            schedule_expression: None,
        }),
    ]
}

proptest! {
    #![proptest_config(rotor_testkit::fuzz_config())]

    /// Edited valid schedules parse or are refused; one that parses prints back to
    /// itself, and its windows, followed one after another, open strictly later each
    /// time, close after they open and after `now`, in bounded time.
    #[test]
    fn fuzz_schedules_from_valid_expressions(
        rules in rules(),
        last in prop_oneof![
            4 => 0i64..7_258_118_400,          // 1970..2200
            1 => 253_402_300_000i64..8_210_266_876_799, // years 9999.. near chrono's end
        ],
        ahead in prop_oneof![0i64..86_400, 0i64..400_000_000],
    ) {
        let Ok(schedule) = Schedule::parse(&rules) else { return Ok(()) };
        let echoed = schedule.rules();
        let again = Schedule::parse(&echoed).ok();
        prop_assert_eq!(again.as_ref(), Some(&schedule), "{:?} echoed as {:?}", rules, echoed);

        let started = Instant::now();
        let (mut last, now) = (at(last), at(last.saturating_add(ahead)));
        for _ in 0..12 {
            let Some(window) = schedule.next_window(last, now) else { break };
            prop_assert!(window.start > last, "{rules:?}: {window:?} after {last}");
            prop_assert!(window.end > window.start, "{rules:?}: {window:?}");
            prop_assert!(window.end > now, "{rules:?}: {window:?} closed before {now}");
            last = window.start;
        }
        prop_assert!(started.elapsed() < Duration::from_secs(2), "{rules:?}: {:?}", started.elapsed());
    }
}

// ---------------------------------------------------------------------------------
// Secret ids and filters.

const IDS: &[&str] = &[
    "prod/db",
    "/app/svc/db-password",
    "a+b=c.d@e_f-g",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:a:b:c-123456",
];

fn meta(name: &str, description: Option<String>, tags: Vec<(String, String)>) -> SecretMeta {
    SecretMeta {
        id: 1,
        name: name.to_string(),
        arn: String::new(),
        description,
        kms_key_id: None,
        tags: tags
            .into_iter()
            .map(|(key, value)| Tag { key, value })
            .collect(),
        created: at(0),
        last_changed: at(0),
        deletion_date: None,
        deleted_date: None,
        rotation: Default::default(),
        replica_of: None,
        source_deleted: false,
    }
}

proptest! {
    #![proptest_config(rotor_testkit::fuzz_config())]

    /// Edited secret names and ARNs: a name that validates is also a `SecretRef`
    /// name; an ARN's resource is the text after `:secret:`.
    #[test]
    fn fuzz_secret_ids_from_valid_ones(
        id in (proptest::sample::select(IDS), edits("abc/_+=.@-:arnws0123456789")).prop_map(|(s, e)| edited(s, &e)),
    ) {
        let parsed = SecretRef::parse(&id);
        if validate_name(&id).is_ok() {
            prop_assert_eq!(parsed, Ok(SecretRef::Name(&id)));
        } else if let Ok(SecretRef::Arn { full, resource }) = parsed {
            prop_assert_eq!(full, id.as_str());
            prop_assert!(id.ends_with(resource) && !resource.is_empty());
            let at = id.len() - resource.len();
            prop_assert!(id[..at].ends_with(":secret:"), "{id:?}");
        }
    }

    /// Edited filters: they are accepted or refused, and an accepted one matches any
    /// secret without a panic (`!` negation, `all` word splitting, any case).
    #[test]
    fn fuzz_filters_from_valid_ones(
        key in (proptest::sample::select(&["name", "description", "tag-key", "tag-value", "primary-region", "owning-service", "all"][..]), edits("abcdegnmtkyl-")).prop_map(|(s, e)| edited(s, &e)),
        values in proptest::collection::vec(
            (proptest::sample::select(&["prod", "!prod", "a b", "!", "", "ÉTÉ", "x:y/z"][..]), edits("ab !:_@/+=.-É"))
                .prop_map(|(s, e)| edited(s, &e)),
            0..12,
        ),
        name in "[a-z/]{1,12}",
        description in proptest::option::of(".{0,16}"),
        tags in proptest::collection::vec((".{0,6}", ".{0,6}"), 0..3),
    ) {
        if let Ok(filter) = Filter::new(&key, values) {
            let _ = filter.matches(&meta(&name, description, tags));
        }
    }
}

// ---------------------------------------------------------------------------------
// Policies and globs.

/// The matcher the policy module's must agree with: plain dynamic programming over
/// (glob position, path position), no cleverness.
fn reference_match(glob: &[u8], path: &[u8]) -> bool {
    // Pieces: Some(byte), or None for `*` (false) / `**` (true).
    let mut pieces: Vec<(Option<u8>, bool)> = Vec::new();
    let mut i = 0;
    while i < glob.len() {
        if glob[i..].starts_with(b"**") {
            pieces.push((None, true));
            i += 2;
        } else if glob[i] == b'*' {
            pieces.push((None, false));
            i += 1;
        } else {
            pieces.push((Some(glob[i]), false));
            i += 1;
        }
    }
    // ok[j] after k pieces: the first k pieces match path[..j].
    let mut ok = vec![false; path.len() + 1];
    ok[0] = true;
    for (byte, any) in pieces {
        let mut next = vec![false; path.len() + 1];
        for j in 0..=path.len() {
            match byte {
                Some(b) => {
                    if j > 0 && ok[j - 1] && path[j - 1] == b {
                        next[j] = true;
                    }
                }
                None => {
                    // Stars: path[m..j] eaten by the star for some m <= j.
                    next[j] = ok[j] || (j > 0 && next[j - 1] && (any || path[j - 1] != b'/'));
                }
            }
        }
        ok = next;
    }
    ok[path.len()]
}

const POLICIES: &[&str] = &[
    r#"{"name": "dba", "statements": [
        {"effect": "allow", "capabilities": ["read", "list"], "paths": ["/dba/**"]},
        {"effect": "deny", "capabilities": ["read"], "paths": ["/dba/team/secret-sauce"]}]}"#,
    r#"{"name": "app", "statements": [
        {"effect": "allow", "capabilities": ["read", "write", "rotate", "admin"], "paths": ["/app/*/db", "sys/principals/team-*"]}]}"#,
    r#"{"name": "a.b@c", "statements": [{"effect": "deny", "capabilities": ["admin"], "paths": ["**"]}]}"#,
];

fn glob() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            proptest::sample::select(
                &[
                    "/dba/**",
                    "/app/*/db",
                    "**/x/**",
                    "*",
                    "a*b**c",
                    "/p/**/q/*"
                ][..]
            ),
            edits("ab/*x.-")
        )
            .prop_map(|(s, e)| edited(s, &e)),
        proptest::collection::vec(
            prop_oneof![Just("*"), Just("**"), Just("a"), Just("/"), Just("b")],
            0..24
        )
        .prop_map(|p| p.concat()),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ab/x]{0,24}",
        (
            proptest::sample::select(
                &[
                    "/dba/team/secret-sauce",
                    "/app/svc/db",
                    "sys/principals/team-a"
                ][..]
            ),
            edits("ab/x-")
        )
            .prop_map(|(s, e)| edited(s, &e)),
    ]
}

const CAPABILITIES: &[Capability] = &Capability::ALL;

proptest! {
    #![proptest_config(rotor_testkit::fuzz_config())]

    /// Glob matching agrees with the reference matcher on any glob and path.
    #[test]
    fn fuzz_glob_matching_agrees_with_a_reference_matcher(glob in glob(), path in path()) {
        prop_assert_eq!(
            glob_matches(&glob, &path),
            reference_match(glob.as_bytes(), path.as_bytes()),
            "{:?} on {:?}", glob, path
        );
    }

    /// `**`-heavy globs against long names: matching stays fast, and so does deciding
    /// whether such policies cover a glob (which may give up, but quickly).
    #[test]
    fn fuzz_double_star_globs_take_bounded_time(
        pieces in proptest::collection::vec(prop_oneof![Just("**"), Just("*"), Just("a"), Just("/"), Just("**/a")], 1..200),
        path in "[a/]{0,8}".prop_flat_map(|unit| Just(unit.repeat(64))),
        policy_globs in proptest::collection::vec(
            proptest::collection::vec(prop_oneof![Just("**"), Just("*"), Just("a"), Just("/"), Just("b")], 1..12).prop_map(|p| p.concat()),
            1..6,
        ),
        wanted in proptest::collection::vec(prop_oneof![Just("**"), Just("*"), Just("a"), Just("/")], 1..12).prop_map(|p| p.concat()),
    ) {
        let glob = pieces.concat();
        let started = Instant::now();
        let _ = glob_matches(&glob, &path);
        prop_assert!(started.elapsed() < Duration::from_millis(200), "{glob:?} on {path:?}: {:?}", started.elapsed());

        let policy = Policy {
            name: "p".into(),
            statements: policy_globs
                .iter()
                .enumerate()
                .map(|(i, g)| crate::policy::Statement {
                    effect: if i % 3 == 2 { crate::policy::Effect::Deny } else { crate::policy::Effect::Allow },
                    capabilities: vec![Capability::Read],
                    paths: vec![g.clone()],
                })
                .collect(),
        };
        let started = Instant::now();
        let _ = covers(std::slice::from_ref(&policy), Capability::Read, &wanted);
        prop_assert!(started.elapsed() < Duration::from_secs(2), "covers {wanted:?} by {policy_globs:?}: {:?}", started.elapsed());
    }

    /// Edited policy documents: they parse and validate or are refused; one that
    /// validates evaluates any capability on any path, and covers any glob, without
    /// a panic; a glob that validates matches itself when it has no stars.
    #[test]
    fn fuzz_policies_from_valid_documents(
        doc in (proptest::sample::select(POLICIES), edits("\"{}[],:abcdeflnorstwy*/")).prop_map(|(s, e)| edited(s, &e)),
        capability in proptest::sample::select(CAPABILITIES),
        path in path(),
        glob in glob(),
    ) {
        if let Ok(policy) = serde_json::from_str::<Policy>(&doc)
            && policy.validate().is_ok()
        {
            let policies = std::slice::from_ref(&policy);
            let decision = evaluate(policies, capability, &path);
            if decision.is_allowed() {
                prop_assert!(policy.statements.iter().any(|s| s.capabilities.contains(&capability)));
            }
            if validate_glob(&glob).is_ok() {
                let _ = covers(policies, capability, &glob);
            }
        }
        if validate_glob(&glob).is_ok() && !glob.contains('*') {
            prop_assert!(glob_matches(&glob, &glob));
        }
    }
}
