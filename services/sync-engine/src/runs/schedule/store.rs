//! `sync_schedules`: one row per (tenant, connection, model object) whose mapping plan
//! carries a schedule. Every statement a tenant's action reaches filters by project and
//! tenant; only the claim reads across tenants, as the workers' slice claim does.

use sqlx::Row;
use syncline_domain::{ApiError, TenantContext};

use crate::changelog::placeholders;

fn internal(error: sqlx::Error) -> ApiError {
    ApiError::internal(error)
}

/// One scheduled object of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// Model object.
    pub object: String,
    /// The plan's interval, in milliseconds (before any configured speed-up).
    pub interval_ms: i64,
}

/// The due schedules of one connection, claimed by one process.
#[derive(Debug, Clone)]
pub struct DueConnection {
    pub tenant: TenantContext,
    pub connection_id: String,
    /// The due objects, in object order.
    pub objects: Vec<Scheduled>,
    /// Starts of this connection that failed in a row before this one (the most of its
    /// objects).
    pub failures: i32,
    /// What the claim set `next_due_ms` to: a later write with [`ScheduleStore::reschedule`]
    /// only applies while the row still holds it (nobody rewrote or claimed it since).
    pub claimed_until_ms: i64,
}

/// The schedules' table over the service's database.
#[derive(Debug, Clone)]
pub struct ScheduleStore {
    db: syncline_storage::Database,
}

impl ScheduleStore {
    pub fn new(db: syncline_storage::Database) -> Self {
        Self { db }
    }

    /// Makes the connection's schedules exactly `wanted`: a new object is first due at
    /// `first_due(interval_ms)`; an object whose interval changed is due at the earlier of
    /// its current due time and `first_due` of the new interval; an unchanged one keeps its
    /// due time (and a claim in progress); objects not in `wanted` lose their schedule.
    pub async fn replace(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        wanted: &[Scheduled],
        now_ms: i64,
        first_due: impl Fn(i64) -> i64,
    ) -> Result<(), ApiError> {
        let mut tx = self.db.pool().begin().await.map_err(internal)?;
        let statement = if wanted.is_empty() {
            "DELETE FROM sync_schedules
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3"
                .to_owned()
        } else {
            format!(
                "DELETE FROM sync_schedules
                 WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3
                   AND object NOT IN ({})",
                placeholders(4, wanted.len())
            )
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(tenant.project_id.as_str())
            .bind(tenant.tenant_id.as_str())
            .bind(connection_id);
        for scheduled in wanted {
            query = query.bind(scheduled.object.as_str());
        }
        query.execute(&mut *tx).await.map_err(internal)?;
        for scheduled in wanted {
            sqlx::query(
                "INSERT INTO sync_schedules (project_id, tenant_id, connection_id, object,
                     interval_ms, next_due_ms, suspended, failures, updated_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7)
                 ON CONFLICT (project_id, tenant_id, connection_id, object) DO UPDATE SET
                     next_due_ms = CASE
                         WHEN sync_schedules.interval_ms <> excluded.interval_ms
                              AND excluded.next_due_ms < sync_schedules.next_due_ms
                         THEN excluded.next_due_ms
                         ELSE sync_schedules.next_due_ms END,
                     interval_ms = excluded.interval_ms,
                     updated_at_ms = excluded.updated_at_ms",
            )
            .bind(tenant.project_id.as_str())
            .bind(tenant.tenant_id.as_str())
            .bind(connection_id)
            .bind(scheduled.object.as_str())
            .bind(scheduled.interval_ms)
            .bind(first_due(scheduled.interval_ms))
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(internal)?;
        }
        tx.commit().await.map_err(internal)
    }

    /// The tenant's schedules of `connection_id`, by object, with their next due times
    /// (for tests and inspection).
    pub async fn list(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<Vec<(Scheduled, i64, bool)>, ApiError> {
        let rows = sqlx::query(
            "SELECT object, interval_ms, next_due_ms, suspended FROM sync_schedules
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3
             ORDER BY object",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .fetch_all(self.db.pool())
        .await
        .map_err(internal)?;
        rows.iter()
            .map(|row| {
                let suspended: i32 = row.try_get("suspended").map_err(internal)?;
                Ok((
                    Scheduled {
                        object: row.try_get("object").map_err(internal)?,
                        interval_ms: row.try_get("interval_ms").map_err(internal)?,
                    },
                    row.try_get("next_due_ms").map_err(internal)?,
                    suspended == 1,
                ))
            })
            .collect()
    }

    /// Claims the schedules of one connection (the one due longest) that are due by
    /// `due_by_ms`, until `now_ms + lease_ms`; `None` when nothing is due. The claim is one conditional UPDATE
    /// that moves `next_due_ms` past `now_ms`: of processes claiming at once, one changes the
    /// rows and the others' conditions no longer hold (PostgreSQL re-checks a row it waited
    /// for; SQLite has a single writer), so a due schedule is never claimed twice. A process
    /// killed after claiming loses the schedules only until the lease ends.
    pub async fn claim_due(
        &self,
        due_by_ms: i64,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<DueConnection>, ApiError> {
        let claimed_until = now_ms.saturating_add(lease_ms.max(1));
        // Another process may claim the candidate first; then it is no longer due and the
        // next candidate is tried.
        loop {
            let candidate = sqlx::query(
                "SELECT project_id, tenant_id, connection_id FROM sync_schedules
                 WHERE suspended = 0 AND next_due_ms <= $1
                 ORDER BY next_due_ms, project_id, tenant_id, connection_id
                 LIMIT 1",
            )
            .bind(due_by_ms)
            .fetch_optional(self.db.pool())
            .await
            .map_err(internal)?;
            let Some(candidate) = candidate else {
                return Ok(None);
            };
            let project: String = candidate.try_get("project_id").map_err(internal)?;
            let tenant: String = candidate.try_get("tenant_id").map_err(internal)?;
            let connection_id: String = candidate.try_get("connection_id").map_err(internal)?;
            let rows = sqlx::query(
                "UPDATE sync_schedules SET next_due_ms = $1
                 WHERE project_id = $2 AND tenant_id = $3 AND connection_id = $4
                   AND suspended = 0 AND next_due_ms <= $5
                 RETURNING object, interval_ms, failures",
            )
            .bind(claimed_until)
            .bind(project.as_str())
            .bind(tenant.as_str())
            .bind(connection_id.as_str())
            .bind(due_by_ms)
            .fetch_all(self.db.pool())
            .await
            .map_err(internal)?;
            if rows.is_empty() {
                continue;
            }
            let mut objects = Vec::with_capacity(rows.len());
            let mut failures = 0;
            for row in &rows {
                objects.push(Scheduled {
                    object: row.try_get("object").map_err(internal)?,
                    interval_ms: row.try_get("interval_ms").map_err(internal)?,
                });
                failures = failures.max(row.try_get::<i32, _>("failures").map_err(internal)?);
            }
            objects.sort_by(|a, b| a.object.cmp(&b.object));
            return Ok(Some(DueConnection {
                tenant: crate::runs::store::context(&project, &tenant)?,
                connection_id,
                objects,
                failures,
                claimed_until_ms: claimed_until,
            }));
        }
    }

    /// Sets when the claimed `object` is due next and its failure count, unless the row
    /// changed since the claim (rewritten from a newer plan, or removed). Returns whether
    /// it was written.
    pub async fn reschedule(
        &self,
        due: &DueConnection,
        object: &str,
        next_due_ms: i64,
        failures: i32,
        now_ms: i64,
    ) -> Result<bool, ApiError> {
        let result = sqlx::query(
            "UPDATE sync_schedules SET next_due_ms = $1, failures = $2, updated_at_ms = $3
             WHERE project_id = $4 AND tenant_id = $5 AND connection_id = $6 AND object = $7
               AND next_due_ms = $8",
        )
        .bind(next_due_ms)
        .bind(failures)
        .bind(now_ms)
        .bind(due.tenant.project_id.as_str())
        .bind(due.tenant.tenant_id.as_str())
        .bind(due.connection_id.as_str())
        .bind(object)
        .bind(due.claimed_until_ms)
        .execute(self.db.pool())
        .await
        .map_err(internal)?;
        Ok(result.rows_affected() > 0)
    }

    /// Stops (`true`) or restarts the connection's schedules. Restarted schedules that were
    /// stopped are due at `now_ms` (the connection was authorized again: catch up at once).
    /// Returns how many rows changed.
    pub async fn suspend(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        suspended: bool,
        now_ms: i64,
    ) -> Result<u64, ApiError> {
        let statement = if suspended {
            "UPDATE sync_schedules SET suspended = 1, updated_at_ms = $1
             WHERE project_id = $2 AND tenant_id = $3 AND connection_id = $4 AND suspended = 0"
        } else {
            "UPDATE sync_schedules SET suspended = 0, failures = 0, next_due_ms = $1,
                 updated_at_ms = $1
             WHERE project_id = $2 AND tenant_id = $3 AND connection_id = $4 AND suspended = 1"
        };
        let result = sqlx::query(statement)
            .bind(now_ms)
            .bind(tenant.project_id.as_str())
            .bind(tenant.tenant_id.as_str())
            .bind(connection_id)
            .execute(self.db.pool())
            .await
            .map_err(internal)?;
        Ok(result.rows_affected())
    }

    /// Removes the connection's schedules; returns how many there were.
    pub async fn remove_connection(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<u64, ApiError> {
        let result = sqlx::query(
            "DELETE FROM sync_schedules
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .execute(self.db.pool())
        .await
        .map_err(internal)?;
        Ok(result.rows_affected())
    }
}
