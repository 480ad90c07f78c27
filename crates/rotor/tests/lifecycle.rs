//! Start-up, configuration and shutdown of `rotor server`.

use crate::harness::{
    self, Launch, client, persistent, root_env, runtime, start, terminate, text, try_start,
};
use std::sync::{Arc, Mutex};

#[test]
fn sigterm_drains_in_flight_requests_and_commits_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rt = runtime();
    let mut server = persistent(&data, dir.path());
    let c = Arc::new(client(&server));
    rt.block_on(c.create("drain/s", Some(&text("0")), None, &[], None))
        .unwrap();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (c, acked) = (c.clone(), acked.clone());
            rt.spawn(async move {
                let id = format!("d{i}");
                if c.put("drain/s", &text(&format!("value {i}")), Some(&id), &[])
                    .await
                    .is_ok()
                {
                    acked.lock().unwrap().push(id);
                }
            })
        })
        .collect();
    while acked.lock().unwrap().is_empty() {
        std::thread::yield_now();
    }
    let status = terminate(&mut server);
    assert!(status.success(), "exit status after SIGTERM: {status}");
    for t in tasks {
        rt.block_on(t).unwrap();
    }
    let server = persistent(&data, dir.path());
    let c = client(&server);
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty());
    for id in &acked {
        rt.block_on(c.get_value("drain/s", Some(id), None))
            .unwrap_or_else(|e| panic!("acknowledged {id} lost across SIGTERM: {e}"));
    }
}

#[test]
fn non_loopback_without_tls_is_refused_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = vec![
            "--listen".into(),
            "0.0.0.0:0".into(),
            "--data-dir".into(),
            data.clone(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let refused = try_start(Launch {
        args: args(&[]),
        envs: root_env(),
        log_dir: dir.path(),
    });
    let err = refused.err().expect("refused");
    assert!(err.contains("without TLS"), "{err}");
    let server = start(Launch {
        args: args(&["--insecure-no-tls"]),
        envs: root_env(),
        log_dir: dir.path(),
    });
    assert!(server.url.starts_with("http://0.0.0.0:"));
}

/// Write forwarding needs PostgreSQL: asked of a SQLite or --dev server, it is refused
/// rather than silently ignored.
#[test]
fn cluster_listen_without_postgres_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    for extra in [vec!["--data-dir", data.as_str()], vec!["--dev"]] {
        let mut args: Vec<String> = vec!["--listen".into(), "127.0.0.1:0".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--cluster-listen".into(), "127.0.0.1:0".into()]);
        let refused = try_start(Launch {
            args,
            envs: root_env(),
            log_dir: dir.path(),
        });
        let err = refused.err().expect("refused");
        assert!(err.contains("cluster_listen"), "{extra:?}: {err}");
    }
}

#[test]
fn config_file_sets_options_and_env_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rotor.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\naccount_id = \"111122223333\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let rt = runtime();
    let launch = |envs: Vec<(&'static str, String)>| Launch {
        args: vec!["--config".into(), config.display().to_string()],
        envs: [root_env(), envs].concat(),
        log_dir: dir.path(),
    };
    let server = start(launch(vec![]));
    let created = rt
        .block_on(client(&server).create("cfg/a", None, None, &[], None))
        .unwrap();
    assert!(
        created.arn.contains(":111122223333:secret:cfg/a-"),
        "{created:?}"
    );
    drop(server);
    let server = start(launch(vec![("ROTOR_ACCOUNT_ID", "444455556666".into())]));
    let created = rt
        .block_on(client(&server).create("cfg/b", None, None, &[], None))
        .unwrap();
    assert!(created.arn.contains(":444455556666:"), "{created:?}");

    std::fs::write(&config, "listen = \"127.0.0.1:0\"\ncolour = \"blue\"\n").unwrap();
    let err = try_start(launch(vec![]))
        .err()
        .expect("unknown option refused");
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn dev_server_generates_and_prints_credentials_when_unset() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(Launch {
        args: vec!["--dev".into(), "--listen".into(), "127.0.0.1:0".into()],
        envs: vec![],
        log_dir: dir.path(),
    });
    let token = server
        .stdout_lines
        .iter()
        .find_map(|l| l.strip_prefix("Root token: "))
        .expect("a generated token is printed")
        .to_string();
    assert!(
        server
            .stdout_lines
            .iter()
            .any(|l| l.starts_with("Access key id: AKIA"))
    );
    let rt = runtime();
    let c = rotor_client::Client::new(&server.url, &token).unwrap();
    rt.block_on(c.create("dev/x", Some(&text("v")), None, &[], None))
        .unwrap();
    let wrong = rotor_client::Client::new(&server.url, "wrong").unwrap();
    let err = rt.block_on(wrong.describe("dev/x")).unwrap_err();
    assert!(
        matches!(err, rotor_client::ClientError::Api { status: 401, .. }),
        "{err}"
    );
}

#[test]
fn persistent_server_generates_root_credentials_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let launch = || Launch {
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            data.display().to_string(),
        ],
        envs: vec![],
        log_dir: dir.path(),
    };
    let first = start(launch());
    let token = first
        .stdout_lines
        .iter()
        .find_map(|l| l.strip_prefix("Root token: "))
        .expect("printed on first start")
        .to_string();
    drop(first);
    let second = start(launch());
    assert!(
        second
            .stdout_lines
            .iter()
            .all(|l| !l.starts_with("Root token")),
        "printed only once"
    );
    let rt = runtime();
    let c = rotor_client::Client::new(&second.url, &token).unwrap();
    rt.block_on(c.create("boot/x", None, None, &[], None))
        .unwrap();
    let _ = harness::TOKEN;
}

/// The master key from `ROTOR_MASTER_KEY` or `--master-key-file` instead of a generated
/// one; a server given another key than the data's refuses to start.
#[test]
fn master_key_sources_and_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let launch =
        |data: &std::path::Path, extra: Vec<String>, envs: Vec<(&'static str, String)>| Launch {
            args: [
                vec![
                    "--listen".into(),
                    "127.0.0.1:0".into(),
                    "--data-dir".into(),
                    data.display().to_string(),
                ],
                extra,
            ]
            .concat(),
            envs: [root_env(), envs].concat(),
            log_dir: dir.path(),
        };
    let key_a = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="; // 32 bytes of 'A'
    let key_b = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="; // 32 bytes of 'B'

    // From the environment: no key file is written, and the data reads back after a restart.
    let data = dir.path().join("env-data");
    let server = start(launch(
        &data,
        vec![],
        vec![("ROTOR_MASTER_KEY", key_a.into())],
    ));
    rt.block_on(client(&server).create("mk/a", Some(&text("sealed under A")), None, &[], None))
        .unwrap();
    drop(server);
    assert!(!data.join("master.key").exists());
    let server = start(launch(
        &data,
        vec![],
        vec![("ROTOR_MASTER_KEY", key_a.into())],
    ));
    let v = rt
        .block_on(client(&server).get_value("mk/a", None, None))
        .unwrap();
    assert_eq!(harness::value_of(&v), "sealed under A");
    drop(server);

    // Another key: refused at start, saying why.
    let err = try_start(launch(
        &data,
        vec![],
        vec![("ROTOR_MASTER_KEY", key_b.into())],
    ))
    .err()
    .expect("refused");
    assert!(err.contains("master key"), "{err}");

    // From a file given by --master-key-file.
    let key_file = dir.path().join("a.key");
    std::fs::write(&key_file, key_a).unwrap();
    let server = start(launch(
        &data,
        vec!["--master-key-file".into(), key_file.display().to_string()],
        vec![],
    ));
    let v = rt
        .block_on(client(&server).get_value("mk/a", None, None))
        .unwrap();
    assert_eq!(harness::value_of(&v), "sealed under A");
    drop(server);

    // A malformed key is refused.
    let err = try_start(launch(
        &data,
        vec![],
        vec![("ROTOR_MASTER_KEY", "short".into())],
    ))
    .err()
    .expect("refused");
    assert!(err.contains("ROTOR_MASTER_KEY"), "{err}");
}
