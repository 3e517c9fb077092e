//! sync-engine: sync runs, the change log, writes, event intake and outbound webhooks.
//!
//! Built so far: outbound webhook endpoint management (create with a one-time signing
//! secret, get, list, update with a field mask, delete) and reading sync runs. Everything
//! else, including the internal `IntakeService`, answers UNIMPLEMENTED until its issue
//! builds it.

mod api;
mod store;
mod webhook;

use syncline_config::{ServiceName, SynclineConfig};
use syncline_proto::sync::v1::intake_service_server::IntakeServiceServer;
use syncline_proto::sync::v1::sync_service_server::SyncServiceServer;
use syncline_service_kit::{RunningService, ServiceError, boot, server};
use syncline_storage::EmbeddedMigration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// This service's migrations, oldest first.
pub const MIGRATIONS: &[EmbeddedMigration] = &[EmbeddedMigration {
    version: 1,
    description: "sync runs and webhook endpoints",
    sql: include_str!("../migrations/0001_init.sql"),
}];

/// Starts the service on `listener`; it drains and stops when `shutdown` fires.
pub async fn start(
    config: &SynclineConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunningService, ServiceError> {
    let boot = boot(config, ServiceName::SyncEngine, MIGRATIONS).await?;
    let api = api::SyncApi::new(store::Store::new(boot.database));
    boot.health
        .set_serving::<SyncServiceServer<api::SyncApi>>()
        .await;
    boot.health
        .set_serving::<IntakeServiceServer<api::IntakeApi>>()
        .await;
    let router = boot
        .router
        .add_service(SyncServiceServer::new(api))
        .add_service(IntakeServiceServer::new(api::IntakeApi));
    let addr = listener.local_addr()?;
    let task = tokio::spawn(server::serve(router, listener, boot.health, shutdown));
    Ok(RunningService::new(
        ServiceName::SyncEngine.as_str(),
        addr,
        task,
    ))
}
