//! Request metrics in Prometheus text format: counts by API, operation and status,
//! and latency by operation. Labels come from fixed sets, never from request data.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
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

/// Records one request.
pub fn observe(api: &'static str, operation: &'static str, status: u16, start: Instant) {
    let class = match status {
        200..=299 => "2xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("rotor_requests_total", "api" => api, "operation" => operation, "status" => class)
        .increment(1);
    metrics::histogram!("rotor_request_duration_seconds", "api" => api, "operation" => operation)
        .record(start.elapsed().as_secs_f64());
}
