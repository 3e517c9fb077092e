//! The embedded default's database files: how a new one is laid out on disk.

use syncline_config::{ServiceName, StorageConfig};
use syncline_storage::Database;

/// A new embedded database in a fresh directory, with the sync-engine's migrations applied.
async fn new_sync_engine_database(dir: &std::path::Path) -> Database {
    Database::open(
        &StorageConfig::default(),
        dir,
        ServiceName::SyncEngine,
        syncline_sync_engine::MIGRATIONS,
    )
    .await
    .expect("open the embedded database")
}

async fn pragma(db: &Database, name: &str) -> String {
    use sqlx::Row;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA {name}")))
        .fetch_one(db.pool())
        .await
        .expect("read the pragma");
    row.try_get::<i64, _>(0)
        .map(|v| v.to_string())
        .or_else(|_| row.try_get::<String, _>(0))
        .expect("a pragma value")
}

/// Change rows are ~2.3 KB (mapped and provider record): on SQLite's default 4 KB pages one
/// fills a page on its own, so a backfill would write nearly twice its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_embedded_database_has_16_kb_pages_in_wal_mode_on_every_connection() {
    let dir = std::env::temp_dir().join(format!("syncline-storage-{}", uuid::Uuid::new_v4()));
    let db = new_sync_engine_database(&dir).await;
    // Every connection of the pool, not only the one that created the file.
    let mut held = Vec::new();
    for _ in 0..StorageConfig::default().max_connections {
        held.push(db.pool().acquire().await.expect("a connection"));
    }
    drop(held);
    assert_eq!(pragma(&db, "page_size").await, "16384");
    assert_eq!(pragma(&db, "journal_mode").await, "wal");
    db.close().await;
    // Reopened, the file keeps its layout.
    let db = new_sync_engine_database(&dir).await;
    assert_eq!(pragma(&db, "page_size").await, "16384");
    db.close().await;
    std::fs::remove_dir_all(&dir).expect("remove the test directory");
}

/// A file created before every connection asked for 16 KB pages keeps SQLite's 4 KB pages
/// (only a vacuum changes them): opening it works, keeps its rows and reads the size back,
/// which is what the start-up warning reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_database_on_4_kb_pages_opens_with_its_rows_and_reports_its_page_size() {
    use sqlx::Executor;
    let dir = std::env::temp_dir().join(format!("syncline-storage-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("create the test directory");
    let file = dir.join(format!("{}.db", ServiceName::SyncEngine.ident()));
    sqlx::any::install_default_drivers();
    let old = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite://{}?mode=rwc", file.display()))
        .await
        .expect("create a database the old way");
    old.execute(
        "PRAGMA journal_mode = WAL; CREATE TABLE kept (id INTEGER PRIMARY KEY); \
         INSERT INTO kept (id) VALUES (7)",
    )
    .await
    .expect("write the old database");
    old.close().await;

    let db = new_sync_engine_database(&dir).await;
    assert_eq!(db.sqlite_page_size().await.expect("page size"), Some(4096));
    assert_eq!(pragma(&db, "page_size").await, "4096");
    let kept: i64 = sqlx::query_scalar("SELECT id FROM kept")
        .fetch_one(db.pool())
        .await
        .expect("the old row");
    assert_eq!(kept, 7);
    db.close().await;

    let fresh_dir = dir.join("fresh");
    let fresh = new_sync_engine_database(&fresh_dir).await;
    assert_eq!(
        fresh.sqlite_page_size().await.expect("page size"),
        Some(syncline_storage::PAGE_SIZE)
    );
    fresh.close().await;
    std::fs::remove_dir_all(&dir).expect("remove the test directory");
}
