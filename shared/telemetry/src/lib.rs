//! Tracing and OpenTelemetry for every Syncline process.
//!
//! [`init`] installs one global subscriber: human or JSON logs, plus an OpenTelemetry layer
//! whose spans leave by OTLP/gRPC when an endpoint is configured. Trace ids exist even when
//! nothing is exported, so errors and logs can always name the trace.
//!
//! [`propagation`] carries W3C trace context across gRPC and HTTP hops, and [`spans`] names
//! the server span of every RPC the same way in every service.

mod fresh_filters;
pub mod propagation;
pub mod spans;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How a process reports what it does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/gRPC collector endpoint, e.g. `http://127.0.0.1:4317`; traces are not exported
    /// when unset.
    pub otlp_endpoint: Option<String>,
    /// `tracing` filter directives, e.g. `info,syncline_gateway=debug`.
    pub log_filter: String,
    /// Log line format.
    pub log_format: LogFormat,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            log_filter: "info".to_owned(),
            log_format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Errors while setting telemetry up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (bad endpoint).
    #[error("failed to build the otlp exporter: {0}")]
    Exporter(String),
    /// The log filter did not parse.
    #[error("invalid log filter `{filter}`: {reason}")]
    Filter { filter: String, reason: String },
    /// A global subscriber was already installed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Flushes and shuts the tracer and meter providers down when dropped.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
    meters: Option<opentelemetry_sdk::metrics::SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Exports every finished span now; blocks the calling thread until the exporter answers.
    pub fn flush(&self) {
        if let Err(error) = self.provider.force_flush() {
            tracing::warn!(%error, "failed to flush spans");
        }
    }

    /// The provider, for tests that need to flush from a blocking task.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(meters) = &self.meters
            && let Err(error) = meters.shutdown()
        {
            eprintln!("failed to shut the meter provider down: {error}");
        }
        if let Err(error) = self.provider.shutdown() {
            eprintln!("failed to shut the tracer provider down: {error}");
        }
    }
}

/// Builds a tracer provider exporting to `otlp_endpoint` when one is given.
///
/// Must run inside a tokio runtime when an endpoint is set (the exporter's channel needs it).
pub fn tracer_provider(
    otlp_endpoint: Option<&str>,
    service_name: &str,
) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let builder = match otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
            builder.with_batch_exporter(exporter)
        }
        None => builder,
    };
    Ok(builder.build())
}

/// Builds a meter provider exporting to `otlp_endpoint` every 30 s; `None` without one
/// (instruments then cost nothing and record nowhere).
///
/// Must run inside a tokio runtime when an endpoint is set.
pub fn meter_provider(
    otlp_endpoint: Option<&str>,
    service_name: &str,
) -> Result<Option<opentelemetry_sdk::metrics::SdkMeterProvider>, TelemetryError> {
    let Some(endpoint) = otlp_endpoint else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    Ok(Some(
        opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_resource(resource)
            .with_periodic_exporter(exporter)
            .build(),
    ))
}

/// Installs the global subscriber (and, with an OTLP endpoint, the global meter provider)
/// for this process and returns the guard that flushes traces and metrics.
pub fn init(
    config: &TelemetryConfig,
    service_name: &str,
) -> Result<TelemetryGuard, TelemetryError> {
    let provider = tracer_provider(config.otlp_endpoint.as_deref(), service_name)?;
    let filter = EnvFilter::try_new(&config.log_filter).map_err(|e| TelemetryError::Filter {
        filter: config.log_filter.clone(),
        reason: e.to_string(),
    })?;
    let fmt = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_target(true).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().boxed(),
    };
    tracing_subscriber::registry()
        .with(otel_layer(&provider))
        .with(fmt.with_filter(filter))
        .with(fresh_filters::FreshFilters)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    let meters = meter_provider(config.otlp_endpoint.as_deref(), service_name)?;
    if let Some(meters) = &meters {
        opentelemetry::global::set_meter_provider(meters.clone());
    }
    Ok(TelemetryGuard { provider, meters })
}

/// Installs a subscriber that only exports spans (no log output unless `log_filter` is set),
/// for test binaries that receive OTLP in process. Returns `None` when one is installed already.
pub fn init_for_tests(
    otlp_endpoint: Option<&str>,
    log_filter: Option<&str>,
) -> Result<Option<TelemetryGuard>, TelemetryError> {
    let provider = tracer_provider(otlp_endpoint, "syncline-test")?;
    let logs = log_filter.map(|f| {
        tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_filter(EnvFilter::new(f))
    });
    match tracing_subscriber::registry()
        .with(otel_layer(&provider))
        .with(logs)
        .with(fresh_filters::FreshFilters)
        .try_init()
    {
        Ok(()) => Ok(Some(TelemetryGuard {
            provider,
            meters: None,
        })),
        Err(_) => Ok(None),
    }
}

/// Spans at INFO and above become OpenTelemetry spans; the DEBUG/TRACE spans of libraries
/// (hyper, h2, tower) stay out of traces.
fn otel_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("syncline"))
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
}

/// The W3C trace id of the current span, when there is one.
pub fn current_trace_id() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}
