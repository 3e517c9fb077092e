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
    let grpc_local = tonic::service::Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .prepare()
        .into_axum_router();
    let public = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .fallback(proxy::forward)
        .with_state(gateway);
    Ok(public.merge(grpc_local))
}
