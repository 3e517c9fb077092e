//! The tables of sync runs: runs, their slices (the work queue), checkpoints and record
//! state (`sync_record_hashes`). Every statement a tenant can reach filters by project and tenant; the worker's
//! statements address slices by id after claiming them.

use std::collections::HashMap;

use prost::Message;
use sqlx::Row;
use syncline_domain::{ApiError, TenantContext};
use syncline_proto::common::v1::{ErrorReason, RecordOperation};
use syncline_proto::sync::v1::{DeadLetter, ObjectProgress, SyncRun, SyncRunState, SyncStats};
use syncline_service_kit::time;
use syncline_storage::{Backend, Database};

use crate::changelog::prepared::PreparedChange;
use crate::changelog::{ChangeLog, Params, placeholders};

/// The hash stored for a deleted record.
pub const DELETED_HASH: &str = "deleted";

pub(crate) const PENDING: i32 = SyncRunState::Pending as i32;
pub(crate) const RUNNING: i32 = SyncRunState::Running as i32;
pub(crate) const PAUSED: i32 = SyncRunState::Paused as i32;
pub(crate) const SUCCEEDED: i32 = SyncRunState::Succeeded as i32;
pub(crate) const FAILED: i32 = SyncRunState::Failed as i32;
pub(crate) const CANCELLED: i32 = SyncRunState::Cancelled as i32;

/// One object of a new run.
#[derive(Debug, Clone)]
pub struct NewSlice {
    /// Model object.
    pub object: String,
    /// The CRM object the plan maps it from.
    pub provider_object: String,
    /// Where reading starts.
    pub cursor: String,
}

/// A run to insert: its fixed part (the encoded message) and its slices.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub run: SyncRun,
    pub slices: Vec<NewSlice>,
    pub trace_parent: String,
    pub created_at_ms: i64,
}

/// A slice a worker holds for one page.
#[derive(Debug, Clone)]
pub struct Claim {
    pub slice_id: String,
    pub run_id: String,
    pub tenant: TenantContext,
    pub connection_id: String,
    pub object: String,
    pub provider_object: String,
    pub cursor: String,
    pub attempts: i32,
    pub mode: i32,
    pub plan_version: i64,
    pub trace_parent: String,
}

/// One record of a page, mapped: what a change would carry and the hash of its content.
#[derive(Debug, Clone)]
pub struct PageRecord {
    pub id: String,
    /// Content hash of the mapped record, or [`DELETED_HASH`].
    pub hash: String,
    /// The change to publish when the content differs from what was published last (its
    /// operation is decided at commit).
    pub change: PreparedChange,
}

/// What a worker commits for one page.
#[derive(Debug, Clone)]
pub struct PageCommit {
    pub records: Vec<PageRecord>,
    pub cursor: String,
    pub caught_up: bool,
    pub estimated_total: Option<i64>,
    pub provider_calls: i64,
    pub records_failed: i64,
    pub now_ms: i64,
    /// The slice waits until then before its next page (the provider's short rate window
    /// is used up); 0 for no wait.
    pub not_before_ms: i64,
    /// Keep the slice's lease until then to read its next page in the same turn; 0 gives
    /// the slice back.
    pub keep_lease_until_ms: i64,
    /// MAP dead letters: one per record and model field that failed to map (the record is
    /// published without that field). Each replaces the tenant's earlier letter about the
    /// same record and field, so replays and later runs keep one.
    pub dead_letters: Vec<DeadLetter>,
    /// The CRM fields this page no longer read because schema drift broke their mappings,
    /// and why; recorded on the slice (for its progress) when there are any.
    pub skipped: Option<super::remote::Skipped>,
}

/// What the commit of a page did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// Stored; `run_finished` when it was the run's last page; `kept` when the worker still
    /// holds the slice for its next page (it asked to, and the run is not paused).
    Stored {
        published: usize,
        unchanged: usize,
        run_finished: bool,
        kept: bool,
    },
    /// The lease was lost (another worker took the slice over) or the run was cancelled:
    /// nothing was written.
    Discarded,
}

fn internal(error: sqlx::Error) -> ApiError {
    ApiError::internal(error)
}

pub(crate) fn context(project: &str, tenant: &str) -> Result<TenantContext, ApiError> {
    Ok(TenantContext {
        project_id: syncline_domain::ProjectId::parse(project)
            .map_err(|e| ApiError::internal(e.to_string()))?,
        tenant_id: syncline_domain::TenantId::parse(tenant)
            .map_err(|e| ApiError::internal(e.to_string()))?,
        subject: "service:sync-engine".into(),
    })
}

/// The runs' tables over the service's database.
#[derive(Debug, Clone)]
pub struct RunStore {
    db: Database,
}

impl RunStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The id of the tenant's active (pending, running or paused) run of `connection_id` in
    /// `mode`.
    pub async fn active_run(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        mode: i32,
    ) -> Result<Option<String>, ApiError> {
        let row = sqlx::query(
            "SELECT id FROM sync_runs
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3 AND mode = $4
               AND active = 1",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .bind(mode)
        .fetch_optional(self.db.pool())
        .await
        .map_err(internal)?;
        row.map(|r| r.try_get::<String, _>("id").map_err(internal))
            .transpose()
    }

    /// Saved cursors of the connection's objects, by model object.
    pub async fn checkpoints(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<HashMap<String, String>, ApiError> {
        let rows = sqlx::query(
            "SELECT object, cursor FROM sync_checkpoints
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .fetch_all(self.db.pool())
        .await
        .map_err(internal)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("object").map_err(internal)?,
                    r.try_get::<String, _>("cursor").map_err(internal)?,
                ))
            })
            .collect()
    }

    /// Inserts a pending run with its slices; false when the connection already has an
    /// active run in the same mode (the unique index decided, so concurrent starts agree).
    pub async fn insert_run(&self, tenant: &TenantContext, new: &NewRun) -> Result<bool, ApiError> {
        let mut tx = self.db.pool().begin().await.map_err(internal)?;
        let inserted = sqlx::query(
            "INSERT INTO sync_runs (id, project_id, tenant_id, connection_id, state, run,
                                    created_at_ms, mode, active, trace_parent)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9)",
        )
        .bind(new.run.id.as_str())
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(new.run.connection_id.as_str())
        .bind(PENDING)
        .bind(new.run.encode_to_vec())
        .bind(new.created_at_ms)
        .bind(new.run.mode)
        .bind(new.trace_parent.as_str())
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(false),
            Err(e) => return Err(internal(e)),
        }
        for (position, slice) in (0_i32..).zip(&new.slices) {
            sqlx::query(
                "INSERT INTO sync_slices (id, run_id, project_id, tenant_id, connection_id,
                     position, object, provider_object, cursor, done, records_read,
                     changes_published, records_unchanged, records_failed, provider_calls,
                     estimated_total, not_before_ms, attempts, lease_holder, lease_until_ms,
                     last_served_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 0, 0, 0, 0, 0, 0, 0, 0, '', 0, 0)",
            )
            .bind(format!("{}/{}", new.run.id, slice.object))
            .bind(new.run.id.as_str())
            .bind(tenant.project_id.as_str())
            .bind(tenant.tenant_id.as_str())
            .bind(new.run.connection_id.as_str())
            .bind(position)
            .bind(slice.object.as_str())
            .bind(slice.provider_object.as_str())
            .bind(slice.cursor.as_str())
            .execute(&mut *tx)
            .await
            .map_err(internal)?;
        }
        tx.commit().await.map_err(internal)?;
        Ok(true)
    }

    /// Moves the tenant's run `id` from one of `from` to `to`; returns whether it moved
    /// (false: missing, foreign, or in another state). Final states end the run. Pending and
    /// paused (the caller's own pause) drop why the run was paused and when it would resume
    /// by itself: a run the user paused waits for the user, whatever paused it before.
    pub async fn transition(
        &self,
        tenant: &TenantContext,
        id: &str,
        from: &[i32],
        to: i32,
        now_ms: i64,
    ) -> Result<bool, ApiError> {
        let final_state = matches!(to, SUCCEEDED | FAILED | CANCELLED);
        let statement = format!(
            "UPDATE sync_runs SET state = $1, active = $2, resume_at_ms = NULL,
                 ended_at_ms = CASE WHEN $2 = 0 THEN $3 ELSE ended_at_ms END,
                 error_reason = CASE WHEN $1 IN ({PENDING}, {PAUSED}) THEN 0 ELSE error_reason END,
                 error_message = CASE WHEN $1 IN ({PENDING}, {PAUSED}) THEN '' ELSE error_message END
             WHERE project_id = $4 AND tenant_id = $5 AND id = $6 AND state IN ({})",
            placeholders(7, from.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(to)
            .bind(i32::from(!final_state))
            .bind(now_ms)
            .bind(tenant.project_id.as_str())
            .bind(tenant.tenant_id.as_str())
            .bind(id);
        for state in from {
            query = query.bind(*state);
        }
        let result = query.execute(self.db.pool()).await.map_err(internal)?;
        Ok(result.rows_affected() > 0)
    }

    /// Pauses an active run by itself (NEEDS_REAUTH, the API budget), with why; with
    /// `resume_at_ms` it resumes by itself then.
    pub async fn pause_with_reason(
        &self,
        run_id: &str,
        reason: ErrorReason,
        message: &str,
        resume_at_ms: Option<i64>,
    ) -> Result<bool, ApiError> {
        let result = sqlx::query(
            "UPDATE sync_runs SET state = $1, error_reason = $2, error_message = $3,
                 resume_at_ms = $4
             WHERE id = $5 AND state IN ($6, $7)",
        )
        .bind(PAUSED)
        .bind(reason as i32)
        .bind(message)
        .bind(resume_at_ms)
        .bind(run_id)
        .bind(PENDING)
        .bind(RUNNING)
        .execute(self.db.pool())
        .await
        .map_err(internal)?;
        Ok(result.rows_affected() > 0)
    }

    /// Ends an active run as FAILED with why.
    pub async fn fail(
        &self,
        run_id: &str,
        reason: ErrorReason,
        message: &str,
        now_ms: i64,
    ) -> Result<bool, ApiError> {
        let result = sqlx::query(
            "UPDATE sync_runs SET state = $1, active = 0, error_reason = $2, error_message = $3,
                 ended_at_ms = $4, resume_at_ms = NULL
             WHERE id = $5 AND state IN ($6, $7, $8)",
        )
        .bind(FAILED)
        .bind(reason as i32)
        .bind(message)
        .bind(now_ms)
        .bind(run_id)
        .bind(PENDING)
        .bind(RUNNING)
        .bind(PAUSED)
        .execute(self.db.pool())
        .await
        .map_err(internal)?;
        Ok(result.rows_affected() > 0)
    }

    /// Resumes the runs whose automatic pause (the API budget) is over; returns how many.
    pub async fn resume_due(&self, now_ms: i64) -> Result<u64, ApiError> {
        let result = sqlx::query(
            "UPDATE sync_runs SET state = $1, resume_at_ms = NULL, error_reason = 0,
                 error_message = ''
             WHERE state = $2 AND resume_at_ms IS NOT NULL AND resume_at_ms <= $3",
        )
        .bind(PENDING)
        .bind(PAUSED)
        .bind(now_ms)
        .execute(self.db.pool())
        .await
        .map_err(internal)?;
        Ok(result.rows_affected())
    }

    /// Claims the next slice for `holder` until `now_ms + lease_ms`: a slice of a pending or
    /// running run that is not done, not backing off and not leased, of a tenant with fewer
    /// than `per_tenant` leased slices, the least recently served tenant first (then the
    /// least recently served slice). PostgreSQL skips rows other processes are claiming
    /// (`FOR UPDATE SKIP LOCKED`); SQLite's single writer makes the UPDATE atomic.
    pub async fn claim(
        &self,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
        per_tenant: u32,
    ) -> Result<Option<Claim>, ApiError> {
        let lock = if self.db.backend() == Backend::Postgres {
            "FOR UPDATE OF s SKIP LOCKED"
        } else {
            ""
        };
        let statement = format!(
            "UPDATE sync_slices SET lease_holder = $1, lease_until_ms = $2
             WHERE id = (
                 SELECT s.id FROM sync_slices s
                 JOIN sync_runs r ON r.id = s.run_id
                 LEFT JOIN sync_tenant_turns t
                        ON t.project_id = s.project_id AND t.tenant_id = s.tenant_id
                 WHERE s.done = 0 AND s.not_before_ms <= $3 AND s.lease_until_ms < $3
                   AND r.state IN ({PENDING}, {RUNNING})
                   AND (SELECT COUNT(*) FROM sync_slices o
                        WHERE o.project_id = s.project_id AND o.tenant_id = s.tenant_id
                          AND o.done = 0 AND o.lease_until_ms >= $3) < $4
                 ORDER BY COALESCE(t.last_served_ms, 0), s.last_served_ms, s.id
                 LIMIT 1
                 {lock})
             RETURNING id, run_id, project_id, tenant_id, connection_id, object,
                       provider_object, cursor, attempts"
        );
        let mut tx = self.db.pool().begin().await.map_err(internal)?;
        let row = sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(holder)
            .bind(now_ms.saturating_add(lease_ms))
            .bind(now_ms)
            .bind(i64::from(per_tenant))
            .fetch_optional(&mut *tx)
            .await
            .map_err(internal)?;
        let Some(row) = row else {
            tx.rollback().await.map_err(internal)?;
            return Ok(None);
        };
        let project: String = row.try_get("project_id").map_err(internal)?;
        let tenant: String = row.try_get("tenant_id").map_err(internal)?;
        let run_id: String = row.try_get("run_id").map_err(internal)?;
        sqlx::query(
            "INSERT INTO sync_tenant_turns (project_id, tenant_id, last_served_ms)
             VALUES ($1, $2, $3)
             ON CONFLICT (project_id, tenant_id) DO UPDATE SET last_served_ms = $3",
        )
        .bind(project.as_str())
        .bind(tenant.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
        sqlx::query(
            "UPDATE sync_runs SET state = $1, started_at_ms = COALESCE(started_at_ms, $2)
             WHERE id = $3 AND state = $4",
        )
        .bind(RUNNING)
        .bind(now_ms)
        .bind(run_id.as_str())
        .bind(PENDING)
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
        let run = sqlx::query("SELECT mode, run, trace_parent FROM sync_runs WHERE id = $1")
            .bind(run_id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        let bytes: Vec<u8> = run.try_get("run").map_err(internal)?;
        let fixed = SyncRun::decode(bytes.as_slice()).map_err(ApiError::internal)?;
        Ok(Some(Claim {
            slice_id: row.try_get("id").map_err(internal)?,
            tenant: context(&project, &tenant)?,
            run_id,
            connection_id: row.try_get("connection_id").map_err(internal)?,
            object: row.try_get("object").map_err(internal)?,
            provider_object: row.try_get("provider_object").map_err(internal)?,
            cursor: row.try_get("cursor").map_err(internal)?,
            attempts: row.try_get("attempts").map_err(internal)?,
            mode: run.try_get("mode").map_err(internal)?,
            plan_version: fixed.plan_version,
            trace_parent: run.try_get("trace_parent").map_err(internal)?,
        }))
    }

    /// Gives a slice back without progress: after a retryable failure it waits until
    /// `not_before_ms` (and counts the attempt); otherwise it is free at once.
    pub async fn release(
        &self,
        claim: &Claim,
        holder: &str,
        not_before_ms: Option<i64>,
    ) -> Result<(), ApiError> {
        sqlx::query(
            "UPDATE sync_slices SET lease_holder = '', lease_until_ms = 0,
                 not_before_ms = COALESCE($1, not_before_ms),
                 attempts = CASE WHEN $1 IS NULL THEN attempts ELSE attempts + 1 END
             WHERE id = $2 AND lease_holder = $3",
        )
        .bind(not_before_ms)
        .bind(claim.slice_id.as_str())
        .bind(holder)
        .execute(self.db.pool())
        .await
        .map_err(internal)?;
        Ok(())
    }

    /// Commits one page in one transaction: the slice's cursor and counts (releasing it, or
    /// keeping it until `keep_lease_until_ms` for the next page of the worker's turn),
    /// the record state, the changes whose content differs from what was published last,
    /// the connection's checkpoint (every page of an incremental run; at the end of each
    /// object of a backfill) and, after the run's last slice, SUCCEEDED. Discarded when the
    /// lease is no longer `holder`'s or the run was cancelled.
    pub async fn commit_page(
        &self,
        log: &ChangeLog,
        claim: &Claim,
        holder: &str,
        page: PageCommit,
    ) -> Result<Committed, ApiError> {
        let tenant = &claim.tenant;
        let now = page.now_ms;
        let mut tx = self.db.pool().begin().await.map_err(internal)?;
        // The first statement writes, so SQLite takes its write lock at once.
        let read = i64::try_from(page.records.len()).unwrap_or(i64::MAX);
        // A finished slice is never kept.
        let keep_until = if page.caught_up {
            0
        } else {
            page.keep_lease_until_ms
        };
        let owned = sqlx::query(
            "UPDATE sync_slices SET
                 lease_holder = CASE WHEN $11 > 0 THEN lease_holder ELSE '' END,
                 lease_until_ms = $11, attempts = 0, not_before_ms = $10, last_served_ms = $1, cursor = $2, done = $3,
                 records_read = records_read + $4, provider_calls = provider_calls + $5,
                 records_failed = records_failed + $6,
                 estimated_total = CASE WHEN $7 < 0 THEN estimated_total
                                        ELSE records_read + $4 + $7 END,
                 skipped_fields = CASE WHEN $13 = '' THEN skipped_fields ELSE $12 END,
                 issue = CASE WHEN $13 = '' THEN issue ELSE $13 END
             WHERE id = $8 AND lease_holder = $9",
        )
        .bind(now)
        .bind(page.cursor.as_str())
        .bind(i32::from(page.caught_up))
        .bind(read)
        .bind(page.provider_calls)
        .bind(page.records_failed)
        .bind(page.estimated_total.unwrap_or(-1))
        .bind(claim.slice_id.as_str())
        .bind(holder)
        .bind(page.not_before_ms)
        .bind(keep_until)
        .bind(
            page.skipped
                .as_ref()
                .map(|s| serde_json::to_string(&s.fields).unwrap_or_default())
                .unwrap_or_default(),
        )
        .bind(page.skipped.as_ref().map(|s| s.issue.as_str()).unwrap_or(""))
        .execute(&mut *tx)
        .await
        .map_err(internal)?
        .rows_affected()
            == 1;
        let state: Option<i32> = sqlx::query("SELECT state FROM sync_runs WHERE id = $1")
            .bind(claim.run_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(internal)?
            .map(|r| r.try_get("state"))
            .transpose()
            .map_err(internal)?;
        if !owned || !matches!(state, Some(PENDING | RUNNING | PAUSED)) {
            tx.rollback().await.map_err(internal)?;
            return Ok(Committed::Discarded);
        }
        // A paused run's page in flight is stored, but its slice is given back.
        let kept = keep_until > 0 && state != Some(PAUSED);
        if keep_until > 0 && !kept {
            sqlx::query(
                "UPDATE sync_slices SET lease_holder = '', lease_until_ms = 0 WHERE id = $1",
            )
            .bind(claim.slice_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(internal)?;
        }

        let known = self.record_hashes(&mut tx, claim, &page.records).await?;
        // What each record becomes, given the state known before it (earlier in the page
        // or stored).
        let mut latest: HashMap<&str, &str> = HashMap::new();
        let mut operations = Vec::with_capacity(page.records.len());
        for record in &page.records {
            let previous = latest
                .get(record.id.as_str())
                .copied()
                .or_else(|| known.get(record.id.as_str()).map(String::as_str));
            let publish = match previous {
                None => record.hash != DELETED_HASH,
                Some(previous) => previous != record.hash,
            };
            operations.push(publish.then(|| {
                if record.hash == DELETED_HASH {
                    RecordOperation::Delete
                } else if previous.is_none_or(|p| p == DELETED_HASH) {
                    RecordOperation::Create
                } else {
                    RecordOperation::Update
                }
            }));
            latest.insert(record.id.as_str(), record.hash.as_str());
        }
        // Only state that differs from what is stored is written.
        let rows: Vec<(&str, &str)> = latest
            .into_iter()
            .filter(|(id, hash)| known.get(*id).map(String::as_str) != Some(*hash))
            .collect();
        let params = Params::of(&tx);
        for chunk in rows.chunks(params.rows_per_statement()) {
            let statement = format!(
                "INSERT INTO sync_record_hashes (record_key, project_id, tenant_id, hash)
                 VALUES {}
                 ON CONFLICT (record_key) DO UPDATE SET hash = excluded.hash",
                params.rows(chunk.len(), 4)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
            for (id, hash) in chunk {
                query = query
                    .bind(record_key(claim, id))
                    .bind(tenant.project_id.as_str())
                    .bind(tenant.tenant_id.as_str())
                    .bind(*hash);
            }
            query.execute(&mut *tx).await.map_err(internal)?;
        }
        drop(rows);
        let total = page.records.len();
        let changes: Vec<PreparedChange> = page
            .records
            .into_iter()
            .zip(operations)
            .filter_map(|(record, operation)| {
                operation.map(|operation| {
                    let mut change = record.change;
                    change.operation = operation;
                    change
                })
            })
            .collect();
        let published = changes.len();
        let unchanged = total - published;
        let stored = ChangeLog::append_in_tx(&mut tx, tenant, changes, now).await?;
        write_map_letters(&mut tx, tenant, &page.dead_letters, now).await?;
        sqlx::query(
            "UPDATE sync_slices SET changes_published = changes_published + $1,
                 records_unchanged = records_unchanged + $2
             WHERE id = $3",
        )
        .bind(i64::try_from(published).unwrap_or(i64::MAX))
        .bind(i64::try_from(unchanged).unwrap_or(i64::MAX))
        .bind(claim.slice_id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
        let incremental = claim.mode == syncline_proto::sync::v1::SyncMode::Incremental as i32;
        if incremental || page.caught_up {
            sqlx::query(
                "INSERT INTO sync_checkpoints
                     (project_id, tenant_id, connection_id, object, cursor, updated_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (project_id, tenant_id, connection_id, object)
                 DO UPDATE SET cursor = $5, updated_at_ms = $6",
            )
            .bind(tenant.project_id.as_str())
            .bind(tenant.tenant_id.as_str())
            .bind(claim.connection_id.as_str())
            .bind(claim.object.as_str())
            .bind(page.cursor.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(internal)?;
        }
        let mut run_finished = false;
        if page.caught_up {
            let left: i64 =
                sqlx::query("SELECT COUNT(*) AS n FROM sync_slices WHERE run_id = $1 AND done = 0")
                    .bind(claim.run_id.as_str())
                    .fetch_one(&mut *tx)
                    .await
                    .and_then(|r| r.try_get("n"))
                    .map_err(internal)?;
            if left == 0 {
                run_finished = sqlx::query(
                    "UPDATE sync_runs SET state = $1, active = 0, ended_at_ms = $2,
                         resume_at_ms = NULL
                     WHERE id = $3 AND state IN ($4, $5, $6)",
                )
                .bind(SUCCEEDED)
                .bind(now)
                .bind(claim.run_id.as_str())
                .bind(PENDING)
                .bind(RUNNING)
                .bind(PAUSED)
                .execute(&mut *tx)
                .await
                .map_err(internal)?
                .rows_affected()
                    > 0;
            }
        }
        tx.commit().await.map_err(internal)?;
        log.published(tenant, stored);
        Ok(Committed::Stored {
            published,
            unchanged,
            run_finished,
            kept,
        })
    }

    async fn record_hashes(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        claim: &Claim,
        records: &[PageRecord],
    ) -> Result<HashMap<String, String>, ApiError> {
        let mut known = HashMap::with_capacity(records.len());
        let prefix = record_key(claim, "");
        let params = Params::of(tx);
        // Bound in textual order, so the same binds serve both styles.
        let (project, tenant) = match params {
            Params::Numbered => ("$1", "$2"),
            Params::Anonymous => ("?", "?"),
        };
        for chunk in records.chunks(params.rows_per_statement()) {
            let statement = format!(
                "SELECT record_key, hash FROM sync_record_hashes
                 WHERE project_id = {project} AND tenant_id = {tenant} AND record_key IN ({})",
                params.list(3, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement))
                .bind(claim.tenant.project_id.as_str())
                .bind(claim.tenant.tenant_id.as_str());
            for record in chunk {
                query = query.bind(record_key(claim, &record.id));
            }
            for row in query.fetch_all(&mut **tx).await.map_err(internal)? {
                let key: String = row.try_get("record_key").map_err(internal)?;
                let id = key.strip_prefix(prefix.as_str()).unwrap_or(&key).to_owned();
                known.insert(id, row.try_get("hash").map_err(internal)?);
            }
        }
        Ok(known)
    }

    /// Fills each run's changing parts (state, times, error, stats and per-object progress)
    /// from the columns and slices. `runs` are the tenant's, already read.
    pub async fn complete(
        &self,
        tenant: &TenantContext,
        runs: &mut [SyncRun],
    ) -> Result<(), ApiError> {
        if runs.is_empty() {
            return Ok(());
        }
        let statement = format!(
            "SELECT run_id, object, cursor, done, records_read, changes_published,
                    records_unchanged, records_failed, provider_calls, estimated_total,
                    skipped_fields, issue
             FROM sync_slices
             WHERE project_id = $1 AND tenant_id = $2 AND run_id IN ({})
             ORDER BY run_id, position",
            placeholders(3, runs.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(tenant.project_id.as_str())
            .bind(tenant.tenant_id.as_str());
        for run in runs.iter() {
            query = query.bind(run.id.as_str());
        }
        let rows = query.fetch_all(self.db.pool()).await.map_err(internal)?;
        let mut progress: HashMap<String, Vec<ObjectProgress>> = HashMap::new();
        for row in rows {
            let get = |name: &str| row.try_get::<i64, _>(name).map_err(internal);
            let stats = SyncStats {
                records_read: get("records_read")?,
                changes_published: get("changes_published")?,
                records_unchanged: get("records_unchanged")?,
                records_failed: get("records_failed")?,
                conflicts: 0,
                provider_calls: get("provider_calls")?,
            };
            let done: i32 = row.try_get("done").map_err(internal)?;
            let skipped: String = row.try_get("skipped_fields").map_err(internal)?;
            progress
                .entry(row.try_get("run_id").map_err(internal)?)
                .or_default()
                .push(ObjectProgress {
                    object: row.try_get("object").map_err(internal)?,
                    stats: Some(stats),
                    checkpoint: row.try_get("cursor").map_err(internal)?,
                    done: done == 1,
                    estimated_total: get("estimated_total")?,
                    skipped_fields: serde_json::from_str(&skipped).unwrap_or_default(),
                    issue: row.try_get("issue").map_err(internal)?,
                });
        }
        for run in runs.iter_mut() {
            let objects = progress.remove(&run.id).unwrap_or_default();
            let mut total = SyncStats::default();
            for p in &objects {
                if let Some(s) = &p.stats {
                    total.records_read += s.records_read;
                    total.changes_published += s.changes_published;
                    total.records_unchanged += s.records_unchanged;
                    total.records_failed += s.records_failed;
                    total.provider_calls += s.provider_calls;
                }
            }
            run.stats = Some(total);
            run.progress = objects;
        }
        Ok(())
    }
}

/// Overlays the columns a run's row keeps up to date on its fixed, encoded part.
pub(crate) fn decode_run_row(row: &sqlx::any::AnyRow) -> Result<SyncRun, ApiError> {
    let bytes: Vec<u8> = row.try_get("run").map_err(internal)?;
    let created: i64 = row.try_get("created_at_ms").map_err(internal)?;
    let mut run = SyncRun::decode(bytes.as_slice()).map_err(ApiError::internal)?;
    run.create_time = Some(time::timestamp(created));
    run.state = row.try_get("state").map_err(internal)?;
    let started: Option<i64> = row.try_get("started_at_ms").map_err(internal)?;
    let ended: Option<i64> = row.try_get("ended_at_ms").map_err(internal)?;
    run.start_time = started.map(time::timestamp);
    run.end_time = ended.map(time::timestamp);
    run.error_reason = row.try_get("error_reason").map_err(internal)?;
    run.error_message = row.try_get("error_message").map_err(internal)?;
    Ok(run)
}

/// The state key of record `id` of the claimed slice's object: project, tenant, connection,
/// object and record id, `/`-separated. Project, tenant and connection ids and model object
/// keys never contain `/`, so the prefix is unambiguous whatever the record id holds.
fn record_key(claim: &Claim, id: &str) -> String {
    format!(
        "{}/{}/{}/{}/{id}",
        claim.tenant.project_id, claim.tenant.tenant_id, claim.connection_id, claim.object
    )
}

/// Stores a page's MAP dead letters in its transaction, each replacing the tenant's earlier
/// one about the same record and field (see migration 7); within the page the last letter
/// about a record and field wins. A few statements per page, whatever the number of letters.
async fn write_map_letters(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &TenantContext,
    letters: &[DeadLetter],
    now: i64,
) -> Result<(), ApiError> {
    let mut by_key: HashMap<String, &DeadLetter> = HashMap::new();
    for letter in letters {
        let key = format!(
            "{}/{}/{}/{}",
            letter.connection_id, letter.object, letter.record_id, letter.field
        );
        by_key.insert(key, letter);
    }
    let letters: Vec<(String, &DeadLetter)> = by_key.into_iter().collect();
    let params = Params::of(tx);
    for chunk in letters.chunks(params.rows_per_statement()) {
        let statement = format!(
            "DELETE FROM dead_letters WHERE project_id = {} AND tenant_id = {}
             AND letter_key IN ({})",
            params.list(1, 1),
            params.list(2, 1),
            params.list(3, chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(tenant.project_id.as_str())
            .bind(tenant.tenant_id.as_str());
        for (key, _) in chunk {
            query = query.bind(key.as_str());
        }
        query.execute(&mut **tx).await.map_err(internal)?;
        let statement = format!(
            "INSERT INTO dead_letters (id, project_id, tenant_id, stage, connection_id, object,
                                       last_failure_at_ms, delivery_id, letter, letter_key)
             VALUES {}",
            params.rows(chunk.len(), 10)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
        for (key, letter) in chunk {
            query = query
                .bind(letter.id.as_str())
                .bind(tenant.project_id.as_str())
                .bind(tenant.tenant_id.as_str())
                .bind(letter.stage)
                .bind(letter.connection_id.as_str())
                .bind(letter.object.as_str())
                .bind(now)
                .bind(String::new())
                .bind(letter.encode_to_vec())
                .bind(key.as_str());
        }
        query.execute(&mut **tx).await.map_err(internal)?;
    }
    Ok(())
}
