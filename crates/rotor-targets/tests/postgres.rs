use rotor_targets::{Driver, Login, Postgres, TargetErrorKind};
use rotor_testkit::PgServer;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions};

const DRIVER: &dyn Driver = &Postgres;

fn login(pg: &PgServer, user: &str, password: &str) -> Login {
    Login {
        host: pg.host().into(),
        port: pg.port(),
        username: user.into(),
        password: password.into(),
        dbname: Some("postgres".into()),
    }
}

fn admin(pg: &PgServer) -> Login {
    login(pg, pg.superuser(), pg.superuser_password())
}

async fn connect(pg: &PgServer, user: &str, password: &str) -> PgConnection {
    PgConnectOptions::new_without_pgpass()
        .host(pg.host())
        .port(pg.port())
        .username(user)
        .password(password)
        .database("postgres")
        .connect()
        .await
        .unwrap()
}

/// Runs setup statements as the superuser.
async fn setup(pg: &PgServer, sql: &str) {
    let mut conn = connect(pg, pg.superuser(), pg.superuser_password()).await;
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
}

/// Whether `sql` succeeds on `conn`; a refusal must be for lack of privilege.
async fn allowed(conn: &mut PgConnection, sql: &str) -> bool {
    match sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
    {
        Ok(_) => true,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => false,
        Err(e) => panic!("{sql}: {e}"),
    }
}

async fn assert_refused(pg: &PgServer, user: &str, password: &str) {
    let e = DRIVER
        .check_login(&login(pg, user, password))
        .await
        .unwrap_err();
    assert_eq!(e.kind, TargetErrorKind::AuthFailed, "{e}");
    assert!(!e.message.contains(password), "{e}");
}

#[tokio::test]
async fn set_password_replaces_the_old_one() {
    let pg = PgServer::start().unwrap();
    setup(&pg, "CREATE ROLE app LOGIN PASSWORD 'old-password'").await;
    DRIVER
        .check_login(&login(&pg, "app", "old-password"))
        .await
        .unwrap();

    DRIVER
        .set_password(&admin(&pg), "app", "new-password")
        .await
        .unwrap();

    assert_refused(&pg, "app", "old-password").await;
    DRIVER
        .check_login(&login(&pg, "app", "new-password"))
        .await
        .unwrap();
    let mut conn = connect(&pg, pg.superuser(), pg.superuser_password()).await;
    let stored: String =
        sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
}

#[tokio::test]
async fn a_role_changes_its_own_password() {
    let pg = PgServer::start().unwrap();
    setup(&pg, "CREATE ROLE app LOGIN PASSWORD 'old-password'").await;

    let own = login(&pg, "app", "old-password");
    DRIVER
        .set_password(&own, "app", "new-password")
        .await
        .unwrap();

    assert_refused(&pg, "app", "old-password").await;
    DRIVER
        .check_login(&login(&pg, "app", "new-password"))
        .await
        .unwrap();
}

const SHOP: &str = "
    CREATE ROLE app LOGIN PASSWORD 'app-password' CREATEDB;
    CREATE ROLE readers NOLOGIN;
    GRANT readers TO app;
    CREATE SCHEMA shop;
    GRANT USAGE ON SCHEMA shop TO app;
    CREATE TABLE shop.orders (id int);
    GRANT SELECT ON shop.orders TO app;
    CREATE TABLE shop.catalog (id int);
    GRANT SELECT ON shop.catalog TO readers;
    CREATE TABLE shop.owned (id int);
    ALTER TABLE shop.owned OWNER TO app;
    CREATE TABLE shop.people (id int, salary int);
    GRANT SELECT (id) ON shop.people TO app;
    CREATE TABLE shop.secrets (id int);
    CREATE SEQUENCE shop.ids;
    GRANT USAGE ON SEQUENCE shop.ids TO app;
    CREATE FUNCTION shop.answer() RETURNS int LANGUAGE sql AS 'SELECT 42';
    REVOKE EXECUTE ON FUNCTION shop.answer() FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION shop.answer() TO app;
    CREATE FUNCTION shop.hidden() RETURNS int LANGUAGE sql AS 'SELECT 0';
    REVOKE EXECUTE ON FUNCTION shop.hidden() FROM PUBLIC;
";

#[tokio::test]
async fn a_clone_can_do_what_its_source_can_and_no_more() {
    let pg = PgServer::start().unwrap();
    setup(&pg, SHOP).await;

    DRIVER
        .ensure_clone(&admin(&pg), "app", "app_clone", "clone-password")
        .await
        .unwrap();

    DRIVER
        .check_login(&login(&pg, "app", "app-password"))
        .await
        .unwrap();
    DRIVER
        .check_login(&login(&pg, "app_clone", "clone-password"))
        .await
        .unwrap();
    let mut clone = connect(&pg, "app_clone", "clone-password").await;
    for sql in [
        "SELECT * FROM shop.orders",
        "SELECT * FROM shop.catalog",
        "SELECT * FROM shop.owned",
        "INSERT INTO shop.owned VALUES (1)",
        "SELECT id FROM shop.people",
        "SELECT nextval('shop.ids')",
        "SELECT shop.answer()",
    ] {
        assert!(allowed(&mut clone, sql).await, "clone refused: {sql}");
    }
    for sql in [
        "SELECT * FROM shop.secrets",
        "INSERT INTO shop.orders VALUES (1)",
        "SELECT salary FROM shop.people",
        "SELECT shop.hidden()",
        "CREATE TABLE shop.mine (id int)",
        "ALTER TABLE shop.owned ADD COLUMN x int",
    ] {
        assert!(!allowed(&mut clone, sql).await, "clone allowed: {sql}");
    }
    let createdb: bool =
        sqlx::query_scalar("SELECT rolcreatedb FROM pg_roles WHERE rolname = 'app_clone'")
            .fetch_one(&mut clone)
            .await
            .unwrap();
    assert!(createdb);
}

#[tokio::test]
async fn ensuring_an_existing_clone_resets_its_password_and_catches_up_on_grants() {
    let pg = PgServer::start().unwrap();
    setup(&pg, SHOP).await;
    DRIVER
        .ensure_clone(&admin(&pg), "app", "app_clone", "first")
        .await
        .unwrap();
    setup(
        &pg,
        "CREATE TABLE shop.later (id int); GRANT SELECT ON shop.later TO app",
    )
    .await;

    DRIVER
        .ensure_clone(&admin(&pg), "app", "app_clone", "second")
        .await
        .unwrap();

    assert_refused(&pg, "app_clone", "first").await;
    let mut clone = connect(&pg, "app_clone", "second").await;
    assert!(allowed(&mut clone, "SELECT * FROM shop.later").await);

    // The next alternating rotation clones the other way round.
    DRIVER
        .ensure_clone(&admin(&pg), "app_clone", "app", "third")
        .await
        .unwrap();
    assert_refused(&pg, "app", "app-password").await;
    let mut app = connect(&pg, "app", "third").await;
    assert!(allowed(&mut app, "SELECT * FROM shop.orders").await);
    assert!(!allowed(&mut app, "SELECT * FROM shop.secrets").await);
}

#[tokio::test]
async fn a_stopped_server_is_unreachable() {
    let pg = PgServer::start().unwrap();
    pg.pause().unwrap();

    let e = DRIVER.check_login(&admin(&pg)).await.unwrap_err();
    assert_eq!(e.kind, TargetErrorKind::Unreachable, "{e}");
    let e = DRIVER
        .set_password(&admin(&pg), "app", "x")
        .await
        .unwrap_err();
    assert_eq!(e.kind, TargetErrorKind::Unreachable, "{e}");

    pg.resume().unwrap();
    DRIVER.check_login(&admin(&pg)).await.unwrap();
}

#[tokio::test]
async fn user_names_with_quotes_are_escaped() {
    let pg = PgServer::start().unwrap();
    let name = r#"o'brien "the" \admin"#;
    let clone = r#"o'brien "the" \admin_clone"#;
    setup(
        &pg,
        r#"CREATE ROLE "o'brien ""the"" \admin" LOGIN PASSWORD 'old'"#,
    )
    .await;

    DRIVER.set_password(&admin(&pg), name, "new").await.unwrap();
    assert_refused(&pg, name, "old").await;
    DRIVER.check_login(&login(&pg, name, "new")).await.unwrap();

    DRIVER
        .ensure_clone(&admin(&pg), name, clone, "cloned")
        .await
        .unwrap();
    DRIVER
        .check_login(&login(&pg, clone, "cloned"))
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_names_and_unknown_roles_are_refused_clearly() {
    let pg = PgServer::start().unwrap();
    let e = DRIVER
        .set_password(&admin(&pg), &"x".repeat(64), "pw")
        .await
        .unwrap_err();
    assert_eq!(e.kind, TargetErrorKind::Other);
    assert!(e.message.contains("longer than 63 bytes"), "{e}");

    let e = DRIVER
        .set_password(&admin(&pg), "nobody", "pw")
        .await
        .unwrap_err();
    assert_eq!(e.kind, TargetErrorKind::Other);
    assert!(e.message.contains("does not exist"), "{e}");
    assert!(!e.message.contains("SCRAM"), "{e}");

    let e = DRIVER
        .ensure_clone(&admin(&pg), "nobody", "nobody_clone", "pw")
        .await
        .unwrap_err();
    assert!(e.message.contains("does not exist"), "{e}");
}
