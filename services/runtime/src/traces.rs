//! OpenTelemetry traces. Hookline traces what its producers trace: a span is started only
//! under a valid W3C `traceparent` carried by the event (Kafka header or `Event.trace`), and
//! the sampled flag of that parent decides whether it is exported. With no exporter set up
//! (`traces.otlp_endpoint` empty), spans are no-ops that pass the parent context through,
//! and events without a trace context cost nothing.

use hookline_core::config::TracesConfig;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{global, Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::collections::HashMap;

pub use opentelemetry::trace::SpanKind as Kind;
pub use opentelemetry::KeyValue as Attribute;

/// Keeps the exporter running; flushes and stops it when dropped.
pub struct Traces {
    provider: SdkTracerProvider,
}

/// Runs `f`, which blocks, without stalling an async runtime it may be called from.
fn blocking(f: impl FnOnce()) {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::task::block_in_place(f),
        Err(_) => f(),
    }
}

impl Traces {
    /// Exports every span ended so far (blocking).
    pub fn flush(&self) {
        blocking(|| {
            if let Err(error) = self.provider.force_flush() {
                tracing::warn!(%error, "traces: flush failed");
            }
        });
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        // Shutdown blocks until the export thread has sent what it holds.
        blocking(|| {
            if let Err(error) = self.provider.shutdown() {
                eprintln!("traces: shutdown: {error}");
            }
        });
    }
}

/// Installs the OTLP/HTTP exporter when `traces.otlp_endpoint` is set; `role` names the
/// process in the resource (`hookline.role`).
pub fn init(cfg: &TracesConfig, role: &str) -> anyhow::Result<Option<Traces>> {
    if cfg.otlp_endpoint.is_empty() {
        return Ok(None);
    }
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(cfg.otlp_endpoint.clone())
        .with_headers(cfg.otlp_headers.clone().into_iter().collect())
        .with_timeout(std::time::Duration::from_secs(10))
        .build()?;
    let resource = Resource::builder()
        .with_service_name(cfg.service_name.clone())
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("hookline.role", role.to_owned()),
        ])
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        // Only under a producer's sampled context; never a root of our own.
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
        .with_resource(resource)
        .build();
    global::set_tracer_provider(provider.clone());
    tracing::info!(endpoint = %cfg.otlp_endpoint, "exporting traces over OTLP/HTTP");
    Ok(Some(Traces { provider }))
}

/// The W3C context in `traceparent` (and `tracestate`), if it is valid.
pub fn parent(traceparent: &str, tracestate: &str) -> Option<Context> {
    if traceparent.is_empty() {
        return None;
    }
    let mut carrier = HashMap::with_capacity(2);
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    if !tracestate.is_empty() {
        carrier.insert("tracestate".to_owned(), tracestate.to_owned());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// One span of Hookline's work under a producer's trace.
pub struct Span {
    cx: Context,
}

impl Span {
    /// Starts `name` as a child of `parent`.
    pub fn start(name: &'static str, kind: SpanKind, parent: &Context, attributes: Vec<KeyValue>) -> Self {
        let tracer = global::tracer("hookline");
        let span = tracer.span_builder(name).with_kind(kind).with_attributes(attributes).start_with_context(&tracer, parent);
        Self { cx: parent.with_span(span) }
    }

    /// This span's context as a `traceparent` value, for the next hop. Without an exporter
    /// it is the parent's, so the producer's context still travels on.
    pub fn traceparent(&self) -> String {
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&self.cx, &mut carrier);
        carrier.remove("traceparent").unwrap_or_default()
    }

    pub fn set(&self, attribute: KeyValue) {
        self.cx.span().set_attribute(attribute);
    }

    /// Marks the span failed with `message`.
    pub fn fail(&self, message: String) {
        self.cx.span().set_status(Status::error(message));
    }

    pub fn end(self) {
        self.cx.span().end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn only_a_valid_parent_starts_a_span() {
        assert!(parent("", "").is_none());
        assert!(parent("garbage", "").is_none());
        assert!(parent("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "").is_none(), "all-zero trace id");
        let cx = parent(PARENT, "vendor=x").expect("valid");
        assert_eq!(cx.span().span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn without_an_exporter_the_parent_context_passes_through() {
        let cx = parent(PARENT, "").expect("valid");
        let span = Span::start("hookline.test", SpanKind::Internal, &cx, vec![KeyValue::new("k", "v")]);
        assert_eq!(span.traceparent(), PARENT);
        span.end();
    }
}
