//! `syncline-auth-vault`: the auth-vault service as its own process.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    syncline_service_kit::standalone::main(
        syncline_config::ServiceName::AuthVault,
        |config, listener, shutdown| async move {
            syncline_auth_vault::start(&config, listener, shutdown).await
        },
    )
    .await
}
