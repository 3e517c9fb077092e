//! mapping: integration manifests (per project), installations and field mappings (per
//! tenant and connection), and compiled mapping plans.
//!
//! Manifests are validated (every error with its line and column), deployed as versions per
//! project and diffed; installations record a tenant's choices per connection; field
//! mappings are validated against the manifest and compiled into immutable, versioned
//! plans that sync workers apply in-process with `syncline-mapping-plan`.

mod api;
pub mod manifest;
mod mappings;
mod store;

use syncline_config::{ServiceName, SynclineConfig};
use syncline_proto::mapping::v1::mapping_service_server::MappingServiceServer;
use syncline_service_kit::{RunningService, ServiceError, boot, server};
use syncline_storage::EmbeddedMigration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// This service's migrations, oldest first.
pub const MIGRATIONS: &[EmbeddedMigration] = &[
    EmbeddedMigration {
        version: 1,
        description: "manifests and installations",
        sql: include_str!("../migrations/0001_init.sql"),
    },
    EmbeddedMigration {
        version: 2,
        description: "field mappings and mapping plans",
        sql: include_str!("../migrations/0002_field_mappings_and_plans.sql"),
    },
];

/// Starts the service on `listener`; it drains and stops when `shutdown` fires.
pub async fn start(
    config: &SynclineConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunningService, ServiceError> {
    let boot = boot(config, ServiceName::Mapping, MIGRATIONS).await?;
    let api = api::MappingApi::new(store::Store::new(boot.database));
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
