//! The service's tables. Every statement filters by project and tenant.

use prost::Message;
use sqlx::Row;
use syncline_domain::{ApiError, ErrorCode, TenantContext};
use syncline_proto::schema::v1::{ObjectSchema, SchemaVersion};
use syncline_service_kit::time;
use syncline_storage::Database;

/// A drift event as stored, for publishing (again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftEvent {
    pub project_id: String,
    pub tenant_id: String,
    pub connection_id: String,
    pub from_version: i64,
    pub to_version: i64,
    pub changed_objects: i32,
    pub breaking_fields: i32,
    /// `syncline.common.v1.Provider` number.
    pub provider: i32,
}

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

/// A connection some tenant has a schema for: what the scheduler refreshes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownConnection {
    pub project_id: String,
    pub tenant_id: String,
    pub connection_id: String,
}

/// One changed field (or object, with `field_name` empty) of a new version, for the drift
/// table.
#[derive(Debug, Clone)]
pub struct DriftRow {
    pub object_name: String,
    pub field_name: String,
    pub kinds: String,
    pub breaking: bool,
    pub before_type: String,
    pub after_type: String,
}

impl Store {
    /// The newest version of the tenant's connection and its content hash.
    pub async fn latest(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<Option<(i64, String)>, ApiError> {
        let row = sqlx::query(
            "SELECT version, content_hash FROM schema_versions
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3
             ORDER BY version DESC LIMIT 1",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        row.map(|row| {
            Ok((
                row.try_get("version").map_err(ApiError::internal)?,
                row.try_get("content_hash").map_err(ApiError::internal)?,
            ))
        })
        .transpose()
    }

    /// Every object of one version, in name order.
    pub async fn all_objects(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        version: i64,
    ) -> Result<Vec<ObjectSchema>, ApiError> {
        self.objects(tenant, connection_id, version, "", None, i64::MAX)
            .await
    }

    /// One object of one version.
    pub async fn object(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        version: i64,
        name: &str,
    ) -> Result<Option<ObjectSchema>, ApiError> {
        let row = sqlx::query(
            "SELECT object FROM schema_objects
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3 AND version = $4
               AND object_name = $5",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .bind(version)
        .bind(name)
        .fetch_optional(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        row.map(|row| {
            let bytes: Vec<u8> = row.try_get("object").map_err(ApiError::internal)?;
            ObjectSchema::decode(bytes.as_slice()).map_err(ApiError::internal)
        })
        .transpose()
    }

    /// Stores `version` with its objects and the drift from the version before, in one
    /// transaction. ABORTED when another refresh stored that version first.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_version(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        version: i64,
        content_hash: &str,
        objects: &[ObjectSchema],
        drift: &[DriftRow],
        now_ms: i64,
    ) -> Result<(), ApiError> {
        let (project, tenant_id) = (tenant.project_id.as_str(), tenant.tenant_id.as_str());
        let mut tx = self.db.pool().begin().await.map_err(ApiError::internal)?;
        let inserted = sqlx::query(
            "INSERT INTO schema_versions
                 (project_id, tenant_id, connection_id, version, object_count, content_hash, fetched_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(project)
        .bind(tenant_id)
        .bind(connection_id)
        .bind(version)
        .bind(i32::try_from(objects.len()).unwrap_or(i32::MAX))
        .bind(content_hash)
        .bind(now_ms)
        .execute(&mut *tx)
        .await;
        if let Err(error) = inserted {
            return Err(match error.as_database_error() {
                Some(db) if db.is_unique_violation() => ApiError::new(
                    ErrorCode::Aborted,
                    "another refresh of this connection stored a version first",
                ),
                _ => ApiError::internal(error),
            });
        }
        for chunk in objects.chunks(100) {
            let mut sql = String::from(
                "INSERT INTO schema_objects
                     (project_id, tenant_id, connection_id, version, object_name, name_key, custom, object)
                 VALUES ",
            );
            for i in 0..chunk.len() {
                let b = i * 4;
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "($1, $2, $3, $4, ${}, ${}, ${}, ${})",
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8
                ));
            }
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(project)
                .bind(tenant_id)
                .bind(connection_id)
                .bind(version);
            for o in chunk {
                query = query
                    .bind(o.name.clone())
                    .bind(o.name.as_bytes().to_vec())
                    .bind(i32::from(o.custom))
                    .bind(o.encode_to_vec());
            }
            query.execute(&mut *tx).await.map_err(ApiError::internal)?;
        }
        for row in drift {
            sqlx::query(
                "INSERT INTO schema_drift
                     (project_id, tenant_id, connection_id, from_version, to_version, object_name,
                      field_name, kinds, breaking, before_type, after_type, detected_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(project)
            .bind(tenant_id)
            .bind(connection_id)
            .bind(version - 1)
            .bind(version)
            .bind(row.object_name.as_str())
            .bind(row.field_name.as_str())
            .bind(row.kinds.as_str())
            .bind(i32::from(row.breaking))
            .bind(row.before_type.as_str())
            .bind(row.after_type.as_str())
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(ApiError::internal)?;
        }
        tx.commit().await.map_err(ApiError::internal)
    }

    /// Records that a refresh found drift and whether the lifecycle event was published.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_drift_event(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        from_version: i64,
        to_version: i64,
        changed_objects: usize,
        breaking_fields: usize,
        provider: i32,
        published: bool,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        sqlx::query(
            "INSERT INTO schema_drift_events
                 (project_id, tenant_id, connection_id, from_version, to_version, changed_objects,
                  breaking_fields, published, detected_at_ms, provider)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .bind(from_version)
        .bind(to_version)
        .bind(i32::try_from(changed_objects).unwrap_or(i32::MAX))
        .bind(i32::try_from(breaking_fields).unwrap_or(i32::MAX))
        .bind(i32::from(published))
        .bind(now_ms)
        .bind(provider)
        .execute(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        Ok(())
    }

    /// Drift events not yet published, oldest first, across tenants (the scheduler's retry
    /// list).
    pub async fn unpublished_drift_events(&self, limit: i64) -> Result<Vec<DriftEvent>, ApiError> {
        let rows = sqlx::query(
            "SELECT project_id, tenant_id, connection_id, from_version, to_version,
                    changed_objects, breaking_fields, provider
             FROM schema_drift_events WHERE published = 0
             ORDER BY detected_at_ms LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        rows.iter()
            .map(|row| {
                let get_i64 = |name: &str| row.try_get::<i64, _>(name).map_err(ApiError::internal);
                let get_i32 = |name: &str| row.try_get::<i32, _>(name).map_err(ApiError::internal);
                Ok(DriftEvent {
                    project_id: row.try_get("project_id").map_err(ApiError::internal)?,
                    tenant_id: row.try_get("tenant_id").map_err(ApiError::internal)?,
                    connection_id: row.try_get("connection_id").map_err(ApiError::internal)?,
                    from_version: get_i64("from_version")?,
                    to_version: get_i64("to_version")?,
                    changed_objects: get_i32("changed_objects")?,
                    breaking_fields: get_i32("breaking_fields")?,
                    provider: get_i32("provider")?,
                })
            })
            .collect()
    }

    /// Marks a drift event published.
    pub async fn mark_drift_published(&self, event: &DriftEvent) -> Result<(), ApiError> {
        sqlx::query(
            "UPDATE schema_drift_events SET published = 1
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3 AND to_version = $4",
        )
        .bind(&event.project_id)
        .bind(&event.tenant_id)
        .bind(&event.connection_id)
        .bind(event.to_version)
        .execute(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        Ok(())
    }

    /// The breaking drift rows (removed or retyped) of the tenant's connection newer than
    /// `after_version`. Read only by tests: the mapping service does not read this table
    /// (services never read each other's tables); it re-checks its plans against the current
    /// schema version through `GetObject`, which also catches drift of non-breaking kinds
    /// that break a mapping (a picklist value removed, a field made read only).
    #[cfg_attr(not(test), allow(dead_code))]
    pub async fn breaking_drift(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        after_version: i64,
    ) -> Result<Vec<(i64, String, String, String)>, ApiError> {
        let rows = sqlx::query(
            "SELECT to_version, object_name, field_name, kinds FROM schema_drift
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3
               AND breaking = 1 AND to_version > $4
             ORDER BY to_version, object_name, field_name",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .bind(after_version)
        .fetch_all(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("to_version").map_err(ApiError::internal)?,
                    row.try_get("object_name").map_err(ApiError::internal)?,
                    row.try_get("field_name").map_err(ApiError::internal)?,
                    row.try_get("kinds").map_err(ApiError::internal)?,
                ))
            })
            .collect()
    }

    /// Every connection with a stored schema, across tenants: the scheduler's work list (the
    /// one statement not scoped to a tenant; each refresh it starts is).
    pub async fn known_connections(&self) -> Result<Vec<KnownConnection>, ApiError> {
        let rows = sqlx::query(
            "SELECT DISTINCT project_id, tenant_id, connection_id FROM schema_versions
             ORDER BY project_id, tenant_id, connection_id",
        )
        .fetch_all(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        rows.iter()
            .map(|row| {
                Ok(KnownConnection {
                    project_id: row.try_get("project_id").map_err(ApiError::internal)?,
                    tenant_id: row.try_get("tenant_id").map_err(ApiError::internal)?,
                    connection_id: row.try_get("connection_id").map_err(ApiError::internal)?,
                })
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

    #[tokio::test]
    async fn a_new_version_stores_objects_and_breaking_drift_in_one_go() {
        on_every_backend(
            "a_new_version_stores_objects_and_breaking_drift_in_one_go",
            |store| async move {
                let acme = tenant("p1", "acme");
                let globex = tenant("p1", "globex");
                let objects: Vec<ObjectSchema> = (0..250)
                    .map(|i| ObjectSchema {
                        name: format!("Object{i:03}__c"),
                        custom: true,
                        ..ObjectSchema::default()
                    })
                    .collect();
                store
                    .insert_version(&acme, "conn_1", 1, "h1", &objects, &[], 1000)
                    .await
                    .unwrap();
                let rows = vec![
                    DriftRow {
                        object_name: "Object001__c".into(),
                        field_name: "Gone__c".into(),
                        kinds: "removed".into(),
                        breaking: true,
                        before_type: "string".into(),
                        after_type: String::new(),
                    },
                    DriftRow {
                        object_name: "Object001__c".into(),
                        field_name: "Label__c".into(),
                        kinds: "attributes_changed".into(),
                        breaking: false,
                        before_type: "string".into(),
                        after_type: "string".into(),
                    },
                ];
                store
                    .insert_version(&acme, "conn_1", 2, "h2", &objects[..10], &rows, 2000)
                    .await
                    .unwrap();
                assert_eq!(
                    store.latest(&acme, "conn_1").await.unwrap(),
                    Some((2, "h2".to_owned()))
                );
                assert_eq!(
                    store.all_objects(&acme, "conn_1", 1).await.unwrap().len(),
                    250
                );
                assert_eq!(
                    store.all_objects(&acme, "conn_1", 2).await.unwrap().len(),
                    10
                );
                assert!(
                    store
                        .object(&acme, "conn_1", 1, "Object200__c")
                        .await
                        .unwrap()
                        .is_some()
                );
                assert!(
                    store
                        .object(&globex, "conn_1", 1, "Object200__c")
                        .await
                        .unwrap()
                        .is_none()
                );
                let breaking = store.breaking_drift(&acme, "conn_1", 0).await.unwrap();
                assert_eq!(
                    breaking,
                    [(
                        2,
                        "Object001__c".to_owned(),
                        "Gone__c".to_owned(),
                        "removed".to_owned()
                    )]
                );
                assert!(
                    store
                        .breaking_drift(&globex, "conn_1", 0)
                        .await
                        .unwrap()
                        .is_empty()
                );
                // The same version again loses: a concurrent refresh stored it first.
                let error = store
                    .insert_version(&acme, "conn_1", 2, "h3", &objects[..1], &[], 3000)
                    .await
                    .unwrap_err();
                assert_eq!(error.code(), syncline_domain::ErrorCode::Aborted);
                store
                    .record_drift_event(&acme, "conn_1", 1, 2, 1, 1, 1, false, 2000)
                    .await
                    .unwrap();
                // Kept until published, then no longer listed for another attempt.
                let pending = store.unpublished_drift_events(10).await.unwrap();
                assert_eq!(pending.len(), 1);
                assert_eq!((pending[0].to_version, pending[0].provider), (2, 1));
                store.mark_drift_published(&pending[0]).await.unwrap();
                assert!(store.unpublished_drift_events(10).await.unwrap().is_empty());
                let known = store.known_connections().await.unwrap();
                assert_eq!(known.len(), 1);
                assert_eq!(known[0].tenant_id, "acme");
            },
        )
        .await;
    }
}
