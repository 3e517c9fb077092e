//! One storage code path for SQLite (the embedded default) and PostgreSQL.
//!
//! Each service owns its tables: on SQLite a file `<data_dir>/<service>.db` in WAL mode, on
//! PostgreSQL a schema `<prefix><service>` in the configured database. Queries are written
//! once, in the SQL both engines accept (`$1` placeholders, `ON CONFLICT`, `RETURNING`),
//! through sqlx's `Any` driver; the few places that must differ ask [`Database::backend`].
//! Migrations are embedded in each service's binary and run at start-up.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, SqlSafeStr};
use syncline_config::{ServiceName, StorageConfig};

/// The SQL engine behind a [`Database`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, one file per service.
    Sqlite,
    /// PostgreSQL, one schema per service.
    Postgres,
}

/// One migration, embedded with `include_str!`.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedMigration {
    /// Increasing version number.
    pub version: i64,
    /// Short description.
    pub description: &'static str,
    /// SQL accepted by both SQLite and PostgreSQL.
    pub sql: &'static str,
    /// Run on PostgreSQL instead of `sql`, for the few settings SQLite has no words for
    /// (storage parameters, for one); it must leave the same tables and columns.
    pub postgres_sql: Option<&'static str>,
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database could not be reached or refused a statement.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The data directory could not be created.
    #[error("failed to create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The database URL is not usable.
    #[error("invalid database url: {0}")]
    Url(String),
}

/// A service's connection pool and which engine it talks to.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
}

impl Database {
    /// Opens the service's database, creating the file or schema if needed, and runs its
    /// migrations.
    pub async fn open(
        config: &StorageConfig,
        data_dir: &Path,
        service: ServiceName,
        migrations: &[EmbeddedMigration],
    ) -> Result<Self, StorageError> {
        install_default_drivers();
        let (url, backend) = match &config.database_url {
            Some(url) if !url.expose_secret().starts_with("sqlite:") => {
                let schema = format!("{}{}", config.schema_prefix, service.ident());
                let url = url.expose_secret();
                create_schema(url, &schema).await?;
                (with_search_path(url, &schema)?, Backend::Postgres)
            }
            Some(url) => (url.expose_secret().to_owned(), Backend::Sqlite),
            None => {
                std::fs::create_dir_all(data_dir).map_err(|source| StorageError::DataDir {
                    path: data_dir.display().to_string(),
                    source,
                })?;
                let file = data_dir.join(format!("{}.db", service.ident()));
                (
                    format!("sqlite://{}?mode=rwc", file.display()),
                    Backend::Sqlite,
                )
            }
        };
        let pool = pool_options(config, backend).connect(&url).await?;
        if backend == Backend::Sqlite {
            // Every connection asked for 16 KB pages on connect, so whichever runs this
            // first write creates the file with them.
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        let database = Self { pool, backend };
        database.migrate(migrations).await?;
        if let Some(page_size) = database.sqlite_page_size().await?
            && page_size < PAGE_SIZE
        {
            tracing::warn!(
                service = service.ident(),
                page_size,
                database = %url.trim_start_matches("sqlite://").split('?').next().unwrap_or_default(),
                "this SQLite database was created with {page_size}-byte pages (new ones get \
                 {PAGE_SIZE}); it works, but a sync writes more bytes per record. To convert it, \
                 stop the suite and run: sqlite3 <database file> 'PRAGMA journal_mode = DELETE; \
                 PRAGMA page_size = {PAGE_SIZE}; VACUUM; PRAGMA journal_mode = WAL'"
            );
        }
        Ok(database)
    }

    /// The page size of an SQLite database file (`None` on PostgreSQL). Files created before
    /// every connection asked for [`PAGE_SIZE`] keep SQLite's 4 KB until vacuumed with it.
    pub async fn sqlite_page_size(&self) -> Result<Option<i64>, StorageError> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(page_size))
    }

    /// The pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The engine, for the few statements that differ.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self, migrations: &[EmbeddedMigration]) -> Result<(), StorageError> {
        let migrations = migrations
            .iter()
            .map(|m| {
                Migration::new(
                    m.version,
                    Cow::Borrowed(m.description),
                    MigrationType::Simple,
                    match (self.backend, m.postgres_sql) {
                        (Backend::Postgres, Some(sql)) => sql,
                        _ => m.sql,
                    }
                    .into_sql_str(),
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(migrations)
            .run(&self.pool)
            .await?;
        Ok(())
    }
}

/// The page size every SQLite connection asks for, so that a new file is created with it.
pub const PAGE_SIZE: i64 = 16384;

fn pool_options(config: &StorageConfig, backend: Backend) -> AnyPoolOptions {
    let options = AnyPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(10));
    match backend {
        Backend::Postgres => options,
        Backend::Sqlite => options.after_connect(|conn, _meta| {
            Box::pin(async move {
                // 16 KB pages for a new database (an existing one keeps its size; only the
                // connection that first writes the file decides, so every one asks): a sync
                // page's change rows are ~2.3 KB each, six to a page instead of one to a 4 KB
                // page, and every read and write moves four times the bytes per system call.
                // A 32 MiB page cache per connection (SQLite's default is 2 MiB), so a
                // backfill's record-state lookups and inserts are served from memory rather
                // than read back through system calls.
                let pragmas = format!(
                    "PRAGMA page_size = {PAGE_SIZE}; PRAGMA foreign_keys = ON; \
                     PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; \
                     PRAGMA cache_size = -32768"
                );
                conn.execute(sqlx::AssertSqlSafe(pragmas)).await?;
                Ok(())
            })
        }),
    }
}

/// Creates `schema` if it does not exist. Concurrent creators are fine: PostgreSQL may
/// report a unique violation for the losing `CREATE SCHEMA IF NOT EXISTS`, which is ignored.
async fn create_schema(url: &str, schema: &str) -> Result<(), StorageError> {
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    let statement = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
    let result = pool.execute(sqlx::AssertSqlSafe(statement)).await;
    pool.close().await;
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn with_search_path(url: &str, schema: &str) -> Result<String, StorageError> {
    let mut parsed = url::Url::parse(url).map_err(|e| StorageError::Url(e.to_string()))?;
    parsed
        .query_pairs_mut()
        .append_pair("options", &format!("-c search_path={schema}"));
    Ok(parsed.to_string())
}

/// Drops the PostgreSQL schemas of every service under `prefix`; for tests that create a
/// fresh prefix each.
pub async fn drop_schemas(url: &str, prefix: &str) -> Result<(), StorageError> {
    install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    for service in ServiceName::ALL {
        let statement = format!(
            "DROP SCHEMA IF EXISTS \"{prefix}{}\" CASCADE",
            service.ident()
        );
        pool.execute(sqlx::AssertSqlSafe(statement)).await?;
    }
    pool.close().await;
    Ok(())
}

/// Milliseconds since the Unix epoch: the portable timestamp column type.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
