//! The gRPC surface of schema-discovery.

use syncline_domain::{ApiError, ErrorCode, TenantContext, Violation};
use syncline_proto::schema::v1::schema_service_server::SchemaService;
use syncline_proto::schema::v1::{
    ListObjectsRequest, ListObjectsResponse, ListSchemaVersionsRequest, ListSchemaVersionsResponse,
    ObjectView,
};
use syncline_service_kit::pagination::{self, PageRequest};
use syncline_service_kit::tenant;
use tonic::{Request, Response, Status};

use crate::store::Store;

/// Implements `syncline.schema.v1.SchemaService`.
#[derive(Debug, Clone)]
pub struct SchemaApi {
    store: Store,
}

impl SchemaApi {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The version to read: `requested`, or the latest when 0.
    async fn resolve_version(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        requested: i64,
    ) -> Result<i64, ApiError> {
        let latest = self
            .store
            .latest_version(tenant, connection_id)
            .await?
            .ok_or_else(no_schema)?;
        if requested == 0 || requested == latest {
            return Ok(latest);
        }
        if self
            .store
            .has_version(tenant, connection_id, requested)
            .await?
        {
            Ok(requested)
        } else {
            Err(ApiError::not_found("schema version"))
        }
    }
}

/// Nothing stored for the tenant's connection: unknown, another tenant's, or never described.
fn no_schema() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "connection has no discovered schema")
}

/// A validated `ListObjects` request.
#[derive(Debug, PartialEq)]
struct ObjectsQuery {
    page: PageRequest,
    version: i64,
    full: bool,
    custom: Option<bool>,
}

fn parse_list_objects(request: &ListObjectsRequest) -> Result<ObjectsQuery, ApiError> {
    let mut violations = Vec::new();
    if request.connection_id.is_empty() {
        violations.push(Violation::required("connection_id"));
    }
    if request.schema_version < 0 {
        violations.push(Violation::new(
            "schema_version",
            "NEGATIVE",
            "must not be negative (0 reads the latest)",
        ));
    }
    let full = match ObjectView::try_from(request.view) {
        Ok(ObjectView::Unspecified | ObjectView::Basic) => false,
        Ok(ObjectView::Full) => true,
        Err(_) => {
            violations.push(Violation::new(
                "view",
                "INVALID_ENUM",
                "is not an object view",
            ));
            false
        }
    };
    let page = match PageRequest::parse(request.page_size, &request.page_token) {
        Ok(page) => Some(page),
        Err(error) => {
            violations.extend_from_slice(error.violations());
            None
        }
    };
    match page {
        Some(page) if violations.is_empty() => Ok(ObjectsQuery {
            page,
            version: request.schema_version,
            full,
            custom: request.custom,
        }),
        _ => Err(ApiError::invalid(violations)),
    }
}

#[tonic::async_trait]
impl SchemaService for SchemaApi {
    async fn list_objects(
        &self,
        request: Request<ListObjectsRequest>,
    ) -> Result<Response<ListObjectsResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        let query = parse_list_objects(message)?;
        let connection_id = message.connection_id.as_str();
        let version = self
            .resolve_version(tenant, connection_id, query.version)
            .await?;
        let mut objects = self
            .store
            .objects(
                tenant,
                connection_id,
                version,
                query.page.after.as_deref().unwrap_or(""),
                query.custom,
                query.page.fetch_limit(),
            )
            .await?;
        let next_page_token = query.page.finish(&mut objects, |o| &o.name);
        for object in &mut objects {
            if object.field_count == 0 {
                object.field_count = i32::try_from(object.fields.len()).unwrap_or(i32::MAX);
            }
            if !query.full {
                object.fields.clear();
            }
        }
        Ok(Response::new(ListObjectsResponse {
            objects,
            next_page_token,
            schema_version: version,
        }))
    }

    async fn list_schema_versions(
        &self,
        request: Request<ListSchemaVersionsRequest>,
    ) -> Result<Response<ListSchemaVersionsResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        if message.connection_id.is_empty() {
            return Err(ApiError::invalid(vec![Violation::required("connection_id")]).into());
        }
        let page = PageRequest::parse(message.page_size, &message.page_token)?;
        let below = pagination::versions_below(&page)?;
        let mut schema_versions = self
            .store
            .versions(tenant, &message.connection_id, below, page.fetch_limit())
            .await?;
        if schema_versions.is_empty() && page.after.is_none() {
            return Err(no_schema().into());
        }
        let next_page_token =
            pagination::finish_versions(&page, &mut schema_versions, |v| v.version);
        Ok(Response::new(ListSchemaVersionsResponse {
            schema_versions,
            next_page_token,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ListObjectsRequest {
        ListObjectsRequest {
            connection_id: "conn_1".into(),
            ..ListObjectsRequest::default()
        }
    }

    #[test]
    fn defaults_read_the_latest_version_in_basic_view() {
        let query = parse_list_objects(&request()).unwrap();
        assert_eq!(query.version, 0);
        assert!(!query.full);
        assert_eq!(query.custom, None);
        let full = parse_list_objects(&ListObjectsRequest {
            view: ObjectView::Full as i32,
            custom: Some(true),
            ..request()
        })
        .unwrap();
        assert!(full.full);
        assert_eq!(full.custom, Some(true));
    }

    #[test]
    fn every_invalid_field_is_named() {
        let error = parse_list_objects(&ListObjectsRequest {
            connection_id: String::new(),
            schema_version: -1,
            view: 9,
            page_size: -5,
            ..request()
        })
        .unwrap_err();
        let fields: Vec<_> = error
            .violations()
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(
            fields,
            ["connection_id", "schema_version", "view", "page_size"]
        );
    }
}
