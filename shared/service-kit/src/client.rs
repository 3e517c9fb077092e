//! Channels from one service to another.

use std::sync::Arc;
use std::time::Duration;

use syncline_domain::TenantContext;
use tonic::transport::{Channel, Endpoint};

use crate::internal_auth::{self, CallerOrigin, InternalAuth};

/// A lazily connecting channel to `url` (`http://host:port`).
pub fn channel(url: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .connect_lazy())
}

/// Builds requests from one service to another: the caller's trace context and a fresh
/// service credential for the tenant the call acts for.
#[derive(Debug, Clone)]
pub struct ServiceCaller {
    auth: Arc<InternalAuth>,
    origin: CallerOrigin,
}

impl ServiceCaller {
    /// Calls made as `service` (e.g. `sync-engine`).
    pub fn new(auth: Arc<InternalAuth>, service: &str) -> Self {
        Self {
            auth,
            origin: CallerOrigin::Service(service.to_owned()),
        }
    }

    /// Wraps `message` for a call on behalf of `context`.
    pub fn request<T>(
        &self,
        context: &TenantContext,
        message: T,
    ) -> Result<tonic::Request<T>, tonic::Status> {
        let token = self
            .auth
            .sign(context, &self.origin, Duration::from_secs(60))
            .map_err(|_| tonic::Status::internal("failed to sign an internal credential"))?;
        let mut headers = http::HeaderMap::new();
        syncline_telemetry::propagation::inject_current(&mut headers);
        let mut request = tonic::Request::new(message);
        for (name, value) in headers.iter() {
            if let Ok(key) = tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes())
                && let Ok(value) = tonic::metadata::MetadataValue::try_from(value.as_bytes())
            {
                request.metadata_mut().insert(key, value);
            }
        }
        let value = tonic::metadata::MetadataValue::try_from(token.as_str())
            .map_err(|_| tonic::Status::internal("invalid internal credential"))?;
        request.metadata_mut().insert(internal_auth::HEADER, value);
        Ok(request)
    }
}
