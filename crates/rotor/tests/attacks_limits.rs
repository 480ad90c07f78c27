//! Issue 11, holes 8 and 10: what a client, a webhook receiver or a reader of the
//! machine could take that the server never meant to give. Like `attacks`, each test
//! is written to fail on the code before its fix (run it against another build with
//! `ROTOR_TEST_BIN`).

use crate::harness::{self, Launch, Server};
use rotor_testkit::{Answer, WebhookReceiver};
use serde_json::json;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

fn dev_with(dir: &Path, extra: &[&str]) -> Server {
    let mut args: Vec<String> = vec!["--dev".into(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(extra.iter().map(|a| a.to_string()));
    harness::start(Launch {
        args,
        envs: vec![
            ("ROTOR_DEV_ROOT_TOKEN", harness::TOKEN.into()),
            ("ROTOR_DEV_ACCESS_KEY_ID", harness::AKID.into()),
            ("ROTOR_DEV_SECRET_ACCESS_KEY", harness::SECRET_KEY.into()),
        ],
        log_dir: dir,
    })
}

fn addr(server: &Server) -> String {
    server
        .url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .to_string()
}

/// Whether the server closes `stream` within `within` (reading and discarding what it
/// sends meanwhile).
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Sends a complete GET and returns the status line of the answer.
fn get(stream: &mut TcpStream, path: &str) -> String {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: rotor\r\n\r\n").unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Hole 8: 300 half-sent requests stayed open indefinitely. Now headers must arrive
/// within the header-read timeout, an idle kept-alive connection closes after the
/// idle timeout, and a stream is never idle.
#[test]
fn slow_and_idle_connections_are_closed_but_streams_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev_with(
        dir.path(),
        &[
            "--header-read-timeout-secs",
            "1",
            "--idle-timeout-secs",
            "3",
        ],
    );
    let target = addr(&server);

    let mut half_sent = TcpStream::connect(&target).unwrap();
    half_sent
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: rotor\r\n")
        .unwrap();
    let mut silent = TcpStream::connect(&target).unwrap();
    assert!(
        closed_within(&mut half_sent, Duration::from_secs(5)),
        "a request whose headers never end holds its connection"
    );
    assert!(
        closed_within(&mut silent, Duration::from_secs(2)),
        "a connection that sends nothing is held"
    );

    // Kept alive past the header timeout, a connection still serves its next request.
    let mut kept = TcpStream::connect(&target).unwrap();
    assert!(get(&mut kept, "/healthz").starts_with("HTTP/1.1 200"));
    std::thread::sleep(Duration::from_millis(1800));
    assert!(get(&mut kept, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut kept, Duration::from_secs(6)),
        "an idle connection is held past the idle timeout"
    );

    // Once a kept-alive connection starts a request, its headers are timed again.
    let mut restarted = TcpStream::connect(&target).unwrap();
    assert!(get(&mut restarted, "/healthz").starts_with("HTTP/1.1 200"));
    std::thread::sleep(Duration::from_millis(500));
    restarted.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    assert!(
        closed_within(&mut restarted, Duration::from_secs(2)),
        "a request begun on a kept-alive connection waits out the idle timeout instead"
    );

    // A watch stream idle for longer than the idle timeout still delivers.
    let rt = harness::runtime();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let mut stream = http
            .get(format!("{}/v1/watch", server.url))
            .bearer_auth(harness::TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200);
        tokio::time::sleep(Duration::from_millis(4500)).await;
        let created = http
            .post(format!("{}/v1/secrets", server.url))
            .bearer_auth(harness::TOKEN)
            .json(&json!({"name": "/app/after-idle", "value": "v"}))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success());
        let mut seen = String::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !seen.contains("/app/after-idle") {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, stream.chunk()).await {
                Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                other => panic!("the watch stream ended or stalled: {other:?}; saw {seen:?}"),
            }
        }
    });
}

/// Hole 8: connections beyond the cap are closed at once and counted.
#[test]
fn connections_beyond_the_cap_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev_with(dir.path(), &["--max-connections", "4"]);
    let target = addr(&server);
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(&target).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(&target).unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(2)),
        "a fifth connection is held beyond a cap of four"
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let mut fresh = TcpStream::connect(&target).unwrap();
    write!(
        fresh,
        "GET /metrics HTTP/1.1\r\nHost: rotor\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    fresh
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = fresh.read_to_string(&mut text);
    let refused = text
        .lines()
        .find(|l| l.starts_with("rotor_connections_refused_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(refused.is_some_and(|n| n >= 1.0), "metrics: {text}");
}

/// Hole 8 on a TLS listener: a client that never finishes its handshake, or its
/// headers after one, is closed too.
#[test]
fn slow_clients_are_closed_on_tls_listeners_too() {
    let dir = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .current_dir(dir.path())
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{made:?}");
    let cert = dir.path().join("cert.pem").display().to_string();
    let key = dir.path().join("key.pem").display().to_string();
    let server = dev_with(
        dir.path(),
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--header-read-timeout-secs",
            "1",
        ],
    );
    let target = addr(&server);
    let mut silent = TcpStream::connect(&target).unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(4)),
        "a TLS connection that never says hello is held"
    );

    // Through a real TLS session: half a request, then nothing.
    let mut client = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &target])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_client runs");
    client
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: rotor\r\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut ended = false;
    while Instant::now() < deadline {
        if client.try_wait().unwrap().is_some() {
            ended = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = client.kill();
    let _ = client.wait();
    assert!(ended, "a half-sent request over TLS holds its connection");
}

/// Hole 10: the database, its WAL and the audit log were created 0644, readable by
/// every user of the machine.
#[test]
fn data_files_are_readable_by_the_servers_user_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = harness::persistent(&data, dir.path());
    let rt = harness::runtime();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/secrets", server.url))
            .bearer_auth(harness::TOKEN)
            .json(&json!({"name": "/app/file-modes", "value": "v"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    });
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    let mut files = Vec::new();
    let mut dirs = vec![data.clone()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for needed in ["rotor.db", "master.key"] {
        assert!(names.iter().any(|n| n == needed), "{names:?}");
    }
    assert!(
        files.iter().any(|f| f.starts_with(data.join("audit"))),
        "an audit log: {names:?}"
    );
    for file in &files {
        assert_eq!(
            mode(file) & 0o077,
            0,
            "{} is {:o}",
            file.display(),
            mode(file)
        );
    }
}

/// Hole 10: `rotor server --help` printed ROTOR_STORAGE, password included, and a
/// mistyped storage URL was echoed in the error.
#[test]
fn the_storage_password_shows_in_neither_help_nor_errors() {
    let dir = tempfile::tempdir().unwrap();
    let password = "hunter2-never-shown";
    let help = std::process::Command::new(harness::bin())
        .args(["server", "--help"])
        .env(
            "ROTOR_STORAGE",
            format!("postgres://rotor:{password}@127.0.0.1:1/rotor"),
        )
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--storage"), "{text}");
    assert!(!text.contains(password), "{text}");

    let data = dir.path().join("data").display().to_string();
    let failed = std::process::Command::new(harness::bin())
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir", &data])
        .env(
            "ROTOR_STORAGE",
            format!("mysql://rotor:{password}@127.0.0.1:1/rotor"),
        )
        .env("ROTOR_LOG", "trace")
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&failed.stdout),
        String::from_utf8_lossy(&failed.stderr)
    );
    assert!(all.contains("storage must be"), "{all}");
    assert!(!all.contains(password), "{all}");
}

/// Hole 10: the server followed a webhook's redirect, re-POSTing the signed body to
/// wherever the receiver pointed.
#[test]
fn a_webhook_redirect_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let server = harness::dev(dir.path());
    let elsewhere = WebhookReceiver::start().unwrap();
    let hook = WebhookReceiver::start().unwrap();
    hook.answer(Answer::Redirect(format!("{}/collect", elsewhere.url())));
    let rt = harness::runtime();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{}/v1/sys/subscriptions", server.url))
            .bearer_auth(harness::TOKEN)
            .json(&json!({"name": "hook", "url": format!("{}/in", hook.url())}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = http
            .post(format!("{}/v1/secrets", server.url))
            .bearer_auth(harness::TOKEN)
            .json(&json!({"name": "/app/redirected", "value": "v"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    });
    // Wait for the server's own verdict on the first delivery: a redirect it did not
    // follow is a failed attempt; one it followed would have reached `elsewhere` and
    // been logged as delivered.
    let verdict = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log: serde_json::Value = reqwest::Client::new()
                .get(format!(
                    "{}/v1/sys/subscriptions/hook/deliveries",
                    server.url
                ))
                .bearer_auth(harness::TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(first) = log["deliveries"].as_array().and_then(|d| d.last()) {
                break first.clone();
            }
            assert!(Instant::now() < deadline, "no delivery was attempted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert_eq!(verdict["status"], "failed", "{verdict}");
    assert!(!hook.requests().is_empty());
    assert!(
        elsewhere.requests().is_empty(),
        "the signed event went to the redirect's target: {:?}",
        elsewhere.requests()
    );
}

/// Hole 10: any URL was accepted. With `--webhook-allow`, subscriptions and webhook
/// rotators reach only the allowed prefixes.
#[test]
fn webhooks_reach_only_the_allowed_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev_with(
        dir.path(),
        &["--webhook-allow", "http://127.0.0.1:9/allowed/"],
    );
    let rt = harness::runtime();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let post = |path: &'static str, body: serde_json::Value| {
            let req = http
                .post(format!("{}{path}", server.url))
                .bearer_auth(harness::TOKEN)
                .json(&body);
            async move {
                let r = req.send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        for url in [
            "http://127.0.0.1:9/elsewhere",
            "http://127.0.0.1:10/allowed/x",
            "https://127.0.0.1:9/allowed/x",
            "http://user:pw@127.0.0.1:9/allowed/x",
        ] {
            let (status, body) =
                post("/v1/sys/subscriptions", json!({"name": "h", "url": url})).await;
            assert_eq!(status, 400, "{url}: {body}");
            let (status, body) = post(
                "/v1/sys/rotators",
                json!({"name": "r", "type": "webhook", "config": {"url": url}}),
            )
            .await;
            assert_eq!(status, 400, "{url}: {body}");
        }
        let (status, body) = post(
            "/v1/sys/subscriptions",
            json!({"name": "h", "url": "http://127.0.0.1:9/allowed/hook"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    });
}
