//! Invariant 3: a write acknowledged to a client survives `kill -9` of the server.

use crate::harness::{self, client, persistent, runtime, text};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rt = runtime();
    let acked: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    for round in 0..5u64 {
        let server = persistent(&data, dir.path());
        let c = Arc::new(client(&server));
        let name = format!("durable/{round}");
        rt.block_on(c.create(&name, Some(&text("initial")), None, &[], Some("v0")))
            .unwrap();
        acked
            .lock()
            .unwrap()
            .push((name.clone(), "v0".into(), "initial".into()));
        let writers: Vec<_> = (0..16)
            .map(|w| {
                let (c, name, acked) = (c.clone(), name.clone(), acked.clone());
                rt.spawn(async move {
                    for i in 0.. {
                        let value = format!("value-{round}-{w}-{i}");
                        let id = format!("r{round}w{w}i{i}");
                        match c.put(&name, &text(&value), Some(&id), &[]).await {
                            Ok(_) => acked.lock().unwrap().push((name.clone(), id, value)),
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        // Let some writes through, then kill at a moment that differs every round.
        let start = std::time::Instant::now();
        while acked.lock().unwrap().len() < 20 * (round as usize + 1)
            && start.elapsed() < Duration::from_secs(20)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(7 * round + 3));
        let mut server = server;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        for w in writers {
            rt.block_on(w).unwrap();
        }
    }
    let server = persistent(&data, dir.path());
    let c = client(&server);
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "only {} writes were acknowledged",
        acked.len()
    );
    for (name, id, value) in &acked {
        let got = rt
            .block_on(c.get_value(name, Some(id), None))
            .unwrap_or_else(|e| panic!("acknowledged version {id} of {name} is gone: {e}"));
        assert_eq!(
            harness::value_of(&got),
            value.as_str(),
            "version {id} of {name}"
        );
    }
    // Every secret still has exactly one AWSCURRENT.
    for round in 0..5 {
        let d = rt
            .block_on(c.describe(&format!("durable/{round}")))
            .unwrap();
        let current = d
            .versions
            .values()
            .filter(|stages| stages.iter().any(|s| s == "AWSCURRENT"))
            .count();
        assert_eq!(current, 1);
    }
    drop(server);
    let _ = harness::TOKEN;
}
