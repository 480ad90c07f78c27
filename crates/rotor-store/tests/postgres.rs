//! The conformance suite against the PostgreSQL backend, one fresh database per check
//! on a real PostgreSQL server shared by the checks that run at the same time; then
//! what only a shared database can show: two nodes writing the same secrets, and
//! nodes starting together on a fresh database.

use rotor_core::ErrorKind;
use rotor_core::label::{AWSCURRENT, LabelBoard};
use rotor_store::postgres::{ForwardConfig, PgStore};
use rotor_store::{Lookup, Mutation, NewVersion, Outcome, SealedValue, Store};
use rotor_testkit::PgServer;
use sqlx::Connection as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The server, kept while any check uses it: dropping the last handle stops it, so
/// nothing outlives the test binary.
static SERVER: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());

async fn server() -> Arc<PgServer> {
    tokio::task::spawn_blocking(|| {
        let mut shared = SERVER.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = shared.upgrade() {
            return server;
        }
        let server = Arc::new(PgServer::start().expect("PostgreSQL starts"));
        *shared = Arc::downgrade(&server);
        server
    })
    .await
    .expect("server task")
}

/// A new, empty database on the shared server; its URL.
async fn fresh_database(pg: &PgServer, name: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let db = format!("{name}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let mut admin = sqlx::PgConnection::connect(&pg.url("postgres"))
        .await
        .expect("admin connection");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut admin)
        .await
        .expect("database created");
    admin.close().await.expect("admin connection closes");
    pg.url(&db)
}

async fn fresh(name: &str) -> (Arc<PgServer>, Arc<dyn Store>) {
    let pg = server().await;
    let url = fresh_database(&pg, name).await;
    let store = PgStore::connect(&url).await.expect("store connects");
    (pg, Arc::new(store))
}

rotor_store::conformance_tests!(fresh);

fn sealed(value: &str) -> SealedValue {
    SealedValue {
        ciphertext: format!("ct:{value}").into_bytes(),
        wrapped_key: b"wk".to_vec(),
        algorithm: "test".into(),
        key_id: "mk-test".into(),
        digest: format!("digest:{value}").into_bytes(),
    }
}

fn version(id: &str, value: &str) -> NewVersion {
    NewVersion {
        source: None,
        id: id.into(),
        stages: vec![AWSCURRENT.into()],
        sealed: sealed(value),
    }
}

/// Two nodes on one database put versions to the same secrets at once, and half of
/// the version ids are put by both: with the same value (a replay for whichever comes
/// second) or with another (a clash). Afterwards every acknowledged put is there with
/// its value, each id was created once, each secret has one `AWSCURRENT`, events are
/// numbered without gaps, and both nodes' feeds reach the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_write_the_same_secrets() {
    let pg = server().await;
    let url = fresh_database(&pg, "two_nodes").await;
    let a = Arc::new(PgStore::connect(&url).await.unwrap());
    let b = Arc::new(PgStore::connect(&url).await.unwrap());
    two_nodes_write(a, b).await;
}

/// The same, with write forwarding on: the node that is not the writer sends its puts
/// to the one that is, and every rule above still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_write_the_same_secrets_through_the_writer() {
    let (_pg, _, a, b) = forwarding_pair("two_nodes_forwarding", 1).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let (writer, sender) = elected(&a, &b).await;
    two_nodes_write(a.clone(), b.clone()).await;
    let (w, s) = (writer.forwarding().unwrap(), sender.forwarding().unwrap());
    assert!(s.sent > 0, "puts were forwarded: {s:?}");
    assert_eq!(w.received, s.sent, "the writer received what was sent");
    assert_eq!(s.fell_back, 0, "none had to be committed locally");
}

/// A secret named `name` created through `store`; its id.
async fn create(store: &dyn Store, name: &str) -> i64 {
    let out = store
        .apply(
            Mutation::CreateSecret {
                name: name.into(),
                arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf"),
                description: None,
                kms_key_id: None,
                tags: vec![],
                first_version: Some(version("first", "0")),
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let Outcome::Created { id, .. } = out else {
        panic!("{out:?}")
    };
    id
}

async fn put(store: &dyn Store, secret: i64, id: &str, value: &str) -> rotor_core::Result<Outcome> {
    let put = Mutation::PutVersion {
        secret,
        version: version(id, value),
    };
    store.apply(put, chrono::Utc::now()).await
}

/// A forwarded put's refusal reaches the caller with its kind, and a forwarded replay
/// is a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_put_is_answered_as_a_local_one() {
    let (_pg, _, a, b) = forwarding_pair("forwarded_answers", 2).await;
    let (writer, sender) = elected(&a, &b).await;
    let secret = create(sender, "fw").await;
    let first = put(sender, secret, "v1", "one").await.unwrap();
    assert!(
        matches!(first, Outcome::Version { replayed: false, ref labels, .. } if labels == &[AWSCURRENT]),
        "{first:?}"
    );
    let again = put(sender, secret, "v1", "one").await.unwrap();
    assert!(
        matches!(again, Outcome::Version { replayed: true, .. }),
        "{again:?}"
    );
    let clash = put(sender, secret, "v1", "two").await.unwrap_err();
    assert_eq!(clash.kind, ErrorKind::ResourceExists, "{clash:?}");
    let missing = put(sender, secret + 1000, "v1", "one").await.unwrap_err();
    assert_eq!(missing.kind, ErrorKind::ResourceNotFound, "{missing:?}");
    assert_eq!(sender.forwarding().unwrap().sent, 4);
    assert_eq!(writer.forwarding().unwrap().received, 4);
}

/// Nodes that do not share the key do not forward to each other: the sender's puts
/// are committed where they were made, and the writer accepts none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_key_cannot_forward() {
    let pg = server().await;
    let url = fresh_database(&pg, "forwarding_keys").await;
    let a = forwarding(&url, &forwarding_key(3)).await;
    let b = forwarding(&url, &forwarding_key(4)).await;
    let (writer, sender) = elected(&a, &b).await;
    let secret = create(sender, "keys").await;
    for i in 0..5 {
        put(sender, secret, &format!("v{i}"), "x").await.unwrap();
    }
    let (w, s) = (writer.forwarding().unwrap(), sender.forwarding().unwrap());
    assert_eq!(
        w.received, 0,
        "the writer took nothing from a node without its key"
    );
    assert_eq!(s.sent, 0);
    assert!(s.fell_back >= 1, "{s:?}");
    assert_eq!(writer.list_versions(secret).await.unwrap().len(), 6);
}

/// Someone who can reach the writer's port but lacks the key cannot have a put
/// committed: a forged handshake is refused, and so is a frame sent after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_refuses_a_peer_that_does_not_prove_the_key() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (_pg, url, a, b) = forwarding_pair("forwarding_attack", 5).await;
    let (writer, _) = elected(&a, &b).await;
    let secret = create(writer, "target").await;
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    let address: String = sqlx::query_scalar("SELECT holder FROM leases WHERE name = $1")
        .bind(rotor_store::postgres::WRITER_LEASE)
        .fetch_one(&mut db)
        .await
        .unwrap();

    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(&[b"rotorfw1".as_slice(), &[7u8; 32]].concat())
        .await
        .unwrap();
    let mut challenge = [0u8; 64];
    stream.read_exact(&mut challenge).await.unwrap();
    // A proof made with another key, then a put as the protocol frames it.
    let wrong = forwarding_key(6);
    let proof = aws_lc_rs::hmac::sign(
        &wrong,
        &[b"sender".as_slice(), &[7u8; 32], &challenge[..32]].concat(),
    );
    let body = format!(
        r#"{{"id":0,"puts":[{{"secret":{secret},"version":"forged","source":null,"stages":["AWSCURRENT"],"ciphertext":"AA==","wrapped_key":"AA==","algorithm":"test","key_id":"mk-test","digest":"AA==","now_ms":0}}]}}"#
    );
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body.as_bytes());
    frame.extend_from_slice(&[0u8; 32]);
    let _ = stream.write_all(&[proof.as_ref(), &frame].concat()).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the writer closes the connection");
    assert!(rest.is_empty(), "and answers nothing");
    assert!(
        writer
            .load_version(secret, "forged")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(writer.forwarding().unwrap().received, 0);
}

/// When the writer dies, the other node's puts are committed all the same (locally,
/// until it takes the lease over itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_go_on_when_the_writer_dies() {
    let (_pg, _, a, b) = forwarding_pair("forwarding_failover", 7).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let (writer, sender) = match elected(&a, &b).await {
        (w, _) if std::ptr::eq(w, &*a) => (a, b),
        _ => (b, a),
    };
    let secret = create(&*sender, "failover").await;
    put(&*sender, secret, "before", "x").await.unwrap();
    assert_eq!(sender.forwarding().unwrap().sent, 1);
    // Dropped without closing, as a crash leaves it: no lease handed over.
    drop(writer);
    for i in 0..20 {
        let done = tokio::time::timeout(
            Duration::from_secs(15),
            put(&*sender, secret, &format!("after{i}"), "y"),
        )
        .await
        .expect("a put is answered while the writer is gone");
        done.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let s = sender.forwarding().unwrap();
    assert!(
        s.writer,
        "the surviving node took the writer lease over: {s:?}"
    );
    assert_eq!(sender.list_versions(secret).await.unwrap().len(), 22);
}

/// A node listening on every address must say which one the others reach it at:
/// advertising `0.0.0.0` would send each node's puts to itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_on_every_address_needs_an_advertised_one() {
    let pg = server().await;
    let url = fresh_database(&pg, "forwarding_unspecified").await;
    let config = ForwardConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        advertise: None,
        key: forwarding_key(8),
    };
    let e = PgStore::connect_with(&url, Some(config)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidParameter, "{e}");
}

/// Two forwarding nodes sharing key `n` on a fresh database named after `name`: the
/// server (kept while they run), the URL, the nodes.
async fn forwarding_pair(name: &str, n: u8) -> (Arc<PgServer>, String, PgStore, PgStore) {
    let pg = server().await;
    let url = fresh_database(&pg, name).await;
    let key = forwarding_key(n);
    let (a, b) = (forwarding(&url, &key).await, forwarding(&url, &key).await);
    (pg, url, a, b)
}

/// An HMAC key for forwarding, one per `n`.
fn forwarding_key(n: u8) -> aws_lc_rs::hmac::Key {
    aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[n; 32])
}

async fn forwarding(url: &str, key: &aws_lc_rs::hmac::Key) -> PgStore {
    let config = ForwardConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        advertise: None,
        key: key.clone(),
    };
    PgStore::connect_with(url, Some(config))
        .await
        .expect("store connects")
}

/// Waits until one of `a` and `b` holds the writer lease and the other sends its puts
/// to it: (the writer, the other).
async fn elected<'a>(a: &'a PgStore, b: &'a PgStore) -> (&'a PgStore, &'a PgStore) {
    for _ in 0..100 {
        let (sa, sb) = (a.forwarding().unwrap(), b.forwarding().unwrap());
        if sa.writer && sb.forwards {
            return (a, b);
        }
        if sb.writer && sa.forwards {
            return (b, a);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no writer elected in 10 s");
}

async fn two_nodes_write(a: Arc<PgStore>, b: Arc<PgStore>) {
    const SECRETS: usize = 4;
    const PUTS: usize = 160;
    let (a, b): (Arc<dyn Store>, Arc<dyn Store>) = (a, b);
    let t0 = chrono::Utc::now();
    let mut ids = Vec::new();
    for s in 0..SECRETS {
        let node = if s % 2 == 0 { &a } else { &b };
        let out = node
            .apply(
                Mutation::CreateSecret {
                    name: format!("s{s}"),
                    arn: format!(
                        "arn:aws:secretsmanager:us-east-1:123456789012:secret:s{s}-AbCdEf"
                    ),
                    description: None,
                    kms_key_id: None,
                    tags: vec![],
                    first_version: Some(version("first", "0")),
                },
                t0,
            )
            .await
            .unwrap();
        let Outcome::Created { id, .. } = out else {
            panic!("{out:?}")
        };
        ids.push(id);
    }

    // Node a puts p0 to p159; node b puts the odd ones too (the same value when i % 4 == 1,
    // another when i % 4 == 3) and its own q0 to q159.
    let mut tasks = Vec::new();
    for i in 0..PUTS {
        let secret = ids[i % SECRETS];
        let (node_a, node_b) = (a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            let id = format!("p{i}");
            let value = format!("a{i}");
            let put = Mutation::PutVersion {
                secret,
                version: version(&id, &value),
            };
            done.push((secret, id.clone(), value, node_a.apply(put, t0).await));
            let id = format!("q{i}");
            let value = format!("b{i}");
            let put = Mutation::PutVersion {
                secret,
                version: version(&id, &value),
            };
            done.push((secret, id, value, node_b.apply(put, t0).await));
            done
        }));
        if i % 2 == 1 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("p{i}");
                let value = if i % 4 == 1 {
                    format!("a{i}")
                } else {
                    format!("other{i}")
                };
                let put = Mutation::PutVersion {
                    secret,
                    version: version(&id, &value),
                };
                vec![(secret, id, value, b.apply(put, t0).await)]
            }));
        }
    }
    let (mut created, mut replayed, mut clashed) = (0, 0, 0);
    let mut acknowledged = Vec::new();
    for t in tasks {
        for (secret, id, value, result) in t.await.unwrap() {
            match result {
                Ok(Outcome::Version {
                    replayed: false, ..
                }) => created += 1,
                Ok(Outcome::Version { replayed: true, .. }) => replayed += 1,
                Err(e) if e.kind == ErrorKind::ResourceExists => {
                    clashed += 1;
                    continue;
                }
                other => panic!("put {id}: {other:?}"),
            }
            acknowledged.push((secret, id, value));
        }
    }
    assert_eq!(created, 2 * PUTS, "each id is created once");
    assert_eq!(replayed + clashed, PUTS / 2);
    assert_eq!(
        clashed,
        PUTS / 4,
        "a different value for the same id clashes"
    );

    for (secret, id, value) in &acknowledged {
        let stored = b
            .load_version(*secret, id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged put {id} is stored"));
        // A clashing put that won the race stored its own value; every acknowledged
        // value is the stored one.
        assert_eq!(&stored.sealed, &sealed(value), "{id}");
    }
    for (s, id) in ids.iter().enumerate() {
        let r = a
            .load(&Lookup::Name(format!("s{s}")))
            .await
            .unwrap()
            .unwrap();
        let board =
            LabelBoard::from_versions(r.versions.iter().map(|v| (v.id.clone(), v.labels.clone())));
        board.check_invariants().unwrap();
        let current = r
            .versions
            .iter()
            .filter(|v| v.labels.iter().any(|l| l == AWSCURRENT))
            .count();
        assert_eq!(current, 1, "s{s} has one AWSCURRENT");
        let versions = a.list_versions(*id).await.unwrap();
        assert_eq!(versions.len(), 1 + 2 * PUTS / SECRETS, "s{s}: {versions:?}");
    }

    let events = a.events(0, 100_000).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "sequence numbers have no gaps");
    assert_eq!(events.len(), 2 * SECRETS + 2 * PUTS);
    let last = *seqs.last().unwrap();
    for (node, store) in [("a", &a), ("b", &b)] {
        let mut feed = store.event_feed();
        tokio::time::timeout(Duration::from_secs(5), feed.wait_for(|seq| *seq == last))
            .await
            .unwrap_or_else(|_| panic!("node {node}'s feed reaches {last}"))
            .unwrap();
    }
    a.close().await;
    b.close().await;
}

/// A change committed on one node reaches a watcher on another; a closed node
/// refuses writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_event_reaches_the_feed() {
    let pg = server().await;
    let url = fresh_database(&pg, "feed").await;
    let a = PgStore::connect(&url).await.unwrap();
    let b = PgStore::connect(&url).await.unwrap();
    let mut feed = b.event_feed();
    assert_eq!(*feed.borrow_and_update(), 0);
    for n in 1..=5 {
        a.apply(
            Mutation::AppendEvent {
                kind: "test.ping".into(),
                secret: None,
                detail: "{}".into(),
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        tokio::time::timeout(Duration::from_secs(5), feed.wait_for(|seq| *seq >= n))
            .await
            .expect("the event reaches node b")
            .unwrap();
    }
    a.close().await;
    let refused = a
        .apply(
            Mutation::RecordMasterKey {
                key_id: "late".into(),
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.message, "The store is shutting down");
    b.close().await;
}

/// Three nodes starting at once on a fresh database: each connects, the migrations
/// are applied once (the counter row they seed exists once), and all three work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let pg = server().await;
    for round in 0..5 {
        let url = fresh_database(&pg, "start").await;
        let (a, b, c) = tokio::join!(
            PgStore::connect(&url),
            PgStore::connect(&url),
            PgStore::connect(&url)
        );
        let nodes = [
            a.expect("node a starts"),
            b.expect("node b starts"),
            c.expect("node c starts"),
        ];
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        // Every migration, each once (whatever their number).
        assert!(versions.len() >= 4, "round {round}: {versions:?}");
        assert_eq!(
            versions,
            (1..=versions.len() as i64).collect::<Vec<_>>(),
            "round {round}"
        );
        let counters: i64 = sqlx::query_scalar("SELECT count(*) FROM event_counter")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(counters, 1, "round {round}");
        for node in &nodes {
            node.apply(
                Mutation::RecordMasterKey {
                    key_id: "mk".into(),
                },
                chrono::Utc::now(),
            )
            .await
            .unwrap();
            node.close().await;
        }
    }
}

/// A put that PostgreSQL picks as a deadlock victim runs again and succeeds, and the
/// rolled-back attempt leaves no gap in the events. The other side of the deadlock is a
/// transaction made by hand: it holds the event counter while the put holds the secret,
/// then asks for the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_victim_runs_again() {
    let pg = server().await;
    let url = fresh_database(&pg, "deadlock").await;
    // PostgreSQL looks for a cycle after `deadlock_timeout` in each waiting session and
    // rolls back the one that finds it: the store's sessions look first (after 2 s,
    // however slow the machine is to make the other side wait), the hand-made one much
    // later.
    let mut setup = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET deadlock_timeout = %L', current_database(), '2s'); END $$",
    )
    .execute(&mut setup)
    .await
    .unwrap();
    let store: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.unwrap());
    let t0 = chrono::Utc::now();
    let Outcome::Created { id, .. } = store
        .apply(
            Mutation::CreateSecret {
                name: "d".into(),
                arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:d-AbCdEf".into(),
                description: None,
                kms_key_id: None,
                tags: vec![],
                first_version: Some(version("v1", "one")),
            },
            t0,
        )
        .await
        .unwrap()
    else {
        panic!("not created")
    };

    let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("SET deadlock_timeout = '60s'")
        .execute(&mut other)
        .await
        .unwrap();
    let mut other = other.begin().await.unwrap();
    sqlx::query("UPDATE event_counter SET last = last")
        .execute(&mut *other)
        .await
        .unwrap();
    let put = tokio::spawn({
        let store = store.clone();
        async move {
            let put = Mutation::PutVersion {
                secret: id,
                version: version("v2", "two"),
            };
            store.apply(put, t0).await
        }
    });
    // Once the put holds the secret and waits for the counter, ask for the secret: a
    // cycle, which the put's session finds.
    let mut watch = setup;
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE NOT l.granted AND a.datname = current_database()",
        )
        .fetch_one(&mut watch)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sqlx::query("SELECT id FROM secrets WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_one(&mut *other)
        .await
        .expect("the put's transaction was rolled back, freeing the secret");
    other.commit().await.unwrap();

    let out = put.await.unwrap().expect("the put ran again and succeeded");
    assert!(
        matches!(
            out,
            Outcome::Version {
                replayed: false,
                ..
            }
        ),
        "{out:?}"
    );
    let r = store
        .load(&Lookup::Name("d".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        r.versions.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        ["v1", "v2"]
    );
    let seqs: Vec<i64> = store
        .events(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    store.close().await;
}
