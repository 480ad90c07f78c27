//! The conformance suite against the embedded SQLite backend, one fresh database
//! file per check.

use rotor_store::Store;
use rotor_store::conformance;
use rotor_store::sqlite::SqliteStore;
use std::sync::Arc;

async fn fresh() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("rotor.db"), true)
        .await
        .expect("store opens");
    (dir, Arc::new(store))
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (_dir, store) = fresh().await;
                conformance::$check(store.clone()).await;
                store.close().await;
            }
        )*
        #[test]
        fn every_check_runs() {
            let here: &[&str] = &[$(stringify!($check)),*];
            assert_eq!(here, conformance::ALL);
        }
    };
}

conformance!(
    create_and_load,
    put_moves_labels,
    version_ids_are_immutable,
    deprecated_versions_load_on_demand,
    create_is_idempotent_per_token,
    label_moves,
    deletion_lifecycle,
    deprecated_versions_are_pruned,
    versions_stay_bounded_when_written_fast,
    events_are_pruned_past_retention_keeping_what_is_needed,
    tags,
    concurrent_writes_group_commit,
    concurrent_replays_and_conflicts_across_secrets,
    master_keys_are_recorded,
    access_configuration,
    audit_entries_append_in_order,
    events_are_gap_free_and_transactional,
    atomic_changes_are_all_or_nothing,
    rotation_records,
);

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
