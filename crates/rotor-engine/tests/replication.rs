//! Replication between namespaces over a real store (seed 000): copy and merge
//! rules, replicas in the source's transaction, permissions, cycles, drift repair.

use rotor_core::label::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::policy::{Capability, Effect, Statement};
use rotor_core::value::SecretValue;
use rotor_core::{ErrorKind, Result};
use rotor_engine::replication::{Kind, RuleSpec};
use rotor_engine::{AccessService, Caller, CreateSecret, PutValue, SecretService};
use rotor_store::Mutation;
use secrecy::ExposeSecret;
use std::sync::Arc;

const DBA_PATH: &str = "/dba/passpack/services/message-processor/mongo/";
const APP_PATH: &str = "/app/message-processor/replicated/mongo/";

struct World {
    s: Arc<SecretService>,
    access: Arc<AccessService>,
    root: Caller,
}

/// A service whose rules copy as real principals, looked up with their current
/// policies each time they copy.
async fn world() -> World {
    let base = crate::fixtures::base().await;
    World {
        s: base.service,
        access: base.access,
        root: base.root,
    }
}

/// A principal allowed (and denied) what `grants` say, as a caller.
async fn principal_with(w: &World, name: &str, statements: Vec<Statement>) -> Caller {
    crate::fixtures::principal(&w.access, &w.root, name, statements).await
}

async fn principal(w: &World, name: &str, grants: &[(&[Capability], &str)]) -> Caller {
    let statements = grants
        .iter()
        .map(|(caps, path)| Statement {
            effect: Effect::Allow,
            capabilities: caps.to_vec(),
            paths: vec![path.to_string()],
        })
        .collect();
    principal_with(w, name, statements).await
}

async fn dba(w: &World) -> Caller {
    use Capability::*;
    principal(
        w,
        "dba",
        &[
            (&[Read, Write, Describe, List, Delete, Rotate], "/dba/**"),
            (&[Share, Describe], "/app/message-processor/**"),
        ],
    )
    .await
}

async fn app(w: &World) -> Caller {
    principal(
        w,
        "message-processor",
        &[(
            &[Capability::Read, Capability::Describe],
            "/app/message-processor/**",
        )],
    )
    .await
}

async fn text(s: &SecretService, who: &Caller, name: &str, stage: &str) -> Result<String> {
    let v = s.get_value(who, name, None, Some(stage)).await?;
    match v.value {
        SecretValue::String(t) => Ok(t.expose_secret().to_string()),
        SecretValue::Binary(_) => panic!("binary"),
    }
}

async fn create(s: &SecretService, who: &Caller, name: &str, value: &str) {
    s.create(
        who,
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

async fn put(s: &SecretService, who: &Caller, name: &str, value: &str) -> Result<String> {
    Ok(s.put_value(
        who,
        PutValue {
            secret_id: name.into(),
            token: None,
            value: SecretValue::string(value.into())?,
            stages: None,
        },
    )
    .await?
    .version_id)
}

fn copy(name: &str, source: &str, destination: &str) -> RuleSpec {
    RuleSpec {
        name: name.into(),
        kind: Kind::Copy,
        source: Some(source.into()),
        destination: destination.into(),
        template: None,
    }
}

#[tokio::test]
async fn the_figgy_story_blue_then_green() {
    let w = world().await;
    let s = &*w.s;
    let (dba, app) = (dba(&w).await, app(&w).await);
    create(s, &dba, &format!("{DBA_PATH}user"), "blue-user").await;
    create(s, &dba, &format!("{DBA_PATH}password"), "blue-pass").await;
    let (rule, repairs) = s
        .add_rule(&dba, copy("mp-mongo", DBA_PATH, APP_PATH))
        .await
        .unwrap();
    assert_eq!(rule.sources, vec![DBA_PATH.to_string()]);
    assert_eq!(repairs.len(), 2, "both existing sources replicated at once");

    let user = format!("{APP_PATH}user");
    let password = format!("{APP_PATH}password");
    assert_eq!(text(s, &app, &user, AWSCURRENT).await.unwrap(), "blue-user");
    assert_eq!(
        text(s, &app, &password, AWSCURRENT).await.unwrap(),
        "blue-pass"
    );
    let denied = text(s, &app, &format!("{DBA_PATH}password"), AWSCURRENT)
        .await
        .unwrap_err();
    assert_eq!(denied.kind, ErrorKind::AccessDenied);

    let green = put(s, &dba, &format!("{DBA_PATH}password"), "green-pass")
        .await
        .unwrap();
    assert_eq!(
        text(s, &app, &password, AWSCURRENT).await.unwrap(),
        "green-pass"
    );
    assert_eq!(
        text(s, &app, &password, AWSPREVIOUS).await.unwrap(),
        "blue-pass"
    );
    let (_, versions) = s.list_versions(&app, &password, false).await.unwrap();
    let current = versions
        .iter()
        .find(|v| v.labels.iter().any(|l| l == AWSCURRENT))
        .unwrap();
    assert_eq!(current.id, green, "a copy keeps the source's version id");
    let source: serde_json::Value =
        serde_json::from_str(current.source.as_deref().unwrap()).unwrap();
    assert_eq!(source[0]["secret"], format!("{DBA_PATH}password"));
    assert_eq!(source[0]["version"], green.as_str());

    // A new secret under the source prefix gets its destination too.
    create(s, &dba, &format!("{DBA_PATH}host"), "mongo.internal").await;
    assert_eq!(
        text(s, &app, &format!("{APP_PATH}host"), AWSCURRENT)
            .await
            .unwrap(),
        "mongo.internal"
    );
}

#[tokio::test]
async fn replicas_are_written_in_the_source_transaction() {
    let w = world().await;
    let s = &*w.s;
    let root = w.root.clone();
    create(s, &root, "/src/a", "one").await;
    s.add_rule(&root, copy("r", "/src/a", "/dst/a"))
        .await
        .unwrap();
    let before = s
        .store()
        .events(0, 10_000)
        .await
        .unwrap()
        .last()
        .unwrap()
        .seq;
    put(s, &root, "/src/a", "two").await.unwrap();
    let events = s.store().events(before, 100).await.unwrap();
    let kinds: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.secret.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("version.put", Some("/src/a")),
            ("version.put", Some("/dst/a")),
            ("replication.applied", Some("/dst/a")),
        ]
    );
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![before + 1, before + 2, before + 3], "gap-free");
    for e in &events {
        assert!(
            !e.detail.contains("two"),
            "events never hold values: {}",
            e.detail
        );
    }
}

#[tokio::test]
async fn destinations_are_read_only_except_through_their_rule() {
    let w = world().await;
    let s = &*w.s;
    let root = w.root.clone();
    create(s, &root, "/src/a", "one").await;
    s.add_rule(&root, copy("r", "/src/a", "/dst/a"))
        .await
        .unwrap();
    let e = put(s, &root, "/dst/a", "sneaky").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert!(e.message.contains("rule r"), "{}", e.message);
    let e = s.delete(&root, "/dst/a", None, true).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert_eq!(text(s, &root, "/dst/a", AWSCURRENT).await.unwrap(), "one");
    // Without the rule it is an ordinary secret again.
    s.remove_rule(&root, "r").await.unwrap();
    put(s, &root, "/dst/a", "mine now").await.unwrap();
}

#[tokio::test]
async fn rules_need_read_on_sources_and_share_on_destinations() {
    use Capability::*;
    let w = world().await;
    let s = &*w.s;
    let root = w.root.clone();
    create(s, &root, "/dba/x", "v").await;
    let no_share = principal(&w, "a", &[(&[Read], "/dba/**")]).await;
    let e = s
        .add_rule(&no_share, copy("r", "/dba/x", "/app/x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied);
    assert!(e.message.contains("share"), "{}", e.message);
    let no_read = principal(&w, "b", &[(&[Share], "/app/**")]).await;
    let e = s
        .add_rule(&no_read, copy("r", "/dba/x", "/app/x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied);
    assert!(e.message.contains("read"), "{}", e.message);
    assert!(s.resolve("/app/x").await.is_err(), "nothing was replicated");
    let both = principal(&w, "c", &[(&[Read], "/dba/**"), (&[Share], "/app/**")]).await;
    s.add_rule(&both, copy("r", "/dba/x", "/app/x"))
        .await
        .unwrap();
}

#[tokio::test]
async fn cycles_and_owned_paths_are_refused() {
    let w = world().await;
    let s = &*w.s;
    let root = w.root.clone();
    s.add_rule(&root, copy("a", "/x/", "/y/")).await.unwrap();
    s.add_rule(&root, copy("b", "/y/", "/z/")).await.unwrap();
    let e = s
        .add_rule(&root, copy("c", "/z/", "/x/"))
        .await
        .unwrap_err();
    assert!(e.message.contains("cycle"), "{}", e.message);
    let e = s
        .add_rule(&root, copy("d", "/w/", "/y/sub/"))
        .await
        .unwrap_err();
    assert!(e.message.contains("owns"), "{}", e.message);
    assert_eq!(s.list_rules(&root).await.unwrap().len(), 2);
}

#[tokio::test]
async fn merge_renders_a_template_over_several_sources() {
    let w = world().await;
    let s = &*w.s;
    let root = w.root.clone();
    create(s, &root, "/dba/u", "app").await;
    create(s, &root, "/dba/p", "p@ss/1").await;
    s.add_rule(
        &root,
        RuleSpec {
            name: "url".into(),
            kind: Kind::Merge,
            source: None,
            destination: "/app/url".into(),
            template: Some("mongodb://${/dba/u}:${/dba/p|urlencode}@db:27017".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        text(s, &root, "/app/url", AWSCURRENT).await.unwrap(),
        "mongodb://app:p%40ss%2F1@db:27017"
    );
    put(s, &root, "/dba/p", "second").await.unwrap();
    assert_eq!(
        text(s, &root, "/app/url", AWSCURRENT).await.unwrap(),
        "mongodb://app:second@db:27017"
    );
    assert_eq!(
        text(s, &root, "/app/url", AWSPREVIOUS).await.unwrap(),
        "mongodb://app:p%40ss%2F1@db:27017"
    );
    assert!(s.sync_replicas(&root).await.unwrap().is_empty(), "in step");
}

#[tokio::test]
async fn deleting_a_source_marks_its_destinations() {
    let w = world().await;
    let s = &*w.s;
    let root = w.root.clone();
    create(s, &root, "/src/a", "one").await;
    s.add_rule(&root, copy("r", "/src/a", "/dst/a"))
        .await
        .unwrap();
    s.delete(&root, "/src/a", Some(7), false).await.unwrap();
    let d = s.describe(&root, "/dst/a").await.unwrap();
    assert!(d.meta.source_deleted);
    assert!(
        !d.meta.is_deleted(),
        "a destination is never deleted with its source"
    );
    assert_eq!(text(s, &root, "/dst/a", AWSCURRENT).await.unwrap(), "one");
    s.restore(&root, "/src/a").await.unwrap();
    assert!(
        !s.describe(&root, "/dst/a")
            .await
            .unwrap()
            .meta
            .source_deleted
    );
}

#[tokio::test]
async fn sync_repairs_a_destination_that_drifted() {
    let w = world().await;
    let s = &*w.s;
    let root = w.root.clone();
    create(s, &root, "/src/a", "one").await;
    s.add_rule(&root, copy("r", "/src/a", "/dst/a"))
        .await
        .unwrap();
    let two = put(s, &root, "/src/a", "two").await.unwrap();
    // Drift: something behind the service's back moves AWSCURRENT on the replica.
    let dst = s.resolve("/dst/a").await.unwrap();
    let old = dst
        .versions
        .iter()
        .find(|v| v.labels.iter().any(|l| l == AWSPREVIOUS))
        .unwrap()
        .id
        .clone();
    s.store()
        .apply(
            Mutation::MoveLabel {
                secret: dst.meta.id,
                label: AWSCURRENT.into(),
                move_to: Some(old),
                remove_from: Some(two.clone()),
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let repairs = s.sync_replicas(&root).await.unwrap();
    assert_eq!(repairs.len(), 1);
    assert_eq!(repairs[0].destination, "/dst/a");
    assert_eq!(repairs[0].version, two);
    assert_eq!(text(s, &root, "/dst/a", AWSCURRENT).await.unwrap(), "two");
    let events = s.store().events(0, 10_000).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "replication.repaired"));
    assert!(s.sync_replicas(&root).await.unwrap().is_empty());
}

/// Issue 11, hole 5: a prefix rule copies, as its owner, only what the owner may read
/// now, secret by secret: never a secret it is denied, nor one created later outside
/// what it may read, and nothing once the owner loses the right or is gone.
#[tokio::test]
async fn a_prefix_rule_never_copies_around_its_owners_deny() {
    use Capability::*;
    let w = world().await;
    let s = &*w.s;
    let root = w.root.clone();
    create(s, &root, "/dba/team/a", "a-value").await;
    create(s, &root, "/dba/team/secret-sauce", "sauce").await;
    let owner = principal_with(
        &w,
        "team-owner",
        vec![
            Statement {
                effect: Effect::Allow,
                capabilities: vec![Read],
                paths: vec!["/dba/team/*".into()],
            },
            Statement {
                effect: Effect::Deny,
                capabilities: vec![Read],
                paths: vec!["/dba/team/secret-sauce".into()],
            },
            Statement {
                effect: Effect::Allow,
                capabilities: vec![Share, Describe, Read],
                paths: vec!["/app/team/**".into()],
            },
        ],
    )
    .await;
    s.add_rule(&owner, copy("team", "/dba/team/", "/app/team/"))
        .await
        .unwrap();
    assert_eq!(
        text(s, &root, "/app/team/a", AWSCURRENT).await.unwrap(),
        "a-value"
    );
    let missing = s.resolve("/app/team/secret-sauce").await.unwrap_err();
    assert_eq!(
        missing.kind,
        ErrorKind::ResourceNotFound,
        "the denied secret is not copied"
    );
    put(s, &root, "/dba/team/secret-sauce", "sauce-2")
        .await
        .unwrap();
    assert!(s.resolve("/app/team/secret-sauce").await.is_err());
    // Created later, under the prefix but outside what `*` reaches: not copied.
    create(s, &root, "/dba/team/deep/x", "deep").await;
    assert!(s.resolve("/app/team/deep/x").await.is_err());
    assert!(
        s.sync_replicas(&root).await.unwrap().is_empty(),
        "sync copies nothing denied"
    );

    // The owner loses read: copying stops, and the kept destination is told.
    w.access
        .detach(&root, "team-owner", "team-owner")
        .await
        .unwrap();
    put(s, &root, "/dba/team/a", "a-2").await.unwrap();
    assert_eq!(
        text(s, &root, "/app/team/a", AWSCURRENT).await.unwrap(),
        "a-value"
    );
    let events = s.store().events(0, 10_000).await.unwrap();
    let denied: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "replication.denied")
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0].secret.as_deref(), Some("/app/team/a"));
    assert!(!denied[0].detail.contains("/dba/"), "{}", denied[0].detail);

    // Given back, then the owner is deleted: copying stops again.
    w.access
        .attach(&root, "team-owner", "team-owner")
        .await
        .unwrap();
    put(s, &root, "/dba/team/a", "a-3").await.unwrap();
    assert_eq!(
        text(s, &root, "/app/team/a", AWSCURRENT).await.unwrap(),
        "a-3"
    );
    w.access
        .delete_principal(&root, "team-owner")
        .await
        .unwrap();
    put(s, &root, "/dba/team/a", "a-4").await.unwrap();
    assert_eq!(
        text(s, &root, "/app/team/a", AWSCURRENT).await.unwrap(),
        "a-3"
    );
}

/// A rule's destination must be shareable everywhere it may write: a `*` grant does
/// not cover a destination prefix.
#[tokio::test]
async fn a_destination_prefix_needs_share_on_every_name_under_it() {
    use Capability::*;
    let w = world().await;
    let s = &*w.s;
    let narrow = principal(
        &w,
        "narrow",
        &[(&[Read], "/dba/**"), (&[Share], "/app/x/*")],
    )
    .await;
    let e = s
        .add_rule(&narrow, copy("r", "/dba/", "/app/x/"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied, "{}", e.message);
}
