//! Change events through the real binary: `rotor watch` sees a change within a
//! second, filtered by prefix, and does not hold up a shutdown; the SSE stream
//! resumes from `Last-Event-ID` and shows only what the token may describe; a webhook
//! subscription made with `rotor webhook add` gets signed events and logs its
//! deliveries; a server killed with `kill -9` while a webhook's target is down
//! delivers the whole backlog once both are back.

use crate::harness::{self, client, dev, runtime, text};
use rotor_api::sys::PrincipalKind;
use rotor_client::{HookTarget, NewSubscription};
use rotor_testkit::WebhookReceiver;
use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn rotor(server: &harness::Server, args: &[&str]) -> Output {
    Command::new(harness::bin())
        .args(args)
        .env("ROTOR_ADDR", &server.url)
        .env("ROTOR_TOKEN", harness::TOKEN)
        .output()
        .expect("rotor runs")
}

/// Runs a command with `--output json` (first: `--command` takes every argument
/// after it) and parses what it prints.
fn json_of(server: &harness::Server, args: &[&str]) -> Value {
    let args = [&["--output", "json"], args].concat();
    let out = rotor(server, &args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the command prints JSON")
}

/// A `rotor watch` process and the lines it prints.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `rotor watch ARGS --output json` and waits until it is watching.
fn watcher(server: &harness::Server, args: &[&str]) -> Watcher {
    let mut child = Command::new(harness::bin())
        .arg("watch")
        .args(args)
        .args(["--output", "json"])
        .env("ROTOR_ADDR", &server.url)
        .env("ROTOR_TOKEN", harness::TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("rotor watch runs");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (ready_tx, ready) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = ready_tx.send(line);
        }
    });
    let first = ready
        .recv_timeout(Duration::from_secs(10))
        .expect("rotor watch says it is watching");
    assert!(first.starts_with("Watching"), "{first}");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Watcher { child, lines }
}

impl Watcher {
    fn next(&self, within: Duration) -> Value {
        let line = self
            .lines
            .recv_timeout(within)
            .expect("rotor watch prints the event in time");
        serde_json::from_str(&line).expect("one JSON event per line")
    }
}

#[test]
fn rotor_watch_prints_a_change_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let c = client(&server);
    let rt = runtime();
    rt.block_on(c.create("/app/mp/db", Some(&text("blue")), None, &[], None))
        .unwrap();
    let w = watcher(&server, &["/app/mp/"]);

    rt.block_on(c.create("/dba/mongo/user", Some(&text("u")), None, &[], None))
        .unwrap();
    let put = Instant::now();
    rt.block_on(c.put("/app/mp/db", &text("green"), Some("v2"), &[]))
        .unwrap();
    let event = w.next(Duration::from_secs(1));
    assert!(
        put.elapsed() < Duration::from_secs(1),
        "seen after {:?}",
        put.elapsed()
    );
    assert_eq!(event["kind"], "version.put", "{event}");
    assert_eq!(
        event["secret"], "/app/mp/db",
        "the /dba/ change is not shown"
    );
    assert_eq!(event["detail"]["version"], "v2");
    assert!(!event.to_string().contains("green"), "no values: {event}");

    // Resuming from a sequence number replays what came after it, over SSE or as a
    // long poll.
    let seq = event["seq"].as_i64().unwrap();
    let replay = watcher(&server, &["/app/", "--after", &(seq - 1).to_string()]);
    assert_eq!(replay.next(Duration::from_secs(5))["seq"], seq);
    let polled = rt.block_on(c.events("/app/", Some(0), 0)).unwrap();
    let seqs: Vec<i64> = polled.events.iter().map(|e| e.seq).collect();
    assert!(seqs.contains(&seq), "{polled:?}");
    assert!(
        polled
            .events
            .iter()
            .all(|e| e.secret.as_deref() == Some("/app/mp/db")),
        "{polled:?}"
    );

    // Open watches do not hold up a graceful shutdown.
    let mut server = server;
    let stopping = Instant::now();
    assert!(harness::terminate(&mut server).success());
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "took {:?}",
        stopping.elapsed()
    );
}

/// The events a receiver accepted, as JSON, and their sequence numbers.
fn seqs(rx: &WebhookReceiver) -> Vec<i64> {
    rx.accepted_json()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect()
}

fn header<'a>(headers: &'a str, name: &str) -> &'a str {
    headers
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::trim)
        .unwrap_or("")
}

fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_webhook_added_with_the_cli_gets_signed_events_and_logs_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let c = client(&server);
    let rt = runtime();
    let rx = WebhookReceiver::start().unwrap();
    let url = format!("{}/hook", rx.url());

    let added = json_of(
        &server,
        &[
            "webhook",
            "add",
            "deploy",
            "--prefix",
            "/app/",
            "--kind",
            "version.put",
            "--url",
            &url,
        ],
    );
    let key = added["signing_key"]
        .as_str()
        .expect("the key, once")
        .to_string();
    assert_eq!(added["type"], "webhook");
    let hooks_dir = dir.path().join("hooks");
    std::fs::create_dir(&hooks_dir).unwrap();
    let script = format!("cat > {}/$ROTOR_EVENT_SEQ.json", hooks_dir.display());
    let exec = json_of(
        &server,
        &[
            "webhook",
            "add",
            "redeploy",
            "--prefix",
            "/app/",
            "--command",
            "sh",
            "-c",
            &script,
        ],
    );
    assert!(exec["signing_key"].is_null(), "{exec}");

    rt.block_on(c.create("/app/a", Some(&text("one")), None, &[], None))
        .unwrap();
    rt.block_on(c.create("/other/b", Some(&text("two")), None, &[], None))
        .unwrap();
    until("the webhook call", Duration::from_secs(10), || {
        !rx.accepted_json().is_empty()
    });
    let first = rx.requests()[0].clone();
    let (headers, body) = (first.headers, first.body);
    let mut signed = header(&headers, "x-rotor-timestamp").as_bytes().to_vec();
    signed.push(b'.');
    signed.extend_from_slice(&body);
    let mac: String = rotor_crypto::hmac_sha256(key.as_bytes(), &signed)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        header(&headers, "x-rotor-signature"),
        format!("sha256={mac}")
    );
    // The shipped verifier accepts the request as sent, and nothing else.
    let verify = |body: &[u8]| {
        let body_file = dir.path().join("body.json");
        std::fs::write(&body_file, body).unwrap();
        std::process::Command::new(harness::bin())
            .args([
                "webhook",
                "verify",
                "--key-env",
                "HOOK_KEY",
                "--timestamp",
                header(&headers, "x-rotor-timestamp"),
                "--signature",
                header(&headers, "x-rotor-signature"),
            ])
            .arg(&body_file)
            .env("HOOK_KEY", &key)
            .output()
            .unwrap()
    };
    let checked = verify(&body);
    assert!(checked.status.success(), "{checked:?}");
    let mut forged = body.clone();
    forged.extend_from_slice(b" ");
    let checked = verify(&forged);
    assert_eq!(checked.status.code(), Some(1), "{checked:?}");
    assert!(
        String::from_utf8_lossy(&checked.stderr).contains("does not match"),
        "{checked:?}"
    );
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (event["kind"].as_str(), event["secret"].as_str()),
        (Some("version.put"), Some("/app/a"))
    );
    let seq = event["seq"].as_i64().unwrap();
    until("the redeploy hook", Duration::from_secs(10), || {
        hooks_dir.join(format!("{seq}.json")).exists()
    });

    let log = json_of(&server, &["webhook", "deliveries", "deploy"]);
    let deliveries = log["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{log}");
    assert_eq!(deliveries[0]["status"], "delivered");
    assert_eq!(deliveries[0]["seq"], seq);
    let dead = json_of(&server, &["webhook", "deliveries", "deploy", "--dead"]);
    assert!(dead["deliveries"].as_array().unwrap().is_empty());
    let shown = json_of(&server, &["webhook", "show", "deploy"]);
    assert_eq!(shown["cursor"], seq);
    assert!(shown.get("signing_key").is_none());
    let listed = json_of(&server, &["webhook", "list"]);
    assert_eq!(listed["subscriptions"].as_array().unwrap().len(), 2);

    let out = rotor(&server, &["webhook", "remove", "deploy"]);
    assert!(out.status.success());
    let out = rotor(&server, &["webhook", "show", "deploy"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No subscription named deploy"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_server_killed_while_the_target_is_down_delivers_the_backlog_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rt = runtime();
    let launch = |dir: &std::path::Path| {
        let mut envs = harness::root_env();
        envs.push(("ROTOR_WEBHOOK_BACKOFF_MS", "50".into()));
        envs.push(("ROTOR_WEBHOOK_MAX_ATTEMPTS", "1000".into()));
        harness::start(harness::Launch {
            args: vec![
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--data-dir".into(),
                data.display().to_string(),
            ],
            envs,
            log_dir: dir,
        })
    };
    // A port with nothing listening: the target is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = launch(dir.path());
    let c = client(&server);
    rt.block_on(c.create_subscription(&NewSubscription {
        name: "backlog".into(),
        prefix: "/app/".into(),
        kinds: vec![],
        target: HookTarget::Url(format!("http://127.0.0.1:{port}/hook")),
        timeout_ms: None,
        from_seq: None,
    }))
    .unwrap();
    rt.block_on(c.create("/app/x", Some(&text("v0")), None, &[], None))
        .unwrap();
    for i in 1..=5 {
        rt.block_on(c.put("/app/x", &text(&format!("v{i}")), None, &[]))
            .unwrap();
    }
    until("a failed delivery", Duration::from_secs(10), || {
        rt.block_on(c.deliveries("backlog", 10, false))
            .unwrap()
            .deliveries
            .iter()
            .any(|d| d.status == "failed")
    });
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // The target comes back; so does the server, over the same data.
    let rx = WebhookReceiver::on(
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("the target's port is free again"),
    )
    .unwrap();
    let server = launch(dir.path());
    let c = client(&server);
    let expected: Vec<i64> = rt
        .block_on(c.events("/app/", Some(0), 0))
        .unwrap()
        .events
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(expected.len(), 7, "created, its version, five puts");
    let last = *expected.last().unwrap();
    until("the backlog", Duration::from_secs(20), || {
        seqs(&rx).contains(&last)
    });
    assert_eq!(seqs(&rx), expected, "every event, once each, in order");
    // The server logs a delivery once the target has answered: wait for the last.
    until("the last delivery logged", Duration::from_secs(20), || {
        rt.block_on(c.deliveries("backlog", 100, false))
            .unwrap()
            .deliveries
            .iter()
            .any(|d| d.status == "delivered" && d.seq == last)
    });
    let log = rt.block_on(c.deliveries("backlog", 100, false)).unwrap();
    let delivered: Vec<i64> = log
        .deliveries
        .iter()
        .filter(|d| d.status == "delivered")
        .map(|d| d.seq)
        .rev()
        .collect();
    assert_eq!(delivered, expected, "{log:?}");
    assert_eq!(rt.block_on(c.subscription("backlog")).unwrap().cursor, last);
}

/// Reads `GET /v1/watch` with `token` until `done` says the text so far is enough.
async fn read_stream(
    url: &str,
    token: &str,
    headers: &[(&str, &str)],
    done: impl Fn(&str) -> bool,
) -> (reqwest::StatusCode, String) {
    let mut req = reqwest::Client::new().get(url).bearer_auth(token);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.send().await.unwrap();
    let status = resp.status();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&text) {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    (status, text)
}

#[test]
fn the_sse_stream_resumes_from_last_event_id_and_shows_only_what_the_token_may_describe() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let c = client(&server);
    let rt = runtime();
    rt.block_on(async {
        c.create_principal("mp", PrincipalKind::Service)
            .await
            .unwrap();
        c.put_policy(
            "mp",
            &harness::statements(
                r#"[{"effect": "allow", "capabilities": ["describe", "read"],
                     "paths": ["/app/message-processor/**"]}]"#,
            ),
        )
        .await
        .unwrap();
        c.attach_policy("mp", "mp").await.unwrap();
    });
    let token = rt
        .block_on(c.create_token("mp", None))
        .unwrap()
        .token
        .expose()
        .to_string();
    let start = rt.block_on(c.events("", None, 0)).unwrap().last_seq;
    rt.block_on(async {
        c.create("/dba/mongo/password", Some(&text("pw")), None, &[], None)
            .await
            .unwrap();
        c.create(
            "/app/message-processor/mongo",
            Some(&text("x")),
            None,
            &[],
            None,
        )
        .await
        .unwrap();
    });
    let url = format!("{}/v1/watch?prefix=/app/", server.url);
    let (status, text) = rt.block_on(read_stream(
        &url,
        &token,
        &[("last-event-id", &start.to_string())],
        |t| t.matches("\n\n").count() >= 3,
    ));
    assert_eq!(status, 200);
    let messages: Vec<&str> = text.split("\n\n").filter(|m| !m.is_empty()).collect();
    assert_eq!(messages[0], format!(": watching after {start}"));
    let field = |name: &str| {
        messages[1]
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    assert_eq!(field("event"), "secret.created", "{text}");
    let data: Value = serde_json::from_str(field("data")).unwrap();
    assert_eq!(data["secret"], "/app/message-processor/mongo");
    assert_eq!(field("id"), data["seq"].to_string());
    assert!(!text.contains("/dba/"), "{text}");

    let (status, text) = rt.block_on(read_stream(
        &url,
        &token,
        &[("last-event-id", "yesterday")],
        |_| true,
    ));
    assert_eq!(status, 400, "{text}");
}
