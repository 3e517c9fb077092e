//! The service's tables. Every statement filters by project, and by tenant for
//! installations.

use prost::Message;
use sqlx::Row;
use syncline_domain::ErrorCode;
use syncline_domain::{ApiError, TenantContext};
use syncline_proto::mapping::v1::{Installation, Manifest, MappingPlan, ObjectMapping};
use syncline_service_kit::time;
use syncline_storage::{Database, now_ms};

/// Manifests and installations.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// One manifest version of the caller's project with its content; `None` for the
    /// latest.
    pub async fn manifest(
        &self,
        tenant: &TenantContext,
        version: Option<i64>,
    ) -> Result<Option<Manifest>, ApiError> {
        let row = sqlx::query(
            "SELECT version, content, manifest, deployed_at_ms FROM manifests
             WHERE project_id = $1 AND ($2 = 0 OR version = $2)
             ORDER BY version DESC LIMIT 1",
        )
        .bind(tenant.project_id.as_str())
        .bind(version.unwrap_or(0))
        .fetch_optional(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        row.map(|row| {
            let mut manifest = decode_manifest(&row)?;
            manifest.content = row.try_get("content").map_err(ApiError::internal)?;
            Ok(manifest)
        })
        .transpose()
    }

    /// Up to `limit` of the project's manifest versions below `below`, newest first,
    /// without content.
    pub async fn manifests(
        &self,
        tenant: &TenantContext,
        below: i64,
        limit: i64,
    ) -> Result<Vec<Manifest>, ApiError> {
        let rows = sqlx::query(
            "SELECT version, manifest, deployed_at_ms FROM manifests
             WHERE project_id = $1 AND version < $2
             ORDER BY version DESC LIMIT $3",
        )
        .bind(tenant.project_id.as_str())
        .bind(below)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        rows.iter().map(decode_manifest).collect()
    }

    /// The installation of one of the tenant's connections.
    pub async fn installation(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<Option<Installation>, ApiError> {
        let row = sqlx::query(
            "SELECT installation, updated_at_ms FROM installations
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        row.map(|row| {
            let bytes: Vec<u8> = row.try_get("installation").map_err(ApiError::internal)?;
            let updated: i64 = row.try_get("updated_at_ms").map_err(ApiError::internal)?;
            let mut installation =
                Installation::decode(bytes.as_slice()).map_err(ApiError::internal)?;
            installation.connection_id = connection_id.to_owned();
            installation.update_time = Some(time::timestamp(updated));
            Ok(installation)
        })
        .transpose()
    }
}

impl Store {
    /// Stores `manifest` (with `content`) as the project's next version, unless the latest
    /// version has the same content hash: then returns that one and `false`.
    pub async fn deploy_manifest(
        &self,
        tenant: &TenantContext,
        mut manifest: Manifest,
    ) -> Result<(Manifest, bool), ApiError> {
        let mut tx = self.db.pool().begin().await.map_err(ApiError::internal)?;
        let latest = sqlx::query(
            "SELECT version, manifest, deployed_at_ms FROM manifests
             WHERE project_id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(tenant.project_id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(ApiError::internal)?;
        let mut next = 1;
        if let Some(row) = latest {
            let previous = decode_manifest(&row)?;
            if previous.content_hash == manifest.content_hash {
                tx.rollback().await.map_err(ApiError::internal)?;
                let mut previous = previous;
                previous.content = manifest.content;
                return Ok((previous, false));
            }
            next = previous.version + 1;
        }
        let now = now_ms();
        let content = std::mem::take(&mut manifest.content);
        let stored = Manifest {
            version: 0,
            content: String::new(),
            create_time: None,
            ..manifest.clone()
        };
        sqlx::query(
            "INSERT INTO manifests (project_id, version, content, manifest, deployed_at_ms)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(tenant.project_id.as_str())
        .bind(next)
        .bind(content.as_str())
        .bind(stored.encode_to_vec())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(conflict_or_internal)?;
        tx.commit().await.map_err(conflict_or_internal)?;
        manifest.version = next;
        manifest.content = content;
        manifest.create_time = Some(time::timestamp(now));
        Ok((manifest, true))
    }

    /// Creates or replaces the installation of one of the tenant's connections; returns
    /// when it changed (epoch ms).
    pub async fn put_installation(
        &self,
        tenant: &TenantContext,
        installation: &Installation,
    ) -> Result<i64, ApiError> {
        let now = now_ms();
        put_installation(self.db.pool(), tenant, installation, now).await?;
        Ok(now)
    }

    /// Replaces the mappings of `objects`, then — in the same transaction — compiles the
    /// next plan version from all of the connection's mappings with `compile` (given them
    /// and the version) and stores it with the installation `compile` returns.
    pub async fn save_field_mappings<F>(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        objects: &[ObjectMapping],
        compile: F,
    ) -> Result<MappingPlan, ApiError>
    where
        F: FnOnce(&[ObjectMapping], i64) -> Result<(MappingPlan, Installation), ApiError>,
    {
        let now = now_ms();
        let mut tx = self.db.pool().begin().await.map_err(ApiError::internal)?;
        for object in objects {
            sqlx::query(
                "INSERT INTO field_mappings
                     (project_id, tenant_id, connection_id, object, mapping, updated_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (project_id, tenant_id, connection_id, object)
                 DO UPDATE SET mapping = excluded.mapping, updated_at_ms = excluded.updated_at_ms",
            )
            .bind(tenant.project_id.as_str())
            .bind(tenant.tenant_id.as_str())
            .bind(connection_id)
            .bind(object.object.as_str())
            .bind(object.encode_to_vec())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(ApiError::internal)?;
        }
        let rows = sqlx::query(
            "SELECT mapping FROM field_mappings
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3
             ORDER BY object",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(ApiError::internal)?;
        let all = rows
            .iter()
            .map(|row| {
                let bytes: Vec<u8> = row.try_get("mapping").map_err(ApiError::internal)?;
                ObjectMapping::decode(bytes.as_slice()).map_err(ApiError::internal)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let latest: i64 = sqlx::query(
            "SELECT COALESCE(MAX(plan_version), 0) FROM mapping_plans
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .fetch_one(&mut *tx)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(ApiError::internal)?;
        let (mut plan, installation) = compile(&all, latest + 1)?;
        plan.create_time = None;
        sqlx::query(
            "INSERT INTO mapping_plans
                 (project_id, tenant_id, connection_id, plan_version, plan, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .bind(plan.plan_version)
        .bind(plan.encode_to_vec())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(conflict_or_internal)?;
        put_installation(&mut *tx, tenant, &installation, now).await?;
        tx.commit().await.map_err(conflict_or_internal)?;
        plan.create_time = Some(time::timestamp(now));
        Ok(plan)
    }

    /// The connection's saved field mappings, by model object.
    pub async fn field_mappings(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<Vec<ObjectMapping>, ApiError> {
        let rows = sqlx::query(
            "SELECT mapping FROM field_mappings
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3
             ORDER BY object",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .fetch_all(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        rows.iter()
            .map(|row| {
                let bytes: Vec<u8> = row.try_get("mapping").map_err(ApiError::internal)?;
                ObjectMapping::decode(bytes.as_slice()).map_err(ApiError::internal)
            })
            .collect()
    }

    /// One of the connection's plans (`None`: the latest).
    pub async fn mapping_plan(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        version: Option<i64>,
    ) -> Result<Option<MappingPlan>, ApiError> {
        let row = sqlx::query(
            "SELECT plan, created_at_ms FROM mapping_plans
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3
               AND ($4 = 0 OR plan_version = $4)
             ORDER BY plan_version DESC LIMIT 1",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .bind(version.unwrap_or(0))
        .fetch_optional(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        row.map(|row| {
            let bytes: Vec<u8> = row.try_get("plan").map_err(ApiError::internal)?;
            let created: i64 = row.try_get("created_at_ms").map_err(ApiError::internal)?;
            let mut plan = MappingPlan::decode(bytes.as_slice()).map_err(ApiError::internal)?;
            plan.create_time = Some(time::timestamp(created));
            Ok(plan)
        })
        .transpose()
    }
}

async fn put_installation<'e, E>(
    executor: E,
    tenant: &TenantContext,
    installation: &Installation,
    now: i64,
) -> Result<(), ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let stored = Installation {
        update_time: None,
        ..installation.clone()
    };
    sqlx::query(
        "INSERT INTO installations (project_id, tenant_id, connection_id, installation, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (project_id, tenant_id, connection_id)
         DO UPDATE SET installation = excluded.installation, updated_at_ms = excluded.updated_at_ms",
    )
    .bind(tenant.project_id.as_str())
    .bind(tenant.tenant_id.as_str())
    .bind(installation.connection_id.as_str())
    .bind(stored.encode_to_vec())
    .bind(now)
    .execute(executor)
    .await
    .map_err(ApiError::internal)?;
    Ok(())
}

/// A unique-key violation (a concurrent deployment or save took the version) is ABORTED:
/// the caller retries; anything else is internal.
fn conflict_or_internal(error: sqlx::Error) -> ApiError {
    let unique = error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation());
    if unique {
        ApiError::new(
            ErrorCode::Aborted,
            "a concurrent change took this version; retry",
        )
    } else {
        ApiError::internal(error)
    }
}

/// A manifest row without its content.
fn decode_manifest(row: &sqlx::any::AnyRow) -> Result<Manifest, ApiError> {
    let version: i64 = row.try_get("version").map_err(ApiError::internal)?;
    let bytes: Vec<u8> = row.try_get("manifest").map_err(ApiError::internal)?;
    let deployed: i64 = row.try_get("deployed_at_ms").map_err(ApiError::internal)?;
    let mut manifest = Manifest::decode(bytes.as_slice()).map_err(ApiError::internal)?;
    manifest.version = version;
    manifest.content.clear();
    manifest.create_time = Some(time::timestamp(deployed));
    Ok(manifest)
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
            ServiceName::Mapping,
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

    async fn deploy(store: &Store, project: &str, version: i64) {
        let manifest = Manifest {
            description: format!("release {version}"),
            objects: vec!["contact".into()],
            ..Manifest::default()
        };
        sqlx::query(
            "INSERT INTO manifests (project_id, version, content, manifest, deployed_at_ms)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(project)
        .bind(version)
        .bind(format!("version: {version}\n"))
        .bind(manifest.encode_to_vec())
        .bind(version * 1000)
        .execute(store.db.pool())
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn manifests_are_per_project_latest_by_default_and_listed_newest_first() {
        on_every_backend(
            "manifests_are_per_project_latest_by_default_and_listed_newest_first",
            |store| async move {
                let p1 = tenant("p1", "acme");
                assert!(store.manifest(&p1, None).await.unwrap().is_none());
                for version in 1..=3 {
                    deploy(&store, "p1", version).await;
                }
                deploy(&store, "p2", 7).await;

                let latest = store.manifest(&p1, None).await.unwrap().unwrap();
                assert_eq!(latest.version, 3);
                assert_eq!(latest.content, "version: 3\n");
                assert_eq!(latest.objects, ["contact"]);
                assert_eq!(latest.create_time, Some(time::timestamp(3000)));
                let second = store.manifest(&p1, Some(2)).await.unwrap().unwrap();
                assert_eq!(second.description, "release 2");
                assert!(store.manifest(&p1, Some(7)).await.unwrap().is_none());

                let listed = store.manifests(&p1, i64::MAX, 10).await.unwrap();
                let versions: Vec<i64> = listed.iter().map(|m| m.version).collect();
                assert_eq!(versions, [3, 2, 1]);
                assert!(listed.iter().all(|m| m.content.is_empty()));
                let below = store.manifests(&p1, 3, 1).await.unwrap();
                assert_eq!(below[0].version, 2);
            },
        )
        .await;
    }

    #[tokio::test]
    async fn installations_are_tenant_scoped() {
        on_every_backend("installations_are_tenant_scoped", |store| async move {
        let acme = tenant("p1", "acme");
        let installation = Installation {
            manifest_version: 2,
            ..Installation::default()
        };
        sqlx::query(
            "INSERT INTO installations (project_id, tenant_id, connection_id, installation, updated_at_ms)
             VALUES ('p1', 'acme', 'conn_1', $1, 5)",
        )
        .bind(installation.encode_to_vec())
        .execute(store.db.pool())
        .await
        .unwrap();
        let found = store.installation(&acme, "conn_1").await.unwrap().unwrap();
        assert_eq!(found.connection_id, "conn_1");
        assert_eq!(found.manifest_version, 2);
        assert!(store.installation(&acme, "conn_2").await.unwrap().is_none());
        assert!(
            store
                .installation(&tenant("p1", "globex"), "conn_1")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .installation(&tenant("p2", "acme"), "conn_1")
                .await
                .unwrap()
                .is_none()
        );
        })
        .await;
    }

    fn manifest(content: &str) -> Manifest {
        Manifest {
            content: content.into(),
            content_hash: format!("hash of {content}"),
            objects: vec!["contact".into()],
            ..Manifest::default()
        }
    }

    #[tokio::test]
    async fn deployments_number_versions_per_project_and_skip_identical_content() {
        on_every_backend(
            "deployments_number_versions_per_project_and_skip_identical_content",
            |store| async move {
                let p1 = tenant("p1", "acme");
                let (first, created) = store.deploy_manifest(&p1, manifest("a")).await.unwrap();
                assert!(created);
                assert_eq!(first.version, 1);
                assert!(first.create_time.is_some());
                let (same, created) = store.deploy_manifest(&p1, manifest("a")).await.unwrap();
                assert!(!created);
                assert_eq!(same.version, 1);
                let (second, _) = store.deploy_manifest(&p1, manifest("b")).await.unwrap();
                assert_eq!(second.version, 2);
                let (other, _) = store
                    .deploy_manifest(&tenant("p2", "acme"), manifest("b"))
                    .await
                    .unwrap();
                assert_eq!(other.version, 1, "versions count per project");
                let latest = store.manifest(&p1, None).await.unwrap().unwrap();
                assert_eq!(latest.content, "b");
                assert_eq!(latest.content_hash, "hash of b");
            },
        )
        .await;
    }

    #[tokio::test]
    async fn saved_mappings_compile_numbered_plans_per_tenant_and_connection() {
        on_every_backend(
            "saved_mappings_compile_numbered_plans_per_tenant_and_connection",
            |store| async move {
                let acme = tenant("p1", "acme");
                let save = |object: &'static str| {
                    let store = store.clone();
                    let acme = acme.clone();
                    async move {
                        store
                            .save_field_mappings(
                                &acme,
                                "conn_1",
                                &[ObjectMapping {
                                    object: object.into(),
                                    ..ObjectMapping::default()
                                }],
                                |all, version| {
                                    let plan = MappingPlan {
                                        connection_id: "conn_1".into(),
                                        plan_version: version,
                                        objects: all
                                            .iter()
                                            .map(|m| syncline_proto::mapping::v1::ObjectPlan {
                                                object: m.object.clone(),
                                                ..Default::default()
                                            })
                                            .collect(),
                                        ..MappingPlan::default()
                                    };
                                    let installation = Installation {
                                        connection_id: "conn_1".into(),
                                        plan_version: version,
                                        ..Installation::default()
                                    };
                                    Ok((plan, installation))
                                },
                            )
                            .await
                            .unwrap()
                    }
                };
                let first = save("contact").await;
                assert_eq!(first.plan_version, 1);
                let second = save("deal").await;
                assert_eq!(second.plan_version, 2);
                let objects: Vec<&str> = second.objects.iter().map(|o| o.object.as_str()).collect();
                assert_eq!(
                    objects,
                    ["contact", "deal"],
                    "other objects keep their mappings"
                );

                let latest = store
                    .mapping_plan(&acme, "conn_1", None)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(latest.plan_version, 2);
                let v1 = store
                    .mapping_plan(&acme, "conn_1", Some(1))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(v1.objects.len(), 1);
                let installation = store.installation(&acme, "conn_1").await.unwrap().unwrap();
                assert_eq!(installation.plan_version, 2);
                for other in [tenant("p1", "globex"), tenant("p2", "acme")] {
                    assert!(
                        store
                            .mapping_plan(&other, "conn_1", None)
                            .await
                            .unwrap()
                            .is_none()
                    );
                }
                assert!(
                    store
                        .mapping_plan(&acme, "conn_2", None)
                        .await
                        .unwrap()
                        .is_none()
                );
            },
        )
        .await;
    }
}
