//! Issue 6's proof for `try`: an application that reads its database credentials
//! through [`Resolver::try_with`] (Kong's `kong.vault.try`) and opens a new
//! PostgreSQL connection per operation sees zero failed operations while an
//! alternating-users rotator rotates them twenty times. The resolver caches the
//! credentials (no watch, a long ttl), so the cached pair goes stale two rotations
//! later: the login refused then is what `try` refreshes and retries.

use crate::harness::{self, client, text};
use rotor_api::sys::RotatorKind;
use rotor_client::resolver::{Resolver, TryError, VaultConfig, Vaults};
use rotor_testkit::PgServer;
use serde_json::{Value, json};
use sqlx::Connection as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const NAME: &str = "/app/try/db";
const REFERENCE: &str = "{vault://rotor/%2Fapp%2Ftry%2Fdb}";

async fn pg_admin(pg: &PgServer) -> sqlx::PgConnection {
    let options = sqlx::postgres::PgConnectOptions::new()
        .host(pg.host())
        .port(pg.port())
        .username(pg.superuser())
        .password(pg.superuser_password())
        .database("postgres");
    sqlx::PgConnection::connect_with(&options).await.unwrap()
}

fn db_value(pg: &PgServer, user: &str, password: &str, master: Option<&str>) -> String {
    let mut v = json!({"engine": "postgres", "host": pg.host(), "port": pg.port(),
                       "username": user, "password": password, "dbname": "postgres"});
    if let Some(m) = master {
        v["masterarn"] = json!(m);
    }
    v.to_string()
}

/// One operation of the application: a new connection with the credentials, a query.
async fn operation(credentials: &Value) -> Result<(), sqlx::Error> {
    let options = sqlx::postgres::PgConnectOptions::new()
        .host(credentials["host"].as_str().unwrap_or_default())
        .port(credentials["port"].as_u64().unwrap_or_default() as u16)
        .username(credentials["username"].as_str().unwrap_or_default())
        .password(credentials["password"].as_str().unwrap_or_default())
        .database("postgres");
    let mut conn = sqlx::PgConnection::connect_with(&options).await?;
    sqlx::query("SELECT count(*) FROM app_data")
        .execute(&mut conn)
        .await?;
    conn.close().await
}

/// PostgreSQL refused the login: 28P01 invalid_password, 28000 invalid authorization.
fn refused(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("28P01" | "28000")))
}

/// Rotates `NAME` and waits until the new version holds AWSCURRENT and nothing holds
/// AWSPENDING.
async fn rotate(c: &rotor_client::Client, first: bool) {
    let started = if first {
        let rules = rotor_client::RotationRules {
            automatically_after_days: Some(30),
            ..Default::default()
        };
        // Rotations here do not wait for this application (whose cache keeps the old
        // credential until it fails): what is measured is `try` recovering from
        // stale credentials, as it must when nothing holds a rotation back.
        let config = rotor_api::rotation::RotationConfig {
            rotator: Some("pg-alt".into()),
            rules: Some(rules),
            rotate_immediately: true,
            version_id: None,
            adoption: Some(rotor_core::model::AdoptionChange {
                wait_for_consumers: Some(false),
                ..Default::default()
            }),
        };
        c.configure_rotation(NAME, &config).await
    } else {
        c.rotate(NAME, None).await
    }
    .unwrap();
    let token = started.version_id.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = c.describe(NAME).await.unwrap();
        let has = |id: &str, label: &str| {
            d.versions
                .get(id)
                .is_some_and(|l| l.iter().any(|s| s == label))
        };
        let pending = d.versions.keys().any(|id| has(id, "AWSPENDING"));
        if has(&token, "AWSCURRENT") && !pending {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "rotation {token} did not finish: {d:?}; {:?}",
            c.rotation(NAME).await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn an_application_using_try_sees_zero_failed_operations_across_alternating_users_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let server = harness::dev(dir.path());
    harness::runtime().block_on(async {
        let pg = PgServer::start().unwrap();
        let mut admin = pg_admin(&pg).await;
        for sql in [
            "CREATE ROLE app LOGIN PASSWORD 'initial'",
            "CREATE TABLE app_data (id int)",
            "GRANT SELECT ON app_data TO app",
        ] {
            sqlx::raw_sql(sql).execute(&mut admin).await.unwrap();
        }
        let c = client(&server);
        let master = c
            .create(
                "/dba/try/master",
                Some(&text(&db_value(
                    &pg,
                    pg.superuser(),
                    pg.superuser_password(),
                    None,
                ))),
                None,
                &[],
                None,
            )
            .await
            .unwrap();
        let master_arn = master.arn.as_str();
        c.create(
            NAME,
            Some(&text(&db_value(&pg, "app", "initial", Some(master_arn)))),
            None,
            &[],
            None,
        )
        .await
        .unwrap();
        c.create_rotator(
            "pg-alt",
            RotatorKind::Postgres,
            json!({"strategy": "alternating-users"}),
            false,
        )
        .await
        .unwrap();

        // The application: its own client and resolver, values kept for an hour.
        let app_client = Arc::new(client(&server));
        let vaults = Vaults::new()
            .with(
                "rotor",
                VaultConfig::rotor(app_client).ttl(Duration::from_secs(3600)),
            )
            .unwrap();
        let resolver = Resolver::new(vaults);
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed, retried) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
        let app = {
            let (stop, ok, failed, retried, first_error) = (
                stop.clone(),
                ok.clone(),
                failed.clone(),
                retried.clone(),
                first_error.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let mut calls = 0;
                    let outcome = resolver
                        .try_with_classifier(REFERENCE, refused, |value| {
                            calls += 1;
                            async move {
                                let credentials: Value =
                                    serde_json::from_str(value.expose_secret()).unwrap_or_default();
                                operation(&credentials).await
                            }
                        })
                        .await;
                    if calls > 1 {
                        retried.fetch_add(1, Ordering::Relaxed);
                    }
                    match outcome {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            let e = match e {
                                TryError::Resolve(e) => e.to_string(),
                                TryError::Operation(e) => e.to_string(),
                            };
                            first_error.lock().unwrap().get_or_insert(e);
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        };

        let started = Instant::now();
        for i in 0..20 {
            rotate(&c, i == 0).await;
            // Let the application run on the new credentials before the next rotation.
            let before = ok.load(Ordering::Relaxed);
            let deadline = Instant::now() + Duration::from_secs(10);
            while ok.load(Ordering::Relaxed) < before + 3 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        stop.store(true, Ordering::Relaxed);
        app.await.unwrap();
        let (ok, failed, retried) = (
            ok.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            retried.load(Ordering::Relaxed),
        );
        println!(
            "20 alternating-users rotations in {:?}: {ok} operations, {failed} failed, {retried} recovered by try",
            started.elapsed()
        );
        assert_eq!(
            failed,
            0,
            "an application using try must see no failed operation: {:?}",
            first_error.lock().unwrap()
        );
        assert!(ok >= 60, "the application ran throughout ({ok} operations)");
        assert!(
            retried >= 5,
            "the cached credentials went stale and try refreshed them ({retried} times)"
        );
    });
}
