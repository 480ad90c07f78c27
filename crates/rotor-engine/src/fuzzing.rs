//! Fuzzing of replication's merge templates: any text parses or gives a typed
//! error, and a parsed template renders over any source values without a panic.
//! `ROTOR_FUZZ_CASES` sets the cases per property (256 by default).

use crate::replication::Template;
use proptest::prelude::*;

/// Template-like text: literals (some multi-byte), `$`, `$$`, references with
/// fields and modifiers, and unclosed ones.
fn template() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zé€:/@]{0,8}",
        Just("$".to_string()),
        Just("$$".to_string()),
        "\\$\\{/[a-z/]{1,10}(#[a-z]{0,4})?(\\|[a-z]{0,10})?\\}",
        "\\$\\{[^}]{0,40}",
        ".{0,12}",
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(rotor_testkit::fuzz_config())]

    #[test]
    fn fuzz_merge_templates_parse_or_refuse_and_render(
        text in template(),
        value in proptest::option::of(".{0,40}|\\{\"[a-z]{1,4}\":\"[^\"]{0,10}\"\\}"),
    ) {
        if let Ok(t) = Template::parse(&text) {
            prop_assert!(!t.sources().is_empty());
            let _ = t.render(|_| value.clone());
        }
    }
}
