//! The gateway's router: its own health and reflection, HTTP endpoints, and the gRPC proxy
//! for everything else.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use syncline_service_kit::ServiceError;

use crate::Gateway;
use crate::proxy;
use crate::reflection::public_descriptor_set;

pub(crate) fn router(gateway: Arc<Gateway>) -> Result<Router, ServiceError> {
    let (_health, health_service) = tonic_health::server::health_reporter();
    let descriptors: &'static [u8] = Box::leak(
        public_descriptor_set()
            .map_err(|e| ServiceError::Config(format!("bad descriptor set: {e}")))?
            .into_boxed_slice(),
    );
    let (reflection_v1, reflection_v1alpha) =
        syncline_service_kit::server::reflection(&[descriptors])?;
    Ok(Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/oauth/callback", get(crate::oauth_callback::callback))
        .merge(crate::embed::routes())
        .route_service("/grpc.health.v1.Health/{*method}", health_service)
        .route_service(
            "/grpc.reflection.v1.ServerReflection/{*method}",
            reflection_v1,
        )
        .route_service(
            "/grpc.reflection.v1alpha.ServerReflection/{*method}",
            reflection_v1alpha,
        )
        .fallback(proxy::forward)
        .with_state(gateway))
}
