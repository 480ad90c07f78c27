//! Scale-out benchmark: native reads and durable writes against one SQLite node,
//! one PostgreSQL node, and three PostgreSQL nodes sharing one database, all in one
//! run so the figures compare. PostgreSQL is started from the installed packages
//! (rotor-testkit); the nodes are real `rotor server` processes.
//!
//! Writes bench/results/nodes.{md,json}.

#[allow(dead_code)] // nodes-bench uses only the starting part
mod server;

use anyhow::{Context, Result, bail};
use clap::Parser;
use rotor_testkit::PgServer;
use serde_json::json;
use server::Server;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "nodes-bench",
    about = "Reads and writes with 1 and 3 nodes on PostgreSQL, next to SQLite"
)]
struct Args {
    /// The rotor binary (build it with `cargo build --release -p rotor`).
    #[arg(long)]
    rotor: Option<PathBuf>,
    /// Seconds measured per scenario.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Concurrent readers.
    #[arg(long, default_value_t = 32)]
    readers: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Where results go.
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

const TOKEN: &str = "bench-nodes-root-token";
const MASTER_KEY: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

async fn node(rotor: &Path, data: &Path, storage: Option<&str>) -> Result<Server> {
    let mut cmd = tokio::process::Command::new(rotor);
    cmd.args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("ROTOR_ROOT_TOKEN", TOKEN)
        .env("ROTOR_ROOT_ACCESS_KEY_ID", "AKIDBENCHNODES")
        .env("ROTOR_ROOT_SECRET_ACCESS_KEY", "bench-nodes-secret")
        .env("ROTOR_MASTER_KEY", MASTER_KEY);
    if let Some(url) = storage {
        cmd.args(["--storage", url]);
    }
    server::start(cmd).await
}

#[derive(Clone, Copy)]
enum Kind {
    Read,
    Write,
}

/// Requests per second over `seconds` with `workers` spread over `urls`.
async fn load(urls: &[String], kind: Kind, workers: usize, seconds: f64) -> Result<f64> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(workers)
        .build()?;
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut jobs = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (http, done, failed, stop) = (http.clone(), done.clone(), failed.clone(), stop.clone());
        let base = urls[w % urls.len()].clone();
        jobs.spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let r = match kind {
                    Kind::Read => {
                        http.get(format!("{base}/v1/secrets/bench-read"))
                            .bearer_auth(TOKEN)
                            .send()
                            .await
                    }
                    Kind::Write => {
                        http.put(format!("{base}/v1/secrets/bench-write-{}", w % 8))
                            .bearer_auth(TOKEN)
                            .json(&json!({"value": format!("w{w}-{i}")}))
                            .send()
                            .await
                    }
                };
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds / 4.0)).await;
    let start = done.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let n = done.load(Ordering::Relaxed) - start;
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    while jobs.join_next().await.is_some() {}
    if failed.load(Ordering::Relaxed) > 0 {
        bail!("{} requests failed", failed.load(Ordering::Relaxed));
    }
    Ok(rate)
}

async fn setup(url: &str) -> Result<()> {
    let http = reqwest::Client::new();
    let mut names = vec!["bench-read".to_string()];
    names.extend((0..8).map(|i| format!("bench-write-{i}")));
    for name in names {
        let r = http
            .post(format!("{url}/v1/secrets"))
            .bearer_auth(TOKEN)
            .json(&json!({"name": name, "value": "x".repeat(64)}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("creating {name}: {}", r.status());
        }
    }
    Ok(())
}

struct Row {
    setup: &'static str,
    reads: f64,
    writes: f64,
}

async fn scenario(
    rotor: &Path,
    name: &'static str,
    storage: Option<&str>,
    nodes: usize,
    args: &Args,
) -> Result<Row> {
    let dir = tempfile::tempdir()?;
    let mut running = Vec::new();
    for i in 0..nodes {
        running.push(node(rotor, &dir.path().join(format!("n{i}")), storage).await?);
    }
    let urls: Vec<String> = running.iter().map(|n| n.url.clone()).collect();
    setup(&urls[0]).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reads = load(&urls, Kind::Read, args.readers, args.seconds).await?;
    let writes = load(&urls, Kind::Write, args.writers, args.seconds).await?;
    for mut n in running {
        let _ = n.child.kill().await;
    }
    println!("{name}: {reads:.0} reads/s, {writes:.0} writes/s");
    Ok(Row {
        setup: name,
        reads,
        writes,
    })
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
        let mut rows = vec![scenario(&rotor, "SQLite, 1 node", None, 1, &args).await?];
        for (name, nodes, db) in [("PostgreSQL, 1 node", 1, "one"), ("PostgreSQL, 3 nodes", 3, "three")] {
            let pg = PgServer::start()?;
            let admin = pg.url("postgres");
            let options: sqlx::postgres::PgConnectOptions = admin.parse()?;
            let mut c = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut c).await?;
            rows.push(scenario(&rotor, name, Some(&pg.url(db)), nodes, &args).await?);
        }
        let out = args.out_dir.clone().unwrap_or_else(|| root.join("bench/results"));
        std::fs::create_dir_all(&out)?;
        let when = chrono::Utc::now().to_rfc3339();
        let mut md = format!(
            "# Scale-out benchmark\n\nRun {when} on {} cores (shared, noisy): nodes, PostgreSQL and the load generator share them, so three nodes compete for the same two cores. {} readers and {} writers (native API, keep-alive), {:.0} s each, after a warm-up. Writes are durable (SQLite `synchronous=FULL`; PostgreSQL's defaults).\n\n| setup | reads/s | durable writes/s |\n| --- | --: | --: |\n",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            args.readers,
            args.writers,
            args.seconds
        );
        for r in &rows {
            md.push_str(&format!("| {} | {:.0} | {:.0} |\n", r.setup, r.reads, r.writes));
        }
        std::fs::write(out.join("nodes.md"), md)?;
        let j: Vec<_> = rows
            .iter()
            .map(|r| json!({"setup": r.setup, "reads_per_second": r.reads, "writes_per_second": r.writes}))
            .collect();
        std::fs::write(out.join("nodes.json"), serde_json::to_string_pretty(&json!({"run": when, "rows": j}))?)?;
        println!("wrote {}", out.join("nodes.md").display());
        Ok(())
    })
}
