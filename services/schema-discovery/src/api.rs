//! The gRPC surface of schema-discovery.

use syncline_domain::{ApiError, ErrorCode, TenantContext, Violation};
use syncline_proto::schema::v1::schema_service_server::SchemaService;
use syncline_proto::schema::v1::{
    GetObjectRequest, GetObjectResponse, GetSchemaDriftRequest, GetSchemaDriftResponse,
    ListObjectsRequest, ListObjectsResponse, ListSchemaVersionsRequest, ListSchemaVersionsResponse,
    ObjectView, RefreshSchemaRequest, RefreshSchemaResponse,
};
use syncline_service_kit::pagination::{self, PageRequest};
use syncline_service_kit::tenant;
use tonic::{Request, Response, Status};

use crate::discovery::Discoverer;
use crate::drift;
use crate::store::Store;

/// Implements `syncline.schema.v1.SchemaService`.
#[derive(Debug, Clone)]
pub struct SchemaApi {
    store: Store,
    discoverer: Discoverer,
}

impl SchemaApi {
    pub fn new(discoverer: Discoverer) -> Self {
        Self {
            store: discoverer.store().clone(),
            discoverer,
        }
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
        if query.version == 0
            && self
                .store
                .latest_version(tenant, connection_id)
                .await?
                .is_none()
        {
            // The first read of a connection describes it; when a concurrent first read
            // stored the version first (ABORTED), read that one.
            if let Err(status) = self.discoverer.refresh(tenant, connection_id, &[]).await
                && status.code() != tonic::Code::Aborted
            {
                return Err(status);
            }
        }
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

    async fn get_object(
        &self,
        request: Request<GetObjectRequest>,
    ) -> Result<Response<GetObjectResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        let full = parse_get_object(message)?;
        let connection_id = message.connection_id.as_str();
        let version = self
            .resolve_version(tenant, connection_id, message.schema_version)
            .await?;
        let mut object = self
            .store
            .object(tenant, connection_id, version, &message.object_name)
            .await?
            .ok_or_else(|| ApiError::not_found("object"))?;
        object.field_count = i32::try_from(object.fields.len()).unwrap_or(i32::MAX);
        if !full {
            object.fields.clear();
        }
        Ok(Response::new(GetObjectResponse {
            object: Some(object),
            schema_version: version,
        }))
    }

    async fn refresh_schema(
        &self,
        request: Request<RefreshSchemaRequest>,
    ) -> Result<Response<RefreshSchemaResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        if message.connection_id.is_empty() {
            return Err(ApiError::invalid(vec![Violation::required("connection_id")]).into());
        }
        if message.object_names.iter().any(String::is_empty) {
            return Err(ApiError::invalid(vec![Violation::new(
                "object_names",
                "EMPTY",
                "must not contain an empty name",
            )])
            .into());
        }
        let done = self
            .discoverer
            .refresh(tenant, &message.connection_id, &message.object_names)
            .await?;
        Ok(Response::new(done))
    }

    async fn get_schema_drift(
        &self,
        request: Request<GetSchemaDriftRequest>,
    ) -> Result<Response<GetSchemaDriftResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        parse_get_drift(message)?;
        let connection_id = message.connection_id.as_str();
        let to = self
            .resolve_version(tenant, connection_id, message.to_version)
            .await?;
        let from = self
            .resolve_version(tenant, connection_id, message.from_version)
            .await?;
        if from > to {
            return Err(ApiError::invalid(vec![Violation::new(
                "from_version",
                "AFTER_TO_VERSION",
                "must not be newer than to_version",
            )])
            .into());
        }
        let keep = |objects: Vec<syncline_proto::schema::v1::ObjectSchema>| {
            objects
                .into_iter()
                .filter(|o| {
                    message.object_names.is_empty() || message.object_names.contains(&o.name)
                })
                .collect::<Vec<_>>()
        };
        let objects = if from == to {
            Vec::new()
        } else {
            let before = keep(self.store.all_objects(tenant, connection_id, from).await?);
            let after = keep(self.store.all_objects(tenant, connection_id, to).await?);
            drift::compare(&before, &after)
        };
        Ok(Response::new(GetSchemaDriftResponse {
            from_version: from,
            to_version: to,
            objects,
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

/// Validates a `GetObject` request; whether the full view is asked for.
fn parse_get_object(request: &GetObjectRequest) -> Result<bool, ApiError> {
    let mut violations = Vec::new();
    if request.connection_id.is_empty() {
        violations.push(Violation::required("connection_id"));
    }
    if request.object_name.is_empty() {
        violations.push(Violation::required("object_name"));
    }
    if request.schema_version < 0 {
        violations.push(Violation::new(
            "schema_version",
            "NEGATIVE",
            "must not be negative (0 reads the latest)",
        ));
    }
    let full = match ObjectView::try_from(request.view) {
        Ok(ObjectView::Unspecified | ObjectView::Full) => true,
        Ok(ObjectView::Basic) => false,
        Err(_) => {
            violations.push(Violation::new(
                "view",
                "INVALID_ENUM",
                "is not an object view",
            ));
            true
        }
    };
    if violations.is_empty() {
        Ok(full)
    } else {
        Err(ApiError::invalid(violations))
    }
}

fn parse_get_drift(request: &GetSchemaDriftRequest) -> Result<(), ApiError> {
    let mut violations = Vec::new();
    if request.connection_id.is_empty() {
        violations.push(Violation::required("connection_id"));
    }
    if request.from_version <= 0 {
        violations.push(Violation::new(
            "from_version",
            "NOT_POSITIVE",
            "must be a stored version (1 or more)",
        ));
    }
    if request.to_version < 0 {
        violations.push(Violation::new(
            "to_version",
            "NEGATIVE",
            "must not be negative (0 compares with the latest)",
        ));
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(violations))
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
    fn get_object_and_drift_requests_are_validated() {
        let fields = |e: ApiError| -> Vec<String> {
            e.violations().iter().map(|v| v.field.clone()).collect()
        };
        let error = parse_get_object(&GetObjectRequest {
            schema_version: -1,
            view: 7,
            ..GetObjectRequest::default()
        })
        .unwrap_err();
        assert_eq!(
            fields(error),
            ["connection_id", "object_name", "schema_version", "view"]
        );
        assert!(
            parse_get_object(&GetObjectRequest {
                connection_id: "c".into(),
                object_name: "Account".into(),
                ..GetObjectRequest::default()
            })
            .unwrap()
        );
        let error = parse_get_drift(&GetSchemaDriftRequest {
            to_version: -1,
            ..GetSchemaDriftRequest::default()
        })
        .unwrap_err();
        assert_eq!(
            fields(error),
            ["connection_id", "from_version", "to_version"]
        );
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
