//! Agent benchmark against a real `rotor server` (persistent: durable SQLite, audit
//! on) and a real `rotor agent` process:
//!
//! - **put → rendered file**: the agent renders one template of one secret to a file.
//!   For each of N changes, one at a time, the time from sending PutSecretValue
//!   (native API) to the file holding the new content, watched by reading it every
//!   quarter millisecond. The agent learns of the change from the watch stream,
//!   fetches the value, renders, and replaces the file (temporary file, fsync,
//!   rename, fsync of the directory).
//!
//! Writes bench/results/agent.{md,json}.

mod server;

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::json;
use server::{Server, percentile};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "agent-bench",
    about = "Put-to-rendered-file latency of rotor agent"
)]
struct Args {
    /// The rotor binary (build it with `cargo build --release -p rotor`).
    #[arg(long)]
    rotor: Option<PathBuf>,
    /// Changes measured one at a time.
    #[arg(long, default_value_t = 300)]
    changes: usize,
    /// Where results go.
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

const TOKEN: &str = "bench-agent-root-token";
const SECRET: &str = "/app/bench/db";

async fn start_server(rotor: &Path, dir: &Path) -> Result<Server> {
    let mut cmd = tokio::process::Command::new(rotor);
    cmd.args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .env("ROTOR_ROOT_TOKEN", TOKEN)
        .env("ROTOR_ROOT_ACCESS_KEY_ID", "AKIDBENCHAGENT")
        .env("ROTOR_ROOT_SECRET_ACCESS_KEY", "bench-agent-secret");
    server::start(cmd).await
}

struct Latency {
    changes: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

fn content(i: usize) -> String {
    format!("password=value-{i}\n")
}

/// Waits until `path` holds `want`, reading it every quarter millisecond; returns
/// when it did.
async fn until_file(path: &Path, want: &str, within: Duration) -> Result<Instant> {
    let deadline = Instant::now() + within;
    loop {
        if tokio::fs::read_to_string(path)
            .await
            .is_ok_and(|s| s == want)
        {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not become {want:?} within {within:?}",
                path.display()
            );
        }
        tokio::time::sleep(Duration::from_micros(250)).await;
    }
}

async fn put_to_file(rotor: &Path, server: &Server, dir: &Path, changes: usize) -> Result<Latency> {
    let http = reqwest::Client::new();
    let base = &server.url;
    server::call(
        &http,
        TOKEN,
        reqwest::Method::POST,
        format!("{base}/v1/secrets"),
        json!({"name": SECRET, "value": "value-0"}),
    )
    .await?;
    let out = dir.join("out/app.conf");
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        r#"[[template]]
contents = """
password={{ secret("{vault://rotor/%2Fapp%2Fbench%2Fdb}") }}
"""
destination = "out/app.conf"
mode = "0600"
"#,
    )?;
    let mut agent = tokio::process::Command::new(rotor)
        .args(["agent", "--config"])
        .arg(&config)
        .env("ROTOR_ADDR", base)
        .env("ROTOR_TOKEN", TOKEN)
        .env("ROTOR_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("agent.log"))?)
        .kill_on_drop(true)
        .spawn()
        .context("starting rotor agent")?;
    until_file(&out, &content(0), Duration::from_secs(30))
        .await
        .context("the agent's first render")?;
    let mut lat = Vec::with_capacity(changes);
    for i in 1..=changes {
        let sent = Instant::now();
        server::call(
            &http,
            TOKEN,
            reqwest::Method::PUT,
            format!("{base}/v1/secrets/{}", SECRET.replace('/', "%2F")),
            json!({"value": format!("value-{i}"), "version_id": format!("v{i}")}),
        )
        .await?;
        let seen = until_file(&out, &content(i), Duration::from_secs(10))
            .await
            .with_context(|| {
                format!(
                    "change {i}; agent log:\n{}",
                    std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
                )
            })?;
        lat.push((seen - sent).as_secs_f64() * 1000.0);
    }
    let _ = agent.kill().await;
    lat.sort_by(f64::total_cmp);
    Ok(Latency {
        changes,
        p50: percentile(&lat, 0.5),
        p90: percentile(&lat, 0.9),
        p99: percentile(&lat, 0.99),
        max: percentile(&lat, 1.0),
    })
}

fn write(out_dir: &Path, l: &Latency, load: &str) -> Result<()> {
    std::fs::create_dir_all(out_dir)?;
    let when = chrono::Utc::now().to_rfc3339();
    let verdict = if l.p99 < 500.0 { "met" } else { "missed" };
    let md = format!(
        "# Agent benchmark\n\nRun {when} on {cores} cores (shared, noisy; load average {load} at the start): `rotor server` with a durable SQLite store and the audit log on, and a `rotor agent` process rendering one template of one secret.\n\n\
| measure | value |\n| --- | --- |\n\
| PutSecretValue sent → rendered file holds the new value, {n} changes one at a time | p50 **{p50:.2} ms**, p90 {p90:.2} ms, p99 **{p99:.2} ms**, max {max:.2} ms (target p99 < 500 ms: {verdict}; Kong refreshes once a minute) |\n\n\
The time includes the put's durable commit, the watch event, the agent's fetch of the value, the render, and the atomic replacement of the file (temporary file, fsync, rename, fsync of the directory); the file is read every 0.25 ms.\n",
        cores = std::thread::available_parallelism().map_or(0, |n| n.get()),
        n = l.changes,
        p50 = l.p50,
        p90 = l.p90,
        p99 = l.p99,
        max = l.max,
    );
    std::fs::write(out_dir.join("agent.md"), md)?;
    let j = json!({"run": when, "load_average": load,
        "put_to_file_ms": {"changes": l.changes, "p50": l.p50, "p90": l.p90, "p99": l.p99, "max": l.max},
        "target_p99_ms": 500, "target_met": l.p99 < 500.0});
    std::fs::write(
        out_dir.join("agent.json"),
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
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default();
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        let mut server = start_server(&rotor, dir.path()).await?;
        let l = put_to_file(&rotor, &server, dir.path(), args.changes).await?;
        println!(
            "put → rendered file: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {}",
            l.p50, l.p90, l.p99, l.max, l.changes
        );
        let _ = server.child.kill().await;
        let out = args
            .out_dir
            .clone()
            .unwrap_or_else(|| root.join("bench/results"));
        write(&out, &l, &load)?;
        println!("wrote {}", out.join("agent.md").display());
        Ok(())
    })
}
