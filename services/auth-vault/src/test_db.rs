//! Fresh databases for unit tests: SQLite in memory, then PostgreSQL when a server answers
//! (always in CI).

use syncline_config::{ServiceName, StorageConfig};
use syncline_storage::Database;

async fn open(config: StorageConfig) -> Database {
    Database::open(
        &config,
        &std::env::temp_dir(),
        ServiceName::AuthVault,
        crate::MIGRATIONS,
    )
    .await
    .unwrap()
}

/// Runs `check` on a fresh SQLite database, then on a fresh PostgreSQL schema.
pub async fn on_every_backend<F, Fut>(test: &str, check: F)
where
    F: Fn(Database) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    check(
        open(StorageConfig {
            database_url: Some(secrecy::SecretString::from("sqlite::memory:")),
            max_connections: 1,
            ..StorageConfig::default()
        })
        .await,
    )
    .await;
    if let Some(url) = syncline_test_support::postgres::url_or_skip(test).await {
        let prefix = format!("{}_", syncline_domain::ids::new_resource_id("t"));
        let db = open(StorageConfig {
            database_url: Some(secrecy::SecretString::from(url.clone())),
            schema_prefix: prefix.clone(),
            max_connections: 2,
        })
        .await;
        check(db.clone()).await;
        db.close().await;
        syncline_storage::drop_schemas(&url, &prefix).await.unwrap();
    }
}
