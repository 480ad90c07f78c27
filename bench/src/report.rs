//! The results: one row per scenario, the ratios and targets, as markdown and JSON.

use crate::load::Outcome;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One scenario's figures (or why it did not run).
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// Short id: healthz, native, aws, floor, moto, write-1, write-N.
    pub id: String,
    pub title: String,
    /// The request sent, in one line.
    pub request: String,
    /// Concurrent connections (one request in flight on each).
    pub concurrency: usize,
    /// Set when the scenario could not run.
    pub skipped: Option<String>,
    /// 2xx responses inside the measurement window.
    pub requests_ok: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub first_error: Option<String>,
    pub connections_opened: u64,
    pub measured_secs: f64,
    pub requests_per_sec: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Scenario {
    pub fn new(id: &str, title: &str, request: &str, concurrency: usize) -> Self {
        Scenario {
            id: id.to_string(),
            title: title.to_string(),
            request: request.to_string(),
            concurrency,
            skipped: None,
            requests_ok: 0,
            errors: 0,
            error_kinds: BTreeMap::new(),
            first_error: None,
            connections_opened: 0,
            measured_secs: 0.0,
            requests_per_sec: 0.0,
            p50_ms: None,
            p99_ms: None,
            max_ms: None,
        }
    }

    pub fn skip(mut self, why: impl Into<String>) -> Self {
        self.skipped = Some(why.into());
        self
    }

    pub fn with(mut self, out: &Outcome) -> Self {
        self.requests_ok = out.ok;
        self.errors = out.errors;
        self.error_kinds = out.error_kinds.clone();
        self.first_error = out.first_error.clone();
        self.connections_opened = out.connections_opened;
        self.measured_secs = out.measured_secs;
        self.requests_per_sec = out.rps();
        self.p50_ms = out.quantile_ms(0.50);
        self.p99_ms = out.quantile_ms(0.99);
        self.max_ms = out.quantile_ms(1.0);
        self
    }

    /// Ran, with at least one successful request and no error.
    pub fn clean(&self) -> bool {
        self.skipped.is_none() && self.errors == 0 && self.requests_ok > 0
    }
}

/// A ratio or an absolute figure, with its target when the issue sets one.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    /// "ratio" (of requests/s) or "writes/s".
    pub unit: String,
    pub measured: Option<f64>,
    /// The minimum the issue asks for.
    pub target: Option<f64>,
    pub met: Option<bool>,
    /// A scenario it is computed from had errors or did not run.
    pub inputs_unclean: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub date: String,
    pub cores: usize,
    pub os: String,
    pub loadgen_threads: usize,
    /// `/proc/loadavg` (1, 5, 15 min) when the run started: other load skews the figures.
    pub loadavg_at_start: Option<String>,
    pub warmup_secs: f64,
    pub measure_secs: f64,
    pub connections: usize,
    pub writers: usize,
    pub rotor: String,
    pub git_rev: Option<String>,
    pub secret_value_bytes: usize,
    pub native_read_body_bytes: Option<usize>,
    /// The floor's response body size (the native read's unless overridden).
    pub floor_body_bytes: Option<usize>,
    pub scenarios: Vec<Scenario>,
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
    /// Some scenario had errors or did not run.
    pub flagged: bool,
}

fn find<'a>(scenarios: &'a [Scenario], id: &str) -> Option<&'a Scenario> {
    scenarios.iter().find(|s| s.id == id)
}

/// The ratio of two scenarios measured side by side in several rounds: the median of
/// each round's ratio (two loads measured seconds apart share the machine's state of
/// the moment; the best of each, taken in different rounds, need not).
#[derive(Debug, Clone, Serialize)]
pub struct Paired {
    pub num: String,
    pub den: String,
    pub median: f64,
    pub rounds: Vec<f64>,
}

impl Paired {
    pub fn note(&self) -> String {
        let each: Vec<String> = self.rounds.iter().map(|r| format!("{r:.2}")).collect();
        format!(
            "{} / {}: median {:.2} of the rounds' ratios {}",
            self.num,
            self.den,
            self.median,
            each.join(", ")
        )
    }
}

/// The paired ratio of every two scenarios measured in each of `rounds` (ids to
/// requests/s).
pub fn paired_ratios(rounds: &[std::collections::HashMap<String, f64>]) -> Vec<Paired> {
    let mut ids: Vec<&String> = rounds.iter().flat_map(|r| r.keys()).collect();
    ids.sort();
    ids.dedup();
    let mut out = Vec::new();
    for num in &ids {
        for den in &ids {
            if num == den {
                continue;
            }
            let mut each: Vec<f64> = rounds
                .iter()
                .filter_map(|r| Some(r.get(*num)? / r.get(*den).filter(|d| **d > 0.0)?))
                .collect();
            if each.is_empty() {
                continue;
            }
            let shown = each.clone();
            each.sort_by(f64::total_cmp);
            let mid = each.len() / 2;
            let median = if each.len() % 2 == 1 {
                each[mid]
            } else {
                (each[mid - 1] + each[mid]) / 2.0
            };
            out.push(Paired {
                num: num.to_string(),
                den: den.to_string(),
                median,
                rounds: shown,
            });
        }
    }
    out
}

/// Computes the ratios and targets from the scenarios (and, for scenarios measured
/// side by side in rounds, from their [`Paired`] ratios).
pub fn checks(scenarios: &[Scenario], writers: usize, paired: &[Paired]) -> Vec<Check> {
    let ratio = |name: &str, num: &str, den: &str, target: Option<f64>| {
        let (n, d) = (find(scenarios, num), find(scenarios, den));
        let side_by_side = paired
            .iter()
            .find(|p| p.num == num && p.den == den && p.rounds.len() > 1);
        let measured = match (n, d) {
            _ if side_by_side.is_some() => side_by_side.map(|p| p.median),
            (Some(n), Some(d))
                if n.skipped.is_none() && d.skipped.is_none() && d.requests_per_sec > 0.0 =>
            {
                Some(n.requests_per_sec / d.requests_per_sec)
            }
            _ => None,
        };
        Check {
            name: name.to_string(),
            unit: "ratio".to_string(),
            measured,
            target,
            met: target.zip(measured).map(|(t, m)| m >= t),
            inputs_unclean: !(n.is_some_and(Scenario::clean) && d.is_some_and(Scenario::clean)),
        }
    };
    let writes = |id: &str, name: &str, target: Option<f64>| {
        let s = find(scenarios, id);
        let measured = s
            .filter(|s| s.skipped.is_none())
            .map(|s| s.requests_per_sec);
        Check {
            name: name.to_string(),
            unit: "writes/s".to_string(),
            measured,
            target,
            met: target.zip(measured).map(|(t, m)| m >= t),
            inputs_unclean: !s.is_some_and(Scenario::clean),
        }
    };
    vec![
        ratio("native / healthz", "native", "healthz", Some(0.60)),
        ratio(
            "native, audit off / healthz",
            "native-noaudit",
            "healthz",
            Some(0.60),
        ),
        ratio("native / floor", "native", "floor", Some(0.40)),
        ratio(
            "native, audit on / off",
            "native",
            "native-noaudit",
            Some(0.75),
        ),
        ratio(
            "native, readers tracked / untracked",
            "native",
            "native-untracked",
            Some(0.95),
        ),
        ratio("aws / native", "aws", "native", Some(0.90)),
        ratio("aws / healthz", "aws", "healthz", Some(0.50)),
        ratio("aws / moto", "aws", "moto", Some(50.0)),
        writes("write-1", "durable writes, 1 writer", None),
        writes(
            &format!("write-{writers}"),
            &format!("durable writes, {writers} writers"),
            Some(5000.0),
        ),
    ]
}

/// `12345.6` as `12,346`.
pub fn thousands(x: f64) -> String {
    let n = x.round() as u64;
    let digits = n.to_string();
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

fn measured(c: &Check) -> String {
    match (c.measured, c.unit.as_str()) {
        (None, _) => "n/a".to_string(),
        (Some(v), "writes/s") => format!("{}/s", thousands(v)),
        (Some(v), _) if c.target.is_some_and(|t| t >= 10.0) => format!("{v:.1}×"),
        (Some(v), _) => format!("{:.0}% ({v:.2})", v * 100.0),
    }
}

fn target(c: &Check) -> String {
    match (c.target, c.unit.as_str()) {
        (None, _) => "–".to_string(),
        (Some(t), "writes/s") => format!("≥ {}/s", thousands(t)),
        (Some(t), _) if t >= 10.0 => format!("≥ {t:.0}×"),
        (Some(t), _) => format!("≥ {:.0}%", t * 100.0),
    }
}

fn met(c: &Check) -> String {
    let base = match c.met {
        None if c.target.is_none() => "–".to_string(),
        None => "n/a".to_string(),
        Some(true) => "yes".to_string(),
        Some(false) => "**no**".to_string(),
    };
    if c.inputs_unclean && c.measured.is_some() {
        format!("{base} (inputs had errors)")
    } else {
        base
    }
}

/// The figures table alone (also what the console shows).
pub fn tables(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(
        "| Scenario | Request | Conns | Requests/s | p50 (ms) | p99 (ms) | max (ms) | Errors |\n",
    );
    s.push_str("|---|---|--:|--:|--:|--:|--:|--:|\n");
    for sc in &r.scenarios {
        if let Some(why) = &sc.skipped {
            let _ = writeln!(
                s,
                "| {} | `{}` | {} | not run: {} | | | | |",
                sc.title,
                sc.request,
                sc.concurrency,
                why.replace('\n', " ").replace('|', "\\|")
            );
            continue;
        }
        let errors = if sc.errors == 0 {
            "0".to_string()
        } else {
            format!("**{}** ⚠", sc.errors)
        };
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} |",
            sc.title,
            sc.request,
            sc.concurrency,
            thousands(sc.requests_per_sec),
            ms(sc.p50_ms),
            ms(sc.p99_ms),
            ms(sc.max_ms),
            errors
        );
    }
    s.push('\n');
    s.push_str("| Ratio / figure | Measured | Target | Met |\n|---|--:|--:|---|\n");
    for c in &r.checks {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            c.name,
            measured(c),
            target(c),
            met(c)
        );
    }
    s
}

pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    s.push_str("# Rotor store API benchmark\n\n");
    s.push_str("Produced by `cargo run --release -p rotor-bench`; see `bench/README.md`.\n\n");
    let _ = writeln!(s, "- Date: {}", r.date);
    let _ = writeln!(
        s,
        "- Machine: {} cores ({}); load generator: {} tokio worker threads, on the same machine as the server",
        r.cores, r.os, r.loadgen_threads
    );
    if let Some(load) = &r.loadavg_at_start {
        let _ = writeln!(s, "- Load average at start: {load}");
    }
    let _ = writeln!(
        s,
        "- Each scenario: {} s warmup + {} s measured; reads with {} keep-alive HTTP/1.1 connections, durable writes with 1 and {} writers, one request in flight per connection",
        r.warmup_secs, r.measure_secs, r.connections, r.writers
    );
    let _ = writeln!(
        s,
        "- Rotor: `{}`{}",
        r.rotor,
        r.git_rev
            .as_ref()
            .map_or(String::new(), |g| format!(" at git `{g}`"))
    );
    let _ = writeln!(
        s,
        "- Secret value: {} bytes; native read response body: {}; floor response body: {}",
        r.secret_value_bytes,
        r.native_read_body_bytes
            .map_or("unknown".to_string(), |n| format!("{n} bytes")),
        r.floor_body_bytes
            .map_or("–".to_string(), |n| format!("{n} bytes"))
    );
    if r.flagged {
        s.push_str("\n**⚠ This run is flagged: some scenario had errors or did not run; its figures are not comparable.**\n");
    }
    s.push_str("\n## Results\n\n");
    s.push_str(&tables(r));
    let errored: Vec<&Scenario> = r.scenarios.iter().filter(|s| s.errors > 0).collect();
    if !errored.is_empty() {
        s.push_str("\n## Errors\n\n");
        for sc in errored {
            let _ = writeln!(s, "- {}: {:?}", sc.title, sc.error_kinds);
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
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }
}
