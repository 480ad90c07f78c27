//! Request metrics in Prometheus text format: counts by API, operation and status,
//! and latency by operation. Labels come from fixed sets, never from request data.

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once; later calls return the same handle.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed");
                None
            }
        })
        .clone()
}

type HandleKey = (&'static str, &'static str, &'static str);

/// Handles already registered, so that the hot path skips the registry lookup.
static HANDLES: OnceLock<RwLock<HashMap<HandleKey, (Counter, Histogram)>>> = OnceLock::new();

fn handles(
    api: &'static str,
    operation: &'static str,
    class: &'static str,
) -> (Counter, Histogram) {
    let table = HANDLES.get_or_init(Default::default);
    let key = (api, operation, class);
    if let Some(h) = table.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return h.clone();
    }
    let h = (
        metrics::counter!("rotor_requests_total", "api" => api, "operation" => operation, "status" => class),
        metrics::histogram!("rotor_request_duration_seconds", "api" => api, "operation" => operation),
    );
    table
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, h.clone());
    h
}

/// Records one request.
pub fn observe(api: &'static str, operation: &'static str, status: u16, start: Instant) {
    let class = match status {
        200..=299 => "2xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    let (count, latency) = handles(api, operation, class);
    count.increment(1);
    latency.record(start.elapsed().as_secs_f64());
}
