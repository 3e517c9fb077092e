//! The gRPC surface of auth-vault.

use syncline_domain::{ApiError, Violation};
use syncline_proto::authvault::v1::auth_vault_service_server::AuthVaultService;
use syncline_proto::authvault::v1::token_service_server::TokenService;
use syncline_proto::authvault::v1::{
    AuditAction, CompleteAuthorizationRequest, CompleteAuthorizationResponse,
    CreateProviderAppRequest, CreateProviderAppResponse, DeleteProviderAppRequest,
    DeleteProviderAppResponse, ExportCredentialsRequest, ExportCredentialsResponse,
    GetAccessTokenRequest, GetAccessTokenResponse, GetConnectionRequest, GetConnectionResponse,
    GetProviderAppRequest, GetProviderAppResponse, ImportCredentialsRequest,
    ImportCredentialsResponse, ListAuditEventsRequest, ListAuditEventsResponse,
    ListConnectionsRequest, ListConnectionsResponse, ListProviderAppsRequest,
    ListProviderAppsResponse, ReportUnauthorizedRequest, ReportUnauthorizedResponse,
    RotateKeyEncryptionKeyRequest, RotateKeyEncryptionKeyResponse, StartAuthorizationRequest,
    StartAuthorizationResponse, UpdateProviderAppRequest, UpdateProviderAppResponse,
};
use syncline_service_kit::pagination::PageRequest;
use syncline_service_kit::{CallerOrigin, caller, tenant};
use tonic::{Request, Response, Status};

use std::sync::Arc;

use crate::audit::{self, Entry};
use crate::vault::Vault;
use crate::{apps, connect, filter, tokens, transfer};

/// Implements `syncline.authvault.v1.AuthVaultService`.
#[derive(Debug, Clone)]
pub struct AuthVaultApi {
    vault: Arc<Vault>,
}

impl AuthVaultApi {
    pub fn new(vault: Arc<Vault>) -> Self {
        Self { vault }
    }
}

/// Implements the internal `syncline.authvault.v1.TokenService`. The layer already refuses
/// credentials forwarded by the gateway; each method checks again that a Syncline service
/// is calling.
#[derive(Debug, Clone)]
pub struct TokenApi {
    vault: Arc<Vault>,
}

impl TokenApi {
    pub fn new(vault: Arc<Vault>) -> Self {
        Self { vault }
    }
}

fn service_only<T>(request: &Request<T>) -> Result<(), Status> {
    match caller(request)?.origin {
        CallerOrigin::Service(_) => Ok(()),
        CallerOrigin::Gateway => Err(Status::permission_denied(
            "this method is internal to syncline",
        )),
    }
}

fn required(value: &str, field: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        Err(ApiError::invalid(vec![Violation::required(field)]))
    } else {
        Ok(())
    }
}

/// `min_validity` in milliseconds: unset → the configured margin.
fn min_validity(value: Option<&prost_types::Duration>) -> Result<Option<i64>, ApiError> {
    let Some(duration) = value else {
        return Ok(None);
    };
    let ms = duration
        .seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(duration.nanos) / 1_000_000);
    if !(0..=tokens::MAX_MIN_VALIDITY_MS).contains(&ms) {
        return Err(ApiError::invalid(vec![Violation::new(
            "min_validity",
            "OUT_OF_RANGE",
            "must be between 0 and 24 hours",
        )]));
    }
    Ok(Some(ms))
}

#[tonic::async_trait]
impl TokenService for TokenApi {
    async fn get_access_token(
        &self,
        request: Request<GetAccessTokenRequest>,
    ) -> Result<Response<GetAccessTokenResponse>, Status> {
        service_only(&request)?;
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        required(&message.connection_id, "connection_id")?;
        let validity = min_validity(message.min_validity.as_ref())?;
        let token =
            tokens::get_access_token(&self.vault, tenant, &message.connection_id, validity).await?;
        Ok(Response::new(GetAccessTokenResponse { token: Some(token) }))
    }

    async fn report_unauthorized(
        &self,
        request: Request<ReportUnauthorizedRequest>,
    ) -> Result<Response<ReportUnauthorizedResponse>, Status> {
        service_only(&request)?;
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        required(&message.connection_id, "connection_id")?;
        if message.token_version <= 0 {
            return Err(ApiError::invalid(vec![Violation::required("token_version")]).into());
        }
        let token = tokens::report_unauthorized(
            &self.vault,
            tenant,
            &message.connection_id,
            message.token_version,
            &message.provider_error,
        )
        .await?;
        Ok(Response::new(ReportUnauthorizedResponse {
            token: Some(token),
        }))
    }

    async fn complete_authorization(
        &self,
        request: Request<CompleteAuthorizationRequest>,
    ) -> Result<Response<CompleteAuthorizationResponse>, Status> {
        service_only(&request)?;
        let response = connect::complete(&self.vault, request.into_inner()).await?;
        Ok(Response::new(response))
    }

    async fn rotate_key_encryption_key(
        &self,
        request: Request<RotateKeyEncryptionKeyRequest>,
    ) -> Result<Response<RotateKeyEncryptionKeyResponse>, Status> {
        service_only(&request)?;
        let message = request.get_ref();
        required(&message.new_key_id, "new_key_id")?;
        let rotation = self
            .vault
            .keys
            .rotate(&message.new_key_id, message.dry_run)
            .await?;
        // Recorded in the trail of the tenant the operator's credential names, if any.
        if !message.dry_run
            && let Ok(tenant) = tenant(&request)
        {
            audit::record(
                self.vault.store.db(),
                tenant,
                Entry::new(AuditAction::KeyRotated)
                    .detail("kek_id", rotation.active_key_id.clone())
                    .detail("rewrapped_data_keys", rotation.rewrapped.to_string()),
            )
            .await?;
        }
        Ok(Response::new(RotateKeyEncryptionKeyResponse {
            active_key_id: rotation.active_key_id,
            rewrapped_data_keys: rotation.rewrapped,
            already_current_data_keys: rotation.already_current,
        }))
    }
}

#[tonic::async_trait]
impl AuthVaultService for AuthVaultApi {
    async fn create_provider_app(
        &self,
        request: Request<CreateProviderAppRequest>,
    ) -> Result<Response<CreateProviderAppResponse>, Status> {
        let tenant = tenant(&request)?.clone();
        let app = request
            .into_inner()
            .provider_app
            .ok_or_else(|| ApiError::invalid(vec![Violation::required("provider_app")]))?;
        let provider_app = apps::create(&self.vault, &tenant, app).await?;
        Ok(Response::new(CreateProviderAppResponse {
            provider_app: Some(provider_app),
        }))
    }

    async fn update_provider_app(
        &self,
        request: Request<UpdateProviderAppRequest>,
    ) -> Result<Response<UpdateProviderAppResponse>, Status> {
        let tenant = tenant(&request)?.clone();
        let message = request.into_inner();
        let update = message
            .provider_app
            .ok_or_else(|| ApiError::invalid(vec![Violation::required("provider_app")]))?;
        let mask = message.update_mask.map(|m| m.paths).unwrap_or_default();
        let provider_app = apps::update(&self.vault, &tenant, update, &mask).await?;
        Ok(Response::new(UpdateProviderAppResponse {
            provider_app: Some(provider_app),
        }))
    }

    async fn delete_provider_app(
        &self,
        request: Request<DeleteProviderAppRequest>,
    ) -> Result<Response<DeleteProviderAppResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        apps::delete(&self.vault, tenant, &message.provider_app_id, message.force).await?;
        Ok(Response::new(DeleteProviderAppResponse {}))
    }

    async fn start_authorization(
        &self,
        request: Request<StartAuthorizationRequest>,
    ) -> Result<Response<StartAuthorizationResponse>, Status> {
        let tenant = tenant(&request)?.clone();
        let response = connect::start(&self.vault, &tenant, request.into_inner()).await?;
        Ok(Response::new(response))
    }

    async fn get_provider_app(
        &self,
        request: Request<GetProviderAppRequest>,
    ) -> Result<Response<GetProviderAppResponse>, Status> {
        let tenant = tenant(&request)?;
        let id = &request.get_ref().provider_app_id;
        if id.is_empty() {
            return Err(ApiError::invalid(vec![Violation::required("provider_app_id")]).into());
        }
        let provider_app = self
            .vault
            .store
            .provider_app(tenant, id)
            .await?
            .ok_or_else(|| ApiError::not_found("provider app"))?;
        Ok(Response::new(GetProviderAppResponse {
            provider_app: Some(provider_app),
        }))
    }

    async fn list_provider_apps(
        &self,
        request: Request<ListProviderAppsRequest>,
    ) -> Result<Response<ListProviderAppsResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        let page = PageRequest::parse(message.page_size, &message.page_token)?;
        let mut violations = Vec::new();
        let provider = filter::provider(message.provider, "provider", &mut violations);
        filter::finish(violations)?;
        let mut provider_apps = self
            .vault
            .store
            .provider_apps(tenant, &page, provider)
            .await?;
        let next_page_token = page.finish(&mut provider_apps, |a| &a.id);
        Ok(Response::new(ListProviderAppsResponse {
            provider_apps,
            next_page_token,
        }))
    }

    async fn get_connection(
        &self,
        request: Request<GetConnectionRequest>,
    ) -> Result<Response<GetConnectionResponse>, Status> {
        let tenant = tenant(&request)?;
        let id = &request.get_ref().connection_id;
        if id.is_empty() {
            return Err(ApiError::invalid(vec![Violation::required("connection_id")]).into());
        }
        // Unknown and another tenant's ids get the same answer.
        let connection = self
            .vault
            .store
            .connection(tenant, id)
            .await?
            .ok_or_else(|| ApiError::not_found("connection"))?;
        Ok(Response::new(GetConnectionResponse {
            connection: Some(connection),
        }))
    }

    async fn import_credentials(
        &self,
        request: Request<ImportCredentialsRequest>,
    ) -> Result<Response<ImportCredentialsResponse>, Status> {
        let tenant = tenant(&request)?.clone();
        let connection = transfer::import(&self.vault, &tenant, request.into_inner()).await?;
        Ok(Response::new(ImportCredentialsResponse {
            connection: Some(connection),
        }))
    }

    async fn export_credentials(
        &self,
        request: Request<ExportCredentialsRequest>,
    ) -> Result<Response<ExportCredentialsResponse>, Status> {
        let tenant = tenant(&request)?;
        let exports = transfer::export(&self.vault, tenant, request.get_ref()).await?;
        Ok(Response::new(ExportCredentialsResponse { exports }))
    }

    async fn list_audit_events(
        &self,
        request: Request<ListAuditEventsRequest>,
    ) -> Result<Response<ListAuditEventsResponse>, Status> {
        let tenant = tenant(&request)?;
        let (audit_events, next_page_token) =
            audit::list(self.vault.store.db(), tenant, request.get_ref()).await?;
        Ok(Response::new(ListAuditEventsResponse {
            audit_events,
            next_page_token,
        }))
    }

    async fn list_connections(
        &self,
        request: Request<ListConnectionsRequest>,
    ) -> Result<Response<ListConnectionsResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        let page = PageRequest::parse(message.page_size, &message.page_token)?;
        let mut violations = Vec::new();
        let provider = filter::provider(message.provider, "provider", &mut violations);
        let status = filter::status(message.status, "status", &mut violations);
        filter::finish(violations)?;
        let mut connections = self
            .vault
            .store
            .connections(tenant, &page, provider, status)
            .await?;
        let next_page_token = page.finish(&mut connections, |c| &c.id);
        Ok(Response::new(ListConnectionsResponse {
            connections,
            next_page_token,
        }))
    }
}
