//! What the engine's tests share: a service over an ephemeral store with a
//! bootstrapped root, and principals bound by given statements.

use rotor_core::policy::{Policy, Statement};
use rotor_engine::{AccessService, Caller, SecretService};
use secrecy::ExposeSecret;
use std::sync::Arc;

/// The root token every world bootstraps.
pub const ROOT_TOKEN: &str = "root-token";

/// A service and its access service, with root.
pub struct Base {
    pub service: Arc<SecretService>,
    pub access: Arc<AccessService>,
    pub root: Caller,
}

/// A service over a fresh ephemeral store, with a random master key.
pub async fn ephemeral() -> SecretService {
    let store = rotor_store::sqlite::SqliteStore::ephemeral().await.unwrap();
    SecretService::with_random_key(Arc::new(store), "123456789012")
}

/// A fresh service over an ephemeral store, root bootstrapped with [`ROOT_TOKEN`].
pub async fn base() -> Base {
    let service = Arc::new(ephemeral().await);
    let access = Arc::new(
        AccessService::load(service.store(), service.envelope(), service.clock())
            .await
            .unwrap(),
    );
    access.bootstrap(Some(ROOT_TOKEN), None).await.unwrap();
    service.bind_access(&access);
    let root = access.authenticate_token(ROOT_TOKEN).unwrap();
    Base {
        service,
        access,
        root,
    }
}

/// A principal `name` bound by `statements` (in a policy of the same name), created
/// by `admin`, as the caller its new token authenticates.
pub async fn principal(
    access: &AccessService,
    admin: &Caller,
    name: &str,
    statements: Vec<Statement>,
) -> Caller {
    access
        .create_principal(admin, name, "service")
        .await
        .unwrap();
    let policy = Policy {
        name: name.into(),
        statements,
    };
    access.put_policy(admin, &policy).await.unwrap();
    access.attach(admin, name, name).await.unwrap();
    let (_, token) = access.create_token(admin, name, None).await.unwrap();
    access.authenticate_token(token.expose_secret()).unwrap()
}
