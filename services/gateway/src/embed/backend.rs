//! Calls from the page's API to the backends, on behalf of the token's tenant.

use std::time::Duration;

use syncline_domain::{ApiError, TenantContext};
use syncline_service_kit::internal_auth::{self, CallerOrigin};
use tonic::transport::Channel;

use crate::Gateway;

/// How long one backend call of the page may take (schema refreshes are the slow ones).
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// `message` with a gateway credential for `context` and the page's deadline, as the proxy
/// would forward it.
pub(crate) fn request<T>(
    gateway: &Gateway,
    context: &TenantContext,
    message: T,
) -> Result<tonic::Request<T>, tonic::Status> {
    let credential = gateway
        .internal
        .sign(
            context,
            &CallerOrigin::Gateway,
            CALL_TIMEOUT + Duration::from_secs(5),
        )
        .map_err(|_| ApiError::internal("failed to sign the internal credential").into_status())?;
    let mut headers = http::HeaderMap::new();
    syncline_telemetry::propagation::inject_current(&mut headers);
    let mut request = tonic::Request::new(message);
    for (name, value) in &headers {
        if let Ok(key) = tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes())
            && let Ok(value) = tonic::metadata::MetadataValue::try_from(value.as_bytes())
        {
            request.metadata_mut().insert(key, value);
        }
    }
    let value = tonic::metadata::MetadataValue::try_from(credential.as_str())
        .map_err(|_| ApiError::internal("invalid internal credential").into_status())?;
    request.metadata_mut().insert(internal_auth::HEADER, value);
    request.set_timeout(CALL_TIMEOUT);
    Ok(request)
}

/// The channel of the backend owning `service` (a fully-qualified gRPC service name).
pub(crate) fn channel(gateway: &Gateway, service: &str) -> Result<Channel, tonic::Status> {
    gateway
        .backends
        .for_service(service)
        .map(|(_, channel)| channel)
        .ok_or_else(|| ApiError::internal("no backend for the service").into_status())
}
