//! The service's tables. Every statement filters by project and tenant.

use prost::Message;
use sqlx::Row;
use syncline_domain::{ApiError, TenantContext};
use syncline_proto::schema::v1::{ObjectSchema, SchemaVersion};
use syncline_service_kit::time;
use syncline_storage::Database;

/// Schema versions and their objects.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The newest version stored for the tenant's connection, if any.
    pub async fn latest_version(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<Option<i64>, ApiError> {
        let row = sqlx::query(
            "SELECT version FROM schema_versions
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3
             ORDER BY version DESC LIMIT 1",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        row.map(|row| row.try_get("version").map_err(ApiError::internal))
            .transpose()
    }

    /// Whether the tenant's connection has `version`.
    pub async fn has_version(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        version: i64,
    ) -> Result<bool, ApiError> {
        let row = sqlx::query(
            "SELECT version FROM schema_versions
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3 AND version = $4",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .bind(version)
        .fetch_optional(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        Ok(row.is_some())
    }

    /// Up to `limit` versions of the tenant's connection below `below`, newest first.
    pub async fn versions(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        below: i64,
        limit: i64,
    ) -> Result<Vec<SchemaVersion>, ApiError> {
        let rows = sqlx::query(
            "SELECT version, object_count, content_hash, fetched_at_ms FROM schema_versions
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3 AND version < $4
             ORDER BY version DESC LIMIT $5",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .bind(below)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        rows.iter()
            .map(|row| {
                let fetched: i64 = row.try_get("fetched_at_ms").map_err(ApiError::internal)?;
                Ok(SchemaVersion {
                    version: row.try_get("version").map_err(ApiError::internal)?,
                    create_time: Some(time::timestamp(fetched)),
                    object_count: row.try_get("object_count").map_err(ApiError::internal)?,
                    content_hash: row.try_get("content_hash").map_err(ApiError::internal)?,
                })
            })
            .collect()
    }

    /// Up to `limit` objects of one version named after `after` (by UTF-8 bytes), in name
    /// order, optionally only custom or only standard ones.
    pub async fn objects(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        version: i64,
        after: &str,
        custom: Option<bool>,
        limit: i64,
    ) -> Result<Vec<ObjectSchema>, ApiError> {
        let rows = sqlx::query(
            "SELECT object FROM schema_objects
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3 AND version = $4
               AND name_key > $5
               AND ($6 < 0 OR custom = $6)
             ORDER BY name_key LIMIT $7",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .bind(version)
        .bind(after.as_bytes().to_vec())
        .bind(custom.map_or(-1, i32::from))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        rows.iter()
            .map(|row| {
                let bytes: Vec<u8> = row.try_get("object").map_err(ApiError::internal)?;
                ObjectSchema::decode(bytes.as_slice()).map_err(ApiError::internal)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncline_config::ServiceName;
    use syncline_domain::{ProjectId, TenantId};

    /// Runs `check` on SQLite, then on PostgreSQL when a server answers (always in CI).
    async fn on_every_backend<F, Fut>(test: &str, check: F)
    where
        F: Fn(Store) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        syncline_test_support::storage::on_every_backend(
            test,
            ServiceName::SchemaDiscovery,
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

    async fn insert_version(
        store: &Store,
        tenant: &TenantContext,
        version: i64,
        objects: &[(&str, bool)],
    ) {
        sqlx::query(
            "INSERT INTO schema_versions
                 (project_id, tenant_id, connection_id, version, object_count, content_hash, fetched_at_ms)
             VALUES ($1, $2, 'conn_1', $3, $4, 'hash', $5)",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(version)
        .bind(i32::try_from(objects.len()).unwrap())
        .bind(version * 1000)
        .execute(store.db.pool())
        .await
        .unwrap();
        for (name, custom) in objects {
            let object = ObjectSchema {
                name: (*name).into(),
                custom: *custom,
                ..ObjectSchema::default()
            };
            sqlx::query(
                "INSERT INTO schema_objects
                     (project_id, tenant_id, connection_id, version, object_name, name_key, custom, object)
                 VALUES ($1, $2, 'conn_1', $3, $4, $5, $6, $7)",
            )
            .bind(tenant.project_id.as_str())
            .bind(tenant.tenant_id.as_str())
            .bind(version)
            .bind(*name)
            .bind(name.as_bytes().to_vec())
            .bind(i32::from(*custom))
            .bind(object.encode_to_vec())
            .execute(store.db.pool())
            .await
            .unwrap();
        }
    }

    fn names(objects: &[ObjectSchema]) -> Vec<&str> {
        objects.iter().map(|o| o.name.as_str()).collect()
    }

    #[tokio::test]
    async fn versions_and_objects_are_tenant_scoped_and_ordered() {
        on_every_backend(
            "versions_and_objects_are_tenant_scoped_and_ordered",
            |store| async move {
                let acme = tenant("p1", "acme");
                let globex = tenant("p1", "globex");
                assert_eq!(store.latest_version(&acme, "conn_1").await.unwrap(), None);
                insert_version(&store, &acme, 1, &[("Account", false)]).await;
                insert_version(
                    &store,
                    &acme,
                    2,
                    &[
                        ("account_note", true),
                        ("Contact", false),
                        ("Account", false),
                        ("Invoice__c", true),
                    ],
                )
                .await;

                assert_eq!(
                    store.latest_version(&acme, "conn_1").await.unwrap(),
                    Some(2)
                );
                assert_eq!(store.latest_version(&globex, "conn_1").await.unwrap(), None);
                assert!(store.has_version(&acme, "conn_1", 1).await.unwrap());
                assert!(!store.has_version(&globex, "conn_1", 1).await.unwrap());

                let versions = store.versions(&acme, "conn_1", i64::MAX, 10).await.unwrap();
                let numbers: Vec<i64> = versions.iter().map(|v| v.version).collect();
                assert_eq!(numbers, [2, 1]);
                assert_eq!(versions[0].object_count, 4);
                assert_eq!(versions[0].create_time, Some(time::timestamp(2000)));
                assert!(
                    store
                        .versions(&globex, "conn_1", i64::MAX, 10)
                        .await
                        .unwrap()
                        .is_empty()
                );

                let all = store
                    .objects(&acme, "conn_1", 2, "", None, 10)
                    .await
                    .unwrap();
                assert_eq!(
                    names(&all),
                    ["Account", "Contact", "Invoice__c", "account_note"]
                );
                let after = store
                    .objects(&acme, "conn_1", 2, "Contact", None, 1)
                    .await
                    .unwrap();
                assert_eq!(names(&after), ["Invoice__c"]);
                let custom = store
                    .objects(&acme, "conn_1", 2, "", Some(true), 10)
                    .await
                    .unwrap();
                assert_eq!(names(&custom), ["Invoice__c", "account_note"]);
                let standard = store
                    .objects(&acme, "conn_1", 2, "", Some(false), 10)
                    .await
                    .unwrap();
                assert_eq!(names(&standard), ["Account", "Contact"]);
                assert!(
                    store
                        .objects(&globex, "conn_1", 2, "", None, 10)
                        .await
                        .unwrap()
                        .is_empty()
                );
            },
        )
        .await;
    }
}
