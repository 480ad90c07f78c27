//! The audit log's hash chain: intact logs verify, and changing, deleting or
//! reordering any single entry is detected.

use chrono::Utc;
use rotor_crypto::{Envelope, MasterKey};
use rotor_engine::audit::{AuditConfig, AuditLog, AuditRecord, Verdict, read_checkpoint, verify};
use rotor_store::Store;
use rotor_store::sqlite::SqliteStore;
use std::path::Path;
use std::sync::Arc;

fn record(i: usize) -> AuditRecord {
    AuditRecord {
        time: Utc::now(),
        request_id: format!("req-{i}"),
        principal: Some("svc".into()),
        api: "native",
        operation: "GetSecretValue",
        secret: Some(format!("/app/s{i}")),
        decision: if i.is_multiple_of(7) { "deny" } else { "allow" },
        status: if i.is_multiple_of(7) { 403 } else { 200 },
        ..Default::default()
    }
}

async fn write_log(dir: &Path, key: [u8; 32], n: usize) -> (Arc<dyn Store>, std::path::PathBuf) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("db"), true).await.unwrap());
    let envelope = Arc::new(Envelope::new(MasterKey::from_bytes(key)));
    let file = dir.join("audit.log");
    let log = AuditLog::open(
        AuditConfig {
            file: file.clone(),
            max_bytes: u64::MAX,
            store_sink: true,
        },
        store.clone(),
        envelope,
    )
    .await
    .unwrap();
    let log = Arc::new(log);
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(record(i)).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    log.close().await;
    (store, file)
}

/// A log in `file` over a fresh store in `dir`, copying entries to the store when
/// `store_sink`.
async fn open_log(
    dir: &Path,
    file: &Path,
    key: [u8; 32],
    store_sink: bool,
) -> (Arc<dyn Store>, AuditLog) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("db"), true).await.unwrap());
    let config = AuditConfig {
        file: file.to_path_buf(),
        max_bytes: u64::MAX,
        store_sink,
    };
    let log = AuditLog::open(config, store.clone(), Arc::new(envelope(key)))
        .await
        .unwrap();
    (store, log)
}

fn envelope(key: [u8; 32]) -> Envelope {
    Envelope::new(MasterKey::from_bytes(key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_single_change_deletion_or_reordering_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let key = [7u8; 32];
    let (store, file) = write_log(dir.path(), key, 40).await;
    let text = std::fs::read_to_string(&file).unwrap();
    let checkpoint = read_checkpoint(&file);
    assert_eq!(
        checkpoint.as_ref().map(|c| (c.first, c.seq)),
        Some((1, 40)),
        "closing writes a checkpoint"
    );
    let env = envelope(key);
    assert_eq!(
        verify(&env, &text, checkpoint.clone()),
        Verdict::Intact {
            entries: 40,
            range: Some((1, 40))
        }
    );
    // The store sink holds the same lines.
    let stored: Vec<String> = store
        .audit_entries(0)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    assert_eq!(stored, text.lines().collect::<Vec<_>>());
    // Another key cannot vouch for it.
    assert!(matches!(
        verify(&envelope([8u8; 32]), &text, None),
        Verdict::Broken { line: 1, .. }
    ));

    let lines: Vec<&str> = text.lines().collect();
    let join = |v: Vec<&str>| v.join("\n") + "\n";
    for i in 0..lines.len() {
        // Change one entry.
        let mut changed = lines.clone();
        let altered = lines[i].replacen("GetSecretValue", "DeleteSecret", 1);
        changed[i] = &altered;
        assert!(
            matches!(
                verify(&env, &join(changed), checkpoint.clone()),
                Verdict::Broken { .. }
            ),
            "change of {i}"
        );
        // Delete one entry.
        let mut deleted = lines.clone();
        deleted.remove(i);
        assert!(
            matches!(
                verify(&env, &join(deleted), checkpoint.clone()),
                Verdict::Broken { .. }
            ),
            "deletion of {i}"
        );
        // Swap it with the next.
        if i + 1 < lines.len() {
            let mut swapped = lines.clone();
            swapped.swap(i, i + 1);
            assert!(
                matches!(
                    verify(&env, &join(swapped), checkpoint.clone()),
                    Verdict::Broken { .. }
                ),
                "swap of {i}"
            );
        }
    }
    // The report names the first broken entry. (Entries were appended concurrently, so
    // alter a field every entry has.)
    let mut changed = lines.clone();
    let altered = lines[9].replacen("\"native\"", "\"aws\"", 1);
    assert_ne!(altered, lines[9]);
    changed[9] = &altered;
    match verify(&env, &join(changed), checkpoint) {
        Verdict::Broken { line, reason } => assert_eq!(
            (line, reason.as_str()),
            (10, "entry 10 was altered (its MAC does not match)")
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_continues_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let key = [3u8; 32];
    write_log(dir.path(), key, 10).await;
    let (_, file) = write_log(dir.path(), key, 5).await;
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        verify(&envelope(key), &text, read_checkpoint(&file)),
        Verdict::Intact {
            entries: 15,
            range: Some((1, 15))
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_files_each_verify_and_the_chain_runs_through_them() {
    let dir = tempfile::tempdir().unwrap();
    let key = [5u8; 32];
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("db"), true)
            .await
            .unwrap(),
    );
    let file = dir.path().join("audit.log");
    let config = AuditConfig {
        file: file.clone(),
        max_bytes: 3_000,
        store_sink: false,
    };
    let log = AuditLog::open(config, store, Arc::new(envelope(key)))
        .await
        .unwrap();
    for i in 0..60 {
        log.append(record(i)).await.unwrap();
    }
    log.close().await;
    let mut rotated: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log") && *p != file)
        .collect();
    assert!(rotated.len() >= 3, "rotated files: {rotated:?}");
    // Rotated files are named after their last entry: audit.N.log.
    let seq_of = |p: &std::path::PathBuf| -> i64 {
        let stem = p.file_stem().unwrap().to_str().unwrap();
        stem.rsplit('.').next().unwrap().parse().unwrap()
    };
    rotated.sort_by_key(seq_of);
    let env = envelope(key);
    let mut total = 0;
    let mut last_seq = 0;
    for path in rotated.iter().chain(std::iter::once(&file)) {
        let text = std::fs::read_to_string(path).unwrap();
        let checkpoint = if *path == file {
            read_checkpoint(&file)
        } else {
            None
        };
        match verify(&env, &text, checkpoint) {
            Verdict::Intact {
                entries,
                range: Some((first, last)),
            } => {
                assert_eq!(
                    first,
                    last_seq + 1,
                    "{} continues the chain",
                    path.display()
                );
                last_seq = last;
                total += entries;
            }
            other => panic!("{}: {other:?}", path.display()),
        }
    }
    assert_eq!((total, last_seq), (60, 60));
}

/// Entries appended at once from many tasks are each in the file once, in one chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_appended_at_once_are_each_written_once_in_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let key = [9u8; 32];
    let (_, file) = write_log(dir.path(), key, 500).await;
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        verify(&envelope(key), &text, read_checkpoint(&file)),
        Verdict::Intact {
            entries: 500,
            range: Some((1, 500))
        }
    );
    let mut ids: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"].to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 500);
}

/// When the store's copy of the log fails, requests are refused without their
/// entries reaching the file, so the file's chain has no sequence number twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_copy_refuses_requests_and_leaves_the_file_chain_whole() {
    let dir = tempfile::tempdir().unwrap();
    let key = [11u8; 32];
    let file = dir.path().join("audit.log");
    let (store, log) = open_log(dir.path(), &file, key, true).await;
    for i in 0..5 {
        log.append(record(i)).await.unwrap();
    }
    store.close().await;
    // The sink learns of the failure with the next batch it gets.
    let mut refused = 0;
    for i in 5..200 {
        if log.append(record(i)).await.is_err() {
            refused += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert!(refused > 150, "refused {refused} of 195");
    log.close().await;
    let text = std::fs::read_to_string(&file).unwrap();
    match verify(&envelope(key), &text, read_checkpoint(&file)) {
        Verdict::Intact { entries, .. } => assert_eq!(entries, 200 - refused),
        broken => panic!("{broken:?}"),
    }
}

/// A log that cannot be written refuses every request appended at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_cannot_be_written_refuses_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let (_, log) = open_log(dir.path(), Path::new("/dev/full"), [13u8; 32], false).await;
    let log = Arc::new(log);
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(record(i)).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().is_err());
    }
}
