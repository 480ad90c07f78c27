//! Fuzzing of what the client reads from elsewhere: Kong-style references (edited
//! from valid ones, and built from arbitrary parts), webhook signatures and
//! timestamps, and the watch stream's Server-Sent Events. Properties: never a panic;
//! a reference prints to a canonical form that parses back to an equal reference;
//! an edited webhook body or timestamp never verifies; the event stream splits into
//! the same messages however it is chunked.
//!
//! `ROTOR_FUZZ_CASES` sets the cases per property (default 256); README's "Fuzzing"
//! gives the 100,000-case release run.

use crate::events::SseParser;
use crate::reference::{ConfigValue, MAX_TTL_SECS, Reference, Version};
use crate::webhook;
use proptest::prelude::*;
use rotor_testkit::fuzz::{apply as edited, byte_edits as edits};

// ---------------------------------------------------------------------------------
// References.

const REFERENCES: &[&str] = &[
    "{vault://rotor/%2Fapp%2Fdb/password?ttl=60#2}",
    "{vault://env/HOME}",
    "{vault://aws/%2Fapp/db/password}",
    "{vault://rotor/%2Fapp/svc/db/}",
    "{vault://files/a//b?neg_ttl=10&resurrect_ttl=1e3&flag&x=1&x=2#0x10}",
    "{vault://user@host:8200/res/key#1e1}",
    "{vault://[::1]/a/b}",
    "{vault://rotor/%252B%2525+x/k?ttl=0x1p4&a+b=c%20d#-0.0}",
    "{vault://rotor/r?ttl=100000000&ttl=1#nan}",
];

/// Checks what any parsed reference must satisfy: its accessors answer, and it
/// prints to a canonical form that parses back to an equal reference and prints the
/// same again.
fn check_parsed(source: &str, r: &Reference) -> Result<(), TestCaseError> {
    prop_assert!(
        !r.name().is_empty() && !r.resource().is_empty(),
        "{source:?}"
    );
    for ttl in [r.ttl(), r.neg_ttl(), r.resurrect_ttl()] {
        if let Ok(Some(d)) = ttl {
            prop_assert!(d.as_secs_f64() <= MAX_TTL_SECS, "{source:?}: {d:?}");
        }
    }
    let identity = r.fetch_identity();
    prop_assert!(identity.key().is_none() && identity.ttl() == Ok(None));
    if let Some(v) = r.version() {
        let _ = v.as_integer();
    }
    let printed = r.to_string();
    let again = Reference::parse(&printed)
        .map_err(|e| TestCaseError::fail(format!("{source:?} printed as {printed:?}: {e}")))?;
    prop_assert_eq!(&again, r, "{:?} printed as {:?}", source, printed);
    prop_assert_eq!(again.to_string(), printed);
    Ok(())
}

proptest! {
    #![proptest_config(rotor_testkit::fuzz_config())]

    /// Valid references, edited byte by byte: an error names a part and a place in
    /// the text, or the reference round-trips through its canonical form.
    #[test]
    fn fuzz_references_from_valid_ones(
        base in proptest::sample::select(REFERENCES),
        edits in edits(b"{}/:@[]?#&=%+.-_ 0123456789abcdefxnFv"),
    ) {
        let bytes = edited(base.as_bytes(), &edits);
        let Ok(text) = String::from_utf8(bytes) else { return Ok(()) };
        match Reference::parse(&text) {
            Ok(r) => check_parsed(&text, &r)?,
            Err(e) => {
                prop_assert!(e.at <= text.len(), "{text:?}: {e}");
                let _ = (e.part(), e.to_string());
            }
        }
        prop_assert_eq!(text.parse::<Reference>().ok(), Reference::parse(&text).ok());
    }

    /// References built from arbitrary parts print to text that parses back to them.
    #[test]
    fn fuzz_references_built_from_any_parts_round_trip(
        name in prop_oneof!["[a-zA-Z0-9._~@:\\[\\]-]{1,12}", "[^/]{1,12}"],
        resource in ".{1,20}",
        key in proptest::option::of(".{1,10}"),
        options in proptest::collection::vec((".{1,8}", proptest::option::of(".{0,8}")), 0..5),
        version in proptest::option::of(prop_oneof![
            any::<f64>(),
            (-5i64..100).prop_map(|n| n as f64),
            Just(f64::NAN),
            Just(-0.0),
            Just(f64::INFINITY),
        ]),
    ) {
        let Ok(mut r) = Reference::new(&name, &resource) else { return Ok(()) };
        if let Some(k) = &key {
            r = r.with_key(k).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        for (option, value) in &options {
            let value = value.clone().map_or(ConfigValue::Flag, ConfigValue::Text);
            r = r.with_option(option, value).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        if let Some(v) = version {
            r = r.with_version(Version::new(v));
        }
        check_parsed(&format!("{r:?}"), &r)?;
    }
}

// ---------------------------------------------------------------------------------
// Webhook signatures.

const KEY: &[u8] = b"webhook signing key";
const NOW: i64 = 1_700_000_000;

proptest! {
    #![proptest_config(rotor_testkit::fuzz_config())]

    /// Any timestamp and signature header over any body: an error or Ok, never a
    /// panic, and only the true signature of a fresh timestamp passes.
    #[test]
    fn fuzz_webhook_arbitrary_headers(
        timestamp in prop_oneof![".{0,24}", "[ +-]?[0-9]{0,20} ?", Just(i64::MIN.to_string())],
        signature in prop_oneof![".{0,80}", " ?sha256=[0-9a-fA-F]{0,70} ?"],
        body in proptest::collection::vec(any::<u8>(), 0..64),
        now in prop_oneof![Just(NOW), any::<i64>()],
    ) {
        if webhook::verify_at(KEY, &timestamp, &signature, &body, now).is_ok() {
            let sent: i64 = timestamp.trim().parse().unwrap();
            prop_assert!(now.abs_diff(sent) <= webhook::MAX_AGE.as_secs());
        }
    }

    /// A signed webhook with its body, timestamp or signature edited: never a panic,
    /// and an edited body or timestamp never verifies.
    #[test]
    fn fuzz_webhook_edited_requests(
        body in proptest::collection::vec(any::<u8>(), 0..64),
        part in 0usize..3,
        edits in edits(b"0123456789abcdef=sha{}\" "),
    ) {
        let timestamp = NOW.to_string();
        let signature = webhook::sign(KEY, NOW, &body);
        prop_assert_eq!(webhook::verify_at(KEY, &timestamp, &signature, &body, NOW), Ok(()));
        let (mut t, mut s, mut b) = (timestamp.clone(), signature.clone(), body.clone());
        let lossy = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
        match part {
            0 => b = edited(&body, &edits),
            1 => t = lossy(edited(timestamp.as_bytes(), &edits)),
            _ => s = lossy(edited(signature.as_bytes(), &edits)),
        }
        let result = webhook::verify_at(KEY, &t, &s, &b, NOW);
        if b != body {
            prop_assert!(result.is_err(), "an edited body verified");
        }
        if t.trim() != timestamp {
            prop_assert!(result.is_err(), "an edited timestamp {t:?} verified");
        }
    }
}

// ---------------------------------------------------------------------------------
// Server-Sent Events.

/// Stream-like bytes: fields, comments, blank lines, CR LF and odd bytes.
fn sse_stream() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        "data: \\{\"seq\":[0-9]{1,3}\\}".prop_map(String::into_bytes),
        "data:.{0,12}".prop_map(String::into_bytes),
        "(id|event|retry): ?[a-z0-9.]{0,8}".prop_map(String::into_bytes),
        Just(b"data".to_vec()),
        Just(b": keep-alive".to_vec()),
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ];
    proptest::collection::vec(
        (
            line,
            prop_oneof![Just(&b"\n"[..]), Just(&b"\r\n"[..]), Just(&b"\r"[..])],
        ),
        0..16,
    )
    .prop_map(|lines| {
        lines
            .into_iter()
            .flat_map(|(mut l, end)| {
                l.extend_from_slice(end);
                l
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(rotor_testkit::fuzz_config())]

    /// Any byte stream splits into the same messages whatever its chunking.
    #[test]
    fn fuzz_sse_stream_chunking(
        stream in sse_stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = SseParser::default().push(&stream);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.sort_unstable();
        let mut parser = SseParser::default();
        let mut chunked = Vec::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([stream.len()]) {
            chunked.extend(parser.push(&stream[from..cut]));
            from = cut;
        }
        prop_assert_eq!(whole, chunked);
    }
}
