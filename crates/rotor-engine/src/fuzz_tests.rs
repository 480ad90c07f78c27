//! Fuzzing of replication from well-formed inputs (the sibling `fuzzing` module
//! starts from generated text): merge templates and rules edited a character at a
//! time. Properties: never a panic; a parsed template written back out parses to the
//! same template, and renders URL-encoded pieces as URL-safe text; a rule maps its
//! source onto its destination and back; checking a new rule against existing ones
//! (ownership, cycles) answers in bounded time.
//!
//! `ROTOR_FUZZ_CASES` sets the cases per property (default 256); README's "Fuzzing"
//! gives the 100,000-case release run.

use crate::replication::{Kind, Piece, Rule, Template, check_new};
use proptest::prelude::*;
use rotor_testkit::fuzz::{edited_text as edited, text_edits as edits};
use std::time::{Duration, Instant};

const TEMPLATES: &[&str] = &[
    "mongodb://${/dba/u}:${/dba/p|urlencode}@h/${/dba/j#db}$$",
    "${/a}",
    "user=${/dba/mongo#user} password=${/dba/mongo#password|urlencode}",
    "$${/not/a/ref} ${/x/y#a#b} €${/é/z}",
    "postgres://${/dba/pg#username}:${/dba/pg#password|urlencode}@${/dba/pg#host}:${/dba/pg#port}/${/dba/pg#dbname}",
];

/// A template written back out: literal `$` doubled, references in full.
fn unparse(t: &Template) -> String {
    t.0.iter()
        .map(|p| match p {
            Piece::Text(text) => text.replace('$', "$$"),
            Piece::Ref {
                path,
                field,
                urlencode,
            } => {
                let field = field
                    .as_deref()
                    .map(|f| format!("#{f}"))
                    .unwrap_or_default();
                let modifier = if *urlencode { "|urlencode" } else { "" };
                format!("${{{path}{field}{modifier}}}")
            }
        })
        .collect()
}

/// Source values: JSON objects with the fields templates ask for, or plain text.
fn value_of(path: &str, mode: u8) -> Option<String> {
    match mode % 4 {
        0 => None,
        1 => Some(format!("plain value of {path} with %, / and ${{}}")),
        2 => Some(
            r#"{"db":"orders","user":"app","password":"p@ss:w/rd $x","port":5432,"a#b":true}"#
                .to_string(),
        ),
        _ => Some(path.repeat(3)),
    }
}

proptest! {
    #![proptest_config(rotor_testkit::fuzz_config())]

    /// Edited valid templates: parse or are refused; one that parses has sources
    /// that are secret names, writes back out to text that parses to the same
    /// template, and renders (or fails) over any source values; URL-encoded pieces
    /// come out URL-safe.
    #[test]
    fn fuzz_merge_templates_from_valid_ones(
        text in (proptest::sample::select(TEMPLATES), edits("${}#|/abdeilnocruz$:@é")).prop_map(|(t, e)| edited(t, &e)),
        mode in any::<u8>(),
    ) {
        let Ok(t) = Template::parse(&text) else { return Ok(()) };
        let sources = t.sources();
        prop_assert!(!sources.is_empty());
        for s in &sources {
            prop_assert!(rotor_core::name::validate_name(s).is_ok(), "{s:?}");
        }
        let written = unparse(&t);
        let again = Template::parse(&written).ok();
        prop_assert_eq!(again.as_ref(), Some(&t), "{:?} written as {:?}", text, written);

        let encoded_only = Template(
            t.0.iter()
                .filter(|p| matches!(p, Piece::Ref { urlencode: true, .. }))
                .cloned()
                .collect(),
        );
        let _ = t.render(|p| value_of(p, mode));
        if !encoded_only.0.is_empty()
            && let Ok(out) = encoded_only.render(|p| value_of(p, mode))
        {
            prop_assert!(
                out.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'%'),
                "{out:?}"
            );
        }
    }
}

const NAMES: &[&str] = &["mp", "copy-1", "a.b_c"];
const PATHS: &[&str] = &[
    "/dba/mp/mongo/",
    "/app/mp/replicated/mongo/",
    "/x",
    "/y",
    "/z/",
    "/dba/u",
];

fn rule() -> impl Strategy<Value = (String, Kind, Option<String>, String, Option<String>)> {
    let name =
        (proptest::sample::select(NAMES), edits("abc-_.é/ ")).prop_map(|(s, e)| edited(s, &e));
    let path =
        || (proptest::sample::select(PATHS), edits("/abxyz-")).prop_map(|(s, e)| edited(s, &e));
    let template =
        (proptest::sample::select(TEMPLATES), edits("${}#|/ab")).prop_map(|(t, e)| edited(t, &e));
    (
        name,
        prop_oneof![Just(Kind::Copy), Just(Kind::Merge)],
        proptest::option::of(path()),
        path(),
        proptest::option::of(template),
    )
}

proptest! {
    #![proptest_config(rotor_testkit::fuzz_config())]

    /// Edited rules: built or refused; a built copy rule maps its source onto its
    /// destination and back; checking it against existing rules answers quickly, and
    /// never accepts a second rule of the same name or destination.
    #[test]
    fn fuzz_replication_rules_from_valid_ones(
        new in rule(),
        existing in proptest::collection::vec(rule(), 0..12),
        tail in "[a-z]{1,6}",
    ) {
        let build = |(name, kind, source, destination, template): &(String, Kind, Option<String>, String, Option<String>)| {
            Rule::new(name, *kind, source.as_deref(), destination, template.as_deref())
        };
        let Ok(rule) = build(&new) else { return Ok(()) };
        if rule.kind == Kind::Copy {
            if rule.source.ends_with('/') {
                let from = format!("{}{tail}", rule.source);
                let to = format!("{}{tail}", rule.destination);
                prop_assert_eq!(rule.destination_of(&from), Some(to.clone()));
                prop_assert_eq!(rule.source_of(&to), Some(from));
            } else {
                prop_assert_eq!(rule.destination_of(&rule.source), Some(rule.destination.clone()));
                prop_assert_eq!(rule.source_of(&rule.destination), Some(rule.source.clone()));
            }
        }
        // The existing rules as a store would hold them: each accepted in turn.
        let mut accepted: Vec<Rule> = Vec::new();
        for spec in &existing {
            if let Ok(r) = build(spec)
                && check_new(&r, &accepted).is_ok()
            {
                accepted.push(r);
            }
        }
        let started = Instant::now();
        let verdict = check_new(&rule, &accepted);
        prop_assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        if verdict.is_ok() {
            prop_assert!(accepted.iter().all(|r| r.name != rule.name && r.destination != rule.destination));
        }
    }
}
