//! The CLI: help, errors and exit codes pinned by trycmd cases (`tests/cmd/`), and
//! its output against a live server.

use crate::harness::{self, dev};
use std::process::{Command, Output};

#[test]
fn cli_cases() {
    trycmd::TestCases::new().case("tests/cmd/*.toml");
}

fn rotor(server: &harness::Server, args: &[&str]) -> Output {
    Command::new(harness::bin())
        .args(args)
        .env("ROTOR_ADDR", &server.url)
        .env("ROTOR_TOKEN", harness::TOKEN)
        .output()
        .expect("rotor runs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn secret_commands_against_a_live_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let out = ok(rotor(
        &server,
        &[
            "secret",
            "create",
            "/dba/mp/mongo/password",
            "--value",
            "p@ssW0rd!1",
            "--version-id",
            "v1",
            "--description",
            "blue",
            "--tag",
            "team=dba",
        ],
    ));
    assert!(out.starts_with("Created /dba/mp/mongo/password (arn:aws:secretsmanager:us-east-1:123456789012:secret:/dba/mp/mongo/password-"), "{out}");
    let out = ok(rotor(
        &server,
        &[
            "secret",
            "put",
            "/dba/mp/mongo/password",
            "--value",
            "N3wp@ssW0rd1!",
            "--version-id",
            "v2",
        ],
    ));
    assert_eq!(
        out,
        "Put version v2 of /dba/mp/mongo/password with stages AWSCURRENT\n"
    );
    assert_eq!(
        ok(rotor(&server, &["secret", "get", "/dba/mp/mongo/password"])),
        "N3wp@ssW0rd1!\n"
    );
    for alias in ["previous", "ACSPrevious", "AWSPREVIOUS"] {
        assert_eq!(
            ok(rotor(
                &server,
                &["secret", "get", "/dba/mp/mongo/password", "--stage", alias]
            )),
            "p@ssW0rd!1\n"
        );
    }
    assert_eq!(
        ok(rotor(
            &server,
            &[
                "secret",
                "get",
                "/dba/mp/mongo/password",
                "--version-id",
                "v1"
            ]
        )),
        "p@ssW0rd!1\n"
    );
    let out = ok(rotor(
        &server,
        &[
            "secret",
            "put",
            "/dba/mp/mongo/password",
            "--value",
            "pending-one",
            "--version-id",
            "v3",
            "--stage",
            "pending",
        ],
    ));
    assert!(out.contains("with stages AWSPENDING"), "{out}");
    let versions = ok(rotor(
        &server,
        &["secret", "versions", "/dba/mp/mongo/password"],
    ));
    let lines: Vec<&str> = versions.lines().collect();
    assert!(lines[0].starts_with("VERSION"), "{versions}");
    assert!(
        lines[1].starts_with("v3") && lines[1].ends_with("AWSPENDING"),
        "{versions}"
    );
    assert!(
        lines[2].starts_with("v2") && lines[2].ends_with("AWSCURRENT"),
        "{versions}"
    );
    assert!(
        lines[3].starts_with("v1") && lines[3].ends_with("AWSPREVIOUS"),
        "{versions}"
    );
    // Promote the pending version as Alibaba's UpdateSecretVersionStage does.
    let out = ok(rotor(
        &server,
        &[
            "secret",
            "stage",
            "/dba/mp/mongo/password",
            "ACSCurrent",
            "--to",
            "v3",
            "--from",
            "v2",
        ],
    ));
    assert_eq!(out, "Moved AWSCURRENT to version v3\n");
    assert_eq!(
        ok(rotor(&server, &["secret", "get", "/dba/mp/mongo/password"])),
        "pending-one\n"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(rotor(
        &server,
        &[
            "secret",
            "describe",
            "/dba/mp/mongo/password",
            "--output",
            "json",
        ],
    )))
    .unwrap();
    assert_eq!(json["versions"]["v2"], serde_json::json!(["AWSPREVIOUS"]));
    assert_eq!(json["tags"]["team"], "dba");
    let list = ok(rotor(&server, &["secret", "list", "--prefix", "/dba/"]));
    assert!(
        list.contains("/dba/mp/mongo/password") && list.contains("blue"),
        "{list}"
    );
    let out = ok(rotor(
        &server,
        &[
            "secret",
            "tag",
            "/dba/mp/mongo/password",
            "env=prod",
            "--remove",
            "team",
        ],
    ));
    assert_eq!(out, "Tags of /dba/mp/mongo/password: env=prod\n");
    let out = ok(rotor(
        &server,
        &[
            "secret",
            "delete",
            "/dba/mp/mongo/password",
            "--recovery-window-days",
            "7",
        ],
    ));
    assert!(
        out.starts_with("Scheduled /dba/mp/mongo/password for deletion on "),
        "{out}"
    );
    let refused = rotor(&server, &["secret", "get", "/dba/mp/mongo/password"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("InvalidRequestException"));
    ok(rotor(
        &server,
        &["secret", "restore", "/dba/mp/mongo/password"],
    ));
    assert_eq!(
        ok(rotor(&server, &["secret", "get", "/dba/mp/mongo/password"])),
        "pending-one\n"
    );
    let missing = rotor(&server, &["secret", "get", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "error: ResourceNotFoundException: Secrets Manager can't find the specified secret.\n"
    );
    let pw = ok(rotor(
        &server,
        &["password", "--length", "40", "--exclude-punctuation"],
    ));
    assert_eq!(pw.trim_end().len(), 40);
    assert!(
        pw.trim_end().chars().all(|c| c.is_ascii_alphanumeric()),
        "{pw}"
    );
}
