//! `rotor agent`, `rotor run` and `rotor consumers` through the real binary against a
//! real server: a change reaches a rendered file and a restarted child within two
//! seconds; `--once` renders and exits 0, or non-zero on an unknown secret; the
//! server stopped and restarted while the agent keeps its files and then picks up a
//! change made after the restart; `rotor consumers` lists every consumer's version
//! and flags a stale one.

use crate::harness::{self, Server, client, dev, runtime, text};
use rotor_api::sys::PrincipalKind;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A `rotor agent` or `rotor run` process; killed when dropped.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Drop for Process {
    /// SIGTERM first, which `rotor run` passes to its command (SIGKILL would leave the
    /// command running), then SIGKILL if it has not exited within five seconds.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("exited ({status}); log:\n{}", self.log());
        }
    }
}

/// Starts `rotor ARGS` against `url`, its stderr in DIR/NAME.log.
fn spawn(url: &str, dir: &Path, name: &str, args: &[&str]) -> Process {
    let log = dir.join(format!("{name}.log"));
    let child = Command::new(harness::bin())
        .args(args)
        .env("ROTOR_ADDR", url)
        .env("ROTOR_TOKEN", harness::TOKEN)
        .env("ROTOR_LOG", "debug")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("rotor starts");
    Process { child, log }
}

fn rotor(url: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(harness::bin())
        .args(args)
        .env("ROTOR_ADDR", url)
        .env("ROTOR_TOKEN", harness::TOKEN)
        .current_dir(dir)
        .output()
        .expect("rotor runs")
}

/// Waits until `path` holds `want`; returns how long that took.
fn until_file(path: &Path, want: &str, within: Duration, process: &mut Process) -> Duration {
    let start = Instant::now();
    loop {
        if std::fs::read_to_string(path).is_ok_and(|s| s == want) {
            return start.elapsed();
        }
        process.assert_running();
        assert!(
            start.elapsed() < within,
            "{} did not become {want:?} within {within:?} (it is {:?}); log:\n{}",
            path.display(),
            std::fs::read_to_string(path).ok(),
            process.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

const DB: &str = "/app/agent/db";
const USER_REF: &str = "{vault://rotor/%2Fapp%2Fagent%2Fdb/username}";
const PASS_REF: &str = "{vault://rotor/%2Fapp%2Fagent%2Fdb/password}";

fn db_value(password: &str) -> rotor_client::NewValue {
    text(&format!(r#"{{"username":"app","password":"{password}"}}"#))
}

fn rendered(password: &str) -> String {
    format!("user=app\npass={password}\n")
}

/// An agent configuration with one template of the db secret, whose command counts
/// the reloads in DIR/reloads.
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let config = dir.join("agent.toml");
    let toml = format!(
        r#"render_interval_ms = 200
{extra}
[[template]]
contents = """
user={{{{ secret("{USER_REF}") }}}}
pass={{{{ secret("{PASS_REF}") }}}}
"""
destination = "out/db.conf"
mode = "0600"
command = ["sh", "-c", "echo reload >> reloads"]
"#
    );
    std::fs::write(&config, toml).unwrap();
    config
}

fn reloads(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("reloads"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// Waits until the template's command has run `n` times (it runs just after the file
/// is written).
fn until_reloads(dir: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloads(dir) < n {
        assert!(
            Instant::now() < deadline,
            "the command ran {} times, not {n}",
            reloads(dir)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(reloads(dir), n);
}

#[test]
fn a_change_reaches_a_rendered_file_and_a_restarted_child_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let c = client(&server);
    let rt = runtime();
    rt.block_on(c.create(DB, Some(&db_value("one")), None, &[], Some("v1")))
        .unwrap();
    write_config(dir.path(), "");
    let out = dir.path().join("out/db.conf");
    let mut agent = spawn(
        &server.url,
        dir.path(),
        "agent",
        &["agent", "--config", "agent.toml"],
    );
    let child_out = dir.path().join("child.out");
    let mut run = spawn(
        &server.url,
        dir.path(),
        "run",
        &[
            "run",
            "--env",
            &format!("DB_PASSWORD={PASS_REF}"),
            "--",
            "sh",
            "-c",
            r#"printf %s "$DB_PASSWORD" > child.tmp && mv child.tmp child.out && exec sleep 600"#,
        ],
    );
    until_file(&out, &rendered("one"), Duration::from_secs(10), &mut agent);
    until_file(&child_out, "one", Duration::from_secs(10), &mut run);
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
    until_reloads(dir.path(), 1);

    for (i, password) in ["two", "three", "four"].iter().enumerate() {
        let put = Instant::now();
        rt.block_on(c.put(DB, &db_value(password), Some(&format!("v{}", i + 2)), &[]))
            .unwrap();
        until_file(
            &out,
            &rendered(password),
            Duration::from_secs(2),
            &mut agent,
        );
        let file = put.elapsed();
        until_file(&child_out, password, Duration::from_secs(2), &mut run);
        let child = put.elapsed();
        println!("put {password}: file after {file:?}, restarted child after {child:?}");
    }
    // Renders that change nothing (every 200 ms) rewrite nothing and run nothing.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(reloads(dir.path()), 4, "one reload per change");
    assert!(
        agent.log().contains("rendered"),
        "the agent logs its renders"
    );
    assert!(
        !agent.log().contains("four") && !run.log().contains("four"),
        "no values in the logs"
    );
    assert!(
        std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")),
        "no temporary files left"
    );
}

#[test]
fn rotor_run_passes_exit_codes_and_signals_through() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let c = client(&server);
    let rt = runtime();
    rt.block_on(c.create(DB, Some(&db_value("one")), None, &[], Some("v1")))
        .unwrap();
    let env = format!("P={PASS_REF}");
    let out = rotor(
        &server.url,
        dir.path(),
        &[
            "run",
            "--env",
            &env,
            "--",
            "sh",
            "-c",
            r#"test "$P" = one && exit 7"#,
        ],
    );
    assert_eq!(out.status.code(), Some(7), "{out:?}");

    // An unknown secret: the command never starts.
    let out = rotor(
        &server.url,
        dir.path(),
        &[
            "run",
            "--env",
            "P={vault://rotor/%2Fno%2Fsuch/password}",
            "--",
            "touch",
            "started",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.path().join("started").exists());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/no/such"), "{stderr}");

    // --signal HUP: the child is told, not restarted; SIGTERM is passed on and its
    // exit code comes back.
    let script = r#"trap 'echo hup >> signals' HUP; trap 'exit 42' TERM; echo $$ > child.pid; while :; do sleep 0.05; done"#;
    let mut run = spawn(
        &server.url,
        dir.path(),
        "run-signal",
        &[
            "run", "--env", &env, "--signal", "hup", "--", "sh", "-c", script,
        ],
    );
    let pid_file = dir.path().join("child.pid");
    let started = Instant::now();
    while !std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n')) {
        run.assert_running();
        assert!(started.elapsed() < Duration::from_secs(10), "{}", run.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    rt.block_on(c.put(DB, &db_value("two"), Some("v2"), &[]))
        .unwrap();
    until_file(
        &dir.path().join("signals"),
        "hup\n",
        Duration::from_secs(2),
        &mut run,
    );
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        pid,
        "the same child"
    );
    let ok = Command::new("kill")
        .args(["-TERM", &run.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = run.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "rotor run did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(42), "{}", run.log());
}

#[test]
fn agent_once_renders_and_exits_0_and_fails_on_an_unknown_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let c = client(&server);
    let rt = runtime();
    rt.block_on(c.create(DB, Some(&db_value("one")), None, &[], Some("v1")))
        .unwrap();
    write_config(dir.path(), "");
    let out = rotor(
        &server.url,
        dir.path(),
        &["agent", "--config", "agent.toml", "--once"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/db.conf")).unwrap(),
        rendered("one")
    );
    assert_eq!(reloads(dir.path()), 1);
    // Again: nothing changed, so nothing is rewritten or run.
    assert!(
        rotor(
            &server.url,
            dir.path(),
            &["agent", "--config", "agent.toml", "--once"]
        )
        .status
        .success()
    );
    assert_eq!(reloads(dir.path()), 1);

    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        r#"[[template]]
contents = "x={{ secret('{vault://rotor/%2Fno%2Fsuch/password}') }}"
destination = "out/bad.conf"
"#,
    )
    .unwrap();
    let out = rotor(
        &server.url,
        dir.path(),
        &["agent", "--config", "bad.toml", "--once"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/no/such") && stderr.contains("ResourceNotFoundException"),
        "{stderr}"
    );
    assert!(!dir.path().join("out/bad.conf").exists());

    // A template that does not parse fails at start, naming the template.
    std::fs::write(
        &config,
        "[[template]]\ncontents = \"{{ secret( }}\"\ndestination = \"x\"\n",
    )
    .unwrap();
    let out = rotor(
        &server.url,
        dir.path(),
        &["agent", "--config", "bad.toml", "--once"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("template 1"),
        "{out:?}"
    );
}

/// A persistent server over DIR/data listening on `listen`.
fn persistent(dir: &Path, listen: &str) -> Server {
    harness::start(harness::Launch {
        args: vec![
            "--listen".into(),
            listen.into(),
            "--data-dir".into(),
            dir.join("data").display().to_string(),
        ],
        envs: harness::root_env(),
        log_dir: dir,
    })
}

#[test]
fn the_agent_keeps_its_files_while_the_server_is_down_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = persistent(dir.path(), "127.0.0.1:0");
    let listen = server.url.trim_start_matches("http://").to_string();
    let c = client(&server);
    let rt = runtime();
    rt.block_on(c.create(DB, Some(&db_value("one")), None, &[], Some("v1")))
        .unwrap();
    // Values expire after a second; past that the last one is served for an hour
    // while the server cannot be reached.
    write_config(
        dir.path(),
        "[vault.rotor]\ntype = \"rotor\"\nttl = 1\nneg_ttl = 0.2\nresurrect_ttl = 3600\n",
    );
    let out = dir.path().join("out/db.conf");
    let mut agent = spawn(
        &server.url,
        dir.path(),
        "agent",
        &[
            "agent",
            "--config",
            "agent.toml",
            "--consumer-id",
            "agent-1",
        ],
    );
    until_file(&out, &rendered("one"), Duration::from_secs(10), &mut agent);

    assert!(harness::terminate(&mut server).success());
    // Three ttls with the server gone: refreshes fail, the file stays.
    std::thread::sleep(Duration::from_secs(3));
    agent.assert_running();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), rendered("one"));
    assert_eq!(reloads(dir.path()), 1);
    assert!(
        agent.log().contains("watch stream"),
        "the agent noticed: {}",
        agent.log()
    );

    let server = persistent(dir.path(), &listen);
    assert_eq!(server.url, format!("http://{listen}"), "the same address");
    let c = client(&server);
    let put = Instant::now();
    rt.block_on(c.put(DB, &db_value("after-restart"), Some("v2"), &[]))
        .unwrap();
    until_file(
        &out,
        &rendered("after-restart"),
        Duration::from_secs(10),
        &mut agent,
    );
    println!("change after the restart rendered in {:?}", put.elapsed());
    until_reloads(dir.path(), 2);
    // And it reports the new version.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let doc = rt.block_on(c.consumers(DB)).unwrap();
        let on_v2 = doc
            .versions
            .iter()
            .filter(|v| v.version_id == "v2")
            .flat_map(|v| &v.live)
            .any(|c| c.consumer == "agent-1");
        if on_v2 {
            break;
        }
        assert!(Instant::now() < deadline, "{doc:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn consumers_json(url: &str, dir: &Path) -> Value {
    let out = rotor(url, dir, &["--output", "json", "consumers", DB]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Where consumer `id` is listed: its version's entry, itself, and whether it is live.
fn find_consumer<'a>(doc: &'a Value, id: &str) -> Option<(&'a Value, &'a Value, bool)> {
    for v in doc["versions"].as_array().unwrap() {
        for (state, live) in [("live", true), ("gone", false)] {
            if let Some(c) = v[state]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["consumer"] == id)
            {
                return Some((v, c, live));
            }
        }
    }
    None
}

fn consumer<'a>(doc: &'a Value, id: &str) -> (&'a Value, &'a Value, bool) {
    find_consumer(doc, id).unwrap_or_else(|| panic!("{id} is not listed: {doc}"))
}

#[test]
fn rotor_consumers_lists_each_version_with_its_live_and_gone_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let c = client(&server);
    let rt = runtime();
    rt.block_on(c.create(DB, Some(&db_value("one")), None, &[], Some("v1")))
        .unwrap();
    // Short leases, so that a consumer killed without leaving is gone within the test.
    write_config(dir.path(), "heartbeat_ms = 300\nlease_secs = 2");
    // An init container rendered v1 and exited: it will not move on.
    let once = rotor(
        &server.url,
        dir.path(),
        &[
            "agent",
            "--config",
            "agent.toml",
            "--once",
            "--consumer-id",
            "init-1",
        ],
    );
    assert!(once.status.success(), "{once:?}");
    let agent = spawn(
        &server.url,
        dir.path(),
        "agent",
        &[
            "agent",
            "--config",
            "agent.toml",
            "--consumer-id",
            "agent-1",
        ],
    );
    let run = spawn(
        &server.url,
        dir.path(),
        "run",
        &[
            "run",
            "--consumer-id",
            "run-1",
            "--env",
            &format!("P={PASS_REF}"),
            "--",
            "sleep",
            "600",
        ],
    );
    let settled = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let doc = consumers_json(&server.url, dir.path());
            let at = |id: &str| {
                find_consumer(&doc, id).is_some_and(|(v, _, live)| live && v["version_id"] == want)
            };
            if at("agent-1") && at("run-1") {
                return doc;
            }
            assert!(
                Instant::now() < deadline,
                "not all at {want}: {doc}\nagent:\n{}\nrun:\n{}",
                agent.log(),
                run.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let doc = settled("v1");
    assert_eq!(doc["current_version"], "v1");

    rt.block_on(c.put(DB, &db_value("two"), Some("v2"), &[]))
        .unwrap();
    let doc = settled("v2");
    assert_eq!(doc["current_version"], "v2");
    for id in ["agent-1", "run-1"] {
        let (v, c, _) = consumer(&doc, id);
        assert_eq!(v["stages"], serde_json::json!(["AWSCURRENT"]), "{doc}");
        assert_eq!(c["host"], "127.0.0.1");
        assert_eq!(c["kind"], "registered");
        assert_eq!(c["principal"], "root");
    }
    // The init container stopped heartbeating when it exited: gone once its lease
    // (2 s) ran out, still listed on the version it used.
    let deadline = Instant::now() + Duration::from_secs(10);
    let doc = loop {
        let doc = consumers_json(&server.url, dir.path());
        if !consumer(&doc, "init-1").2 {
            break doc;
        }
        assert!(Instant::now() < deadline, "init-1 never went: {doc}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (v, _, _) = consumer(&doc, "init-1");
    assert_eq!(v["version_id"], "v1");
    assert_eq!(v["stages"], serde_json::json!(["AWSPREVIOUS"]));
    // The agents' own reads are theirs, not an anonymous reader's.
    let readers: Vec<_> = doc["versions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|v| {
            v["live"]
                .as_array()
                .unwrap()
                .iter()
                .chain(v["gone"].as_array().unwrap())
        })
        .filter(|c| c["kind"] == "reader")
        .collect();
    assert!(readers.is_empty(), "{doc}");

    let out = rotor(&server.url, dir.path(), &["consumers", DB]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    let at = |text: &str| {
        table
            .find(text)
            .unwrap_or_else(|| panic!("{text:?} not in\n{table}"))
    };
    assert!(
        table.starts_with(&format!("Consumers of {DB} (AWSCURRENT is v2)")),
        "{table}"
    );
    let line = |id: &str| {
        table
            .lines()
            .find(|l| l.trim_start().starts_with(id))
            .unwrap_or_else(|| panic!("{id} not in\n{table}"))
            .to_string()
    };
    assert!(at("Version v1 (AWSPREVIOUS)") < at("init-1"), "{table}");
    assert!(at("Version v2 (AWSCURRENT)") < at("agent-1"), "{table}");
    assert!(line("init-1").contains(" gone "), "{table}");
    assert!(line("agent-1").contains(" live "), "{table}");
    assert!(line("run-1").contains(" live "), "{table}");

    // A clean exit leaves at once; a process killed without leaving counts until its
    // lease runs out, and then never again.
    let mut run = run;
    Command::new("kill")
        .args(["-TERM", &run.child.id().to_string()])
        .status()
        .unwrap();
    run.child.wait().unwrap();
    let doc = consumers_json(&server.url, dir.path());
    assert!(!consumer(&doc, "run-1").2, "left at exit: {doc}");
    let mut agent = agent;
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    let killed = Instant::now();
    let doc = consumers_json(&server.url, dir.path());
    assert!(
        consumer(&doc, "agent-1").2,
        "live until its lease ends: {doc}"
    );
    loop {
        let doc = consumers_json(&server.url, dir.path());
        if !consumer(&doc, "agent-1").2 {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(5), "{doc}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A report names an existing version; it needs read on the secret, and reading
    // the reports needs describe.
    let err = rt
        .block_on(c.register_consumer("me", DB, "no-such-version", None))
        .unwrap_err();
    assert!(err.to_string().contains("no version"), "{err}");
    rt.block_on(async {
        for (name, caps) in [("describer", r#"["describe"]"#), ("reader", r#"["read"]"#)] {
            let doc =
                format!(r#"[{{"effect": "allow", "capabilities": {caps}, "paths": ["/app/**"]}}]"#);
            c.put_policy(name, &harness::statements(&doc))
                .await
                .unwrap();
            c.create_principal(name, PrincipalKind::Service)
                .await
                .unwrap();
            c.attach_policy(name, name).await.unwrap();
        }
        let mut clients = Vec::new();
        for name in ["describer", "reader"] {
            let t = c.create_token(name, None).await.unwrap();
            clients.push(rotor_client::Client::new(&server.url, t.token.expose()).unwrap());
        }
        let (describer, reader) = (&clients[0], &clients[1]);
        let denied = describer
            .register_consumer("d", DB, "v2", None)
            .await
            .unwrap_err();
        assert!(
            denied.to_string().contains("AccessDeniedException"),
            "{denied}"
        );
        assert_eq!(
            describer.consumers(DB).await.unwrap().current_version,
            Some("v2".to_string())
        );
        reader.register_consumer("r", DB, "v2", None).await.unwrap();
        // A consumer id is its registrant's: another principal can neither move it to
        // another version (which would let a rotation go on without it) nor end it.
        let hijack = reader
            .register_consumer("agent-1", DB, "v2", None)
            .await
            .unwrap_err();
        assert!(
            hijack
                .to_string()
                .contains("registered by another principal"),
            "{hijack}"
        );
        let denied = reader.consumers(DB).await.unwrap_err();
        assert!(
            denied.to_string().contains("AccessDeniedException"),
            "{denied}"
        );
    });
}
