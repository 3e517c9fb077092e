//! Tracing and OpenTelemetry set-up, W3C context propagation across gRPC and HTTP
