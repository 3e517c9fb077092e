//! The gRPC surface of mapping.

use syncline_domain::{ApiError, Violation};
use syncline_proto::mapping::v1::mapping_service_server::MappingService;
use syncline_proto::mapping::v1::{
    GetInstallationRequest, GetInstallationResponse, GetManifestRequest, GetManifestResponse,
    ListManifestVersionsRequest, ListManifestVersionsResponse,
};
use syncline_service_kit::pagination::{self, PageRequest};
use syncline_service_kit::tenant;
use tonic::{Request, Response, Status};

use crate::store::Store;

/// Implements `syncline.mapping.v1.MappingService`.
#[derive(Debug, Clone)]
pub struct MappingApi {
    store: Store,
}

impl MappingApi {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl MappingService for MappingApi {
    async fn get_manifest(
        &self,
        request: Request<GetManifestRequest>,
    ) -> Result<Response<GetManifestResponse>, Status> {
        let tenant = tenant(&request)?;
        let version = match request.get_ref().version {
            0 => None,
            v if v > 0 => Some(v),
            _ => {
                return Err(ApiError::invalid(vec![Violation::new(
                    "version",
                    "NEGATIVE",
                    "must not be negative (0 reads the latest)",
                )])
                .into());
            }
        };
        let manifest = self
            .store
            .manifest(tenant, version)
            .await?
            .ok_or_else(|| ApiError::not_found("manifest"))?;
        Ok(Response::new(GetManifestResponse {
            manifest: Some(manifest),
        }))
    }

    async fn list_manifest_versions(
        &self,
        request: Request<ListManifestVersionsRequest>,
    ) -> Result<Response<ListManifestVersionsResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        let page = PageRequest::parse(message.page_size, &message.page_token)?;
        let below = pagination::versions_below(&page)?;
        let mut manifests = self
            .store
            .manifests(tenant, below, page.fetch_limit())
            .await?;
        let next_page_token = pagination::finish_versions(&page, &mut manifests, |m| m.version);
        Ok(Response::new(ListManifestVersionsResponse {
            manifests,
            next_page_token,
        }))
    }

    async fn get_installation(
        &self,
        request: Request<GetInstallationRequest>,
    ) -> Result<Response<GetInstallationResponse>, Status> {
        let tenant = tenant(&request)?;
        let connection_id = &request.get_ref().connection_id;
        if connection_id.is_empty() {
            return Err(ApiError::invalid(vec![Violation::required("connection_id")]).into());
        }
        // Unknown connections and other tenants' get the same answer.
        let installation = self
            .store
            .installation(tenant, connection_id)
            .await?
            .ok_or_else(|| ApiError::not_found("installation"))?;
        Ok(Response::new(GetInstallationResponse {
            installation: Some(installation),
        }))
    }
}
