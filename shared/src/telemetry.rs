//! Logs (JSON through tracing) and Prometheus metrics.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

/// JSON logs to stdout, filtered by `RUST_LOG` (default `info`). `LOG_FORMAT=text`
/// gives human-readable lines for local runs.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    let result = if std::env::var("LOG_FORMAT").as_deref() == Ok("text") {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    };
    // A second init (tests) keeps the first subscriber.
    drop(result);
}

/// The process-wide Prometheus recorder, installed on first use: call it before
/// the first metric is recorded (health::serve does), or that metric is dropped.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder is installed: then ours stays unused.
        drop(metrics::set_global_recorder(recorder));
        handle
    })
}
