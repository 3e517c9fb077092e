//! Forwarding public gRPC calls to the backend that owns them.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use std::sync::Arc;
use syncline_config::{BackendsConfig, ServiceName};
use syncline_domain::{ApiError, ErrorCode};
use syncline_service_kit::deadline;
use syncline_service_kit::internal_auth::{self, CallerOrigin};
use syncline_telemetry::{propagation, spans};
use tonic::transport::Channel;
use tower::ServiceExt;
use tracing::Instrument;

use crate::Gateway;
use crate::jwt::AuthError;

/// Channels to every backend.
#[derive(Debug, Clone)]
pub(crate) struct Backends {
    auth_vault: Channel,
    schema_discovery: Channel,
    mapping: Channel,
    sync_engine: Channel,
    conflict_resolver: Channel,
}

impl Backends {
    pub(crate) fn connect(config: &BackendsConfig) -> Result<Self, tonic::transport::Error> {
        use syncline_service_kit::client::channel;
        Ok(Self {
            auth_vault: channel(&config.auth_vault)?,
            schema_discovery: channel(&config.schema_discovery)?,
            mapping: channel(&config.mapping)?,
            sync_engine: channel(&config.sync_engine)?,
            conflict_resolver: channel(&config.conflict_resolver)?,
        })
    }

    /// The backend serving a fully-qualified gRPC service, by its package.
    pub(crate) fn for_service(&self, service: &str) -> Option<(ServiceName, Channel)> {
        let package = service.strip_prefix("syncline.")?.split('.').next()?;
        let (name, channel) = match package {
            "authvault" => (ServiceName::AuthVault, &self.auth_vault),
            "schema" => (ServiceName::SchemaDiscovery, &self.schema_discovery),
            "mapping" => (ServiceName::Mapping, &self.mapping),
            "sync" => (ServiceName::SyncEngine, &self.sync_engine),
            "conflict" => (ServiceName::ConflictResolver, &self.conflict_resolver),
            _ => return None,
        };
        Some((name, channel.clone()))
    }
}

/// Headers never forwarded: the caller's credentials, anything claiming to be internal,
/// trace context (replaced by the gateway's span), the deadline (recomputed) and hop-by-hop.
fn is_stripped(name: &str) -> bool {
    name == "authorization"
        || name.starts_with("x-syncline-")
        || name == "traceparent"
        || name == "tracestate"
        || name == "grpc-timeout"
        || name == "host"
        || name == "connection"
}

/// Handles one gRPC call (any path the router does not serve itself).
pub(crate) async fn forward(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let span = spans::grpc_server_span(&path);
    propagation::adopt_remote_parent(&span, request.headers());
    let record = span.clone();
    async move {
        let response = match forward_inner(&gateway, request, &path, &record).await {
            Ok(response) => response,
            Err(status) => status.into_http(),
        };
        let code = match response.headers().get("grpc-status") {
            Some(v) => v.to_str().ok().and_then(|s| s.parse().ok()).unwrap_or(2),
            None => 0,
        };
        spans::record_grpc_status(&record, code);
        response
    }
    .instrument(span)
    .await
}

async fn forward_inner(
    gateway: &Arc<Gateway>,
    request: Request,
    path: &str,
    span: &tracing::Span,
) -> Result<Response, tonic::Status> {
    let context = gateway.jwt.authenticate(request.headers()).map_err(|e| {
        tracing::info!(reason = %e, "refused unauthenticated call");
        match e {
            AuthError::Missing | AuthError::Expired | AuthError::Invalid => {
                ApiError::new(ErrorCode::Unauthenticated, e.to_string()).into_status()
            }
        }
    })?;
    spans::record_tenant(
        span,
        context.tenant_id.as_str(),
        context.project_id.as_str(),
    );

    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    // `EmbedService` is public but owned by no backend: the gateway answers it below.
    let local = service == crate::embed::service::SERVICE;
    let backend = syncline_proto::is_public_service(service)
        .then(|| gateway.backends.for_service(service))
        .flatten();
    if backend.is_none() && !local {
        return Err(tonic::Status::unimplemented(format!(
            "unknown method {}",
            path.trim_start_matches('/')
        )));
    }

    let key = format!("{}/{}", context.project_id, context.tenant_id);
    if let Err(wait) = gateway.limiter.check(&key) {
        let mut status = ApiError::new(
            ErrorCode::RateLimited,
            "rate limit exceeded for this tenant",
        )
        .into_status();
        if let Ok(value) = format!("{}", wait.as_millis().max(1)).parse() {
            status.metadata_mut().insert("retry-after-ms", value);
        }
        return Err(status);
    }

    let deadline = deadline::requested(request.headers())
        .unwrap_or(gateway.default_deadline)
        .min(gateway.max_deadline);
    spans::record_deadline(span, deadline);
    let Some((backend_name, channel)) = backend else {
        return tokio::time::timeout(deadline, local_embed_call(gateway, context, request))
            .await
            .map_err(|_| tonic::Status::deadline_exceeded("deadline exceeded"))?;
    };
    let credential = gateway
        .internal
        .sign(
            &context,
            &CallerOrigin::Gateway,
            deadline + Duration::from_secs(5),
        )
        .map_err(|_| ApiError::internal("failed to sign the internal credential").into_status())?;

    let (mut parts, body) = request.into_parts();
    let names: Vec<_> = parts
        .headers
        .keys()
        .filter(|n| is_stripped(n.as_str()))
        .cloned()
        .collect();
    for name in names {
        parts.headers.remove(name);
    }
    let insert = |headers: &mut http::HeaderMap, name: &'static str, value: String| {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    insert(&mut parts.headers, internal_auth::HEADER, credential);
    insert(
        &mut parts.headers,
        "grpc-timeout",
        deadline::format(deadline),
    );
    propagation::inject_current(&mut parts.headers);
    let outgoing = http::Request::from_parts(parts, tonic::body::Body::new(body));

    let call = channel.oneshot(outgoing);
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(response)) => Ok(response.map(Body::new)),
        Ok(Err(error)) => {
            tracing::warn!(backend = %backend_name, %error, "backend unreachable");
            Err(tonic::Status::unavailable(format!(
                "{backend_name} is unavailable"
            )))
        }
        Err(_) => Err(tonic::Status::deadline_exceeded("deadline exceeded")),
    }
}

/// Answers `EmbedService` in the gateway itself (after the same authentication and rate
/// limit as forwarded calls); the caller's tenant reaches the service in the request's
/// extensions.
async fn local_embed_call(
    gateway: &Arc<Gateway>,
    context: syncline_domain::TenantContext,
    request: Request,
) -> Result<Response, tonic::Status> {
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(context);
    let request = http::Request::from_parts(parts, body);
    match crate::embed::service::server(gateway.clone())
        .oneshot(request)
        .await
    {
        Ok(response) => Ok(response.map(Body::new)),
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_and_credential_headers_are_stripped() {
        assert!(is_stripped("authorization"));
        assert!(is_stripped("x-syncline-internal"));
        assert!(is_stripped("traceparent"));
        assert!(!is_stripped("content-type"));
        assert!(!is_stripped("x-request-id"));
    }
}
