//! auth-vault: provider apps, connections and their credentials.
//!
//! - [`crypto`]: envelope encryption at rest (AES-256-GCM data keys per tenant, wrapped by
//!   key-encryption keys behind the [`crypto::Kms`] trait; online rotation).
//! - `apps`: provider app CRUD with sealed client secrets.
//! - [`oauth`]: the signed single-use `state`, PKCE, providers' endpoints.
//! - `connect`: StartAuthorization and CompleteAuthorization (from the gateway's callback).
//! - `tokens`: GetAccessToken / ReportUnauthorized with refresh ahead of expiry,
//!   single-flight per connection (in process, and across processes with a lease),
//!   compare-and-set on the token version.
//! - `refresher`: the background sweep refreshing tokens before they expire (jitter,
//!   bounded concurrency, per-provider pacing, counters).
//! - `transfer`: ImportCredentials and ExportCredentials.
//! - `audit`: the credential audit trail (ListAuditEvents).
//! - `lifecycle`: CONNECTION_AUTHORIZED / NEEDS_REAUTH / RECOVERED through an outbox
//!   published to sync-engine.
//!
//! Not built yet (UNIMPLEMENTED): UpdateConnection, DeleteConnection.

mod api;
mod apps;
mod audit;
mod connect;
mod credentials;
pub mod crypto;
mod filter;
mod lifecycle;
pub mod oauth;
mod refresher;
mod store;
#[cfg(test)]
mod test_db;
mod tokens;
mod transfer;
mod vault;

use std::sync::Arc;

use syncline_config::{ServiceName, SynclineConfig};
use syncline_domain::ApiError;
use syncline_proto::authvault::v1::auth_vault_service_server::AuthVaultServiceServer;
use syncline_proto::authvault::v1::token_service_server::TokenServiceServer;
use syncline_service_kit::client::ServiceCaller;
use syncline_service_kit::{RunningService, ServiceError, boot, server};
use syncline_storage::EmbeddedMigration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// This service's migrations, oldest first.
pub const MIGRATIONS: &[EmbeddedMigration] = &[
    EmbeddedMigration {
        version: 1,
        description: "provider apps and connections",
        sql: include_str!("../migrations/0001_init.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 2,
        description: "data keys, sealed secrets, credentials and oauth states",
        sql: include_str!("../migrations/0002_credentials.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 3,
        description: "refresh lease",
        sql: include_str!("../migrations/0003_refresh_lease.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 4,
        description: "audit trail",
        sql: include_str!("../migrations/0004_audit.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 5,
        description: "lifecycle event outbox",
        sql: include_str!("../migrations/0005_outbox.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 6,
        description: "credentials by expiry",
        sql: include_str!("../migrations/0006_expiry_index.sql"),
        postgres_sql: None,
    },
];

pub use lifecycle::PassReport;
pub use refresher::{RefresherStats, SweepReport};

/// In-process access to a running vault's background work, for tests and benchmarks.
#[derive(Debug, Clone)]
pub struct VaultHandle {
    publisher: lifecycle::Publisher,
    refresher: refresher::Refresher,
}

impl VaultHandle {
    /// Runs one pass of the lifecycle publisher as if the time were `now_ms`: publishes
    /// the events due then and schedules the refused ones again.
    pub async fn publish_lifecycle_events(&self, now_ms: i64) -> Result<PassReport, ApiError> {
        self.publisher.pass(now_ms).await
    }

    /// Runs one sweep of the proactive refresher as if the time were `now_ms`; returns
    /// when every refresh it started is done.
    pub async fn refresh_sweep(&self, now_ms: i64) -> Result<SweepReport, ApiError> {
        self.refresher.sweep(now_ms).await
    }

    /// The proactive refresher's counters.
    pub fn refresher_stats(&self) -> RefresherStats {
        self.refresher.stats()
    }

    /// Publishes the refresher's counters on another meter too (the service registers them
    /// on the global meter at start; tests read them from their own).
    pub fn register_refresher_metrics(&self, meter: &opentelemetry::metrics::Meter) {
        self.refresher.register_metrics(meter);
    }

    /// Lifecycle events not yet accepted by sync-engine.
    pub async fn pending_lifecycle_events(&self) -> Result<i64, ApiError> {
        self.publisher.pending().await
    }
}

/// Starts the service on `listener`; it drains and stops when `shutdown` fires.
pub async fn start(
    config: &SynclineConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunningService, ServiceError> {
    start_with_handle(config, listener, shutdown)
        .await
        .map(|(running, _)| running)
}

/// Like [`start`], also returning a handle on the vault's background work.
pub async fn start_with_handle(
    config: &SynclineConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(RunningService, VaultHandle), ServiceError> {
    let boot = boot(config, ServiceName::AuthVault, MIGRATIONS).await?;
    let kms = crypto::LocalKms::from_config(&config.auth_vault, &config.data_dir)
        .map_err(|e| ServiceError::Config(format!("auth_vault: {e}")))?;
    let keys = crypto::Keys::load_ring(boot.database.clone(), Arc::new(kms))
        .await
        .map_err(|e| ServiceError::Config(format!("auth_vault: {e}")))?;
    let http = syncline_service_kit::crm_http::client(&config.crm_http)
        .map_err(|e| ServiceError::Config(e.to_string()))?;
    let oauth = oauth::OAuthClient::new(http);
    let vault = vault::Vault::new(
        store::Store::new(boot.database.clone()),
        keys,
        oauth,
        vault::Settings::from_config(config),
    )
    .await
    .map_err(|e| ServiceError::Config(format!("auth_vault: {e}")))?;
    let vault = Arc::new(vault);
    let sync_engine =
        syncline_service_kit::client::channel(&config.gateway.backends.sync_engine)
            .map_err(|e| ServiceError::Config(format!("gateway.backends.sync_engine: {e}")))?;
    let publisher = lifecycle::Publisher::new(
        boot.database.clone(),
        ServiceCaller::new(boot.auth.clone(), ServiceName::AuthVault.as_str()),
        sync_engine,
        vault.outbox_wake.clone(),
        vault.instance_id.clone(),
    );
    // Not awaited on shutdown: what it has not published stays in the outbox.
    tokio::spawn(publisher.clone().run(shutdown.clone()));
    let refresher = refresher::Refresher::new(
        vault.clone(),
        refresher::RefresherSettings::from_config(&config.auth_vault),
    );
    refresher.register_metrics(&opentelemetry::global::meter("syncline.auth_vault"));
    // Not awaited on shutdown either: a refresh cut short leaves the token as it was.
    tokio::spawn(refresher.clone().run(shutdown.clone()));
    boot.health
        .set_serving::<AuthVaultServiceServer<api::AuthVaultApi>>()
        .await;
    boot.health
        .set_serving::<TokenServiceServer<api::TokenApi>>()
        .await;
    let router = boot
        .router
        .add_service(AuthVaultServiceServer::new(api::AuthVaultApi::new(
            vault.clone(),
        )))
        .add_service(TokenServiceServer::new(api::TokenApi::new(vault.clone())));
    let addr = listener.local_addr()?;
    let task = tokio::spawn(server::serve(router, listener, boot.health, shutdown));
    Ok((
        RunningService::new(ServiceName::AuthVault.as_str(), addr, task),
        VaultHandle {
            publisher,
            refresher,
        },
    ))
}
