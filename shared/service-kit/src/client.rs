//! Channels from one service to another.

use std::sync::Arc;
use std::time::Duration;

use syncline_domain::TenantContext;
use syncline_proto::authvault::v1::token_service_client::TokenServiceClient;
use syncline_proto::authvault::v1::{
    AccessToken, GetAccessTokenRequest, ReportUnauthorizedRequest,
};
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

/// How long a call to auth-vault's TokenService may take (a refresh at the CRM included).
const TOKEN_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// auth-vault's internal `TokenService` as the other services call it: a usable access
/// token of a connection, and the report that the CRM refused one, which answers with its
/// replacement. Errors are auth-vault's statuses, for the caller to classify.
#[derive(Debug, Clone)]
pub struct VaultTokens {
    caller: ServiceCaller,
    auth_vault: Channel,
}

impl VaultTokens {
    /// Calls auth-vault over `auth_vault` with `caller`'s credentials.
    pub fn new(caller: ServiceCaller, auth_vault: Channel) -> Self {
        Self { caller, auth_vault }
    }

    /// The connection's access token (auth-vault refreshes it first when it is near expiry).
    pub async fn access_token(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<AccessToken, tonic::Status> {
        let mut request = self.caller.request(
            tenant,
            GetAccessTokenRequest {
                connection_id: connection_id.to_owned(),
                min_validity: None,
            },
        )?;
        request.set_timeout(TOKEN_CALL_TIMEOUT);
        let response = TokenServiceClient::new(self.auth_vault.clone())
            .get_access_token(request)
            .await?;
        token_of(response.into_inner().token)
    }

    /// Tells auth-vault the CRM refused token `token_version` of the connection; answers
    /// the replacement (refreshed once per version, whoever reports it).
    pub async fn report_unauthorized(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        token_version: i64,
        provider_error: String,
    ) -> Result<AccessToken, tonic::Status> {
        let mut request = self.caller.request(
            tenant,
            ReportUnauthorizedRequest {
                connection_id: connection_id.to_owned(),
                token_version,
                provider_error,
            },
        )?;
        request.set_timeout(TOKEN_CALL_TIMEOUT);
        let response = TokenServiceClient::new(self.auth_vault.clone())
            .report_unauthorized(request)
            .await?;
        token_of(response.into_inner().token)
    }
}

fn token_of(token: Option<AccessToken>) -> Result<AccessToken, tonic::Status> {
    token.ok_or_else(|| tonic::Status::internal("auth-vault answered without a token"))
}
