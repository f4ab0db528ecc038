//! Logging, the Prometheus metrics registry and the HTTP server for /metrics, /healthz, /readyz.

mod metrics;
mod repository_gauges;
mod server;

pub use metrics::{AwsMetrics, BudgetMetrics, Metrics, ObjectKey};
pub use server::{Health, serve};

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Structured logs to stderr; `RUST_LOG` overrides the default `info` level. In JSON each line
/// carries the fields of its spans (kind, namespace, name of the reconcile).
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
        LogFormat::Text => builder.init(),
    }
}
