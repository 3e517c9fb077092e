//! Span shapes shared by every service.

/// The server span of one RPC, named `<package.Service>/<Method>` as the OpenTelemetry
/// RPC conventions ask; `tenant.id` and `project.id` are recorded after authentication.
pub fn grpc_server_span(path: &str) -> tracing::Span {
    let full = path.trim_start_matches('/');
    let (service, method) = full.split_once('/').unwrap_or((full, ""));
    tracing::info_span!(
        "grpc.server",
        otel.name = %full,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
        rpc.grpc.deadline_ms = tracing::field::Empty,
        tenant.id = tracing::field::Empty,
        project.id = tracing::field::Empty,
    )
}

/// Records the gRPC status code of a finished call on `span`; errors mark the span as failed.
pub fn record_grpc_status(span: &tracing::Span, code: i32) {
    span.record("rpc.grpc.status_code", code);
    if code != 0 {
        span.record("otel.status_code", "ERROR");
    }
}

/// Records the deadline the call arrived with, in milliseconds.
pub fn record_deadline(span: &tracing::Span, deadline: std::time::Duration) {
    span.record(
        "rpc.grpc.deadline_ms",
        i64::try_from(deadline.as_millis()).unwrap_or(i64::MAX),
    );
}

/// Records the caller's tenant and project on `span`.
pub fn record_tenant(span: &tracing::Span, tenant_id: &str, project_id: &str) {
    span.record("tenant.id", tenant_id);
    span.record("project.id", project_id);
}
