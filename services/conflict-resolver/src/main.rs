//! `syncline-conflict-resolver`: the conflict-resolver service as its own process.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    syncline_service_kit::standalone::main(
        syncline_config::ServiceName::ConflictResolver,
        |config, listener, shutdown| async move {
            syncline_conflict_resolver::start(&config, listener, shutdown).await
        },
    )
    .await
}
