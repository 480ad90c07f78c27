//! Fuzzing of Kong-style references: any text parses or gives an error naming a
//! part, never a panic, and a parsed reference prints back to one that parses the
//! same. `ROTOR_FUZZ_CASES` sets the cases per property (256 by default).

use crate::reference::Reference;
use proptest::prelude::*;

/// Reference-like text: `{vault://NAME/RESOURCE/KEY?OPTS#VERSION}` with every part
/// drawn from what tends to break URL splitting (percent escapes, empty parts,
/// repeated separators, multi-byte characters).
fn reference() -> impl Strategy<Value = String> {
    let part = "([a-zA-Z0-9_.~-]|%[0-9A-Fa-f]{0,2}|[/?#&=:@é€ ]){0,12}";
    (
        prop_oneof![Just("{vault://"), Just("{vault:/"), Just("{"), Just("")],
        part,
        part,
        part,
        proptest::option::of(part),
        proptest::option::of("[0-9.e+-]{0,6}|[a-z]{0,3}"),
        prop_oneof![Just("}"), Just(""), Just("}}")],
    )
        .prop_map(|(open, name, resource, key, query, version, close)| {
            let mut s = format!("{open}{name}/{resource}/{key}");
            if let Some(q) = query {
                s.push('?');
                s.push_str(&q);
            }
            if let Some(v) = version {
                s.push('#');
                s.push_str(&v);
            }
            s.push_str(close);
            s
        })
}

proptest! {
    #![proptest_config(rotor_testkit::fuzz_config())]

    #[test]
    fn fuzz_references_parse_or_refuse(text in prop_oneof![reference(), ".{0,60}"]) {
        if let Ok(r) = Reference::parse(&text) {
            let _ = (r.name(), r.resource(), r.key(), r.version(), r.config());
            let printed = r.to_string();
            let again = Reference::parse(&printed);
            prop_assert!(again.is_ok(), "{text:?} printed as {printed:?}: {again:?}");
        }
    }
}
