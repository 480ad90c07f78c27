//! The rotation engine over a real store: AWS's RotateSecret semantics, the durable
//! runner with retries and failure, the scheduler, and the `random` and `webhook`
//! rotators. The webhook rotator talks to a small HTTP receiver in this test that
//! performs the steps against a stand-in target (a set of accepted passwords).

use rotor_core::label::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::model::{RotationStatus, Step};
use rotor_core::schedule::RotationRules;
use rotor_core::value::SecretValue;
use rotor_core::{ErrorKind, Result};
use rotor_engine::rotation::{RotateRequest, Rotations, Settings};
use rotor_engine::{AccessService, Caller, CreateSecret, PutValue, SecretService};
use secrecy::ExposeSecret;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    service: Arc<SecretService>,
    access: Arc<AccessService>,
    rotations: Arc<Rotations>,
}

/// The root principal, as `world` bootstraps it: rotations run as the principal
/// that configured them, so it must exist in the access service.
fn root() -> Caller {
    use rotor_core::policy::{Capability, Effect, Policy, Statement};
    Caller::new(
        rotor_engine::ROOT,
        Arc::from(vec![Policy {
            name: rotor_engine::ROOT.into(),
            statements: vec![Statement {
                effect: Effect::Allow,
                capabilities: Capability::ALL.to_vec(),
                paths: vec!["**".into()],
            }],
        }]),
    )
}

async fn world() -> World {
    let base = crate::fixtures::base().await;
    let (service, access) = (base.service, base.access);
    let rotations = Arc::new(Rotations::new(
        service.clone(),
        access.clone(),
        Settings {
            max_attempts: 2,
            backoff: Duration::from_millis(20),
            step_timeout: Duration::from_secs(5),
            poll: Duration::from_millis(50),
            ..Settings::default()
        },
    ));
    World {
        service,
        access,
        rotations,
    }
}

async fn text(service: &SecretService, name: &str, stage: &str) -> Result<String> {
    let v = service.get_value(&root(), name, None, Some(stage)).await?;
    match v.value {
        SecretValue::String(s) => Ok(s.expose_secret().to_string()),
        SecretValue::Binary(_) => panic!("binary"),
    }
}

async fn create(service: &SecretService, name: &str, value: &str) {
    service
        .create(
            &root(),
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

fn every(days: i64) -> Option<RotationRules> {
    Some(RotationRules {
        automatically_after_days: Some(days),
        ..Default::default()
    })
}

/// Polls until the latest rotation of `name` is no longer running.
async fn settled(w: &World, name: &str) -> rotor_core::model::RotationRecord {
    for _ in 0..500 {
        let view = w.rotations.view(&root(), name).await.unwrap();
        if let Some(r) = view.latest
            && r.status != RotationStatus::Running
        {
            // The runner may still be between its commit and its cache update.
            w.rotations.idle().await;
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("rotation of {name} did not settle");
}

#[tokio::test]
async fn random_rotator_rotates_and_schedules_the_next_window() {
    let w = world().await;
    create(&w.service, "api/key", "old-key").await;
    w.rotations
        .create_rotator(
            &root(),
            "rnd",
            "random",
            serde_json::json!({"length": 40}),
            false,
        )
        .await
        .unwrap();
    let done = w
        .rotations
        .rotate_secret(
            &root(),
            RotateRequest {
                secret_id: "api/key".into(),
                rotator: Some("arn:aws:lambda:us-east-1:123456789012:function:rnd".into()),
                rules: every(30),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let token = done.version_id.expect("a rotation started");
    let r = settled(&w, "api/key").await;
    assert_eq!(r.status, RotationStatus::Succeeded, "{:?}", r.error);
    let steps: Vec<&str> = r.steps.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(
        steps,
        ["createSecret", "setSecret", "testSecret", "finishSecret"]
    );

    let new = text(&w.service, "api/key", AWSCURRENT).await.unwrap();
    assert_eq!(new.len(), 40);
    assert_eq!(
        text(&w.service, "api/key", AWSPREVIOUS).await.unwrap(),
        "old-key"
    );
    let d = w.service.describe(&root(), "api/key").await.unwrap();
    let labels = &d
        .versions_to_stages
        .iter()
        .find(|(id, _)| *id == token)
        .unwrap()
        .1;
    assert_eq!(
        labels,
        &vec![AWSCURRENT.to_string()],
        "AWSPENDING is taken off"
    );
    let rotation = &d.meta.rotation;
    assert!(rotation.enabled);
    let last = rotation.last_rotated.expect("last rotated");
    let next = rotation.next_rotation.expect("next rotation");
    assert_eq!((next.date_naive() - last.date_naive()).num_days(), 30);
    assert!(rotation.failed.is_none());
}

#[tokio::test]
async fn a_lambda_arn_must_name_a_registered_rotator() {
    let w = world().await;
    create(&w.service, "db/x", "v").await;
    let e = w
        .rotations
        .rotate_secret(
            &root(),
            RotateRequest {
                secret_id: "db/x".into(),
                rotator: Some("arn:aws:lambda:us-east-1:123456789012:function:nope".into()),
                rules: every(1),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert!(e.message.contains("nope"), "{}", e.message);
    let e = w
        .rotations
        .rotate_secret(
            &root(),
            RotateRequest {
                secret_id: "db/x".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        e.message.contains("No Lambda rotation function"),
        "{}",
        e.message
    );
    let d = w.service.describe(&root(), "db/x").await.unwrap();
    assert!(!d.meta.rotation.enabled, "nothing was configured");
}

#[tokio::test]
async fn a_manual_put_counts_as_a_rotation() {
    let w = world().await;
    create(&w.service, "manual", "one").await;
    w.rotations
        .create_rotator(&root(), "rnd", "random", serde_json::json!({}), false)
        .await
        .unwrap();
    w.rotations
        .rotate_secret(
            &root(),
            RotateRequest {
                secret_id: "manual".into(),
                rotator: Some("rnd".into()),
                rules: every(7),
                rotate_immediately: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let before = w
        .service
        .describe(&root(), "manual")
        .await
        .unwrap()
        .meta
        .rotation;
    assert!(before.last_rotated.is_none());
    assert!(before.next_rotation.is_some());
    w.service
        .put_value(
            &root(),
            PutValue {
                secret_id: "manual".into(),
                token: None,
                value: SecretValue::string("two".into()).unwrap(),
                stages: None,
            },
        )
        .await
        .unwrap();
    let after = w
        .service
        .describe(&root(), "manual")
        .await
        .unwrap()
        .meta
        .rotation;
    let last = after.last_rotated.expect("the put counts");
    assert_eq!(
        (after.next_rotation.unwrap().date_naive() - last.date_naive()).num_days(),
        7
    );
}

#[tokio::test]
async fn the_scheduler_starts_due_rotations() {
    let w = world().await;
    w.rotations
        .create_rotator(&root(), "rnd", "random", serde_json::json!({}), false)
        .await
        .unwrap();
    for i in 0..5 {
        let name = format!("sched/{i}");
        create(&w.service, &name, "initial").await;
        w.rotations
            .rotate_secret(
                &root(),
                RotateRequest {
                    secret_id: name.clone(),
                    rotator: Some("rnd".into()),
                    rules: every(1),
                    rotate_immediately: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let due = chrono::Utc::now() + chrono::Duration::milliseconds(100 * i);
        w.rotations.set_due(&root(), &name, due).await.unwrap();
    }
    let scheduler = w.rotations.spawn();
    for i in 0..5 {
        let name = format!("sched/{i}");
        let r = settled(&w, &name).await;
        assert_eq!(r.status, RotationStatus::Succeeded);
        assert_ne!(
            text(&w.service, &name, AWSCURRENT).await.unwrap(),
            "initial"
        );
        let meta = w
            .service
            .describe(&root(), &name)
            .await
            .unwrap()
            .meta
            .rotation;
        // Rescheduled into the next daily window, which opens at midnight UTC (so
        // it may be minutes away late in the day: the test once failed at 23:11).
        let due = meta.due.expect("rescheduled");
        let last = meta.last_rotated.expect("rotated");
        assert!(due > chrono::Utc::now(), "next due {due}");
        assert_eq!(
            (due.date_naive() - last.date_naive()).num_days(),
            1,
            "next due {due} after a rotation at {last}"
        );
    }
    scheduler.abort();
}

/// The stand-in target system and how the test receiver should behave.
#[derive(Default)]
struct Target {
    /// Passwords the target accepts.
    accepted: HashSet<String>,
    /// Fail every call of this step.
    fail_at: Option<Step>,
    /// Fail only the first attempt's call of `fail_at`.
    fail_once: bool,
    failed: usize,
    /// Signatures that did not verify.
    bad_signatures: usize,
    /// Rotation tokens that gave more than this one secret.
    leaky_tokens: usize,
    /// The last rotation token seen.
    last_token: Option<String>,
    /// Hold createSecret until released.
    hold: Option<Arc<tokio::sync::Notify>>,
    /// The versions a retirePrevious step was sent for (the AWSPREVIOUS then).
    retired: Vec<String>,
}

struct Receiver {
    url: String,
    target: Arc<Mutex<Target>>,
    key: Arc<Mutex<Vec<u8>>>,
}

async fn receiver(w: &World) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/rotate", listener.local_addr().unwrap());
    let target = Arc::new(Mutex::new(Target::default()));
    let key = Arc::new(Mutex::new(Vec::new()));
    let (service, access) = (w.service.clone(), w.access.clone());
    let (t, k) = (target.clone(), key.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (service, access, t, k) = (service.clone(), access.clone(), t.clone(), k.clone());
            tokio::spawn(async move {
                let (headers, body) = read_request(&mut sock).await;
                let ok = handle(&service, &access, &t, &k, &headers, &body).await;
                let status = if ok {
                    "200 OK"
                } else {
                    "500 Internal Server Error"
                };
                let _ = sock
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    Receiver { url, target, key }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-request");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let headers = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = headers
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            return (headers, buf[end + 4..end + 4 + len].to_vec());
        }
    }
}

fn header<'a>(headers: &'a str, name: &str) -> &'a str {
    headers
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::trim)
        .unwrap_or("")
}

/// One step, as a rotation function would do it.
async fn handle(
    service: &SecretService,
    access: &AccessService,
    target: &Mutex<Target>,
    key: &Mutex<Vec<u8>>,
    headers: &str,
    body: &[u8],
) -> bool {
    let timestamp = header(headers, "x-rotor-timestamp");
    let mut signed = timestamp.as_bytes().to_vec();
    signed.push(b'.');
    signed.extend_from_slice(body);
    let expected = format!(
        "sha256={}",
        hex::encode(rotor_crypto::hmac_sha256(&key.lock().unwrap(), &signed))
    );
    if header(headers, "x-rotor-signature") != expected {
        target.lock().unwrap().bad_signatures += 1;
        return false;
    }
    let event: serde_json::Value = serde_json::from_slice(body).unwrap();
    let step = Step::parse(event["Step"].as_str().unwrap()).unwrap();
    let arn = event["SecretId"].as_str().unwrap().to_string();
    let token = event["ClientRequestToken"].as_str().unwrap().to_string();
    // The rotation token is a credential for this secret only.
    let me = access
        .authenticate_token(event["RotationToken"].as_str().unwrap())
        .unwrap();
    if service
        .get_value(&me, "other/secret", None, None)
        .await
        .is_ok()
    {
        target.lock().unwrap().leaky_tokens += 1;
    }
    target.lock().unwrap().last_token = event["RotationToken"].as_str().map(str::to_string);
    let hold = {
        let mut t = target.lock().unwrap();
        if t.fail_at == Some(step) && !(t.fail_once && t.failed > 0) {
            t.failed += 1;
            return false;
        }
        t.hold.clone().filter(|_| step == Step::CreateSecret)
    };
    if let Some(h) = hold {
        h.notified().await;
    }
    match step {
        Step::CreateSecret => {
            if service
                .get_value(&me, &arn, Some(&token), None)
                .await
                .is_ok()
            {
                return true;
            }
            let fresh = format!("pw-{}", uuid::Uuid::new_v4());
            service
                .put_value(
                    &me,
                    PutValue {
                        secret_id: arn,
                        token: Some(token),
                        value: SecretValue::string(fresh).unwrap(),
                        stages: Some(vec![AWSPENDING.into()]),
                    },
                )
                .await
                .is_ok()
        }
        Step::SetSecret => {
            let v = text_by_version(service, &me, &arn, &token).await;
            target.lock().unwrap().accepted.insert(v);
            true
        }
        Step::TestSecret => {
            let v = text_by_version(service, &me, &arn, &token).await;
            target.lock().unwrap().accepted.contains(&v)
        }
        Step::FinishSecret => {
            let d = service.describe(&me, &arn).await.unwrap();
            let current = d
                .versions_to_stages
                .iter()
                .find(|(_, l)| l.iter().any(|l| l == AWSCURRENT))
                .map(|(id, _)| id.clone());
            if current.as_deref() == Some(token.as_str()) {
                return true;
            }
            service
                .update_stage(&me, &arn, AWSCURRENT, Some(token), current)
                .await
                .is_ok()
        }
        Step::RetirePrevious => {
            let d = service.describe(&me, &arn).await.unwrap();
            let previous = d
                .versions_to_stages
                .iter()
                .find(|(_, l)| l.iter().any(|l| l == AWSPREVIOUS))
                .map(|(id, _)| id.clone());
            target.lock().unwrap().retired.extend(previous);
            true
        }
    }
}

async fn text_by_version(service: &SecretService, me: &Caller, arn: &str, id: &str) -> String {
    match service
        .get_value(me, arn, Some(id), None)
        .await
        .unwrap()
        .value
    {
        SecretValue::String(s) => s.expose_secret().to_string(),
        SecretValue::Binary(_) => panic!("binary"),
    }
}

async fn webhook_world() -> (World, Receiver) {
    let w = world().await;
    let r = receiver(&w).await;
    let key = w
        .rotations
        .create_rotator(
            &root(),
            "hook",
            "webhook",
            serde_json::json!({"url": r.url}),
            false,
        )
        .await
        .unwrap()
        .expect("a webhook rotator has a signing key");
    *r.key.lock().unwrap() = key.into_bytes();
    create(&w.service, "other/secret", "not yours").await;
    // Retries wait out their backoff in the scheduler.
    w.rotations.spawn();
    (w, r)
}

async fn rotate(w: &World, name: &str) -> String {
    w.rotations
        .rotate_secret(
            &root(),
            RotateRequest {
                secret_id: name.into(),
                rotator: Some("hook".into()),
                rules: every(1),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .version_id
        .unwrap()
}

#[tokio::test]
async fn webhook_rotation_succeeds_with_signed_events_and_a_scoped_token() {
    let (w, r) = webhook_world().await;
    create(&w.service, "svc/db", "pw-initial").await;
    r.target
        .lock()
        .unwrap()
        .accepted
        .insert("pw-initial".into());
    let token = rotate(&w, "svc/db").await;
    let rec = settled(&w, "svc/db").await;
    assert_eq!(rec.status, RotationStatus::Succeeded, "{:?}", rec.error);
    let v = w
        .service
        .get_value(&root(), "svc/db", None, None)
        .await
        .unwrap();
    assert_eq!(v.version_id, token);
    let last = {
        let t = r.target.lock().unwrap();
        assert_eq!(t.bad_signatures, 0);
        assert_eq!(t.leaky_tokens, 0);
        t.last_token.clone().expect("events carry a rotation token")
    };
    // Once the step is over, its credential no longer works.
    assert!(w.access.authenticate_token(&last).is_err());
}

/// The receiver fails one step every time: after the last attempt the rotation is
/// failed, AWSCURRENT is where it was and the target still accepts it.
#[tokio::test]
async fn a_rotator_failing_at_each_step_leaves_awscurrent_alone() {
    for step in Step::ALL {
        let (w, r) = webhook_world().await;
        let name = format!("fail/{}", step.as_str());
        create(&w.service, &name, "pw-initial").await;
        {
            let mut t = r.target.lock().unwrap();
            t.accepted.insert("pw-initial".into());
            t.fail_at = Some(step);
        }
        rotate(&w, &name).await;
        let rec = settled(&w, &name).await;
        assert_eq!(rec.status, RotationStatus::Failed, "{step:?}");
        assert_eq!(rec.attempt, 2, "retried once, then gave up ({step:?})");
        let error = rec.error.clone().unwrap();
        assert!(error.starts_with(step.as_str()), "{error}");
        assert!(error.contains("500"), "{error}");
        let current = text(&w.service, &name, AWSCURRENT).await.unwrap();
        assert_eq!(current, "pw-initial", "{step:?}");
        assert!(r.target.lock().unwrap().accepted.contains(&current));
        let meta = w
            .service
            .describe(&root(), &name)
            .await
            .unwrap()
            .meta
            .rotation;
        assert!(
            meta.failed
                .as_deref()
                .is_some_and(|f| f.contains(step.as_str())),
            "{meta:?}"
        );
        assert_eq!(r.target.lock().unwrap().failed, 2);
    }
}

#[tokio::test]
async fn a_failed_attempt_is_retried_and_then_succeeds() {
    let (w, r) = webhook_world().await;
    create(&w.service, "flaky", "pw-initial").await;
    {
        let mut t = r.target.lock().unwrap();
        t.accepted.insert("pw-initial".into());
        t.fail_at = Some(Step::TestSecret);
        t.fail_once = true;
    }
    let token = rotate(&w, "flaky").await;
    let rec = settled(&w, "flaky").await;
    assert_eq!(rec.status, RotationStatus::Succeeded, "{:?}", rec.error);
    assert_eq!(rec.attempt, 2);
    let v = w
        .service
        .get_value(&root(), "flaky", None, None)
        .await
        .unwrap();
    assert_eq!(v.version_id, token);
    let meta = w
        .service
        .describe(&root(), "flaky")
        .await
        .unwrap()
        .meta
        .rotation;
    assert!(meta.failed.is_none());
}

#[tokio::test]
async fn a_running_rotation_shows_an_empty_pending_version_and_can_be_cancelled() {
    let (w, r) = webhook_world().await;
    create(&w.service, "held", "pw-initial").await;
    let hold = Arc::new(tokio::sync::Notify::new());
    r.target.lock().unwrap().hold = Some(hold.clone());
    let token = rotate(&w, "held").await;

    let d = w.service.describe(&root(), "held").await.unwrap();
    let pending = d.versions_to_stages.iter().find(|(id, _)| *id == token);
    assert_eq!(
        pending.map(|(_, l)| l.clone()),
        Some(vec![AWSPENDING.to_string()]),
        "the new version shows AWSPENDING before it has a value"
    );
    let e = w
        .service
        .get_value(&root(), "held", Some(&token), Some(AWSPENDING))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ResourceNotFound);

    let again = w
        .rotations
        .rotate_secret(
            &root(),
            RotateRequest {
                secret_id: "held".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        again.message.contains("previous rotation isn't complete"),
        "{}",
        again.message
    );

    let cancelled = w.rotations.cancel(&root(), "held").await.unwrap();
    assert_eq!(cancelled.version_id.as_deref(), Some(token.as_str()));
    hold.notify_one();
    w.rotations.idle().await;
    let rec = settled(&w, "held").await;
    assert_eq!(rec.status, RotationStatus::Cancelled);
    assert_eq!(
        text(&w.service, "held", AWSCURRENT).await.unwrap(),
        "pw-initial"
    );
    let meta = w
        .service
        .describe(&root(), "held")
        .await
        .unwrap()
        .meta
        .rotation;
    assert!(!meta.enabled);
    assert!(meta.next_rotation.is_none());
}

/// An `exec` rotator gets the event on stdin and scoped credentials in its
/// environment; a non-zero exit fails the step without its output in the error.
#[tokio::test]
async fn exec_rotator_gets_the_event_and_credentials() {
    let w = world().await;
    w.rotations.set_endpoint("http://127.0.0.1:9");
    let out = tempfile::tempdir().unwrap();
    let script = format!(
        "cat > {dir}/event.json; env > {dir}/env.txt; echo 'secret-looking output' >&2; exit 3",
        dir = out.path().display()
    );
    w.rotations
        .create_rotator(
            &root(),
            "cmd",
            "exec",
            serde_json::json!({"command": ["sh", "-c", script], "env": {"EXTRA": "yes"}}),
            false,
        )
        .await
        .unwrap();
    create(&w.service, "exec/secret", "v1").await;
    let token = w
        .rotations
        .rotate_secret(
            &root(),
            RotateRequest {
                secret_id: "exec/secret".into(),
                rotator: Some("cmd".into()),
                rules: every(1),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .version_id
        .unwrap();
    w.rotations.idle().await;
    let view = w.rotations.view(&root(), "exec/secret").await.unwrap();
    let r = view.latest.unwrap();
    assert_eq!(
        r.error.as_deref(),
        Some("createSecret: the command exited with status 3")
    );
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("event.json")).unwrap())
            .unwrap();
    assert_eq!(event["Step"], "createSecret");
    assert_eq!(event["ClientRequestToken"], token.as_str());
    assert!(
        event["SecretId"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:secretsmanager:")
    );
    let env = std::fs::read_to_string(out.path().join("env.txt")).unwrap();
    for var in [
        "ROTOR_ADDR=http://127.0.0.1:9",
        "SECRETS_MANAGER_ENDPOINT=http://127.0.0.1:9",
        "AWS_REGION=us-east-1",
        "EXTRA=yes",
    ] {
        assert!(env.lines().any(|l| l == var), "{var} missing");
    }
    let token_line = env
        .lines()
        .find_map(|l| l.strip_prefix("ROTOR_TOKEN="))
        .unwrap();
    assert!(
        w.access.authenticate_token(token_line).is_err(),
        "revoked after the step"
    );
    for var in [
        "AWS_ACCESS_KEY_ID=",
        "AWS_SECRET_ACCESS_KEY=",
        "AWS_SESSION_TOKEN=",
    ] {
        assert!(
            env.lines()
                .any(|l| l.starts_with(var) && l.len() > var.len() + 8),
            "{var}"
        );
    }
}

/// A real principal allowed what `statements` say, as a caller.
async fn principal(w: &World, name: &str, statements: serde_json::Value) -> Caller {
    let statements = serde_json::from_value(statements).unwrap();
    crate::fixtures::principal(&w.access, &root(), name, statements).await
}

/// Issue 11, hole 2: a rotation acts for the principal that configured it, with that
/// principal's policies as they are when each step runs. Losing `rotate` stops the
/// next rotation before it touches anything; getting it back lets it run.
#[tokio::test]
async fn a_rotation_is_authorized_as_its_principal_when_it_runs() {
    let w = world().await;
    w.rotations
        .create_rotator(&root(), "rnd", "random", serde_json::json!({}), false)
        .await
        .unwrap();
    create(&w.service, "/svc/key", "initial").await;
    let owner = principal(
        &w,
        "owner",
        serde_json::json!([
            {"effect": "allow", "capabilities": ["read", "write", "describe", "rotate"], "paths": ["/svc/**"]},
            {"effect": "allow", "capabilities": ["rotate"], "paths": ["sys/rotators/rnd"]}
        ]),
    )
    .await;
    w.rotations
        .rotate_secret(
            &owner,
            RotateRequest {
                secret_id: "/svc/key".into(),
                rotator: Some("rnd".into()),
                rules: every(1),
                rotate_immediately: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let view = w.rotations.view(&root(), "/svc/key").await.unwrap();
    assert_eq!(view.meta.principal.as_deref(), Some("owner"));

    // The owner loses its rights before the scheduled rotation runs.
    w.access.detach(&root(), "owner", "owner").await.unwrap();
    w.rotations
        .set_due(&root(), "/svc/key", chrono::Utc::now())
        .await
        .unwrap();
    let scheduler = w.rotations.spawn();
    let r = settled(&w, "/svc/key").await;
    assert_eq!(r.status, RotationStatus::Failed);
    let error = r.error.unwrap_or_default();
    assert!(
        error.contains("owner is not allowed to rotate /svc/key"),
        "{error}"
    );
    assert_eq!(
        text(&w.service, "/svc/key", AWSCURRENT).await.unwrap(),
        "initial"
    );
    scheduler.abort();
}

/// Issue 11, hole 2: using a rotator needs `rotate` on `sys/rotators/NAME`, and a
/// `masterarn` in the value needs `read` on the master, with one refusal whether the
/// master exists or not.
#[tokio::test]
async fn configuring_rotation_needs_the_rotator_and_read_on_the_master() {
    let w = world().await;
    w.rotations
        .create_rotator(&root(), "rnd", "random", serde_json::json!({}), false)
        .await
        .unwrap();
    create(
        &w.service,
        "/dba/master",
        r#"{"username":"postgres","password":"pw"}"#,
    )
    .await;
    let mallory = principal(
        &w,
        "mallory",
        serde_json::json!([
            {"effect": "allow", "capabilities": ["read", "write", "describe", "rotate"], "paths": ["/app/mallory/**"]}
        ]),
    )
    .await;
    let rotate = |name: &str| RotateRequest {
        secret_id: name.into(),
        rotator: Some("rnd".into()),
        ..Default::default()
    };
    create(&w.service, "/app/mallory/plain", "x").await;
    let e = w
        .rotations
        .rotate_secret(&mallory, rotate("/app/mallory/plain"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied);
    assert!(e.message.contains("sys/rotators/rnd"), "{}", e.message);

    w.access
        .put_policy(
            &root(),
            &serde_json::from_value(serde_json::json!({"name": "mallory", "statements": [
                {"effect": "allow", "capabilities": ["read", "write", "describe", "rotate"], "paths": ["/app/mallory/**"]},
                {"effect": "allow", "capabilities": ["rotate"], "paths": ["sys/rotators/*"]}
            ]}))
            .unwrap(),
        )
        .await
        .unwrap();
    let mallory = w.access.principal("mallory").unwrap();
    let mut refusals = Vec::new();
    for master in ["/dba/master", "/dba/no-such-master"] {
        let name = format!("/app/mallory/db{}", refusals.len());
        create(
            &w.service,
            &name,
            &serde_json::json!({"engine": "postgres", "host": "db", "port": 5432,
                "username": "postgres", "password": "x", "masterarn": master})
            .to_string(),
        )
        .await;
        let e = w
            .rotations
            .rotate_secret(&mallory, rotate(&name))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::AccessDenied, "{}", e.message);
        refusals.push(e.message);
    }
    assert_eq!(
        refusals[0], refusals[1],
        "the same refusal whether the master exists"
    );
    assert!(!refusals[0].contains("/dba/"), "{}", refusals[0]);
}

/// Issue 11, hole 4: an exec rotator runs only while the principal that registered it
/// may still run commands on the server.
#[tokio::test]
async fn an_exec_rotator_needs_its_registrant_to_hold_exec_when_it_runs() {
    let w = world().await;
    let ops = principal(
        &w,
        "ops",
        serde_json::json!([
            {"effect": "allow", "capabilities": ["admin", "exec"], "paths": ["sys/rotators/**"]}
        ]),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    w.rotations
        .create_rotator(
            &ops,
            "touch",
            "exec",
            serde_json::json!({"command": ["sh", "-c", format!("touch {}", marker.display())]}),
            false,
        )
        .await
        .unwrap();
    // Without exec, registering one is refused.
    let admin_only = principal(
        &w,
        "admin-only",
        serde_json::json!([{"effect": "allow", "capabilities": ["admin"], "paths": ["sys/rotators/**"]}]),
    )
    .await;
    let e = w
        .rotations
        .create_rotator(
            &admin_only,
            "sneaky",
            "exec",
            serde_json::json!({"command": ["true"]}),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied);
    assert!(e.message.contains("exec"), "{}", e.message);
    let e = w
        .rotations
        .create_rotator(
            &admin_only,
            "sneaky",
            "lambda",
            serde_json::json!({"handler": "m.f", "code_dir": "/tmp"}),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied);

    let rotator = w.rotations.rotator(&root(), "touch").await.unwrap();
    assert_eq!(rotator.created_by.as_deref(), Some("ops"));
    // ops loses exec; the rotator no longer runs.
    w.access.detach(&root(), "ops", "ops").await.unwrap();
    let scheduler = w.rotations.spawn();
    create(&w.service, "/svc/exec", "v").await;
    w.rotations
        .rotate_secret(
            &root(),
            RotateRequest {
                secret_id: "/svc/exec".into(),
                rotator: Some("touch".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let r = settled(&w, "/svc/exec").await;
    assert_eq!(r.status, RotationStatus::Failed);
    assert!(
        r.error.unwrap_or_default().contains("may no longer do so"),
        "refused for its registrant"
    );
    assert!(!marker.exists(), "the command never ran");
    scheduler.abort();
}

async fn consumer_on(w: &World, consumer: &str, name: &str, version: &str) {
    w.service
        .register_consumer(
            &root(),
            &rotor_engine::consumers::Registration {
                consumer: consumer.into(),
                secret: name.into(),
                version_id: version.into(),
                host: None,
                lease_secs: Some(600),
            },
        )
        .await
        .unwrap();
}

async fn current_version(w: &World, name: &str) -> String {
    w.service
        .get_value(&root(), name, None, None)
        .await
        .unwrap()
        .version_id
}

/// Polls until the latest rotation of `name` waits at a gate; returns it.
async fn waiting(w: &World, name: &str) -> rotor_core::model::RotationRecord {
    for _ in 0..500 {
        let view = w.rotations.view(&root(), name).await.unwrap();
        if let Some(r) = view.latest
            && r.status == RotationStatus::Running
            && r.gates.last().is_some_and(|g| g.passed.is_none())
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("rotation of {name} never waited");
}

/// The adoption gates: a rotation retires the previous credential only once its last
/// live consumer has moved on; a consumer that does not move on in time keeps it valid
/// (retirement skipped), and then makes the next rotation fail before setSecret with
/// AWSCURRENT unchanged; a consumer that left blocks nothing.
#[tokio::test]
async fn rotations_wait_for_live_consumers_and_retire_what_nobody_uses() {
    let (w, r) = webhook_world().await;
    let key = w
        .rotations
        .create_rotator(
            &root(),
            "hook-r",
            "webhook",
            serde_json::json!({"url": r.url, "retire": true}),
            false,
        )
        .await
        .unwrap()
        .unwrap();
    *r.key.lock().unwrap() = key.into_bytes();
    let name = "svc/gated";
    create(&w.service, name, "pw-initial").await;
    r.target
        .lock()
        .unwrap()
        .accepted
        .insert("pw-initial".into());
    let v0 = current_version(&w, name).await;
    consumer_on(&w, "app-1", name, &v0).await;
    let me = root();
    let rotate = |timeout: i64, token: Option<String>| {
        w.rotations.rotate_secret(
            &me,
            RotateRequest {
                secret_id: name.into(),
                token,
                rotator: Some("hook-r".into()),
                rules: every(1),
                adoption: Some(rotor_core::model::AdoptionChange {
                    retire_previous: Some(true),
                    adoption_timeout_secs: Some(timeout),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
    };

    // 1: nothing on AWSPREVIOUS yet, so setSecret goes at once; then the retirement
    // waits for app-1 to leave v0.
    let v1 = rotate(30, None).await.unwrap().version_id.unwrap();
    let held = waiting(&w, name).await;
    assert_eq!(held.step, Step::RetirePrevious);
    let gate = held.gates.last().unwrap();
    assert_eq!(gate.version, v0);
    assert_eq!(gate.waiting_for, vec!["app-1".to_string()]);
    assert_eq!(
        held.gates.len(),
        1,
        "no AWSPREVIOUS yet, no gate before setSecret"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(r.target.lock().unwrap().retired.is_empty(), "never before");
    let moved = std::time::Instant::now();
    consumer_on(&w, "app-1", name, &v1).await;
    let rec = settled(&w, name).await;
    assert_eq!(rec.status, RotationStatus::Succeeded, "{:?}", rec.error);
    assert!(
        moved.elapsed() < Duration::from_secs(2),
        "{:?}",
        moved.elapsed()
    );
    assert_eq!(r.target.lock().unwrap().retired, vec![v0.clone()]);
    assert_eq!(
        rec.gates.last().unwrap().outcome.as_deref(),
        Some("adopted")
    );
    let kinds: Vec<String> = w
        .service
        .store()
        .events(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.secret.as_deref() == Some(name))
        .map(|e| e.kind)
        .collect();
    for kind in ["rotation.waiting", "rotation.adopted", "rotation.retired"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }

    // 2: app-1 stays on v1 (now AWSPREVIOUS) past the timeout: v1 is not retired.
    let v2 = rotate(1, None).await.unwrap().version_id.unwrap();
    let rec = settled(&w, name).await;
    assert_eq!(rec.status, RotationStatus::Succeeded, "{:?}", rec.error);
    assert_eq!(current_version(&w, name).await, v2);
    assert_eq!(
        rec.gates.last().unwrap().outcome.as_deref(),
        Some("timed_out")
    );
    assert_eq!(r.target.lock().unwrap().retired, vec![v0.clone()]);

    // 3: setSecret would now change the user app-1 still uses: the rotation fails
    // before it, naming app-1, and AWSCURRENT stays on v2.
    let v3 = rotate(1, None).await.unwrap().version_id;
    let rec = settled(&w, name).await;
    assert_eq!(rec.status, RotationStatus::Failed);
    let error = rec.error.unwrap_or_default();
    assert!(error.contains("app-1") && error.contains(&v1), "{error}");
    assert_eq!(rec.steps.len(), 1, "setSecret never ran: {:?}", rec.steps);
    assert_eq!(current_version(&w, name).await, v2);

    // 4: once app-1 has left, nothing holds the rotation (the failed one's AWSPENDING
    // taken off first, as AWS has it done).
    w.service
        .deregister_consumer(&root(), name, "app-1")
        .await
        .unwrap();
    w.service
        .update_stage(&root(), name, AWSPENDING, None, v3)
        .await
        .unwrap();
    rotate(1, None).await.unwrap();
    let rec = settled(&w, name).await;
    assert_eq!(rec.status, RotationStatus::Succeeded, "{:?}", rec.error);
}
