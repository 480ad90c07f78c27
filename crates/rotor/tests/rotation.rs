//! Rotation through the CLI and the native API: registering rotators, configuring a
//! secret's rotation, rotating it and following the rotation to its end; the webhook
//! signing key shown only at creation; rotators refused to a principal without
//! `admin` on them.

use crate::harness::{self, dev, runtime, text};
use rotor_api::sys::{PrincipalKind, RotatorKind};
use rotor_client::{Client, ClientError};
use serde_json::{Value, json};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

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

/// Runs a command with `--output json` and parses what it prints.
fn json_of(server: &harness::Server, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    serde_json::from_str(&ok(rotor(server, &args))).expect("the command prints JSON")
}

/// `rotor rotation show` until the latest rotation has finished, one way or another.
fn wait_finished(server: &harness::Server, secret: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = json_of(server, &["rotation", "show", secret]);
        let status = view["latest"]["status"].as_str().unwrap_or("none");
        if status != "running" {
            return view;
        }
        assert!(Instant::now() < deadline, "rotation still running: {view}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const SECRET: &str = "/app/orders/db";

#[test]
fn rotation_with_a_random_rotator_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let out = ok(rotor(
        &server,
        &[
            "rotator",
            "create",
            "orders-password",
            "--type",
            "random",
            "--length",
            "24",
            "--field",
            "password",
            "--config",
            r#"{"exclude_punctuation": true}"#,
        ],
    ));
    assert_eq!(out, "Registered random rotator orders-password\n");
    let shown = json_of(&server, &["rotator", "show", "orders-password"]);
    assert_eq!(shown["type"], "random");
    assert_eq!(shown["config"]["length"], 24);
    assert_eq!(shown["config"]["field"], "password");
    assert_eq!(shown["config"]["exclude_punctuation"], true);
    // An option the type has no field for is refused before the server is asked.
    let refused = rotor(
        &server,
        &[
            "rotator", "create", "x", "--type", "random", "--url", "http://x",
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        "error: --url does not apply to random rotators (only to webhook)\n"
    );

    ok(rotor(
        &server,
        &[
            "secret",
            "create",
            SECRET,
            "--value",
            r#"{"username": "orders", "password": "first"}"#,
            "--version-id",
            "v1",
        ],
    ));
    let out = ok(rotor(
        &server,
        &[
            "rotation",
            "set",
            SECRET,
            "--rotator",
            "orders-password",
            "--every-days",
            "30",
            "--window",
            "3h",
        ],
    ));
    assert_eq!(
        out,
        format!("{SECRET} rotates with orders-password, every 30 days, in a 3h window\n")
    );
    let view = json_of(&server, &["rotation", "show", SECRET]);
    assert_eq!(view["enabled"], true);
    assert_eq!(view["rotator"], "orders-password");
    assert_eq!(
        view["rules"],
        json!({"AutomaticallyAfterDays": 30, "Duration": "3h"})
    );
    assert!(
        view["next_rotation"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{view}"
    );
    // Configuring rotation on the native API does not rotate unless asked to.
    assert_eq!(view["latest"], Value::Null, "{view}");

    let rotated = json_of(&server, &["rotate", SECRET, "--version-id", "v2"]);
    assert_eq!(rotated["version_id"], "v2");
    assert_eq!(rotated["name"], SECRET);
    let view = wait_finished(&server, SECRET);
    let latest = &view["latest"];
    assert_eq!(latest["status"], "succeeded", "{view}");
    assert_eq!(latest["version_id"], "v2");
    assert_eq!(latest["attempt"], 1);
    let steps: Vec<&str> = latest["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["createSecret", "setSecret", "testSecret", "finishSecret"]
    );
    assert!(view["last_rotated"].is_string(), "{view}");

    let value: Value =
        serde_json::from_str(&ok(rotor(&server, &["secret", "get", SECRET]))).unwrap();
    assert_eq!(value["username"], "orders");
    let password = value["password"].as_str().unwrap();
    assert_ne!(password, "first");
    assert_eq!(password.len(), 24);
    assert!(
        password.chars().all(|c| c.is_ascii_alphanumeric()),
        "{password}"
    );
    let described = json_of(&server, &["secret", "describe", SECRET]);
    assert_eq!(described["versions"]["v1"], json!(["AWSPREVIOUS"]));
    assert_eq!(described["versions"]["v2"], json!(["AWSCURRENT"]));

    let history = json_of(&server, &["rotation", "history", SECRET, "--limit", "5"]);
    let rotations = history["rotations"].as_array().unwrap();
    assert_eq!(rotations.len(), 1, "{history}");
    assert_eq!(rotations[0]["version_id"], "v2");
    let table = ok(rotor(&server, &["rotation", "history", SECRET]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("VERSION"), "{table}");
    assert!(
        lines[1].starts_with("v2") && lines[1].contains("succeeded"),
        "{table}"
    );
    let human = ok(rotor(&server, &["rotation", "show", SECRET]));
    assert!(human.contains("Rotation:      on\n"), "{human}");
    assert!(
        human.contains("  Status:    succeeded (attempt 1)\n"),
        "{human}"
    );

    let out = ok(rotor(&server, &["rotation", "cancel", SECRET]));
    assert_eq!(out, format!("Rotation of {SECRET} is off\n"));
    let view = json_of(&server, &["rotation", "show", SECRET]);
    assert_eq!(view["enabled"], false);
    assert_eq!(view["next_rotation"], Value::Null);
}

#[test]
fn rotator_show_never_prints_the_signing_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let url = "http://127.0.0.1:9/rotate";
    let created = json_of(
        &server,
        &[
            "rotator", "create", "hook", "--type", "webhook", "--url", url,
        ],
    );
    let key = created["signing_key"].as_str().unwrap().to_string();
    assert!(key.starts_with("whk_"), "{created}");
    assert_eq!(created["config"]["url"], url);
    let human = ok(rotor(
        &server,
        &[
            "rotator",
            "create",
            "hook",
            "--type",
            "webhook",
            "--url",
            url,
            "--timeout-ms",
            "500",
            "--replace",
        ],
    ));
    assert!(human.contains("Signing key: whk_"), "{human}");
    assert!(human.contains("shown only this once"), "{human}");
    let new_key = human
        .lines()
        .find_map(|l| l.strip_prefix("Signing key: "))
        .unwrap()
        .to_string();
    assert_ne!(new_key, key, "a replaced webhook rotator gets a new key");

    for args in [
        &["rotator", "show", "hook"][..],
        &["rotator", "show", "hook", "--output", "json"],
        &["rotator", "list"],
        &["rotator", "list", "--output", "json"],
    ] {
        let out = ok(rotor(&server, args));
        assert!(out.contains("hook"), "{args:?}: {out}");
        for k in [&key, &new_key] {
            assert!(!out.contains(k.as_str()), "{args:?} shows the key: {out}");
        }
        assert!(!out.contains("signing_key"), "{args:?}: {out}");
    }
    let shown = json_of(&server, &["rotator", "show", "hook"]);
    assert_eq!(shown["config"], json!({"url": url, "timeout_ms": 500}));

    let out = ok(rotor(&server, &["rotator", "delete", "hook"]));
    assert_eq!(out, "Deleted rotator hook\n");
    let missing = rotor(&server, &["rotator", "show", "hook"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "error: ResourceNotFoundException: No rotator named hook exists\n"
    );
}

fn is_denied<T>(r: &Result<T, ClientError>) -> bool {
    matches!(r, Err(ClientError::Api { status: 403, kind, .. }) if kind == "AccessDeniedException")
}

#[test]
fn rotators_and_rotation_are_denied_without_the_capability() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    runtime().block_on(async {
        let root = harness::client(&server);
        root.create(SECRET, Some(&text("first")), None, &[], None)
            .await
            .unwrap();
        root.create_rotator("pw", RotatorKind::Random, json!({}), false)
            .await
            .unwrap();
        root.put_policy(
            "reader",
            &harness::statements(r#"[{"effect": "allow", "capabilities": ["read", "describe", "list"], "paths": ["/app/**"]}]"#),
        )
        .await
        .unwrap();
        root.create_principal("reader", PrincipalKind::Service).await.unwrap();
        root.attach_policy("reader", "reader").await.unwrap();
        let token = root.create_token("reader", Some(3600)).await.unwrap();
        let reader = Client::new(&server.url, token.token.expose()).unwrap();

        let r = reader.create_rotator("mine", RotatorKind::Random, json!({}), false).await;
        assert!(is_denied(&r), "{r:?}");
        assert!(is_denied(&reader.rotator("pw").await));
        assert!(is_denied(&reader.delete_rotator("pw").await));
        // Listing is filtered, as ListSecrets is, rather than refused.
        assert!(reader.list_rotators().await.unwrap().rotators.is_empty());
        root.rotator("pw").await.unwrap();

        // Rotating needs `rotate` on the secret; reading the configuration, `describe`.
        let rules = rotor_client::RotationRules {
            automatically_after_days: Some(7),
            ..Default::default()
        };
        let r = reader
            .set_rotation(SECRET, Some("pw"), Some(&rules), false, None)
            .await;
        assert!(is_denied(&r), "{r:?}");
        assert!(is_denied(&reader.rotate(SECRET, None).await));
        assert!(is_denied(&reader.cancel_rotation(SECRET).await));
        assert!(!reader.rotation(SECRET).await.unwrap().enabled);
        assert!(reader.rotation_history(SECRET, None).await.unwrap().rotations.is_empty());

        // The raw route answers 403 with the native error shape.
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/sys/rotators", server.url))
            .bearer_auth(token.token.expose())
            .json(&json!({"name": "mine", "type": "random"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 403);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], "AccessDeniedException");

        let doc: Value = reqwest::get(format!("{}/v1/openapi.json", server.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for path in [
            "/v1/rotation/{name}",
            "/v1/rotation-history/{name}",
            "/v1/cancel-rotation/{name}",
            "/v1/rotate/{name}",
            "/v1/sys/rotators",
            "/v1/sys/rotators/{name}",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
        }
    });
}
