//! The story every [`Store`] backend must tell the same way.
//!
//! Each check takes a fresh store and panics with a message on the first difference,
//! so a backend's test module is one line: [`conformance_tests!`](crate::conformance_tests). Values here
//! are opaque bytes: the store never decrypts.

use crate::{
    AccessMutation, Listing, Lookup, Mutation, NewVersion, Outcome, SealedValue, SecretRecord,
    Store, SubscriptionRow,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use rotor_core::ErrorKind;
use rotor_core::label::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, LabelBoard};
use rotor_core::model::Tag;
use std::sync::Arc;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

fn sealed(value: &str) -> SealedValue {
    SealedValue {
        ciphertext: format!("ct:{value}").into_bytes(),
        wrapped_key: b"wk".to_vec(),
        algorithm: "test".into(),
        key_id: "mk-test".into(),
        digest: format!("digest:{value}").into_bytes(),
    }
}

fn version(id: &str, value: &str, stages: &[&str]) -> NewVersion {
    NewVersion {
        source: None,
        id: id.into(),
        stages: stages.iter().map(|s| s.to_string()).collect(),
        sealed: sealed(value),
    }
}

async fn create(store: &dyn Store, name: &str, first: Option<NewVersion>) -> i64 {
    let out = store
        .apply(
            Mutation::CreateSecret {
                name: name.into(),
                arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf"),
                description: Some("test secret".into()),
                kms_key_id: None,
                tags: vec![],
                first_version: first,
            },
            t0(),
        )
        .await
        .expect("create succeeds");
    match out {
        Outcome::Created { id, .. } => id,
        other => panic!("create returned {other:?}"),
    }
}

async fn put(store: &dyn Store, secret: i64, v: NewVersion) -> rotor_core::Result<Outcome> {
    store
        .apply(Mutation::PutVersion { secret, version: v }, t0())
        .await
}

async fn load(store: &dyn Store, name: &str) -> SecretRecord {
    store
        .load(&Lookup::Name(name.into()))
        .await
        .expect("load succeeds")
        .unwrap_or_else(|| panic!("secret {name} exists"))
}

fn holder<'a>(r: &'a SecretRecord, label: &str) -> Option<&'a str> {
    r.versions
        .iter()
        .find(|v| v.labels.iter().any(|l| l == label))
        .map(|v| v.id.as_str())
}

fn assert_invariants(r: &SecretRecord) {
    let board =
        LabelBoard::from_versions(r.versions.iter().map(|v| (v.id.clone(), v.labels.clone())));
    board
        .check_invariants()
        .unwrap_or_else(|e| panic!("invariant broken for {}: {e}", r.meta.name));
}

/// The names `listing` returns, in the order returned.
async fn listed(store: &dyn Store, listing: &Listing) -> Vec<String> {
    store
        .list(listing)
        .await
        .expect("list succeeds")
        .into_iter()
        .map(|s| s.meta.name)
        .collect()
}

/// A listing narrowed by prefix, by rotation or by deletion date returns exactly the
/// secrets it asks for, in creation order, across the stores' batches, with their
/// labels; a prefix is a prefix of bytes, not of the database's collation.
pub async fn listings_are_narrowed(store: Arc<dyn Store>) {
    let mut names = Vec::new();
    for i in 0..12 {
        // Created in reverse name order: creation order is not name order.
        names.push(format!("/app/svc/s{:02}", 11 - i));
    }
    names.extend(
        [
            "/app/svc",
            "/app/svc0",
            "/app/SVC/x",
            "/app/svc\u{10ffff}",
            "/apq",
            "/app/svd/x",
        ]
        .map(String::from),
    );
    let mut ids = Vec::new();
    for name in &names {
        let value = format!("value of {name}");
        ids.push(create(store.as_ref(), name, Some(version("v1", &value, &[]))).await);
    }
    let under = listed(&*store, &Listing::live().under("/app/svc/")).await;
    assert_eq!(
        under,
        names[..12],
        "a prefix lists its names in creation order"
    );
    let with_labels = store
        .list(&Listing::live().under("/app/svc/"))
        .await
        .unwrap();
    assert!(
        with_labels
            .iter()
            .all(|s| s.stages == [("v1".to_string(), vec![AWSCURRENT.to_string()])]),
        "each listed secret comes with its labels"
    );
    let svc = listed(&*store, &Listing::live().under("/app/svc")).await;
    assert_eq!(svc.len(), 15, "{svc:?}");
    assert!(!svc.contains(&"/app/SVC/x".to_string()));
    let top = listed(&*store, &Listing::live().under("/app/svc\u{10ffff}")).await;
    assert_eq!(top, ["/app/svc\u{10ffff}"]);
    assert_eq!(listed(&*store, &Listing::live().under("/b")).await.len(), 0);
    assert_eq!(
        listed(&*store, &Listing::live().under("")).await,
        listed(&*store, &Listing::live()).await
    );
    assert_eq!(listed(&*store, &Listing::live()).await, names);

    for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        store
            .apply(
                Mutation::SetRotation {
                    secret: *id,
                    rotation: rotor_core::model::RotationMeta {
                        enabled: i % 2 == 0,
                        rotator: Some("r".into()),
                        ..Default::default()
                    },
                },
                t0(),
            )
            .await
            .unwrap();
    }
    let rotating: Vec<String> = names.iter().step_by(3).cloned().collect();
    assert_eq!(listed(&*store, &Listing::live().rotating()).await, rotating);
    assert_eq!(
        listed(&*store, &Listing::live().rotating().under("/app/svc/")).await,
        rotating[..4]
    );

    for (days, i) in [(7, 1), (8, 2), (9, 3), (7, 16)] {
        store
            .apply(
                Mutation::ScheduleDeletion {
                    secret: ids[i],
                    deletion_date: t0() + Duration::days(days),
                },
                t0(),
            )
            .await
            .unwrap();
    }
    let due = |days| Listing::deletion_due(t0() + Duration::days(days));
    assert_eq!(listed(&*store, &due(6)).await.len(), 0);
    assert_eq!(
        listed(&*store, &due(7)).await,
        [names[1].clone(), names[16].clone()]
    );
    assert_eq!(
        listed(&*store, &due(8)).await,
        [names[1].clone(), names[2].clone(), names[16].clone()]
    );
    let live = listed(&*store, &Listing::live().under("/app/svc/")).await;
    assert_eq!(live.len(), 9, "scheduled deletions leave live listings");
    let all = listed(&*store, &Listing::all().under("/app/svc/")).await;
    assert_eq!(all, names[..12]);
    let rotating_live = listed(&*store, &Listing::live().rotating()).await;
    assert!(!rotating_live.contains(&names[3]));
    assert_eq!(rotating_live.len(), rotating.len() - 1);
}

/// Creating a secret with a value gives it one version holding `AWSCURRENT`; it is
/// found by name and by ARN.
pub async fn create_and_load(store: Arc<dyn Store>) {
    let id = create(&*store, "prod/db", Some(version("v1", "one", &[]))).await;
    let r = load(&*store, "prod/db").await;
    assert_eq!(r.meta.id, id);
    assert_eq!(r.meta.description.as_deref(), Some("test secret"));
    assert_eq!(r.versions.len(), 1);
    assert_eq!(r.versions[0].labels, vec![AWSCURRENT.to_string()]);
    assert_eq!(r.versions[0].sealed, sealed("one"));
    let by_arn = store
        .load(&Lookup::Arn(r.meta.arn.clone()))
        .await
        .unwrap()
        .expect("found by ARN");
    assert_eq!(by_arn.meta.id, id);
    assert!(
        store
            .load(&Lookup::Name("nope".into()))
            .await
            .unwrap()
            .is_none()
    );
    let empty = create(&*store, "empty", None).await;
    assert!(load(&*store, "empty").await.versions.is_empty());
    assert_ne!(empty, id);
}

/// A new current version pushes the old one to `AWSPREVIOUS`; a pending one moves
/// nothing else.
pub async fn put_moves_labels(store: Arc<dyn Store>) {
    let id = create(&*store, "s", Some(version("v1", "one", &[]))).await;
    put(&*store, id, version("v2", "two", &[AWSCURRENT]))
        .await
        .unwrap();
    put(&*store, id, version("v3", "three", &[AWSPENDING]))
        .await
        .unwrap();
    let r = load(&*store, "s").await;
    assert_eq!(holder(&r, AWSCURRENT), Some("v2"));
    assert_eq!(holder(&r, AWSPREVIOUS), Some("v1"));
    assert_eq!(holder(&r, AWSPENDING), Some("v3"));
    assert_eq!(
        r.versions.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        ["v1", "v2", "v3"]
    );
    assert_invariants(&r);
}

/// The same version id with the same value is a replay; with another value it is
/// refused and nothing changes.
pub async fn version_ids_are_immutable(store: Arc<dyn Store>) {
    let id = create(&*store, "s", Some(version("v1", "one", &[]))).await;
    put(&*store, id, version("v2", "two", &[AWSCURRENT]))
        .await
        .unwrap();
    let replay = put(&*store, id, version("v2", "two", &[AWSCURRENT]))
        .await
        .unwrap();
    assert!(
        matches!(replay, Outcome::Version { replayed: true, .. }),
        "{replay:?}"
    );
    let before = load(&*store, "s").await;
    let err = put(&*store, id, version("v2", "other", &[AWSCURRENT]))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ResourceExists);
    let after = load(&*store, "s").await;
    assert_eq!(after.versions.len(), 2);
    assert_eq!(after.versions[1].sealed, before.versions[1].sealed);
    assert_eq!(holder(&after, AWSCURRENT), Some("v2"));
}

/// A record carries only labeled versions; deprecated ones load one at a time and
/// appear in the full listing.
pub async fn deprecated_versions_load_on_demand(store: Arc<dyn Store>) {
    let id = create(&*store, "s", Some(version("v1", "one", &[]))).await;
    put(&*store, id, version("v2", "two", &[AWSCURRENT]))
        .await
        .unwrap();
    put(&*store, id, version("v3", "three", &[AWSCURRENT]))
        .await
        .unwrap();
    let r = load(&*store, "s").await;
    assert_eq!(
        r.versions.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        ["v2", "v3"]
    );
    let v1 = store
        .load_version(id, "v1")
        .await
        .unwrap()
        .expect("v1 exists");
    assert!(v1.labels.is_empty());
    assert_eq!(v1.sealed, sealed("one"));
    assert!(store.load_version(id, "nope").await.unwrap().is_none());
    let all = store.list_versions(id).await.unwrap();
    let listed: Vec<(&str, Vec<String>)> = all
        .iter()
        .map(|v| (v.id.as_str(), v.labels.clone()))
        .collect();
    assert_eq!(
        listed,
        [
            ("v1", vec![]),
            ("v2", vec![AWSPREVIOUS.to_string()]),
            ("v3", vec![AWSCURRENT.to_string()])
        ]
    );
    // A label can move onto a deprecated version.
    store
        .apply(
            Mutation::MoveLabel {
                secret: id,
                label: "blue".into(),
                move_to: Some("v1".into()),
                remove_from: None,
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(
        store.load_version(id, "v1").await.unwrap().unwrap().labels,
        ["blue"]
    );
}

/// Creating an existing name is refused, unless it repeats the same first version.
pub async fn create_is_idempotent_per_token(store: Arc<dyn Store>) {
    let id = create(&*store, "s", Some(version("tok", "one", &[]))).await;
    let again = store
        .apply(
            Mutation::CreateSecret {
                name: "s".into(),
                arn: "arn:other".into(),
                description: None,
                kms_key_id: None,
                tags: vec![],
                first_version: Some(version("tok", "one", &[])),
            },
            t0(),
        )
        .await
        .unwrap();
    assert!(matches!(again, Outcome::Created { id: i, replayed: true, .. } if i == id));
    let clash = store
        .apply(
            Mutation::CreateSecret {
                name: "s".into(),
                arn: "arn:other".into(),
                description: None,
                kms_key_id: None,
                tags: vec![],
                first_version: Some(version("tok2", "one", &[])),
            },
            t0(),
        )
        .await
        .unwrap_err();
    assert_eq!(clash.kind, ErrorKind::ResourceExists);
    assert_eq!(load(&*store, "s").await.versions.len(), 1);
}

/// `UpdateSecretVersionStage` rules hold in the store, and a refused move changes
/// nothing.
pub async fn label_moves(store: Arc<dyn Store>) {
    let id = create(&*store, "s", Some(version("v1", "one", &[]))).await;
    put(&*store, id, version("v2", "two", &[AWSPENDING]))
        .await
        .unwrap();
    let mv = |label: &str, to: Option<&str>, from: Option<&str>| Mutation::MoveLabel {
        secret: id,
        label: label.into(),
        move_to: to.map(Into::into),
        remove_from: from.map(Into::into),
    };
    let e = store
        .apply(mv(AWSCURRENT, Some("v2"), None), t0())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidParameter);
    assert_eq!(holder(&load(&*store, "s").await, AWSCURRENT), Some("v1"));
    store
        .apply(mv(AWSCURRENT, Some("v2"), Some("v1")), t0())
        .await
        .unwrap();
    let r = load(&*store, "s").await;
    assert_eq!(holder(&r, AWSCURRENT), Some("v2"));
    assert_eq!(holder(&r, AWSPREVIOUS), Some("v1"));
    assert_eq!(holder(&r, AWSPENDING), Some("v2"));
    store
        .apply(mv(AWSPENDING, None, Some("v2")), t0())
        .await
        .unwrap();
    assert_eq!(holder(&load(&*store, "s").await, AWSPENDING), None);
    let e = store
        .apply(mv("x", Some("v9"), None), t0())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ResourceNotFound);
    assert_invariants(&load(&*store, "s").await);
}

/// Scheduled deletion refuses writes and hides from listings; restore undoes it;
/// purge removes everything and frees the name.
pub async fn deletion_lifecycle(store: Arc<dyn Store>) {
    let id = create(&*store, "s", Some(version("v1", "one", &[]))).await;
    create(&*store, "other", None).await;
    store
        .apply(
            Mutation::ScheduleDeletion {
                secret: id,
                deletion_date: t0() + Duration::days(7),
            },
            t0(),
        )
        .await
        .unwrap();
    let r = load(&*store, "s").await;
    assert_eq!(r.meta.deletion_date, Some(t0() + Duration::days(7)));
    let e = put(&*store, id, version("v2", "two", &[AWSCURRENT]))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    let listed: Vec<String> = store
        .list(&Listing::live())
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.meta.name)
        .collect();
    assert_eq!(listed, ["other"]);
    assert_eq!(store.list(&Listing::all()).await.unwrap().len(), 2);
    store
        .apply(Mutation::Restore { secret: id }, t0())
        .await
        .unwrap();
    assert!(load(&*store, "s").await.meta.deletion_date.is_none());
    put(&*store, id, version("v2", "two", &[AWSCURRENT]))
        .await
        .unwrap();
    store
        .apply(Mutation::Purge { secret: id }, t0())
        .await
        .unwrap();
    assert!(
        store
            .load(&Lookup::Name("s".into()))
            .await
            .unwrap()
            .is_none()
    );
    create(&*store, "s", Some(version("v1", "again", &[]))).await;
    assert_eq!(load(&*store, "s").await.versions[0].sealed, sealed("again"));
}

/// Past 100 versions, unlabeled versions older than 24 h are pruned, oldest first.
pub async fn deprecated_versions_are_pruned(store: Arc<dyn Store>) {
    let id = create(&*store, "s", Some(version("v000", "0", &[]))).await;
    for i in 1..105 {
        put(
            &*store,
            id,
            version(&format!("v{i:03}"), &i.to_string(), &[AWSCURRENT]),
        )
        .await
        .unwrap();
    }
    // All young: nothing pruned yet.
    assert_eq!(store.list_versions(id).await.unwrap().len(), 105);
    let later = t0() + Duration::hours(25);
    store
        .apply(
            Mutation::PutVersion {
                secret: id,
                version: version("v105", "105", &[AWSCURRENT]),
            },
            later,
        )
        .await
        .unwrap();
    let all = store.list_versions(id).await.unwrap();
    assert_eq!(all.len(), 100);
    assert_eq!(all[0].id, "v006");
    let r = load(&*store, "s").await;
    assert_eq!(holder(&r, AWSCURRENT), Some("v105"));
    assert_eq!(holder(&r, AWSPREVIOUS), Some("v104"));
}

/// Issue 11, hole 10: written faster than pruning's 24 hours allow, a secret still
/// stays under MAX_STORED_VERSIONS: past it the oldest unlabeled versions go, young or
/// not, while the labeled ones stay.
pub async fn versions_stay_bounded_when_written_fast(store: Arc<dyn Store>) {
    let id = create(&*store, "s", Some(version("v0000", "0", &["keep"]))).await;
    // A second secret written at the same time: runs of puts span both, and each
    // keeps its own counters (sequence numbers, version counts) through the pruning.
    let other = create(&*store, "t", None).await;
    // Past the bound, and on for a few puts after the pruning.
    let total = rotor_core::label::MAX_STORED_VERSIONS + 10;
    for i in 1..total {
        let (a, b) = tokio::join!(
            put(
                &*store,
                id,
                version(&format!("v{i:04}"), &i.to_string(), &[AWSCURRENT]),
            ),
            put(
                &*store,
                other,
                version(&format!("w{i:04}"), &i.to_string(), &[AWSCURRENT]),
            )
        );
        a.expect("put succeeds");
        b.expect("put succeeds");
    }
    for secret in [id, other] {
        let all = store.list_versions(secret).await.unwrap();
        assert!(
            all.len() <= rotor_core::label::MAX_STORED_VERSIONS,
            "{} versions kept",
            all.len()
        );
        let ids: Vec<&str> = all.iter().map(|v| v.id.as_str()).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "versions listed in the order they were added"
        );
        if secret == id {
            assert_eq!(ids[0], "v0000", "a labeled version stays");
        }
    }
    let r = load(&*store, "s").await;
    let last = format!("v{:04}", total - 1);
    assert_eq!(holder(&r, AWSCURRENT), Some(last.as_str()));
    assert_eq!(holder(&r, "keep"), Some("v0000"));
    let r = load(&*store, "t").await;
    let last = format!("w{:04}", total - 1);
    assert_eq!(holder(&r, AWSCURRENT), Some(last.as_str()));
}

/// Issue 11, hole 10: the outbox grew without bound. Pruning past a retention keeps
/// what a subscription has not delivered, each consumer's latest acknowledgement,
/// and the newest event (so numbering goes on where it was).
pub async fn events_are_pruned_past_retention_keeping_what_is_needed(store: Arc<dyn Store>) {
    let append = |kind: &str, secret: &str, detail: serde_json::Value, at| {
        let store = store.clone();
        let (kind, secret) = (kind.to_string(), secret.to_string());
        async move {
            store
                .apply(
                    Mutation::AppendEvent {
                        kind,
                        secret: Some(secret),
                        detail: detail.to_string(),
                    },
                    at,
                )
                .await
                .unwrap();
        }
    };
    let old = t0();
    let ack = |consumer: &str, version: &str| serde_json::json!({"consumer": consumer, "version": version, "host": null});
    append("consumer.ack", "app/db", ack("agent-1", "v1"), old).await; // 1: superseded
    append("consumer.ack", "app/db", ack("agent-1", "v2"), old).await; // 2: latest of agent-1
    append("consumer.ack", "app/db", ack("agent-2", "v1"), old).await; // 3: latest of agent-2
    for _ in 0..5 {
        append("secret.updated", "app/db", serde_json::json!({}), old).await; // 4..=8
    }
    store
        .apply(
            Mutation::PutSubscription {
                subscription: SubscriptionRow {
                    name: "slow".into(),
                    prefix: String::new(),
                    kinds: vec![],
                    target_kind: "webhook".into(),
                    target: r#"{"url":"http://127.0.0.1:9/"}"#.into(),
                    key: None,
                    cursor: 6,
                    created: old,
                    created_by: "root".into(),
                },
            },
            old,
        )
        .await
        .unwrap();
    let later = old + Duration::hours(200);
    append("secret.updated", "app/db", serde_json::json!({}), later).await; // 9: young
    let retention = later - Duration::hours(168);
    store
        .apply(
            Mutation::PruneEvents {
                older_than: retention,
                limit: 1000,
            },
            later,
        )
        .await
        .unwrap();
    let left: Vec<i64> = store
        .events(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        left,
        [2, 3, 7, 8, 9],
        "kept: latest acks, undelivered, young"
    );

    // Once the subscription is gone, old events go, but never the newest one.
    store
        .apply(
            Mutation::DeleteSubscription {
                name: "slow".into(),
            },
            later,
        )
        .await
        .unwrap();
    store
        .apply(
            Mutation::PruneEvents {
                older_than: later + Duration::hours(1),
                limit: 1000,
            },
            later,
        )
        .await
        .unwrap();
    let left: Vec<i64> = store
        .events(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, [2, 3, 9]);
    append("secret.updated", "app/db", serde_json::json!({}), later).await;
    let last = store.events(9, 10).await.unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].seq, 10, "numbering goes on");
}

/// Tags are added, replaced by key, and removed.
pub async fn tags(store: Arc<dyn Store>) {
    let id = create(&*store, "s", None).await;
    let tag = |k: &str, v: &str| Tag {
        key: k.into(),
        value: v.into(),
    };
    store
        .apply(
            Mutation::Tag {
                secret: id,
                tags: vec![tag("a", "1"), tag("b", "2")],
            },
            t0(),
        )
        .await
        .unwrap();
    store
        .apply(
            Mutation::Tag {
                secret: id,
                tags: vec![tag("a", "3")],
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(
        load(&*store, "s").await.meta.tags,
        vec![tag("a", "3"), tag("b", "2")]
    );
    store
        .apply(
            Mutation::Untag {
                secret: id,
                keys: vec!["a".into()],
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(load(&*store, "s").await.meta.tags, vec![tag("b", "2")]);
}

/// Many concurrent writers: every acknowledged write is there, a failing write in the
/// same batch does not disturb the others, and the label invariants hold.
pub async fn concurrent_writes_group_commit(store: Arc<dyn Store>) {
    let id = create(&*store, "s", Some(version("v0", "0", &[]))).await;
    let mut tasks = Vec::new();
    for i in 1..=200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Every tenth write reuses v0 with another value and must fail alone.
            let v = if i % 10 == 0 {
                version("v0", &format!("clash{i}"), &[AWSCURRENT])
            } else {
                version(&format!("v{i}"), &i.to_string(), &[AWSCURRENT])
            };
            (
                i,
                store
                    .apply(
                        Mutation::PutVersion {
                            secret: id,
                            version: v,
                        },
                        t0(),
                    )
                    .await,
            )
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (i, result) = t.await.expect("task runs");
        match result {
            Ok(_) => ok += 1,
            Err(e) => assert!(
                i % 10 == 0 && e.kind == ErrorKind::ResourceExists,
                "write {i}: {e}"
            ),
        }
    }
    assert_eq!(ok, 180);
    assert_eq!(store.list_versions(id).await.unwrap().len(), 181);
    let v0 = store
        .load_version(id, "v0")
        .await
        .unwrap()
        .expect("v0 kept");
    assert_eq!(v0.sealed, sealed("0"));
    assert_invariants(&load(&*store, "s").await);
}

/// Concurrent puts to several secrets, with replays (same id, same value) and
/// conflicts (same id, other value) among them: whatever batches they fall into, each
/// id is created once, replays succeed, conflicts fail, and counts add up.
pub async fn concurrent_replays_and_conflicts_across_secrets(store: Arc<dyn Store>) {
    let ids: Vec<i64> = three_secrets(store.clone()).await;
    let mut tasks = Vec::new();
    for i in 0..240 {
        let store = store.clone();
        // Ids repeat every 80 puts, to the same secret: the second time with the same
        // value (a replay), the third time with another (a conflict).
        let n = i % 80;
        let secret = ids[n % 3];
        tasks.push(tokio::spawn(async move {
            let value = if i >= 160 {
                format!("other{n}")
            } else {
                format!("value{n}")
            };
            let v = version(&format!("v{n}"), &value, &[AWSCURRENT]);
            (
                i,
                store
                    .apply(Mutation::PutVersion { secret, version: v }, t0())
                    .await,
            )
        }));
    }
    let (mut created, mut replayed, mut conflicts) = (0, 0, 0);
    for t in tasks {
        let (i, result) = t.await.expect("task runs");
        match result {
            Ok(Outcome::Version {
                replayed: false, ..
            }) => created += 1,
            Ok(Outcome::Version { replayed: true, .. }) => replayed += 1,
            Err(e) if e.kind == ErrorKind::ResourceExists => conflicts += 1,
            other => panic!("put {i}: {other:?}"),
        }
    }
    // Whichever of the three puts of an id comes first creates it. If that was one of
    // the two with the same value, the other is a replay and the third a conflict;
    // otherwise both others conflict.
    assert_eq!(
        created, 80,
        "every distinct (secret, id) pair is created exactly once"
    );
    assert_eq!(replayed + conflicts, 160);
    assert!(conflicts >= 80, "{conflicts} conflicts");
    for (k, id) in ids.iter().enumerate() {
        let versions = store.list_versions(*id).await.unwrap();
        assert_eq!(versions.len(), 1 + (0..80).filter(|n| n % 3 == k).count());
        let name = ["r0", "r1", "r2"][k];
        assert_invariants(&load(&*store, name).await);
    }
}

async fn three_secrets(store: Arc<dyn Store>) -> Vec<i64> {
    let mut ids = Vec::new();
    for name in ["r0", "r1", "r2"] {
        ids.push(create(&*store, name, Some(version("first", "0", &[]))).await);
    }
    ids
}

/// Recorded master key ids are listed, each once.
pub async fn master_keys_are_recorded(store: Arc<dyn Store>) {
    assert!(store.master_keys().await.unwrap().is_empty());
    for id in ["mk-a", "mk-a", "mk-b"] {
        store
            .apply(Mutation::RecordMasterKey { key_id: id.into() }, t0())
            .await
            .unwrap();
    }
    let mut keys = store.master_keys().await.unwrap();
    keys.sort();
    assert_eq!(keys, ["mk-a", "mk-b"]);
}

/// Principals, policies, attachments, tokens and access keys: created, listed,
/// refused when they clash or name nothing, and removed with their principal.
pub async fn access_configuration(store: Arc<dyn Store>) {
    let access = |m: AccessMutation| store.apply(Mutation::Access(m), t0());
    access(AccessMutation::CreatePrincipal {
        name: "dba".into(),
        kind: "person".into(),
    })
    .await
    .unwrap();
    access(AccessMutation::CreatePrincipal {
        name: "mp".into(),
        kind: "service".into(),
    })
    .await
    .unwrap();
    let dup = access(AccessMutation::CreatePrincipal {
        name: "mp".into(),
        kind: "service".into(),
    })
    .await
    .unwrap_err();
    assert_eq!(dup.kind, ErrorKind::ResourceExists);
    access(AccessMutation::PutPolicy {
        name: "read-mp".into(),
        document: "{}".into(),
    })
    .await
    .unwrap();
    access(AccessMutation::PutPolicy {
        name: "read-mp".into(),
        document: "{\"v\":2}".into(),
    })
    .await
    .unwrap();
    access(AccessMutation::Attach {
        principal: "mp".into(),
        policy: "read-mp".into(),
    })
    .await
    .unwrap();
    access(AccessMutation::Attach {
        principal: "mp".into(),
        policy: "read-mp".into(),
    })
    .await
    .unwrap();
    for (principal, policy) in [("nobody", "read-mp"), ("mp", "nothing")] {
        let e = access(AccessMutation::Attach {
            principal: principal.into(),
            policy: policy.into(),
        })
        .await
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::ResourceNotFound);
    }
    access(AccessMutation::CreateToken {
        id: "t1".into(),
        principal: "mp".into(),
        hash: vec![1, 2, 3],
        expires: None,
    })
    .await
    .unwrap();
    access(AccessMutation::CreateToken {
        id: "t2".into(),
        principal: "dba".into(),
        hash: vec![4],
        expires: Some(t0()),
    })
    .await
    .unwrap();
    access(AccessMutation::RevokeToken { id: "t2".into() })
        .await
        .unwrap();
    assert_eq!(
        access(AccessMutation::RevokeToken { id: "t9".into() })
            .await
            .unwrap_err()
            .kind,
        ErrorKind::ResourceNotFound
    );
    access(AccessMutation::CreateAccessKey {
        id: "AKIA1".into(),
        principal: "mp".into(),
        sealed: sealed("key"),
    })
    .await
    .unwrap();

    let snap = store.access().await.unwrap();
    let mp = snap
        .principals
        .iter()
        .find(|p| p.name == "mp")
        .expect("mp listed");
    assert_eq!(
        (mp.kind.as_str(), mp.policies.clone()),
        ("service", vec!["read-mp".to_string()])
    );
    assert_eq!(
        snap.policies,
        [("read-mp".to_string(), "{\"v\":2}".to_string())]
    );
    let t1 = snap.tokens.iter().find(|t| t.id == "t1").unwrap();
    assert_eq!(
        (t1.principal_id, t1.hash.clone(), t1.revoked),
        (mp.id, vec![1, 2, 3], None)
    );
    assert_eq!(
        snap.tokens.iter().find(|t| t.id == "t2").unwrap().revoked,
        Some(t0())
    );
    assert_eq!(
        snap.access_keys[0].sealed.ciphertext,
        sealed("key").ciphertext
    );

    access(AccessMutation::Detach {
        principal: "mp".into(),
        policy: "read-mp".into(),
    })
    .await
    .unwrap();
    let e = access(AccessMutation::Detach {
        principal: "mp".into(),
        policy: "read-mp".into(),
    })
    .await
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ResourceNotFound);
    access(AccessMutation::DeletePrincipal { name: "mp".into() })
        .await
        .unwrap();
    let snap = store.access().await.unwrap();
    assert_eq!(snap.principals.len(), 1);
    assert!(snap.tokens.iter().all(|t| t.id != "t1"));
    assert!(snap.access_keys.is_empty());
    access(AccessMutation::DeletePolicy {
        name: "read-mp".into(),
    })
    .await
    .unwrap();
    assert!(store.access().await.unwrap().policies.is_empty());
}

/// The audit store sink keeps batches of entries and gives them back line by line,
/// in sequence order; a batch overlapping one already stored is refused.
pub async fn audit_entries_append_in_order(store: Arc<dyn Store>) {
    let entries: Vec<(i64, String)> = (1..=150).map(|i| (i, format!("{{\"seq\":{i}}}"))).collect();
    let batch = |from: usize, to: usize| Mutation::AppendAudit {
        first: entries[from].0,
        last: entries[to - 1].0,
        lines: entries[from..to]
            .iter()
            .map(|(_, l)| format!("{l}\n"))
            .collect(),
    };
    store.apply(batch(0, 70), t0()).await.unwrap();
    store.apply(batch(70, 150), t0()).await.unwrap();
    assert_eq!(store.audit_entries(0).await.unwrap(), entries);
    assert_eq!(store.audit_entries(148).await.unwrap(), entries[148..]);
    assert_eq!(store.audit_entries(60).await.unwrap(), entries[60..]);
    assert!(
        store.apply(batch(4, 6), t0()).await.is_err(),
        "a sequence number is written once"
    );
}

/// Every change appends events in its own transaction, numbered without gaps; a
/// refused change leaves none, and the event feed follows the last one.
pub async fn events_are_gap_free_and_transactional(store: Arc<dyn Store>) {
    let feed = store.event_feed();
    let id = create(&*store, "ev/a", Some(version("v1", "one", &[AWSCURRENT]))).await;
    put(&*store, id, version("v2", "two", &[AWSCURRENT]))
        .await
        .unwrap();
    let refused = put(&*store, id, version("v2", "other", &[AWSCURRENT])).await;
    assert!(
        refused.is_err(),
        "a token reused with another value is refused"
    );
    let jobs: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                put(
                    &*store,
                    id,
                    version(&format!("c{i}"), &format!("c{i}"), &[AWSCURRENT]),
                )
                .await
            })
        })
        .collect();
    for j in jobs {
        j.await.unwrap().unwrap();
    }
    let events = store.events(0, 1000).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "sequence numbers have no gaps");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds[..3], ["secret.created", "version.put", "version.put"]);
    assert_eq!(events.len(), 23, "the refused put left no event: {kinds:?}");
    assert!(events.iter().all(|e| e.secret.as_deref() == Some("ev/a")));
    let v2: serde_json::Value = serde_json::from_str(&events[2].detail).unwrap();
    assert_eq!(v2["version"], "v2");
    assert_eq!(v2["labels"], serde_json::json!([AWSCURRENT]));
    assert_eq!(store.events(21, 10).await.unwrap().len(), 2);
    assert_eq!(
        *feed.borrow(),
        23,
        "the feed follows the last committed event"
    );
}

/// `Atomic` applies all of its mutations or none of them.
pub async fn atomic_changes_are_all_or_nothing(store: Arc<dyn Store>) {
    let a = create(&*store, "at/a", Some(version("v1", "one", &[AWSCURRENT]))).await;
    let b = create(&*store, "at/b", Some(version("v1", "one", &[AWSCURRENT]))).await;
    let before = store.events(0, 1000).await.unwrap().len();
    let refused = store
        .apply(
            Mutation::Atomic(vec![
                Mutation::PutVersion {
                    secret: a,
                    version: version("v2", "two", &[AWSCURRENT]),
                },
                Mutation::PutVersion {
                    secret: b,
                    version: version("v1", "not one", &[AWSCURRENT]),
                },
            ]),
            t0(),
        )
        .await;
    assert!(refused.is_err());
    assert_eq!(
        holder(&load(&*store, "at/a").await, AWSCURRENT),
        Some("v1"),
        "rolled back"
    );
    assert_eq!(
        store.events(0, 1000).await.unwrap().len(),
        before,
        "no events either"
    );
    let mut replica = version("v2", "two", &[AWSCURRENT]);
    replica.source = Some(r#"[{"secret":"at/a","version":"v2"}]"#.into());
    let done = store
        .apply(
            Mutation::Atomic(vec![
                Mutation::PutVersion {
                    secret: a,
                    version: version("v2", "two", &[AWSCURRENT]),
                },
                Mutation::PutVersion {
                    secret: b,
                    version: replica,
                },
                Mutation::MarkReplica {
                    name: "at/b".into(),
                    rule: Some("r".into()),
                },
            ]),
            t0(),
        )
        .await
        .unwrap();
    assert!(
        matches!(done, Outcome::All(ref all) if all.len() == 3),
        "{done:?}"
    );
    let b_now = load(&*store, "at/b").await;
    assert_eq!(holder(&b_now, AWSCURRENT), Some("v2"));
    assert_eq!(holder(&b_now, AWSPREVIOUS), Some("v1"));
    assert_eq!(b_now.meta.replica_of.as_deref(), Some("r"));
    let versions = store.list_versions(b).await.unwrap();
    assert!(
        versions
            .iter()
            .any(|v| v.id == "v2" && v.source.as_deref().is_some_and(|s| s.contains("at/a")))
    );
    let kinds: Vec<String> = store.events(0, 1000).await.unwrap()[before..]
        .iter()
        .map(|e| e.kind.clone())
        .collect();
    assert_eq!(kinds, ["version.put", "version.put", "replication.applied"]);
}

/// Rotation records: one running rotation per secret, progress saved, the due index.
pub async fn rotation_records(store: Arc<dyn Store>) {
    use rotor_core::model::{RotationMeta, RotationRecord, RotationStatus, Step};
    let id = create(&*store, "rot/a", Some(version("v1", "one", &[AWSCURRENT]))).await;
    let record = |token: &str| RotationRecord {
        secret: id,
        name: "rot/a".into(),
        token: token.into(),
        rotator: "r".into(),
        status: RotationStatus::Running,
        step: Step::CreateSecret,
        attempt: 1,
        started: t0(),
        updated: t0(),
        finished: None,
        resume_at: None,
        error: None,
        steps: Vec::new(),
        epoch: 0,
        gates: Vec::new(),
    };
    let due = t0() + Duration::hours(1);
    store
        .apply(
            Mutation::SetRotation {
                secret: id,
                rotation: RotationMeta {
                    enabled: true,
                    rotator: Some("r".into()),
                    due: Some(due),
                    principal: Some("rotation-owner".into()),
                    adoption: rotor_core::model::AdoptionPolicy {
                        retire_previous: true,
                        adoption_timeout_secs: 30,
                        on_timeout: rotor_core::model::OnTimeout::Proceed,
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
            t0(),
        )
        .await
        .unwrap();
    let loaded = store
        .load(&Lookup::Name("rot/a".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        loaded.meta.rotation.principal.as_deref(),
        Some("rotation-owner"),
        "the principal a rotation runs as is kept"
    );
    assert!(loaded.meta.rotation.adoption.retire_previous);
    assert_eq!(loaded.meta.rotation.adoption.adoption_timeout_secs, 30);
    assert_eq!(
        loaded.meta.rotation.adoption.on_timeout,
        rotor_core::model::OnTimeout::Proceed
    );
    let (none, next) = store.due_rotations(t0(), 10).await.unwrap();
    assert!(none.is_empty());
    assert_eq!(next, Some(due));
    let (found, _) = store.due_rotations(due, 10).await.unwrap();
    assert_eq!(found, vec![(id, "rot/a".to_string())]);
    store
        .apply(
            Mutation::StartRotation {
                record: record("t1"),
            },
            t0(),
        )
        .await
        .unwrap();
    assert!(
        store.due_rotations(due, 10).await.unwrap().0.is_empty(),
        "started: not due"
    );
    let again = store
        .apply(
            Mutation::StartRotation {
                record: record("t1"),
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(again, Outcome::Rotation { replayed: true });
    let other = store
        .apply(
            Mutation::StartRotation {
                record: record("t2"),
            },
            t0(),
        )
        .await;
    assert_eq!(other.unwrap_err().kind, ErrorKind::InvalidRequest);
    let mut r = store.rotation(id, "t1").await.unwrap().unwrap();
    assert_eq!(r.name, "rot/a");
    r.step = Step::SetSecret;
    let gate = rotor_core::model::GateRun {
        step: "setSecret".into(),
        version: "v1".into(),
        attempt: 1,
        started: t0(),
        waiting_for: vec!["web-1".into()],
        passed: None,
        outcome: None,
    };
    r.gates.push(gate.clone());
    store
        .apply(
            Mutation::SaveRotation {
                record: r.clone(),
                rotation: None,
                release_pending: false,
            },
            t0(),
        )
        .await
        .unwrap();
    let running = store.running_rotations().await.unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].step, Step::SetSecret);
    assert_eq!(running[0].gates, vec![gate], "a gate in progress is kept");
    r.status = RotationStatus::Succeeded;
    store
        .apply(
            Mutation::SaveRotation {
                record: r,
                rotation: None,
                release_pending: true,
            },
            t0(),
        )
        .await
        .unwrap();
    assert!(store.running_rotations().await.unwrap().is_empty());
    assert_eq!(
        store.rotations(id, 5).await.unwrap()[0].status,
        RotationStatus::Succeeded
    );
    // A put tells whether the secret rotates, so that the service need not load it
    // again to reschedule a rotation after a change by hand.
    let other = create(&*store, "rot/plain", None).await;
    for (secret, rotates) in [(id, true), (other, false)] {
        let out = put(&*store, secret, version("v-put", "x", &[AWSCURRENT]))
            .await
            .unwrap();
        assert!(
            matches!(out, Outcome::Version { rotates: r, .. } if r == rotates),
            "{out:?}"
        );
    }
}

/// The consumer registry: reports upsert keeping the first sighting, a consumer id
/// belongs to the principal that first reported it, a consumer leaves, pruning
/// forgets the gone, and a purged secret takes its consumers with it.
pub async fn consumer_registry(store: Arc<dyn Store>) {
    use crate::{ConsumerKind, ConsumerRow};
    let a = create(&*store, "app/a", Some(version("v1", "one", &[AWSCURRENT]))).await;
    let b = create(&*store, "app/b", Some(version("v1", "one", &[AWSCURRENT]))).await;
    let row = |secret: i64, consumer: &str, version: &str, principal: &str, at: i64| ConsumerRow {
        secret,
        consumer: consumer.into(),
        kind: ConsumerKind::Registered,
        version_id: version.into(),
        principal: principal.into(),
        host: Some("10.0.0.1".into()),
        first_seen: t0(),
        last_seen: t0() + Duration::seconds(at),
        expires: Some(t0() + Duration::seconds(at + 60)),
    };
    let report = |rows: Vec<ConsumerRow>| {
        let store = store.clone();
        async move {
            store
                .apply(Mutation::ReportConsumers { consumers: rows }, t0())
                .await
                .unwrap()
        }
    };
    let reader = ConsumerRow {
        kind: ConsumerKind::Reader,
        expires: None,
        ..row(a, "svc@10.0.0.9", "v1", "svc", 5)
    };
    report(vec![
        row(a, "web-1", "v1", "app", 0),
        row(b, "web-1", "v1", "app", 0),
        reader.clone(),
        // A secret that does not exist is skipped, not an error for the batch.
        row(9_999, "web-9", "v1", "app", 0),
    ])
    .await;
    // A heartbeat on a new version: first_seen stays, the rest follows. Another
    // principal reporting the same consumer id changes nothing.
    report(vec![row(a, "web-1", "v2", "app", 15)]).await;
    report(vec![row(a, "web-1", "v9", "intruder", 20)]).await;
    // A report older than the stored one (another node's, late) changes nothing.
    report(vec![row(a, "web-1", "v1", "app", 10)]).await;
    let rows = store.consumers(&[a]).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let web = rows.iter().find(|r| r.consumer == "web-1").unwrap();
    assert_eq!(web.version_id, "v2");
    assert_eq!(web.principal, "app");
    assert_eq!(web.first_seen, t0());
    assert_eq!(web.last_seen, t0() + Duration::seconds(15));
    assert_eq!(web.expires, Some(t0() + Duration::seconds(75)));
    assert_eq!(
        rows.iter().find(|r| r.kind == ConsumerKind::Reader),
        Some(&ConsumerRow {
            first_seen: t0() + Duration::seconds(5),
            ..reader
        })
    );
    assert_eq!(store.consumers(&[a, b]).await.unwrap().len(), 3);
    assert!(store.consumers(&[9_999]).await.unwrap().is_empty());
    // Leaving: only its own principal can end it.
    let leave = |principal: &str| Mutation::EndConsumer {
        secret: a,
        consumer: "web-1".into(),
        principal: principal.into(),
    };
    let later = t0() + Duration::seconds(30);
    store.apply(leave("intruder"), later).await.unwrap();
    let expires = |rows: Vec<ConsumerRow>| {
        rows.into_iter()
            .find(|r| r.consumer == "web-1")
            .and_then(|r| r.expires)
    };
    assert_eq!(
        expires(store.consumers(&[a]).await.unwrap()),
        Some(t0() + Duration::seconds(75))
    );
    store.apply(leave("app"), later).await.unwrap();
    assert_eq!(expires(store.consumers(&[a]).await.unwrap()), Some(later));
    // Pruning forgets what ended (or was last read) before the horizon.
    store
        .apply(
            Mutation::PruneConsumers {
                before: t0() + Duration::seconds(31),
            },
            later,
        )
        .await
        .unwrap();
    assert!(store.consumers(&[a]).await.unwrap().is_empty());
    assert_eq!(store.consumers(&[b]).await.unwrap().len(), 1);
    store
        .apply(Mutation::Purge { secret: b }, later)
        .await
        .unwrap();
    assert!(store.consumers(&[b]).await.unwrap().is_empty());
}

/// Defines one test per check of the suite, each on a fresh store: `$fresh` is an
/// async fn taking the check's name and returning `(guard, Arc<dyn Store>)`, the
/// guard kept alive (a temporary directory, a database server) until the check ends.
/// A backend's test module is then one line: `rotor_store::conformance_tests!(fresh);`.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@each $fresh; create_and_load, listings_are_narrowed, put_moves_labels, version_ids_are_immutable, deprecated_versions_load_on_demand, create_is_idempotent_per_token, label_moves, deletion_lifecycle, deprecated_versions_are_pruned, versions_stay_bounded_when_written_fast, events_are_pruned_past_retention_keeping_what_is_needed, tags, concurrent_writes_group_commit, concurrent_replays_and_conflicts_across_secrets, master_keys_are_recorded, access_configuration, audit_entries_append_in_order, events_are_gap_free_and_transactional, atomic_changes_are_all_or_nothing, rotation_records, consumer_registry);
    };
    (@each $fresh:path; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (_guard, store) = $fresh(stringify!($check)).await;
                $crate::conformance::$check(store.clone()).await;
                store.close().await;
            }
        )*
    };
}
