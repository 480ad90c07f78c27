//! The grammar against the outputs of Kong's `parse_reference`: the cases of Kong's own
//! spec (`spec/02-integration/13-vaults/01-vault_spec.lua`) and PDK docs first, then
//! edge cases derived from the Lua it is built on (LuaSocket's `url.parse` and
//! `parse_path`, `ngx.unescape_uri`, `ngx.decode_args`, LuaJIT's `tonumber`).

use super::*;
use proptest::prelude::*;

/// What Kong's `parse_reference` returns: name, resource, key, config, version.
type Parts<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a [(&'a str, &'a [Option<&'a str>])],
    Option<f64>,
);

fn parts(r: &Reference) -> Owned {
    (
        r.name().to_string(),
        r.resource().to_string(),
        r.key().map(str::to_string),
        r.config()
            .iter()
            .map(|(k, vs)| {
                let vs = vs
                    .iter()
                    .map(|v| match v {
                        ConfigValue::Flag => None,
                        ConfigValue::Text(t) => Some(t.clone()),
                    })
                    .collect();
                (k.clone(), vs)
            })
            .collect(),
        r.version().map(|v| v.as_f64().to_bits()),
    )
}

fn want(p: &Parts<'_>) -> Owned {
    let (name, resource, key, config, version) = p;
    (
        name.to_string(),
        resource.to_string(),
        key.map(str::to_string),
        config
            .iter()
            .map(|(k, vs)| {
                (
                    k.to_string(),
                    vs.iter().map(|v| v.map(str::to_string)).collect(),
                )
            })
            .collect(),
        version.map(f64::to_bits),
    )
}

/// [`Parts`] as owned values, comparable with a parsed reference's.
type Owned = (
    String,
    String,
    Option<String>,
    Vec<(String, Vec<Option<String>>)>,
    Option<u64>,
);

const NONE: &[(&str, &[Option<&str>])] = &[];

#[test]
fn kong_spec_and_docs_cases_parse_as_in_kong() {
    let cases: &[(&str, Parts<'_>)] = &[
        // spec/02-integration/13-vaults/01-vault_spec.lua
        ("{vault://env/test}", ("env", "test", None, NONE, None)),
        (
            "{vault://env/test-secret/test-key}",
            ("env", "test-secret", Some("test-key"), NONE, None),
        ),
        (
            "{vault://env/test%3Asecret/test%3Akey}",
            ("env", "test:secret", Some("test:key"), NONE, None),
        ),
        (
            "{vault://env//////test-secret//////test-key}",
            ("env", "test-secret", Some("test-key"), NONE, None),
        ),
        (
            "{vault://env/test-secret/test-key/}",
            ("env", "test-secret/test-key", None, NONE, None),
        ),
        (
            "{vault://env//////test-secret//////test-key//////}",
            ("env", "test-secret/test-key", None, NONE, None),
        ),
        (
            "{vault://env/test?opt1=val1}",
            ("env", "test", None, &[("opt1", &[Some("val1")])], None),
        ),
        (
            "{vault://env/test?opt1=val1&opt2=val2}",
            (
                "env",
                "test",
                None,
                &[("opt1", &[Some("val1")]), ("opt2", &[Some("val2")])],
                None,
            ),
        ),
        (
            "{vault://env/test#1}",
            ("env", "test", None, NONE, Some(1.0)),
        ),
        ("{vault://;/xx-x}", (";", "xx-x", None, NONE, None)),
        // kong.vault.parse_reference's documented example
        (
            "{vault://env/cert/key?prefix=SSL_#1}",
            (
                "env",
                "cert",
                Some("key"),
                &[("prefix", &[Some("SSL_")])],
                Some(1.0),
            ),
        ),
        // the secrets-rotation guide (seed 003)
        (
            "{vault://aws/my-secret-name/foo?ttl=600&neg_ttl=30&resurrect_ttl=600}",
            (
                "aws",
                "my-secret-name",
                Some("foo"),
                &[
                    ("neg_ttl", &[Some("30")]),
                    ("resurrect_ttl", &[Some("600")]),
                    ("ttl", &[Some("600")]),
                ],
                None,
            ),
        ),
        (
            "{vault://aws-certs/certs/web-site}",
            ("aws-certs", "certs", Some("web-site"), NONE, None),
        ),
    ];
    for (text, expected) in cases {
        let r = Reference::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(parts(&r), want(expected), "{text}");
    }
}

#[test]
fn edge_cases_parse_as_the_lua_underneath_does() {
    let cases: &[(&str, Parts<'_>)] = &[
        // The host is LuaSocket's: userinfo, port and IPv6 brackets go, nothing is decoded.
        (
            "{vault://user:pw@env:8080/x}",
            ("env", "x", None, NONE, None),
        ),
        ("{vault://a@b@c/x}", ("b@c", "x", None, NONE, None)),
        ("{vault://a:b:c/x}", ("a:b", "x", None, NONE, None)),
        ("{vault://[::1]/x}", ("::1", "x", None, NONE, None)),
        ("{vault://[::1]:80/x}", ("::1", "x", None, NONE, None)),
        ("{vault://[]/x}", ("[]", "x", None, NONE, None)),
        ("{vault://e%41/x}", ("e%41", "x", None, NONE, None)),
        // The authority runs to the first `/`, so `?`, `#` and `;` before it are the name's.
        ("{vault://e?x#1/r}", ("e?x#1", "r", None, NONE, None)),
        // `;params` are cut from the path; a `?` starts the query anywhere after the name.
        ("{vault://env/a;b/c}", ("env", "a", None, NONE, None)),
        (
            "{vault://env/a?b/c}",
            ("env", "a", None, &[("b/c", &[None])], None),
        ),
        (
            "{vault://env/a?x=1#2}",
            ("env", "a", None, &[("x", &[Some("1")])], Some(2.0)),
        ),
        // Only the last `}` closes the reference.
        ("{vault://env/a}}", ("env", "a}", None, NONE, None)),
        // Two decodings: LuaSocket's per segment, then ngx.unescape_uri (with `+` as space).
        ("{vault://env/a+b%2Bc}", ("env", "a b c", None, NONE, None)),
        ("{vault://env/%2525}", ("env", "%", None, NONE, None)),
        ("{vault://env/%252B}", ("env", "+", None, NONE, None)),
        ("{vault://env/%zz%2}", ("env", "%zz%2", None, NONE, None)),
        ("{vault://env/%2541}", ("env", "A", None, NONE, None)),
        // Path-like names: encoded slashes stay inside one segment.
        (
            "{vault://rotor/%2Fapp%2Fsvc%2Fdb}",
            ("rotor", "/app/svc/db", None, NONE, None),
        ),
        (
            "{vault://rotor/%2Fapp%2Fsvc%2Fdb/password}",
            ("rotor", "/app/svc/db", Some("password"), NONE, None),
        ),
        (
            "{vault://rotor/%2Fapp/svc/db/password}",
            ("rotor", "/app/svc/db", Some("password"), NONE, None),
        ),
        (
            "{vault://rotor/%2Fapp/svc/db/}",
            ("rotor", "/app/svc/db", None, NONE, None),
        ),
        (
            "{vault://rotor//app/svc/db}",
            ("rotor", "app/svc", Some("db"), NONE, None),
        ),
        ("{vault://rotor/a/}", ("rotor", "a", None, NONE, None)),
        // ngx.decode_args: flags, repeats kept in order, empty keys skipped, split at the first `=`.
        (
            "{vault://env/a?k&k=1&k=}",
            (
                "env",
                "a",
                None,
                &[("k", &[None, Some("1"), Some("")])],
                None,
            ),
        ),
        (
            "{vault://env/a?=x&&b=1=2}",
            ("env", "a", None, &[("b", &[Some("1=2")])], None),
        ),
        (
            "{vault://env/a?x+y=%26}",
            ("env", "a", None, &[("x y", &[Some("&")])], None),
        ),
        ("{vault://env/a?}", ("env", "a", None, NONE, None)),
        // tonumber: hexadecimal, exponents, spaces, and the int32 path's unsigned zero.
        ("{vault://env/a#0x10}", ("env", "a", None, NONE, Some(16.0))),
        ("{vault://env/a#1e1}", ("env", "a", None, NONE, Some(10.0))),
        ("{vault://env/a# 2 }", ("env", "a", None, NONE, Some(2.0))),
        ("{vault://env/a#1.5}", ("env", "a", None, NONE, Some(1.5))),
        ("{vault://env/a#-0}", ("env", "a", None, NONE, Some(0.0))),
        (
            "{vault://env/a#inf}",
            ("env", "a", None, NONE, Some(f64::INFINITY)),
        ),
    ];
    for (text, expected) in cases {
        let r = Reference::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(parts(&r), want(expected), "{text}");
    }
}

#[test]
fn kong_errors_point_at_the_offending_part() {
    use ReferenceErrorKind as K;
    let cases: &[(&str, ReferenceErrorKind, usize, &str)] = &[
        // Kong spec: "reference url is missing path", "has empty path", "has invalid path".
        (
            "{vault://env}",
            K::MissingResource,
            12,
            "a /RESOURCE must follow the vault name at byte 12",
        ),
        (
            "{vault://env/}",
            K::EmptyResource,
            13,
            "resource must not be empty at byte 13",
        ),
        (
            "{vault://env/////}",
            K::OnlySlashes,
            12,
            "resource must not be empty: the path holds only slashes at byte 12",
        ),
        // Kong spec is_reference cases that are false: "not a reference".
        (
            "vault:/xx-x}",
            K::MissingPrefix,
            0,
            "reference must start with {vault:// at byte 0",
        ),
        (
            "{vault:/xx-x",
            K::MissingPrefix,
            8,
            "reference must start with {vault:// at byte 8",
        ),
        (
            "{valut:/xx-x}",
            K::MissingPrefix,
            3,
            "reference must start with {vault:// at byte 3",
        ),
        (
            "{vault:/xx-x}",
            K::MissingPrefix,
            8,
            "reference must start with {vault:// at byte 8",
        ),
        (
            "{vault://env/x",
            K::MissingClosingBrace,
            14,
            "reference must end with } at byte 14",
        ),
        // "reference url is missing host"
        (
            "{vault://}",
            K::EmptyName,
            9,
            "vault name must not be empty at byte 9",
        ),
        (
            "{vault:///x}",
            K::EmptyName,
            9,
            "vault name must not be empty at byte 9",
        ),
        (
            "{vault://user@/x}",
            K::EmptyName,
            9,
            "vault name must not be empty at byte 9",
        ),
        (
            "{vault://:80/x}",
            K::EmptyName,
            9,
            "vault name must not be empty at byte 9",
        ),
        // The authority holds `?` and `#`, so these have no path.
        (
            "{vault://env?ttl=1}",
            K::MissingResource,
            18,
            "a /RESOURCE must follow the vault name at byte 18",
        ),
        (
            "{vault://env#1}",
            K::MissingResource,
            14,
            "a /RESOURCE must follow the vault name at byte 14",
        ),
        // "reference url has invalid version"; checked before the path's segments.
        (
            "{vault://env/a#x}",
            K::InvalidVersion("x".into()),
            15,
            "version must be a number (as Lua's tonumber reads it), not \"x\" at byte 15",
        ),
        (
            "{vault://env/a#}",
            K::InvalidVersion(String::new()),
            15,
            "version must be a number (as Lua's tonumber reads it), not \"\" at byte 15",
        ),
        (
            "{vault://env//#x}",
            K::InvalidVersion("x".into()),
            15,
            "version must be a number (as Lua's tonumber reads it), not \"x\" at byte 15",
        ),
        // The fragment is taken first, so `2?x=1` is the version.
        (
            "{vault://env/a#2?x=1}",
            K::InvalidVersion("2?x=1".into()),
            15,
            "version must be a number (as Lua's tonumber reads it), not \"2?x=1\" at byte 15",
        ),
        // Empty path is checked before the version.
        (
            "{vault://env/#x}",
            K::EmptyResource,
            13,
            "resource must not be empty at byte 13",
        ),
        // Rotor only: decoded bytes that are not UTF-8.
        (
            "{vault://env/%FF}",
            K::NotUtf8(Part::Resource),
            13,
            "resource is not UTF-8 once percent-decoded at byte 13",
        ),
        (
            "{vault://env/a/%C3}",
            K::NotUtf8(Part::Key),
            15,
            "key is not UTF-8 once percent-decoded at byte 15",
        ),
        (
            "{vault://env/a?x=%FF}",
            K::NotUtf8(Part::Options),
            15,
            "options is not UTF-8 once percent-decoded at byte 15",
        ),
    ];
    for (text, kind, at, message) in cases {
        let err = Reference::parse(text).unwrap_err();
        assert_eq!((&err.kind, err.at), (kind, *at), "{text}");
        assert_eq!(err.to_string(), *message, "{text}");
    }
    assert_eq!(
        Reference::parse("{vault://env}").unwrap_err().part(),
        Part::Resource
    );
    assert_eq!(
        Reference::parse("{vault://env/a#x}").unwrap_err().part(),
        Part::Version
    );
}

#[test]
fn is_reference_matches_kong() {
    for (text, want) in [
        ("{vault://x/x}", true),
        ("{vault://x/xx}", true),
        ("{vault://xx/xx-x}", true),
        ("{vault://xxx/xx-x}", true),
        ("{vault://;/xx-x}", true),
        ("vault:/xx-x}", false),
        ("{vault:/xx-x", false),
        ("vault:/xx-x", false),
        ("{valut:/xx-x}", false),
        ("{vault:/xx-x}", false),
        ("{vault://}", true),
        ("{vault://", false),
    ] {
        assert_eq!(Reference::is_reference(text), want, "{text}");
    }
}

#[test]
fn ttl_options_are_read_as_kong_reads_numbers() {
    let r = Reference::parse("{vault://env/a?ttl=60&neg_ttl=0x10&resurrect_ttl=1.5}").unwrap();
    assert_eq!(r.ttl(), Ok(Some(Duration::from_secs(60))));
    assert_eq!(r.neg_ttl(), Ok(Some(Duration::from_secs(16))));
    assert_eq!(r.resurrect_ttl(), Ok(Some(Duration::from_millis(1500))));
    assert_eq!(Reference::parse("{vault://env/a}").unwrap().ttl(), Ok(None));
    for (text, found) in [
        ("{vault://env/a?ttl=abc}", "\"abc\""),
        ("{vault://env/a?ttl=}", "\"\""),
        ("{vault://env/a?ttl=-1}", "\"-1\""),
        ("{vault://env/a?ttl=100000001}", "\"100000001\""),
        ("{vault://env/a?ttl=nan}", "\"nan\""),
        ("{vault://env/a?ttl}", "a flag"),
        ("{vault://env/a?ttl=1&ttl=2}", "2 values"),
    ] {
        let err = Reference::parse(text).unwrap().ttl().unwrap_err();
        assert_eq!(err.found, found, "{text}");
    }
    assert_eq!(
        Reference::parse("{vault://env/a?ttl=x}")
            .unwrap()
            .ttl()
            .unwrap_err()
            .to_string(),
        "option ttl must be one number of seconds from 0 to 100000000, got \"x\""
    );
}

#[test]
fn equal_references_are_equal_however_spelled() {
    let a = Reference::parse("{vault://env//a//b}").unwrap();
    let b = Reference::parse("{vault://env/a/b}").unwrap();
    assert_eq!(a, b);
    assert_eq!(a.to_string(), "{vault://env/a/b}");
    let c = Reference::parse("{vault://rotor/%2Fapp/db/}").unwrap();
    assert_eq!(c.to_string(), "{vault://rotor/%2Fapp%2Fdb}");
    assert_eq!(
        Reference::parse("{vault://a@b:1/x}").unwrap(),
        Reference::parse("{vault://b/x}").unwrap()
    );
}

#[test]
fn building_refuses_what_parsing_could_not_give_back() {
    use ReferenceErrorKind as K;
    assert_eq!(Reference::new("", "x").unwrap_err().kind, K::EmptyName);
    assert_eq!(Reference::new("a/b", "x").unwrap_err().kind, K::SlashInName);
    assert_eq!(Reference::new("a", "").unwrap_err().kind, K::EmptyResource);
    let r = Reference::new("a", "x").unwrap();
    assert_eq!(r.clone().with_key("").unwrap_err().kind, K::EmptyKey);
    assert_eq!(
        r.clone()
            .with_option("", ConfigValue::Flag)
            .unwrap_err()
            .kind,
        K::EmptyOptionName
    );
    let mut many = r;
    for i in 0..100 {
        many = many
            .with_option(&format!("o{i}"), ConfigValue::Flag)
            .unwrap();
    }
    assert_eq!(
        many.with_option("x", ConfigValue::Flag).unwrap_err().kind,
        K::TooManyOptions
    );
}

// ---- properties ----

fn tricky_text(min: usize) -> impl Strategy<Value = String> {
    let alphabet = prop::sample::select(vec![
        "a", "Z", "0", "9", "-", "_", ".", "~", "/", "%", "+", " ", "?", "#", ";", "&", "=", "@",
        ":", "[", "]", "{", "}", "%2F", "%25", "é", "日", "\u{0}", "\t",
    ]);
    prop::collection::vec(alphabet, min..12).prop_map(|v| v.concat())
}

fn name() -> impl Strategy<Value = String> {
    tricky_text(1).prop_filter_map("no slash, not empty", |s| {
        let s = s.replace('/', "");
        (!s.is_empty()).then_some(s)
    })
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![
        (0i64..10).prop_map(|n| Version::new(n as f64)),
        any::<f64>().prop_map(Version::new),
        Just(Version::new(-0.0)),
        Just(Version::new(f64::NAN)),
        Just(Version::new(f64::NEG_INFINITY)),
    ]
}

fn config_value() -> impl Strategy<Value = ConfigValue> {
    prop_oneof![
        Just(ConfigValue::Flag),
        tricky_text(0).prop_map(ConfigValue::Text)
    ]
}

prop_compose! {
    fn reference()(
        name in name(),
        resource in tricky_text(1),
        key in prop::option::of(tricky_text(1)),
        options in prop::collection::vec((tricky_text(1), config_value()), 0..6),
        version in prop::option::of(version()),
    ) -> Reference {
        let mut r = Reference::new(&name, &resource).unwrap();
        if let Some(k) = key {
            r = r.with_key(&k).unwrap();
        }
        for (k, v) in options {
            r = r.with_option(&k, v).unwrap();
        }
        if let Some(v) = version {
            r = r.with_version(v);
        }
        r
    }
}

/// Strings shaped like references, to reach past the prefix check.
fn reference_like() -> impl Strategy<Value = String> {
    tricky_text(0).prop_map(|s| format!("{{vault://{s}}}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parse_reads_back_what_display_writes(r in reference()) {
        let text = r.to_string();
        prop_assert_eq!(Reference::parse(&text), Ok(r), "{}", text);
    }

    #[test]
    fn canonical_form_is_a_fixed_point(s in reference_like()) {
        if let Ok(r) = Reference::parse(&s) {
            prop_assert!(Reference::is_reference(&s));
            let text = r.to_string();
            prop_assert_eq!(Reference::parse(&text), Ok(r), "{} -> {}", s, text);
        }
    }
}

proptest! {
    // "Fuzz the parser": many arbitrary inputs, only asking that parsing returns.
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_arbitrary_text(s in any::<String>()) {
        let _ = Reference::parse(&s);
    }

    #[test]
    fn parse_never_panics_on_reference_shaped_text(s in reference_like()) {
        if let Err(e) = Reference::parse(&s) {
            prop_assert!(e.at <= s.len());
        }
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(b in prop::collection::vec(any::<u8>(), 0..64)) {
        let s = String::from_utf8_lossy(&b);
        let _ = Reference::parse(&format!("{{vault://{s}}}"));
        let _ = lua::tonumber(&b);
        let _ = lua::decode_args(&b);
    }
}
