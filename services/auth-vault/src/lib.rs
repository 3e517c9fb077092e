//! auth-vault: provider apps, connections and their credentials.
//!
//! Built so far: reading provider apps (per project) and connections (per tenant).
//! Creating and changing them, OAuth authorization, credential import/export and the
//! internal `TokenService` answer UNIMPLEMENTED until their issues build them (secrets must
//! be envelope-encrypted before anything stores one).

mod api;
mod filter;
mod store;

use syncline_config::{ServiceName, SynclineConfig};
use syncline_proto::authvault::v1::auth_vault_service_server::AuthVaultServiceServer;
use syncline_proto::authvault::v1::token_service_server::TokenServiceServer;
use syncline_service_kit::{RunningService, ServiceError, boot, server};
use syncline_storage::EmbeddedMigration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// This service's migrations, oldest first.
pub const MIGRATIONS: &[EmbeddedMigration] = &[EmbeddedMigration {
    version: 1,
    description: "provider apps and connections",
    sql: include_str!("../migrations/0001_init.sql"),
}];

/// Starts the service on `listener`; it drains and stops when `shutdown` fires.
pub async fn start(
    config: &SynclineConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunningService, ServiceError> {
    let boot = boot(config, ServiceName::AuthVault, MIGRATIONS).await?;
    let api = api::AuthVaultApi::new(store::Store::new(boot.database));
    boot.health
        .set_serving::<AuthVaultServiceServer<api::AuthVaultApi>>()
        .await;
    boot.health
        .set_serving::<TokenServiceServer<api::TokenApi>>()
        .await;
    let router = boot
        .router
        .add_service(AuthVaultServiceServer::new(api))
        .add_service(TokenServiceServer::new(api::TokenApi));
    let addr = listener.local_addr()?;
    let task = tokio::spawn(server::serve(router, listener, boot.health, shutdown));
    Ok(RunningService::new(
        ServiceName::AuthVault.as_str(),
        addr,
        task,
    ))
}
