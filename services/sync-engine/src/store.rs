//! The service's tables. Every statement filters by project and tenant.

use prost::Message;
use sqlx::Row;
use syncline_domain::{ApiError, TenantContext};
use syncline_proto::sync::v1::{SyncRun, WebhookEndpoint};
use syncline_service_kit::pagination::PageRequest;
use syncline_service_kit::time;
use syncline_storage::{Database, now_ms};

use crate::runs::store::RunStore;

/// Sync runs and webhook endpoints.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The database, for the change log and delivery tables.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// One sync run of the tenant.
    pub async fn sync_run(
        &self,
        tenant: &TenantContext,
        id: &str,
    ) -> Result<Option<SyncRun>, ApiError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs
             WHERE project_id = $1 AND tenant_id = $2 AND id = $3"
        )))
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut runs = [decode_run(&row)?];
        RunStore::new(self.db.clone())
            .complete(tenant, &mut runs)
            .await?;
        let [run] = runs;
        Ok(Some(run))
    }

    /// A page of the tenant's sync runs, newest first, optionally of one connection and in
    /// some states.
    pub async fn sync_runs(
        &self,
        tenant: &TenantContext,
        page: &PageRequest,
        connection_id: Option<&str>,
        states: &[i32],
    ) -> Result<Vec<SyncRun>, ApiError> {
        // The state filter is a list of bound parameters ($6, $7, …); only placeholders are
        // formatted into the statement.
        let state_filter = if states.is_empty() {
            String::new()
        } else {
            let placeholders: Vec<String> =
                (0..states.len()).map(|i| format!("${}", i + 6)).collect();
            format!("AND state IN ({})", placeholders.join(", "))
        };
        let statement = format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs
             WHERE project_id = $1 AND tenant_id = $2
               AND ($3 = '' OR id < $3)
               AND ($4 = '' OR connection_id = $4)
               {state_filter}
             ORDER BY id DESC LIMIT $5"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(tenant.project_id.as_str())
            .bind(tenant.tenant_id.as_str())
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(connection_id.unwrap_or(""))
            .bind(page.fetch_limit());
        for state in states {
            query = query.bind(*state);
        }
        let rows = query
            .fetch_all(self.db.pool())
            .await
            .map_err(ApiError::internal)?;
        let mut runs = rows.iter().map(decode_run).collect::<Result<Vec<_>, _>>()?;
        RunStore::new(self.db.clone())
            .complete(tenant, &mut runs)
            .await?;
        Ok(runs)
    }

    /// Stores a new endpoint with its signing secret; returns when it was created.
    pub async fn insert_webhook_endpoint(
        &self,
        tenant: &TenantContext,
        endpoint: &WebhookEndpoint,
        signing_secret: &str,
    ) -> Result<i64, ApiError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO webhook_endpoints
                 (id, project_id, tenant_id, endpoint, signing_secret, created_at_ms, updated_at_ms,
                  disabled)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
        )
        .bind(endpoint.id.as_str())
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(endpoint.encode_to_vec())
        .bind(signing_secret)
        .bind(now)
        .bind(i32::from(endpoint.disabled))
        .execute(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        Ok(now)
    }

    /// One webhook endpoint of the tenant, without its secret.
    pub async fn webhook_endpoint(
        &self,
        tenant: &TenantContext,
        id: &str,
    ) -> Result<Option<WebhookEndpoint>, ApiError> {
        let row = sqlx::query(
            "SELECT endpoint, created_at_ms, updated_at_ms FROM webhook_endpoints
             WHERE project_id = $1 AND tenant_id = $2 AND id = $3",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        row.map(|row| decode_endpoint(&row)).transpose()
    }

    /// A page of the tenant's webhook endpoints in id (= creation) order, without secrets.
    pub async fn webhook_endpoints(
        &self,
        tenant: &TenantContext,
        page: &PageRequest,
    ) -> Result<Vec<WebhookEndpoint>, ApiError> {
        let rows = sqlx::query(
            "SELECT endpoint, created_at_ms, updated_at_ms FROM webhook_endpoints
             WHERE project_id = $1 AND tenant_id = $2 AND id > $3
             ORDER BY id LIMIT $4",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(page.fetch_limit())
        .fetch_all(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        rows.iter().map(decode_endpoint).collect()
    }

    /// Replaces a tenant's endpoint (not its secret); returns when it changed, or `None`
    /// when the tenant has no endpoint with that id.
    pub async fn update_webhook_endpoint(
        &self,
        tenant: &TenantContext,
        endpoint: &WebhookEndpoint,
    ) -> Result<Option<i64>, ApiError> {
        let now = now_ms();
        let result = sqlx::query(
            "UPDATE webhook_endpoints SET endpoint = $1, updated_at_ms = $2, disabled = $6,
                 failing_since_ms = CASE WHEN disabled = 1 AND $6 = 0 THEN NULL
                                         ELSE failing_since_ms END,
                 consecutive_dead = CASE WHEN disabled = 1 AND $6 = 0 THEN 0
                                         ELSE consecutive_dead END
             WHERE project_id = $3 AND tenant_id = $4 AND id = $5",
        )
        .bind(endpoint.encode_to_vec())
        .bind(now)
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(endpoint.id.as_str())
        .bind(i32::from(endpoint.disabled))
        .execute(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        Ok((result.rows_affected() > 0).then_some(now))
    }

    /// Deletes a tenant's endpoint with its pending deliveries and dead letters; false when
    /// it has none with that id.
    pub async fn delete_webhook_endpoint(
        &self,
        tenant: &TenantContext,
        id: &str,
    ) -> Result<bool, ApiError> {
        let mut tx = self.db.pool().begin().await.map_err(ApiError::internal)?;
        let result = sqlx::query(
            "DELETE FROM webhook_endpoints WHERE project_id = $1 AND tenant_id = $2 AND id = $3",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(ApiError::internal)?;
        if result.rows_affected() == 0 {
            return Ok(false);
        }
        crate::delivery::outbox::drop_endpoint(&mut tx, tenant, id).await?;
        tx.commit().await.map_err(ApiError::internal)?;
        Ok(true)
    }
}

/// The columns [`decode_run`] reads.
const RUN_COLUMNS: &str = "run, created_at_ms, state, started_at_ms, ended_at_ms, error_reason,
                           error_message";

fn decode_run(row: &sqlx::any::AnyRow) -> Result<SyncRun, ApiError> {
    crate::runs::store::decode_run_row(row)
}

fn decode_endpoint(row: &sqlx::any::AnyRow) -> Result<WebhookEndpoint, ApiError> {
    let bytes: Vec<u8> = row.try_get("endpoint").map_err(ApiError::internal)?;
    let created: i64 = row.try_get("created_at_ms").map_err(ApiError::internal)?;
    let updated: i64 = row.try_get("updated_at_ms").map_err(ApiError::internal)?;
    let mut endpoint = WebhookEndpoint::decode(bytes.as_slice()).map_err(ApiError::internal)?;
    endpoint.create_time = Some(time::timestamp(created));
    endpoint.update_time = Some(time::timestamp(updated));
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncline_config::ServiceName;
    use syncline_domain::{ProjectId, TenantId};
    use syncline_proto::sync::v1::SyncRunState;

    /// Runs `check` on SQLite, then on PostgreSQL when a server answers (always in CI).
    async fn on_every_backend<F, Fut>(test: &str, check: F)
    where
        F: Fn(Store) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        syncline_test_support::storage::on_every_backend(
            test,
            ServiceName::SyncEngine,
            crate::MIGRATIONS,
            |db| check(Store::new(db)),
        )
        .await;
    }

    fn tenant(project: &str, tenant: &str) -> TenantContext {
        TenantContext {
            project_id: ProjectId::parse(project).unwrap(),
            tenant_id: TenantId::parse(tenant).unwrap(),
            subject: "test".into(),
        }
    }

    async fn insert_run(
        store: &Store,
        tenant: &TenantContext,
        id: &str,
        connection: &str,
        state: SyncRunState,
    ) {
        let run = SyncRun {
            id: id.into(),
            connection_id: connection.into(),
            state: state as i32,
            ..SyncRun::default()
        };
        sqlx::query(
            "INSERT INTO sync_runs (id, project_id, tenant_id, connection_id, state, run, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection)
        .bind(state as i32)
        .bind(run.encode_to_vec())
        .bind(1_000_i64)
        .execute(store.db.pool())
        .await
        .unwrap();
    }

    fn ids(runs: &[SyncRun]) -> Vec<&str> {
        runs.iter().map(|r| r.id.as_str()).collect()
    }

    #[tokio::test]
    async fn sync_runs_list_newest_first_filtered_and_tenant_scoped() {
        on_every_backend(
            "sync_runs_list_newest_first_filtered_and_tenant_scoped",
            |store| async move {
                let acme = tenant("p1", "acme");
                let other = tenant("p1", "globex");
                insert_run(&store, &acme, "run_1", "conn_a", SyncRunState::Succeeded).await;
                insert_run(&store, &acme, "run_2", "conn_b", SyncRunState::Running).await;
                insert_run(&store, &acme, "run_3", "conn_a", SyncRunState::Failed).await;
                insert_run(&store, &other, "run_4", "conn_a", SyncRunState::Running).await;

                let all = PageRequest::parse(0, "").unwrap();
                let runs = store.sync_runs(&acme, &all, None, &[]).await.unwrap();
                assert_eq!(ids(&runs), ["run_3", "run_2", "run_1"]);
                assert_eq!(runs[0].create_time, Some(time::timestamp(1_000)));

                let page = PageRequest::parse(2, "").unwrap();
                let mut first = store.sync_runs(&acme, &page, None, &[]).await.unwrap();
                let token = page.finish(&mut first, |r| &r.id);
                let next = PageRequest::parse(2, &token).unwrap();
                let second = store.sync_runs(&acme, &next, None, &[]).await.unwrap();
                assert_eq!(ids(&first), ["run_3", "run_2"]);
                assert_eq!(ids(&second), ["run_1"]);

                let by_connection = store
                    .sync_runs(&acme, &all, Some("conn_a"), &[])
                    .await
                    .unwrap();
                assert_eq!(ids(&by_connection), ["run_3", "run_1"]);
                let states = [SyncRunState::Running as i32, SyncRunState::Succeeded as i32];
                let by_state = store.sync_runs(&acme, &all, None, &states).await.unwrap();
                assert_eq!(ids(&by_state), ["run_2", "run_1"]);

                assert!(store.sync_run(&acme, "run_4").await.unwrap().is_none());
                assert!(store.sync_run(&other, "run_4").await.unwrap().is_some());
            },
        )
        .await;
    }

    #[tokio::test]
    async fn webhook_endpoints_are_tenant_scoped_through_every_statement() {
        on_every_backend(
            "webhook_endpoints_are_tenant_scoped_through_every_statement",
            |store| async move {
                let acme = tenant("p1", "acme");
                let intruder = tenant("p1", "globex");
                let foreign_project = tenant("p2", "acme");
                let mut endpoint = WebhookEndpoint {
                    id: "whk_1".into(),
                    url: "https://hooks.example.com/".into(),
                    ..WebhookEndpoint::default()
                };
                store
                    .insert_webhook_endpoint(&acme, &endpoint, "whsec_x")
                    .await
                    .unwrap();
                for stranger in [&intruder, &foreign_project] {
                    assert!(
                        store
                            .webhook_endpoint(stranger, "whk_1")
                            .await
                            .unwrap()
                            .is_none()
                    );
                    let page = PageRequest::parse(0, "").unwrap();
                    assert!(
                        store
                            .webhook_endpoints(stranger, &page)
                            .await
                            .unwrap()
                            .is_empty()
                    );
                    assert!(
                        store
                            .update_webhook_endpoint(stranger, &endpoint)
                            .await
                            .unwrap()
                            .is_none()
                    );
                    assert!(
                        !store
                            .delete_webhook_endpoint(stranger, "whk_1")
                            .await
                            .unwrap()
                    );
                }
                endpoint.description = "changed".into();
                assert!(
                    store
                        .update_webhook_endpoint(&acme, &endpoint)
                        .await
                        .unwrap()
                        .is_some()
                );
                let stored = store
                    .webhook_endpoint(&acme, "whk_1")
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(stored.description, "changed");
                assert!(stored.create_time.is_some());
                assert!(store.delete_webhook_endpoint(&acme, "whk_1").await.unwrap());
                assert!(
                    store
                        .webhook_endpoint(&acme, "whk_1")
                        .await
                        .unwrap()
                        .is_none()
                );
            },
        )
        .await;
    }
}
