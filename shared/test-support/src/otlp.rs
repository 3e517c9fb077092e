//! An in-process OTLP/gRPC trace receiver, and the test binary's telemetry pointed at it.
//!
//! The tracer provider and the receiver live on a runtime of their own (a background
//! thread), so they outlive each test's runtime. Tests flush, then wait on the receiver for
//! the spans they expect; nothing sleeps.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use tokio::sync::watch;

/// One received span, flattened for assertions.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// Hex trace id.
    pub trace_id: String,
    /// Hex span id.
    pub span_id: String,
    /// Hex parent span id; empty for a root.
    pub parent_span_id: String,
    /// Span name.
    pub name: String,
    /// String-valued attributes.
    pub attributes: HashMap<String, String>,
}

#[derive(Default)]
struct Store {
    spans: Mutex<Vec<ReceivedSpan>>,
}

struct Receiver {
    store: &'static Store,
    notify: watch::Sender<usize>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let attributes = span
                        .attributes
                        .iter()
                        .filter_map(|kv| {
                            let value = match kv.value.as_ref()?.value.as_ref()? {
                                AnyValue::StringValue(s) => s.clone(),
                                AnyValue::IntValue(i) => i.to_string(),
                                AnyValue::BoolValue(b) => b.to_string(),
                                AnyValue::DoubleValue(d) => d.to_string(),
                                _ => return None,
                            };
                            Some((kv.key.clone(), value))
                        })
                        .collect();
                    received.push(ReceivedSpan {
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name,
                        attributes,
                    });
                }
            }
        }
        let total = {
            let mut spans = self.store.spans.lock().expect("span store");
            spans.extend(received);
            spans.len()
        };
        self.notify.send_replace(total);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The test binary's telemetry: a global subscriber exporting to the in-process receiver.
pub struct TestTelemetry {
    store: &'static Store,
    notify: watch::Receiver<usize>,
    guard: Option<syncline_telemetry::TelemetryGuard>,
    runtime: tokio::runtime::Handle,
}

static TELEMETRY: OnceLock<TestTelemetry> = OnceLock::new();

/// Installs (once per test binary) the global subscriber and the receiver, and returns them.
/// Logs go to the test output when `SYNCLINE_TEST_LOG` holds a filter.
pub fn telemetry() -> &'static TestTelemetry {
    TELEMETRY.get_or_init(|| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        // A thread of its own, so the receiver and exporter outlive every test's runtime and
        // can be set up from inside one.
        std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("telemetry runtime");
                runtime.block_on(async move {
                    let store: &'static Store = Box::leak(Box::default());
                    let (notify_tx, notify) = watch::channel(0);
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind otlp receiver");
                    let addr = listener.local_addr().expect("receiver address");
                    tokio::spawn(
                        tonic::transport::Server::builder()
                            .add_service(TraceServiceServer::new(Receiver {
                                store,
                                notify: notify_tx,
                            }))
                            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                                listener,
                            )),
                    );
                    let log_filter = std::env::var("SYNCLINE_TEST_LOG").ok();
                    let guard = syncline_telemetry::init_for_tests(
                        Some(&format!("http://{addr}")),
                        log_filter.as_deref(),
                    )
                    .expect("test telemetry");
                    let telemetry = TestTelemetry {
                        store,
                        notify,
                        guard,
                        runtime: tokio::runtime::Handle::current(),
                    };
                    ready_tx.send(telemetry).expect("hand telemetry over");
                    std::future::pending::<()>().await;
                });
            })
            .expect("spawn telemetry thread");
        ready_rx.recv().expect("telemetry starts")
    })
}

impl TestTelemetry {
    /// Exports every finished span now (runs the blocking flush off the caller's runtime).
    pub async fn flush(&'static self) {
        let Some(guard) = &self.guard else { return };
        let provider = guard.provider().clone();
        let handle = self.runtime.clone();
        tokio::task::spawn_blocking(move || {
            let _entered = handle.enter();
            let _ = provider.force_flush();
        })
        .await
        .expect("flush task");
    }

    /// Waits until the received spans satisfy `done`, returning them; panics after `limit`.
    pub async fn wait_for(
        &'static self,
        limit: Duration,
        mut done: impl FnMut(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let mut notify = self.notify.clone();
        let wait = async {
            loop {
                {
                    let spans = self.store.spans.lock().expect("span store");
                    if done(&spans) {
                        return spans.clone();
                    }
                }
                if notify.changed().await.is_err() {
                    panic!("otlp receiver stopped");
                }
            }
        };
        match tokio::time::timeout(limit, wait).await {
            Ok(spans) => spans,
            Err(_) => {
                let spans = self.store.spans.lock().expect("span store");
                panic!(
                    "expected spans did not arrive within {limit:?}; received {} spans: {:#?}",
                    spans.len(),
                    spans
                        .iter()
                        .map(|s| (&s.name, &s.trace_id))
                        .collect::<Vec<_>>()
                )
            }
        }
    }
}
