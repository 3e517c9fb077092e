//! What mapping asks other services, with a service credential for the caller's tenant:
//! the connection's provider (auth-vault `GetConnection`) and the connection's discovered
//! schema (schema-discovery `ListSchemaVersions`, `ListObjects`, `GetObject`).
//!
//! Their answers keep their status: an unknown connection (or another tenant's) is
//! NOT_FOUND from auth-vault, a CRM that cannot be described is schema-discovery's error.

use std::collections::BTreeMap;
use std::time::Duration;

use syncline_domain::TenantContext;
use syncline_proto::authvault::v1::GetConnectionRequest;
use syncline_proto::authvault::v1::auth_vault_service_client::AuthVaultServiceClient;
use syncline_proto::common::v1::Provider;
use syncline_proto::schema::v1::schema_service_client::SchemaServiceClient;
use syncline_proto::schema::v1::{
    GetObjectRequest, ListObjectsRequest, ListSchemaVersionsRequest, ObjectSchema, ObjectView,
};
use syncline_service_kit::client::ServiceCaller;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// How long a read of another service may take.
const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a first describe of a connection may take (large orgs are slow).
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(120);

/// The provider objects of one schema version, as mapping needs them.
#[derive(Debug, Clone, Default)]
pub struct SchemaSnapshot {
    /// The connection's schema version they were read from.
    pub version: i64,
    /// Each object asked for, `None` when the version does not have it.
    pub objects: BTreeMap<String, Option<ObjectSchema>>,
}

impl SchemaSnapshot {
    /// One object of the snapshot (`None`: not in the schema, or not asked for).
    pub fn object(&self, name: &str) -> Option<&ObjectSchema> {
        self.objects.get(name).and_then(Option::as_ref)
    }
}

/// Clients of auth-vault and schema-discovery.
#[derive(Debug, Clone)]
pub struct Remote {
    caller: ServiceCaller,
    auth_vault: Channel,
    schema: Channel,
}

impl Remote {
    pub fn new(caller: ServiceCaller, auth_vault: Channel, schema: Channel) -> Self {
        Self {
            caller,
            auth_vault,
            schema,
        }
    }

    fn request<T>(
        &self,
        tenant: &TenantContext,
        message: T,
        timeout: Duration,
    ) -> Result<tonic::Request<T>, Status> {
        let mut request = self.caller.request(tenant, message)?;
        request.set_timeout(timeout);
        Ok(request)
    }

    /// The provider of one of the tenant's connections; NOT_FOUND when the tenant has no
    /// such connection.
    pub async fn provider(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<Provider, Status> {
        let request = self.request(
            tenant,
            GetConnectionRequest {
                connection_id: connection_id.to_owned(),
            },
            READ_TIMEOUT,
        )?;
        let connection = AuthVaultServiceClient::new(self.auth_vault.clone())
            .get_connection(request)
            .await
            .map_err(|status| match status.code() {
                Code::NotFound => Status::not_found("connection not found"),
                _ => status,
            })?
            .into_inner()
            .connection
            .ok_or_else(|| Status::internal("auth-vault answered without a connection"))?;
        Ok(connection.provider())
    }

    /// The connection's latest schema version; `None` when it was never discovered.
    pub async fn latest_version(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<Option<i64>, Status> {
        let request = self.request(
            tenant,
            ListSchemaVersionsRequest {
                connection_id: connection_id.to_owned(),
                page_size: 1,
                page_token: String::new(),
            },
            READ_TIMEOUT,
        )?;
        match SchemaServiceClient::new(self.schema.clone())
            .list_schema_versions(request)
            .await
        {
            Ok(response) => Ok(response
                .into_inner()
                .schema_versions
                .first()
                .map(|v| v.version)),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(status),
        }
    }

    /// Describes a connection never described before (schema-discovery's first
    /// `ListObjects` does); returns the version stored.
    async fn discover(&self, tenant: &TenantContext, connection_id: &str) -> Result<i64, Status> {
        let request = self.request(
            tenant,
            ListObjectsRequest {
                connection_id: connection_id.to_owned(),
                page_size: 1,
                ..ListObjectsRequest::default()
            },
            DISCOVER_TIMEOUT,
        )?;
        Ok(SchemaServiceClient::new(self.schema.clone())
            .list_objects(request)
            .await?
            .into_inner()
            .schema_version)
    }

    /// The named provider objects (with their fields) of the connection's latest schema
    /// version. A connection never described is described first when `discover`, else
    /// `None` comes back.
    pub async fn objects(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        names: Vec<String>,
        discover: bool,
    ) -> Result<Option<SchemaSnapshot>, Status> {
        let version = match self.latest_version(tenant, connection_id).await? {
            Some(version) => version,
            None if discover => self.discover(tenant, connection_id).await?,
            None => return Ok(None),
        };
        self.objects_at(tenant, connection_id, version, names)
            .await
            .map(Some)
    }

    /// The named provider objects (with their fields) of one schema version.
    pub async fn objects_at(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        version: i64,
        names: Vec<String>,
    ) -> Result<SchemaSnapshot, Status> {
        let mut snapshot = SchemaSnapshot {
            version,
            objects: BTreeMap::new(),
        };
        for name in names {
            if name.is_empty() || snapshot.objects.contains_key(&name) {
                continue;
            }
            let request = self.request(
                tenant,
                GetObjectRequest {
                    connection_id: connection_id.to_owned(),
                    object_name: name.clone(),
                    schema_version: version,
                    view: ObjectView::Full as i32,
                },
                READ_TIMEOUT,
            )?;
            let object = match SchemaServiceClient::new(self.schema.clone())
                .get_object(request)
                .await
            {
                Ok(response) => response.into_inner().object,
                Err(status) if status.code() == Code::NotFound => None,
                Err(status) => return Err(status),
            };
            snapshot.objects.insert(name, object);
        }
        Ok(snapshot)
    }
}
