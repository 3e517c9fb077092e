//! mapping: integration manifests (per project), installations and field mappings (per
//! tenant and connection), and compiled mapping plans.
//!
//! Manifests are validated (every error with its line and column), deployed as versions per
//! project and diffed; installations record a tenant's choices per connection; field
//! mappings are validated against the manifest and the connection's discovered schema
//! (read from schema-discovery; the provider from auth-vault) and compiled into immutable,
//! versioned plans that sync workers apply in-process with `syncline-mapping-plan`. A plan
//! is re-checked against the current schema version when read: drift that broke it flags
//! the installation and makes `GetMappingPlan` refuse it.

mod api;
pub mod manifest;
mod mappings;
mod remote;
mod schema_check;
mod store;

use syncline_config::{ServiceName, SynclineConfig};
use syncline_proto::mapping::v1::mapping_service_server::MappingServiceServer;
use syncline_service_kit::{RunningService, ServiceError, boot, client, server};
use syncline_storage::EmbeddedMigration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// This service's migrations, oldest first.
pub const MIGRATIONS: &[EmbeddedMigration] = &[
    EmbeddedMigration {
        version: 1,
        description: "manifests and installations",
        sql: include_str!("../migrations/0001_init.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 2,
        description: "field mappings and mapping plans",
        sql: include_str!("../migrations/0002_field_mappings_and_plans.sql"),
        postgres_sql: None,
    },
];

/// Starts the service on `listener`; it drains and stops when `shutdown` fires.
pub async fn start(
    config: &SynclineConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunningService, ServiceError> {
    let boot = boot(config, ServiceName::Mapping, MIGRATIONS).await?;
    let backends = &config.gateway.backends;
    let channel = |url: &str, key: &str| {
        client::channel(url).map_err(|e| {
            ServiceError::Config(format!(
                "invalid configuration: `gateway.backends.{key}`: {e}"
            ))
        })
    };
    let remote = remote::Remote::new(
        client::ServiceCaller::new(boot.auth.clone(), ServiceName::Mapping.as_str()),
        channel(&backends.auth_vault, "auth_vault")?,
        channel(&backends.schema_discovery, "schema_discovery")?,
    );
    let api = api::MappingApi::new(store::Store::new(boot.database), remote);
    boot.health
        .set_serving::<MappingServiceServer<api::MappingApi>>()
        .await;
    let router = boot.router.add_service(MappingServiceServer::new(api));
    let addr = listener.local_addr()?;
    let task = tokio::spawn(server::serve(router, listener, boot.health, shutdown));
    Ok(RunningService::new(
        ServiceName::Mapping.as_str(),
        addr,
        task,
    ))
}
