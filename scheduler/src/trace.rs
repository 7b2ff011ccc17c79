//! Trace context in message headers: how one trace follows a job from the
//! API's request, through the outbox and the queue, to the worker and back.
//!
//! The W3C `traceparent` (and `tracestate`) of the sending span travel as
//! AMQP headers, exactly as they would as HTTP headers; the receiving side
//! makes its span a child of them. The propagator is the process-wide one the
//! binary installs when tracing is switched on. While it is off, nothing is
//! written and nothing is read: no headers, no cost, and a message from an
//! older sender (no headers) simply starts a new trace.

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The headers that carry a trace context, as the W3C spells them.
pub const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// The context of `span` as header pairs; empty while tracing is off or the
/// span is not sampled into a trace.
pub fn headers_of(span: &tracing::Span) -> Vec<(String, String)> {
    let context = span.context();
    let mut carrier = Carrier(Vec::new());
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut carrier));
    carrier.0
}

/// The context of the span the caller is in; see [`headers_of`].
pub fn current_headers() -> Vec<(String, String)> {
    headers_of(&tracing::Span::current())
}

/// Makes `span` a child of the trace context in `headers`, if they carry
/// one. Call it before the span is first entered.
pub fn continue_from<'a>(span: &tracing::Span, headers: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let carrier = Carrier(
        headers
            .into_iter()
            .filter(|(key, _)| TRACE_HEADERS.iter().any(|name| key.eq_ignore_ascii_case(name)))
            .map(|(key, value)| (key.to_ascii_lowercase(), value.to_string()))
            .collect(),
    );
    if carrier.0.is_empty() {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&carrier));
    // Fails only when tracing is off (no OpenTelemetry layer) or the span is
    // filtered out: then there is no trace to continue, and that is fine.
    let _ = span.set_parent(parent);
}

/// Header pairs, as the propagator reads and writes them.
struct Carrier(Vec<(String, String)>);

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_string(), value));
    }
}

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}
