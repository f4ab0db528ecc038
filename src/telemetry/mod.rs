//! Logging (and, later, metrics and the health server).

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Structured logs to stderr; `RUST_LOG` overrides the default `info` level.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}
