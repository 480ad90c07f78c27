//! Growth benchmark (issue 18): how a persistent server's costs grow with the number
//! of secrets it holds. For each size, a durable SQLite data directory with that many
//! secrets, then a real `rotor server --config rotor.toml` (audit log on) on a copy of
//! it, and: start-up time, resident memory, native reads of random secrets across the
//! whole set, and a ListSecrets filtered down to one service's secrets.
//!
//! The data is written in-process through [`SecretService::create`], the code path
//! the server's CreateSecret runs, with the data directory's own master key, after one
//! start of the real server on the empty directory made its schema, master key and
//! root principal. Sizes grow one from the other (10,000, then 90,000 more, ...).
//!
//! Writes bench/results/growth.{md,json}. Exit status: 0 when every target is met, 2
//! when one is missed or a measurement had errors (results still written), 1 when the
//! harness failed.

#[allow(dead_code)] // the growth bench uses one process's time only
mod cpu;
#[allow(dead_code)] // the growth bench uses the run and the single request only
mod load;
#[allow(dead_code)] // and a few of the requests
mod requests;
#[allow(dead_code)] // and the starting part
mod server;

use anyhow::{Context, Result, bail};
use clap::Parser;
use load::{MakeRequest, Outcome, Plan};
use requests::Creds;
use rotor_core::clock::SystemClock;
use rotor_core::model::Tag;
use rotor_core::value::SecretValue;
use rotor_crypto::MasterKey;
use rotor_engine::{Caller, CreateSecret, DEFAULT_ACCOUNT_ID, PutValue, SecretService};
use rotor_store::sqlite::SqliteStore;
use serde::Serialize;
use server::Server;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "growth-bench",
    about = "Start-up, memory, read latency and a filtered ListSecrets at growing numbers of secrets"
)]
struct Args {
    /// Numbers of secrets, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    sizes: Vec<u64>,
    /// The rotor binary (default: target/release/rotor in the workspace).
    #[arg(long)]
    rotor: Option<PathBuf>,
    /// Keep the populated data directories here and reuse them on the next run
    /// (default: a temporary directory, removed at the end).
    #[arg(long)]
    keep_data: Option<PathBuf>,
    /// Replication rules in the data, as an operator sharing secrets between
    /// namespaces has: each a prefix copy of a few secrets, /dba/shared-K/ to
    /// /app/shared-K/, made through the API on the new directory.
    #[arg(long, default_value_t = 1)]
    rules: usize,
    /// Concurrent creates while populating (they share the writer's group commits).
    #[arg(long, default_value_t = 512)]
    populate_tasks: usize,
    /// Bytes of each secret's value.
    #[arg(long, default_value_t = 200)]
    value_size: usize,
    /// Seconds the idle server is left alone after start-up before the reads.
    #[arg(long, default_value_t = 3.0)]
    settle_secs: f64,
    /// Measured seconds of the read load.
    #[arg(long, default_value_t = 10.0)]
    read_secs: f64,
    /// Unmeasured seconds of the read load before that.
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// Keep-alive connections of the read load.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Reads per second of the paced read load (on the same connections), whose p99
    /// is a read's latency at a steady rate every size can serve; the saturating
    /// load's p99 is mostly the wait in line behind 63 other requests.
    #[arg(long, default_value_t = 2000.0)]
    paced_rate: f64,
    /// ListSecrets calls of each kind, one at a time.
    #[arg(long, default_value_t = 200)]
    list_requests: u64,
    /// Longest the ListSecrets calls of one kind may take together, in seconds.
    #[arg(long, default_value_t = 120.0)]
    list_secs: f64,
    /// The markdown results; the JSON goes beside it (default: bench/results/growth.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Secrets per service namespace: a name filter on one service matches this many at
/// every size, so the listing's answer stays the same while the store grows.
const PER_SERVICE: u64 = 100;
/// Sources under each replication rule's prefix.
const PER_RULE: usize = 10;
const TOKEN: &str = "bench-growth-root-token";
const ACCESS_KEY_ID: &str = "AKIDBENCHGROWTH00001";
const SECRET_ACCESS_KEY: &str = "bench-growth-secret-access-key";
/// Mixed into the paced reads' request numbers, so that they read other secrets than
/// the saturating load did just before.
const PACED: u64 = 0x5eed_0f9a;
/// Targets: read p99 at the largest size at most this many times the smallest's.
const READ_P99_GROWTH_MAX: f64 = 2.0;
/// Start-up (spawn to /healthz answering) under this many seconds at every size.
const STARTUP_MAX_SECS: f64 = 2.0;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ is inside the workspace")
        .to_path_buf()
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("growth-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Measures every size and writes the results; `Ok(false)` when a target is missed.
fn run(mut args: Args) -> Result<bool> {
    args.sizes.sort_unstable();
    args.sizes.dedup();
    if args.sizes.is_empty() || args.sizes[0] < PER_SERVICE {
        bail!("--sizes needs at least one size of {PER_SERVICE} or more");
    }
    if args.connections == 0 || args.populate_tasks == 0 || args.list_requests == 0 {
        bail!("--connections, --populate-tasks and --list-requests must be at least 1");
    }
    if !(args.paced_rate.is_finite() && args.paced_rate > 0.0) {
        bail!("--paced-rate must be a positive number of reads a second");
    }
    let rotor = args
        .rotor
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/release/rotor"));
    if !rotor.is_file() {
        bail!(
            "no rotor binary at {} (cargo build --release -p rotor)",
            rotor.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let (tmp, root) = match &args.keep_data {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("create {dir:?}"))?;
            (None, dir.clone())
        }
        None => {
            let tmp = tempfile::Builder::new()
                .prefix("rotor-growth-")
                .tempdir()
                .context("temporary directory")?;
            let root = tmp.path().to_path_buf();
            (Some(tmp), root)
        }
    };
    let started = chrono::Utc::now().to_rfc3339();
    let loadavg_at_start = loadavg();
    let mut rows = Vec::new();
    for &size in &args.sizes {
        let row = runtime.block_on(measure_size(&args, &rotor, &root, size))?;
        rows.push(row);
    }
    drop(tmp);

    let report = Report {
        started,
        finished: chrono::Utc::now().to_rfc3339(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        loadavg_at_start,
        loadavg_at_end: loadavg(),
        git: git_describe(),
        rotor: rotor.display().to_string(),
        per_service: PER_SERVICE,
        replication_rules: args.rules,
        value_bytes: args.value_size,
        connections: args.connections,
        read_secs: args.read_secs,
        paced_rate: args.paced_rate,
        targets: targets(&rows),
        rows,
    };
    let md_path = args
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("bench/results/growth.md"));
    let json_path = md_path.with_extension("json");
    if let Some(dir) = md_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {dir:?}"))?;
    }
    let md = markdown(&report);
    println!("\n{md}");
    std::fs::write(&md_path, &md).with_context(|| format!("write {md_path:?}"))?;
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("write {json_path:?}"))?;
    eprintln!("wrote {} and {}", md_path.display(), json_path.display());
    let clean = report.rows.iter().all(|r| r.errors == 0);
    let met = report.targets.iter().all(|t| t.met);
    if !clean {
        eprintln!("growth-bench: some requests failed");
    }
    if !met {
        eprintln!("growth-bench: a target was missed");
    }
    Ok(clean && met)
}

/// One size's figures.
#[derive(Debug, Clone, Serialize)]
struct Row {
    secrets: u64,
    /// Seconds spent adding secrets for this size (0 when reused from --keep-data).
    populate_secs: f64,
    /// The database's size on disk (with its WAL), in MB.
    db_mb: f64,
    /// Spawn to the `rotor listening on` line.
    listening_secs: f64,
    /// Spawn to `GET /healthz` answering 200.
    startup_secs: f64,
    /// Spawn to the first successful read of a secret.
    first_read_secs: f64,
    /// VmRSS when /healthz first answers.
    rss_ready_mb: f64,
    /// VmRSS after the idle settle time.
    rss_start_mb: f64,
    /// VmRSS after the read load.
    rss_after_load_mb: f64,
    /// VmHWM (peak VmRSS) when the measurements end.
    rss_peak_mb: f64,
    /// RssAnon (the process's own memory, without pages of files it maps: SQLite's
    /// readers map the database, whose pages are the kernel's page cache) after the
    /// read load.
    private_after_load_mb: f64,
    /// CPU seconds (user + system) the server used from spawn to the end of the settle
    /// time: start-up plus whatever background work it began with.
    cpu_start_secs: f64,
    reads: Latency,
    /// The same reads at `--paced-rate` a second.
    paced: Latency,
    /// AWS `ListSecrets` with a `name` filter on one service's prefix.
    aws_list: Latency,
    /// Native `GET /v1/secrets?prefix=` of one service's prefix.
    native_list: Latency,
    /// Failed requests of any measurement.
    errors: u64,
}

/// Latency figures of one measurement.
#[derive(Debug, Clone, Default, Serialize)]
struct Latency {
    requests: u64,
    per_sec: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
    errors: u64,
    first_error: Option<String>,
}

impl Latency {
    fn of(out: &Outcome) -> Self {
        Latency {
            requests: out.ok,
            per_sec: out.rps(),
            p50_ms: out.quantile_ms(0.50),
            p99_ms: out.quantile_ms(0.99),
            max_ms: out.quantile_ms(1.0),
            errors: out.errors,
            first_error: out.first_error.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Target {
    name: String,
    /// What was measured, in words.
    measured: String,
    met: bool,
}

#[derive(Debug, Clone, Serialize)]
struct Report {
    started: String,
    finished: String,
    cores: usize,
    /// `/proc/loadavg` (1, 5, 15 min) when the run started and ended.
    loadavg_at_start: Option<String>,
    loadavg_at_end: Option<String>,
    git: Option<String>,
    rotor: String,
    per_service: u64,
    /// Replication rules in the data, each over [`PER_RULE`] sources.
    replication_rules: usize,
    value_bytes: usize,
    connections: usize,
    read_secs: f64,
    paced_rate: f64,
    rows: Vec<Row>,
    targets: Vec<Target>,
}

/// The name of secret `i`: a hundred secrets per service, numbered across services.
fn secret_name(i: u64) -> String {
    format!("/app/svc{:05}/secret-{i:07}", i / PER_SERVICE)
}

/// The name filter matching service `s`'s secrets and no other's.
fn service_prefix(s: u64) -> String {
    format!("/app/svc{s:05}/")
}

/// A well-mixed 64-bit function of `x` (splitmix64), for picking secrets at random
/// without a generator to share between connections.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What secret `i` is created with: every tenth has a description and a team tag.
fn secret_spec(i: u64, value_size: usize) -> Result<CreateSecret> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut seed = mix(i);
    let value: String = (0..value_size)
        .map(|_| {
            seed = mix(seed);
            ALPHABET[(seed % ALPHABET.len() as u64) as usize] as char
        })
        .collect();
    let service = i / PER_SERVICE;
    let described = i.is_multiple_of(10);
    Ok(CreateSecret {
        name: secret_name(i),
        region: requests::REGION.to_string(),
        description: described.then(|| format!("database credential of svc{service:05}")),
        value: Some(SecretValue::string(value)?),
        tags: if described {
            vec![Tag {
                key: "team".into(),
                value: format!("team-{}", service % 50),
            }]
        } else {
            Vec::new()
        },
        ..Default::default()
    })
}

/// Makes (or reuses) the data directory with `size` secrets, measures a server on a
/// copy of it, and removes the copy.
async fn measure_size(args: &Args, rotor: &Path, root: &Path, size: u64) -> Result<Row> {
    let (populated, populate_secs) = populated_dir(args, rotor, root, size).await?;
    let run = root.join("run");
    if run.exists() {
        std::fs::remove_dir_all(&run).with_context(|| format!("remove {run:?}"))?;
    }
    eprintln!("{size} secrets: copying the data directory for the run");
    copy_dir(&populated.join("data"), &run.join("data"))?;
    let db_mb = ["rotor.db", "rotor.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(run.join("data").join(f)).ok())
        .map(|m| m.len() as f64 / 1e6)
        .sum();
    let row = measure_server(args, rotor, &run, size, populate_secs, db_mb).await;
    std::fs::remove_dir_all(&run).with_context(|| format!("remove {run:?}"))?;
    row
}

/// The directory holding `size` secrets: kept from an earlier run, grown from the
/// largest smaller one, or made from nothing. Returns it and the seconds spent adding.
async fn populated_dir(
    args: &Args,
    rotor: &Path,
    root: &Path,
    size: u64,
) -> Result<(PathBuf, f64)> {
    let dir = root.join(format!("secrets-{size}"));
    if populated(&dir) == Some((size, args.rules)) {
        eprintln!("{size} secrets: reusing {}", dir.display());
        return Ok((dir, 0.0));
    }
    let partial = root.join(format!("secrets-{size}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).with_context(|| format!("remove {partial:?}"))?;
    }
    // The largest complete smaller size to grow from: moved when the directories are
    // temporary, copied when they are kept.
    let smaller = std::fs::read_dir(root)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| populated(&p).map(|made| (made, p)))
        .filter(|((n, rules), _)| *n < size && *rules == args.rules)
        .map(|((n, _), p)| (n, p))
        .max_by_key(|(n, _)| *n);
    let from = match smaller {
        Some((n, p)) if args.keep_data.is_some() => {
            eprintln!("{size} secrets: copying the {n} of {}", p.display());
            copy_dir(&p.join("data"), &partial.join("data"))?;
            n
        }
        Some((n, p)) => {
            std::fs::rename(&p, &partial).with_context(|| format!("move {p:?}"))?;
            std::fs::remove_file(partial.join("populated"))?;
            n
        }
        None => {
            // The server itself makes a new data directory: schema, master key, the root
            // principal with the bench's credentials; and the replication rules.
            let mut server = start_server(rotor, &partial).await?;
            let made = replication_rules(&server, args.rules).await;
            stop(&mut server).await;
            made.context("setting up the new data directory")?;
            0
        }
    };
    let began = Instant::now();
    populate(&partial.join("data"), from, size, args).await?;
    let secs = began.elapsed().as_secs_f64();
    std::fs::write(partial.join("populated"), format!("{size} {}", args.rules))?;
    std::fs::rename(&partial, &dir).with_context(|| format!("rename {partial:?}"))?;
    Ok((dir, secs))
}

/// How many secrets and replication rules a complete populated directory holds (its
/// `populated` marker).
fn populated(dir: &Path) -> Option<(u64, usize)> {
    let marker = std::fs::read_to_string(dir.join("populated")).ok()?;
    let (secrets, rules) = marker.trim().split_once(' ')?;
    Some((secrets.parse().ok()?, rules.parse().ok()?))
}

/// Makes `rules` prefix copy rules on a new server, each over [`PER_RULE`] sources,
/// through the native API (which checks the root token too).
async fn replication_rules(server: &Server, rules: usize) -> Result<()> {
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        server::call(
            &http,
            TOKEN,
            reqwest::Method::POST,
            format!("{}{path}", server.url),
            body,
        )
    };
    for k in 0..rules {
        for j in 0..PER_RULE {
            post(
                "/v1/secrets",
                serde_json::json!({"name": format!("/dba/shared-{k}/db-{j}"), "value": format!("shared-{k}-{j}")}),
            )
            .await
            .context("creating a replication source")?;
        }
        post(
            "/v1/replication",
            serde_json::json!({
                "name": format!("shared-{k}"),
                "kind": "copy",
                "source": format!("/dba/shared-{k}/"),
                "destination": format!("/app/shared-{k}/"),
            }),
        )
        .await
        .context("adding a replication rule")?;
    }
    Ok(())
}

/// Adds secrets `from..to` to the store in `data` through the service the server
/// runs, with the directory's master key: each created without a value, then given
/// its value as `AWSCURRENT`, as CreateSecret then PutSecretValue would. Many at once,
/// so that they share commits; the puts, arriving together, are applied in runs.
async fn populate(data: &Path, from: u64, to: u64, args: &Args) -> Result<()> {
    eprintln!("populating secrets {from}..{to}");
    let master = MasterKey::load(&data.join("master.key")).context("the data dir's master key")?;
    let store = SqliteStore::open(&data.join("rotor.db"), true)
        .await
        .context("opening the store")?;
    let service = Arc::new(SecretService::new(
        Arc::new(store),
        master,
        Arc::new(SystemClock),
        DEFAULT_ACCOUNT_ID,
    ));
    service
        .check_master_key()
        .await
        .context("the data dir's master key")?;
    let began = Instant::now();
    let value_size = args.value_size;
    let done = Arc::new(AtomicU64::new(0));
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let (n, secs) = (done.load(Ordering::Relaxed), began.elapsed().as_secs_f64());
                eprintln!(
                    "  {n} of {} in {secs:.0} s ({:.0}/s)",
                    to - from,
                    n as f64 / secs
                );
            }
        })
    };
    let counted = done.clone();
    let result = in_parallel(
        &service,
        from,
        to,
        args.populate_tasks,
        move |service, caller, i| {
            let done = counted.clone();
            async move {
                let mut spec = secret_spec(i, value_size)?;
                let value = spec.value.take().context("a value")?;
                service.create(&caller, spec).await?;
                let put = PutValue {
                    secret_id: secret_name(i),
                    token: None,
                    value,
                    stages: None,
                };
                service.put_value(&caller, put).await?;
                done.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        },
    )
    .await;
    progress.abort();
    service.close().await;
    let secs = began.elapsed().as_secs_f64();
    eprintln!(
        "  added {} secrets in {secs:.1} s ({:.0}/s)",
        to - from,
        (to - from) as f64 / secs
    );
    result
}

/// Runs `op` for every `i` in `from..to`, `tasks` at a time; the first error.
async fn in_parallel<F, Fut>(
    service: &Arc<SecretService>,
    from: u64,
    to: u64,
    tasks: usize,
    op: F,
) -> Result<()>
where
    F: Fn(Arc<SecretService>, Caller, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let next = Arc::new(AtomicU64::new(from));
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (service, next, op) = (service.clone(), next.clone(), op.clone());
        running.spawn(async move {
            let caller = Caller::system("growth-bench");
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to {
                    return Ok::<_, anyhow::Error>(());
                }
                op(service.clone(), caller.clone(), i)
                    .await
                    .with_context(|| secret_name(i))?;
            }
        });
    }
    let mut failed = None;
    while let Some(joined) = running.join_next().await {
        if let Err(e) = joined.map_err(anyhow::Error::from).and_then(|r| r)
            && failed.is_none()
        {
            failed = Some(e);
            next.store(to, Ordering::Relaxed);
        }
    }
    failed.map_or(Ok(()), Err)
}

/// `rotor server --config DIR/rotor.toml` over `DIR/data`: durable SQLite, the audit
/// log on, as an operator runs it, with the bench's root credentials.
async fn start_server(rotor: &Path, dir: &Path) -> Result<Server> {
    let config = dir.join("rotor.toml");
    std::fs::create_dir_all(dir)?;
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {}\naudit = \"on\"\n",
        serde_json::to_string(&dir.join("data").to_string_lossy())?
    );
    std::fs::write(&config, toml).with_context(|| format!("write {config:?}"))?;
    let mut cmd = tokio::process::Command::new(rotor);
    cmd.arg("server")
        .arg("--config")
        .arg(&config)
        .env("ROTOR_ROOT_TOKEN", TOKEN)
        .env("ROTOR_ROOT_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("ROTOR_ROOT_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY);
    server::start(cmd).await
}

/// Where `server` listens.
fn address(server: &Server) -> Result<SocketAddr> {
    server
        .url
        .trim_start_matches("http://")
        .parse()
        .with_context(|| format!("address of {}", server.url))
}

/// Stops the server with SIGTERM (it commits what is pending), then SIGKILL after 30 s.
async fn stop(server: &mut Server) {
    if let Some(pid) = server.child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(30), server.child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = server.child.kill().await;
}

/// Native reads of random secrets among the `size` (request numbers mixed with
/// `salt`), on `--connections` connections: as fast as answered, or at `rate` a second.
async fn random_reads(
    args: &Args,
    addr: SocketAddr,
    size: u64,
    salt: u64,
    rate: Option<f64>,
) -> Latency {
    let make: MakeRequest = Arc::new(move |n| {
        requests::native_read(addr, TOKEN, &secret_name(mix(n ^ salt) % size)).request()
    });
    let plan = Plan {
        connections: args.connections,
        warmup: Duration::from_secs_f64(args.warmup_secs),
        measure: Duration::from_secs_f64(args.read_secs),
        max_requests: u64::MAX,
        request_timeout: Duration::from_secs(10),
        rate,
    };
    Latency::of(&load::run(addr, make, plan).await)
}

/// `(VmRSS, VmHWM)` of process `pid`, in MB.
fn memory(pid: u32) -> (f64, f64) {
    let (rss, hwm, _) = memory_parts(pid);
    (rss, hwm)
}

/// `(VmRSS, VmHWM, RssAnon)` of process `pid`, in MB.
fn memory_parts(pid: u32) -> (f64, f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"), field("RssAnon:"))
}

/// Starts the server on the copy in `run`, then times start-up, reads and listings.
async fn measure_server(
    args: &Args,
    rotor: &Path,
    run: &Path,
    size: u64,
    populate_secs: f64,
    db_mb: f64,
) -> Result<Row> {
    eprintln!("{size} secrets: starting the server");
    let spawned = Instant::now();
    let mut server = start_server(rotor, run).await?;
    let listening_secs = spawned.elapsed().as_secs_f64();
    let pid = server.child.id().context("the server has no pid")?;
    let addr = address(&server)?;
    let creds = Creds {
        token: TOKEN.to_string(),
        access_key_id: ACCESS_KEY_ID.to_string(),
        secret_access_key: SECRET_ACCESS_KEY.to_string(),
    };
    let result = async {
        let startup_secs = until_ok(addr, || requests::get(addr, "/healthz", &[]).request())
            .await
            .context("/healthz")?
            .duration_since(spawned)
            .as_secs_f64();
        let (rss_ready_mb, _) = memory(pid);
        let probe = secret_name(mix(u64::MAX) % size);
        let first_read_secs = until_ok(addr, || requests::native_read(addr, TOKEN, &probe).request())
            .await
            .context("the first read")?
            .duration_since(spawned)
            .as_secs_f64();
        tokio::time::sleep(Duration::from_secs_f64(args.settle_secs)).await;
        let (rss_start_mb, _) = memory(pid);
        let cpu_start_secs = cpu::process_secs(pid);
        eprintln!(
            "  healthz after {startup_secs:.3} s, first read after {first_read_secs:.3} s, RSS {rss_ready_mb:.0} MB then {rss_start_mb:.0} MB, {cpu_start_secs:.2} CPU s"
        );

        eprintln!("  reads: {} connections, {} s", args.connections, args.read_secs);
        let reads = random_reads(args, addr, size, 0, None).await;
        let (rss_after_load_mb, _, private_after_load_mb) = memory_parts(pid);
        eprintln!(
            "  {:.0} reads/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, RSS {rss_after_load_mb:.0} MB ({private_after_load_mb:.0} MB private)",
            reads.per_sec,
            reads.p50_ms.unwrap_or(0.0),
            reads.p99_ms.unwrap_or(0.0),
            reads.errors
        );
        eprintln!("  paced reads: {} a second, {} s", args.paced_rate, args.read_secs);
        let paced = random_reads(args, addr, size, PACED, Some(args.paced_rate)).await;
        eprintln!(
            "  {:.0} reads/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
            paced.per_sec,
            paced.p50_ms.unwrap_or(0.0),
            paced.p99_ms.unwrap_or(0.0),
            paced.errors
        );

        let services = size / PER_SERVICE;
        let aws_list = listings(args, addr, "AWS ListSecrets", move |n| {
            let body = serde_json::json!({
                "Filters": [{"Key": "name", "Values": [service_prefix(mix(n) % services)]}],
                "MaxResults": 100,
            });
            requests::aws(addr, &creds, "ListSecrets", body.to_string().into_bytes()).request()
        })
        .await?;
        let native_list = listings(args, addr, "native list", move |n| {
            let path = format!(
                "/v1/secrets?prefix={}&max_results=1000",
                service_prefix(mix(n) % services)
            );
            requests::get(addr, &path, &[requests::bearer(TOKEN)]).request()
        })
        .await?;
        let (_, rss_peak_mb) = memory(pid);
        let errors = reads.errors + paced.errors + aws_list.errors + native_list.errors;
        Ok(Row {
            secrets: size,
            populate_secs,
            db_mb,
            listening_secs,
            startup_secs,
            first_read_secs,
            rss_ready_mb,
            rss_start_mb,
            rss_after_load_mb,
            rss_peak_mb,
            private_after_load_mb,
            cpu_start_secs,
            reads,
            paced,
            aws_list,
            native_list,
            errors,
        })
    }
    .await;
    stop(&mut server).await;
    result
}

/// Sends the request `make` builds until one answers 2xx; when that answer came.
async fn until_ok(
    addr: SocketAddr,
    make: impl Fn() -> hyper::Request<http_body_util::Full<hyper::body::Bytes>>,
) -> Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match load::once(addr, make()).await {
            Ok((status, _)) if status.is_success() => return Ok(Instant::now()),
            Ok((status, body)) if Instant::now() > deadline => {
                bail!("answered {status}: {}", String::from_utf8_lossy(&body))
            }
            Err(e) if Instant::now() > deadline => return Err(e),
            _ => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
}

/// Longest one listing may take before it counts as failed.
const LIST_TIMEOUT: Duration = Duration::from_secs(120);

/// `args.list_requests` listings, one at a time on one connection, each of one
/// service's secrets; checks first that one answers with exactly that service's. A
/// check that fails is recorded as the measurement's error, and nothing more is sent.
async fn listings(
    args: &Args,
    addr: SocketAddr,
    what: &str,
    make: impl Fn(u64) -> hyper::Request<http_body_util::Full<hyper::body::Bytes>>
    + Send
    + Sync
    + 'static,
) -> Result<Latency> {
    if let Err(e) = check_listing(addr, make(0)).await {
        eprintln!("  {what}: {e:#}");
        return Ok(Latency {
            errors: 1,
            first_error: Some(format!("{e:#}")),
            ..Latency::default()
        });
    }
    eprintln!("  {what}: {} calls", args.list_requests);
    let out = load::run(
        addr,
        Arc::new(make),
        Plan {
            connections: 1,
            warmup: Duration::ZERO,
            measure: Duration::from_secs_f64(args.list_secs),
            max_requests: args.list_requests,
            request_timeout: LIST_TIMEOUT,
            rate: None,
        },
    )
    .await;
    let latency = Latency::of(&out);
    eprintln!(
        "  {what}: {} calls, p50 {:.2} ms, p99 {:.2} ms, {} errors",
        latency.requests,
        latency.p50_ms.unwrap_or(0.0),
        latency.p99_ms.unwrap_or(0.0),
        latency.errors
    );
    Ok(latency)
}

/// Sends one listing and checks that it holds exactly one service's secrets.
async fn check_listing(
    addr: SocketAddr,
    req: hyper::Request<http_body_util::Full<hyper::body::Bytes>>,
) -> Result<()> {
    use http_body_util::BodyExt as _;
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let began = Instant::now();
    let resp = reqwest::Client::builder()
        .timeout(LIST_TIMEOUT)
        .build()?
        .request(parts.method, format!("http://{addr}{}", parts.uri))
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .with_context(|| format!("no answer after {:.1} s", began.elapsed().as_secs_f64()))?;
    let status = resp.status();
    let text = resp.text().await?;
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let listed = answer["SecretList"]
        .as_array()
        .or(answer["secrets"].as_array())
        .map_or(0, Vec::len);
    if !status.is_success() || listed as u64 != PER_SERVICE {
        bail!(
            "answered {status} with {listed} secrets, not {PER_SERVICE}: {}",
            text.chars().take(300).collect::<String>()
        );
    }
    Ok(())
}

/// The targets, over the smallest and largest sizes measured.
fn targets(rows: &[Row]) -> Vec<Target> {
    let mut out = Vec::new();
    let slowest_start = rows
        .iter()
        .max_by(|a, b| a.startup_secs.total_cmp(&b.startup_secs));
    if let Some(r) = slowest_start {
        out.push(Target {
            name: format!("start-up < {STARTUP_MAX_SECS} s at every size"),
            measured: format!(
                "{:.2} s at {} secrets (slowest)",
                r.startup_secs,
                thousands(r.secrets as f64)
            ),
            met: r.startup_secs < STARTUP_MAX_SECS,
        });
    }
    let (Some(small), Some(large)) = (rows.first(), rows.last()) else {
        return out;
    };
    if small.secrets == large.secrets {
        return out;
    }
    if let (Some(a), Some(b)) = (small.paced.p99_ms, large.paced.p99_ms) {
        let factor = b / a;
        out.push(Target {
            name: format!(
                "read p99 flat (paced reads): at most {READ_P99_GROWTH_MAX}× from the smallest size to the largest"
            ),
            measured: format!(
                "{a:.2} ms → {b:.2} ms ({factor:.2}×, {})",
                span(small, large)
            ),
            met: factor <= READ_P99_GROWTH_MAX,
        });
    }
    // Sub-linear at each step, not only end to end: a fixed base would otherwise hide
    // a cost per secret.
    for pair in rows.windows(2) {
        let (small, large) = (&pair[0], &pair[1]);
        let size_factor = large.secrets as f64 / small.secrets as f64;
        for (what, a, b) in [
            (
                "RSS after the reads",
                small.rss_after_load_mb,
                large.rss_after_load_mb,
            ),
            ("peak RSS", small.rss_peak_mb, large.rss_peak_mb),
            (
                "private memory (RssAnon) after the reads",
                small.private_after_load_mb,
                large.private_after_load_mb,
            ),
        ] {
            let factor = b / a;
            out.push(Target {
                name: format!(
                    "memory sub-linear, {}: {what} grows less than the secrets",
                    span(small, large)
                ),
                measured: format!(
                    "{a:.0} MB → {b:.0} MB: {factor:.1}× for {size_factor:.0}× (exponent {:.2})",
                    factor.ln() / size_factor.ln()
                ),
                met: factor < size_factor,
            });
        }
    }
    out
}

/// "10,000 → 100,000 secrets".
fn span(small: &Row, large: &Row) -> String {
    format!(
        "{} → {} secrets",
        thousands(small.secrets as f64),
        thousands(large.secrets as f64)
    )
}

fn markdown(r: &Report) -> String {
    let ms = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
    let mut md = format!(
        "# Growth benchmark\n\n\
         Run from {} to {} on {} cores (load average {} at the start, {} at the end), rotor \
         {}.\n\n\
         For each size: a durable SQLite data directory holding that many secrets \
         (`/app/svcNNNNN/secret-NNNNNNN`, {} per service, {}-byte values, every tenth with a \
         description and a tag; besides, {} replication rule(s), each a prefix copy of {} \
         secrets), then `rotor server --config rotor.toml` on it (audit log on, page cache \
         warm). Start-up is from spawning the process to `GET /healthz` answering. \
         Reads: native `GET /v1/secrets/NAME` of random secrets across the whole set, {} \
         keep-alive connections, {} s measured. Listings: one at a time, each of one service's \
         {} secrets: AWS `ListSecrets` (SigV4) with a `name` filter, and the native \
         `GET /v1/secrets?prefix=`. The load generator shares the cores with the server.\n\n\
         Two read loads: saturating (each connection sends its next read as soon as the \
         last is answered: reads/s is the server's capacity, and the p99 is mostly the wait \
         behind the other connections' requests), then paced ({} reads/s on the same \
         connections, each latency counted from when the read was due): a read's latency \
         at a rate every size serves, the figure the flat-p99 target is about. Memory: \
         RSS counts the pages of the database file that SQLite's readers map (the \
         kernel's page cache of the file, shared and reclaimable); private memory \
         (RssAnon) is the server's own.\n\n",
        r.started,
        r.finished,
        r.cores,
        r.loadavg_at_start.as_deref().unwrap_or("?"),
        r.loadavg_at_end.as_deref().unwrap_or("?"),
        r.git.as_deref().unwrap_or("?"),
        r.per_service,
        r.value_bytes,
        r.replication_rules,
        PER_RULE,
        r.connections,
        r.read_secs,
        r.per_service,
        thousands(r.paced_rate),
    );
    md.push_str(
        "| secrets | start-up s | first read s | RSS after start MB | RSS after reads MB | private after reads MB | peak RSS MB | saturated reads/s | p50 ms | p99 ms | paced reads/s | paced p50 ms | paced p99 ms | AWS list p50 ms | AWS list p99 ms | native list p50 ms | native list p99 ms |\n\
         | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |\n",
    );
    for row in &r.rows {
        md.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            thousands(row.secrets as f64),
            row.startup_secs,
            row.first_read_secs,
            row.rss_start_mb,
            row.rss_after_load_mb,
            row.private_after_load_mb,
            row.rss_peak_mb,
            thousands(row.reads.per_sec),
            ms(row.reads.p50_ms),
            ms(row.reads.p99_ms),
            thousands(row.paced.per_sec),
            ms(row.paced.p50_ms),
            ms(row.paced.p99_ms),
            ms(row.aws_list.p50_ms),
            ms(row.aws_list.p99_ms),
            ms(row.native_list.p50_ms),
            ms(row.native_list.p99_ms),
        ));
    }
    md.push_str(
        "\n| secrets | database MB | populated in s | listening s | RSS at /healthz MB | CPU s, spawn to end of settle | read max ms | AWS lists | native lists | errors |\n\
         | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |\n",
    );
    for row in &r.rows {
        md.push_str(&format!(
            "| {} | {:.0} | {:.1} | {:.2} | {:.0} | {:.2} | {} | {} | {} | {} |\n",
            thousands(row.secrets as f64),
            row.db_mb,
            row.populate_secs,
            row.listening_secs,
            row.rss_ready_mb,
            row.cpu_start_secs,
            ms(row.reads.max_ms),
            row.aws_list.requests,
            row.native_list.requests,
            row.errors,
        ));
    }
    md.push_str("\n| target | measured | met |\n| --- | --- | --- |\n");
    for t in &r.targets {
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            t.name,
            t.measured,
            if t.met { "yes" } else { "**no**" }
        ));
    }
    md
}

fn thousands(x: f64) -> String {
    let digits = (x.round() as u64).to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Copies directory `from` into `to` (created), recursively, keeping file modes.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("create {to:?}"))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("read {from:?}"))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copy {:?}", entry.path()))?;
        }
    }
    Ok(())
}

fn loadavg() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn git_describe() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(workspace_root())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
