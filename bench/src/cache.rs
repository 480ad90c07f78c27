//! Cached lookup benchmark: how long a read of a cached reference takes in the
//! resolver of `rotor-client`, single-threaded and from 2 threads at once (all on one
//! reference, the worst case for its locks, and spread over 1,000). The vault is an
//! in-memory backend: only the cache is measured.
//!
//! Writes bench/results/cache.{md,json}.

use anyhow::Result;
use clap::Parser;
use rotor_client::backend::{Backend, BackendError, BoxFuture, Fetched, Lookup};
use rotor_client::resolver::{Resolver, VaultConfig, Vaults};
use secrecy::SecretString;
use serde_json::json;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(name = "cache-bench", about = "Cached reference lookups per second")]
struct Args {
    /// How long each measurement runs, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    millis: u64,
    /// References in the spread runs.
    #[arg(long, default_value_t = 1000)]
    references: usize,
    /// Where results go (default: bench/results).
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

/// A vault that answers at once from memory.
struct Memory;

impl Backend for Memory {
    fn fetch<'a>(&'a self, lookup: &'a Lookup) -> BoxFuture<'a, Result<Fetched, BackendError>> {
        Box::pin(async move {
            Ok(Fetched {
                value: SecretString::from(format!("value-of-{}", lookup.resource)),
                version_id: None,
            })
        })
    }
}

struct Run {
    name: &'static str,
    threads: usize,
    lookups: u64,
    seconds: f64,
}

impl Run {
    fn ns_per_lookup(&self) -> f64 {
        // Per thread: how long one lookup takes on the thread doing it.
        self.seconds * 1e9 * self.threads as f64 / self.lookups as f64
    }
    fn per_second(&self) -> f64 {
        self.lookups as f64 / self.seconds
    }
}

/// Reads `refs` round-robin with `Resolver::cached` on `threads` threads for `budget`.
fn measure(
    name: &'static str,
    r: &Resolver,
    refs: &[String],
    threads: usize,
    budget: Duration,
) -> Run {
    let start = Instant::now();
    let lookups: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut n = 0u64;
                    let mut i = t;
                    let deadline = Instant::now() + budget;
                    while Instant::now() < deadline {
                        for _ in 0..1024 {
                            let v = r.cached(&refs[i % refs.len()]).expect("cached");
                            black_box(v.expose_secret().len());
                            i += 1;
                        }
                        n += 1024;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    Run {
        name,
        threads,
        lookups,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// `Resolver::get(..).await` on a hit, from one task.
async fn measure_async(r: &Resolver, refs: &[String], budget: Duration) -> Run {
    let start = Instant::now();
    let deadline = start + budget;
    let mut n = 0u64;
    let mut i = 0;
    while Instant::now() < deadline {
        for _ in 0..1024 {
            let v = r.get(&refs[i % refs.len()]).await.expect("cached");
            black_box(v.expose_secret().len());
            i += 1;
        }
        n += 1024;
    }
    Run {
        name: "get().await, spread, ttl 300 s",
        threads: 1,
        lookups: n,
        seconds: start.elapsed().as_secs_f64(),
    }
}

fn write(out_dir: &Path, runs: &[Run], references: usize) -> Result<()> {
    std::fs::create_dir_all(out_dir)?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut md = format!(
        "# Cached lookup benchmark\n\nRun {} on {cores} cores (shared, noisy). `rotor-client`'s resolver \
         with an in-memory vault, every reference already cached; a lookup is `Resolver::cached` (a shard \
         read lock, a hash lookup, the clock when the entry has a ttl, an `Arc` clone) unless noted. \
         \"spread\" reads {references} references round-robin; \"one key\" has every thread read the same \
         one.\n\n| run | threads | ns per lookup (per thread) | lookups/s (all threads) |\n| --- | --- | --- | --- |\n",
        chrono::Utc::now().to_rfc3339()
    );
    for r in runs {
        md.push_str(&format!(
            "| {} | {} | **{:.0} ns** | {:.1} M/s |\n",
            r.name,
            r.threads,
            r.ns_per_lookup(),
            r.per_second() / 1e6
        ));
    }
    md.push_str(
        "\nReproduce: `cargo run --release -p rotor-bench --bin cache-bench` (bench/src/cache.rs).\n",
    );
    std::fs::write(out_dir.join("cache.md"), md)?;
    let j = json!({
        "cores": cores,
        "references": references,
        "runs": runs.iter().map(|r| json!({
            "name": r.name,
            "threads": r.threads,
            "lookups": r.lookups,
            "seconds": r.seconds,
            "ns_per_lookup": r.ns_per_lookup(),
            "lookups_per_second": r.per_second(),
        })).collect::<Vec<_>>(),
    });
    std::fs::write(
        out_dir.join("cache.json"),
        serde_json::to_string_pretty(&j)?,
    )?;
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let budget = Duration::from_millis(args.millis);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let vaults = Vaults::new()
        .with(
            "mem",
            VaultConfig::new(Memory).ttl(Duration::from_secs(300)),
        )?
        .with("forever", VaultConfig::new(Memory))?;
    let r = Resolver::new(vaults);
    let spread: Vec<String> = (0..args.references)
        .map(|i| format!("{{vault://mem/%2Fapp%2Fsvc-{i}%2Fdb}}"))
        .collect();
    let forever: Vec<String> = (0..args.references)
        .map(|i| format!("{{vault://forever/%2Fapp%2Fsvc-{i}%2Fdb}}"))
        .collect();
    let one = vec![spread[0].clone()];
    runtime.block_on(async {
        for reference in spread.iter().chain(&forever) {
            r.get(reference).await?;
        }
        anyhow::Ok(())
    })?;

    let mut runs = vec![
        measure("spread, ttl 300 s", &r, &spread, 1, budget),
        measure("spread, no ttl", &r, &forever, 1, budget),
        measure("one key, ttl 300 s", &r, &one, 1, budget),
        measure("spread, ttl 300 s", &r, &spread, 2, budget),
        measure("one key, ttl 300 s", &r, &one, 2, budget),
        measure("spread, no ttl", &r, &forever, 2, budget),
    ];
    runs.push(runtime.block_on(measure_async(&r, &spread, budget)));
    for run in &runs {
        println!(
            "{:<32} threads {}: {:>6.1} ns/lookup, {:>6.1} M lookups/s",
            run.name,
            run.threads,
            run.ns_per_lookup(),
            run.per_second() / 1e6
        );
    }
    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("results"));
    write(&out_dir, &runs, args.references)?;
    println!("wrote {}", out_dir.join("cache.md").display());
    Ok(())
}
