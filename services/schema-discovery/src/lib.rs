//! schema-discovery: the per-connection catalog of the CRM's objects and fields, cached as
//! immutable versions.
//!
//! Built so far: reading stored versions and their objects. Describing objects at the CRM
//! (`RefreshSchema`, and the refresh a first `ListObjects` should trigger), `GetObject` and
//! drift detection answer UNIMPLEMENTED (or NOT_FOUND for a connection with nothing stored)
//! until their issues build them.

mod api;
mod store;

use syncline_config::{ServiceName, SynclineConfig};
use syncline_proto::schema::v1::schema_service_server::SchemaServiceServer;
use syncline_service_kit::{RunningService, ServiceError, boot, server};
use syncline_storage::EmbeddedMigration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// This service's migrations, oldest first.
pub const MIGRATIONS: &[EmbeddedMigration] = &[EmbeddedMigration {
    version: 1,
    description: "schema versions and objects",
    sql: include_str!("../migrations/0001_init.sql"),
}];

/// Starts the service on `listener`; it drains and stops when `shutdown` fires.
pub async fn start(
    config: &SynclineConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunningService, ServiceError> {
    let boot = boot(config, ServiceName::SchemaDiscovery, MIGRATIONS).await?;
    let api = api::SchemaApi::new(store::Store::new(boot.database));
    boot.health
        .set_serving::<SchemaServiceServer<api::SchemaApi>>()
        .await;
    let router = boot.router.add_service(SchemaServiceServer::new(api));
    let addr = listener.local_addr()?;
    let task = tokio::spawn(server::serve(router, listener, boot.health, shutdown));
    Ok(RunningService::new(
        ServiceName::SchemaDiscovery.as_str(),
        addr,
        task,
    ))
}
