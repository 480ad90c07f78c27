//! TLS with rustls, and certificate reload on SIGHUP.

use crate::harness::{Launch, signal, start, terminate};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a leaf certificate for 127.0.0.1 it signed (`cert.pem`, `key.pem`).
fn make_cert(dir: &Path, cn: &str) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            &format!("/CN={cn} CA"),
        ],
        dir,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
            "-subj",
            &format!("/CN={cn}"),
        ],
        dir,
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
        dir,
    );
}

/// `None` when the server's certificate is not the one `ca` trusts.
fn served_cert(url: &str, ca: &Path) -> Option<Vec<u8>> {
    let rt = crate::harness::runtime();
    rt.block_on(async {
        let cert = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([cert])
            .tls_info(true)
            .build()
            .unwrap();
        let resp = client.get(format!("{url}/healthz")).send().await.ok()?;
        assert!(resp.status().is_success());
        let info = resp.extensions().get::<reqwest::tls::TlsInfo>()?;
        info.peer_certificate().map(<[u8]>::to_vec)
    })
}

#[test]
fn serves_tls_and_reloads_the_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    std::fs::create_dir(&first).unwrap();
    make_cert(&first, "rotor-first");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::copy(first.join("cert.pem"), &cert).unwrap();
    std::fs::copy(first.join("key.pem"), &key).unwrap();
    let mut server = start(Launch {
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ],
        envs: crate::harness::root_env(),
        log_dir: dir.path(),
    });
    assert!(server.url.starts_with("https://"));
    let before =
        served_cert(&server.url, &first.join("ca.pem")).expect("the first certificate is served");

    // Plain HTTP to the TLS port gets no answer.
    let plain = server.url.replace("https://", "http://");
    let rt = crate::harness::runtime();
    assert!(
        rt.block_on(reqwest::get(format!("{plain}/healthz")))
            .is_err()
    );

    let second = dir.path().join("second");
    std::fs::create_dir(&second).unwrap();
    make_cert(&second, "rotor-second");
    std::fs::copy(second.join("cert.pem"), &cert).unwrap();
    std::fs::copy(second.join("key.pem"), &key).unwrap();
    signal(&server, "HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        if let Some(c) = served_cert(&server.url, &second.join("ca.pem")) {
            break Some(c);
        }
        if Instant::now() > deadline {
            break None;
        }
    };
    let after = after.expect("the second certificate is served after SIGHUP");
    assert_ne!(after, before);
    // A broken pair on disk: the reload fails and the server keeps serving the last good one.
    std::fs::write(&cert, "not a certificate").unwrap();
    signal(&server, "HUP");
    assert_eq!(
        served_cert(&server.url, &second.join("ca.pem")),
        Some(after)
    );
    assert!(terminate(&mut server).success());
}
