//! Issue 11: the server is nobody's deputy. Each test is an attack a narrow principal
//! tried against a real `rotor server` (and a real PostgreSQL), written to succeed
//! on the code before its fix and to be refused after it. They speak raw HTTP, so
//! they run unchanged against any build: `ROTOR_TEST_BIN=path/to/old/rotor cargo
//! test -p rotor --test tests attacks::` shows each one failing there.

use crate::harness::{self, Launch, Server};
use rotor_testkit::PgServer;
use serde_json::{Value, json};
use sqlx::Connection as _;
use std::time::{Duration, Instant};

/// Raw calls to the native API.
struct Api {
    url: String,
    http: reqwest::Client,
}

fn enc(name: &str) -> String {
    name.replace('/', "%2F")
}

impl Api {
    fn new(server: &Server) -> Self {
        Api {
            url: server.url.clone(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A root call that must succeed.
    async fn root(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(harness::TOKEN, method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    /// A principal bound by `statements`, and a token for it.
    async fn principal(&self, name: &str, statements: Value) -> String {
        self.root("POST", "/v1/sys/principals", Some(json!({"name": name})))
            .await;
        self.root(
            "PUT",
            &format!("/v1/sys/policies/{name}"),
            Some(json!({"statements": statements})),
        )
        .await;
        self.root(
            "PUT",
            &format!("/v1/sys/principals/{name}/policies/{name}"),
            None,
        )
        .await;
        let t = self
            .root("POST", "/v1/sys/tokens", Some(json!({"principal": name})))
            .await;
        t["token"].as_str().unwrap().to_string()
    }

    async fn create(&self, token: &str, name: &str, value: &str) -> (u16, Value) {
        self.call(
            token,
            "POST",
            "/v1/secrets",
            Some(json!({"name": name, "value": value})),
        )
        .await
    }

    async fn value(&self, token: &str, name: &str) -> (u16, Value) {
        self.call(token, "GET", &format!("/v1/secrets/{}", enc(name)), None)
            .await
    }
}

fn dev(dir: &std::path::Path) -> Server {
    harness::dev(dir)
}

/// Polls until the latest rotation of `name` is no longer running.
async fn settled(api: &Api, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let v = api
            .root("GET", &format!("/v1/rotation/{}", enc(name)), None)
            .await;
        let status = v["latest"]["status"].as_str().unwrap_or("none");
        if status != "running" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("rotation of {name} did not settle");
}

async fn pg_connect(
    pg: &PgServer,
    user: &str,
    password: &str,
) -> Result<sqlx::PgConnection, sqlx::Error> {
    let options = sqlx::postgres::PgConnectOptions::new()
        .host(pg.host())
        .port(pg.port())
        .username(user)
        .password(password)
        .database("postgres");
    sqlx::PgConnection::connect_with(&options).await
}

/// Hole 2: a principal that may write and rotate only `/app/mallory/**` names the
/// DBA's master secret in its value (`masterarn`) and asks the built-in PostgreSQL
/// rotator to rotate. Before the fix the server logged in as the master and made a
/// SUPERUSER clone of `postgres` (alternating users) or reset another user's
/// password (single user), and handed mallory the new password.
#[test]
fn rotation_cannot_borrow_a_master_secret_its_principal_may_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let rt = harness::runtime();
    rt.block_on(async {
        let pg = PgServer::start().unwrap();
        let mut admin = pg_connect(&pg, pg.superuser(), pg.superuser_password())
            .await
            .unwrap();
        sqlx::query("CREATE ROLE victim LOGIN PASSWORD 'victim-pass'")
            .execute(&mut admin)
            .await
            .unwrap();
        let api = Api::new(&server);
        let master = json!({"engine": "postgres", "host": pg.host(), "port": pg.port(),
            "username": pg.superuser(), "password": pg.superuser_password()});
        api.root(
            "POST",
            "/v1/secrets",
            Some(json!({"name": "/dba/pg-master", "value": master.to_string()})),
        )
        .await;
        for (name, strategy) in [("pg-alt", "alternating-users"), ("pg-single", "single-user")] {
            api.root(
                "POST",
                "/v1/sys/rotators",
                Some(json!({"name": name, "type": "postgres", "config": {"strategy": strategy}})),
            )
            .await;
        }
        let mallory = api
            .principal(
                "mallory",
                json!([
                    {"effect": "allow", "capabilities": ["read", "write", "describe", "rotate", "list"], "paths": ["/app/mallory/**"]},
                    {"effect": "allow", "capabilities": ["rotate"], "paths": ["sys/rotators/*"]}
                ]),
            )
            .await;
        let value = |user: &str| {
            json!({"engine": "postgres", "host": pg.host(), "port": pg.port(), "username": user,
                "password": "whatever", "masterarn": "/dba/pg-master"})
            .to_string()
        };
        let attempts = [
            ("/app/mallory/superuser", "postgres", "pg-alt"),
            ("/app/mallory/victim", "victim", "pg-single"),
        ];
        for (secret, user, rotator) in attempts {
            let (status, _) = api.create(&mallory, secret, &value(user)).await;
            assert_eq!(status, 201);
            let (status, answer) = api
                .call(
                    &mallory,
                    "PUT",
                    &format!("/v1/rotation/{}", enc(secret)),
                    Some(json!({"rotator": rotator, "rotate_immediately": true})),
                )
                .await;
            if (200..300).contains(&status) {
                // Accepted: it must not get anywhere.
                let view = settled(&api, secret).await;
                assert_ne!(view["latest"]["status"], "succeeded", "{view}");
            } else {
                assert_eq!(status, 403, "{answer}");
                let text = answer.to_string();
                for leak in [pg.superuser(), pg.host(), "/dba/pg-master"] {
                    assert!(!text.contains(leak), "the refusal names {leak}: {text}");
                }
            }
        }
        let clone = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_roles WHERE rolname = 'postgres_clone'",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert_eq!(clone, 0, "no clone of the superuser was made");
        pg_connect(&pg, "victim", "victim-pass")
            .await
            .expect("the victim's password was not changed");
        let (_, v) = api.value(&mallory, "/app/mallory/superuser").await;
        let held: Value = serde_json::from_str(v["value"].as_str().unwrap()).unwrap();
        assert_eq!(held["username"], "postgres", "mallory got no new credential");
    });
}

/// Hole 2 (external rotators): an exec rotator's scoped credentials reached any
/// secret the value's `masterarn` named. The command below tries to read the
/// master with the token it is given.
#[test]
fn an_external_rotator_gets_no_credential_for_a_master_its_principal_may_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let rt = harness::runtime();
    rt.block_on(async {
        let api = Api::new(&server);
        api.root(
            "POST",
            "/v1/secrets",
            Some(json!({"name": "/dba/crown-jewel", "value": "jewel-value-31337"})),
        )
        .await;
        let out = dir.path().join("stolen");
        let script = format!(
            "curl -s -H \"Authorization: Bearer $ROTOR_TOKEN\" \"$ROTOR_ADDR/v1/secrets/%2Fdba%2Fcrown-jewel\" > {}; exit 1",
            out.display()
        );
        api.root(
            "POST",
            "/v1/sys/rotators",
            Some(json!({"name": "thief", "type": "exec", "config": {"command": ["sh", "-c", script]}})),
        )
        .await;
        let mallory = api
            .principal(
                "mallory",
                json!([
                    {"effect": "allow", "capabilities": ["read", "write", "describe", "rotate"], "paths": ["/app/mallory/**"]},
                    {"effect": "allow", "capabilities": ["rotate"], "paths": ["sys/rotators/*"]}
                ]),
            )
            .await;
        api.create(
            &mallory,
            "/app/mallory/x",
            &json!({"masterarn": "/dba/crown-jewel"}).to_string(),
        )
        .await;
        let (status, _) = api
            .call(
                &mallory,
                "PUT",
                "/v1/rotation/%2Fapp%2Fmallory%2Fx",
                Some(json!({"rotator": "thief", "rotate_immediately": true})),
            )
            .await;
        if (200..300).contains(&status) {
            // Accepted: give the command its chance to run.
            let deadline = Instant::now() + Duration::from_secs(20);
            while !out.exists() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let stolen = std::fs::read_to_string(&out).unwrap_or_default();
        assert!(!stolen.contains("jewel-value-31337"), "the rotator read the master: {stolen}");
    });
}

/// A shell command writing its environment to `file` whole: the test sees the file
/// only once it is complete (the shell creates a redirect's file before `env` runs).
fn dump_env(file: &std::path::Path) -> String {
    let f = file.display();
    format!("env > {f}.part && mv {f}.part {f}")
}

/// Hole 3: commands Rotor starts inherited the server's whole environment, the
/// master key and root credentials included.
#[test]
fn commands_rotor_starts_do_not_inherit_the_servers_environment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let master_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let mut envs = harness::root_env();
    envs.push(("ROTOR_MASTER_KEY", master_key.into()));
    envs.push(("ROTOR_CANARY_SECRET", "canary-in-the-env".into()));
    envs.push(("AWS_SECRET_ACCESS_KEY", "servers-own-aws-key".into()));
    let server = harness::start(Launch {
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--rotation-max-attempts".into(),
            "1".into(),
        ],
        envs,
        log_dir: dir.path(),
    });
    let rt = harness::runtime();
    rt.block_on(async {
        let api = Api::new(&server);
        let rotator_env = dir.path().join("rotator.env");
        let hook_env = dir.path().join("hook.env");
        api.root(
            "POST",
            "/v1/sys/rotators",
            Some(json!({"name": "dump", "type": "exec",
                "config": {"command": ["sh", "-c", dump_env(&rotator_env)]}})),
        )
        .await;
        api.root(
            "POST",
            "/v1/sys/subscriptions",
            Some(json!({"name": "dump-hook", "prefix": "/svc/",
                "command": ["sh", "-c", dump_env(&hook_env)]})),
        )
        .await;
        api.root(
            "POST",
            "/v1/secrets",
            Some(json!({"name": "/svc/x", "value": "v"})),
        )
        .await;
        api.root(
            "PUT",
            "/v1/rotation/%2Fsvc%2Fx",
            Some(json!({"rotator": "dump", "rotate_immediately": true})),
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(hook_env.exists() && rotator_env.exists()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for file in [&rotator_env, &hook_env] {
            let env = std::fs::read_to_string(file).unwrap();
            for leak in [
                master_key,
                "canary-in-the-env",
                "servers-own-aws-key",
                harness::TOKEN,
                harness::SECRET_KEY,
                "ROTOR_MASTER_KEY",
                "ROTOR_ROOT_",
                "ROTOR_DATA_DIR",
            ] {
                assert!(!env.contains(leak), "{} holds {leak}", file.display());
            }
            assert!(env.contains("PATH="), "{} has PATH", file.display());
        }
        let env = std::fs::read_to_string(&rotator_env).unwrap();
        assert!(
            env.contains("ROTOR_TOKEN=rtr_"),
            "the step's scoped token is given"
        );
    });
}

/// Hole 4: an admin of one subscription or one rotator ran commands on the server.
#[test]
fn running_a_command_on_the_server_needs_the_exec_capability() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let rt = harness::runtime();
    rt.block_on(async {
        let api = Api::new(&server);
        let hooker = api
            .principal(
                "hooker",
                json!([
                    {"effect": "allow", "capabilities": ["admin"], "paths": ["sys/subscriptions/hook1", "sys/rotators/r1"]}
                ]),
            )
            .await;
        let ran = dir.path().join("ran");
        let touch = json!(["sh", "-c", format!("touch {}", ran.display())]);
        let attempts = [
            (
                "/v1/sys/subscriptions",
                json!({"name": "hook1", "command": touch}),
            ),
            (
                "/v1/sys/rotators",
                json!({"name": "r1", "type": "exec", "config": {"command": touch}}),
            ),
            (
                "/v1/sys/rotators",
                json!({"name": "r1", "type": "lambda", "config": {"handler": "m.f", "code_dir": "/tmp", "python": "sh"}}),
            ),
        ];
        for (path, body) in attempts {
            let (status, answer) = api.call(&hooker, "POST", path, Some(body.clone())).await;
            assert_eq!(status, 403, "{body}: {answer}");
            assert!(answer.to_string().contains("exec"), "{answer}");
        }
        // What it may do: a webhook subscription.
        let (status, answer) = api
            .call(
                &hooker,
                "POST",
                "/v1/sys/subscriptions",
                Some(json!({"name": "hook1", "url": "http://127.0.0.1:9/"})),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        api.root("POST", "/v1/secrets", Some(json!({"name": "/x", "value": "v"})))
            .await;
        assert!(!ran.exists());
    });
}

/// Hole 5: a prefix rule was authorized by checking `read` on the string
/// `/dba/team/**` when added, so an allow on `/dba/team/*` passed and a deny on one
/// secret never applied; copying went on for secrets created later.
#[test]
fn replication_never_copies_around_a_deny() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let rt = harness::runtime();
    rt.block_on(async {
        let api = Api::new(&server);
        for (name, value) in [("/dba/team/a", "a-value"), ("/dba/team/secret-sauce", "sauce-value")] {
            api.root("POST", "/v1/secrets", Some(json!({"name": name, "value": value})))
                .await;
        }
        let mallory = api
            .principal(
                "mallory",
                json!([
                    {"effect": "allow", "capabilities": ["read"], "paths": ["/dba/team/*"]},
                    {"effect": "deny", "capabilities": ["read"], "paths": ["/dba/team/secret-sauce"]},
                    {"effect": "allow", "capabilities": ["read", "describe", "share", "list"], "paths": ["/app/mallory/**"]}
                ]),
            )
            .await;
        let (denied, _) = api.value(&mallory, "/dba/team/secret-sauce").await;
        assert_eq!(denied, 403, "the deny holds on a direct read");
        let (status, answer) = api
            .call(
                &mallory,
                "POST",
                "/v1/replication",
                Some(json!({"name": "steal", "kind": "copy", "source": "/dba/team/",
                    "destination": "/app/mallory/team/"})),
            )
            .await;
        assert!(status == 201 || status == 403, "{status} {answer}");
        api.root(
            "PUT",
            "/v1/secrets/%2Fdba%2Fteam%2Fsecret-sauce",
            Some(json!({"value": "sauce-value-2"})),
        )
        .await;
        api.root(
            "POST",
            "/v1/secrets",
            Some(json!({"name": "/dba/team/deep/later", "value": "later-value"})),
        )
        .await;
        for stolen in ["/app/mallory/team/secret-sauce", "/app/mallory/team/deep/later"] {
            let (status, v) = api.value(&mallory, stolen).await;
            assert_ne!(status, 200, "{stolen} was copied: {v}");
        }
    });
}

/// Hole 6: attaching policy P checked `admin` on the principal only, so a delegated
/// admin of `sys/principals/team-*` attached `root`.
#[test]
fn a_delegated_admin_cannot_attach_what_it_does_not_hold() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let rt = harness::runtime();
    rt.block_on(async {
        let api = Api::new(&server);
        api.root("POST", "/v1/sys/principals", Some(json!({"name": "team-x"})))
            .await;
        let admin = api
            .principal(
                "team-admin",
                json!([
                    {"effect": "allow", "capabilities": ["admin"], "paths": ["sys/principals/team-*", "sys/tokens/team-*"]},
                    {"effect": "allow", "capabilities": ["read"], "paths": ["/team/**"]}
                ]),
            )
            .await;
        let (status, answer) = api
            .call(&admin, "PUT", "/v1/sys/principals/team-x/policies/root", None)
            .await;
        assert_eq!(status, 403, "{answer}");
        let (_, token) = api
            .call(&admin, "POST", "/v1/sys/tokens", Some(json!({"principal": "team-x"})))
            .await;
        let team_x = token["token"].as_str().unwrap_or_default().to_string();
        api.root("POST", "/v1/secrets", Some(json!({"name": "/dba/x", "value": "v"})))
            .await;
        let (status, _) = api.value(&team_x, "/dba/x").await;
        assert_ne!(status, 200, "team-x did not become root");
    });
}

/// Hole 7: an open watch (and a long poll) kept delivering after its token was
/// revoked.
#[test]
fn an_open_watch_stops_when_its_token_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let rt = harness::runtime();
    rt.block_on(async {
        let api = Api::new(&server);
        let watcher = api
            .principal(
                "watcher",
                json!([{"effect": "allow", "capabilities": ["describe", "read"], "paths": ["/svc/**"]}]),
            )
            .await;
        api.root("POST", "/v1/secrets", Some(json!({"name": "/svc/a", "value": "one"})))
            .await;
        let mut response = reqwest::Client::new()
            .get(format!("{}/v1/watch?prefix=/svc/", server.url))
            .bearer_auth(&watcher)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        // The stream is open once its first comment arrives.
        let first = tokio::time::timeout(Duration::from_secs(5), response.chunk()).await;
        assert!(matches!(first, Ok(Ok(Some(_)))));

        // A long poll with the same token, waiting.
        let poll = {
            let url = format!("{}/v1/events?prefix=/svc/&wait=20", server.url);
            let token = watcher.clone();
            tokio::spawn(async move {
                let r = reqwest::Client::new()
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        api.root("POST", "/v1/sys/tokens/revoke", Some(json!({"token": watcher})))
            .await;
        api.root(
            "PUT",
            "/v1/secrets/%2Fsvc%2Fa",
            Some(json!({"value": "two"})),
        )
        .await;
        let mut seen = String::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(500), response.chunk()).await {
                Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(_) => break,
                Err(_) => {}
            }
        }
        assert!(!seen.contains("version.put"), "the revoked stream delivered: {seen}");
        let (status, body) = poll.await.unwrap();
        assert!(!body.contains("version.put"), "the revoked long poll delivered: {body}");
        assert_eq!(status, 401, "{body}");
    });
}

/// Hole 9: waiting long polls were unbounded; each principal now holds a bounded
/// number at once (128 by default).
#[test]
fn one_principal_cannot_hold_unbounded_long_polls() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let rt = harness::runtime();
    rt.block_on(async {
        let api = Api::new(&server);
        let idle = api
            .principal(
                "idle",
                json!([{"effect": "allow", "capabilities": ["describe"], "paths": ["/nothing/**"]}]),
            )
            .await;
        let client = reqwest::Client::new();
        let mut polls = Vec::new();
        for _ in 0..140 {
            let req = client
                .get(format!("{}/v1/events?wait=20", server.url))
                .bearer_auth(&idle)
                .send();
            polls.push(tokio::spawn(req));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut refused = 0;
        for p in polls {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Ok(Ok(Ok(r))) = tokio::time::timeout(left, p).await
                && r.status().is_client_error()
            {
                refused += 1;
            }
        }
        assert!(refused >= 12, "only {refused} of 140 waiting polls were refused");
        // Writes go on meanwhile.
        let started = Instant::now();
        for i in 0..20 {
            api.root(
                "POST",
                "/v1/secrets",
                Some(json!({"name": format!("/w/{i}"), "value": "v"})),
            )
            .await;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    });
}

/// Hole 10: an ARN named an existing secret with 403 and a missing one with 404, so
/// a caller learned what exists where it may not look.
#[test]
fn an_arn_tells_nothing_about_secrets_the_caller_may_not_see() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let rt = harness::runtime();
    rt.block_on(async {
        let api = Api::new(&server);
        let created = api
            .root("POST", "/v1/secrets", Some(json!({"name": "/dba/real", "value": "v"})))
            .await;
        let arn = created["arn"].as_str().unwrap().to_string();
        let missing = arn.replace("/dba/real", "/dba/imaginary");
        let nosy = api
            .principal(
                "nosy",
                json!([{"effect": "allow", "capabilities": ["read", "describe"], "paths": ["/app/**"]}]),
            )
            .await;
        let mut answers = Vec::new();
        for id in [&arn, &missing] {
            for path in [
                format!("/v1/secrets/{}", enc(id)),
                format!("/v1/metadata/{}", enc(id)),
            ] {
                let (status, body) = api.call(&nosy, "GET", &path, None).await;
                let message = body.to_string().replace(&arn, "ARN").replace(&missing, "ARN");
                answers.push((path.contains("metadata"), status, message));
            }
        }
        assert_eq!(answers[0], answers[2], "GetSecretValue tells them apart");
        assert_eq!(answers[1], answers[3], "DescribeSecret tells them apart");
        assert_eq!(answers[0].1, 403);
    });
}

/// Hole 10: a replica's description named its source, which a reader of the
/// replica may not know.
#[test]
fn a_replica_does_not_name_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let rt = harness::runtime();
    rt.block_on(async {
        let api = Api::new(&server);
        api.root(
            "POST",
            "/v1/secrets",
            Some(json!({"name": "/dba/hidden/source-name", "value": "v"})),
        )
        .await;
        api.root(
            "POST",
            "/v1/replication",
            Some(json!({"name": "r", "kind": "copy", "source": "/dba/hidden/source-name",
                "destination": "/app/svc/replica"})),
        )
        .await;
        let reader = api
            .principal(
                "reader",
                json!([{"effect": "allow", "capabilities": ["read", "describe"], "paths": ["/app/svc/**"]}]),
            )
            .await;
        let (status, meta) = api
            .call(&reader, "GET", "/v1/metadata/%2Fapp%2Fsvc%2Freplica", None)
            .await;
        assert_eq!(status, 200, "{meta}");
        assert!(!meta.to_string().contains("/dba/hidden"), "{meta}");
    });
}

/// Sends an AWS JSON request signed over `signed_body` but carrying `sent_body`,
/// with `content_hash` (when given) in `x-amz-content-sha256`: what an eavesdropper
/// replaying a captured request with another body sends.
async fn replayed(
    server: &Server,
    action: &str,
    signed_body: &str,
    sent_body: &str,
    content_hash: Option<&str>,
) -> (u16, Value) {
    let host = server.url.trim_start_matches("http://").to_string();
    let date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        ("host".to_string(), host),
        ("x-amz-date".to_string(), date),
        (
            "x-amz-target".to_string(),
            format!("secretsmanager.{action}"),
        ),
    ];
    if let Some(hash) = content_hash {
        headers.push(("x-amz-content-sha256".to_string(), hash.to_string()));
    }
    let auth = rotor_server::sigv4::sign(
        "POST",
        "/",
        "",
        &headers,
        signed_body.as_bytes(),
        harness::AKID,
        harness::SECRET_KEY,
        "us-east-1",
        "secretsmanager",
    );
    headers.push(("authorization".to_string(), auth));
    let mut req = reqwest::Client::new()
        .post(format!("{}/", server.url))
        .body(sent_body.to_string());
    for (name, value) in &headers {
        if name != "host" {
            req = req.header(name, value);
        }
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Hole 1: the verifier took the payload hash from `x-amz-content-sha256` without
/// checking it against the body, so a captured signed request replayed with that
/// header read or wrote any secret its signer could.
#[test]
fn a_captured_signature_does_not_carry_over_to_another_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let rt = harness::runtime();
    rt.block_on(async {
        let api = Api::new(&server);
        for (name, value) in [("/public/motd", "hello"), ("/dba/crown-jewels", "s3cret")] {
            api.root(
                "POST",
                "/v1/secrets",
                Some(json!({"name": name, "value": value})),
            )
            .await;
        }
        let harmless = json!({"SecretId": "/public/motd"}).to_string();
        let hash: String = rotor_crypto::sha256(harmless.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let (status, genuine) =
            replayed(&server, "GetSecretValue", &harmless, &harmless, Some(&hash)).await;
        assert_eq!(status, 200, "the genuine request works: {genuine}");

        let wanted = json!({"SecretId": "/dba/crown-jewels"}).to_string();
        let (status, stolen) =
            replayed(&server, "GetSecretValue", &harmless, &wanted, Some(&hash)).await;
        assert!(
            !stolen.to_string().contains("s3cret"),
            "a replayed signature read another secret: {stolen}"
        );
        assert_eq!(status, 401, "{stolen}");
        assert_eq!(stolen["__type"], "InvalidSignatureException", "{stolen}");

        let write =
            json!({"SecretId": "/dba/crown-jewels", "SecretString": "attacker"}).to_string();
        let (status, _) = replayed(&server, "PutSecretValue", &harmless, &write, Some(&hash)).await;
        assert_eq!(status, 401);
        let (status, unsigned) = replayed(
            &server,
            "PutSecretValue",
            &write,
            &write,
            Some("UNSIGNED-PAYLOAD"),
        )
        .await;
        assert_eq!(status, 401, "an unsigned payload is refused: {unsigned}");
        let kept = api
            .root("GET", "/v1/secrets/%2Fdba%2Fcrown-jewels", None)
            .await;
        assert_eq!(kept["value"], "s3cret", "nothing was written: {kept}");
    });
}
