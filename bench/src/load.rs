//! The load generator: one task per keep-alive HTTP/1.1 connection, each sending one
//! request at a time over hyper's low-level client connection, for a fixed warmup and
//! measurement window and at most a fixed number of requests.

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Builds the `n`th request of a run (`n` counts across all connections).
pub type MakeRequest = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// A request sent unchanged every time: method, path, headers and body.
#[derive(Clone)]
pub struct Template {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Template {
    pub fn request(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.path.parse().expect("template path is a valid URI");
        *req.headers_mut() = self.headers.clone();
        req
    }

    pub fn into_maker(self) -> MakeRequest {
        Arc::new(move |_| self.request())
    }
}

/// How a run is bounded.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub connections: usize,
    pub warmup: Duration,
    pub measure: Duration,
    /// Requests at most across all connections, warmup included.
    pub max_requests: u64,
    /// One request (response body included) taking longer than this is an error.
    pub request_timeout: Duration,
    /// Requests per second across all connections, sent on a schedule (open loop),
    /// or `None` to send each request as soon as the last one answered (saturation).
    /// A paced request's latency counts from when it was due, so a slow answer that
    /// delays the next request shows in that one's latency too.
    pub rate: Option<f64>,
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// 2xx responses to requests started inside the measurement window.
    pub ok: u64,
    /// Non-2xx responses, transport errors and timeouts, warmup included.
    pub errors: u64,
    /// Error counts by kind ("status 500", "transport: ...", "timeout", "connect: ...").
    pub error_kinds: BTreeMap<String, u64>,
    /// The first non-2xx response: status and the start of its body.
    pub first_error: Option<String>,
    /// TCP connections opened (more than `connections` when the server closes them).
    pub connections_opened: u64,
    /// Seconds from the start of the measurement window to the last measured response.
    pub measured_secs: f64,
    /// Latencies of the measured 2xx responses, sorted, in nanoseconds.
    pub latencies_ns: Vec<u64>,
}

impl Outcome {
    pub fn rps(&self) -> f64 {
        if self.measured_secs > 0.0 {
            self.ok as f64 / self.measured_secs
        } else {
            0.0
        }
    }

    /// The `q` quantile (0..=1) of the latencies, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let n = self.latencies_ns.len();
        if n == 0 {
            return None;
        }
        let idx = ((n - 1) as f64 * q).round() as usize;
        Some(self.latencies_ns[idx.min(n - 1)] as f64 / 1e6)
    }
}

#[derive(Default)]
struct TaskStats {
    ok: u64,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
    first_error: Option<String>,
    connections_opened: u64,
    last_done: Option<Instant>,
    latencies_ns: Vec<u64>,
}

impl TaskStats {
    fn error(&mut self, kind: String) {
        self.errors += 1;
        *self.error_kinds.entry(kind).or_default() += 1;
    }
}

/// Runs `make` against `addr` with `plan.connections` connections and merges the results.
pub async fn run(addr: SocketAddr, make: MakeRequest, plan: Plan) -> Outcome {
    let start = Instant::now();
    let measure_start = start + plan.warmup;
    let end = measure_start + plan.measure;
    let issued = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(plan.connections);
    for i in 0..plan.connections {
        let make = make.clone();
        let issued = issued.clone();
        // Paced connections share the rate, each starting a slice of the interval
        // after the one before, so that requests arrive evenly.
        let pace = plan.rate.map(|rate| {
            let every = Duration::from_secs_f64(plan.connections as f64 / rate);
            (
                start + every.mul_f64(i as f64 / plan.connections as f64),
                every,
            )
        });
        tasks.push(tokio::spawn(connection_task(
            addr,
            make,
            measure_start,
            end,
            issued,
            plan,
            pace,
        )));
    }
    let mut out = Outcome::default();
    let mut last_done = measure_start;
    for task in tasks {
        let stats = match task.await {
            Ok(s) => s,
            Err(e) => {
                out.errors += 1;
                *out.error_kinds.entry(format!("task: {e}")).or_default() += 1;
                continue;
            }
        };
        out.ok += stats.ok;
        out.errors += stats.errors;
        for (k, v) in stats.error_kinds {
            *out.error_kinds.entry(k).or_default() += v;
        }
        if out.first_error.is_none() {
            out.first_error = stats.first_error;
        }
        out.connections_opened += stats.connections_opened;
        if let Some(t) = stats.last_done {
            last_done = last_done.max(t);
        }
        out.latencies_ns.extend(stats.latencies_ns);
    }
    out.latencies_ns.sort_unstable();
    out.measured_secs = (last_done - measure_start).as_secs_f64();
    out
}

async fn connect(addr: SocketAddr) -> Result<http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await.context("connect")?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .context("handshake")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn connection_task(
    addr: SocketAddr,
    make: MakeRequest,
    measure_start: Instant,
    end: Instant,
    issued: Arc<AtomicU64>,
    plan: Plan,
    mut pace: Option<(Instant, Duration)>,
) -> TaskStats {
    let mut stats = TaskStats::default();
    let mut connect_failures = 0u32;
    'connections: while Instant::now() < end {
        let mut sender = match connect(addr).await {
            Ok(s) => {
                connect_failures = 0;
                stats.connections_opened += 1;
                s
            }
            Err(e) => {
                stats.error(format!("connect: {e:#}"));
                connect_failures += 1;
                // Back off so that a dead server does not turn into a busy loop.
                tokio::time::sleep(Duration::from_millis(
                    10 * u64::from(connect_failures.min(50)),
                ))
                .await;
                continue;
            }
        };
        loop {
            if Instant::now() >= end {
                break 'connections;
            }
            // A connection the server closed (no keep-alive) fails here: open another.
            if sender.ready().await.is_err() {
                continue 'connections;
            }
            let n = issued.fetch_add(1, Ordering::Relaxed);
            if n >= plan.max_requests {
                break 'connections;
            }
            let req = make(n);
            let sent = match &mut pace {
                Some((due, every)) => {
                    tokio::time::sleep_until((*due).into()).await;
                    let this = *due;
                    *due += *every;
                    this
                }
                None => Instant::now(),
            };
            let result = tokio::time::timeout(plan.request_timeout, async {
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                let body = resp.into_body().collect().await?.to_bytes();
                Ok::<(StatusCode, Bytes), hyper::Error>((status, body))
            })
            .await;
            let done = Instant::now();
            let measured = sent >= measure_start && sent < end;
            match result {
                Ok(Ok((status, _))) if status.is_success() => {
                    if measured {
                        stats.ok += 1;
                        stats.latencies_ns.push((done - sent).as_nanos() as u64);
                        stats.last_done = Some(done);
                    }
                }
                Ok(Ok((status, body))) => {
                    stats.error(format!("status {}", status.as_u16()));
                    if stats.first_error.is_none() {
                        let text = String::from_utf8_lossy(&body);
                        let text: String = text.chars().take(300).collect();
                        stats.first_error = Some(format!("{status}: {text}"));
                    }
                }
                // The connection closed before the request went out (a server that
                // does not keep connections alive): not an error, open another.
                Ok(Err(e)) if e.is_canceled() => continue 'connections,
                Ok(Err(e)) => {
                    stats.error(format!("transport: {e}"));
                    continue 'connections;
                }
                Err(_) => {
                    stats.error("timeout".to_string());
                    continue 'connections;
                }
            }
        }
    }
    stats
}

/// Sends one request on a fresh connection; returns the status and the body.
pub async fn once(addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes)> {
    let mut sender = connect(addr).await?;
    let resp = tokio::time::timeout(Duration::from_secs(30), async {
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>((status, body))
    })
    .await
    .context("request timed out")??;
    Ok(resp)
}
