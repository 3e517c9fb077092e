//! sync-engine: sync runs, the change log, writes, event intake and outbound webhooks.
//!
//! Built so far: outbound webhook endpoint management (create with a one-time signing
//! secret, get, list, update with a field mask, delete), reading sync runs, and delivery:
//! the per-tenant change log ([`changelog`]), `StreamChanges`, signed webhook deliveries with
//! retries, dead letters and replay ([`delivery`]), and the lifecycle event log ([`lifecycle`]):
//! `IntakeService.PublishLifecycleEvent`, `StreamLifecycleEvents` and LIFECYCLE_EVENTS
//! webhooks; and sync runs ([`runs`]): StartSyncRun and its pause, resume, cancel and
//! inspection, worked by a bounded pool of workers over a durable, leased queue with fair
//! turns across tenants, each page's changes, record state and checkpoint committed
//! together. `IngestProviderEvents` and `WriteRecords` answer UNIMPLEMENTED until their
//! issues build them.

mod api;
mod change_route;
pub mod changelog;
pub mod delivery;
mod engine;
pub mod lifecycle;
pub mod runs;
mod store;
mod webhook;

pub use engine::{Engine, EngineOptions, running};

use std::sync::Arc;
use syncline_config::{ServiceName, SynclineConfig};
use syncline_proto::sync::v1::intake_service_server::IntakeServiceServer;
use syncline_proto::sync::v1::sync_service_server::SyncServiceServer;

use syncline_service_kit::{RunningService, ServiceError, boot, client, server};
use syncline_storage::EmbeddedMigration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// This service's migrations, oldest first.
pub const MIGRATIONS: &[EmbeddedMigration] = &[
    EmbeddedMigration {
        version: 1,
        description: "sync runs and webhook endpoints",
        sql: include_str!("../migrations/0001_init.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 2,
        description: "change log, webhook outbox and dead letters",
        sql: include_str!("../migrations/0002_change_log_and_delivery.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 3,
        description: "lifecycle event log",
        sql: include_str!("../migrations/0003_lifecycle_events.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 4,
        description: "sync runs: slices (work queue with leases), checkpoints, record state",
        sql: include_str!("../migrations/0004_sync_runs.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 5,
        description: "record state under one key column",
        sql: include_str!("../migrations/0005_record_state_key.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 6,
        description: "provider records in their own column of the change log",
        sql: include_str!("../migrations/0006_provider_record_column.sql"),
        postgres_sql: Some(include_str!(
            "../migrations/0006_provider_record_column.postgres.sql"
        )),
    },
    EmbeddedMigration {
        version: 7,
        description: "dead letters keyed by what they are about",
        sql: include_str!("../migrations/0007_dead_letter_key.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 8,
        description: "schedules of incremental runs",
        sql: include_str!("../migrations/0008_sync_schedules.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 9,
        description: "fields a run left out of an object (schema drift)",
        sql: include_str!("../migrations/0009_slice_skipped_fields.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 10,
        description: "record state stored once on SQLite (without rowid)",
        sql: include_str!("../migrations/0010_record_state_without_rowid.sql"),
        postgres_sql: Some(include_str!(
            "../migrations/0010_record_state_without_rowid.postgres.sql"
        )),
    },
];

/// Starts the service on `listener` with the default delivery options; it drains and stops
/// when `shutdown` fires.
pub async fn start(
    config: &SynclineConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunningService, ServiceError> {
    let options = EngineOptions::from_config(&config.sync_engine);
    start_with(config, listener, shutdown, options).await
}

/// Starts the service with `options`. The engine is registered under the listen address
/// (see [`running`]) until the service stops.
pub async fn start_with(
    config: &SynclineConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
    options: EngineOptions,
) -> Result<RunningService, ServiceError> {
    let boot = boot(config, ServiceName::SyncEngine, MIGRATIONS).await?;
    let engine = Engine::new(boot.database.clone(), options)
        .map_err(|e| ServiceError::Config(format!("failed to build the webhook client: {e}")))?;
    engine.spawn_background(shutdown.clone());
    let backends = &config.gateway.backends;
    let channel = |url: &str, key: &str| {
        client::channel(url).map_err(|e| {
            ServiceError::Config(format!(
                "invalid configuration: `gateway.backends.{key}`: {e}"
            ))
        })
    };
    let http = syncline_service_kit::crm_http::client(&config.crm_http)
        .map_err(|e| ServiceError::Config(e.to_string()))?;
    let runner = Arc::new(runs::Runner::new(
        boot.database.clone(),
        engine.change_log().clone(),
        http,
        client::ServiceCaller::new(boot.auth.clone(), ServiceName::SyncEngine.as_str()),
        runs::remote::Channels {
            auth_vault: channel(&backends.auth_vault, "auth_vault")?,
            mapping: channel(&backends.mapping, "mapping")?,
            schema_discovery: channel(&backends.schema_discovery, "schema_discovery")?,
        },
        runs::RunOptions::from_config(&config.sync_engine.runs),
    ));
    runner.spawn_workers(&shutdown);
    runner.spawn_scheduler(&shutdown);
    let api = api::SyncApi::new(
        store::Store::new(boot.database),
        engine.clone(),
        runner.clone(),
    );
    boot.health
        .set_serving::<SyncServiceServer<api::SyncApi>>()
        .await;
    boot.health
        .set_serving::<IntakeServiceServer<api::IntakeApi>>()
        .await;
    let router = boot
        .router
        .add_service(change_route::SyncRoutes::new(api))
        .add_service(IntakeServiceServer::new(api::IntakeApi::new(
            engine.clone(),
            runner,
        )));
    let addr = listener.local_addr()?;
    engine::register(addr, engine);
    let task = tokio::spawn(async move {
        let result = server::serve(router, listener, boot.health, shutdown).await;
        engine::unregister(addr);
        result
    });
    Ok(RunningService::new(
        ServiceName::SyncEngine.as_str(),
        addr,
        task,
    ))
}
