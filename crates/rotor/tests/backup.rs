//! `rotor operator backup | verify-backup | restore`: a backup taken while writes go
//! on restores into a fresh server with every write acknowledged before it began, and
//! a backup changed after it was taken does not verify.

use crate::harness::{self, Launch, bin, client, persistent, root_env, runtime, start, text};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn operator(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("operator")
        .args(args)
        .env_remove("ROTOR_MASTER_KEY")
        .env_remove("ROTOR_DATA_DIR")
        .output()
        .unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}; stdout {}; stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_backup_taken_under_write_load_restores_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let (data, file) = (dir.path().join("data"), dir.path().join("backup.rotor"));
    let rt = runtime();
    let server = persistent(&data, dir.path());
    let c = Arc::new(client(&server));
    let acked: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    for w in 0..8 {
        let name = format!("backup/{w}");
        rt.block_on(c.create(&name, Some(&text("initial")), None, &[], Some("v0")))
            .unwrap();
        acked
            .lock()
            .unwrap()
            .push((name, "v0".into(), "initial".into()));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (c, acked, stop) = (c.clone(), acked.clone(), stop.clone());
            rt.spawn(async move {
                let name = format!("backup/{w}");
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let (id, value) = (format!("w{w}i{i}"), format!("value-{w}-{i}"));
                    c.put(&name, &text(&value), Some(&id), &[]).await.unwrap();
                    acked.lock().unwrap().push((name.clone(), id, value));
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < 200 {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Every write acknowledged before the backup begins must be in it.
    let before = acked.lock().unwrap().clone();
    let out = ok(&operator(&["backup", s(&file), "--data-dir", s(&data)]));
    assert!(out.starts_with("Backed up 8 secrets"), "{out}");
    let during = acked.lock().unwrap().len();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        rt.block_on(w).unwrap();
    }
    assert!(
        during > before.len(),
        "the writes went on while the backup was taken ({} then {during})",
        before.len()
    );
    drop(server);

    let key = data.join("master.key");
    let out = ok(&operator(&[
        "verify-backup",
        s(&file),
        "--master-key-file",
        s(&key),
    ]));
    assert!(out.contains("verified (8 secrets"), "{out}");
    let restored = dir.path().join("restored");
    ok(&operator(&[
        "restore",
        s(&file),
        "--data-dir",
        s(&restored),
        "--master-key-file",
        s(&key),
    ]));
    // Restoring over a store is refused.
    let again = operator(&[
        "restore",
        s(&file),
        "--data-dir",
        s(&restored),
        "--master-key-file",
        s(&key),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("holds a store already"));

    let server = start(Launch {
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            restored.display().to_string(),
            "--master-key-file".into(),
            key.display().to_string(),
        ],
        envs: root_env(),
        log_dir: dir.path(),
    });
    let c = client(&server);
    for (name, id, value) in &before {
        let got = rt
            .block_on(c.get_value(name, Some(id), None))
            .unwrap_or_else(|e| {
                panic!("{name} {id}, acknowledged before the backup, is gone: {e}")
            });
        assert_eq!(harness::value_of(&got), value.as_str());
    }
    for w in 0..8 {
        let d = rt.block_on(c.describe(&format!("backup/{w}"))).unwrap();
        let current = d
            .versions
            .values()
            .filter(|labels| labels.iter().any(|l| l == "AWSCURRENT"))
            .count();
        assert_eq!(current, 1, "{d:?}");
    }
}

#[test]
fn a_backup_changed_after_it_was_taken_or_opened_with_another_key_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (data, file) = (dir.path().join("data"), dir.path().join("backup.rotor"));
    let rt = runtime();
    let server = persistent(&data, dir.path());
    let c = client(&server);
    rt.block_on(c.create("kept/one", Some(&text("one")), None, &[], None))
        .unwrap();
    ok(&operator(&["backup", s(&file), "--data-dir", s(&data)]));
    // A backup file is never overwritten.
    assert!(
        !operator(&["backup", s(&file), "--data-dir", s(&data)])
            .status
            .success()
    );
    drop(server);
    let key = data.join("master.key");

    // Another master key: nothing decrypts.
    let other = dir.path().join("other.key");
    rotor_crypto::MasterKey::load_or_create(&other).unwrap();
    let out = operator(&["verify-backup", s(&file), "--master-key-file", s(&other)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not decrypt"), "{err}");
    let out = operator(&[
        "restore",
        s(&file),
        "--data-dir",
        s(&dir.path().join("r1")),
        "--master-key-file",
        s(&other),
    ]);
    assert!(!out.status.success());
    assert!(!dir.path().join("r1").join("rotor.db").exists());

    // A version slipped into the backup afterwards: counts and digest no longer match.
    let tampered = dir.path().join("tampered.rotor");
    std::fs::copy(&file, &tampered).unwrap();
    rt.block_on(async {
        use rotor_store::{Lookup, Mutation, NewVersion, SealedValue, Store as _};
        let store = rotor_store::sqlite::SqliteStore::open(&tampered, true)
            .await
            .unwrap();
        let id = store
            .load(&Lookup::Name("kept/one".into()))
            .await
            .unwrap()
            .unwrap()
            .meta
            .id;
        let version = NewVersion {
            id: "slipped-in".into(),
            stages: vec!["tampered".into()],
            sealed: SealedValue {
                ciphertext: vec![1, 2, 3],
                wrapped_key: vec![4, 5, 6],
                algorithm: "AES-256-GCM".into(),
                key_id: "mk-other".into(),
                digest: vec![7; 32],
            },
            source: None,
        };
        store
            .apply(
                Mutation::PutVersion {
                    secret: id,
                    version,
                },
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        store.close().await;
    });
    let out = operator(&["verify-backup", s(&tampered), "--master-key-file", s(&key)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not match its manifest's digest"),
        "{err}"
    );
    assert!(err.contains("slipped-in does not decrypt"), "{err}");

    // And the untouched backup still does.
    ok(&operator(&[
        "verify-backup",
        s(&file),
        "--master-key-file",
        s(&key),
    ]));
    // A file that is not a backup.
    let out = operator(&[
        "verify-backup",
        s(&data.join("master.key")),
        "--master-key-file",
        s(&key),
    ]);
    assert!(!out.status.success());
}
