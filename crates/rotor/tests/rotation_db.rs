//! Database rotation against real PostgreSQL and MariaDB servers started by the
//! test (rotor-testkit), driven through the AWS API with the AWS SDK for Rust:
//! zero-downtime alternating-users rotation, single-user rotation, the database
//! going down mid-rotation, and the server killed mid-rotation.

use crate::harness::{self, Launch, Server};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use rotor_testkit::{MariaDb, PgServer};
use serde_json::{Value, json};
use sqlx::Connection as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(crate) fn sdk(server: &Server) -> Client {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&server.url)
        .credentials_provider(Credentials::new(
            harness::AKID,
            harness::SECRET_KEY,
            None,
            None,
            "test",
        ))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    Client::from_conf(config)
}

/// Registers a rotator through the native API.
pub(crate) async fn rotator(server: &Server, name: &str, kind: &str, config: Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/sys/rotators", server.url))
        .bearer_auth(harness::TOKEN)
        .json(&json!({"name": name, "type": kind, "config": config}))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{}: {}",
        r.status(),
        r.text().await.unwrap()
    );
}

/// Lets single-user rotations of `name` go on although it has live consumers (this
/// test's own reads): a password changed in place breaks them, which these tests
/// measure or do not mind. Without it such a rotation is refused.
async fn single_user_proceeds(server: &Server, name: &str, rotator: &str) {
    adoption(server, name, rotator, json!({"on_timeout": "proceed"})).await;
}

/// Changes `name`'s adoption policy (rotating with `rotator`).
async fn adoption(server: &Server, name: &str, rotator: &str, change: Value) {
    let r = reqwest::Client::new()
        .put(format!(
            "{}/v1/rotation/{}",
            server.url,
            name.replace('/', "%2F")
        ))
        .bearer_auth(harness::TOKEN)
        .json(&json!({"rotator": rotator, "adoption": change}))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{}: {}",
        r.status(),
        r.text().await.unwrap()
    );
}

fn lambda_arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:{name}")
}

/// The AWS-shaped value of a database secret.
pub(crate) fn db_value(
    engine: &str,
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    master: Option<&str>,
) -> String {
    let mut v = json!({"engine": engine, "host": host, "port": port, "username": user,
                       "password": password, "dbname": if engine == "postgres" { "postgres" } else { "appdb" }});
    if let Some(m) = master {
        v["masterarn"] = json!(m);
    }
    v.to_string()
}

async fn current(sm: &Client, name: &str) -> Value {
    let v = sm.get_secret_value().secret_id(name).send().await.unwrap();
    serde_json::from_str(v.secret_string().unwrap()).unwrap()
}

async fn pg_login(v: &Value) -> Result<(), sqlx::Error> {
    let options = sqlx::postgres::PgConnectOptions::new()
        .host(v["host"].as_str().unwrap())
        .port(v["port"].as_u64().unwrap() as u16)
        .username(v["username"].as_str().unwrap())
        .password(v["password"].as_str().unwrap())
        .database("postgres");
    let mut conn = sqlx::PgConnection::connect_with(&options).await?;
    sqlx::query("SELECT count(*) FROM app_data")
        .execute(&mut conn)
        .await?;
    conn.close().await
}

async fn mysql_login(v: &Value) -> Result<(), sqlx::Error> {
    let options = sqlx::mysql::MySqlConnectOptions::new()
        .host(v["host"].as_str().unwrap())
        .port(v["port"].as_u64().unwrap() as u16)
        .username(v["username"].as_str().unwrap())
        .password(v["password"].as_str().unwrap());
    let mut conn = sqlx::MySqlConnection::connect_with(&options).await?;
    sqlx::query("SELECT count(*) FROM appdb.app_data")
        .execute(&mut conn)
        .await?;
    conn.close().await
}

pub(crate) async fn pg_admin(pg: &PgServer) -> sqlx::PgConnection {
    let options = sqlx::postgres::PgConnectOptions::new()
        .host(pg.host())
        .port(pg.port())
        .username(pg.superuser())
        .password(pg.superuser_password())
        .database("postgres");
    sqlx::PgConnection::connect_with(&options).await.unwrap()
}

/// A PostgreSQL with role `app` (password `initial`) allowed to read `app_data`.
pub(crate) async fn pg_with_app() -> PgServer {
    let pg = PgServer::start().unwrap();
    let mut admin = pg_admin(&pg).await;
    for sql in [
        "CREATE ROLE app LOGIN PASSWORD 'initial'",
        "CREATE TABLE app_data (id int)",
        "GRANT SELECT ON app_data TO app",
    ] {
        sqlx::raw_sql(sql).execute(&mut admin).await.unwrap();
    }
    pg
}

/// Creates the master secret and the application's secret; returns the latter's name.
async fn pg_secrets(sm: &Client, pg: &PgServer, app: &str, with_master: bool) -> String {
    let master = sm
        .create_secret()
        .name(format!("/dba/{app}/master"))
        .secret_string(db_value(
            "postgres",
            pg.host(),
            pg.port(),
            pg.superuser(),
            pg.superuser_password(),
            None,
        ))
        .send()
        .await
        .unwrap();
    let name = format!("/app/{app}/db");
    let master_arn = master.arn().unwrap().to_string();
    sm.create_secret()
        .name(&name)
        .secret_string(db_value(
            "postgres",
            pg.host(),
            pg.port(),
            "app",
            "initial",
            with_master.then_some(master_arn.as_str()),
        ))
        .send()
        .await
        .unwrap();
    name
}

/// Starts a rotation and waits until it is over: the new version holds AWSCURRENT
/// and nothing holds AWSPENDING. Returns the new version's id.
async fn rotate_and_wait(url: &str, sm: &Client, name: &str, rotator: Option<&str>) -> String {
    let mut req = sm.rotate_secret().secret_id(name);
    if let Some(r) = rotator {
        req = req.rotation_lambda_arn(lambda_arn(r)).rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        );
    }
    let token = req.send().await.unwrap().version_id().unwrap().to_string();
    wait_rotated(url, sm, name, &token, Duration::from_secs(60)).await;
    token
}

async fn wait_rotated(url: &str, sm: &Client, name: &str, token: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let d = sm.describe_secret().secret_id(name).send().await.unwrap();
        let stages = d.version_ids_to_stages().unwrap();
        let current = stages
            .get(token)
            .is_some_and(|l| l.iter().any(|s| s == "AWSCURRENT"));
        let pending = stages.values().any(|l| l.iter().any(|s| s == "AWSPENDING"));
        if current && !pending {
            return;
        }
        if Instant::now() >= deadline {
            let view = reqwest::Client::new()
                .get(format!("{url}/v1/rotation/{name}"))
                .bearer_auth(harness::TOKEN)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            panic!("rotation {token} of {name} did not finish: {stages:?}; {view}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A consumer that keeps reading AWSCURRENT from Rotor and opening a new database
/// connection with it, counting logins that failed.
struct Consumer {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

fn consume(sm: Client, name: String, mysql: bool) -> Consumer {
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
    let task = tokio::spawn(async move {
        while !s.load(Ordering::Relaxed) {
            let v = current(&sm, &name).await;
            let login = if mysql {
                mysql_login(&v).await
            } else {
                pg_login(&v).await
            };
            match login {
                Ok(()) => o.fetch_add(1, Ordering::Relaxed),
                Err(_) => f.fetch_add(1, Ordering::Relaxed),
            };
        }
    });
    Consumer {
        stop,
        ok,
        failed,
        task,
    }
}

impl Consumer {
    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

#[test]
fn postgres_alternating_users_rotation_has_zero_failed_logins() {
    let dir = tempfile::tempdir().unwrap();
    let server = harness::dev(dir.path());
    harness::runtime().block_on(async {
        let pg = pg_with_app().await;
        let sm = sdk(&server);
        let name = pg_secrets(&sm, &pg, "alt", true).await;
        rotator(
            &server,
            "pg-alt",
            "postgres",
            json!({"strategy": "alternating-users"}),
        )
        .await;
        let consumer = consume(sm.clone(), name.clone(), false);
        let started = Instant::now();
        let mut users = Vec::new();
        for i in 0..50 {
            rotate_and_wait(&server.url, &sm, &name, (i == 0).then_some("pg-alt")).await;
            users.push(
                current(&sm, &name).await["username"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
            // The previous credentials keep working until the rotation after next.
            let previous = sm
                .get_secret_value()
                .secret_id(&name)
                .version_stage("AWSPREVIOUS")
                .send()
                .await
                .unwrap();
            let previous: Value = serde_json::from_str(previous.secret_string().unwrap()).unwrap();
            pg_login(&previous)
                .await
                .expect("AWSPREVIOUS still logs in");
        }
        let (ok, failed) = consumer.finish().await;
        println!(
            "alternating-users: 50 rotations in {:?}; consumer logins ok={ok} failed={failed}",
            started.elapsed()
        );
        assert_eq!(
            failed, 0,
            "an alternating-users rotation must never break a login"
        );
        assert!(ok >= 50, "the consumer ran throughout ({ok} logins)");
        assert_eq!(users[0], "app_clone");
        assert_eq!(users[1], "app");
        assert!(users.windows(2).all(|w| w[0] != w[1]), "users alternate");
    });
}

#[test]
fn postgres_single_user_rotation_changes_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let server = harness::dev(dir.path());
    harness::runtime().block_on(async {
        let pg = pg_with_app().await;
        let sm = sdk(&server);
        // Without a master: the user changes its own password.
        let name = pg_secrets(&sm, &pg, "single", false).await;
        rotator(&server, "pg-single", "postgres", json!({"strategy": "single-user"})).await;
        single_user_proceeds(&server, &name, "pg-single").await;
        let consumer = consume(sm.clone(), name.clone(), false);
        for i in 0..10 {
            rotate_and_wait(&server.url, &sm, &name, (i == 0).then_some("pg-single")).await;
        }
        let (ok, failed) = consumer.finish().await;
        println!("single-user: 10 rotations; consumer logins ok={ok} failed={failed} (brief failures are expected)");
        let now = current(&sm, &name).await;
        assert_eq!(now["username"], "app");
        assert_ne!(now["password"], "initial");
        pg_login(&now).await.expect("AWSCURRENT logs in");
        let mut old = now.clone();
        old["password"] = json!("initial");
        assert!(pg_login(&old).await.is_err(), "the first password no longer works");
    });
}

#[test]
fn mariadb_rotation_with_both_strategies() {
    let dir = tempfile::tempdir().unwrap();
    let server = harness::dev(dir.path());
    harness::runtime().block_on(async {
        let db = MariaDb::start().unwrap();
        let admin_options = sqlx::mysql::MySqlConnectOptions::new()
            .host(db.host())
            .port(db.port())
            .username(db.superuser())
            .password(db.superuser_password());
        let mut admin = sqlx::MySqlConnection::connect_with(&admin_options)
            .await
            .unwrap();
        for sql in [
            "CREATE DATABASE appdb",
            "CREATE TABLE appdb.app_data (id int)",
            "CREATE USER 'app'@'%' IDENTIFIED BY 'initial'",
            "GRANT SELECT ON appdb.app_data TO 'app'@'%'",
            "CREATE USER 'solo'@'%' IDENTIFIED BY 'initial'",
            "GRANT SELECT ON appdb.app_data TO 'solo'@'%'",
        ] {
            sqlx::raw_sql(sql).execute(&mut admin).await.unwrap();
        }
        let sm = sdk(&server);
        let master = sm
            .create_secret()
            .name("/dba/maria/master")
            .secret_string(db_value(
                "mysql",
                db.host(),
                db.port(),
                db.superuser(),
                db.superuser_password(),
                None,
            ))
            .send()
            .await
            .unwrap();
        let master_arn = master.arn().unwrap();
        for (user, strategy) in [("app", "alternating-users"), ("solo", "single-user")] {
            let name = format!("/app/maria/{user}");
            sm.create_secret()
                .name(&name)
                .secret_string(db_value(
                    "mysql",
                    db.host(),
                    db.port(),
                    user,
                    "initial",
                    Some(master_arn),
                ))
                .send()
                .await
                .unwrap();
            let rotator_name = format!("maria-{user}");
            rotator(
                &server,
                &rotator_name,
                "mysql",
                json!({"strategy": strategy}),
            )
            .await;
            if strategy == "single-user" {
                single_user_proceeds(&server, &name, &rotator_name).await;
            } else {
                // Each previous user is locked once the consumer below has read the
                // new AWSCURRENT (it is an implicit consumer: it reads over the API).
                adoption(
                    &server,
                    &name,
                    &rotator_name,
                    json!({"retire_previous": true}),
                )
                .await;
            }
            let consumer = consume(sm.clone(), name.clone(), true);
            for i in 0..5 {
                rotate_and_wait(
                    &server.url,
                    &sm,
                    &name,
                    (i == 0).then_some(rotator_name.as_str()),
                )
                .await;
                mysql_login(&current(&sm, &name).await)
                    .await
                    .expect("AWSCURRENT logs in");
                if strategy == "alternating-users" {
                    let previous = sm
                        .get_secret_value()
                        .secret_id(&name)
                        .version_stage("AWSPREVIOUS")
                        .send()
                        .await
                        .unwrap();
                    let previous: Value =
                        serde_json::from_str(previous.secret_string().unwrap()).unwrap();
                    assert!(
                        mysql_login(&previous).await.is_err(),
                        "the previous user {} is locked",
                        previous["username"]
                    );
                }
            }
            let (ok, failed) = consumer.finish().await;
            println!("mariadb {strategy}: 5 rotations; consumer logins ok={ok} failed={failed}");
            if strategy == "alternating-users" {
                assert_eq!(failed, 0);
            }
        }
    });
}

/// A server whose rotations retry quickly.
fn fast_retry_server(dir: &std::path::Path, attempts: u32) -> Server {
    harness::start(Launch {
        args: vec!["--dev".into(), "--listen".into(), "127.0.0.1:0".into()],
        envs: vec![
            ("ROTOR_DEV_ROOT_TOKEN", harness::TOKEN.into()),
            ("ROTOR_DEV_ACCESS_KEY_ID", harness::AKID.into()),
            ("ROTOR_DEV_SECRET_ACCESS_KEY", harness::SECRET_KEY.into()),
            ("ROTOR_ROTATION_BACKOFF_MS", "200".into()),
            ("ROTOR_ROTATION_MAX_ATTEMPTS", attempts.to_string()),
        ],
        log_dir: dir,
    })
}

#[test]
fn a_database_that_is_down_delays_rotation_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = fast_retry_server(dir.path(), 30);
    harness::runtime().block_on(async {
        let pg = pg_with_app().await;
        let sm = sdk(&server);
        let name = pg_secrets(&sm, &pg, "down", true).await;
        rotator(
            &server,
            "pg-down",
            "postgres",
            json!({"strategy": "single-user"}),
        )
        .await;
        single_user_proceeds(&server, &name, "pg-down").await;
        pg.pause().unwrap();
        let token = sm
            .rotate_secret()
            .secret_id(&name)
            .rotation_lambda_arn(lambda_arn("pg-down"))
            .rotation_rules(
                aws_sdk_secretsmanager::types::RotationRulesType::builder()
                    .automatically_after_days(30)
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .version_id()
            .unwrap()
            .to_string();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let before = current(&sm, &name).await;
        assert_eq!(
            before["password"], "initial",
            "nothing changes while the database is down"
        );
        pg.resume().unwrap();
        wait_rotated(&server.url, &sm, &name, &token, Duration::from_secs(60)).await;
        let now = current(&sm, &name).await;
        pg_login(&now)
            .await
            .expect("AWSCURRENT logs in once the database is back");
    });
}

#[test]
fn a_rotation_that_gives_up_leaves_a_working_awscurrent() {
    let dir = tempfile::tempdir().unwrap();
    let server = fast_retry_server(dir.path(), 2);
    harness::runtime().block_on(async {
        let pg = pg_with_app().await;
        let sm = sdk(&server);
        let name = pg_secrets(&sm, &pg, "giveup", true).await;
        rotator(
            &server,
            "pg-giveup",
            "postgres",
            json!({"strategy": "single-user"}),
        )
        .await;
        single_user_proceeds(&server, &name, "pg-giveup").await;
        pg.pause().unwrap();
        sm.rotate_secret()
            .secret_id(&name)
            .rotation_lambda_arn(lambda_arn("pg-giveup"))
            .rotation_rules(
                aws_sdk_secretsmanager::types::RotationRulesType::builder()
                    .automatically_after_days(30)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        // Two attempts 200 ms apart: the rotation is failed within a few seconds.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let view = rotation_view(&server, &name).await;
            if let Some(e) = view.get("failed").and_then(Value::as_str) {
                assert!(e.contains("could not be reached"), "{e}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the rotation never failed: {view}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        pg.resume().unwrap();
        let now = current(&sm, &name).await;
        assert_eq!(now["password"], "initial");
        pg_login(&now).await.expect("AWSCURRENT still logs in");
        let d = sm.describe_secret().secret_id(&name).send().await.unwrap();
        assert_eq!(
            d.rotation_enabled(),
            Some(true),
            "a failed rotation keeps the schedule"
        );
    });
}

/// The native API's view of a secret's rotation (the AWS SDK drops Rotor's own
/// DescribeSecret fields).
async fn rotation_view(server: &Server, name: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{}/v1/rotation/{name}", server.url))
        .bearer_auth(harness::TOKEN)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

/// kill -9 at random moments of rotations; after each restart the rotation resumes
/// and finishes, and AWSCURRENT always logs in.
#[test]
fn rotations_survive_kill_9_at_any_step() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let rt = harness::runtime();
    let pg = rt.block_on(pg_with_app());
    let mut server = harness::persistent(&data, dir.path());
    let name = rt.block_on(async {
        let sm = sdk(&server);
        let name = pg_secrets(&sm, &pg, "crash", true).await;
        rotator(
            &server,
            "pg-crash",
            "postgres",
            json!({"strategy": "single-user"}),
        )
        .await;
        single_user_proceeds(&server, &name, "pg-crash").await;
        rotate_and_wait(&server.url, &sm, &name, Some("pg-crash")).await;
        name
    });
    let mut interrupted_after = std::collections::BTreeMap::<usize, usize>::new();
    for round in 0..12u64 {
        let token = rt.block_on(async {
            let sm = sdk(&server);
            let token = sm
                .rotate_secret()
                .secret_id(&name)
                .send()
                .await
                .unwrap()
                .version_id()
                .unwrap()
                .to_string();
            // Somewhere inside the rotation: it takes tens of milliseconds.
            tokio::time::sleep(Duration::from_millis((round * 7) % 60)).await;
            token
        });
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        server = harness::persistent(&data, dir.path());
        rt.block_on(async {
            let sm = sdk(&server);
            wait_rotated(&server.url, &sm, &name, &token, Duration::from_secs(60)).await;
            let now = current(&sm, &name).await;
            pg_login(&now)
                .await
                .expect("AWSCURRENT logs in after a crash");
            let view = rotation_view(&server, &name).await;
            let steps = view["latest"]["steps"].as_array().map_or(0, Vec::len);
            *interrupted_after.entry(steps).or_default() += 1;
            let d = sm.describe_secret().secret_id(&name).send().await.unwrap();
            let currents = d
                .version_ids_to_stages()
                .unwrap()
                .values()
                .filter(|l| l.iter().any(|s| s == "AWSCURRENT"))
                .count();
            assert_eq!(currents, 1, "exactly one AWSCURRENT");
        });
    }
    println!(
        "step records per interrupted rotation (4 = finished before the kill): {interrupted_after:?}"
    );
}
