//! What the process benchmarks share: starting `rotor server` and waiting for its
//! listening line, calling the native API, and percentiles.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A running `rotor server`, killed when dropped.
pub struct Server {
    pub child: tokio::process::Child,
    pub url: String,
}

/// Starts `cmd` (a `rotor server ...` command), quiet, and waits until it prints
/// `rotor listening on URL`.
pub async fn start(mut cmd: tokio::process::Command) -> Result<Server> {
    let mut child = cmd
        .env("ROTOR_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting rotor server")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the server did not start")??
            .context("the server exited")?;
        if let Some(url) = line.strip_prefix("rotor listening on ") {
            break url.to_string();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server { child, url })
}

/// A native API call with a bearer token; the answer's JSON (`null` when empty).
pub async fn call(
    http: &reqwest::Client,
    token: &str,
    method: reqwest::Method,
    url: String,
    body: Value,
) -> Result<Value> {
    let r = http
        .request(method, url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let text = r.text().await?;
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The `q` quantile of sorted samples.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
