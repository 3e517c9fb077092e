//! Finding the PostgreSQL server tests run against.
//!
//! In CI (`CI` set) PostgreSQL must answer: a test that cannot reach it fails. Elsewhere a
//! PostgreSQL test is skipped, saying so, when no server answers.

use std::time::Duration;

/// The server tests use: `SYNCLINE_TEST_DATABASE_URL`, or the local default.
pub fn url() -> String {
    std::env::var("SYNCLINE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Whether this is a CI run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The URL when PostgreSQL answers; `None` (with a note on stderr) when it does not and this
/// is not CI. Panics in CI when it does not answer.
pub async fn url_or_skip(test: &str) -> Option<String> {
    let url = url();
    sqlx::any::install_default_drivers();
    let attempt = tokio::time::timeout(Duration::from_secs(5), async {
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await?;
        sqlx::query("SELECT 1").execute(&pool).await?;
        pool.close().await;
        Ok::<(), sqlx::Error>(())
    })
    .await;
    match attempt {
        Ok(Ok(())) => Some(url),
        Ok(Err(error)) if !in_ci() => {
            eprintln!("skipping {test}: PostgreSQL at {url} does not answer ({error}); CI runs it");
            None
        }
        Err(_) if !in_ci() => {
            eprintln!("skipping {test}: PostgreSQL at {url} timed out; CI runs it");
            None
        }
        Ok(Err(error)) => panic!("PostgreSQL at {url} must answer in CI: {error}"),
        Err(_) => panic!("PostgreSQL at {url} must answer in CI: timed out"),
    }
}
