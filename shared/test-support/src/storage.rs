//! Running a store's tests on both engines.

use std::future::Future;

use secrecy::SecretString;
use syncline_config::{ServiceName, StorageConfig};
use syncline_storage::{Database, EmbeddedMigration};

/// Runs `check` on a fresh in-memory SQLite database, then on fresh PostgreSQL schemas when a
/// server answers (always in CI), dropping them afterwards.
pub async fn on_every_backend<F, Fut>(
    test: &str,
    service: ServiceName,
    migrations: &[EmbeddedMigration],
    check: F,
) where
    F: Fn(Database) -> Fut,
    Fut: Future<Output = ()>,
{
    let sqlite = StorageConfig {
        database_url: Some(SecretString::from("sqlite::memory:")),
        max_connections: 1,
        ..StorageConfig::default()
    };
    let db = Database::open(&sqlite, &std::env::temp_dir(), service, migrations)
        .await
        .expect("open sqlite");
    check(db.clone()).await;
    db.close().await;
    if let Some(url) = crate::postgres::url_or_skip(test).await {
        let prefix = format!("{}_", syncline_domain::ids::new_resource_id("t"));
        let postgres = StorageConfig {
            database_url: Some(SecretString::from(url.clone())),
            schema_prefix: prefix.clone(),
            max_connections: 2,
        };
        let db = Database::open(&postgres, &std::env::temp_dir(), service, migrations)
            .await
            .expect("open postgres");
        check(db.clone()).await;
        db.close().await;
        syncline_storage::drop_schemas(&url, &prefix)
            .await
            .expect("drop test schemas");
    }
}
