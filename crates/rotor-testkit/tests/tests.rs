//! Each server starts, answers `SELECT 1` through sqlx with the superuser's password,
//! refuses a wrong password, and keeps its port and data across pause and resume.

use rotor_testkit::{MariaDb, PgServer};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use std::time::Instant;

fn pg_options(pg: &PgServer, password: &str) -> PgConnectOptions {
    PgConnectOptions::new_without_pgpass()
        .host(pg.host())
        .port(pg.port())
        .username(pg.superuser())
        .password(password)
        .database("postgres")
}

fn mysql_options(db: &MariaDb, password: &str) -> MySqlConnectOptions {
    MySqlConnectOptions::new()
        .host(db.host())
        .port(db.port())
        .username(db.superuser())
        .password(password)
}

#[tokio::test]
async fn postgres_starts_checks_passwords_and_survives_pause() {
    let started = Instant::now();
    let pg = PgServer::start().unwrap();
    eprintln!("PgServer::start took {:?}", started.elapsed());
    let shown = format!("{pg:?}");
    assert!(
        !shown.contains(pg.superuser_password()) && shown.contains("[redacted]"),
        "{shown}"
    );

    let mut conn = pg_options(&pg, pg.superuser_password())
        .connect()
        .await
        .unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    sqlx::query("CREATE TABLE kept (id int)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO kept VALUES (7)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let Err(sqlx::Error::Database(e)) = pg_options(&pg, "wrong").connect().await else {
        panic!("a wrong password was accepted");
    };
    assert_eq!(e.code().as_deref(), Some("28P01"));

    pg.pause().unwrap();
    let refused = pg_options(&pg, pg.superuser_password()).connect().await;
    assert!(matches!(refused, Err(sqlx::Error::Io(_))), "{refused:?}");
    let resumed = Instant::now();
    pg.resume().unwrap();
    eprintln!("PgServer::resume took {:?}", resumed.elapsed());

    let mut conn = PgConnection::connect_with(&pg_options(&pg, pg.superuser_password()))
        .await
        .unwrap();
    let kept: i32 = sqlx::query_scalar("SELECT id FROM kept")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept, 7);
    assert!(
        pg.url("postgres")
            .ends_with(&format!("@127.0.0.1:{}/postgres", pg.port()))
    );
}

#[tokio::test]
async fn mariadb_starts_checks_passwords_and_survives_pause() {
    let started = Instant::now();
    let db = MariaDb::start().unwrap();
    eprintln!("MariaDb::start took {:?}", started.elapsed());

    let mut conn = mysql_options(&db, db.superuser_password())
        .connect()
        .await
        .unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    sqlx::query("CREATE DATABASE t")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t.kept (id int)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t.kept VALUES (7)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let Err(sqlx::Error::Database(e)) = mysql_options(&db, "wrong").connect().await else {
        panic!("a wrong password was accepted");
    };
    let e = e.downcast_ref::<sqlx::mysql::MySqlDatabaseError>();
    assert_eq!(e.number(), 1045);

    db.pause().unwrap();
    let refused = mysql_options(&db, db.superuser_password()).connect().await;
    assert!(matches!(refused, Err(sqlx::Error::Io(_))), "{refused:?}");
    let resumed = Instant::now();
    db.resume().unwrap();
    eprintln!("MariaDb::resume took {:?}", resumed.elapsed());

    let mut conn = MySqlConnection::connect_with(&mysql_options(&db, db.superuser_password()))
        .await
        .unwrap();
    let kept: i32 = sqlx::query_scalar("SELECT id FROM t.kept")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept, 7);
}
