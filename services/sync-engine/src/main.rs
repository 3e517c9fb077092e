//! `syncline-sync-engine`: the sync-engine service as its own process.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    syncline_service_kit::standalone::main(
        syncline_config::ServiceName::SyncEngine,
        |config, listener, shutdown| async move {
            syncline_sync_engine::start(&config, listener, shutdown).await
        },
    )
    .await
}
