//! `syncline-schema-discovery`: the schema-discovery service as its own process.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    syncline_service_kit::standalone::main(
        syncline_config::ServiceName::SchemaDiscovery,
        |config, listener, shutdown| async move {
            syncline_schema_discovery::start(&config, listener, shutdown).await
        },
    )
    .await
}
