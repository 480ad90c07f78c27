//! The conformance suite against the embedded SQLite backend, one fresh database
//! file per check.

use rotor_store::Store;
use rotor_store::conformance;
use rotor_store::sqlite::SqliteStore;
use std::sync::Arc;

async fn fresh(_check: &str) -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("rotor.db"), true)
        .await
        .expect("store opens");
    (dir, Arc::new(store))
}

rotor_store::conformance_tests!(fresh);

#[tokio::test]
async fn reopening_keeps_committed_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotor.db");
    let store = Arc::new(SqliteStore::open(&path, true).await.unwrap()) as Arc<dyn Store>;
    conformance::create_and_load(store.clone()).await;
    store.close().await;
    let again = SqliteStore::open(&path, true).await.unwrap();
    let r = again
        .load(&rotor_store::Lookup::Name("prod/db".into()))
        .await
        .unwrap()
        .expect("still there after reopening");
    assert_eq!(r.versions.len(), 1);
}
