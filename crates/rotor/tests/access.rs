//! Invariant 6 on the Figgy layout of seed 000: a DBA owns `/dba/...`, the
//! `message-processor` service reads only `/app/message-processor/...` (including the
//! `replicated/` copies), a developer sees the application namespace but cannot write
//! the replicated copies, an operator manages principals, and nobody gets what no
//! policy grants. Every capability is tried both allowed and denied, on the native
//! API; the AWS API is checked with the service's own key pair.

use crate::harness::{self, dev, runtime, statements, text};
use rotor_api::sys::{NewAccessKey, PrincipalKind};
use rotor_client::{Client, ClientError};

/// A capability exercised through the API that needs it.
#[derive(Debug, Clone, Copy)]
enum Cap {
    Read,
    Write,
    List,
    Describe,
    Delete,
    Rotate,
    Admin,
}

const DBA_USER: &str = "/dba/passpack/services/message-processor/mongo/user";
const REPLICATED_USER: &str = "/app/message-processor/replicated/mongo/user";
const MP_CONFIG: &str = "/app/message-processor/config";
const OTHER_CONFIG: &str = "/app/other-service/config";

/// (principal, capability, path, allowed)
const TABLE: &[(&str, Cap, &str, bool)] = &[
    ("karen", Cap::Read, DBA_USER, true),
    ("karen", Cap::Write, DBA_USER, true),
    ("karen", Cap::List, DBA_USER, true),
    ("karen", Cap::Describe, DBA_USER, true),
    ("karen", Cap::Rotate, DBA_USER, true),
    ("karen", Cap::Delete, DBA_USER, true),
    ("karen", Cap::Read, REPLICATED_USER, false),
    ("karen", Cap::List, MP_CONFIG, false),
    ("karen", Cap::Admin, "karen-made", false),
    ("message-processor", Cap::Read, REPLICATED_USER, true),
    ("message-processor", Cap::Read, MP_CONFIG, true),
    ("message-processor", Cap::Describe, MP_CONFIG, true),
    ("message-processor", Cap::List, REPLICATED_USER, true),
    ("message-processor", Cap::Read, DBA_USER, false),
    ("message-processor", Cap::Describe, DBA_USER, false),
    ("message-processor", Cap::List, DBA_USER, false),
    ("message-processor", Cap::Read, OTHER_CONFIG, false),
    ("message-processor", Cap::Write, MP_CONFIG, false),
    ("message-processor", Cap::Delete, MP_CONFIG, false),
    ("message-processor", Cap::Rotate, MP_CONFIG, false),
    ("message-processor", Cap::Admin, "mp-made", false),
    ("alice", Cap::Describe, OTHER_CONFIG, true),
    ("alice", Cap::List, OTHER_CONFIG, true),
    ("alice", Cap::Read, MP_CONFIG, true),
    ("alice", Cap::Write, MP_CONFIG, true),
    ("alice", Cap::Write, REPLICATED_USER, false),
    ("alice", Cap::Delete, REPLICATED_USER, false),
    ("alice", Cap::Read, OTHER_CONFIG, false),
    ("alice", Cap::Read, DBA_USER, false),
    ("ops", Cap::Admin, "ops-made", true),
    ("ops", Cap::Read, DBA_USER, false),
    ("ops", Cap::List, DBA_USER, false),
];

const POLICIES: &[(&str, &str)] = &[
    (
        "dba",
        r#"[{"effect": "allow", "capabilities": ["read", "write", "list", "describe", "rotate", "delete", "share"], "paths": ["/dba/**"]}]"#,
    ),
    (
        "message-processor",
        r#"[{"effect": "allow", "capabilities": ["read", "describe", "list"], "paths": ["/app/message-processor/**"]}]"#,
    ),
    (
        "developer",
        r#"[
        {"effect": "allow", "capabilities": ["list", "describe"], "paths": ["/app/**"]},
        {"effect": "allow", "capabilities": ["read", "write", "delete"], "paths": ["/app/message-processor/**"]},
        {"effect": "deny", "capabilities": ["write", "delete"], "paths": ["/app/*/replicated/**"]}
    ]"#,
    ),
    (
        "operator",
        r#"[{"effect": "allow", "capabilities": ["admin"], "paths": ["sys/**"]}]"#,
    ),
];

const PRINCIPALS: &[(&str, PrincipalKind, &str)] = &[
    ("karen", PrincipalKind::Person, "dba"),
    (
        "message-processor",
        PrincipalKind::Service,
        "message-processor",
    ),
    ("alice", PrincipalKind::Person, "developer"),
    ("ops", PrincipalKind::Person, "operator"),
];

/// An answer as `Debug` shows it, for failure messages.
fn shown<T: std::fmt::Debug>(r: Result<T, ClientError>) -> Result<String, ClientError> {
    r.map(|answer| format!("{answer:?}"))
}

fn is_denied(r: &Result<String, ClientError>) -> bool {
    matches!(r, Err(ClientError::Api { status: 403, kind, .. }) if kind == "AccessDeniedException")
}

/// Tries `cap` on `path` as `c`: whether it was done (`false` when denied), and what
/// happened, for the failure message.
async fn attempt(c: &Client, sm: &Sdk, cap: Cap, path: &str) -> (bool, String) {
    let r = match cap {
        Cap::Read => shown(c.get_value(path, None, None).await),
        Cap::Write => shown(c.put(path, &text("new value"), None, &[]).await),
        Cap::Describe => shown(c.describe(path).await),
        Cap::Delete => match c.delete(path, Some(7), false).await {
            Ok(_) => shown(c.restore(path).await),
            Err(e) => Err(e),
        },
        Cap::Admin => shown(c.create_principal(path, PrincipalKind::Service).await),
        Cap::List => {
            return match c.list(Some(path), false).await {
                Ok(all) => {
                    let seen = all.iter().any(|s| s.name == path);
                    (seen, format!("listed: {seen}"))
                }
                Err(e) => (false, format!("list failed: {e}")),
            };
        }
        Cap::Rotate => {
            // No rotation engine yet: an allowed caller is refused for that reason
            // (InvalidRequestException), a denied one for lack of the capability.
            let err = sm
                .rotate_secret()
                .secret_id(path)
                .send()
                .await
                .unwrap_err()
                .into_service_error();
            let code = err.meta().code().unwrap_or("").to_string();
            assert!(
                ["AccessDeniedException", "InvalidRequestException"].contains(&code.as_str()),
                "{code}"
            );
            return (code != "AccessDeniedException", code);
        }
    };
    let denied = is_denied(&r);
    assert!(
        denied || r.is_ok(),
        "{cap:?} {path}: neither done nor denied: {r:?}"
    );
    (!denied, format!("{r:?}"))
}

type Sdk = aws_sdk_secretsmanager::Client;

fn sdk(url: &str, key: &NewAccessKey) -> Sdk {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    let creds = Credentials::new(
        &key.access_key_id,
        key.secret_access_key.expose(),
        None,
        None,
        "test",
    );
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(creds)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    Sdk::from_conf(config)
}

#[test]
fn figgy_layout_every_capability_allowed_and_denied() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let rt = runtime();
    rt.block_on(async {
        let root = harness::client(&server);
        for path in [DBA_USER, REPLICATED_USER, MP_CONFIG, OTHER_CONFIG] {
            root.create(path, Some(&text("blue")), None, &[], None).await.unwrap();
        }
        for (name, doc) in POLICIES {
            root.put_policy(name, &statements(doc)).await.unwrap();
        }
        let mut clients = std::collections::HashMap::new();
        for (name, kind, policy) in PRINCIPALS {
            root.create_principal(name, *kind).await.unwrap();
            root.attach_policy(name, policy).await.unwrap();
            let token = root.create_token(name, Some(3600)).await.unwrap();
            let key = root.create_access_key(name).await.unwrap();
            let native = Client::new(&server.url, token.token.expose()).unwrap();
            clients.insert(*name, (native, sdk(&server.url, &key)));
        }
        for (who, cap, path, allowed) in TABLE {
            let (native, sm) = &clients[who];
            let (done, detail) = attempt(native, sm, *cap, path).await;
            assert_eq!(done, *allowed, "{who} {cap:?} {path}: {detail}");
        }

        // A denial says which capability on which path was missing, and why.
        let (mp, mp_sdk) = &clients["message-processor"];
        let err = mp.get_value(DBA_USER, None, None).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("AccessDeniedException: message-processor is not allowed to read {DBA_USER}: no policy grants it")
        );
        let err = clients["alice"].0.put(REPLICATED_USER, &text("x"), None, &[]).await.unwrap_err();
        assert!(err.to_string().ends_with("policy developer denies it"), "{err}");
        // Not even existence leaks: an unknown name under a denied path is denied too.
        assert!(is_denied(&shown(mp.get_value("/dba/no/such/secret", None, None).await)));

        // The AWS API, with the service's own key pair.
        let v = mp_sdk.get_secret_value().secret_id(REPLICATED_USER).send().await.unwrap();
        assert_eq!(v.secret_string(), Some("blue"));
        let err = mp_sdk.get_secret_value().secret_id(DBA_USER).send().await.unwrap_err().into_service_error();
        assert_eq!(err.meta().code(), Some("AccessDeniedException"));
        let listed = mp_sdk.list_secrets().send().await.unwrap();
        let mut names: Vec<&str> = listed.secret_list().iter().filter_map(|s| s.name()).collect();
        names.sort();
        assert_eq!(names, [MP_CONFIG, REPLICATED_USER], "ListSecrets is filtered, not refused");
        let batch = mp_sdk
            .batch_get_secret_value()
            .secret_id_list(REPLICATED_USER)
            .secret_id_list(DBA_USER)
            .send()
            .await
            .unwrap();
        assert_eq!(batch.secret_values().len(), 1);
        assert_eq!(batch.errors()[0].secret_id(), Some(DBA_USER));
        assert_eq!(batch.errors()[0].error_code(), Some("AccessDeniedException"));

        // A revoked token stops working at once; a token can look itself up.
        let t = root.create_token("message-processor", None).await.unwrap();
        let c = Client::new(&server.url, t.token.expose()).unwrap();
        assert_eq!(c.lookup_token(None).await.unwrap().principal, "message-processor");
        c.get_value(MP_CONFIG, None, None).await.unwrap();
        root.revoke_token(&t.info.id).await.unwrap();
        assert!(matches!(c.get_value(MP_CONFIG, None, None).await, Err(ClientError::Api { status: 401, .. })));
        // A deleted principal's access key stops working too.
        root.delete_principal("message-processor").await.unwrap();
        let err = mp_sdk.list_secrets().send().await.unwrap_err().into_service_error();
        assert_eq!(err.meta().code(), Some("UnrecognizedClientException"));
    });
}
