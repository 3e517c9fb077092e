//! `syncline.embed.v1.EmbedService`, answered by the gateway itself.
//!
//! The proxy authenticates the caller's JWT and applies the tenant's rate limit as for any
//! public call, then hands the request here with the caller's [`TenantContext`] in its
//! extensions instead of forwarding it to a backend.

use std::sync::Arc;
use std::time::Duration;

use syncline_domain::{ApiError, TenantContext, Violation};
use syncline_proto::authvault::v1::GetConnectionRequest;
use syncline_proto::authvault::v1::auth_vault_service_client::AuthVaultServiceClient;
use syncline_proto::embed::v1::embed_service_server::{EmbedService, EmbedServiceServer};
use syncline_proto::embed::v1::{CreateEmbedTokenRequest, CreateEmbedTokenResponse};
use tonic::{Request, Response, Status};

use crate::Gateway;

/// The fully-qualified name the proxy routes here.
pub(crate) const SERVICE: &str = "syncline.embed.v1.EmbedService";

/// The gRPC server over the gateway's state.
pub(crate) fn server(gateway: Arc<Gateway>) -> EmbedServiceServer<Grpc> {
    EmbedServiceServer::new(Grpc { gateway })
}

/// Implementation of `EmbedService`.
#[derive(Debug)]
pub(crate) struct Grpc {
    gateway: Arc<Gateway>,
}

fn status(error: ApiError) -> Status {
    error.into_status()
}

#[tonic::async_trait]
impl EmbedService for Grpc {
    async fn create_embed_token(
        &self,
        request: Request<CreateEmbedTokenRequest>,
    ) -> Result<Response<CreateEmbedTokenResponse>, Status> {
        let context = request
            .extensions()
            .get::<TenantContext>()
            .cloned()
            .ok_or_else(|| status(ApiError::internal("embed call without a tenant context")))?;
        let message = request.into_inner();
        let settings = &self.gateway.embed;
        let mut violations = Vec::new();
        let ttl = match message.ttl {
            None => settings.default_ttl,
            Some(d) if d.seconds < 0 || d.nanos < 0 || (d.seconds == 0 && d.nanos == 0) => {
                violations.push(Violation::new(
                    "ttl",
                    "OUT_OF_RANGE",
                    "must be positive when set",
                ));
                settings.default_ttl
            }
            Some(d) => Duration::from_secs(d.seconds.unsigned_abs())
                .max(Duration::from_secs(1))
                .min(settings.max_ttl),
        };
        if message.subject.chars().count() > 200 {
            violations.push(Violation::new(
                "subject",
                "TOO_LONG",
                "must be at most 200 characters",
            ));
        }
        if message.connection_id.chars().count() > 200 {
            violations.push(Violation::new(
                "connection_id",
                "TOO_LONG",
                "must be at most 200 characters",
            ));
        }
        if !violations.is_empty() {
            return Err(status(ApiError::invalid(violations)));
        }
        if !message.connection_id.is_empty() {
            // The connection must be the tenant's: a foreign or missing one is NOT_FOUND.
            let (_, channel) = self
                .gateway
                .backends
                .for_service("syncline.authvault.v1.AuthVaultService")
                .ok_or_else(|| status(ApiError::internal("no auth-vault backend")))?;
            let call = crate::embed::backend::request(
                &self.gateway,
                &context,
                GetConnectionRequest {
                    connection_id: message.connection_id.clone(),
                },
            )?;
            AuthVaultServiceClient::new(channel)
                .get_connection(call)
                .await?;
        }
        let minted_for = TenantContext {
            subject: if message.subject.is_empty() {
                context.subject.clone()
            } else {
                message.subject.clone()
            },
            ..context.clone()
        };
        let (token, exp) = self
            .gateway
            .embed_tokens
            .mint(&minted_for, &message.connection_id, ttl)
            .map_err(|_| status(ApiError::internal("failed to sign the embed token")))?;
        tracing::info!(
            tenant.id = %context.tenant_id,
            connection.id = %message.connection_id,
            ttl_secs = ttl.as_secs(),
            "embed token minted"
        );
        Ok(Response::new(CreateEmbedTokenResponse {
            page_url: format!("{}/embed/#token={token}", settings.base_url),
            token,
            expire_time: Some(prost_types::Timestamp {
                seconds: i64::try_from(exp).unwrap_or(i64::MAX),
                nanos: 0,
            }),
        }))
    }
}
