//! schema-discovery: the per-connection catalog of the CRM's objects and fields, cached as
//! immutable versions.
//!
//! `RefreshSchema` (and the first `ListObjects` of a connection) gets a token from
//! auth-vault's internal TokenService, describes the CRM through `syncline-connectors`,
//! compares with the latest stored version and stores a new one only when something changed,
//! with its drift (table `schema_drift`; the mapping service re-checks its plans against the
//! latest version through `GetObject`) and a SCHEMA_DRIFT_DETECTED lifecycle event through
//! sync-engine's intake (recorded in `schema_drift_events` with `published = 0` while the
//! intake does not answer, UNIMPLEMENTED). A background scheduler refreshes every known connection every
//! `schema_discovery.refresh_interval_secs` with jitter.

mod api;
mod convert;
mod discovery;
mod drift;
mod store;

use syncline_config::{ServiceName, SynclineConfig};
use syncline_proto::schema::v1::schema_service_server::SchemaServiceServer;
use syncline_service_kit::{RunningService, ServiceError, boot, client, server};
use syncline_storage::EmbeddedMigration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// This service's migrations, oldest first.
pub const MIGRATIONS: &[EmbeddedMigration] = &[
    EmbeddedMigration {
        version: 1,
        description: "schema versions and objects",
        sql: include_str!("../migrations/0001_init.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 2,
        description: "schema drift",
        sql: include_str!("../migrations/0002_drift.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 3,
        description: "drift event provider",
        sql: include_str!("../migrations/0003_drift_event_provider.sql"),
        postgres_sql: None,
    },
];

/// Finished scheduler rounds of the service listening on each address in this process.
static SWEEPS: std::sync::Mutex<
    std::collections::BTreeMap<std::net::SocketAddr, tokio::sync::watch::Receiver<u64>>,
> = std::sync::Mutex::new(std::collections::BTreeMap::new());

/// How many scheduled refresh rounds the service on `addr` (in this process) has finished;
/// `None` when it runs no scheduler. Lets callers wait for a round instead of guessing.
pub fn completed_sweeps(addr: std::net::SocketAddr) -> Option<tokio::sync::watch::Receiver<u64>> {
    SWEEPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&addr)
        .cloned()
}

/// Starts the service on `listener`; it drains and stops when `shutdown` fires.
pub async fn start(
    config: &SynclineConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunningService, ServiceError> {
    let boot = boot(config, ServiceName::SchemaDiscovery, MIGRATIONS).await?;
    let http = syncline_service_kit::crm_http::client(&config.crm_http)
        .map_err(|e| ServiceError::Config(e.to_string()))?;
    let backends = &config.gateway.backends;
    let channel = |url: &str, key: &str| {
        client::channel(url).map_err(|e| {
            ServiceError::Config(format!(
                "invalid configuration: `gateway.backends.{key}`: {e}"
            ))
        })
    };
    let discoverer = discovery::Discoverer::new(
        store::Store::new(boot.database),
        http,
        client::ServiceCaller::new(boot.auth.clone(), ServiceName::SchemaDiscovery.as_str()),
        channel(&backends.auth_vault, "auth_vault")?,
        channel(&backends.sync_engine, "sync_engine")?,
    );
    let interval = config.schema_discovery.refresh_interval_secs;
    let addr = listener.local_addr()?;
    if interval > 0 {
        let (sweeps, observed) = tokio::sync::watch::channel(0);
        SWEEPS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(addr, observed);
        // Not awaited on shutdown: it stops at the cancellation, between or inside describes.
        tokio::spawn(discovery::run_scheduler(
            discoverer.clone(),
            std::time::Duration::from_secs(interval),
            shutdown.clone(),
            sweeps,
        ));
    }
    let api = api::SchemaApi::new(discoverer);
    boot.health
        .set_serving::<SchemaServiceServer<api::SchemaApi>>()
        .await;
    let router = boot.router.add_service(SchemaServiceServer::new(api));
    let task = tokio::spawn(server::serve(router, listener, boot.health, shutdown));
    Ok(RunningService::new(
        ServiceName::SchemaDiscovery.as_str(),
        addr,
        task,
    ))
}
