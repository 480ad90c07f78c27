//! The audit log of a real server: every request recorded with who, what, the
//! decision and the result; `rotor audit verify` vouches for it and finds tampering;
//! a server that cannot write its audit log refuses requests.

use crate::harness::{self, Launch, client, persistent, runtime, start, terminate, text};
use rotor_api::sys::PrincipalKind;
use rotor_client::{Client, ClientError};
use serde_json::Value;
use std::process::Command;

fn rotor(args: &[&str]) -> std::process::Output {
    Command::new(harness::bin())
        .args(args)
        .env_remove("ROTOR_MASTER_KEY")
        .output()
        .expect("rotor runs")
}

#[test]
fn requests_are_audited_and_the_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rt = runtime();
    let mut server = persistent(&data, dir.path());
    rt.block_on(async {
        let root = client(&server);
        root.create(
            "/app/a",
            Some(&text("audit-canary-value")),
            Some("audit-canary-desc"),
            &[],
            Some("v1"),
        )
        .await
        .unwrap();
        root.put_policy(
            "reader",
            &harness::statements(
                r#"[{"effect": "allow", "capabilities": ["read"], "paths": ["/app/**"]}]"#,
            ),
        )
        .await
        .unwrap();
        root.create_principal("svc", PrincipalKind::Service)
            .await
            .unwrap();
        root.attach_policy("svc", "reader").await.unwrap();
        let token = root.create_token("svc", None).await.unwrap();
        let svc = Client::new(&server.url, token.token.expose()).unwrap();
        svc.get_value("/app/a", None, Some("current"))
            .await
            .unwrap();
        assert!(matches!(
            svc.get_value("/dba/x", None, None).await,
            Err(ClientError::Api { status: 403, .. })
        ));
        let stranger = Client::new(&server.url, "rtr_not_a_token").unwrap();
        assert!(matches!(
            stranger.get_value("/app/a", None, None).await,
            Err(ClientError::Api { status: 401, .. })
        ));
    });
    assert!(terminate(&mut server).success());

    let log = data.join("audit").join("audit.log");
    let text_log = std::fs::read_to_string(&log).unwrap();
    let entries: Vec<Value> = text_log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |decision: &str, secret: &str| {
        entries
            .iter()
            .find(|e| e["decision"] == decision && e["secret"] == secret)
            .unwrap_or_else(|| panic!("no {decision} entry for {secret} in {text_log}"))
    };
    let created = entries
        .iter()
        .find(|e| e["operation"] == "CreateSecret")
        .unwrap();
    assert_eq!(
        (created["principal"].as_str(), created["secret"].as_str()),
        (Some("root"), Some("/app/a"))
    );
    let read = entries
        .iter()
        .find(|e| {
            e["principal"] == "svc" && e["operation"] == "GetSecretValue" && e["status"] == 200
        })
        .unwrap();
    assert_eq!(
        (
            read["secret"].as_str(),
            read["labels"][0].as_str(),
            read["api"].as_str()
        ),
        (Some("/app/a"), Some("current"), Some("native"))
    );
    assert!(read["source"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(read["request_id"].as_str().unwrap().len() >= 32);
    let denied = find("deny", "/dba/x");
    assert_eq!(
        (
            denied["principal"].as_str(),
            denied["status"].as_u64(),
            denied["error"].as_str()
        ),
        (Some("svc"), Some(403), Some("AccessDeniedException"))
    );
    let stranger = find("unauthenticated", "/app/a");
    assert_eq!(stranger["status"], 401);
    assert!(stranger.get("principal").is_none());
    // Admin operations are audited too.
    assert!(
        entries
            .iter()
            .any(|e| e["operation"] == "CreateToken" && e["principal"] == "root")
    );
    // No value or token in plaintext; the description only as an HMAC that the
    // operator can recompute.
    for secret in ["audit-canary-value", "audit-canary-desc", "rtr_"] {
        assert!(!text_log.contains(secret), "{secret} is in the audit log");
    }
    let create = entries
        .iter()
        .find(|e| e["operation"] == "CreateSecret")
        .unwrap();
    let hashed = create["hashed"][0][1].as_str().unwrap();
    let data_arg = data.display().to_string();
    let out = rotor(&[
        "audit",
        "hash",
        "description",
        "audit-canary-desc",
        "--data-dir",
        &data_arg,
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hashed);

    let log_arg = log.display().to_string();
    let ok = rotor(&["audit", "verify", &log_arg, "--data-dir", &data_arg]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success() && stdout.starts_with(&format!("ok: {} entries", entries.len())),
        "{stdout}"
    );

    // Change one entry's decision: verification names the line and fails.
    let lines: Vec<&str> = text_log.lines().collect();
    let target = lines.iter().position(|l| l.contains("\"deny\"")).unwrap();
    let mut tampered = lines.clone();
    let changed = lines[target].replacen("\"deny\"", "\"allow\"", 1);
    tampered[target] = &changed;
    std::fs::write(&log, tampered.join("\n") + "\n").unwrap();
    let bad = rotor(&["audit", "verify", &log_arg, "--data-dir", &data_arg]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&bad.stdout).trim(),
        format!(
            "broken at line {}: entry {} was altered (its MAC does not match)",
            target + 1,
            target + 1
        )
    );
    // Without the key, there is nothing to check against.
    let keyless = rotor(&["audit", "verify", &log_arg]);
    assert_eq!(keyless.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&keyless.stderr).contains("master key"));
}

#[test]
fn a_server_that_cannot_write_its_audit_log_refuses_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(Launch {
        args: vec![
            "--dev".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--audit-file".into(),
            "/dev/full".into(),
        ],
        envs: vec![("ROTOR_DEV_ROOT_TOKEN", harness::TOKEN.into())],
        log_dir: dir.path(),
    });
    let rt = runtime();
    let err = rt
        .block_on(client(&server).create("x", Some(&text("v")), None, &[], None))
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 500, kind, .. } if kind == "InternalServiceError"),
        "{err}"
    );
    // Health checks, which are not audited, still answer.
    let health = rt
        .block_on(reqwest::get(format!("{}/healthz", server.url)))
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}
