//! Invariant 5: no secret value in plaintext in the data directory, the logs, error
//! messages or metrics; the generated master key is private.

use crate::harness::{self, client, persistent, runtime, terminate, text};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_secret_value_is_stored_or_logged_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rt = runtime();
    let mut server = persistent(&data, dir.path());
    let c = client(&server);
    let canaries: Vec<String> = (0..5)
        .map(|i| format!("PLAINTEXT-CANARY-{i}-{}", std::process::id()))
        .collect();
    rt.block_on(async {
        c.create(
            "hygiene/a",
            Some(&text(&canaries[0])),
            Some("not secret"),
            &[],
            Some("v1"),
        )
        .await
        .unwrap();
        c.put("hygiene/a", &text(&canaries[1]), Some("v2"), &[])
            .await
            .unwrap();
        c.put(
            "hygiene/a",
            &text(&canaries[2]),
            Some("v3"),
            &["AWSPENDING".into()],
        )
        .await
        .unwrap();
        let binary = rotor_client::NewValue::Bytes(canaries[3].as_bytes().to_vec());
        c.create("hygiene/b", Some(&binary), None, &[], None)
            .await
            .unwrap();
        // A refused write (same version id, other value): its error must not echo the value.
        let err = c
            .put("hygiene/a", &text(&canaries[4]), Some("v2"), &[])
            .await
            .unwrap_err();
        assert!(
            !err.to_string().contains(&canaries[4]),
            "error message leaks the value: {err}"
        );
        // Reads work, so the values are there, just not in plaintext.
        let v = c
            .get_value("hygiene/a", None, Some("previous"))
            .await
            .unwrap();
        assert_eq!(harness::value_of(&v), canaries[0].as_str());
        let metrics = reqwest::get(format!("{}/metrics", server.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for canary in &canaries {
            assert!(!metrics.contains(canary.as_str()));
        }
    });
    assert!(terminate(&mut server).success());
    // Credentials too: the root token is stored only as a keyed hash, the secret
    // access key sealed; neither may appear anywhere.
    let mut canaries = canaries;
    canaries.push(harness::TOKEN.to_string());
    canaries.push(harness::SECRET_KEY.to_string());
    let mut files = Vec::new();
    files_under(&data, &mut files);
    files.push(server.stderr_log.clone());
    assert!(
        files.iter().any(|f| f.ends_with("rotor.db")),
        "the database is in the data dir: {files:?}"
    );
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for canary in &canaries {
            assert!(
                !contains(&bytes, canary.as_bytes()),
                "{} holds {canary} in plaintext",
                file.display()
            );
        }
    }
    for line in &server.stdout_lines {
        assert!(canaries.iter().all(|c| !line.contains(c.as_str())));
    }
    let mode = std::fs::metadata(data.join("master.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "master key file mode");
    let _ = harness::TOKEN;
}
