//! The per-RPC layer every backend service runs behind.
//!
//! For each call it opens the server span `<package.Service>/<Method>` as a child of the
//! caller's W3C trace context, verifies the internal credential (see
//! [`internal_auth`](crate::internal_auth)), records `tenant.id`, and hands the verified
//! [`Caller`] to the handler through the request extensions. Health and reflection answer
//! without credentials. Internal-only services refuse credentials forwarded by the gateway.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use syncline_domain::TenantContext;
use syncline_telemetry::{propagation, spans};
use tracing::Instrument;

use crate::internal_auth::{self, Caller, CallerOrigin, InternalAuth};

/// Paths served without credentials.
fn is_open(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

/// The tower layer; see the module docs.
#[derive(Clone, Debug)]
pub struct ContextLayer {
    auth: Arc<InternalAuth>,
    internal_services: &'static [&'static str],
}

impl ContextLayer {
    /// Verifies credentials with `auth`; `internal_services` (fully-qualified names) accept
    /// only service-to-service credentials.
    pub fn new(auth: Arc<InternalAuth>, internal_services: &'static [&'static str]) -> Self {
        Self {
            auth,
            internal_services,
        }
    }
}

impl<S> tower::Layer<S> for ContextLayer {
    type Service = ContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ContextService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service produced by [`ContextLayer`].
#[derive(Clone, Debug)]
pub struct ContextService<S> {
    inner: S,
    layer: ContextLayer,
}

type Response = http::Response<tonic::body::Body>;

impl<S, B> tower::Service<http::Request<B>> for ContextService<S>
where
    S: tower::Service<http::Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = request.uri().path().to_owned();
        if is_open(&path) {
            return Box::pin(inner.call(request));
        }
        let span = spans::grpc_server_span(&path);
        propagation::adopt_remote_parent(&span, request.headers());
        let caller = match self.authenticate(&path, request.headers()) {
            Ok(caller) => caller,
            Err(status) => {
                spans::record_grpc_status(&span, status.code() as i32);
                let _entered = span.enter();
                tracing::warn!(code = ?status.code(), "refused call: {}", status.message());
                return Box::pin(futures::future::ready(Ok(status.into_http())));
            }
        };
        spans::record_tenant(
            &span,
            caller.context.tenant_id.as_str(),
            caller.context.project_id.as_str(),
        );
        if let Some(deadline) = crate::deadline::requested(request.headers()) {
            spans::record_deadline(&span, deadline);
        }
        request.extensions_mut().insert(caller);
        let future = {
            let _entered = span.enter();
            inner.call(request)
        };
        let record_span = span.clone();
        Box::pin(
            async move {
                let response = future.await?;
                if let Some(code) = grpc_status(&response) {
                    spans::record_grpc_status(&record_span, code);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

impl<S> ContextService<S> {
    fn authenticate(&self, path: &str, headers: &http::HeaderMap) -> Result<Caller, tonic::Status> {
        let token = headers
            .get(internal_auth::HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| tonic::Status::unauthenticated("missing internal credentials"))?;
        let caller = self
            .layer
            .auth
            .verify(token)
            .map_err(|e| tonic::Status::unauthenticated(e.to_string()))?;
        let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
        if caller.origin == CallerOrigin::Gateway && self.layer.internal_services.contains(&service)
        {
            return Err(tonic::Status::permission_denied(
                "this method is internal to syncline",
            ));
        }
        Ok(caller)
    }
}

/// `grpc-status` when the response carries it in its headers (trailers-only responses).
fn grpc_status(response: &Response) -> Option<i32> {
    match response.headers().get("grpc-status") {
        Some(value) => value.to_str().ok()?.parse().ok(),
        None => Some(0),
    }
}

/// The verified caller of an RPC; `UNAUTHENTICATED` if the layer did not run.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<&Caller, tonic::Status> {
    request
        .extensions()
        .get::<Caller>()
        .ok_or_else(|| tonic::Status::unauthenticated("missing internal credentials"))
}

/// The tenant scope of an RPC.
pub fn tenant<T>(request: &tonic::Request<T>) -> Result<&TenantContext, tonic::Status> {
    caller(request).map(|c| &c.context)
}
