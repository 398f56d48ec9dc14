//! Logs (JSON through tracing), traces (OpenTelemetry, exported over OTLP
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` is set) and Prometheus metrics.
//!
//! One trace follows an order through the fleet: the poller's sync run is its
//! root, every message carries a W3C `traceparent` naming the span that sent
//! it, and each worker handles a message in a span that is that span's child.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::collections::HashMap;
use std::sync::OnceLock;
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Flushes the spans still buffered when dropped (at process exit).
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("could not flush traces: {error}");
        }
    }
}

/// JSON logs to stdout, filtered by `RUST_LOG` (default `info`); `LOG_FORMAT=text`
/// gives human-readable lines for local runs. Spans get OpenTelemetry ids
/// always (they are logged as `trace_id` and carried by messages) and are
/// exported only when an OTLP endpoint is configured (the standard
/// `OTEL_EXPORTER_OTLP_*` variables; protocol http/protobuf unless
/// `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`).
pub fn init(service: &str) -> Telemetry {
    let mut provider = SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(
                std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned()),
            )
            .build(),
    );
    let otlp_configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
    if otlp_configured {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => provider = provider.with_batch_exporter(exporter),
            Err(error) => {
                eprintln!("{service}: OTLP export disabled, check OTEL_EXPORTER_OTLP_*: {error}")
            }
        }
    }
    let provider = provider.build();
    let tracer = provider.tracer("stockfleet");

    // RUST_LOG filters the logs only: traces keep our own spans whatever the
    // log level, so an operator quietening logs does not lose traces.
    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let traces = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(Targets::new().with_target("stockfleet", Level::INFO));
    let registry = tracing_subscriber::registry().with(traces);
    let result = if std::env::var("LOG_FORMAT").as_deref() == Ok("text") {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(true)
                    .with_filter(log_filter),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_target(true)
                    .with_filter(log_filter),
            )
            .try_init()
    };
    // A second init (tests) keeps the first subscriber.
    drop(result);
    Telemetry { provider }
}

/// The span one message is handled in: a child of the span that sent it
/// (its `traceparent`), named after the queue and the message type.
pub fn message_span(queue: &str, message_id: &str, traceparent: Option<&str>) -> Span {
    let span = tracing::info_span!(
        "handle",
        otel.name = format!("handle {queue}"),
        otel.kind = "consumer",
        messaging.destination.name = queue,
        messaging.message.id = message_id,
        trace_id = tracing::field::Empty,
    );
    if let Some(traceparent) = traceparent {
        let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
        // Fails only without the OpenTelemetry layer (in-process test workers).
        drop(span.set_parent(TraceContextPropagator::new().extract(&carrier)));
    }
    record_trace_id(&span);
    span
}

/// Records the span's trace id as its `trace_id` field, so its log lines carry it.
pub fn record_trace_id(span: &Span) {
    if let Some(context) = span_context(span) {
        span.record("trace_id", context.trace_id().to_string());
    }
}

fn span_context(span: &Span) -> Option<opentelemetry::trace::SpanContext> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// The `traceparent` a message carries: `parent` when it is given (the span
/// handling the message that caused this one), else the current span's, else
/// a new trace (a process without the OpenTelemetry layer).
pub fn traceparent(parent: Option<&str>) -> String {
    if let Some(parent) = parent.filter(|p| is_traceparent(p)) {
        return parent.to_owned();
    }
    traceparent_of(&Span::current()).unwrap_or_else(|| {
        let trace_id = uuid::Uuid::new_v4().simple().to_string();
        let span_id = &uuid::Uuid::new_v4().simple().to_string()[..16];
        format!("00-{trace_id}-{span_id}-01")
    })
}

/// The `traceparent` of `span`, when it has OpenTelemetry ids.
pub fn traceparent_of(span: &Span) -> Option<String> {
    span_context(span).map(|c| format!("00-{}-{}-01", c.trace_id(), c.span_id()))
}

fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    parts.len() == 4
        && [2, 32, 16, 2]
            .iter()
            .zip(&parts)
            .all(|(len, part)| part.len() == *len && part.bytes().all(|b| b.is_ascii_hexdigit()))
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
            // The cross-marketplace race spans rate limits and retries: seconds to minutes.
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(
                    "stockfleet_pool_propagation_seconds".to_owned(),
                ),
                &[
                    0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                ],
            )
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder is installed: then ours stays unused.
        drop(metrics::set_global_recorder(recorder));
        crate::metrics_catalog::describe();
        handle
    })
}

/// Times the consecutive stages of one piece of work (a batch, a relay
/// round) into `stockfleet_stage_seconds{stage}`: its sum over a run says
/// where the time goes (`locker_throughput` prints it).
pub struct StageClock {
    last: std::time::Instant,
}

impl StageClock {
    pub fn start() -> Self {
        Self {
            last: std::time::Instant::now(),
        }
    }

    /// Records the time since the previous lap (or the start) as `stage`.
    pub fn lap(&mut self, stage: &'static str) {
        let now = std::time::Instant::now();
        metrics::histogram!("stockfleet_stage_seconds", "stage" => stage)
            .record((now - self.last).as_secs_f64());
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_continues_its_parent_and_a_root_starts_a_trace() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(traceparent(Some(parent)), parent);
        let root = traceparent(None);
        assert!(is_traceparent(&root), "{root}");
        assert_ne!(root, traceparent(None));
        assert!(is_traceparent(&traceparent(Some("garbage"))));
        assert!(!is_traceparent("00-abc-def-01"));
    }
}
