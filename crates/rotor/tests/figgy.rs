//! Seed 000 end to end, against the real binary: a DBA keeps Mongo credentials
//! under /dba/..., a replication rule keeps /app/message-processor/replicated/...
//! in step, the service reads only its own namespace, and a watcher on the
//! service's prefix sees the change the moment the DBA puts new credentials.

use crate::harness::{self, dev, runtime, text};
use rotor_api::replication::RuleKind;
use rotor_api::sys::{NewToken, PrincipalKind};
use rotor_client::Client;
use serde_json::Value;
use std::time::{Duration, Instant};

const DBA: &str = "/dba/passpack/services/message-processor/mongo/";
const APP: &str = "/app/message-processor/replicated/mongo/";

/// Reads Server-Sent Events from `/v1/watch` until `want` returns true or time runs out.
async fn watch_until(
    url: &str,
    token: &str,
    prefix: &str,
    after: i64,
    timeout: Duration,
    mut want: impl FnMut(&Value) -> bool,
) -> Vec<Value> {
    let mut resp = reqwest::Client::new()
        .get(format!("{url}/v1/watch"))
        .query(&[("prefix", prefix), ("after", &after.to_string())])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "watch: {}", resp.status());
    let deadline = Instant::now() + timeout;
    let mut buf = String::new();
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, resp.chunk()).await;
        let Ok(Ok(Some(bytes))) = chunk else {
            return seen;
        };
        buf.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let data: String = frame
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if data.is_empty() {
                continue;
            }
            let event: Value = serde_json::from_str(&data).unwrap();
            let done = want(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
}

#[test]
fn figgy_story_blue_then_green_reaches_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    runtime().block_on(async {
        let root = harness::client(&server);
        for (name, doc) in [
            (
                "dba",
                r#"[{"effect": "allow", "capabilities": ["read", "write", "list", "describe", "rotate", "delete"], "paths": ["/dba/**"]},
                    {"effect": "allow", "capabilities": ["share", "describe"], "paths": ["/app/message-processor/**"]}]"#,
            ),
            (
                "message-processor",
                r#"[{"effect": "allow", "capabilities": ["read", "describe", "list"], "paths": ["/app/message-processor/**"]}]"#,
            ),
        ] {
            root.put_policy(name, &harness::statements(doc)).await.unwrap();
            root.create_principal(name, PrincipalKind::Service).await.unwrap();
            root.attach_policy(name, name).await.unwrap();
        }
        let token = |t: NewToken| t.token.expose().to_string();
        let dba_token = token(root.create_token("dba", Some(3600)).await.unwrap());
        let mp_token = token(root.create_token("message-processor", Some(3600)).await.unwrap());
        let dba = Client::new(&server.url, &dba_token).unwrap();
        let mp = Client::new(&server.url, &mp_token).unwrap();

        // The DBA writes blue credentials and shares them with the service.
        dba.create(&format!("{DBA}user"), Some(&text("mp-blue")), None, &[], None)
            .await
            .unwrap();
        dba.create(&format!("{DBA}password"), Some(&text("blue-password")), None, &[], None)
            .await
            .unwrap();
        let added = dba
            .add_replication("mp-mongo", RuleKind::Copy, Some(DBA), APP, None)
            .await
            .unwrap();
        assert_eq!(added.repairs.len(), 2, "{added:?}");

        // The service reads its own namespace, and is refused at the DBA's.
        let get = |v: rotor_api::secrets::Value| harness::value_of(&v).to_string();
        assert_eq!(get(mp.get_value(&format!("{APP}password"), None, None).await.unwrap()), "blue-password");
        let refused = mp.get_value(&format!("{DBA}password"), None, None).await.unwrap_err();
        assert!(refused.to_string().contains("not allowed"), "{refused}");
        // And it cannot write over the replica, nor can the DBA.
        assert!(dba.put(&format!("{APP}password"), &text("x"), None, &[]).await.is_err());

        // A watcher on the service's prefix, from now on.
        let last: i64 = reqwest::Client::new()
            .get(format!("{}/v1/events", server.url))
            .query(&[("prefix", "/app/message-processor/"), ("after", "0"), ("wait", "0")])
            .bearer_auth(&mp_token)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["seq"].as_i64())
            .max()
            .unwrap_or(0);
        let url = server.url.clone();
        let watcher = tokio::spawn(async move {
            watch_until(&url, &mp_token, "/app/message-processor/", last, Duration::from_secs(10), |e| {
                e["kind"] == "replication.applied" && e["secret"] == format!("{APP}password")
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        dba.put(&format!("{DBA}password"), &text("green-password"), None, &[])
            .await
            .unwrap();
        let seen = watcher.await.unwrap();
        let elapsed = started.elapsed();
        let hit = seen
            .iter()
            .find(|e| e["kind"] == "replication.applied")
            .unwrap_or_else(|| panic!("the watcher saw no replication: {seen:?}"));
        assert_eq!(hit["secret"], format!("{APP}password"));
        assert!(
            seen.iter().all(|e| e["secret"].as_str().is_none_or(|s| s.starts_with("/app/message-processor/"))),
            "the watcher sees only its namespace: {seen:?}"
        );
        assert!(!serde_json::to_string(&seen).unwrap().contains("green-password"));
        println!("put to watched replica event: {elapsed:?}");

        assert_eq!(get(mp.get_value(&format!("{APP}password"), None, None).await.unwrap()), "green-password");
        assert_eq!(
            get(mp.get_value(&format!("{APP}password"), None, Some("AWSPREVIOUS")).await.unwrap()),
            "blue-password"
        );
    });
}

fn rotor(server: &harness::Server, args: &[&str]) -> std::process::Output {
    std::process::Command::new(harness::bin())
        .args(args)
        .env("ROTOR_ADDR", &server.url)
        .env("ROTOR_TOKEN", harness::TOKEN)
        .output()
        .expect("rotor runs")
}

fn stdout_of(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `rotor replicate add|list|show|sync|remove` and a merge template, through the CLI.
#[test]
fn replicate_commands() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    for (name, value) in [("/dba/db/user", "app"), ("/dba/db/password", "p@ss:1")] {
        stdout_of(rotor(
            &server,
            &["secret", "create", name, "--value", value],
        ));
    }
    let added = stdout_of(rotor(
        &server,
        &[
            "replicate",
            "add",
            "db-url",
            "--to",
            "/app/svc/db-url",
            "--template",
            "postgres://${/dba/db/user}:${/dba/db/password|urlencode}@db/app",
        ],
    ));
    assert!(added.contains("db-url"), "{added}");
    let value = stdout_of(rotor(&server, &["secret", "get", "/app/svc/db-url"]));
    assert_eq!(value.trim(), "postgres://app:p%40ss%3A1@db/app");
    stdout_of(rotor(
        &server,
        &[
            "replicate",
            "add",
            "user",
            "--from",
            "/dba/db/user",
            "--to",
            "/app/svc/user",
        ],
    ));
    let list = stdout_of(rotor(&server, &["replicate", "list"]));
    assert!(list.contains("db-url") && list.contains("user"), "{list}");
    let shown: Value = serde_json::from_str(&stdout_of(rotor(
        &server,
        &["replicate", "show", "db-url", "--output", "json"],
    )))
    .unwrap();
    assert_eq!(
        shown["sources"],
        serde_json::json!(["/dba/db/user", "/dba/db/password"])
    );
    let cycle = rotor(
        &server,
        &[
            "replicate",
            "add",
            "back",
            "--from",
            "/app/svc/user",
            "--to",
            "/dba/db/user",
        ],
    );
    assert!(!cycle.status.success());
    assert!(
        String::from_utf8_lossy(&cycle.stderr).contains("cycle"),
        "{cycle:?}"
    );
    let refused = rotor(&server, &["secret", "put", "/app/svc/user", "--value", "x"]);
    assert!(!refused.status.success(), "a replica is read-only");
    assert!(stdout_of(rotor(&server, &["replicate", "sync"])).contains("in step"));
    stdout_of(rotor(&server, &["replicate", "remove", "user"]));
    stdout_of(rotor(
        &server,
        &["secret", "put", "/app/svc/user", "--value", "x"],
    ));
}
