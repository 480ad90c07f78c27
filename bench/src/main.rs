//! Rotor's store API benchmark: read throughput and latency of `/healthz`, the native
//! read, the AWS `GetSecretValue`, a bare axum floor and moto, and durable
//! `PutSecretValue` throughput. See `bench/README.md`.

mod floor;
mod load;
mod procs;
mod report;
mod requests;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use load::{MakeRequest, Plan};
use report::{Report, Scenario};
use requests::Creds;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const READ_SECRET: &str = "bench-read";
const WRITE_SECRET: &str = "bench-write";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ is inside the workspace")
        .to_path_buf()
}

#[derive(Parser, Debug)]
#[command(
    name = "rotor-bench",
    about = "Benchmarks Rotor's read and durable write throughput against /healthz, a bare axum floor and moto",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serves a fixed body of the given size on every path (the HTTP floor).
    #[command(hide = true)]
    Floor {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        #[arg(long)]
        body_size: usize,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Seconds measured per scenario.
    #[arg(long, default_value_t = 8.0)]
    duration_secs: f64,
    /// Seconds of warmup per scenario (not measured).
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// Concurrent keep-alive connections for the read scenarios.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Concurrent writers for the second durable write scenario (the first has 1).
    #[arg(long, default_value_t = 64)]
    writers: usize,
    /// Upper bound on requests per scenario, warmup included.
    #[arg(long, default_value_t = 20_000_000)]
    max_requests: u64,
    /// A request slower than this (seconds) counts as an error.
    #[arg(long, default_value_t = 10.0)]
    request_timeout_secs: f64,
    /// Worker threads of the load generator's runtime (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Bytes of the secret value read by the read scenarios.
    #[arg(long, default_value_t = 64)]
    value_size: usize,
    /// Body size of the floor's answer (default: the native read response's size).
    #[arg(long)]
    floor_body_size: Option<usize>,
    /// The rotor binary (default: target/release/rotor in the workspace).
    #[arg(long)]
    rotor: Option<PathBuf>,
    /// The Python that has moto installed.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Only these scenarios (comma-separated): healthz,native,native-untracked,native-noaudit,aws,floor,moto,write-1,write-N.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The markdown results; the JSON goes beside it with a .json extension.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Rounds of the reads on the dev server (alternating order; the best of each is
    /// reported, and the ratios between them are the median of each round's).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Keep the temporary directory (server logs, SQLite data) and print its path.
    #[arg(long)]
    keep_tmp: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Floor { listen, body_size }) => floor::run(listen, body_size).map(|()| true),
        None => bench(cli.run),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("rotor-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs every selected scenario, writes the results; `Ok(false)` when the run is flagged.
fn bench(args: RunArgs) -> Result<bool> {
    if args.duration_secs <= 0.0 || args.warmup_secs < 0.0 {
        bail!("--duration-secs must be positive and --warmup-secs not negative");
    }
    if args.connections == 0 || args.writers == 0 {
        bail!("--connections and --writers must be at least 1");
    }
    let threads = args.threads.unwrap_or_else(cores).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let report = runtime.block_on(run_all(&args, threads))?;

    let console = report::tables(&report);
    println!("\n{console}");
    let md_path = args
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("bench/results/store-api.md"));
    let json_path = md_path.with_extension("json");
    if let Some(dir) = md_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {dir:?}"))?;
    }
    std::fs::write(&md_path, report::markdown(&report))
        .with_context(|| format!("write {md_path:?}"))?;
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("write {json_path:?}"))?;
    eprintln!("wrote {} and {}", md_path.display(), json_path.display());
    if report.flagged {
        eprintln!("rotor-bench: FLAGGED: some scenario had errors or did not run");
    }
    Ok(!report.flagged)
}

struct Ctx<'a> {
    args: &'a RunArgs,
    notes: Vec<String>,
}

impl Ctx<'_> {
    fn selected(&self, id: &str) -> bool {
        let id = if id.starts_with("write-") && id != "write-1" {
            "write-N"
        } else {
            id
        };
        self.args.only.is_empty() || self.args.only.iter().any(|o| o == id)
    }

    async fn measure(
        &self,
        scenario: Scenario,
        addr: SocketAddr,
        make: MakeRequest,
        plan: Plan,
    ) -> Scenario {
        eprintln!(
            "running {} ({} conns, {:?} warmup + {:?})",
            scenario.title, plan.connections, plan.warmup, plan.measure
        );
        let out = load::run(addr, make, plan).await;
        let sc = scenario.with(&out);
        eprintln!(
            "  {} req/s, p50 {} ms, p99 {} ms, errors {}, connections opened {}",
            report::thousands(sc.requests_per_sec),
            sc.p50_ms.map_or("-".into(), |v| format!("{v:.3}")),
            sc.p99_ms.map_or("-".into(), |v| format!("{v:.3}")),
            sc.errors,
            sc.connections_opened
        );
        if sc.errors > 0 {
            eprintln!("  errors: {:?}", sc.error_kinds);
            if let Some(first) = &sc.first_error {
                eprintln!("  first error response: {first}");
            }
        }
        sc
    }
}

fn describe(status: hyper::StatusCode, body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body).chars().take(300).collect();
    format!("{status} {text}")
}

async fn run_all(args: &RunArgs, threads: usize) -> Result<Report> {
    let loadavg_at_start = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    let plan = Plan {
        connections: args.connections,
        warmup: Duration::from_secs_f64(args.warmup_secs),
        measure: Duration::from_secs_f64(args.duration_secs),
        max_requests: args.max_requests,
        request_timeout: Duration::from_secs_f64(args.request_timeout_secs),
        rate: None,
    };
    let mut ctx = Ctx {
        args,
        notes: Vec::new(),
    };
    let rotor = args
        .rotor
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/release/rotor"));
    let tmp = tempfile::Builder::new()
        .prefix("rotor-bench-")
        .tempdir()
        .context("temporary directory")?;
    let dir = tmp.path().to_path_buf();
    if args.keep_tmp {
        eprintln!("temporary directory (kept): {}", dir.display());
    }
    let value = requests::secret_value(args.value_size);
    let n = args.writers;

    let healthz = Scenario::new(
        "healthz",
        "Rotor /healthz",
        "GET /healthz",
        plan.connections,
    );
    let native = Scenario::new(
        "native",
        "Rotor native read",
        "GET /v1/secrets/bench-read",
        plan.connections,
    );
    let native_untracked = Scenario::new(
        "native-untracked",
        "Rotor native read, as a registered consumer (no reader tracking)",
        "GET /v1/secrets/bench-read + X-Rotor-Consumer",
        plan.connections,
    );
    let aws = Scenario::new(
        "aws",
        "Rotor AWS read",
        "POST / GetSecretValue",
        plan.connections,
    );
    let native_noaudit = Scenario::new(
        "native-noaudit",
        "Rotor native read, audit log off",
        "GET /v1/secrets/bench-read",
        plan.connections,
    );
    let floor_sc = Scenario::new(
        "floor",
        "axum floor",
        "GET /v1/secrets/bench-read",
        plan.connections,
    );
    let moto_sc = Scenario::new(
        "moto",
        "moto AWS read",
        "POST / GetSecretValue",
        plan.connections,
    );
    let write1 = Scenario::new(
        "write-1",
        "Rotor durable write, 1 writer",
        "POST / PutSecretValue",
        1,
    );
    let write_n = Scenario::new(
        &format!("write-{n}"),
        &format!("Rotor durable write, {n} writers"),
        "POST / PutSecretValue",
        n,
    );

    let mut scenarios = Vec::new();
    let mut native_body_size = None;
    let rotor_ok = rotor.is_file();
    let no_rotor = format!(
        "no rotor binary at {} (cargo build --release -p rotor)",
        rotor.display()
    );

    // Phase 1: the in-memory Rotor server: /healthz, native and AWS reads.
    let want_dev = ["healthz", "native", "native-untracked", "aws"]
        .iter()
        .any(|id| ctx.selected(id))
        || (ctx.selected("floor") && args.floor_body_size.is_none());
    let creds = Creds::generate();
    let mut dev_failure = None;
    let mut paired = Vec::new();
    if want_dev && !rotor_ok {
        dev_failure = Some(no_rotor.clone());
    } else if want_dev {
        match procs::rotor_dev(&rotor, &creds, &dir, true).await {
            Err(e) => dev_failure = Some(format!("{e:#}")),
            Ok(server) => {
                let addr = server.addr;
                match setup_read_secret(&mut ctx, addr, &creds, &value).await {
                    Ok(size) => native_body_size = size,
                    Err(e) => dev_failure = Some(format!("{e:#}")),
                }
                if dev_failure.is_none() {
                    // The reads on this server are measured in alternating rounds, best
                    // of three each, so that drift on a shared machine does not decide
                    // their ratios: /healthz, the native read, the same read marked as a
                    // registered consumer's (the server then does not record the reader:
                    // the pair prices reader tracking), and the signed AWS read.
                    let reads = [
                        (&healthz, requests::get(addr, "/healthz", &[])),
                        (
                            &native,
                            requests::native_read(addr, &creds.token, READ_SECRET),
                        ),
                        (
                            &native_untracked,
                            requests::get(
                                addr,
                                &format!("/v1/secrets/{READ_SECRET}"),
                                &[
                                    requests::bearer(&creds.token),
                                    ("x-rotor-consumer".to_string(), "bench".to_string()),
                                ],
                            ),
                        ),
                        (&aws, requests::aws_get(addr, &creds, READ_SECRET)),
                    ];
                    let chosen: Vec<usize> = (0..reads.len())
                        .filter(|&i| ctx.selected(&reads[i].0.id))
                        .collect();
                    let rounds = if chosen.len() > 1 { ctx.args.rounds } else { 1 };
                    let mut best: Vec<Option<Scenario>> = vec![None; reads.len()];
                    let mut by_round = Vec::new();
                    for round in 0..rounds {
                        let mut this_round = std::collections::HashMap::new();
                        let mut order = chosen.clone();
                        if round % 2 == 1 {
                            order.reverse();
                        }
                        for i in order {
                            let (sc, make) = &reads[i];
                            let got = ctx
                                .measure((*sc).clone(), addr, make.clone().into_maker(), plan)
                                .await;
                            if got.clean() {
                                this_round.insert(sc.id.clone(), got.requests_per_sec);
                            }
                            let better = best[i]
                                .as_ref()
                                .is_none_or(|b| got.requests_per_sec > b.requests_per_sec);
                            if better {
                                best[i] = Some(got);
                            }
                        }
                        by_round.push(this_round);
                    }
                    paired = report::paired_ratios(&by_round);
                    scenarios.extend(best.into_iter().flatten());
                }
                server.stop().await;
            }
        }
    }
    if let Some(why) = &dev_failure {
        eprintln!("rotor (dev) failed: {why}");
        for sc in [&healthz, &native, &native_untracked, &aws] {
            if ctx.selected(&sc.id) {
                scenarios.push(sc.clone().skip(why.clone()));
            }
        }
    }

    // Phase 1b: the same native read with the audit log off, for its cost.
    if ctx.selected("native-noaudit") {
        let measured = async {
            if !rotor_ok {
                anyhow::bail!("{no_rotor}");
            }
            let server = procs::rotor_dev(&rotor, &creds, &dir, false).await?;
            let addr = server.addr;
            let setup = setup_read_secret(&mut ctx, addr, &creds, &value).await;
            let result = match setup {
                Ok(_) => {
                    let make = requests::native_read(addr, &creds.token, READ_SECRET);
                    Ok(ctx
                        .measure(native_noaudit.clone(), addr, make.into_maker(), plan)
                        .await)
                }
                Err(e) => Err(e),
            };
            server.stop().await;
            result
        }
        .await;
        match measured {
            Ok(sc) => scenarios.push(sc),
            Err(e) => scenarios.push(native_noaudit.clone().skip(format!("{e:#}"))),
        }
    }

    // Phase 2: the axum floor, answering the native read's body size.
    if ctx.selected("floor") {
        match args.floor_body_size.or(native_body_size) {
            None => scenarios.push(floor_sc.skip("the native read's response size is unknown")),
            Some(size) => match procs::floor(size, &dir).await {
                Err(e) => scenarios.push(floor_sc.skip(format!("{e:#}"))),
                Ok(server) => {
                    let addr = server.addr;
                    let make = requests::native_read(addr, &creds.token, READ_SECRET);
                    scenarios.push(ctx.measure(floor_sc, addr, make.into_maker(), plan).await);
                    server.stop().await;
                }
            },
        }
    }

    // Phase 3: moto, the same AWS read.
    if ctx.selected("moto") {
        match procs::moto(&args.python, &dir).await {
            Err(e) => scenarios.push(moto_sc.skip(format!("{e:#}"))),
            Ok(server) => {
                let addr = server.addr;
                let create = requests::aws_create(addr, &creds, READ_SECRET, &value).request();
                match load::once(addr, create).await {
                    Ok((status, _)) if status.is_success() => {
                        let make = requests::aws_get(addr, &creds, READ_SECRET).into_maker();
                        scenarios.push(ctx.measure(moto_sc, addr, make, plan).await);
                    }
                    Ok((status, body)) => scenarios.push(moto_sc.skip(format!(
                        "moto CreateSecret answered {}",
                        describe(status, &body)
                    ))),
                    Err(e) => scenarios.push(moto_sc.skip(format!("moto CreateSecret: {e:#}"))),
                }
                server.stop().await;
            }
        }
    }

    // Phase 4: durable writes against the persistent server.
    let want_writes = ctx.selected("write-1") || ctx.selected(&write_n.id);
    if want_writes {
        let failure = if !rotor_ok {
            Err(no_rotor.clone())
        } else {
            match procs::rotor_persistent(&rotor, &creds, &dir).await {
                Err(e) => Err(format!("{e:#}")),
                Ok(server) => {
                    let addr = server.addr;
                    let create = requests::aws_create(addr, &creds, WRITE_SECRET, "v-0").request();
                    let result = match load::once(addr, create).await {
                        Ok((status, _)) if status.is_success() => {
                            for (sc, writers) in [(write1.clone(), 1), (write_n.clone(), n)] {
                                if !ctx.selected(&sc.id) {
                                    continue;
                                }
                                let wplan = Plan {
                                    connections: writers,
                                    ..plan
                                };
                                let creds2 = creds.clone();
                                let make: MakeRequest = Arc::new(move |i| {
                                    requests::aws_put(addr, &creds2, WRITE_SECRET, i).request()
                                });
                                scenarios.push(ctx.measure(sc, addr, make, wplan).await);
                            }
                            Ok(())
                        }
                        Ok((status, body)) => Err(format!(
                            "CreateSecret {WRITE_SECRET} answered {}",
                            describe(status, &body)
                        )),
                        Err(e) => Err(format!("CreateSecret {WRITE_SECRET}: {e:#}")),
                    };
                    server.stop().await;
                    result
                }
            }
        };
        if let Err(why) = failure {
            eprintln!("durable writes failed: {why}");
            for sc in [write1, write_n] {
                if ctx.selected(&sc.id) {
                    scenarios.push(sc.skip(why.clone()));
                }
            }
        }
    }

    if args.keep_tmp {
        let _ = tmp.keep();
    }
    let shown = [
        ("native", "healthz"),
        ("native", "native-untracked"),
        ("aws", "native"),
        ("aws", "healthz"),
    ];
    for p in &paired {
        if shown.contains(&(p.num.as_str(), p.den.as_str())) {
            ctx.notes.push(p.note());
        }
    }
    let checks = report::checks(&scenarios, n, &paired);
    let flagged = scenarios
        .iter()
        .any(|s| s.skipped.is_some() || s.errors > 0 || s.requests_ok == 0);
    Ok(Report {
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        cores: cores(),
        os: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        loadgen_threads: threads,
        loadavg_at_start,
        warmup_secs: args.warmup_secs,
        measure_secs: args.duration_secs,
        connections: args.connections,
        writers: n,
        rotor: rotor.display().to_string(),
        git_rev: git_rev(),
        secret_value_bytes: value.len(),
        native_read_body_bytes: native_body_size,
        floor_body_bytes: args.floor_body_size.or(native_body_size),
        scenarios,
        checks,
        notes: ctx.notes,
        flagged,
    })
}

/// Creates the read secret (native API, AWS API as a fallback) and checks both reads
/// return its value; returns the native read response's size.
async fn setup_read_secret(
    ctx: &mut Ctx<'_>,
    addr: SocketAddr,
    creds: &Creds,
    value: &str,
) -> Result<Option<usize>> {
    let create = requests::native_create(addr, &creds.token, READ_SECRET, value).request();
    let (status, body) = load::once(addr, create).await?;
    if !status.is_success() {
        let native_answer = describe(status, &body);
        let create = requests::aws_create(addr, creds, READ_SECRET, value).request();
        let (status, body) = load::once(addr, create).await?;
        if !status.is_success() {
            bail!(
                "could not create {READ_SECRET}: native POST /v1/secrets answered {native_answer}; \
                 AWS CreateSecret answered {}",
                describe(status, &body)
            );
        }
        ctx.notes.push(format!(
            "native POST /v1/secrets answered {native_answer}; {READ_SECRET} was created with AWS CreateSecret"
        ));
    }

    let mut size = None;
    let read = requests::native_read(addr, &creds.token, READ_SECRET).request();
    let (status, body) = load::once(addr, read).await?;
    if status.is_success() {
        size = Some(body.len());
        let got = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("value").and_then(|v| v.as_str()).map(str::to_string));
        if got.as_deref() != Some(value) {
            ctx.notes.push(format!(
                "native read of {READ_SECRET} did not return the stored value: {}",
                describe(status, &body)
            ));
        }
    } else {
        ctx.notes.push(format!(
            "native read of {READ_SECRET} answered {}",
            describe(status, &body)
        ));
    }

    let read = requests::aws_get(addr, creds, READ_SECRET).request();
    let (status, body) = load::once(addr, read).await?;
    let got = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("SecretString")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        });
    if !status.is_success() || got.as_deref() != Some(value) {
        ctx.notes.push(format!(
            "AWS GetSecretValue of {READ_SECRET} answered {}",
            describe(status, &body)
        ));
    }
    for n in &ctx.notes {
        eprintln!("note: {n}");
    }
    Ok(size)
}

fn git_rev() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    Some(if dirty { format!("{rev}-dirty") } else { rev })
}
