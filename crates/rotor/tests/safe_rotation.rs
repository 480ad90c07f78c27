//! Safe rotation, end to end, as seed 000 tells it with no person in it: a DBA's
//! credential under `/dba/...`, replicated into the application's namespace, a real
//! PostgreSQL standing in for the seed's Mongo, and `rotor run` consumers opening new
//! connections in a loop with the credential they were started with (two of them slow
//! to restart). Rotations use alternating users and retire the previous user once
//! the last consumer has moved on, never before. Also: a consumer killed without
//! leaving stops blocking after its lease; one that never adopts makes the rotation
//! fail with its id, and AWSCURRENT still logs in; a server killed while a rotation
//! waits resumes waiting, not from the start.

use crate::harness::{self, Server};
use crate::rotation_db::{db_value, pg_with_app, rotator};
use rotor_api::events::Event;
use serde_json::{Value, json};
use sqlx::Connection as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SOURCE: &str = "/dba/passpack/services/message-processor/mongo/credential";
const REPLICA: &str = "/app/message-processor/replicated/mongo/credential";
const MASTER: &str = "/dba/master/postgres";

fn enc(name: &str) -> String {
    name.replace('/', "%2F")
}

async fn native(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    // The test reads as a tool, not as an application: its reads must not hold
    // rotations back as an implicit consumer's would.
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(harness::TOKEN)
        .header("x-rotor-consumer", "the-test");
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn create(server: &Server, name: &str, value: String) {
    native(
        server,
        reqwest::Method::POST,
        "/v1/secrets",
        Some(json!({"name": name, "value": value})),
    )
    .await;
}

async fn current_value(server: &Server, name: &str) -> Value {
    let v = native(
        server,
        reqwest::Method::GET,
        &format!("/v1/secrets/{}", enc(name)),
        None,
    )
    .await;
    serde_json::from_str(v["value"].as_str().unwrap()).unwrap()
}

async fn rotation(server: &Server, name: &str) -> Value {
    native(
        server,
        reqwest::Method::GET,
        &format!("/v1/rotation/{}", enc(name)),
        None,
    )
    .await
}

/// Logs in as `v`'s user with `v`'s password.
async fn login(v: &Value) -> Result<(), sqlx::Error> {
    let options = sqlx::postgres::PgConnectOptions::new()
        .host(v["host"].as_str().unwrap())
        .port(v["port"].as_u64().unwrap() as u16)
        .username(v["username"].as_str().unwrap())
        .password(v["password"].as_str().unwrap())
        .database("postgres");
    let conn = sqlx::PgConnection::connect_with(&options).await?;
    conn.close().await
}

/// The DBA's layout: a master, the service's credential, a rule replicating it into
/// the application's namespace, an alternating-users rotator, and rotation with
/// retirement of the previous user.
async fn layout(server: &Server, pg: &rotor_testkit::PgServer, timeout_secs: i64) {
    let master = db_value(
        "postgres",
        pg.host(),
        pg.port(),
        pg.superuser(),
        pg.superuser_password(),
        None,
    );
    create(server, MASTER, master).await;
    create(
        server,
        SOURCE,
        db_value(
            "postgres",
            pg.host(),
            pg.port(),
            "app",
            "initial",
            Some(MASTER),
        ),
    )
    .await;
    native(
        server,
        reqwest::Method::POST,
        "/v1/replication",
        Some(json!({"name": "mp", "kind": "copy",
                    "source": "/dba/passpack/services/message-processor/",
                    "destination": "/app/message-processor/replicated/"})),
    )
    .await;
    rotator(
        server,
        "pg-alt",
        "postgres",
        json!({"strategy": "alternating-users"}),
    )
    .await;
    native(
        server,
        reqwest::Method::PUT,
        &format!("/v1/rotation/{}", enc(SOURCE)),
        Some(
            json!({"rotator": "pg-alt", "rules": {"AutomaticallyAfterDays": 30},
                    "adoption": {"retire_previous": true, "adoption_timeout_secs": timeout_secs}}),
        ),
    )
    .await;
}

/// A `rotor run` consumer of the replica whose command opens a new connection with
/// the credential it was started with, over and over, and counts failed logins.
struct Consumer {
    id: String,
    child: Child,
    dir: PathBuf,
}

impl Consumer {
    fn start(
        server: &Server,
        pg: &rotor_testkit::PgServer,
        dir: &Path,
        id: &str,
        slow: bool,
    ) -> Consumer {
        let dir = dir.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("agent.toml"),
            "render_interval_ms = 200\nheartbeat_ms = 500\nlease_secs = 3\n",
        )
        .unwrap();
        // On SIGTERM a slow consumer goes on with its old credential for 5 s more.
        let script = r#"
stop=""; trap 'stop=$(( $(date +%s) + DELAY ))' TERM
while :; do
  if PGPASSWORD="$P" PGCONNECT_TIMEOUT=5 "$PSQL" -h "$H" -p "$PORT" -U "$U" -d postgres -Atqc 'SELECT 1' >/dev/null 2>>errors; then
    echo "$U" >> ok
  else
    echo "$(date +%s.%N) $U" >> failed
  fi
  if [ -n "$stop" ] && [ "$(date +%s)" -ge "$stop" ]; then exit 0; fi
  sleep 0.2
done"#
            .replace("DELAY", if slow { "5" } else { "0" });
        let reference = |field: &str| format!("{{vault://rotor/{}/{field}}}", enc(REPLICA));
        let child = Command::new(harness::bin())
            .args([
                "run",
                "--config",
                "agent.toml",
                "--consumer-id",
                id,
                "--stop-timeout",
                "15",
            ])
            .arg("--env")
            .arg(format!("U={}", reference("username")))
            .arg("--env")
            .arg(format!("P={}", reference("password")))
            .args(["--", "sh", "-c", &script])
            .env("ROTOR_ADDR", &server.url)
            .env("ROTOR_TOKEN", harness::TOKEN)
            .env("PSQL", pg.bin_dir().join("psql"))
            .env("H", pg.host())
            .env("PORT", pg.port().to_string())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("run.log")).unwrap())
            .spawn()
            .unwrap();
        Consumer {
            id: id.to_string(),
            child,
            dir,
        }
    }

    fn count(&self, file: &str) -> usize {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .count()
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Live registered consumers of the source (through its replica), by id → version.
async fn live(server: &Server) -> Vec<(String, String)> {
    let doc = native(
        server,
        reqwest::Method::GET,
        &format!("/v1/consumers/{}", enc(SOURCE)),
        None,
    )
    .await;
    let mut out = Vec::new();
    for v in doc["versions"].as_array().unwrap() {
        for c in v["live"].as_array().unwrap() {
            if c["kind"] == "registered" {
                out.push((
                    c["consumer"].as_str().unwrap().to_string(),
                    v["version_id"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

async fn until_all_on(server: &Server, ids: &[&str], version: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now = live(server).await;
        if ids
            .iter()
            .all(|id| now.iter().any(|(c, v)| c == id && v == version))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not all of {ids:?} on {version}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the latest rotation of SOURCE is `token` and no longer running.
async fn finished(server: &Server, token: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let r = rotation(server, SOURCE).await;
        let latest = &r["latest"];
        if latest["version_id"] == token && latest["status"] != "running" {
            return latest.clone();
        }
        assert!(
            Instant::now() < deadline,
            "rotation {token} did not finish: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn events(server: &Server) -> Vec<Event> {
    let c = harness::client(server);
    let mut all = Vec::new();
    let mut after = Some(0);
    loop {
        let page = c.events("", after, 0).await.unwrap();
        if page.events.is_empty() {
            return all;
        }
        after = page.events.last().map(|e| e.seq);
        all.extend(page.events);
    }
}

#[test]
fn seed_000_rotates_twenty_times_with_zero_failed_logins_and_retires_each_previous_user() {
    let dir = tempfile::tempdir().unwrap();
    let server = harness::dev(dir.path());
    let rt = harness::runtime();
    let pg = rt.block_on(pg_with_app());
    rt.block_on(layout(&server, &pg, 60));
    let v0 = rt.block_on(native(
        &server,
        reqwest::Method::GET,
        &format!("/v1/secrets/{}", enc(SOURCE)),
        None,
    ))["version_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ids = ["mp-1", "mp-2", "mp-3", "mp-slow-1", "mp-slow-2"];
    let mut consumers: Vec<Consumer> = ids
        .iter()
        .map(|id| Consumer::start(&server, &pg, dir.path(), id, id.contains("slow")))
        .collect();
    rt.block_on(until_all_on(&server, &ids, &v0, Duration::from_secs(30)));

    let rotations = std::env::var("ROTOR_SEED000_ROTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let mut delays_ms = Vec::new();
    let started = Instant::now();
    for i in 0..rotations {
        let previous = rt.block_on(current_value(&server, SOURCE));
        let token = rt.block_on(native(
            &server,
            reqwest::Method::POST,
            &format!("/v1/rotate/{}", enc(SOURCE)),
            None,
        ))["version_id"]
            .as_str()
            .unwrap()
            .to_string();
        let latest = rt.block_on(finished(&server, &token, Duration::from_secs(60)));
        assert_eq!(latest["status"], "succeeded", "rotation {i}: {latest}");
        let retire = latest["gates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["step"] == "retirePrevious")
            .unwrap_or_else(|| panic!("rotation {i} has no retirement gate: {latest}"));
        assert_eq!(retire["outcome"], "adopted", "rotation {i}: {latest}");
        // The previous user can no longer log in; the new one can.
        let refused = rt.block_on(login(&previous));
        assert!(
            refused.is_err(),
            "rotation {i}: {} still logs in",
            previous["username"]
        );
        rt.block_on(login(&rt.block_on(current_value(&server, SOURCE))))
            .expect("AWSCURRENT logs in");
        // Retired after the last consumer moved to the new version, within 2 s.
        let all = rt.block_on(events(&server));
        let last_ack = all
            .iter()
            .filter(|e| e.kind == "consumer.ack" && e.detail["version"] == token.as_str())
            .map(|e| e.at.0)
            .max()
            .unwrap_or_else(|| {
                let kinds: Vec<String> = all
                    .iter()
                    .map(|e| format!("{} {:?} {}", e.kind, e.secret, e.detail))
                    .collect();
                panic!("no consumer reported {token}: {kinds:#?}")
            });
        let acks = all
            .iter()
            .filter(|e| e.kind == "consumer.ack" && e.detail["version"] == token.as_str())
            .count();
        assert!(acks >= ids.len(), "rotation {i}: {acks} adoptions");
        let retired = all
            .iter()
            .find(|e| e.kind == "rotation.retired" && e.detail["token"] == token.as_str())
            .map(|e| e.at.0)
            .expect("a rotation.retired event");
        let delay = (retired - last_ack).num_milliseconds();
        assert!(
            delay >= 0,
            "rotation {i}: retired {delay} ms before the last adoption"
        );
        assert!(
            delay <= 2000,
            "rotation {i}: retired {delay} ms after the last adoption"
        );
        delays_ms.push(delay);
    }
    for c in &mut consumers {
        c.stop();
    }
    let failed: usize = consumers.iter().map(|c| c.count("failed")).sum();
    let ok: usize = consumers.iter().map(|c| c.count("ok")).sum();
    delays_ms.sort();
    println!(
        "seed 000: {rotations} alternating-users rotations in {:.0} s; {ok} logins, {failed} failed; last adoption → retirement p50 {} ms, max {} ms",
        started.elapsed().as_secs_f64(),
        delays_ms[delays_ms.len() / 2],
        delays_ms[delays_ms.len() - 1]
    );
    for c in &consumers {
        assert!(c.count("ok") > 0, "{} never logged in", c.id);
    }
    assert_eq!(failed, 0, "failed logins");
}

/// Registers `consumer` on `version` of the replica, live for `lease_secs`, through the
/// client library: an application that reports what it uses and never moves on.
async fn stuck_consumer(server: &Server, consumer: &str, version: &str, lease_secs: i64) {
    harness::client(server)
        .register_consumer(consumer, REPLICA, version, Some(lease_secs))
        .await
        .unwrap();
}

async fn rotate_now(server: &Server) -> String {
    native(
        server,
        reqwest::Method::POST,
        &format!("/v1/rotate/{}", enc(SOURCE)),
        None,
    )
    .await["version_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn current_version(server: &Server, name: &str) -> String {
    native(
        server,
        reqwest::Method::GET,
        &format!("/v1/secrets/{}", enc(name)),
        None,
    )
    .await["version_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A consumer killed with kill -9 (no deregistration) holds the retirement only until
/// its lease runs out; a consumer that never adopts makes the next rotation fail
/// before setSecret with its id in the error, and AWSCURRENT still logs in.
#[test]
fn a_killed_consumer_stops_blocking_after_its_lease_and_a_stuck_one_fails_the_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let server = harness::dev(dir.path());
    let rt = harness::runtime();
    let pg = rt.block_on(pg_with_app());
    rt.block_on(layout(&server, &pg, 30));
    let v0 = rt.block_on(current_version(&server, SOURCE));
    let mut killed = Consumer::start(&server, &pg, dir.path(), "mp-killed", false);
    rt.block_on(until_all_on(
        &server,
        &["mp-killed"],
        &v0,
        Duration::from_secs(30),
    ));
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    let at_kill = Instant::now();
    // The rotation waits for mp-killed (its lease: 3 s), then retires v0's user.
    let v1 = rt.block_on(rotate_now(&server));
    let latest = rt.block_on(finished(&server, &v1, Duration::from_secs(30)));
    assert_eq!(latest["status"], "succeeded", "{latest}");
    let gate = &latest["gates"][latest["gates"].as_array().unwrap().len() - 1];
    assert_eq!(gate["step"], "retirePrevious", "{latest}");
    assert_eq!(gate["outcome"], "adopted", "{latest}");
    let waited = at_kill.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "held {waited:?} by a dead consumer"
    );

    // A consumer stuck on v1 (now AWSCURRENT), with a long lease.
    rt.block_on(stuck_consumer(&server, "mp-stuck", &v1, 600));
    native_put_timeout(&rt, &server, 2);
    // Rotation 2 moves AWSCURRENT to v2; its retirement of v1 times out (v1 stays
    // valid: mp-stuck uses it).
    let v2 = rt.block_on(rotate_now(&server));
    let latest = rt.block_on(finished(&server, &v2, Duration::from_secs(30)));
    assert_eq!(latest["status"], "succeeded", "{latest}");
    let gate = &latest["gates"][latest["gates"].as_array().unwrap().len() - 1];
    assert_eq!(gate["outcome"], "timed_out", "{latest}");
    // Rotation 3 would change v1's user: it fails before setSecret, naming mp-stuck.
    let v3 = rt.block_on(rotate_now(&server));
    let latest = rt.block_on(finished(&server, &v3, Duration::from_secs(30)));
    assert_eq!(latest["status"], "failed", "{latest}");
    let error = latest["error"].as_str().unwrap();
    assert!(error.contains("mp-stuck") && error.contains(&v1), "{error}");
    assert_eq!(rt.block_on(current_version(&server, SOURCE)), v2);
    rt.block_on(login(&rt.block_on(current_value(&server, SOURCE))))
        .expect("AWSCURRENT logs in");
    let health = rt.block_on(native(
        &server,
        reqwest::Method::GET,
        "/v1/sys/rotation-health",
        None,
    ));
    assert_eq!(health["failed"][0]["name"], SOURCE, "{health}");
    assert!(
        health["lagging"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["consumer"] == "mp-stuck" && l["version_id"] == v1.as_str()),
        "{health}"
    );
    let status = Command::new(harness::bin())
        .arg("status")
        .env("ROTOR_ADDR", &server.url)
        .env("ROTOR_TOKEN", harness::TOKEN)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("FAILED   {SOURCE}")), "{text}");
    assert!(
        text.contains("LAGGING") && text.contains("mp-stuck"),
        "{text}"
    );
}

fn native_put_timeout(rt: &tokio::runtime::Runtime, server: &Server, secs: i64) {
    rt.block_on(native(
        server,
        reqwest::Method::PUT,
        &format!("/v1/rotation/{}", enc(SOURCE)),
        Some(json!({"rotator": "pg-alt", "adoption": {"adoption_timeout_secs": secs}})),
    ));
}

/// A server killed with kill -9 while a rotation waits at its gate resumes waiting
/// from the same start (not from the beginning), and finishes once the consumer moves.
#[test]
fn a_server_killed_while_a_rotation_waits_resumes_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let rt = harness::runtime();
    let pg = rt.block_on(pg_with_app());
    let mut server = harness::persistent(&data, dir.path());
    rt.block_on(layout(&server, &pg, 120));
    let v0 = rt.block_on(current_version(&server, SOURCE));
    rt.block_on(stuck_consumer(&server, "mp-1", &v0, 600));
    let v1 = rt.block_on(rotate_now(&server));
    let waiting = |server: &Server| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = rt.block_on(rotation(server, SOURCE));
            let gate = r["latest"]["gates"]
                .as_array()
                .and_then(|g| g.last().cloned());
            if let Some(g) = gate
                && g["passed"].is_null()
                && g["step"] == "retirePrevious"
            {
                return (r["latest"].clone(), g);
            }
            assert!(Instant::now() < deadline, "never waited: {r}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let (before, gate) = waiting(&server);
    assert_eq!(before["version_id"], v1.as_str());
    assert_eq!(
        gate["waiting_for"],
        json!([format!("mp-1 (through {REPLICA})")])
    );
    harness::signal(&server, "KILL");
    let _ = harness::wait_exit(&mut server, Duration::from_secs(10));
    let server = harness::persistent(&data, dir.path());
    let (after, resumed) = waiting(&server);
    assert_eq!(after["step"], "retirePrevious", "{after}");
    assert_eq!(
        resumed["started"], gate["started"],
        "the wait resumed, not restarted"
    );
    assert_eq!(
        after["steps"], before["steps"],
        "no step ran again: {after}"
    );
    rt.block_on(stuck_consumer(&server, "mp-1", &v1, 600));
    let latest = rt.block_on(finished(&server, &v1, Duration::from_secs(30)));
    assert_eq!(latest["status"], "succeeded", "{latest}");
    let previous =
        json!({"host": pg.host(), "port": pg.port(), "username": "app", "password": "initial"});
    assert!(
        rt.block_on(login(&previous)).is_err(),
        "v0's user is retired"
    );
}

fn rotor_cli(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new(harness::bin())
        .args(args)
        .env("ROTOR_ADDR", &server.url)
        .env("ROTOR_TOKEN", harness::TOKEN)
        .output()
        .unwrap()
}

/// Seed 000's own flow: the DBA puts the green credential by hand; `rotor secret
/// retire-previous` refuses while a consumer still uses blue, naming it, and once it
/// has moved the rotator disables blue's user. A secret without a rotator gets a
/// `rotation.retired` event for the DBA's hook instead.
#[test]
fn retire_previous_after_a_change_by_hand_waits_for_every_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let server = harness::dev(dir.path());
    let rt = harness::runtime();
    let pg = rt.block_on(pg_with_app());
    rt.block_on(layout(&server, &pg, 30));
    let blue = rt.block_on(current_version(&server, SOURCE));
    rt.block_on(stuck_consumer(&server, "mp-1", &blue, 600));
    rt.block_on(async {
        let mut admin = crate::rotation_db::pg_admin(&pg).await;
        sqlx::query("CREATE ROLE app_clone LOGIN PASSWORD 'green'")
            .execute(&mut admin)
            .await
            .unwrap();
        let green = db_value(
            "postgres",
            pg.host(),
            pg.port(),
            "app_clone",
            "green",
            Some(MASTER),
        );
        native(
            &server,
            reqwest::Method::PUT,
            &format!("/v1/secrets/{}", enc(SOURCE)),
            Some(json!({"value": green})),
        )
        .await;
    });
    let green = rt.block_on(current_version(&server, SOURCE));
    let refused = rotor_cli(&server, &["secret", "retire-previous", SOURCE]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("mp-1") && stderr.contains(&blue),
        "{stderr}"
    );
    let blue_login =
        json!({"host": pg.host(), "port": pg.port(), "username": "app", "password": "initial"});
    rt.block_on(login(&blue_login))
        .expect("blue still works while mp-1 uses it");
    // mp-1 moves to green (through the replica, which keeps the version id) while a
    // retire-previous --wait is waiting for it.
    let waiting = {
        let url = server.url.clone();
        std::thread::spawn(move || {
            Command::new(harness::bin())
                .args(["secret", "retire-previous", SOURCE, "--wait"])
                .env("ROTOR_ADDR", url)
                .env("ROTOR_TOKEN", harness::TOKEN)
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    rt.block_on(login(&blue_login))
        .expect("not retired before mp-1 moves");
    rt.block_on(stuck_consumer(&server, "mp-1", &green, 600));
    let done = waiting.join().unwrap();
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        stdout.contains(&format!("Retired version {blue}")) && stdout.contains("by its rotator"),
        "{stdout}"
    );
    assert!(
        rt.block_on(login(&blue_login)).is_err(),
        "blue's user is retired"
    );
    rt.block_on(login(&rt.block_on(current_value(&server, SOURCE))))
        .expect("green logs in");

    // No rotator: the retirement is an event for a hook.
    rt.block_on(create(&server, "/dba/plain/key", "one".into()));
    rt.block_on(native(
        &server,
        reqwest::Method::PUT,
        &format!("/v1/secrets/{}", enc("/dba/plain/key")),
        Some(json!({"value": "two"})),
    ));
    let out = rotor_cli(
        &server,
        &[
            "--output",
            "json",
            "secret",
            "retire-previous",
            "/dba/plain/key",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["by"], "hook");
    let all = rt.block_on(events(&server));
    assert!(all.iter().any(|e| e.kind == "rotation.retired"
        && e.secret.as_deref() == Some("/dba/plain/key")
        && e.detail["manual"] == true));
}

/// A single-user rotation changes the password in place: with a live consumer on
/// AWSCURRENT it is refused (naming the consumer and the safe strategy) and the
/// password is left alone, unless the policy says proceed.
#[test]
fn a_single_user_rotation_with_live_consumers_is_refused_unless_told_to_proceed() {
    let dir = tempfile::tempdir().unwrap();
    let server = harness::dev(dir.path());
    let rt = harness::runtime();
    let pg = rt.block_on(pg_with_app());
    rt.block_on(layout(&server, &pg, 30));
    rt.block_on(rotator(
        &server,
        "pg-single",
        "postgres",
        json!({"strategy": "single-user"}),
    ));
    let v0 = rt.block_on(current_version(&server, SOURCE));
    rt.block_on(stuck_consumer(&server, "mp-1", &v0, 600));
    let configure = |on_timeout: &str| {
        rt.block_on(native(
            &server,
            reqwest::Method::PUT,
            &format!("/v1/rotation/{}", enc(SOURCE)),
            Some(json!({"rotator": "pg-single", "adoption": {"on_timeout": on_timeout}})),
        ));
    };
    configure("fail");
    let token = rt.block_on(rotate_now(&server));
    let latest = rt.block_on(finished(&server, &token, Duration::from_secs(30)));
    assert_eq!(latest["status"], "failed", "{latest}");
    let error = latest["error"].as_str().unwrap();
    assert!(
        error.contains("mp-1") && error.contains("alternating-users"),
        "{error}"
    );
    let before = rt.block_on(current_value(&server, SOURCE));
    rt.block_on(login(&before))
        .expect("the password was left alone");
    // Told to proceed, it rotates (and breaks mp-1, as single user does).
    rt.block_on(native(
        &server,
        reqwest::Method::POST,
        &format!("/v1/stages/{}", enc(SOURCE)),
        Some(json!({"stage": "AWSPENDING", "remove_from": token})),
    ));
    configure("proceed");
    let token = rt.block_on(rotate_now(&server));
    let latest = rt.block_on(finished(&server, &token, Duration::from_secs(30)));
    assert_eq!(latest["status"], "succeeded", "{latest}");
    assert!(
        rt.block_on(login(&before)).is_err(),
        "the old password no longer works"
    );
}
