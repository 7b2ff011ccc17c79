//! Logs and traces for the long-running commands: JSON or readable log lines
//! on stderr, and, when `FARM_OTLP_ENDPOINT` is set, OpenTelemetry spans
//! exported over OTLP/HTTP.
//!
//! Tracing is off by default: no exporter, no propagator, so messages carry
//! no trace headers and nothing leaves the process. Switched on, every HTTP
//! request, outbox publish, job and consumed result is a span, and
//! `scheduler::trace` carries the context through the queue.

use std::io::IsTerminal;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::{LogFormat, OtlpProtocol, TracingArgs};

/// Flushes the spans still buffered when dropped: hold it until the process
/// is about to exit, outside the async runtime (the exporter blocks).
#[must_use = "dropping the guard flushes and stops trace export"]
pub(crate) struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "could not flush the last spans");
        }
    }
}

/// Logs go to stderr, so stdout carries only command output. `RUST_LOG`
/// overrides the level.
pub(crate) fn init_logs(format: LogFormat, default_level: &str) {
    // Only the long-running commands export traces.
    let _ = init(format, default_level, None, "farm");
}

/// Logs, and traces when `tracing.otlp_endpoint` is set.
/// `service` names the process in traces unless `FARM_SERVICE_NAME` does.
pub(crate) fn init(
    format: LogFormat,
    default_level: &str,
    tracing: Option<&TracingArgs>,
    service: &str,
) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    // JSON lines carry the fields of every span they are in (`spans`), so a
    // line logged deep inside a job still has the job's id.
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = if json {
        logs.json().flatten_event(true).with_current_span(false).with_span_list(true).boxed()
    } else {
        logs.boxed()
    };
    let service = tracing.and_then(|t| t.service_name.clone()).unwrap_or_else(|| service.to_string());
    let provider = match tracing.and_then(|t| t.otlp_endpoint.as_deref().map(|endpoint| (t, endpoint))) {
        Some((args, endpoint)) => Some(tracer_provider(args, endpoint, &service)?),
        None => None,
    };
    let spans = provider.as_ref().map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("farm")));
    // Fails only when a subscriber is already set (a test harness): keep it.
    let _ = tracing_subscriber::registry().with(filter).with(logs).with(spans).try_init();
    if let (Some(args), Some(_)) = (tracing, &provider) {
        tracing::info!(
            endpoint = args.otlp_endpoint.as_deref().unwrap_or_default(),
            %service,
            sample_ratio = args.trace_sample_ratio,
            "exporting traces over OTLP"
        );
    }
    Ok(Telemetry { provider })
}

fn tracer_provider(args: &TracingArgs, endpoint: &str, service: &str) -> anyhow::Result<SdkTracerProvider> {
    let ratio = args.trace_sample_ratio;
    if !(0.0..=1.0).contains(&ratio) {
        anyhow::bail!("FARM_TRACE_SAMPLE_RATIO must be between 0 and 1, got {ratio}");
    }
    // The OTLP/HTTP convention: the endpoint is the collector's base URL and
    // traces go to `/v1/traces` under it.
    let base = endpoint.trim_end_matches('/');
    let url = if base.ends_with("/v1/traces") { base.to_string() } else { format!("{base}/v1/traces") };
    let protocol = match args.otlp_protocol {
        OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
        OtlpProtocol::HttpJson => Protocol::HttpJson,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(url.clone())
        .build()
        .with_context(|| format!("cannot set up trace export to `{url}` (FARM_OTLP_ENDPOINT)"))?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        // A caller that sampled its trace gets ours too; new traces by ratio.
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))))
        .with_resource(Resource::builder().with_service_name(service.to_string()).build())
        .build())
}
