//! Fuzzing of the agent's templates: any template text compiles or is refused, and
//! one that compiles renders (or fails) without a panic, whatever the references it
//! names; a secret's value, whatever it holds (`{{`, `{%`, quotes, control
//! characters), is written as it is and never evaluated as template text; mode, owner
//! and signal settings parse or are refused.
//!
//! `ROTOR_FUZZ_CASES` sets the cases per property (default 256); README's "Fuzzing"
//! gives the 100,000-case release run.

use crate::config::{AgentConfig, SignalSection, TemplateSection};
use crate::signal_name;
use crate::template::{RenderError, Template};
use crate::{Chain, Used};
use proptest::prelude::*;
use rotor_client::resolver::{Resolver, VaultConfig, Vaults};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What every case shares: a runtime, a vault directory with a few secrets, and a
/// resolver over it (vault `files`) and over the environment (vault `env`).
struct Fixture {
    runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    resolver: Resolver,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let vault = dir.path().join("vault");
        std::fs::create_dir_all(&vault).expect("the vault directory");
        for (name, value) in [
            (
                "db",
                r#"{"user": "app", "password": "p{{w}}d", "port": 5432, "on": true}"#,
            ),
            ("plain", "s3cr3t"),
            (
                "template-like",
                "{{ secret('{vault://files/db}') }}{% raw %}",
            ),
            ("empty", ""),
        ] {
            std::fs::write(vault.join(name), value).expect("a vault file");
        }
        let resolver = Resolver::new(
            Vaults::new()
                .with("files", VaultConfig::file(&vault))
                .expect("vault files")
                .with("env", VaultConfig::env())
                .expect("vault env"),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        Fixture {
            runtime,
            dir,
            resolver,
        }
    })
}

fn section(contents: &str) -> TemplateSection {
    TemplateSection {
        source: None,
        contents: Some(contents.to_string()),
        destination: "out/fuzz.conf".into(),
        mode: None,
        owner: None,
        command: None,
        signal: None,
    }
}

fn config(dir: &Path) -> AgentConfig {
    AgentConfig {
        base_dir: dir.to_path_buf(),
        ..Default::default()
    }
}

/// References as templates write them: mostly to the fixture's secrets, some odd.
fn reference() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{vault://files/db/password}".to_string()),
        Just("{vault://files/db/port}".to_string()),
        Just("{vault://files/db}".to_string()),
        Just("{vault://files/plain}".to_string()),
        Just("{vault://files/template-like}".to_string()),
        Just("{vault://files/empty}".to_string()),
        Just("{vault://files/missing}".to_string()),
        Just("{vault://env/ROTOR_FUZZ_UNSET_VARIABLE}".to_string()),
        Just("{vault://nowhere/x}".to_string()),
        Just("{vault://files/%2E%2E%2Fetc}".to_string()),
        "\\{vault://(files|env)/[a-zA-Z0-9%/._-]{0,16}(\\?[a-z_=0-9&]{0,12})?(#[0-9]{0,2})?\\}",
        ".{0,24}",
    ]
}

/// Template-like text: literals, expressions, statements, filters and `secret()`
/// calls, balanced or not.
fn template_text() -> impl Strategy<Value = String> {
    let expr = prop_oneof![
        reference().prop_map(|r| format!("secret({r:?})")),
        reference().prop_map(|r| format!("secret('{}')", r.replace('\'', ""))),
        Just("x".to_string()),
        Just("loop.index".to_string()),
        "[0-9]{1,3}",
        "\"[a-z{}%]{0,6}\"",
        Just("none".to_string()),
        Just("[1, 2, 3]".to_string()),
        Just("{'a': 1}".to_string()),
    ];
    let filter = prop_oneof![
        Just("".to_string()),
        Just("|tojson".to_string()),
        Just("|urlencode".to_string()),
        Just("|upper".to_string()),
        Just("|length".to_string()),
        Just("|default('d')".to_string()),
        Just("|replace('a', 'b')".to_string()),
        "\\|[a-z]{1,8}",
    ];
    let piece = prop_oneof![
        "[a-z =:\n]{0,8}",
        (expr.clone(), filter).prop_map(|(e, f)| format!("{{{{ {e}{f} }}}}")),
        expr.clone()
            .prop_map(|e| format!("{{% if {e} %}}yes{{% else %}}no{{% endif %}}")),
        "[0-9]{1,2}".prop_map(|n| format!("{{% for i in range({n}) %}}{{{{ i }}}}{{% endfor %}}")),
        expr.prop_map(|e| format!("{{% set x = {e} %}}{{{{ x }}}}")),
        Just("{% raw %}{{ not evaluated }}{% endraw %}".to_string()),
        Just("{# a comment #}".to_string()),
        Just("{{".to_string()),
        Just("}}".to_string()),
        Just("{%".to_string()),
        Just("%}".to_string()),
        Just("{#".to_string()),
        Just("{% endif %}".to_string()),
        Just("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1) }}".to_string()),
        ".{0,8}",
    ];
    prop_oneof![
        proptest::collection::vec(piece, 0..8).prop_map(|p| p.concat()),
        ".{0,60}",
    ]
}

/// Renders `t` on the shared runtime.
fn render(t: &mut Template) -> Result<String, RenderError> {
    let f = fixture();
    f.runtime
        .block_on(t.render(&f.resolver))
        .map(|s| s.as_str().to_string())
}

/// A fresh vault file name per case, so the resolver's cache never answers with an
/// earlier case's value.
fn fresh_name() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("value-{}", N.fetch_add(1, Ordering::Relaxed))
}

proptest! {
    #![proptest_config(rotor_testkit::fuzz_config())]

    /// Any template text compiles or is refused; one that compiles renders or fails,
    /// never panics, and reports every reference it used.
    #[test]
    fn fuzz_agent_templates_compile_and_render(text in template_text()) {
        let f = fixture();
        if let Ok(mut t) = Template::new(&section(&text), &config(f.dir.path()), &f.resolver) {
            let _ = render(&mut t);
            for used in &t.used {
                prop_assert_eq!(used, &Used::new(&used.reference, None).with_version(used.version_id.clone()));
            }
        }
    }

    /// A secret's value is inserted as it is, never read as template text, whatever
    /// it holds; `tojson` and `urlencode` take any value.
    #[test]
    fn fuzz_agent_secret_values_are_inserted_verbatim(
        value in prop_oneof![
            ".{0,80}",
            "[{}%#'\"\\\\ a-z]{0,40}",
            Just("{{ secret('{vault://files/plain}') }}".to_string()),
            Just("{% for i in range(100000) %}{% endfor %}".to_string()),
        ],
        filter in prop_oneof![Just(""), Just("|tojson"), Just("|urlencode")],
    ) {
        let f = fixture();
        let name = fresh_name();
        std::fs::write(f.dir.path().join("vault").join(&name), &value).unwrap();
        let text = format!("a={{{{ secret('{{vault://files/{name}}}'){filter} }}}};");
        let mut t = Template::new(&section(&text), &config(f.dir.path()), &f.resolver)
            .map_err(|e| TestCaseError::fail(format!("{text}: {}", Chain(&e))))?;
        let out = render(&mut t);
        let _ = std::fs::remove_file(f.dir.path().join("vault").join(&name));
        let out = out.map_err(|e| TestCaseError::fail(format!("{value:?}: {}", Chain(&e))))?;
        let inner = out
            .strip_prefix("a=")
            .and_then(|o| o.strip_suffix(';'))
            .ok_or_else(|| TestCaseError::fail(format!("{out:?}")))?;
        match filter {
            "" => prop_assert_eq!(inner, value.as_str()),
            "|tojson" => {
                let back: String = serde_json::from_str(inner)
                    .map_err(|e| TestCaseError::fail(format!("{inner:?}: {e}")))?;
                prop_assert_eq!(back, value);
            }
            _ => {
                let back = percent_decode(inner);
                prop_assert_eq!(back, value.into_bytes());
            }
        }
    }

    /// Mode, owner, command and signal settings are accepted or refused, never a
    /// panic; an accepted mode is a file mode.
    #[test]
    fn fuzz_agent_template_settings(
        mode in proptest::option::of(prop_oneof![
            "(0o)?[0-7]{0,6}",
            "[0-9a-fx+-]{0,8}",
            ".{0,10}",
        ]),
        owner in proptest::option::of(prop_oneof![
            "[0-9]{0,11}(:[0-9]{0,11})?",
            "(root|nobody|no-such-user)(:(root|nogroup|no-such-group|[0-9]{0,6}))?",
            ".{0,12}",
        ]),
        command in proptest::option::of(proptest::collection::vec(".{0,8}", 0..3)),
        signal in proptest::option::of(prop_oneof![
            "(SIG)?(HUP|INT|USR1|TERM|hup|usr2)",
            "[ A-Za-z0-9]{0,8}",
            ".{0,8}",
        ]),
    ) {
        let f = fixture();
        let _ = signal.as_deref().map(signal_name);
        let section = TemplateSection {
            mode: mode.clone(),
            owner,
            command,
            signal: signal.map(|s| SignalSection {
                pid_file: PathBuf::from("app.pid"),
                signal: s,
            }),
            ..section("x")
        };
        let made = Template::new(&section, &config(f.dir.path()), &f.resolver);
        if made.is_ok() && let Some(m) = &mode {
            let digits = m.trim_start_matches("0o");
            let parsed = u32::from_str_radix(digits, 8);
            prop_assert!(parsed.is_ok_and(|m| m <= 0o7777), "{m:?} accepted");
        }
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

impl Used {
    fn with_version(mut self, version_id: Option<String>) -> Self {
        self.version_id = version_id;
        self
    }
}
