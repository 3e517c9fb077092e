//! The gRPC surface of auth-vault.

use syncline_domain::{ApiError, Violation};
use syncline_proto::authvault::v1::auth_vault_service_server::AuthVaultService;
use syncline_proto::authvault::v1::token_service_server::TokenService;
use syncline_proto::authvault::v1::{
    GetConnectionRequest, GetConnectionResponse, GetProviderAppRequest, GetProviderAppResponse,
    ListConnectionsRequest, ListConnectionsResponse, ListProviderAppsRequest,
    ListProviderAppsResponse,
};
use syncline_service_kit::pagination::PageRequest;
use syncline_service_kit::tenant;
use tonic::{Request, Response, Status};

use crate::filter;
use crate::store::Store;

/// Implements `syncline.authvault.v1.AuthVaultService`.
#[derive(Debug, Clone)]
pub struct AuthVaultApi {
    store: Store,
}

impl AuthVaultApi {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// Implements the internal `syncline.authvault.v1.TokenService`; every method answers
/// UNIMPLEMENTED until the token issue builds it.
#[derive(Debug, Clone, Copy)]
pub struct TokenApi;

#[tonic::async_trait]
impl TokenService for TokenApi {}

#[tonic::async_trait]
impl AuthVaultService for AuthVaultApi {
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
        let mut provider_apps = self.store.provider_apps(tenant, &page, provider).await?;
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
            .store
            .connection(tenant, id)
            .await?
            .ok_or_else(|| ApiError::not_found("connection"))?;
        Ok(Response::new(GetConnectionResponse {
            connection: Some(connection),
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
