//! `syncline-gateway`: the public door as its own process.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    syncline_service_kit::standalone::main(
        syncline_config::ServiceName::Gateway,
        |config, listener, shutdown| async move {
            syncline_gateway::start(&config, listener, shutdown).await
        },
    )
    .await
}
