//! `syncline-mapping`: the mapping service as its own process.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    syncline_service_kit::standalone::main(
        syncline_config::ServiceName::Mapping,
        |config, listener, shutdown| async move {
            syncline_mapping::start(&config, listener, shutdown).await
        },
    )
    .await
}
