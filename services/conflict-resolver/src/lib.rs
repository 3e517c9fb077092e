//! conflict-resolver: per-tenant conflict policies and the review queue.
//!
//! Built so far: the policy (get, update with a field mask) and reading the review queue.
//! Three-way resolution (`ResolveConflict`, `DecideConflict`) answers UNIMPLEMENTED until
//! the conflict issue builds it.

mod api;
mod policy;
mod store;

use syncline_config::{ServiceName, SynclineConfig};
use syncline_proto::conflict::v1::conflict_service_server::ConflictServiceServer;
use syncline_service_kit::{RunningService, ServiceError, boot, server};
use syncline_storage::EmbeddedMigration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// This service's migrations, oldest first.
pub const MIGRATIONS: &[EmbeddedMigration] = &[EmbeddedMigration {
    version: 1,
    description: "policies and conflicts",
    sql: include_str!("../migrations/0001_init.sql"),
    postgres_sql: None,
}];

/// Starts the service on `listener`; it drains and stops when `shutdown` fires.
pub async fn start(
    config: &SynclineConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunningService, ServiceError> {
    let boot = boot(config, ServiceName::ConflictResolver, MIGRATIONS).await?;
    let api = api::ConflictApi::new(store::Store::new(boot.database));
    boot.health
        .set_serving::<ConflictServiceServer<api::ConflictApi>>()
        .await;
    let router = boot.router.add_service(ConflictServiceServer::new(api));
    let addr = listener.local_addr()?;
    let task = tokio::spawn(server::serve(router, listener, boot.health, shutdown));
    Ok(RunningService::new(
        ServiceName::ConflictResolver.as_str(),
        addr,
        task,
    ))
}
