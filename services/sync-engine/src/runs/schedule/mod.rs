//! Scheduled incremental runs: the manifest's `schedule`, carried by each object of the
//! connection's mapping plan (`ObjectPlan.schedule_seconds`), makes sync-engine start an
//! INCREMENTAL run of the connection's due objects by itself, with trigger
//! SYNC_TRIGGER_SCHEDULE.
//!
//! Schedules are durable rows (`sync_schedules`, [`store::ScheduleStore`]) per tenant,
//! connection and object, rewritten from the latest plan whenever a run of the connection
//! starts (whatever started it: the product's first backfill gives a connection its
//! schedules) or ends, so objects no longer scheduled in the plan lose their schedule.
//! Lifecycle events act on them too: CONNECTION_DELETED removes them, CONNECTION_NEEDS_REAUTH
//! stops them until CONNECTION_AUTHORIZED or CONNECTION_RECOVERED (then they are due at
//! once), so a connection nobody can read does not collect failing runs.
//!
//! Every sync-engine process polls (`sync_engine.runs.schedule_poll_secs`) and claims the
//! due schedules of one connection at a time with one conditional UPDATE, so processes
//! sharing the database never both start one ([`store::ScheduleStore::claim_due`]). The run
//! is started through the path `StartSyncRun` takes ([`Runner::launch`]: tenant-scoped, the
//! connection checked with auth-vault, the latest plan, the root span `sync.run`). A
//! connection with an active run (any mode) is skipped; either way the objects are due again
//! one interval (plus up to 5%, at most a minute, of jitter) later. A start that fails backs
//! off, except that a connection auth-vault or mapping no longer knows (NOT_FOUND) loses its
//! schedules and one that needs re-authorization has them stopped.

pub mod store;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use sqlx::Row;
use syncline_domain::{ApiError, TenantContext};
use syncline_proto::common::v1::{ErrorReason, Event, EventType};
use syncline_proto::mapping::v1::MappingPlan;
use syncline_proto::sync::v1::{SyncMode, SyncTrigger};
use syncline_storage::now_ms;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::Instrument;

use super::remote::{RemoteError, classify};
use super::store::RunStore;
use super::{Objects, Runner};
use store::{DueConnection, Scheduled};

/// How long a claim keeps a schedule from other processes while this one starts the run.
const CLAIM_LEASE_MS: i64 = 60_000;
/// The longest jitter added to a schedule's interval.
const MAX_JITTER_MS: i64 = 60_000;
/// The first retry after a failed start that may succeed by itself (a service was
/// unavailable), doubling with each failure in a row up to the interval.
const RETRY_BASE_MS: i64 = 5_000;
/// A start that keeps failing for a reason a retry cannot fix (no usable plan) waits this
/// many intervals at most.
const MAX_BACKOFF_INTERVALS: i64 = 16;
/// How long the end of a run waits for mapping's plan (it holds up the worker that
/// finished the run; the next start or end rewrites the schedules anyway).
const END_PLAN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The schedules a plan asks for: each object with `schedule_seconds`.
pub fn scheduled_objects(plan: &MappingPlan) -> Vec<Scheduled> {
    let mut wanted: Vec<Scheduled> = Vec::new();
    for object in &plan.objects {
        if object.schedule_seconds > 0 && wanted.iter().all(|s| s.object != object.object) {
            wanted.push(Scheduled {
                object: object.object.clone(),
                interval_ms: object.schedule_seconds.saturating_mul(1000),
            });
        }
    }
    wanted
}

/// What one claimed connection's start came to.
enum Started {
    /// A run was created.
    Run(String),
    /// The connection already had an active run.
    Busy(String),
}

impl Runner {
    /// `interval_ms` as this process runs it (divided by `sync_engine.runs.schedule_speedup`).
    fn effective_interval_ms(&self, interval_ms: i64) -> i64 {
        let speedup = i64::try_from(self.options.schedule_speedup.max(1)).unwrap_or(i64::MAX);
        (interval_ms / speedup).max(1)
    }

    /// When a schedule of `interval_ms` is next due after `now`: one interval plus a jitter
    /// of up to 5% of it (at most a minute), so connections scheduled together spread out.
    fn next_due_ms(&self, now: i64, interval_ms: i64) -> i64 {
        let interval = self.effective_interval_ms(interval_ms);
        let jitter_cap = (interval / 20).min(MAX_JITTER_MS);
        let jitter = if jitter_cap > 0 {
            rand::random_range(0..=jitter_cap)
        } else {
            0
        };
        now.saturating_add(interval).saturating_add(jitter)
    }

    /// Rewrites the connection's schedules from `plan` (see [`ScheduleStore::replace`]).
    /// Best effort: a failure is logged, and the next start or end of a run writes them
    /// again.
    ///
    /// [`ScheduleStore::replace`]: store::ScheduleStore::replace
    pub(crate) async fn write_schedules(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        plan: &MappingPlan,
    ) {
        let wanted = scheduled_objects(plan);
        let now = now_ms();
        if let Err(error) = self
            .schedules
            .replace(tenant, connection_id, &wanted, now, |interval| {
                self.next_due_ms(now, interval)
            })
            .await
        {
            tracing::warn!(
                tenant.id = %tenant.tenant_id,
                connection.id = %connection_id,
                %error,
                "failed to write the connection's schedules"
            );
        }
    }

    /// A run of the connection ended: rewrites its schedules from its latest plan (saved
    /// mappings may have changed them while it ran), also when schema drift broke some of
    /// its rules (runs leave those out; the schedules stand). A connection or plan that is gone
    /// (NOT_FOUND) loses them; other failures leave them as they are.
    pub(crate) async fn on_run_ended(&self, tenant: &TenantContext, connection_id: &str) {
        let fetched = tokio::time::timeout(
            END_PLAN_TIMEOUT,
            self.remote
                .fetch_plan_including_broken(tenant, connection_id, 0),
        )
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("mapping did not answer in time")));
        match fetched {
            Ok(plan) => self.write_schedules(tenant, connection_id, &plan).await,
            Err(status) if status.code() == tonic::Code::NotFound => {
                self.drop_schedules(tenant, connection_id, status.message())
                    .await;
            }
            Err(status) => tracing::debug!(
                tenant.id = %tenant.tenant_id,
                connection.id = %connection_id,
                code = ?status.code(),
                "schedules not rewritten at the end of a run: the plan could not be read"
            ),
        }
    }

    async fn drop_schedules(&self, tenant: &TenantContext, connection_id: &str, why: &str) {
        match self
            .schedules
            .remove_connection(tenant, connection_id)
            .await
        {
            Ok(removed) if removed > 0 => tracing::warn!(
                tenant.id = %tenant.tenant_id,
                connection.id = %connection_id,
                removed,
                why,
                "removed the connection's schedules"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(
                tenant.id = %tenant.tenant_id,
                connection.id = %connection_id,
                %error,
                "failed to remove the connection's schedules"
            ),
        }
    }

    /// Acts on a lifecycle event for the schedules: CONNECTION_DELETED removes the
    /// connection's, CONNECTION_NEEDS_REAUTH stops them, CONNECTION_AUTHORIZED and
    /// CONNECTION_RECOVERED restart stopped ones (due at once). Best effort, logged.
    pub(crate) async fn on_schedule_event(&self, tenant: &TenantContext, event: &Event) {
        let connection = event.connection_id.as_str();
        if connection.is_empty() {
            return;
        }
        let result = match EventType::try_from(event.r#type) {
            Ok(EventType::ConnectionDeleted) => {
                self.drop_schedules(tenant, connection, "the connection was deleted")
                    .await;
                return;
            }
            Ok(EventType::ConnectionNeedsReauth) => {
                self.schedules
                    .suspend(tenant, connection, true, now_ms())
                    .await
            }
            Ok(EventType::ConnectionAuthorized | EventType::ConnectionRecovered) => {
                self.schedules
                    .suspend(tenant, connection, false, now_ms())
                    .await
            }
            _ => return,
        };
        match result {
            Ok(changed) => tracing::info!(
                tenant.id = %tenant.tenant_id,
                connection.id = %connection,
                event.id = %event.id,
                changed,
                "connection schedules follow its lifecycle event"
            ),
            Err(error) => tracing::warn!(
                tenant.id = %tenant.tenant_id,
                connection.id = %connection,
                event.id = %event.id,
                %error,
                "failed to apply a lifecycle event to the connection's schedules"
            ),
        }
    }

    /// Spawns this process's scheduler: every `sync_engine.runs.schedule_poll_secs` it starts
    /// the runs that are due. It stops with `shutdown` (not waited for: a claim it leaves
    /// behind is due again after its lease) and a failed pass never stops the process.
    pub fn spawn_scheduler(self: &Arc<Self>, shutdown: &CancellationToken) {
        let runner = Arc::clone(self);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(runner.options.schedule_poll) => {}
                }
                if let Err(error) = runner.run_due_schedules(&shutdown).await {
                    tracing::warn!(%error, "a scheduler pass failed");
                }
            }
        });
    }

    /// Claims and starts every connection whose schedules were due when the pass began
    /// (what it reschedules is not due again within the pass); returns how many connections
    /// it claimed.
    pub async fn run_due_schedules(&self, shutdown: &CancellationToken) -> Result<u64, ApiError> {
        let mut claimed = 0;
        let pass = now_ms();
        while !shutdown.is_cancelled() {
            let Some(due) = self
                .schedules
                .claim_due(pass, now_ms(), CLAIM_LEASE_MS)
                .await?
            else {
                break;
            };
            claimed += 1;
            let span = tracing::info_span!(
                "sync.schedule",
                tenant.id = %due.tenant.tenant_id,
                project.id = %due.tenant.project_id,
                connection.id = %due.connection_id,
                objects = due.objects.len(),
            );
            self.start_scheduled(&due).instrument(span).await;
        }
        Ok(claimed)
    }

    /// Starts the claimed connection's run (unless it has one) and sets when its objects
    /// are due next.
    async fn start_scheduled(&self, due: &DueConnection) {
        let outcome = self.try_start_scheduled(due).await;
        let now = now_ms();
        let next = |failures: i32, scheduled: &Scheduled| -> i64 {
            let interval = self.effective_interval_ms(scheduled.interval_ms);
            let doubling = 1_i64 << failures.clamp(0, 20);
            match &outcome {
                Ok(_) => self.next_due_ms(now, scheduled.interval_ms),
                Err(RemoteError::Transient(_)) => {
                    now + RETRY_BASE_MS.saturating_mul(doubling).min(interval)
                }
                Err(_) => now + interval.saturating_mul(doubling.min(MAX_BACKOFF_INTERVALS)),
            }
        };
        let failures = match &outcome {
            Ok(Started::Run(run)) => {
                tracing::info!(sync_run.id = %run, "scheduled run started");
                0
            }
            Ok(Started::Busy(run)) => {
                tracing::info!(
                    sync_run.id = %run,
                    "scheduled run skipped: the connection has an active run"
                );
                0
            }
            Err(RemoteError::Permanent(ErrorReason::NotFound, message)) => {
                self.drop_schedules(&due.tenant, &due.connection_id, message)
                    .await;
                return;
            }
            Err(RemoteError::NeedsReauth(message)) => {
                tracing::warn!(
                    tenant.id = %due.tenant.tenant_id,
                    %message,
                    "scheduled run not started: the connection needs re-authorization; its schedules wait for it"
                );
                if let Err(error) = self
                    .schedules
                    .suspend(&due.tenant, &due.connection_id, true, now)
                    .await
                {
                    tracing::warn!(tenant.id = %due.tenant.tenant_id, %error, "failed to stop the connection's schedules");
                }
                return;
            }
            Err(RemoteError::Permanent(reason, message)) => {
                tracing::warn!(
                    tenant.id = %due.tenant.tenant_id,
                    reason = reason.as_str_name(),
                    %message,
                    failures = due.failures + 1,
                    "scheduled run not started; backing off"
                );
                due.failures.saturating_add(1)
            }
            Err(RemoteError::Transient(status)) => {
                tracing::warn!(
                    tenant.id = %due.tenant.tenant_id,
                    code = ?status.code(),
                    message = status.message(),
                    failures = due.failures + 1,
                    "scheduled run not started; will retry"
                );
                due.failures.saturating_add(1)
            }
        };
        for scheduled in &due.objects {
            let at = next(due.failures, scheduled);
            if let Err(error) = self
                .schedules
                .reschedule(due, &scheduled.object, at, failures, now)
                .await
            {
                tracing::warn!(
                    tenant.id = %due.tenant.tenant_id,
                    object = %scheduled.object,
                    %error,
                    "failed to set when a schedule is due next; it is due again after its claim"
                );
            }
        }
    }

    async fn try_start_scheduled(&self, due: &DueConnection) -> Result<Started, RemoteError> {
        let active = self
            .store
            .any_active_run(&due.tenant, &due.connection_id)
            .await
            .map_err(|e| RemoteError::Transient(Status::from(e)))?;
        if let Some(run) = active {
            return Ok(Started::Busy(run));
        }
        let objects: Vec<String> = due.objects.iter().map(|s| s.object.clone()).collect();
        let (run, created) = self
            .launch(
                &due.tenant,
                &due.connection_id,
                SyncMode::Incremental,
                Objects::Scheduled(&objects),
                SyncTrigger::Schedule,
            )
            .await
            .map_err(|status| classify(status, "scheduled run"))?;
        Ok(if created {
            Started::Run(run.id)
        } else {
            Started::Busy(run.id)
        })
    }
}

impl RunStore {
    /// The id of one of the tenant's active (pending, running or paused) runs of
    /// `connection_id`, in any mode.
    pub async fn any_active_run(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<Option<String>, ApiError> {
        let row = sqlx::query(
            "SELECT id FROM sync_runs
             WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3 AND active = 1
             LIMIT 1",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .fetch_optional(self.database().pool())
        .await
        .map_err(ApiError::internal)?;
        row.map(|r| r.try_get::<String, _>("id").map_err(ApiError::internal))
            .transpose()
    }
}
