//! Change events over a real store: watching filtered by policy and resumable,
//! gap-free sequence numbers, and subscriptions delivered to a small HTTP receiver in
//! this test (signatures checked, retries, dead letters, a restarted dispatcher) and
//! to a local command.

use crate::fixtures;
use rotor_core::ErrorKind;
use rotor_core::policy::{Capability, Effect, Statement};
use rotor_core::value::SecretValue;
use rotor_engine::events::{Events, NewSubscription, Settings, Target};
use rotor_engine::{AccessService, Caller, CreateSecret, PutValue, SecretService, Session};
use rotor_store::Mutation;
use rotor_testkit::{Answer, WebhookReceiver};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

struct World {
    service: Arc<SecretService>,
    access: Arc<AccessService>,
    events: Arc<Events>,
    root: Caller,
}

fn fast() -> Settings {
    Settings {
        max_attempts: 3,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        poll: Duration::from_millis(100),
        ..Settings::default()
    }
}

async fn world(settings: Settings) -> World {
    let base = fixtures::base().await;
    let events = Arc::new(Events::new(
        base.service.clone(),
        base.access.clone(),
        settings,
    ));
    World {
        service: base.service,
        access: base.access,
        events,
        root: base.root,
    }
}

/// A principal allowed `statements`, as a caller.
async fn principal(w: &World, name: &str, statements: Vec<Statement>) -> Caller {
    fixtures::principal(&w.access, &w.root, name, statements).await
}

fn allow(capabilities: &[Capability], paths: &[&str]) -> Statement {
    Statement {
        effect: Effect::Allow,
        capabilities: capabilities.to_vec(),
        paths: paths.iter().map(|p| p.to_string()).collect(),
    }
}

async fn create(w: &World, name: &str, value: &str) {
    w.service
        .create(
            &w.root,
            CreateSecret {
                name: name.into(),
                region: "us-east-1".into(),
                value: Some(SecretValue::string(value.into()).unwrap()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

async fn put(w: &World, name: &str, value: &str) {
    w.service
        .put_value(
            &w.root,
            PutValue {
                secret_id: name.into(),
                token: None,
                value: SecretValue::string(value.into()).unwrap(),
                stages: None,
            },
        )
        .await
        .unwrap();
}

async fn append(w: &World, kind: &str, secret: Option<&str>, detail: serde_json::Value) {
    w.service
        .store()
        .apply(
            Mutation::AppendEvent {
                kind: kind.into(),
                secret: secret.map(str::to_string),
                detail: detail.to_string(),
            },
            w.service.now(),
        )
        .await
        .unwrap();
}

/// Every event `caller` sees under `prefix` after `after`, without waiting.
async fn seen(w: &World, caller: &Caller, prefix: &str, after: i64) -> Vec<rotor_store::Event> {
    let mut out = Vec::new();
    let mut after = after;
    loop {
        let batch = w
            .events
            .next_batch(
                &mut Session::fixed(caller.clone()),
                prefix,
                after,
                Duration::ZERO,
            )
            .await
            .unwrap();
        if batch.events.is_empty() {
            return out;
        }
        after = batch.last;
        out.extend(batch.events);
    }
}

/// Waits (up to 10 s) until `check` holds.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_watch_shows_only_what_the_caller_may_describe_under_the_prefix() {
    let w = world(fast()).await;
    let app = principal(
        &w,
        "app",
        vec![
            allow(&[Capability::Describe], &["/app/**"]),
            Statement {
                effect: Effect::Deny,
                capabilities: vec![Capability::Describe],
                paths: vec!["/app/mp/secret-sauce".into()],
            },
        ],
    )
    .await;
    create(&w, "/app/mp/db", "blue").await;
    create(&w, "/app/mp/secret-sauce", "x").await;
    create(&w, "/dba/mongo/user", "u").await;
    create(&w, "/application", "not under /app/").await;
    append(
        &w,
        "replication.applied",
        Some("/app/mp/db"),
        serde_json::json!({"version": "v9", "source": [{"secret": "/dba/mongo/user", "version": "v1"}]}),
    )
    .await;
    append(
        &w,
        "replication.rule_added",
        None,
        serde_json::json!({"rule": "r", "source": "/dba/", "destination": "/app/"}),
    )
    .await;

    let names = |events: &[rotor_store::Event]| {
        let mut n: Vec<String> = events
            .iter()
            .map(|e| e.secret.clone().unwrap_or("-".into()))
            .collect();
        n.dedup();
        n
    };
    let app_view = seen(&w, &app, "/app/", 0).await;
    assert_eq!(names(&app_view), ["/app/mp/db"]);
    assert!(
        app_view
            .iter()
            .all(|e| !e.detail.contains("/dba/") && !e.detail.contains("secret-sauce")),
        "no other secret's name leaks through details: {app_view:?}"
    );
    let applied = app_view
        .iter()
        .find(|e| e.kind == "replication.applied")
        .expect("the replica's event");
    let detail: serde_json::Value = serde_json::from_str(&applied.detail).unwrap();
    assert_eq!(
        detail["source"][0],
        serde_json::json!({"secret": null, "version": "v1"})
    );
    // Watching everything: still only what the policy allows, and no system events.
    assert_eq!(names(&seen(&w, &app, "", 0).await), ["/app/mp/db"]);

    let root_view = seen(&w, &w.root, "", 0).await;
    assert_eq!(
        names(&root_view),
        [
            "/app/mp/db",
            "/app/mp/secret-sauce",
            "/dba/mongo/user",
            "/application",
            "/app/mp/db",
            "-"
        ]
    );
    assert!(root_view.last().unwrap().detail.contains("/dba/"));
    let root_app = seen(&w, &w.root, "/app/", 0).await;
    assert!(
        root_app.iter().all(|e| e.secret.is_some()),
        "system events only without a prefix"
    );
    assert!(
        root_app
            .iter()
            .any(|e| e.detail.contains("/dba/mongo/user"))
    );
}

#[tokio::test]
async fn sequence_numbers_have_no_gaps_and_a_watch_resumes_where_it_stopped() {
    let w = world(fast()).await;
    for i in 0..5 {
        create(&w, &format!("/svc/s{i}"), "v1").await;
        put(&w, &format!("/svc/s{i}"), "v2").await;
    }
    let all = seen(&w, &w.root, "", 0).await;
    assert!(all.len() >= 10, "{all:?}");
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    let expected: Vec<i64> = (seqs[0]..seqs[0] + seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "gap-free");
    assert_eq!(w.events.last_seq().await.unwrap(), *seqs.last().unwrap());

    let middle = seqs[4];
    let rest = seen(&w, &w.root, "", middle).await;
    assert_eq!(rest, all[5..].to_vec(), "resumed after {middle}");

    // Nothing visible: an empty batch that still moves past what was looked at.
    let nobody = principal(
        &w,
        "nobody",
        vec![allow(&[Capability::Describe], &["/else/**"])],
    )
    .await;
    let batch = w
        .events
        .next_batch(
            &mut Session::fixed(nobody.clone()),
            "",
            0,
            Duration::from_millis(50),
        )
        .await
        .unwrap();
    assert!(batch.events.is_empty());
    assert!(batch.last >= *seqs.last().unwrap());
}

#[tokio::test]
async fn a_waiting_watch_wakes_on_the_next_change() {
    let w = Arc::new(world(fast()).await);
    create(&w, "/svc/a", "v1").await;
    let after = w.events.last_seq().await.unwrap();
    let writer = w.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        put(&writer, "/svc/a", "v2").await;
    });
    let start = std::time::Instant::now();
    let batch = w
        .events
        .next_batch(
            &mut Session::fixed(w.root.clone()),
            "/svc/",
            after,
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "woken by the put, not by the timeout"
    );
    assert_eq!(batch.events[0].kind, "version.put");
    assert_eq!(batch.events[0].seq, after + 1);
    assert_eq!(batch.last, batch.events.last().unwrap().seq);

    // Closing (a draining server) ends waiting watches at once.
    let waiting = {
        let w = w.clone();
        let after = batch.last;
        tokio::spawn(async move {
            w.events
                .next_batch(
                    &mut Session::fixed(w.root.clone()),
                    "/svc/",
                    after,
                    Duration::from_secs(60),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    w.events.close();
    let closed = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the watch returns when closed")
        .unwrap()
        .unwrap();
    assert!(closed.events.is_empty());
    assert!(w.events.is_closed());
}

/// The test's webhook receiver (rotor-testkit's), with the helpers these tests use.
struct Receiver {
    url: String,
    inner: WebhookReceiver,
}

impl Receiver {
    /// The events answered with 200, as JSON, in order.
    fn delivered(&self) -> Vec<serde_json::Value> {
        self.inner.accepted_json()
    }

    fn seqs(&self) -> Vec<i64> {
        self.delivered()
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect()
    }
}

async fn receiver() -> Receiver {
    let inner = WebhookReceiver::start().unwrap();
    Receiver {
        url: format!("{}/hook", inner.url()),
        inner,
    }
}

fn header<'a>(headers: &'a str, name: &str) -> &'a str {
    headers
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::trim)
        .unwrap_or("")
}

fn webhook(name: &str, prefix: &str, kinds: &[&str], url: &str) -> NewSubscription {
    NewSubscription {
        name: name.into(),
        prefix: prefix.into(),
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        target: Target::Webhook {
            url: url.into(),
            timeout_ms: 5_000,
        },
        from_seq: None,
    }
}

#[tokio::test]
async fn a_webhook_gets_each_matching_event_signed_in_order() {
    let w = world(fast()).await;
    let rx = receiver().await;
    create(&w, "/app/old", "v1").await;
    let (info, key) = w
        .events
        .create_subscription(
            &w.root,
            webhook("deploy", "/app/", &["version.put"], &rx.url),
        )
        .await
        .unwrap();
    let key = key.expect("a webhook's signing key is shown once");
    assert!(key.expose_secret().starts_with("whk_"));
    assert_eq!(
        info.cursor,
        w.events.last_seq().await.unwrap(),
        "old events are not replayed"
    );
    let dispatcher = w.events.spawn();

    create(&w, "/app/a", "a1").await;
    create(&w, "/dba/x", "x1").await;
    put(&w, "/app/a", "plaintext-of-a2").await;
    put(&w, "/dba/x", "x2").await;
    put(&w, "/app/old", "v2").await;
    until("three deliveries", async || rx.seqs().len() >= 3).await;
    let got = rx.delivered();
    let summary: Vec<(String, String)> = got
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["secret"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("version.put".into(), "/app/a".into()),
            ("version.put".into(), "/app/a".into()),
            ("version.put".into(), "/app/old".into())
        ]
    );
    let seqs = rx.seqs();
    assert!(seqs.windows(2).all(|p| p[0] < p[1]), "in order: {seqs:?}");
    assert!(
        !got.iter().any(|e| e.to_string().contains("plaintext")),
        "no values"
    );

    for request in rx.inner.requests() {
        let (headers, body) = (&request.headers, &request.body);
        let timestamp = header(headers, "x-rotor-timestamp");
        let mut signed = timestamp.as_bytes().to_vec();
        signed.push(b'.');
        signed.extend_from_slice(body);
        let expected = format!(
            "sha256={}",
            hex::encode(rotor_crypto::hmac_sha256(
                key.expose_secret().as_bytes(),
                &signed
            ))
        );
        assert_eq!(header(headers, "x-rotor-signature"), expected);
        assert_eq!(header(headers, "x-rotor-event"), "version.put");
        let event: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            header(headers, "x-rotor-delivery"),
            format!("deploy:{}", event["seq"])
        );
    }

    // The receiver answers before the delivery is recorded: wait for the third record.
    let mut log = Vec::new();
    for _ in 0..200 {
        log = w
            .events
            .deliveries(&w.root, "deploy", 100, false)
            .await
            .unwrap();
        if log.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(log.len(), 3);
    assert!(
        log.iter()
            .all(|d| d.status == "delivered" && d.attempt == 1)
    );
    let shown = w.events.subscription(&w.root, "deploy").await.unwrap();
    assert_eq!(shown.cursor, *seqs.last().unwrap());
    dispatcher.abort();
}

#[tokio::test]
async fn failed_deliveries_are_retried_then_dead_lettered_and_the_dispatcher_moves_on() {
    let w = world(fast()).await;
    let rx = receiver().await;
    rx.inner.answer(Answer::FailFirst(2));
    w.events
        .create_subscription(&w.root, webhook("flaky", "/svc/", &[], &rx.url))
        .await
        .unwrap();
    let dispatcher = w.events.spawn();

    let first = w.events.last_seq().await.unwrap() + 1;
    create(&w, "/svc/one", "1").await;
    until("the retried event", async || rx.seqs().contains(&first)).await;
    let log = w
        .events
        .deliveries(&w.root, "flaky", 100, false)
        .await
        .unwrap();
    let mut attempts: Vec<(i64, &str)> = log
        .iter()
        .filter(|d| d.seq == first)
        .map(|d| (d.attempt, d.status.as_str()))
        .collect();
    attempts.reverse();
    assert_eq!(
        attempts,
        [(1, "failed"), (2, "failed"), (3, "delivered")],
        "{log:?}"
    );

    // Every event of the create delivered before the receiver goes down: otherwise a
    // slow machine dead-letters those too.
    let created = w.events.last_seq().await.unwrap();
    until("the create's events", async || {
        w.events
            .subscription(&w.root, "flaky")
            .await
            .unwrap()
            .cursor
            >= created
    })
    .await;
    rx.inner.answer(Answer::Down);
    put(&w, "/svc/one", "2").await;
    let doomed = w.events.last_seq().await.unwrap();
    until("a dead letter", async || {
        !w.events
            .deliveries(&w.root, "flaky", 10, true)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    let dead = w
        .events
        .deliveries(&w.root, "flaky", 10, true)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].seq, dead[0].attempt), (doomed, 3));
    assert_eq!(
        dead[0].error.as_deref(),
        Some("the webhook answered 500"),
        "the log says why"
    );
    assert_eq!(
        w.events
            .subscription(&w.root, "flaky")
            .await
            .unwrap()
            .cursor,
        doomed,
        "a dead letter moves the cursor"
    );

    rx.inner.answer(Answer::Ok);
    put(&w, "/svc/one", "3").await;
    let after = w.events.last_seq().await.unwrap();
    until("the next event after the dead one", async || {
        rx.seqs().contains(&after)
    })
    .await;
    assert!(!rx.seqs().contains(&doomed));
    dispatcher.abort();
}

#[tokio::test]
async fn a_new_dispatcher_resumes_from_the_cursor_and_loses_nothing() {
    let w = world(Settings {
        // Long enough that the first dispatcher is stopped while it waits to retry.
        backoff: Duration::from_secs(30),
        max_backoff: Duration::from_secs(30),
        ..fast()
    })
    .await;
    let rx = receiver().await;
    rx.inner.answer(Answer::Down);
    w.events
        .create_subscription(&w.root, webhook("resume", "", &[], &rx.url))
        .await
        .unwrap();
    let first = w.events.spawn();
    let pending = w.events.last_seq().await.unwrap() + 1;
    create(&w, "/svc/a", "1").await;
    until("a failed attempt", async || {
        !w.events
            .deliveries(&w.root, "resume", 1, false)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    // The server dies; more changes come in; the target comes back.
    first.abort();
    let _ = first.await;
    for i in 0..5 {
        put(&w, "/svc/a", &format!("v{i}")).await;
    }
    let last = w.events.last_seq().await.unwrap();
    rx.inner.answer(Answer::Ok);

    let events = Arc::new(Events::new(w.service.clone(), w.access.clone(), fast()));
    let second = events.spawn();
    until("the backlog", async || rx.seqs().contains(&last)).await;
    assert_eq!(
        rx.seqs(),
        (pending..=last).collect::<Vec<_>>(),
        "every event, once each, in order"
    );
    let log = events
        .deliveries(&w.root, "resume", 100, false)
        .await
        .unwrap();
    let retried = log
        .iter()
        .find(|d| d.seq == pending && d.status == "delivered")
        .unwrap();
    assert_eq!(
        retried.attempt, 2,
        "the count of attempts survives a restart"
    );
    second.abort();
}

#[tokio::test]
async fn an_exec_hook_gets_the_event_on_stdin_and_in_its_environment() {
    let w = world(fast()).await;
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "cat > {d}/event-$ROTOR_EVENT_SEQ.json && echo \"$ROTOR_EVENT_SEQ $ROTOR_EVENT_KIND $ROTOR_EVENT_SECRET $ROTOR_SUBSCRIPTION\" >> {d}/log",
        d = dir.path().display()
    );
    let (_, key) = w
        .events
        .create_subscription(
            &w.root,
            NewSubscription {
                name: "redeploy".into(),
                prefix: "/app/".into(),
                kinds: vec!["version.*".into()],
                target: Target::Exec {
                    command: vec!["sh".into(), "-c".into(), script],
                    timeout_ms: 5_000,
                },
                from_seq: None,
            },
        )
        .await
        .unwrap();
    assert!(key.is_none(), "commands are not signed");
    let dispatcher = w.events.spawn();
    create(&w, "/app/mp/db", "blue").await;
    put(&w, "/app/mp/db", "green").await;
    let seq = w.events.last_seq().await.unwrap();
    let log = dir.path().join("log");
    until("two runs", async || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.lines().count() >= 2)
    })
    .await;
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        lines.lines().last().unwrap(),
        format!("{seq} version.put /app/mp/db redeploy")
    );
    let event: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(format!("event-{seq}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(event["seq"], seq);
    assert_eq!(event["kind"], "version.put");
    assert_eq!(event["secret"], "/app/mp/db");
    assert_eq!(event["detail"]["labels"], serde_json::json!(["AWSCURRENT"]));
    assert!(!event.to_string().contains("green"), "no values");

    // A failing command is retried, then dead-lettered.
    w.events
        .create_subscription(
            &w.root,
            NewSubscription {
                name: "broken".into(),
                prefix: "/app/".into(),
                kinds: vec![],
                target: Target::Exec {
                    command: vec!["sh".into(), "-c".into(), "exit 3".into()],
                    timeout_ms: 5_000,
                },
                from_seq: Some(seq - 1),
            },
        )
        .await
        .unwrap();
    until("a dead letter", async || {
        !w.events
            .deliveries(&w.root, "broken", 10, true)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    let dead = w
        .events
        .deliveries(&w.root, "broken", 10, true)
        .await
        .unwrap();
    assert_eq!(dead[0].seq, seq, "from_seq replays from there");
    assert_eq!(
        dead[0].error.as_deref(),
        Some("the command exited with status 3")
    );
    dispatcher.abort();
}

#[tokio::test]
async fn subscriptions_need_admin_and_deliver_what_their_owner_may_see() {
    let w = world(fast()).await;
    let rx = receiver().await;
    let app = principal(
        &w,
        "app",
        vec![allow(&[Capability::Describe], &["/app/**"])],
    )
    .await;
    let e = w
        .events
        .create_subscription(&app, webhook("mine", "", &[], &rx.url))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied);

    let ops = principal(
        &w,
        "ops",
        vec![
            allow(&[Capability::Admin], &["sys/subscriptions/ops-*"]),
            allow(&[Capability::Describe], &["/app/**"]),
        ],
    )
    .await;
    w.events
        .create_subscription(&ops, webhook("ops-all", "", &[], &rx.url))
        .await
        .unwrap();
    let e = w
        .events
        .create_subscription(&ops, webhook("ops-all", "", &[], &rx.url))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ResourceExists);
    for (bad, what) in [
        (webhook("ops-x", "", &["version.typo"], &rx.url), "kind"),
        (webhook("ops-x", "", &[], "ftp://nope"), "url"),
        (webhook("ops x", "", &[], &rx.url), "name"),
    ] {
        let e = w.events.create_subscription(&ops, bad).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParameter, "{what}: {e:?}");
    }
    assert_eq!(
        w.events.subscriptions(&ops).await.unwrap().len(),
        1,
        "ops sees its own"
    );
    assert!(w.events.subscriptions(&app).await.unwrap().is_empty());
    assert_eq!(
        w.events
            .deliveries(&app, "ops-all", 10, false)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::AccessDenied
    );

    let dispatcher = w.events.spawn();
    create(&w, "/dba/secret", "x").await;
    create(&w, "/app/visible", "y").await;
    let last = w.events.last_seq().await.unwrap();
    until("the visible event", async || rx.seqs().contains(&last)).await;
    let secrets: Vec<String> = rx
        .delivered()
        .iter()
        .map(|e| e["secret"].as_str().unwrap().to_string())
        .collect();
    assert!(secrets.iter().all(|s| s == "/app/visible"), "{secrets:?}");

    w.events.delete_subscription(&ops, "ops-all").await.unwrap();
    assert_eq!(
        w.events
            .subscription(&w.root, "ops-all")
            .await
            .unwrap_err()
            .kind,
        ErrorKind::ResourceNotFound
    );
    // A probe subscription added after the deletion: once it has the next event, the
    // dispatcher has handled that event, and the deleted one got nothing of it.
    let probe = receiver().await;
    w.events
        .create_subscription(&w.root, webhook("probe", "", &[], &probe.url))
        .await
        .unwrap();
    let before = rx.inner.requests().len();
    create(&w, "/app/after-delete", "z").await;
    let last = w.events.last_seq().await.unwrap();
    until("the probe's delivery", async || {
        probe.seqs().contains(&last)
    })
    .await;
    assert_eq!(
        rx.inner.requests().len(),
        before,
        "nothing delivered once deleted"
    );
    dispatcher.abort();
}

/// Issue 11, hole 7: an open watch acts for its token as it is now. A revoked token
/// ends a waiting watch; a detached policy hides what it no longer allows.
#[tokio::test]
async fn an_open_watch_ends_when_its_token_is_revoked() {
    let w = Arc::new(world(fast()).await);
    create(&w, "/svc/a", "v1").await;
    let _ = principal(
        &w,
        "watcher",
        vec![allow(&[Capability::Describe], &["/svc/**"])],
    )
    .await;
    let (_, token) = w
        .access
        .create_token(&w.root, "watcher", None)
        .await
        .unwrap();
    let token = token.expose_secret().to_string();

    // A policy detached while a watch is open: the change it no longer allows is
    // not shown.
    let mut session = w.access.session(&token).unwrap();
    let after = w.events.last_seq().await.unwrap();
    w.access
        .detach(&w.root, "watcher", "watcher")
        .await
        .unwrap();
    put(&w, "/svc/a", "v2").await;
    let batch = w
        .events
        .next_batch(&mut session, "/svc/", after, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(batch.events.is_empty(), "{:?}", batch.events);
    w.access
        .attach(&w.root, "watcher", "watcher")
        .await
        .unwrap();

    // A revoked token ends a watch that is waiting.
    let mut session = w.access.session(&token).unwrap();
    let after = w.events.last_seq().await.unwrap();
    let waiting = {
        let w = w.clone();
        tokio::spawn(async move {
            w.events
                .next_batch(&mut session, "/svc/", after, Duration::from_secs(60))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    w.access.revoke_token(&w.root, &token).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the revocation wakes the watch")
        .unwrap()
        .unwrap_err();
    assert_eq!(ended.kind, ErrorKind::Unauthenticated, "{}", ended.message);
    assert!(w.access.session(&token).is_err(), "and cannot open another");
}

/// Issue 11, hole 9: one principal holds a bounded number of waiting watches.
#[tokio::test]
async fn one_principal_holds_a_bounded_number_of_waiting_watches() {
    let w = Arc::new(
        world(Settings {
            max_waiters_per_principal: 3,
            ..fast()
        })
        .await,
    );
    let nobody = principal(
        &w,
        "nobody",
        vec![allow(&[Capability::Describe], &["/x/**"])],
    )
    .await;
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let w = w.clone();
        let nobody = nobody.clone();
        waiting.push(tokio::spawn(async move {
            w.events
                .next_batch(&mut Session::fixed(nobody), "", 0, Duration::from_secs(30))
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let e = w
        .events
        .next_batch(
            &mut Session::fixed(nobody.clone()),
            "",
            0,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::LimitExceeded, "{}", e.message);
    // Another principal is not held up by it.
    w.events
        .next_batch(&mut Session::fixed(w.root.clone()), "", 0, Duration::ZERO)
        .await
        .unwrap();
    w.events.close();
    for t in waiting {
        t.await.unwrap().unwrap();
    }
}
