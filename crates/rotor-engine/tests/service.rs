//! The secret service over the real SQLite store: random operation sequences keep the
//! label invariants, a refused operation changes nothing, and reads never see a state
//! older than a write already acknowledged.

use proptest::prelude::*;
use rotor_core::ErrorKind;
use rotor_core::label::{AWSCURRENT, LabelBoard};
use rotor_core::value::SecretValue;
use rotor_engine::{Caller, CreateSecret, PutValue, SecretService};

fn sys() -> Caller {
    Caller::system("test")
}
use std::sync::Arc;

fn value(s: &str) -> SecretValue {
    SecretValue::string(s.to_string()).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Put {
        version: u8,
        value: u8,
        stages: Vec<&'static str>,
    },
    Move {
        label: &'static str,
        to: Option<u8>,
        from: Option<u8>,
    },
}

fn label() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("AWSCURRENT"),
        Just("AWSPREVIOUS"),
        Just("AWSPENDING"),
        Just("blue"),
        Just("green")
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..12, 0u8..3, proptest::collection::vec(label(), 0..3)).prop_map(
            |(version, value, stages)| Op::Put {
                version,
                value,
                stages
            }
        ),
        (
            label(),
            proptest::option::of(0u8..12),
            proptest::option::of(0u8..12)
        )
            .prop_map(|(label, to, from)| Op::Move { label, to, from }),
    ]
}

async fn snapshot(s: &SecretService) -> Vec<(String, Vec<String>)> {
    let (_, versions) = s.list_versions(&sys(), "p", true).await.unwrap();
    versions.into_iter().map(|v| (v.id, v.labels)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_operation_sequences_keep_the_invariants(ops in proptest::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let s = crate::fixtures::ephemeral().await;
            s.create(&sys(), CreateSecret { name: "p".into(), region: "us-east-1".into(), token: Some("v0".into()),
                value: Some(value("x0")), ..Default::default() }).await.unwrap();
            for op in ops {
                let before = snapshot(&s).await;
                let result = match &op {
                    Op::Put { version, value: v, stages } => s.put_value(&sys(), PutValue {
                        secret_id: "p".into(),
                        token: Some(format!("v{version}")),
                        value: value(&format!("x{v}")),
                        stages: if stages.is_empty() { None } else { Some(stages.iter().map(|x| x.to_string()).collect()) },
                    }).await.map(|_| ()),
                    Op::Move { label, to, from } => s.update_stage(&sys(), "p", label,
                        to.map(|t| format!("v{t}")), from.map(|f| format!("v{f}"))).await.map(|_| ()),
                };
                let after = snapshot(&s).await;
                if let Err(e) = &result {
                    prop_assert_eq!(&before, &after, "refused {:?} ({}) changed the secret", op, e);
                    prop_assert!(e.kind != ErrorKind::Internal, "{:?}: {}", op, e);
                }
                let board = LabelBoard::from_versions(after.iter().rev().cloned());
                prop_assert_eq!(board.check_invariants(), Ok(()), "after {:?}", op);
                // What GetSecretValue returns is what the labels say.
                let current = s.get_value(&sys(), "p", None, None).await.unwrap();
                prop_assert_eq!(Some(current.version_id.as_str()), board.holder(AWSCURRENT));
            }
            Ok(())
        })?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_never_go_back_past_an_acknowledged_write() {
    let s = Arc::new(crate::fixtures::ephemeral().await);
    s.create(
        &sys(),
        CreateSecret {
            name: "c".into(),
            region: "us-east-1".into(),
            value: Some(value("0")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                for _ in 0..400 {
                    let _ = s.get_value(&sys(), "c", None, None).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for i in 1..=100 {
        s.put_value(
            &sys(),
            PutValue {
                secret_id: "c".into(),
                token: None,
                value: value(&i.to_string()),
                stages: None,
            },
        )
        .await
        .unwrap();
        // Once the put is acknowledged, every read sees it (the cache cannot serve older).
        let got = s.get_value(&sys(), "c", None, None).await.unwrap();
        match got.value {
            SecretValue::String(v) => {
                assert_eq!(secrecy::ExposeSecret::expose_secret(&v), i.to_string())
            }
            SecretValue::Binary(_) => panic!("binary"),
        }
    }
    for r in readers {
        r.await.unwrap();
    }
}

#[tokio::test]
async fn secret_ids_resolve_as_name_full_arn_and_partial_arn() {
    let s = crate::fixtures::ephemeral().await;
    let created = s
        .create(
            &sys(),
            CreateSecret {
                name: "prod/db".into(),
                region: "eu-west-1".into(),
                value: Some(value("v")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        created
            .arn
            .starts_with("arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-")
    );
    let partial = &created.arn[..created.arn.len() - 7];
    for id in ["prod/db", created.arn.as_str(), partial] {
        assert_eq!(
            s.get_value(&sys(), id, None, None).await.unwrap().name,
            "prod/db",
            "{id}"
        );
    }
    let wrong = format!("{partial}-zzzzzz");
    assert_eq!(
        s.get_value(&sys(), &wrong, None, None)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::ResourceNotFound
    );
    assert_eq!(
        s.get_value(&sys(), "arn:aws:s3:::bucket", None, None)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Validation
    );
}
