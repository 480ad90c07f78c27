//! The resolver against a real Rotor server, started in this process on `127.0.0.1:0`:
//! the `rotor` vault over the native API and the `aws` vault over the Secrets Manager
//! API with SigV4, both reading the same secrets.

use rotor_client::backend::BackendErrorKind;
use rotor_client::backend::aws::AwsBackend;
use rotor_client::resolver::{ResolveError, Resolver, VaultConfig, Vaults};
use rotor_client::{Client, NewValue};
use rotor_engine::{AccessService, SecretService};
use secrecy::SecretString;
use std::sync::Arc;

const TOKEN: &str = "client-test-token";
const AKID: &str = "AKIDCLIENTTEST";
const SECRET_KEY: &str = "client-test-secret-key";

/// Starts a server with an ephemeral store; returns its address. The listener is bound
/// before this returns, so the server accepts connections at once.
async fn server() -> String {
    let store = Arc::new(rotor_store::sqlite::SqliteStore::ephemeral().await.unwrap());
    let service = Arc::new(SecretService::with_random_key(store, "123456789012"));
    let access = Arc::new(
        AccessService::load(service.store(), service.envelope(), service.clock())
            .await
            .unwrap(),
    );
    access
        .bootstrap(Some(TOKEN), Some((AKID, SECRET_KEY)))
        .await
        .unwrap();
    let app = rotor_server::App::new(service, access, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let router = app.router();
    tokio::spawn(async move {
        rotor_server::serve::serve(listener, router, None, std::future::pending()).await
    });
    addr
}

fn text(s: &str) -> NewValue {
    NewValue::Text(SecretString::from(s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotor_and_aws_vaults_resolve_the_same_secret_and_follow_its_versions() {
    let addr = server().await;
    let client = Arc::new(Client::new(&addr, TOKEN).unwrap());
    client
        .create(
            "/app/db",
            Some(&text(r#"{"username":"app","password":"p1"}"#)),
            None,
            &[],
            None,
        )
        .await
        .unwrap();
    let aws = AwsBackend::new(&addr, "us-east-1", AKID, SecretString::from(SECRET_KEY)).unwrap();
    let wrong = AwsBackend::new(&addr, "us-east-1", AKID, SecretString::from("wrong")).unwrap();
    let vaults = Vaults::new()
        .with("rotor", VaultConfig::rotor(client.clone()))
        .unwrap()
        .with("aws", VaultConfig::aws(aws).follows_changes(true))
        .unwrap()
        .with("wrong", VaultConfig::aws(wrong))
        .unwrap();
    let r = Resolver::new(vaults);

    let native = r.get("{vault://rotor/%2Fapp%2Fdb/password}").await.unwrap();
    assert_eq!(native.expose_secret(), "p1");
    assert!(native.version_id().is_some());
    let signed = r.get("{vault://aws/%2Fapp/db/password}").await.unwrap();
    assert_eq!(signed.expose_secret(), "p1");
    assert_eq!(signed.version_id(), native.version_id());

    client
        .put(
            "/app/db",
            &text(r#"{"username":"app","password":"p2"}"#),
            None,
            &[],
        )
        .await
        .unwrap();
    // Cached until told: the change event refreshes both vaults' references at once.
    assert_eq!(
        r.get("{vault://rotor/%2Fapp%2Fdb/password}")
            .await
            .unwrap()
            .expose_secret(),
        "p1"
    );
    assert_eq!(r.notify_changed("/app/db").await, 2);
    assert_eq!(
        r.get("{vault://rotor/%2Fapp%2Fdb/password}")
            .await
            .unwrap()
            .expose_secret(),
        "p2"
    );
    assert_eq!(
        r.get("{vault://aws/%2Fapp/db/password}")
            .await
            .unwrap()
            .expose_secret(),
        "p2"
    );
    // `#2` is AWSPREVIOUS; `?stage=` names a label.
    assert_eq!(
        r.get("{vault://rotor/%2Fapp%2Fdb/password#2}")
            .await
            .unwrap()
            .expose_secret(),
        "p1"
    );
    assert_eq!(
        r.get("{vault://aws/%2Fapp%2Fdb/password#2}")
            .await
            .unwrap()
            .expose_secret(),
        "p1"
    );
    assert_eq!(
        r.get("{vault://aws/%2Fapp%2Fdb/password?stage=AWSPREVIOUS}")
            .await
            .unwrap()
            .expose_secret(),
        "p1"
    );

    let missing = r.get("{vault://aws/%2Fnope}").await.unwrap_err();
    assert!(
        matches!(&missing, ResolveError::Backend { source, .. } if source.kind == BackendErrorKind::NotFound),
        "{missing}"
    );
    let missing = r.get("{vault://rotor/%2Fnope}").await.unwrap_err();
    assert!(
        matches!(&missing, ResolveError::Backend { source, .. } if source.kind == BackendErrorKind::NotFound),
        "{missing}"
    );
    let denied = r.get("{vault://wrong/%2Fapp%2Fdb}").await.unwrap_err();
    assert!(
        matches!(&denied, ResolveError::Backend { source, .. } if source.kind == BackendErrorKind::Denied),
        "{denied}"
    );
    for e in [format!("{denied:?}"), denied.to_string()] {
        assert!(
            !e.contains("p1") && !e.contains("p2") && !e.contains(SECRET_KEY),
            "{e}"
        );
    }
}
