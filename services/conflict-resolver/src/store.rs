//! The service's tables. Every statement filters by project and tenant.

use prost::Message;
use sqlx::Row;
use syncline_domain::{ApiError, TenantContext};
use syncline_proto::conflict::v1::{Conflict, Policy};
use syncline_service_kit::pagination::PageRequest;
use syncline_storage::{Database, now_ms};

/// Policies and conflicts.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The tenant's stored policy and when it changed, if it ever did.
    pub async fn policy(&self, tenant: &TenantContext) -> Result<Option<(Policy, i64)>, ApiError> {
        let row = sqlx::query(
            "SELECT policy, updated_at_ms FROM policies WHERE project_id = $1 AND tenant_id = $2",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .fetch_optional(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        row.map(|row| {
            let bytes: Vec<u8> = row.try_get("policy").map_err(ApiError::internal)?;
            let updated: i64 = row.try_get("updated_at_ms").map_err(ApiError::internal)?;
            let policy = Policy::decode(bytes.as_slice()).map_err(ApiError::internal)?;
            Ok((policy, updated))
        })
        .transpose()
    }

    /// Stores the tenant's policy; returns when it changed.
    pub async fn put_policy(
        &self,
        tenant: &TenantContext,
        policy: &Policy,
    ) -> Result<i64, ApiError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO policies (project_id, tenant_id, policy, updated_at_ms)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (project_id, tenant_id)
             DO UPDATE SET policy = excluded.policy, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(policy.encode_to_vec())
        .bind(now)
        .execute(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        Ok(now)
    }

    /// One conflict of the tenant.
    pub async fn conflict(
        &self,
        tenant: &TenantContext,
        id: &str,
    ) -> Result<Option<Conflict>, ApiError> {
        let row = sqlx::query(
            "SELECT conflict FROM conflicts WHERE project_id = $1 AND tenant_id = $2 AND id = $3",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        row.map(|row| decode_conflict(&row)).transpose()
    }

    /// A page of the tenant's conflicts, filtered, in id (= creation) order.
    pub async fn conflicts(
        &self,
        tenant: &TenantContext,
        page: &PageRequest,
        state: Option<i32>,
        connection_id: Option<&str>,
        object: Option<&str>,
    ) -> Result<Vec<Conflict>, ApiError> {
        let rows = sqlx::query(
            "SELECT conflict FROM conflicts
             WHERE project_id = $1 AND tenant_id = $2 AND id > $3
               AND ($4 < 0 OR state = $4)
               AND ($5 = '' OR connection_id = $5)
               AND ($6 = '' OR object = $6)
             ORDER BY id LIMIT $7",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(state.unwrap_or(-1))
        .bind(connection_id.unwrap_or(""))
        .bind(object.unwrap_or(""))
        .bind(page.fetch_limit())
        .fetch_all(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        rows.iter().map(decode_conflict).collect()
    }
}

fn decode_conflict(row: &sqlx::any::AnyRow) -> Result<Conflict, ApiError> {
    let bytes: Vec<u8> = row.try_get("conflict").map_err(ApiError::internal)?;
    Conflict::decode(bytes.as_slice()).map_err(ApiError::internal)
}
