//! mapping: integration manifests (per project), installations and field mappings (per
//! tenant and connection), and compiled mapping plans.
//!
//! Built so far: reading manifest versions and a connection's installation. Validating and
//! deploying manifests, changing installations, field mappings and plans answer
//! UNIMPLEMENTED until their issues build them.

mod api;
mod store;

use syncline_config::{ServiceName, SynclineConfig};
use syncline_proto::mapping::v1::mapping_service_server::MappingServiceServer;
use syncline_service_kit::{RunningService, ServiceError, boot, server};
use syncline_storage::EmbeddedMigration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// This service's migrations, oldest first.
pub const MIGRATIONS: &[EmbeddedMigration] = &[EmbeddedMigration {
    version: 1,
    description: "manifests and installations",
    sql: include_str!("../migrations/0001_init.sql"),
}];

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
