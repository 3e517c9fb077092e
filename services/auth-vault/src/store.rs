//! The service's tables. Every statement filters by project, and by tenant for connections.

use prost::Message;
use sqlx::Row;
use syncline_domain::{ApiError, TenantContext};
use syncline_proto::authvault::v1::{Connection, ProviderApp};
use syncline_service_kit::pagination::PageRequest;
use syncline_service_kit::time;
use syncline_storage::Database;

/// Provider apps and connections.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// One provider app of the caller's project.
    pub async fn provider_app(
        &self,
        tenant: &TenantContext,
        id: &str,
    ) -> Result<Option<ProviderApp>, ApiError> {
        let row = sqlx::query(
            "SELECT app, created_at_ms, updated_at_ms FROM provider_apps
             WHERE project_id = $1 AND id = $2",
        )
        .bind(tenant.project_id.as_str())
        .bind(id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        row.map(|row| decode_app(&row)).transpose()
    }

    /// A page of the project's provider apps in id (= creation) order.
    pub async fn provider_apps(
        &self,
        tenant: &TenantContext,
        page: &PageRequest,
        provider: Option<i32>,
    ) -> Result<Vec<ProviderApp>, ApiError> {
        let rows = sqlx::query(
            "SELECT app, created_at_ms, updated_at_ms FROM provider_apps
             WHERE project_id = $1 AND id > $2
               AND ($3 < 0 OR provider = $3)
             ORDER BY id LIMIT $4",
        )
        .bind(tenant.project_id.as_str())
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(provider.unwrap_or(-1))
        .bind(page.fetch_limit())
        .fetch_all(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        rows.iter().map(decode_app).collect()
    }

    /// One connection of the tenant.
    pub async fn connection(
        &self,
        tenant: &TenantContext,
        id: &str,
    ) -> Result<Option<Connection>, ApiError> {
        let row = sqlx::query(
            "SELECT connection, created_at_ms, updated_at_ms FROM connections
             WHERE project_id = $1 AND tenant_id = $2 AND id = $3",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        row.map(|row| decode_connection(&row)).transpose()
    }

    /// A page of the tenant's connections in id (= creation) order, filtered.
    pub async fn connections(
        &self,
        tenant: &TenantContext,
        page: &PageRequest,
        provider: Option<i32>,
        status: Option<i32>,
    ) -> Result<Vec<Connection>, ApiError> {
        let rows = sqlx::query(
            "SELECT connection, created_at_ms, updated_at_ms FROM connections
             WHERE project_id = $1 AND tenant_id = $2 AND id > $3
               AND ($4 < 0 OR provider = $4)
               AND ($5 < 0 OR status = $5)
             ORDER BY id LIMIT $6",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(provider.unwrap_or(-1))
        .bind(status.unwrap_or(-1))
        .bind(page.fetch_limit())
        .fetch_all(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        rows.iter().map(decode_connection).collect()
    }
}

fn decode_app(row: &sqlx::any::AnyRow) -> Result<ProviderApp, ApiError> {
    let bytes: Vec<u8> = row.try_get("app").map_err(ApiError::internal)?;
    let created: i64 = row.try_get("created_at_ms").map_err(ApiError::internal)?;
    let updated: i64 = row.try_get("updated_at_ms").map_err(ApiError::internal)?;
    let mut app = ProviderApp::decode(bytes.as_slice()).map_err(ApiError::internal)?;
    // Input only: whatever was encoded, a client secret never leaves the vault.
    app.client_secret.clear();
    app.create_time = Some(time::timestamp(created));
    app.update_time = Some(time::timestamp(updated));
    Ok(app)
}

fn decode_connection(row: &sqlx::any::AnyRow) -> Result<Connection, ApiError> {
    let bytes: Vec<u8> = row.try_get("connection").map_err(ApiError::internal)?;
    let created: i64 = row.try_get("created_at_ms").map_err(ApiError::internal)?;
    let updated: i64 = row.try_get("updated_at_ms").map_err(ApiError::internal)?;
    let mut connection = Connection::decode(bytes.as_slice()).map_err(ApiError::internal)?;
    connection.create_time = Some(time::timestamp(created));
    connection.update_time = Some(time::timestamp(updated));
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncline_config::{ServiceName, StorageConfig};
    use syncline_domain::{ProjectId, TenantId};
    use syncline_proto::common::v1::{ConnectionStatus, Provider};

    async fn open(config: StorageConfig) -> Store {
        let db = Database::open(
            &config,
            &std::env::temp_dir(),
            ServiceName::AuthVault,
            crate::MIGRATIONS,
        )
        .await
        .unwrap();
        Store::new(db)
    }

    /// Runs `check` on a fresh SQLite database, then on a fresh PostgreSQL schema when a
    /// server answers (always in CI).
    async fn on_every_backend<F, Fut>(test: &str, check: F)
    where
        F: Fn(Store) -> Fut,
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
            let store = open(StorageConfig {
                database_url: Some(secrecy::SecretString::from(url.clone())),
                schema_prefix: prefix.clone(),
                max_connections: 2,
            })
            .await;
            check(store.clone()).await;
            store.db.close().await;
            syncline_storage::drop_schemas(&url, &prefix).await.unwrap();
        }
    }

    fn tenant(project: &str, tenant: &str) -> TenantContext {
        TenantContext {
            project_id: ProjectId::parse(project).unwrap(),
            tenant_id: TenantId::parse(tenant).unwrap(),
            subject: "test".into(),
        }
    }

    async fn insert_app(store: &Store, project: &str, id: &str, provider: Provider) {
        let app = ProviderApp {
            id: id.into(),
            provider: provider as i32,
            client_id: "client".into(),
            client_secret: "leaked-if-returned".into(),
            ..ProviderApp::default()
        };
        sqlx::query(
            "INSERT INTO provider_apps (id, project_id, provider, app, created_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, $4, 1, 2)",
        )
        .bind(id)
        .bind(project)
        .bind(provider as i32)
        .bind(app.encode_to_vec())
        .execute(store.db.pool())
        .await
        .unwrap();
    }

    async fn insert_connection(
        store: &Store,
        tenant: &TenantContext,
        id: &str,
        provider: Provider,
        status: ConnectionStatus,
    ) {
        let connection = Connection {
            id: id.into(),
            provider: provider as i32,
            status: status as i32,
            ..Connection::default()
        };
        sqlx::query(
            "INSERT INTO connections
                 (id, project_id, tenant_id, provider_app_id, provider, status, connection,
                  created_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, 'app_1', $4, $5, $6, 1, 2)",
        )
        .bind(id)
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(provider as i32)
        .bind(status as i32)
        .bind(connection.encode_to_vec())
        .execute(store.db.pool())
        .await
        .unwrap();
    }

    fn ids(connections: &[Connection]) -> Vec<&str> {
        connections.iter().map(|c| c.id.as_str()).collect()
    }

    #[tokio::test]
    async fn connections_are_filtered_paged_and_tenant_scoped() {
        on_every_backend(
            "connections_are_filtered_paged_and_tenant_scoped",
            |store| async move {
                let acme = tenant("p1", "acme");
                let globex = tenant("p1", "globex");
                let elsewhere = tenant("p2", "acme");
                use ConnectionStatus::{Active, NeedsReauth};
                use Provider::{Hubspot, Salesforce};
                insert_connection(&store, &acme, "conn_1", Salesforce, Active).await;
                insert_connection(&store, &acme, "conn_2", Hubspot, Active).await;
                insert_connection(&store, &acme, "conn_3", Salesforce, NeedsReauth).await;
                insert_connection(&store, &globex, "conn_4", Salesforce, Active).await;

                let all = PageRequest::parse(0, "").unwrap();
                let listed = store.connections(&acme, &all, None, None).await.unwrap();
                assert_eq!(ids(&listed), ["conn_1", "conn_2", "conn_3"]);
                assert_eq!(listed[0].update_time, Some(time::timestamp(2)));
                let salesforce = Some(Salesforce as i32);
                let listed = store
                    .connections(&acme, &all, salesforce, None)
                    .await
                    .unwrap();
                assert_eq!(ids(&listed), ["conn_1", "conn_3"]);
                let active = Some(Active as i32);
                let listed = store
                    .connections(&acme, &all, salesforce, active)
                    .await
                    .unwrap();
                assert_eq!(ids(&listed), ["conn_1"]);

                let page = PageRequest::parse(2, "").unwrap();
                let mut first = store.connections(&acme, &page, None, None).await.unwrap();
                let token = page.finish(&mut first, |c| &c.id);
                let next = PageRequest::parse(2, &token).unwrap();
                let second = store.connections(&acme, &next, None, None).await.unwrap();
                assert_eq!(ids(&second), ["conn_3"]);

                assert!(store.connection(&acme, "conn_4").await.unwrap().is_none());
                assert!(
                    store
                        .connection(&elsewhere, "conn_1")
                        .await
                        .unwrap()
                        .is_none()
                );
                assert!(store.connection(&globex, "conn_4").await.unwrap().is_some());
            },
        )
        .await;
    }

    #[tokio::test]
    async fn provider_apps_are_per_project_and_never_carry_a_secret() {
        on_every_backend(
            "provider_apps_are_per_project_and_never_carry_a_secret",
            |store| async move {
                insert_app(&store, "p1", "app_1", Provider::Salesforce).await;
                insert_app(&store, "p1", "app_2", Provider::Hubspot).await;
                insert_app(&store, "p2", "app_3", Provider::Salesforce).await;
                // Apps are the project's: every tenant of it sees them.
                let app = store
                    .provider_app(&tenant("p1", "any-tenant"), "app_1")
                    .await
                    .unwrap()
                    .unwrap();
                assert!(app.client_secret.is_empty());
                assert!(
                    store
                        .provider_app(&tenant("p2", "acme"), "app_1")
                        .await
                        .unwrap()
                        .is_none()
                );
                let all = PageRequest::parse(0, "").unwrap();
                let hubspot = Some(Provider::Hubspot as i32);
                let listed = store
                    .provider_apps(&tenant("p1", "acme"), &all, hubspot)
                    .await
                    .unwrap();
                assert_eq!(listed.len(), 1);
                assert_eq!(listed[0].id, "app_2");
                assert!(listed[0].client_secret.is_empty());
            },
        )
        .await;
    }
}
