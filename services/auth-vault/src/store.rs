//! The service's tables. Every statement filters by project, and by tenant for connections.

use prost::Message;
use sqlx::Row;
use syncline_domain::{ApiError, TenantContext};
use syncline_proto::authvault::v1::{Connection, ProviderApp};
use syncline_proto::common::v1::Event;
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

    /// The database, for the modules that own further tables (credentials, states).
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Stores a new provider app; `app` must carry no secret, `client_secret` is sealed.
    pub async fn insert_provider_app(
        &self,
        project: &str,
        app: &ProviderApp,
        client_secret: &[u8],
        now: i64,
    ) -> Result<(), ApiError> {
        sqlx::query(
            "INSERT INTO provider_apps
                 (id, project_id, provider, app, client_secret, created_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&app.id)
        .bind(project)
        .bind(app.provider)
        .bind(strip_app(app).encode_to_vec())
        .bind(client_secret)
        .bind(now)
        .execute(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        Ok(())
    }

    /// Replaces a provider app's fields (and its sealed secret when `client_secret` is set).
    pub async fn update_provider_app(
        &self,
        project: &str,
        app: &ProviderApp,
        client_secret: Option<&[u8]>,
        now: i64,
    ) -> Result<bool, ApiError> {
        let encoded = strip_app(app).encode_to_vec();
        let query = match client_secret {
            Some(secret) => sqlx::query(
                "UPDATE provider_apps SET app = $3, updated_at_ms = $4, client_secret = $5
                 WHERE project_id = $1 AND id = $2",
            )
            .bind(project)
            .bind(&app.id)
            .bind(encoded)
            .bind(now)
            .bind(secret),
            None => sqlx::query(
                "UPDATE provider_apps SET app = $3, updated_at_ms = $4
                 WHERE project_id = $1 AND id = $2",
            )
            .bind(project)
            .bind(&app.id)
            .bind(encoded)
            .bind(now),
        };
        let done = query
            .execute(self.db.pool())
            .await
            .map_err(ApiError::internal)?;
        Ok(done.rows_affected() == 1)
    }

    /// The sealed client secret of a provider app of `project`.
    pub async fn provider_app_secret(
        &self,
        project: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let row = sqlx::query(
            "SELECT client_secret FROM provider_apps WHERE project_id = $1 AND id = $2",
        )
        .bind(project)
        .bind(id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        match row {
            Some(row) => row
                .try_get::<Option<Vec<u8>>, _>("client_secret")
                .map_err(ApiError::internal),
            None => Ok(None),
        }
    }

    /// How many connections (of any tenant of the project) use a provider app.
    pub async fn connections_of_app(&self, project: &str, app_id: &str) -> Result<i64, ApiError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM connections WHERE project_id = $1 AND provider_app_id = $2",
        )
        .bind(project)
        .bind(app_id)
        .fetch_one(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        row.try_get::<i64, _>(0).map_err(ApiError::internal)
    }

    /// Deletes a provider app with its connections, their credentials and pending
    /// authorizations, in one transaction. `false` when the app does not exist.
    pub async fn delete_provider_app(&self, project: &str, app_id: &str) -> Result<bool, ApiError> {
        let mut tx = self.db.pool().begin().await.map_err(ApiError::internal)?;
        for sql in [
            "DELETE FROM credentials WHERE project_id = $1 AND connection_id IN
                 (SELECT id FROM connections WHERE project_id = $1 AND provider_app_id = $2)",
            "DELETE FROM oauth_states WHERE project_id = $1 AND provider_app_id = $2",
            "DELETE FROM connections WHERE project_id = $1 AND provider_app_id = $2",
        ] {
            sqlx::query(sql)
                .bind(project)
                .bind(app_id)
                .execute(&mut *tx)
                .await
                .map_err(ApiError::internal)?;
        }
        let done = sqlx::query("DELETE FROM provider_apps WHERE project_id = $1 AND id = $2")
            .bind(project)
            .bind(app_id)
            .execute(&mut *tx)
            .await
            .map_err(ApiError::internal)?;
        tx.commit().await.map_err(ApiError::internal)?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a new connection of the tenant.
    pub async fn insert_connection(
        &self,
        tenant: &TenantContext,
        connection: &Connection,
        now: i64,
    ) -> Result<(), ApiError> {
        sqlx::query(
            "INSERT INTO connections
                 (id, project_id, tenant_id, provider_app_id, provider, status, connection,
                  created_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&connection.id)
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(&connection.provider_app_id)
        .bind(connection.provider)
        .bind(connection.status)
        .bind(strip_connection(connection).encode_to_vec())
        .bind(now)
        .execute(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        Ok(())
    }

    /// Saves a connection of the tenant (status column and message). `false` if it is gone.
    pub async fn save_connection(
        &self,
        tenant: &TenantContext,
        connection: &Connection,
        now: i64,
    ) -> Result<bool, ApiError> {
        self.save_connection_with_event(tenant, connection, now, None)
            .await
    }

    /// Saves a connection and, in the same transaction, writes `event` to the outbox.
    pub async fn save_connection_with_event(
        &self,
        tenant: &TenantContext,
        connection: &Connection,
        now: i64,
        event: Option<&Event>,
    ) -> Result<bool, ApiError> {
        let mut tx = self.db.pool().begin().await.map_err(ApiError::internal)?;
        let done = sqlx::query(
            "UPDATE connections SET status = $4, connection = $5, updated_at_ms = $6
             WHERE project_id = $1 AND tenant_id = $2 AND id = $3",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(&connection.id)
        .bind(connection.status)
        .bind(strip_connection(connection).encode_to_vec())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(ApiError::internal)?;
        let saved = done.rows_affected() == 1;
        if saved && let Some(event) = event {
            crate::lifecycle::insert(&mut tx, tenant, event).await?;
        }
        tx.commit().await.map_err(ApiError::internal)?;
        Ok(saved)
    }

    /// Like [`save_connection_with_event`](Self::save_connection_with_event), only while
    /// the connection's token is still at `version`.
    pub async fn save_connection_if_version(
        &self,
        tenant: &TenantContext,
        connection: &Connection,
        version: i64,
        now: i64,
        event: Option<&Event>,
    ) -> Result<bool, ApiError> {
        let mut tx = self.db.pool().begin().await.map_err(ApiError::internal)?;
        let done = sqlx::query(
            "UPDATE connections SET status = $4, connection = $5, updated_at_ms = $6
             WHERE project_id = $1 AND tenant_id = $2 AND id = $3
               AND EXISTS (SELECT 1 FROM credentials
                           WHERE credentials.project_id = $1 AND credentials.tenant_id = $2
                             AND credentials.connection_id = $3 AND token_version = $7)",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(&connection.id)
        .bind(connection.status)
        .bind(strip_connection(connection).encode_to_vec())
        .bind(now)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(ApiError::internal)?;
        let saved = done.rows_affected() == 1;
        if saved && let Some(event) = event {
            crate::lifecycle::insert(&mut tx, tenant, event).await?;
        }
        tx.commit().await.map_err(ApiError::internal)?;
        Ok(saved)
    }

    /// The tenant's connection authorized through `app_id` to the CRM account
    /// `external_account_id`, other than `except`: re-connecting the same account reuses it.
    pub async fn connection_for_account(
        &self,
        tenant: &TenantContext,
        app_id: &str,
        external_account_id: &str,
        except: &str,
    ) -> Result<Option<Connection>, ApiError> {
        let rows = sqlx::query(
            "SELECT connection, created_at_ms, updated_at_ms FROM connections
             WHERE project_id = $1 AND tenant_id = $2 AND provider_app_id = $3 AND id <> $4
             ORDER BY id",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(app_id)
        .bind(except)
        .fetch_all(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        for row in &rows {
            let connection = decode_connection(row)?;
            if connection.external_account_id == external_account_id {
                return Ok(Some(connection));
            }
        }
        Ok(None)
    }

    /// Deletes a connection of the tenant with its credentials.
    pub async fn delete_connection(
        &self,
        tenant: &TenantContext,
        id: &str,
    ) -> Result<(), ApiError> {
        let mut tx = self.db.pool().begin().await.map_err(ApiError::internal)?;
        for sql in [
            "DELETE FROM credentials WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3",
            "DELETE FROM connections WHERE project_id = $1 AND tenant_id = $2 AND id = $3",
        ] {
            sqlx::query(sql)
                .bind(tenant.project_id.as_str())
                .bind(tenant.tenant_id.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(ApiError::internal)?;
        }
        tx.commit().await.map_err(ApiError::internal)
    }

    /// One provider app of the caller's project.
    pub async fn provider_app(
        &self,
        tenant: &TenantContext,
        id: &str,
    ) -> Result<Option<ProviderApp>, ApiError> {
        let row = sqlx::query(
            "SELECT app, client_secret, created_at_ms, updated_at_ms FROM provider_apps
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
            "SELECT app, client_secret, created_at_ms, updated_at_ms FROM provider_apps
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

/// The app as stored: no secret, no times (they have columns).
fn strip_app(app: &ProviderApp) -> ProviderApp {
    ProviderApp {
        client_secret: String::new(),
        client_secret_set: false,
        create_time: None,
        update_time: None,
        ..app.clone()
    }
}

/// The connection as stored: no create/update times (they have columns).
fn strip_connection(connection: &Connection) -> Connection {
    Connection {
        create_time: None,
        update_time: None,
        ..connection.clone()
    }
}

fn decode_app(row: &sqlx::any::AnyRow) -> Result<ProviderApp, ApiError> {
    let bytes: Vec<u8> = row.try_get("app").map_err(ApiError::internal)?;
    let created: i64 = row.try_get("created_at_ms").map_err(ApiError::internal)?;
    let updated: i64 = row.try_get("updated_at_ms").map_err(ApiError::internal)?;
    let mut app = ProviderApp::decode(bytes.as_slice()).map_err(ApiError::internal)?;
    // Input only: whatever was encoded, a client secret never leaves the vault.
    app.client_secret.clear();
    app.client_secret_set = row
        .try_get::<Option<Vec<u8>>, _>("client_secret")
        .ok()
        .flatten()
        .is_some_and(|s| !s.is_empty());
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
