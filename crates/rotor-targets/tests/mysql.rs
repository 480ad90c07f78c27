use rotor_targets::{Driver, Login, MySql, TargetErrorKind};
use rotor_testkit::MariaDb;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{AssertSqlSafe, ConnectOptions};

const DRIVER: &dyn Driver = &MySql;

fn login(db: &MariaDb, user: &str, password: &str) -> Login {
    Login {
        host: db.host().into(),
        port: db.port(),
        username: user.into(),
        password: password.into(),
        dbname: None,
    }
}

fn admin(db: &MariaDb) -> Login {
    login(db, db.superuser(), db.superuser_password())
}

async fn connect(db: &MariaDb, user: &str, password: &str) -> MySqlConnection {
    MySqlConnectOptions::new()
        .host(db.host())
        .port(db.port())
        .username(user)
        .password(password)
        .connect()
        .await
        .unwrap()
}

/// Runs setup statements as root, one by one.
async fn setup(db: &MariaDb, statements: &[&str]) {
    let mut conn = connect(db, db.superuser(), db.superuser_password()).await;
    for sql in statements {
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Whether `sql` succeeds on `conn`; a refusal must be for lack of privilege.
async fn allowed(conn: &mut MySqlConnection, sql: &str) -> bool {
    match sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
    {
        Ok(_) => true,
        // ER_TABLEACCESS_DENIED_ERROR, ER_COLUMNACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR
        Err(sqlx::Error::Database(e)) if matches!(mysql_number(&*e), 1142 | 1143 | 1044) => false,
        Err(e) => panic!("{sql}: {e}"),
    }
}

fn mysql_number(e: &dyn sqlx::error::DatabaseError) -> u16 {
    e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .map_or(0, |e| e.number())
}

async fn assert_refused(db: &MariaDb, user: &str, password: &str) {
    let e = DRIVER
        .check_login(&login(db, user, password))
        .await
        .unwrap_err();
    assert_eq!(e.kind, TargetErrorKind::AuthFailed, "{e}");
    assert!(!e.message.contains(password), "{e}");
}

/// The hashes stored for `user` on each of its hosts.
async fn stored_hashes(db: &MariaDb, user: &str) -> Vec<(String, String)> {
    let mut conn = connect(db, db.superuser(), db.superuser_password()).await;
    sqlx::query_as(
        "SELECT CAST(Host AS CHAR), CAST(authentication_string AS CHAR) FROM mysql.user \
         WHERE User = ? ORDER BY 1",
    )
    .bind(user)
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn set_password_replaces_the_old_one_on_every_host() {
    let db = MariaDb::start().unwrap();
    setup(
        &db,
        &[
            "CREATE USER 'app'@'%' IDENTIFIED BY 'old-password'",
            "CREATE USER 'app'@'10.0.0.0/255.0.0.0' IDENTIFIED BY 'other-password'",
        ],
    )
    .await;
    DRIVER
        .check_login(&login(&db, "app", "old-password"))
        .await
        .unwrap();

    DRIVER
        .set_password(&admin(&db), "app", "new-password")
        .await
        .unwrap();

    assert_refused(&db, "app", "old-password").await;
    DRIVER
        .check_login(&login(&db, "app", "new-password"))
        .await
        .unwrap();
    let hashes = stored_hashes(&db, "app").await;
    assert_eq!(hashes.len(), 2);
    assert!(hashes.iter().all(|(_, h)| h == &hashes[0].1), "{hashes:?}");
}

#[tokio::test]
async fn a_user_changes_its_own_password() {
    let db = MariaDb::start().unwrap();
    setup(&db, &["CREATE USER 'app'@'%' IDENTIFIED BY 'old-password'"]).await;

    let own = login(&db, "app", "old-password");
    DRIVER
        .set_password(&own, "app", "new-password")
        .await
        .unwrap();

    assert_refused(&db, "app", "old-password").await;
    DRIVER
        .check_login(&login(&db, "app", "new-password"))
        .await
        .unwrap();
}

const SHOP: &[&str] = &[
    "CREATE DATABASE shop",
    "CREATE TABLE shop.orders (id int)",
    "CREATE TABLE shop.catalog (id int)",
    "CREATE TABLE shop.people (id int, salary int)",
    "CREATE TABLE shop.secrets (id int)",
    "CREATE DATABASE other",
    "CREATE TABLE other.t (id int)",
    "CREATE USER 'app'@'%' IDENTIFIED BY 'app-password'",
    "CREATE USER 'app'@'localhost' IDENTIFIED BY 'app-password'",
    "GRANT SELECT ON shop.orders TO 'app'@'%'",
    "GRANT SELECT (id) ON shop.people TO 'app'@'%'",
    "GRANT SELECT, INSERT ON other.* TO 'app'@'%'",
    "CREATE ROLE readers",
    "GRANT SELECT ON shop.catalog TO readers",
    "GRANT readers TO 'app'@'%'",
    "SET DEFAULT ROLE readers FOR 'app'@'%'",
];

#[tokio::test]
async fn a_clone_can_do_what_its_source_can_and_no_more() {
    let db = MariaDb::start().unwrap();
    setup(&db, SHOP).await;

    DRIVER
        .ensure_clone(&admin(&db), "app", "app_clone", "clone-password")
        .await
        .unwrap();

    DRIVER
        .check_login(&login(&db, "app", "app-password"))
        .await
        .unwrap();
    DRIVER
        .check_login(&login(&db, "app_clone", "clone-password"))
        .await
        .unwrap();
    let hosts: Vec<String> = stored_hashes(&db, "app_clone")
        .await
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    assert_eq!(hosts, ["%", "localhost"]);
    let mut clone = connect(&db, "app_clone", "clone-password").await;
    for sql in [
        "SELECT * FROM shop.orders",
        "SELECT * FROM shop.catalog",
        "SELECT id FROM shop.people",
        "SELECT * FROM other.t",
        "INSERT INTO other.t VALUES (1)",
    ] {
        assert!(allowed(&mut clone, sql).await, "clone refused: {sql}");
    }
    for sql in [
        "SELECT * FROM shop.secrets",
        "INSERT INTO shop.orders VALUES (1)",
        "SELECT salary FROM shop.people",
        "DELETE FROM other.t",
        "CREATE TABLE shop.mine (id int)",
    ] {
        assert!(!allowed(&mut clone, sql).await, "clone allowed: {sql}");
    }
}

#[tokio::test]
async fn ensuring_an_existing_clone_resets_its_password_and_catches_up_on_grants() {
    let db = MariaDb::start().unwrap();
    setup(&db, SHOP).await;
    DRIVER
        .ensure_clone(&admin(&db), "app", "app_clone", "first")
        .await
        .unwrap();
    setup(
        &db,
        &[
            "CREATE TABLE shop.later (id int)",
            "GRANT SELECT ON shop.later TO 'app'@'%'",
        ],
    )
    .await;

    DRIVER
        .ensure_clone(&admin(&db), "app", "app_clone", "second")
        .await
        .unwrap();

    assert_refused(&db, "app_clone", "first").await;
    let mut clone = connect(&db, "app_clone", "second").await;
    assert!(allowed(&mut clone, "SELECT * FROM shop.later").await);

    // The next alternating rotation clones the other way round.
    DRIVER
        .ensure_clone(&admin(&db), "app_clone", "app", "third")
        .await
        .unwrap();
    assert_refused(&db, "app", "app-password").await;
    let mut app = connect(&db, "app", "third").await;
    assert!(allowed(&mut app, "SELECT * FROM shop.orders").await);
    assert!(!allowed(&mut app, "SELECT * FROM shop.secrets").await);
}

#[tokio::test]
async fn a_stopped_server_is_unreachable() {
    let db = MariaDb::start().unwrap();
    db.pause().unwrap();

    let e = DRIVER.check_login(&admin(&db)).await.unwrap_err();
    assert_eq!(e.kind, TargetErrorKind::Unreachable, "{e}");
    let e = DRIVER
        .set_password(&admin(&db), "app", "x")
        .await
        .unwrap_err();
    assert_eq!(e.kind, TargetErrorKind::Unreachable, "{e}");

    db.resume().unwrap();
    DRIVER.check_login(&admin(&db)).await.unwrap();
}

#[tokio::test]
async fn user_names_with_quotes_are_escaped() {
    let db = MariaDb::start().unwrap();
    let name = r#"o'brien "the" `\admin"#;
    let clone = r#"o'brien "the" `\admin_clone"#;
    setup(
        &db,
        &[
            r#"CREATE USER `o'brien "the" ``\admin`@`%` IDENTIFIED BY 'old'"#,
            r#"GRANT SELECT ON mysql.db TO `o'brien "the" ``\admin`@`%`"#,
        ],
    )
    .await;

    DRIVER.set_password(&admin(&db), name, "new").await.unwrap();
    assert_refused(&db, name, "old").await;
    DRIVER.check_login(&login(&db, name, "new")).await.unwrap();

    DRIVER
        .ensure_clone(&admin(&db), name, clone, "cloned")
        .await
        .unwrap();
    DRIVER
        .check_login(&login(&db, clone, "cloned"))
        .await
        .unwrap();
    let mut conn = connect(&db, clone, "cloned").await;
    assert!(allowed(&mut conn, "SELECT * FROM mysql.db").await);
}

#[tokio::test]
async fn bad_names_and_unknown_users_are_refused_clearly() {
    let db = MariaDb::start().unwrap();
    let e = DRIVER
        .set_password(&admin(&db), &"x".repeat(81), "pw")
        .await
        .unwrap_err();
    assert_eq!(e.kind, TargetErrorKind::Other);
    assert!(e.message.contains("longer than 80 characters"), "{e}");

    let e = DRIVER
        .set_password(&admin(&db), "nobody", "pw")
        .await
        .unwrap_err();
    assert_eq!(e.kind, TargetErrorKind::Other);
    assert!(e.message.contains("does not exist"), "{e}");

    let e = DRIVER
        .ensure_clone(&admin(&db), "nobody", "nobody_clone", "pw")
        .await
        .unwrap_err();
    assert!(e.message.contains("does not exist"), "{e}");
}
