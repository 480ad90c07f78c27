//! Fuzzing of the parsers that read untrusted input: rotation schedules, secret ids
//! and ARNs, list filters and policies. Property tests: any input gives a typed
//! error or a value, never a panic, and what parses behaves (a schedule's next window
//! is ahead of the last rotation; a glob match takes linear time).
//!
//! `ROTOR_FUZZ_CASES` sets the cases per property (the test command runs the
//! default; README's "Fuzzing" gives the 100,000-case release run).

use crate::filter::{Filter, FilterKey};
use crate::name::{SecretRef, validate_name, validate_version_id};
use crate::policy::{Capability, Policy, evaluate, glob_matches, validate_glob};
use crate::schedule::{RotationRules, Schedule};
use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;

/// Text that looks like a schedule expression often enough to reach deep into the
/// parser, and arbitrary text otherwise.
fn expression() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("*".to_string()),
        Just("?".to_string()),
        Just("L".to_string()),
        Just("MON-FRI".to_string()),
        Just("1#3".to_string()),
        Just("5L".to_string()),
        Just("W".to_string()),
        (0u32..70).prop_map(|n| n.to_string()),
        (0u32..70, 0u32..70).prop_map(|(a, b)| format!("{a}-{b}")),
        (0u32..70, 0u32..70).prop_map(|(a, b)| format!("{a}/{b}")),
        "[0-9A-Z,*/?#L-]{0,6}",
    ];
    prop_oneof![
        proptest::collection::vec(field, 0..8).prop_map(|f| format!("cron({})", f.join(" "))),
        ("-?[0-9]{0,12}", "(hour|hours|day|days|minute|x)?")
            .prop_map(|(n, u)| format!("rate({n} {u})")),
        ".{0,40}",
    ]
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

proptest! {
    #![proptest_config(rotor_testkit::fuzz_config())]

    #[test]
    fn fuzz_schedules_parse_or_refuse_and_next_windows_move_forward(
        expression in proptest::option::of(expression()),
        days in proptest::option::of(-5i64..2000),
        duration in proptest::option::of("[0-9]{0,4}[hm]?|.{0,6}"),
        last in 0i64..4_000_000_000,
        ahead in 0i64..100_000_000,
    ) {
        let rules = RotationRules {
            automatically_after_days: days,
            duration,
            schedule_expression: expression,
        };
        if let Ok(schedule) = Schedule::parse(&rules) {
            let (last, now) = (at(last), at(last + ahead));
            if let Some(window) = schedule.next_window(last, now) {
                prop_assert!(window.start > last, "{rules:?}: {window:?} after {last}");
                prop_assert!(window.end > window.start, "{rules:?}: {window:?}");
            }
        }
    }

    #[test]
    fn fuzz_secret_ids_and_arns_parse_or_refuse(id in ".{0,300}", arnish in "arn:aws:secretsmanager:[a-z0-9-]{0,12}:[0-9]{0,14}:secret:.{0,40}") {
        let _ = SecretRef::parse(&id);
        let _ = SecretRef::parse(&arnish);
        let _ = validate_name(&id);
        let _ = validate_version_id(&id);
    }

    #[test]
    fn fuzz_list_filters_parse_or_refuse(key in "[a-z-]{0,20}|.{0,20}", values in proptest::collection::vec(".{0,20}", 0..12)) {
        let _ = FilterKey::parse(&key);
        let _ = Filter::new(&key, values);
    }

    #[test]
    fn fuzz_policies_parse_validate_and_evaluate(doc in ".{0,200}", glob in "[a-z/*]{0,40}|.{0,20}", path in "[a-z/]{0,60}|.{0,20}") {
        if let Ok(policy) = serde_json::from_str::<Policy>(&doc) {
            let _ = policy.validate();
        }
        if validate_glob(&glob).is_ok() {
            let _ = glob_matches(&glob, &path);
            let policy = serde_json::json!({"name": "p", "statements": [
                {"effect": "allow", "capabilities": ["read"], "paths": [glob]}]});
            if let Ok(policy) = serde_json::from_value::<Policy>(policy) {
                let _ = evaluate(&[policy], Capability::Read, &path);
            }
        }
    }

    /// Globs full of `**` must not backtrack exponentially: a long adversarial match
    /// finishes quickly.
    #[test]
    fn fuzz_glob_matching_takes_linear_time(stars in 1usize..20, len in 1usize..200) {
        let glob = format!("{}x", "**/a*".repeat(stars));
        let path = "a/".repeat(len);
        let started = std::time::Instant::now();
        let _ = glob_matches(&glob, &path);
        prop_assert!(started.elapsed() < Duration::milliseconds(200).to_std().unwrap_or_default());
    }
}
