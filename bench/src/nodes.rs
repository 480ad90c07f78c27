//! Scale-out benchmark: native reads and durable writes against one SQLite node,
//! one PostgreSQL node, and three PostgreSQL nodes sharing one database (forwarding
//! their puts to the writer node, and each committing its own), all in one run so
//! the figures compare; the PostgreSQL setups in alternating rounds. PostgreSQL is started from the installed packages
//! (rotor-testkit); the nodes are real `rotor server` processes.
//!
//! Writes bench/results/nodes.{md,json}.

mod cpu;
#[allow(dead_code)] // nodes-bench uses only part of each
mod load;
#[allow(dead_code)]
mod requests;
#[allow(dead_code)]
mod server;

use load::{MakeRequest, Plan};
use requests::Creds;
use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use clap::Parser;
use rotor_testkit::PgServer;
use serde_json::json;
use server::Server;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    #[arg(long, default_value_t = 64)]
    readers: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 64)]
    writers: usize,
    /// Secrets the writers write, round-robin: few means every commit of every node
    /// locks the same rows.
    #[arg(long, default_value_t = 8)]
    secrets: usize,
    /// Where results go.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Rounds of the PostgreSQL setups, one after the other in each (alternating
    /// order): a setup's row is its median round, and the ratio of three nodes to one
    /// is the median of the rounds' ratios.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

const TOKEN: &str = "bench-nodes-root-token";
const ACCESS_KEY_ID: &str = "AKIDBENCHNODES";
const SECRET_ACCESS_KEY: &str = "bench-nodes-secret";
const MASTER_KEY: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

async fn node(rotor: &Path, data: &Path, storage: Option<&str>, forward: bool) -> Result<Server> {
    let mut cmd = tokio::process::Command::new(rotor);
    cmd.args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("ROTOR_ROOT_TOKEN", TOKEN)
        .env("ROTOR_ROOT_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("ROTOR_ROOT_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env("ROTOR_MASTER_KEY", MASTER_KEY);
    if let Some(url) = storage {
        cmd.args(["--storage", url]);
    }
    if forward {
        cmd.args(["--cluster-listen", "127.0.0.1:0"]);
    }
    server::start(cmd).await
}

#[derive(Clone, Copy)]
enum Kind {
    Read,
    Write,
}

/// What one kind of load measured over all nodes.
struct Measured {
    rate: f64,
    p99_ms: f64,
    /// Cores busy during the load (warm-up included): the Rotor nodes, PostgreSQL's
    /// processes, the load generator.
    cores: Cores,
}

/// Cores used, on average, by each party to a load.
#[derive(Default, Clone, Copy)]
struct Cores {
    rotor: f64,
    postgres: f64,
    load: f64,
}

/// CPU seconds used so far by the nodes `pids`, by PostgreSQL, and by this process.
fn cpu_now(pids: &[u32]) -> Cores {
    Cores {
        rotor: pids.iter().map(|&p| cpu::process_secs(p)).sum(),
        postgres: cpu::named_secs("postgres"),
        load: cpu::own_secs(),
    }
}

impl Cores {
    /// Cores used from `before` to `after` over `secs`.
    fn between(before: Cores, after: Cores, secs: f64) -> Cores {
        Cores {
            rotor: (after.rotor - before.rotor) / secs,
            postgres: (after.postgres - before.postgres) / secs,
            load: (after.load - before.load) / secs,
        }
    }
}

/// `workers` keep-alive connections spread over the nodes at `addrs` (hyper's client,
/// one request in flight each, as the store API benchmark loads one server): native
/// reads, or AWS `PutSecretValue`s each with a fresh token and signature, round-robin
/// round-robin over `secrets` secrets. Requests per second summed over the nodes, p99
/// over them all.
async fn load(
    addrs: &[SocketAddr],
    pids: &[u32],
    kind: Kind,
    workers: usize,
    secrets: usize,
    seconds: f64,
) -> Result<Measured> {
    let (started, before) = (std::time::Instant::now(), cpu_now(pids));
    let creds = Creds {
        token: TOKEN.to_string(),
        access_key_id: ACCESS_KEY_ID.to_string(),
        secret_access_key: SECRET_ACCESS_KEY.to_string(),
    };
    let mut runs = tokio::task::JoinSet::new();
    for (n, addr) in addrs.iter().copied().enumerate() {
        let connections = workers / addrs.len() + usize::from(n < workers % addrs.len());
        let plan = Plan {
            connections,
            warmup: Duration::from_secs_f64(seconds / 4.0),
            measure: Duration::from_secs_f64(seconds),
            max_requests: u64::MAX,
            request_timeout: Duration::from_secs(10),
            rate: None,
        };
        let make: MakeRequest = match kind {
            Kind::Read => requests::native_read(addr, TOKEN, "bench-read").into_maker(),
            Kind::Write => {
                let creds = creds.clone();
                Arc::new(move |i| {
                    requests::aws_put(
                        addr,
                        &creds,
                        &format!("bench-write-{}", i % secrets as u64),
                        i,
                    )
                    .request()
                })
            }
        };
        runs.spawn(load::run(addr, make, plan));
    }
    let (mut rate, mut latencies) = (0.0, Vec::new());
    while let Some(run) = runs.join_next().await {
        let run = run?;
        if run.errors > 0 {
            bail!("{} requests failed: {:?}", run.errors, run.first_error);
        }
        rate += run.rps();
        latencies.extend(run.latencies_ns);
    }
    let cores = Cores::between(before, cpu_now(pids), started.elapsed().as_secs_f64());
    latencies.sort_unstable();
    let p99_ms = latencies
        .get((latencies.len().saturating_sub(1) as f64 * 0.99) as usize)
        .map_or(0.0, |ns| *ns as f64 / 1e6);
    Ok(Measured {
        rate,
        p99_ms,
        cores,
    })
}

async fn setup(url: &str, secrets: usize) -> Result<()> {
    let http = reqwest::Client::new();
    let mut names = vec!["bench-read".to_string()];
    names.extend((0..secrets).map(|i| format!("bench-write-{i}")));
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
    reads: Measured,
    writes: Measured,
    commits: Commits,
}

/// The group commits of the write load, summed over the nodes, from their
/// `rotor_store_commit_*` metrics.
#[derive(Default, Clone, Copy)]
struct Commits {
    count: f64,
    mutations: f64,
    seconds: f64,
}

impl Commits {
    /// The commits' totals the nodes at `urls` report now.
    async fn now(urls: &[String]) -> Commits {
        let mut total = Commits::default();
        for url in urls {
            let Ok(r) = reqwest::get(format!("{url}/metrics")).await else {
                continue;
            };
            let text = r.text().await.unwrap_or_default();
            let sum = |name: &str| -> f64 {
                text.lines()
                    .filter(|l| l.starts_with(name))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum()
            };
            total.count += sum("rotor_store_commit_mutations_count");
            total.mutations += sum("rotor_store_commit_mutations_sum");
            total.seconds += sum("rotor_store_commit_seconds_sum");
        }
        total
    }

    fn since(self, before: Commits) -> Commits {
        Commits {
            count: self.count - before.count,
            mutations: self.mutations - before.mutations,
            seconds: self.seconds - before.seconds,
        }
    }

    /// Writes per commit, on average.
    fn per_commit(&self) -> f64 {
        self.mutations / self.count.max(1.0)
    }

    /// Milliseconds per commit, on average.
    fn commit_ms(&self) -> f64 {
        self.seconds * 1e3 / self.count.max(1.0)
    }
}

async fn scenario(
    rotor: &Path,
    name: &'static str,
    storage: Option<&str>,
    nodes: usize,
    forward: bool,
    args: &Args,
) -> Result<Row> {
    let dir = tempfile::tempdir()?;
    let mut running = Vec::new();
    for i in 0..nodes {
        let data = dir.path().join(format!("n{i}"));
        running.push(node(rotor, &data, storage, forward).await?);
    }
    let urls: Vec<String> = running.iter().map(|n| n.url.clone()).collect();
    let addrs = urls
        .iter()
        .map(|u| {
            let host = u.trim_start_matches("http://").trim_end_matches('/');
            host.parse::<SocketAddr>()
                .with_context(|| format!("node address {u}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let pids: Vec<u32> = running.iter().filter_map(|n| n.child.id()).collect();
    setup(&urls[0], args.secrets).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reads = load(&addrs, &pids, Kind::Read, args.readers, 1, args.seconds).await?;
    let before = Commits::now(&urls).await;
    let writes = load(
        &addrs,
        &pids,
        Kind::Write,
        args.writers,
        args.secrets,
        args.seconds,
    )
    .await?;
    let commits = Commits::now(&urls).await.since(before);
    for mut n in running {
        let _ = n.child.kill().await;
    }
    println!(
        "{name}: {:.0} reads/s, {:.0} writes/s (p99 {:.1} ms; cores: rotor {:.2}, postgres {:.2}, load {:.2}; {:.1} writes a commit, {:.2} ms a commit)",
        reads.rate,
        writes.rate,
        writes.p99_ms,
        writes.cores.rotor,
        writes.cores.postgres,
        writes.cores.load,
        commits.per_commit(),
        commits.commit_ms()
    );
    Ok(Row {
        setup: name,
        reads,
        writes,
        commits,
    })
}

/// The middle of `values` (the mean of the two middle ones when even).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The run of a setup with the median write rate (the lower middle when even).
fn median_run(mut runs: Vec<Row>) -> Row {
    runs.sort_by(|a, b| a.writes.rate.total_cmp(&b.writes.rate));
    let middle = (runs.len().max(1) - 1) / 2;
    runs.swap_remove(middle)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.secrets == 0 || args.readers == 0 || args.writers == 0 {
        bail!("--secrets, --readers and --writers must be at least 1");
    }
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
        let mut rows = vec![scenario(&rotor, "SQLite, 1 node", None, 1, false, &args).await?];
        let setups = [
            ("PostgreSQL, 1 node", 1, false),
            ("PostgreSQL, 3 nodes, puts forwarded to the writer", 3, true),
            ("PostgreSQL, 3 nodes, each committing its own", 3, false),
        ];
        let pg = PgServer::start()?;
        let admin = pg.url("postgres");
        let options: sqlx::postgres::PgConnectOptions = admin.parse()?;
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await?;
        // Each round's setups in alternating order, each on a fresh database.
        let mut runs: Vec<Vec<Row>> = setups.iter().map(|_| Vec::new()).collect();
        for round in 0..args.rounds.max(1) {
            let mut order: Vec<usize> = (0..setups.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let (name, nodes, forward) = setups[i];
                let db = format!("round{round}_{i}");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut c).await?;
                runs[i].push(scenario(&rotor, name, Some(&pg.url(&db)), nodes, forward, &args).await?);
            }
        }
        let rates = |i: usize| runs[i].iter().map(|r| r.writes.rate).collect::<Vec<f64>>();
        let ratios: Vec<f64> = rates(1).iter().zip(rates(0)).map(|(three, one)| three / one.max(1.0)).collect();
        let apart: Vec<f64> = rates(2).iter().zip(rates(0)).map(|(three, one)| three / one.max(1.0)).collect();
        for setup in runs {
            rows.push(median_run(setup));
        }
        let out = args.out_dir.clone().unwrap_or_else(|| root.join("bench/results"));
        std::fs::create_dir_all(&out)?;
        let when = chrono::Utc::now().to_rfc3339();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let mut md = format!(
            "# Scale-out benchmark\n\nRun {when} on {} cores (shared, noisy; load average at the start: {}): nodes, PostgreSQL and the load generator share them, so three nodes compete for the same two cores. {} readers (native `GET`) and {} writers (AWS `PutSecretValue`, each with a fresh token and signature, round-robin over {} secrets), keep-alive connections spread evenly over the nodes, {:.0} s each after a warm-up. Writes are durable (SQLite `synchronous=FULL`; PostgreSQL's defaults, `synchronous_commit = on`). Where the cores went during the writes (warm-up included): CPU time of the Rotor nodes, of PostgreSQL's processes and of the load generator, per second and per write; and how many writes each group commit carried and how long a commit took (the nodes' `rotor_store_commit_*` metrics, summed over the nodes).\n\n| setup | reads/s | read p99 (ms) | durable writes/s | write p99 (ms) | cores: Rotor / PostgreSQL / load | CPU µs per write: Rotor / PostgreSQL / load | writes per commit | ms per commit |\n| --- | --: | --: | --: | --: | --: | --: | --: | --: |\n",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
            args.readers,
            args.writers,
            args.secrets,
            args.seconds
        );
        for r in &rows {
            let (w, c) = (&r.writes, r.writes.cores);
            let per_write = |cores: f64| cores / w.rate.max(1.0) * 1e6;
            md.push_str(&format!(
                "| {} | {:.0} | {:.1} | {:.0} | {:.1} | {:.2} / {:.2} / {:.2} | {:.0} / {:.0} / {:.0} | {:.1} | {:.2} |\n",
                r.setup,
                r.reads.rate,
                r.reads.p99_ms,
                w.rate,
                w.p99_ms,
                c.rotor,
                c.postgres,
                c.load,
                per_write(c.rotor),
                per_write(c.postgres),
                per_write(c.load),
                r.commits.per_commit(),
                r.commits.commit_ms()
            ));
        }
        let one = rows[1].writes.rate;
        let ratio = median(&ratios);
        let shown = |v: &[f64]| v.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", ");
        md.push_str(&format!(
            "\nEach PostgreSQL row is the median of {} rounds (by writes/s); the setups ran one after the other in each round, in alternating order. Writes of three nodes / one node, each round: forwarded {} (median {:.2}); each committing its own {} (median {:.2}).\n",
            args.rounds.max(1),
            shown(&ratios),
            ratio,
            shown(&apart),
            median(&apart)
        ));
        let checks = [
            (
                format!("PostgreSQL, 1 node, {} writers", args.writers),
                format!("{one:.0}/s"),
                "≥ 5,000/s",
                one >= 5000.0,
            ),
            (
                "PostgreSQL, 3 nodes (forwarding) / 1 node (writes, median of the rounds)".to_string(),
                format!("{ratio:.2}"),
                "≥ 1.00",
                ratio >= 1.0,
            ),
        ];
        md.push_str("\n| target | measured | wanted | met |\n| --- | --: | --: | --- |\n");
        for (what, measured, wanted, met) in &checks {
            md.push_str(&format!(
                "| {what} | {measured} | {wanted} | {} |\n",
                if *met { "yes" } else { "**no**" }
            ));
        }
        std::fs::write(out.join("nodes.md"), md)?;
        let j: Vec<_> = rows
            .iter()
            .map(|r| json!({"setup": r.setup, "reads_per_second": r.reads.rate, "read_p99_ms": r.reads.p99_ms, "writes_per_second": r.writes.rate, "write_p99_ms": r.writes.p99_ms, "write_cores": {"rotor": r.writes.cores.rotor, "postgres": r.writes.cores.postgres, "load": r.writes.cores.load}, "writes_per_commit": r.commits.per_commit(), "ms_per_commit": r.commits.commit_ms()}))
            .collect();
        let met: Vec<_> = checks
            .iter()
            .map(|(what, measured, wanted, met)| json!({"target": what, "measured": measured, "wanted": wanted, "met": met}))
            .collect();
        std::fs::write(
            out.join("nodes.json"),
            serde_json::to_string_pretty(&json!({"run": when, "readers": args.readers, "writers": args.writers, "secrets": args.secrets, "rows": j, "targets": met, "rounds": args.rounds.max(1), "ratios_forwarded": ratios, "ratios_apart": apart}))?,
        )?;
        println!("wrote {}", out.join("nodes.md").display());
        Ok(())
    })
}
