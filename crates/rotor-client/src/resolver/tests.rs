//! The cache rules end to end, each pinned with a [`ManualClock`] and a scripted
//! backend (the one mock: a vault whose answers and timing the test controls).

use super::*;
use crate::backend::{BackendErrorKind, BoxFuture};
use crate::cache::ManualClock;
use secrecy::SecretString;
use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;

const S: Duration = Duration::from_secs(1);
/// How long a test waits for something that should happen at once.
const PATIENCE: Duration = Duration::from_secs(10);

/// A vault that answers from a script (repeating the last answer), counts calls, and
/// can hold every call until the test opens its gate.
#[derive(Default)]
struct Scripted {
    answers: Mutex<VecDeque<Result<&'static str, BackendErrorKind>>>,
    last: Mutex<Option<Result<&'static str, BackendErrorKind>>>,
    calls: AtomicUsize,
    called: tokio::sync::Notify,
    gate: Option<tokio::sync::Semaphore>,
}

impl Scripted {
    fn new(answers: &[Result<&'static str, BackendErrorKind>]) -> Arc<Self> {
        Arc::new(Scripted {
            answers: Mutex::new(answers.iter().cloned().collect()),
            ..Default::default()
        })
    }

    fn gated(answers: &[Result<&'static str, BackendErrorKind>]) -> Arc<Self> {
        Arc::new(Scripted {
            answers: Mutex::new(answers.iter().cloned().collect()),
            gate: Some(tokio::sync::Semaphore::new(0)),
            ..Default::default()
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    async fn wait_calls(&self, n: usize) {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let notified = self.called.notified();
                if self.calls() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("backend saw {} calls, expected {n}", self.calls()));
    }

    fn open(&self) {
        if let Some(g) = &self.gate {
            g.add_permits(1 << 20);
        }
    }
}

struct Handle(Arc<Scripted>);

impl Backend for Handle {
    fn fetch<'a>(&'a self, _lookup: &'a Lookup) -> BoxFuture<'a, Result<Fetched, BackendError>> {
        Box::pin(async move {
            let s = &self.0;
            let n = s.calls.fetch_add(1, Ordering::SeqCst) + 1;
            s.called.notify_waiters();
            if let Some(g) = &s.gate {
                let _ = g.acquire().await.map(|p| p.forget());
            }
            let answer = {
                let mut last = lock(&s.last);
                let next = lock(&s.answers).pop_front().or(*last).expect("scripted");
                *last = Some(next);
                next
            };
            match answer {
                Ok(v) => Ok(Fetched {
                    value: SecretString::from(v),
                    version_id: Some(format!("v{n}")),
                }),
                Err(kind) => Err(BackendError::new(kind, "scripted failure")),
            }
        })
    }
}

fn resolver(
    backend: &Arc<Scripted>,
    config: impl FnOnce(VaultConfig) -> VaultConfig,
) -> (Resolver, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let vaults = Vaults::new()
        .with(
            "v",
            config(VaultConfig::new(Handle(backend.clone())).follows_changes(true)),
        )
        .unwrap();
    let r = Resolver::builder(vaults)
        .clock(clock.clone())
        .refresh_every(S)
        .refresh_ahead(10 * S)
        .build();
    (r, clock)
}

async fn value(r: &Resolver, reference: &str) -> String {
    r.get(reference).await.unwrap().expose_secret().to_string()
}

const REF: &str = "{vault://v/app%2Fdb}";

#[tokio::test]
async fn a_value_is_served_for_ttl_then_fetched_again() {
    let b = Scripted::new(&[Ok("one"), Ok("two")]);
    let (r, clock) = resolver(&b, |c| c.ttl(10 * S));
    assert_eq!(value(&r, REF).await, "one");
    clock.advance(9 * S);
    assert_eq!(value(&r, REF).await, "one");
    assert_eq!(b.calls(), 1);
    clock.advance(S);
    assert_eq!(value(&r, REF).await, "two");
    assert_eq!(b.calls(), 2);
}

#[tokio::test]
async fn a_reference_ttl_overrides_the_vaults_and_zero_means_forever() {
    let b = Scripted::new(&[Ok("one"), Ok("two")]);
    let (r, clock) = resolver(&b, |c| c.ttl(100 * S));
    let short = "{vault://v/app%2Fdb?ttl=5}";
    let forever = "{vault://v/other?ttl=0}";
    assert_eq!(value(&r, short).await, "one");
    assert_eq!(value(&r, forever).await, "two");
    clock.advance(5 * S);
    assert_eq!(value(&r, short).await, "two");
    clock.advance(1_000_000 * S);
    assert_eq!(value(&r, forever).await, "two");
    assert_eq!(b.calls(), 3);
}

#[tokio::test]
async fn a_failed_lookup_is_remembered_for_neg_ttl() {
    let b = Scripted::new(&[Err(BackendErrorKind::NotFound), Ok("found")]);
    let (r, clock) = resolver(&b, |c| c.ttl(60 * S).neg_ttl(5 * S));
    let err = r.get(REF).await.unwrap_err();
    assert!(
        matches!(&err, ResolveError::Backend { source, .. } if source.kind == BackendErrorKind::NotFound)
    );
    clock.advance(4 * S);
    assert_eq!(r.get(REF).await.unwrap_err(), err);
    assert_eq!(b.calls(), 1);
    clock.advance(S);
    assert_eq!(value(&r, REF).await, "found");
    assert_eq!(b.calls(), 2);
}

#[tokio::test]
async fn a_failed_refresh_serves_the_last_value_for_resurrect_ttl_then_expires() {
    let b = Scripted::new(&[Ok("last"), Err(BackendErrorKind::Unavailable)]);
    let (r, clock) = resolver(&b, |c| c.ttl(10 * S).neg_ttl(2 * S).resurrect_ttl(30 * S));
    assert_eq!(value(&r, REF).await, "last");
    clock.advance(10 * S); // expired: the refresh fails, the last value is served
    assert_eq!(value(&r, REF).await, "last");
    assert_eq!(b.calls(), 2);
    clock.advance(S); // the failure is remembered for neg_ttl: no new fetch
    assert_eq!(value(&r, REF).await, "last");
    assert_eq!(b.calls(), 2);
    clock.advance(S); // retried, fails again, still served
    assert_eq!(value(&r, REF).await, "last");
    assert_eq!(b.calls(), 3);
    clock.advance(27 * S); // t = 39 < ttl + resurrect_ttl
    assert_eq!(value(&r, REF).await, "last");
    clock.advance(S); // t = 40: expired for good
    let err = r.get(REF).await.unwrap_err();
    assert!(
        matches!(err, ResolveError::Backend { source, .. } if source.kind == BackendErrorKind::Unavailable)
    );
}

#[tokio::test]
async fn the_background_task_refreshes_entries_before_they_expire() {
    let b = Scripted::new(&[Ok("one"), Ok("two")]);
    let (r, clock) = resolver(&b, |c| c.ttl(60 * S));
    let _refresher = r.spawn_refresher();
    assert_eq!(value(&r, REF).await, "one");
    clock.advance(49 * S);
    tokio::task::yield_now().await;
    assert_eq!(b.calls(), 1, "not due yet");
    clock.advance(S); // 10 s before expiry: due
    b.wait_calls(2).await;
    // The refreshed value is served from the cache, before the old one would expire.
    tokio::time::timeout(PATIENCE, async {
        while value(&r, REF).await != "two" {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert_eq!(b.calls(), 2);
}

#[tokio::test]
async fn a_change_event_refreshes_at_once() {
    let b = Scripted::new(&[Ok("one"), Ok("two"), Ok("three")]);
    let (r, _clock) = resolver(&b, |c| c); // no ttl: only changes refresh
    assert_eq!(value(&r, REF).await, "one");
    assert_eq!(value(&r, "{vault://v/app%2Fdb?ttl=600}").await, "two");
    // One fetch per resource, for both references.
    assert_eq!(r.notify_changed("app/db").await, 1);
    assert_eq!(b.calls(), 3);
    assert_eq!(value(&r, REF).await, "three");
    assert_eq!(value(&r, "{vault://v/app%2Fdb?ttl=600}").await, "three");
    assert_eq!(r.notify_changed("something/else").await, 0);

    let b2 = Scripted::new(&[Ok("x"), Ok("y")]);
    let (r2, _) = resolver(&b2, |c| c.follows_changes(false));
    assert_eq!(value(&r2, REF).await, "x");
    assert_eq!(r2.notify_changed("app/db").await, 0);
    assert_eq!(r2.invalidate(REF).await.unwrap().expose_secret(), "y");
    assert_eq!(value(&r2, REF).await, "y");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lookups_of_one_key_make_one_request() {
    let b = Scripted::gated(&[Ok(r#"{"username":"u1","password":"p1"}"#)]);
    let (r, _clock) = resolver(&b, |c| c.ttl(60 * S));
    let user = "{vault://v/db/username}";
    let tasks = 32;
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let entered = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (r, barrier, entered) = (r.clone(), barrier.clone(), entered.clone());
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            entered.fetch_add(1, Ordering::SeqCst);
            r.get(user).await.map(|v| v.expose_secret().to_string())
        }));
    }
    b.wait_calls(1).await;
    // Another key of the same resource joins the fetch under way.
    let r2 = r.clone();
    let password = tokio::spawn(async move { r2.get("{vault://v/db/password}").await });
    tokio::time::timeout(PATIENCE, async {
        while entered.load(Ordering::SeqCst) < tasks {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    b.open();
    for h in handles {
        assert_eq!(h.await.unwrap().unwrap(), "u1");
    }
    assert_eq!(password.await.unwrap().unwrap().expose_secret(), "p1");
    assert_eq!(b.calls(), 1);
}

#[derive(Debug)]
enum DbError {
    BadPassword,
    Down,
}

impl AuthFailure for DbError {
    fn is_auth_failure(&self) -> bool {
        matches!(self, DbError::BadPassword)
    }
}

#[tokio::test]
async fn try_refreshes_and_retries_once_on_an_authentication_failure() {
    let b = Scripted::new(&[Ok("old"), Ok("new")]);
    let (r, _clock) = resolver(&b, |c| c.ttl(3600 * S));
    let runs = AtomicUsize::new(0);
    let out = r
        .try_with(REF, |v| {
            runs.fetch_add(1, Ordering::SeqCst);
            async move {
                match v.expose_secret() {
                    "new" => Ok("connected"),
                    _ => Err(DbError::BadPassword),
                }
            }
        })
        .await
        .unwrap();
    assert_eq!(out, "connected");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(b.calls(), 2);
    // The refreshed value is what the cache serves next.
    assert_eq!(value(&r, REF).await, "new");

    // Any other failure is returned as it is, with no refresh.
    let runs = AtomicUsize::new(0);
    let err = r
        .try_with(REF, |_| {
            runs.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(DbError::Down) }
        })
        .await
        .unwrap_err();
    assert!(matches!(err, TryError::Operation(DbError::Down)));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(b.calls(), 2);
}

#[tokio::test]
async fn try_uses_a_value_another_reader_already_refreshed() {
    let b = Scripted::new(&[Ok("old"), Ok("new")]);
    let (r, _clock) = resolver(&b, |c| c);
    let runs = AtomicUsize::new(0);
    let out = r
        .try_with_classifier(
            REF,
            |e: &&str| *e == "auth",
            |v| {
                let n = runs.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                async move {
                    if n == 0 {
                        // Meanwhile a change event brought the new value in.
                        r.invalidate(REF).await.unwrap();
                    }
                    if v.expose_secret() == "new" {
                        Ok(())
                    } else {
                        Err("auth")
                    }
                }
            },
        )
        .await;
    assert_eq!(out.unwrap(), ());
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(b.calls(), 2, "the retry reused the refreshed value");
}

#[tokio::test]
async fn keys_take_string_fields_of_a_json_value_and_errors_never_show_it() {
    let b = Scripted::new(&[Ok(r#"{"user":"alice","port":5432,"password":"hunter2"}"#)]);
    let (r, _clock) = resolver(&b, |c| c);
    assert_eq!(value(&r, "{vault://v/db/user}").await, "alice");
    let missing = r.get("{vault://v/db/nope}").await.unwrap_err();
    assert!(matches!(missing, ResolveError::MissingField { .. }));
    let not_string = r.get("{vault://v/db/port}").await.unwrap_err();
    assert_eq!(
        not_string.to_string(),
        "field \"port\" of \"db\" in vault \"v\" is not a string"
    );
    let whole = r.get("{vault://v/db}").await.unwrap();
    for text in [
        format!("{whole:?}"),
        format!("{missing:?}"),
        missing.to_string(),
    ] {
        assert!(!text.contains("hunter2"), "{text}");
    }

    let plain = Scripted::new(&[Ok("hunter2")]);
    let (r, _clock) = resolver(&plain, |c| c);
    let err = r.get("{vault://v/db/password}").await.unwrap_err();
    assert!(matches!(err, ResolveError::NotJsonObject { .. }));
    assert!(!format!("{err:?} {err}").contains("hunter2"));
}

#[tokio::test]
async fn bad_references_unknown_vaults_and_bad_ttls_are_refused() {
    let b = Scripted::new(&[Ok("x")]);
    let (r, _clock) = resolver(&b, |c| c);
    assert_eq!(
        r.get("{vault:///x}").await.unwrap_err().to_string(),
        "vault name must not be empty at byte 9"
    );
    assert_eq!(
        r.get("{vault://nope/x}").await.unwrap_err(),
        ResolveError::UnknownVault("nope".into())
    );
    assert_eq!(
        r.get("{vault://v/x?ttl=soon}")
            .await
            .unwrap_err()
            .to_string(),
        "option ttl must be one number of seconds from 0 to 100000000, got \"soon\""
    );
    assert_eq!(b.calls(), 0);
    assert!(Vaults::new().with("a/b", VaultConfig::env()).is_err());
}

#[tokio::test]
async fn env_and_file_vaults_read_kongs_names_and_files() {
    // Cargo sets CARGO_PKG_NAME for test processes.
    let vaults = Vaults::new()
        .with("env", VaultConfig::env())
        .unwrap()
        .with("cargo", VaultConfig::env().option("prefix", "cargo-"))
        .unwrap();
    let r = Resolver::new(vaults);
    assert_eq!(
        value(&r, "{vault://env/cargo-pkg-name}").await,
        "rotor-client"
    );
    assert_eq!(value(&r, "{vault://cargo/pkg-name}").await, "rotor-client");
    assert_eq!(
        value(&r, "{vault://env/pkg-name?prefix=CARGO_}").await,
        "rotor-client"
    );
    // Issue 11, hole 10: a configured prefix bounds the vault; a reference's own
    // `?prefix=` reached any variable of the process.
    let escaped = r.get("{vault://cargo/path?prefix=}").await.unwrap_err();
    assert!(
        matches!(&escaped, ResolveError::FixedOption { option, .. } if option == "prefix"),
        "{escaped}"
    );
    assert_eq!(
        value(&r, "{vault://cargo/pkg-name?prefix=cargo-}").await,
        "rotor-client",
        "repeating the configured prefix is harmless"
    );
    let previous = r.get("{vault://env/cargo-pkg-name#2}").await.unwrap_err();
    assert!(
        previous
            .to_string()
            .contains("CARGO_PKG_NAME_PREVIOUS is not set"),
        "{previous}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("db")).unwrap();
    std::fs::write(dir.path().join("db/creds.json"), r#"{"password":"p"}"#).unwrap();
    std::fs::write(dir.path().join("token"), "t0k3n").unwrap();
    let r = Resolver::new(
        Vaults::new()
            .with("f", VaultConfig::file(dir.path()))
            .unwrap(),
    );
    assert_eq!(value(&r, "{vault://f/token}").await, "t0k3n");
    assert_eq!(
        value(&r, "{vault://f/%2Fdb%2Fcreds.json/password}").await,
        "p"
    );
    assert_eq!(
        value(&r, "{vault://f/db/creds.json/}").await,
        r#"{"password":"p"}"#
    );
    let escape = r.get("{vault://f/..%2Fetc%2Fpasswd}").await.unwrap_err();
    assert!(
        matches!(escape, ResolveError::Backend { source, .. } if source.kind == BackendErrorKind::Invalid)
    );
    let missing = r.get("{vault://f/none}").await.unwrap_err();
    assert!(
        matches!(missing, ResolveError::Backend { source, .. } if source.kind == BackendErrorKind::NotFound)
    );
}
