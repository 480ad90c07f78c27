//! Change-event benchmark against a real `rotor server` (persistent: durable
//! SQLite, audit on):
//!
//! - **put → watch**: a source secret under /dba/ is replicated to /app/; a client
//!   watches /app/ over Server-Sent Events. For each of N changes (one at a time),
//!   the time from sending the source's PutSecretValue (native API) to the
//!   replica's `replication.applied` event arriving at the watcher.
//! - **webhook delivery**: a webhook subscription to a receiver in this process; M
//!   puts from 16 writers; deliveries per second until the receiver has them all.
//! - **idle waiters**: durable writes per second from 16 writers, alone and then with
//!   W long polls waiting (`/v1/events?wait=60`) for principals that can see none of
//!   the writes. Each waiter used to re-read the outbox on every commit; one reader
//!   now serves them all, so the ratio should stay near 1.
//!
//! Writes bench/results/events.{md,json}.

mod server;

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::{Value, json};
use server::{Server, percentile};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser, Debug)]
#[command(
    name = "events-bench",
    about = "Put-to-watch latency and webhook delivery throughput"
)]
struct Args {
    /// The rotor binary (build it with `cargo build --release -p rotor`).
    #[arg(long)]
    rotor: Option<PathBuf>,
    /// Changes measured one at a time, put to watch.
    #[arg(long, default_value_t = 1000)]
    changes: usize,
    /// Changes delivered by webhook.
    #[arg(long, default_value_t = 2000)]
    deliveries: usize,
    /// Idle long polls during the second write measurement.
    #[arg(long, default_value_t = 200)]
    waiters: usize,
    /// Seconds each write measurement lasts.
    #[arg(long, default_value_t = 5.0)]
    load_secs: f64,
    /// Where results go.
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

const TOKEN: &str = "bench-events-root-token";

/// The server and the directory holding its data.
struct Running {
    server: Server,
    _dir: tempfile::TempDir,
}

async fn start(rotor: &Path) -> Result<Running> {
    let dir = tempfile::tempdir()?;
    let mut cmd = tokio::process::Command::new(rotor);
    cmd.args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("ROTOR_ROOT_TOKEN", TOKEN)
        .env("ROTOR_ROOT_ACCESS_KEY_ID", "AKIDBENCHEVENTS")
        .env("ROTOR_ROOT_SECRET_ACCESS_KEY", "bench-events-secret");
    Ok(Running {
        server: server::start(cmd).await?,
        _dir: dir,
    })
}

struct Latency {
    changes: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

async fn put_to_watch(server: &Server, changes: usize) -> Result<Latency> {
    let http = reqwest::Client::new();
    let base = &server.url;
    server::call(
        &http,
        TOKEN,
        reqwest::Method::POST,
        format!("{base}/v1/secrets"),
        json!({"name": "/dba/bench/password", "value": "v0"}),
    )
    .await?;
    server::call(&http, TOKEN, reqwest::Method::POST, format!("{base}/v1/replication"),
         json!({"name": "bench", "kind": "copy", "source": "/dba/bench/", "destination": "/app/bench/"})).await?;
    let mut watch = http
        .get(format!("{base}/v1/watch"))
        .query(&[("prefix", "/app/bench/")])
        .bearer_auth(TOKEN)
        .send()
        .await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    tokio::spawn(async move {
        let mut buf = String::new();
        while let Ok(Some(bytes)) = watch.chunk().await {
            let now = Instant::now();
            buf.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                let data: String = frame
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                let Ok(event) = serde_json::from_str::<Value>(&data) else {
                    continue;
                };
                if event["kind"] == "replication.applied"
                    && let Some(v) = event["detail"]["version"].as_str()
                {
                    let _ = tx.send((v.to_string(), now));
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut lat = Vec::with_capacity(changes);
    for i in 0..changes {
        let version = format!("v{}", i + 1);
        let sent = Instant::now();
        server::call(
            &http,
            TOKEN,
            reqwest::Method::PUT,
            format!("{base}/v1/secrets//dba/bench/password"),
            json!({"value": format!("value-{i}"), "version_id": version}),
        )
        .await?;
        loop {
            let (v, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .context("no event within 10 s")?
                .context("watch stream ended")?;
            if v == version {
                lat.push((at - sent).as_secs_f64() * 1000.0);
                break;
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    Ok(Latency {
        changes,
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        max: percentile(&lat, 1.0),
    })
}

/// A receiver that answers 200 to every request and counts them.
async fn receiver(count: Arc<AtomicU64>) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + 4 + len);
                    count.fetch_add(1, Ordering::Relaxed);
                    if sock
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(url)
}

struct Delivery {
    deliveries: usize,
    seconds: f64,
    per_second: f64,
}

async fn webhook_throughput(server: &Server, n: usize) -> Result<Delivery> {
    let http = reqwest::Client::new();
    let base = server.url.clone();
    let count = Arc::new(AtomicU64::new(0));
    let url = receiver(count.clone()).await?;
    server::call(
        &http,
        TOKEN,
        reqwest::Method::POST,
        format!("{base}/v1/sys/subscriptions"),
        json!({"name": "bench-hook", "prefix": "/hooked/", "kinds": ["version.put"],
                "url": url}),
    )
    .await?;
    for w in 0..16 {
        server::call(
            &http,
            TOKEN,
            reqwest::Method::POST,
            format!("{base}/v1/secrets"),
            json!({"name": format!("/hooked/{w}"), "value": "v0"}),
        )
        .await?;
    }
    // The 16 creations each put a first version too.
    let expected = (n + 16) as u64;
    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..16 {
        let (http, base) = (http.clone(), base.clone());
        let per = n / 16 + usize::from(w < n % 16);
        writers.spawn(async move {
            for i in 0..per {
                server::call(
                    &http,
                    TOKEN,
                    reqwest::Method::PUT,
                    format!("{base}/v1/secrets//hooked/{w}"),
                    json!({"value": format!("value-{i}")}),
                )
                .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = writers.join_next().await {
        r??;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while count.load(Ordering::Relaxed) < expected {
        if Instant::now() > deadline {
            bail!(
                "only {} of {expected} deliveries arrived",
                count.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Delivery {
        deliveries: expected as usize,
        seconds,
        per_second: expected as f64 / seconds,
    })
}

struct Waiting {
    waiters: usize,
    alone: f64,
    with_waiters: f64,
}

/// Durable writes per second from 16 writers for `secs`.
async fn write_rate(server: &Server, secs: f64, round: usize) -> Result<f64> {
    let http = reqwest::Client::new();
    let base = server.url.clone();
    for w in 0..16 {
        server::call(
            &http,
            TOKEN,
            reqwest::Method::POST,
            format!("{base}/v1/secrets"),
            json!({"name": format!("/load/{round}/{w}"), "value": "v0"}),
        )
        .await?;
    }
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..16 {
        let (http, base, done) = (http.clone(), base.clone(), done.clone());
        writers.spawn(async move {
            let mut i = 0;
            while Instant::now() < until {
                server::call(
                    &http,
                    TOKEN,
                    reqwest::Method::PUT,
                    format!("{base}/v1/secrets//load/{round}/{w}"),
                    json!({"value": format!("value-{i}")}),
                )
                .await?;
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            anyhow::Ok(())
        });
    }
    let started = Instant::now();
    while let Some(r) = writers.join_next().await {
        r??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

async fn idle_waiters(server: &Server, waiters: usize, secs: f64) -> Result<Waiting> {
    let http = reqwest::Client::new();
    let base = server.url.clone();
    let alone = write_rate(server, secs, 0).await?;
    // Principals that may see nothing that is written, 50 waiters each (a principal
    // may hold 128 at once).
    let mut tokens = Vec::new();
    for p in 0..waiters.div_ceil(50) {
        let name = format!("idle-{p}");
        server::call(
            &http,
            TOKEN,
            reqwest::Method::POST,
            format!("{base}/v1/sys/principals"),
            json!({"name": name}),
        )
        .await?;
        server::call(&http, TOKEN, reqwest::Method::PUT, format!("{base}/v1/sys/policies/{name}"),
            json!({"statements": [{"effect": "allow", "capabilities": ["describe"], "paths": ["/nothing/**"]}]})).await?;
        server::call(
            &http,
            TOKEN,
            reqwest::Method::PUT,
            format!("{base}/v1/sys/principals/{name}/policies/{name}"),
            json!({}),
        )
        .await?;
        let t = server::call(
            &http,
            TOKEN,
            reqwest::Method::POST,
            format!("{base}/v1/sys/tokens"),
            json!({"principal": name}),
        )
        .await?;
        tokens.push(t["token"].as_str().context("token")?.to_string());
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut polls = tokio::task::JoinSet::new();
    for i in 0..waiters {
        let (http, base, stop) = (http.clone(), base.clone(), stop.clone());
        let token = tokens[i / 50].clone();
        polls.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = http
                    .get(format!("{base}/v1/events?wait=60"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                if let Ok(r) = r {
                    let _ = r.bytes().await;
                }
            }
        });
    }
    // Let every poll reach its wait.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let with_waiters = write_rate(server, secs, 1).await?;
    stop.store(true, Ordering::Relaxed);
    polls.abort_all();
    Ok(Waiting {
        waiters,
        alone,
        with_waiters,
    })
}

fn write(out_dir: &Path, l: &Latency, d: &Delivery, w: &Waiting) -> Result<()> {
    std::fs::create_dir_all(out_dir)?;
    let when = chrono::Utc::now().to_rfc3339();
    let md = format!(
        "# Change-event benchmark\n\nRun {when} on {cores} cores (shared, noisy), against `rotor server` with a durable SQLite store and the audit log on.\n\n\
| measure | value |\n| --- | --- |\n\
| source PutSecretValue → replica event at a watch client, {n} changes one at a time | p50 **{p50:.2} ms**, p99 **{p99:.2} ms**, max {max:.2} ms (target p99 < 100 ms) |\n\
| webhook deliveries, {dn} events from 16 writers, one subscription | **{dps:.0} deliveries/s** ({dn} in {secs:.2} s, writes included) |\n\
| durable writes/s from 16 writers, alone / with {wn} idle long polls waiting | {alone:.0} / {with:.0}: ratio **{ratio:.2}** (target ≥ 0.8) |\n",
        cores = std::thread::available_parallelism().map_or(0, |n| n.get()),
        n = l.changes,
        p50 = l.p50,
        p99 = l.p99,
        max = l.max,
        dn = d.deliveries,
        dps = d.per_second,
        secs = d.seconds,
        wn = w.waiters,
        alone = w.alone,
        with = w.with_waiters,
        ratio = w.with_waiters / w.alone,
    );
    std::fs::write(out_dir.join("events.md"), md)?;
    let j = json!({"run": when,
        "put_to_watch_ms": {"changes": l.changes, "p50": l.p50, "p99": l.p99, "max": l.max},
        "webhook": {"deliveries": d.deliveries, "seconds": d.seconds, "per_second": d.per_second},
        "idle_waiters": {"waiters": w.waiters, "writes_per_second_alone": w.alone,
            "writes_per_second_with_waiters": w.with_waiters, "ratio": w.with_waiters / w.alone}});
    std::fs::write(
        out_dir.join("events.json"),
        serde_json::to_string_pretty(&j)?,
    )?;
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace")?
        .to_path_buf();
    let rotor = args
        .rotor
        .clone()
        .unwrap_or_else(|| root.join("target/release/rotor"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut running = start(&rotor).await?;
        let server = &mut running.server;
        let l = put_to_watch(server, args.changes).await?;
        println!(
            "put → watch: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {}",
            l.p50, l.p99, l.max, l.changes
        );
        let d = webhook_throughput(server, args.deliveries).await?;
        println!(
            "webhooks: {:.0} deliveries/s ({} in {:.2} s)",
            d.per_second, d.deliveries, d.seconds
        );
        let w = idle_waiters(server, args.waiters, args.load_secs).await?;
        println!(
            "writes/s alone {:.0}, with {} idle waiters {:.0} (ratio {:.2})",
            w.alone,
            w.waiters,
            w.with_waiters,
            w.with_waiters / w.alone
        );
        let _ = server.child.kill().await;
        let out = args
            .out_dir
            .clone()
            .unwrap_or_else(|| root.join("bench/results"));
        write(&out, &l, &d, &w)?;
        println!("wrote {}", out.join("events.md").display());
        Ok(())
    })
}
