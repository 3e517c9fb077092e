//! gateway: the only public door of Syncline.
//!
//! One port serves both gRPC (HTTP/2) and HTTP/1.1. Every gRPC call is authenticated with a
//! JWT ([`jwt`]), limited per tenant ([`rate_limit`]), checked against the allow-list of
//! public services, and forwarded ([`proxy`]) to the owning backend with the caller's tenant
//! scope in a signed internal credential, the caller's deadline (capped), and W3C trace
//! context. Health and reflection (public services only) are served by the gateway itself.
//! HTTP routes ([`http_routes`]) host the OAuth callback, webhooks and the embedded
//! self-serve mapping page ([`embed`]), whose scoped tokens the gateway mints itself.

pub mod embed;
mod http_routes;
pub mod jwt;
mod oauth_callback;
mod proxy;
pub mod rate_limit;
mod reflection;

use std::sync::Arc;

use syncline_config::{ServiceName, SynclineConfig};
use syncline_service_kit::{InternalAuth, RunningService, ServiceError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::proxy::Backends;

/// Shared state of the gateway's handlers.
#[derive(Debug)]
pub(crate) struct Gateway {
    pub(crate) jwt: jwt::Authenticator,
    pub(crate) limiter: rate_limit::TenantRateLimiter,
    pub(crate) internal: InternalAuth,
    pub(crate) backends: Backends,
    pub(crate) default_deadline: std::time::Duration,
    pub(crate) max_deadline: std::time::Duration,
    pub(crate) embed: embed::Settings,
    pub(crate) embed_tokens: embed::token::EmbedTokens,
}

/// Starts the gateway on `listener`; it drains and stops when `shutdown` fires.
pub async fn start(
    config: &SynclineConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunningService, ServiceError> {
    let secret = config.internal_auth.secret.as_ref().ok_or_else(|| {
        ServiceError::Config("invalid configuration: `internal_auth.secret` is not set".into())
    })?;
    let jwt = jwt::Authenticator::from_config(&config.gateway.jwt, shutdown.clone())
        .await
        .map_err(|e| ServiceError::Config(e.to_string()))?;
    let backends = Backends::connect(&config.gateway.backends)
        .map_err(|e| ServiceError::Config(format!("invalid backend url: {e}")))?;
    let addr = listener.local_addr()?;
    let base_url = match &config.gateway.public_url {
        Some(url) if !url.is_empty() => url.trim_end_matches('/').to_owned(),
        _ => {
            let mut public = addr;
            if public.ip().is_unspecified() {
                public.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{public}")
        }
    };
    let gateway = Arc::new(Gateway {
        jwt,
        limiter: rate_limit::TenantRateLimiter::new(
            config.gateway.rate_limit.per_second,
            config.gateway.rate_limit.burst,
        ),
        internal: InternalAuth::new(secret),
        backends,
        default_deadline: std::time::Duration::from_millis(config.gateway.default_deadline_ms),
        max_deadline: std::time::Duration::from_millis(config.gateway.max_deadline_ms),
        embed: embed::Settings::new(&config.gateway.embed, base_url),
        embed_tokens: embed::token::EmbedTokens::new(secret),
    });
    let app = http_routes::router(gateway)?;
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .map_err(ServiceError::Io)
    });
    Ok(RunningService::new(
        ServiceName::Gateway.as_str(),
        addr,
        task,
    ))
}
