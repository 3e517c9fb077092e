//! One integration-test binary for the whole suite. Every scenario runs on SQLite and on
//! PostgreSQL (`both_storages!`); PostgreSQL runs skip outside CI only when no server answers.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod auth;
mod connect;
mod delivery;
mod discovery;
mod embed_page;
mod embedded_storage;
mod isolation;
mod lifecycle;
mod mapping;
mod mapping_schema;
mod reachability;
mod sync_runs;
mod tracing_spans;

use syncline_integration_tests::Storage;

/// Generates `sqlite::<name>` and `postgres::<name>` tests from `async fn <name>(Storage)`.
#[macro_export]
macro_rules! both_storages {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Storage::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(url) =
                        syncline_test_support::postgres::url_or_skip(stringify!($name)).await
                    {
                        super::$name($crate::Storage::Postgres(url)).await;
                    }
                }
            )*
        }
    };
}

/// The `ErrorInfo.reason` of a status, if any.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

#[allow(dead_code)]
fn _storage_is_used(_: Storage) {}
