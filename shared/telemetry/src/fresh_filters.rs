//! Keeps per-layer filter decisions from leaking from one callsite to the next.
//!
//! tracing-subscriber hands each per-layer filter's decision from `enabled()` to the span or
//! event that follows through thread-local state. A callsite whose interest is cached as
//! "always" skips `enabled()`, so its span reads whatever the previous `enabled()` call left
//! there. `log::log_enabled!` through `LogTracer` (sqlx asks it after every statement) is
//! such a call: the next span, e.g. a sync worker's `sync.page` opened right after claiming
//! its slice, came out disabled for the log layer, and the log lines inside it had no span
//! and no `tenant.id` (tokio-rs/tracing#2519; upstream fix proposed in #3572, unreleased).
//!
//! [`FreshFilters`] caps every callsite's interest at "sometimes", so `enabled()` runs — and
//! rewrites every per-layer decision — before each span and event. It enables everything
//! itself and gives no level hint, so the other layers' filtering and the static level
//! check are unchanged.

use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer};

/// A layer that makes every callsite ask the filters again each time (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct FreshFilters;

impl<S: Subscriber> Layer<S> for FreshFilters {
    fn register_callsite(&self, _metadata: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, _metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        true
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::OFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;

    /// Lines written by the log layer.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The process's layers (an INFO-filtered layer standing in for OpenTelemetry, the JSON
    /// log layer with its own filter, which — like an operator's `…::worker=debug` — lets
    /// DEBUG checks past the static level check), a `log_enabled!` check as sqlx makes after
    /// every statement, then a span with a log line in it; returns the log lines. Without
    /// [`FreshFilters`] the line has no span.
    fn log_lines(fresh: bool) -> Vec<String> {
        let _ = tracing_log::LogTracer::init();
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::sink)
                    .with_filter(LevelFilter::INFO),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(move || writer.clone())
                    .with_filter(EnvFilter::new("info,syncline_telemetry=debug")),
            )
            .with(fresh.then_some(FreshFilters));
        tracing::subscriber::with_default(subscriber, || {
            // Twice: the first pass registers the callsites and caches their interest.
            for _ in 0..2 {
                let _ = log::log_enabled!(target: "sqlx::query", log::Level::Debug);
                let span = tracing::info_span!(parent: None, "sync.page", tenant.id = "acme");
                span.in_scope(|| tracing::info!("sync page committed"));
            }
        });
        let text = String::from_utf8(lines.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default();
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn a_span_opened_after_a_log_enabled_check_is_in_the_log_lines_inside_it() {
        let lines = log_lines(true);
        assert_eq!(lines.len(), 2, "{lines:?}");
        for line in &lines {
            assert!(line.contains(r#""tenant.id":"acme""#), "{line}");
        }
    }
}
