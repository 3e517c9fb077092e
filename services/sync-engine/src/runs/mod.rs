//! Sync runs: started, paused, resumed and cancelled through the API, worked by a bounded
//! pool of workers over a durable queue shared by every sync-engine process on the database.
//!
//! A run is one read of some of a connection's mapped objects. It is stored as a row of
//! `sync_runs` plus one *slice* per object (`sync_slices`): the object's cursor and counts,
//! and a lease. A worker claims a slice for one turn of pages (see [`store::RunStore::claim`]
//! for the fair order and per-tenant cap, `sync_engine.runs.turn_ms` for the turn), and
//! commits each page's changes, record state, cursor and counts in one transaction
//! ([`store::RunStore::commit_page`]); a process killed at any point
//! leaves either the whole page or none of it, and its lease runs out so another worker (or
//! the restarted process) reads the page again. A replayed page publishes nothing new: each
//! record's content hash is kept, and a record whose mapped content is unchanged counts as
//! `records_unchanged` instead of becoming a change.

mod reauth;
pub mod remote;
pub mod schedule;
pub mod store;
pub mod worker;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use syncline_domain::{ApiError, TenantContext, Violation, ids};
use syncline_proto::sync::v1::{StartSyncRunRequest, SyncMode, SyncRun, SyncRunState, SyncTrigger};
use syncline_service_kit::client::ServiceCaller;
use syncline_service_kit::time;
use syncline_storage::{Database, now_ms};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::changelog::ChangeLog;
use remote::Remote;
use store::{NewRun, NewSlice, RunStore};

/// The states a run can still be paused or cancelled from.
const ACTIVE: [SyncRunState; 3] = [
    SyncRunState::Pending,
    SyncRunState::Running,
    SyncRunState::Paused,
];

/// How runs are worked (from `sync_engine.runs`).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub workers: usize,
    pub per_tenant_concurrency: u32,
    pub page_size: u32,
    pub lease: Duration,
    pub poll_interval_ms: u64,
    pub daily_quota_share_percent: u32,
    /// How long a worker keeps a slice for consecutive pages (see `sync_engine.runs.turn_ms`).
    pub turn: Duration,
    /// Retry waits after retryable provider failures.
    pub backoff: syncline_connectors::Backoff,
    /// The per-connection circuit breaker.
    pub breaker: syncline_connectors::BreakerConfig,
    /// The tenant's share of its daily quota, and the provider's short window.
    pub budget: syncline_connectors::QuotaBudget,
    /// How often the scheduler looks for due schedules (`sync_engine.runs.schedule_poll_secs`).
    pub schedule_poll: Duration,
    /// Divides every schedule's interval (`sync_engine.runs.schedule_speedup`; 1 in
    /// production).
    pub schedule_speedup: u64,
    /// How long a cached mapping plan is used before mapping is asked about it again
    /// (`sync_engine.runs.plan_check_secs`).
    pub plan_check: Duration,
    /// Whether changes keep the provider record (`sync_engine.runs.keep_provider_records`).
    pub keep_provider_records: bool,
}

impl RunOptions {
    /// The options `config` sets.
    pub fn from_config(config: &syncline_config::SyncRunsConfig) -> Self {
        Self {
            workers: config.workers,
            per_tenant_concurrency: config.per_tenant_concurrency,
            page_size: config.page_size,
            lease: Duration::from_secs(config.lease_secs),
            poll_interval_ms: config.poll_interval_ms,
            daily_quota_share_percent: config.daily_quota_share_percent,
            turn: Duration::from_millis(config.turn_ms),
            backoff: syncline_connectors::Backoff {
                base: Duration::from_millis(500),
                cap: Duration::from_secs(config.max_backoff_secs),
            },
            breaker: syncline_connectors::BreakerConfig {
                failure_threshold: 5,
                cool_down: Duration::from_secs(config.breaker_cool_down_secs),
                max_cool_down: Duration::from_secs(config.breaker_cool_down_secs.max(900)),
            },
            budget: syncline_connectors::QuotaBudget {
                share: f64::from(config.daily_quota_share_percent) / 100.0,
                min_pause: Duration::from_secs(config.quota_pause_secs),
                window_reserve: 1,
            },
            schedule_poll: Duration::from_secs(config.schedule_poll_secs),
            schedule_speedup: config.schedule_speedup,
            plan_check: Duration::from_secs(config.plan_check_secs),
            keep_provider_records: config.keep_provider_records,
        }
    }
}

/// Which objects a start reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Objects<'a> {
    /// The request's objects, every object of the plan when empty; one the plan does not
    /// have is INVALID_ARGUMENT.
    Requested(&'a [String]),
    /// Due scheduled objects; those the latest plan no longer schedules are left out.
    Scheduled(&'a [String]),
}

/// Starts runs and works them.
#[derive(Debug)]
pub struct Runner {
    store: RunStore,
    schedules: schedule::store::ScheduleStore,
    log: ChangeLog,
    http: reqwest::Client,
    remote: Remote,
    options: RunOptions,
    /// This process's lease holder name.
    holder: String,
    wake: Notify,
    /// Per connection: the circuit breaker.
    breakers: Mutex<HashMap<String, syncline_connectors::CircuitBreaker>>,
}

impl Runner {
    /// A runner over `db` whose changes go to `log`, calling auth-vault, mapping and
    /// schema-discovery as `caller`, and CRMs with `http`.
    pub fn new(
        db: Database,
        log: ChangeLog,
        http: reqwest::Client,
        caller: ServiceCaller,
        channels: remote::Channels,
        options: RunOptions,
    ) -> Self {
        Self {
            schedules: schedule::store::ScheduleStore::new(db.clone()),
            store: RunStore::new(db),
            log,
            http,
            remote: Remote::new(caller, channels, options.plan_check),
            options,
            holder: ids::new_resource_id("worker"),
            wake: Notify::new(),
            breakers: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &RunStore {
        &self.store
    }

    /// Spawns the configured number of workers; they stop with `shutdown` (between pages:
    /// a page in flight is not waited for, and its lease lets another process redo it).
    pub fn spawn_workers(self: &Arc<Self>, shutdown: &CancellationToken) {
        for _ in 0..self.options.workers {
            tokio::spawn(self.clone().work(shutdown.clone()));
        }
    }

    /// Wakes idle workers (a run was started or resumed).
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// Starts a run, or returns the connection's active run in the same mode
    /// (`created = false`).
    pub async fn start(
        &self,
        tenant: &TenantContext,
        request: StartSyncRunRequest,
    ) -> Result<(SyncRun, bool), Status> {
        let mut violations = Vec::new();
        if request.connection_id.is_empty() {
            violations.push(Violation::required("connection_id"));
        }
        let mode = match SyncMode::try_from(request.mode) {
            Ok(SyncMode::Unspecified) => SyncMode::Incremental,
            Ok(mode) => mode,
            Err(_) => {
                violations.push(Violation::new(
                    "mode",
                    "INVALID_ENUM",
                    "must be SYNC_MODE_INCREMENTAL or SYNC_MODE_BACKFILL",
                ));
                SyncMode::Incremental
            }
        };
        for (i, object) in request.objects.iter().enumerate() {
            if object.is_empty() {
                violations.push(Violation::new(
                    format!("objects[{i}]"),
                    "EMPTY",
                    "must not be empty",
                ));
            }
        }
        if !violations.is_empty() {
            return Err(ApiError::invalid(violations).into());
        }
        self.launch(
            tenant,
            &request.connection_id,
            mode,
            Objects::Requested(&request.objects),
            SyncTrigger::Manual,
        )
        .await
    }

    /// Starts a run of `connection` in `mode` for `objects` with `trigger`, or returns the
    /// connection's active run in the same mode (`created = false`): the one path of
    /// `StartSyncRun` and the scheduler. Writes the connection's schedules from the plan it
    /// fetched. A scheduled start's NOT_FOUND from mapping (no plan) stays NOT_FOUND.
    pub(crate) async fn launch(
        &self,
        tenant: &TenantContext,
        connection: &str,
        mode: SyncMode,
        objects: Objects<'_>,
        trigger: SyncTrigger,
    ) -> Result<(SyncRun, bool), Status> {
        if let Some(run) = self.active(tenant, connection, mode).await? {
            return Ok((run, false));
        }
        // The connection must exist, be the tenant's and be usable.
        self.remote.fetch_token(tenant, connection).await?;
        // A plan schema drift broke still starts: the workers leave its broken rules out
        // and the run's progress names the fields.
        let plan = self
            .remote
            .fetch_plan_including_broken(tenant, connection, 0)
            .await
            .map_err(|status| {
                if status.code() == tonic::Code::NotFound
                    && matches!(objects, Objects::Requested(_))
                {
                    Status::from(ApiError::new(
                        syncline_domain::ErrorCode::FailedPrecondition,
                        "the connection has no mapping plan; save its field mappings first",
                    ))
                } else {
                    status
                }
            })?;
        self.write_schedules(tenant, connection, &plan).await;
        let mut slices = Vec::new();
        let wanted: Vec<&str> = match objects {
            Objects::Requested([]) => plan.objects.iter().map(|o| o.object.as_str()).collect(),
            Objects::Requested(named) => named.iter().map(String::as_str).collect(),
            Objects::Scheduled(due) => due
                .iter()
                .map(String::as_str)
                .filter(|object| {
                    plan.objects
                        .iter()
                        .any(|o| o.object == *object && o.schedule_seconds > 0)
                })
                .collect(),
        };
        let mut violations = Vec::new();
        let checkpoints = if mode == SyncMode::Incremental {
            self.store.checkpoints(tenant, connection).await?
        } else {
            HashMap::new()
        };
        for (i, object) in wanted.iter().enumerate() {
            match plan.objects.iter().find(|o| o.object == *object) {
                Some(o) if slices.iter().all(|s: &NewSlice| s.object != o.object) => {
                    slices.push(NewSlice {
                        object: o.object.clone(),
                        provider_object: o.provider_object.clone(),
                        cursor: checkpoints.get(&o.object).cloned().unwrap_or_default(),
                    });
                }
                Some(_) => {}
                None => violations.push(Violation::new(
                    format!("objects[{i}]"),
                    "NOT_IN_PLAN",
                    "is not an enabled object of the connection's mapping plan",
                )),
            }
        }
        if !violations.is_empty() {
            return Err(ApiError::invalid(violations).into());
        }
        if slices.is_empty() {
            return Err(ApiError::new(
                syncline_domain::ErrorCode::FailedPrecondition,
                match objects {
                    Objects::Requested(_) => "the connection's mapping plan has no enabled objects",
                    Objects::Scheduled(_) => {
                        "the connection's mapping plan no longer schedules the due objects"
                    }
                },
            )
            .into());
        }
        let id = ids::new_resource_id("run");
        // The run's root span: every page's span joins its trace.
        let root = tracing::info_span!(
            parent: None,
            "sync.run",
            tenant.id = %tenant.tenant_id,
            project.id = %tenant.project_id,
            connection.id = %connection,
            sync_run.id = %id,
            trigger = trigger.as_str_name(),
        );
        let (trace_id, trace_parent) = root.in_scope(|| {
            let mut headers = tonic::codegen::http::HeaderMap::new();
            syncline_telemetry::propagation::inject_current(&mut headers);
            let parent = headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (
                syncline_telemetry::current_trace_id().unwrap_or_default(),
                parent,
            )
        });
        root.in_scope(|| {
            tracing::info!(
                mode = mode.as_str_name(),
                objects = slices.len(),
                "sync run started"
            )
        });
        let now = now_ms();
        let run = SyncRun {
            id: id.clone(),
            connection_id: connection.to_owned(),
            mode: mode as i32,
            trigger: trigger as i32,
            state: SyncRunState::Pending as i32,
            objects: slices.iter().map(|s| s.object.clone()).collect(),
            plan_version: plan.plan_version,
            trace_id,
            create_time: Some(time::timestamp(now)),
            ..SyncRun::default()
        };
        let inserted = self
            .store
            .insert_run(
                tenant,
                &NewRun {
                    run,
                    slices,
                    trace_parent,
                    created_at_ms: now,
                },
            )
            .await?;
        if !inserted && let Some(run) = self.active(tenant, connection, mode).await? {
            return Ok((run, false));
        }
        self.wake();
        let run = self
            .get(tenant, &id)
            .await?
            .ok_or_else(|| ApiError::internal("a started run is missing"))?;
        Ok((run, true))
    }

    async fn active(
        &self,
        tenant: &TenantContext,
        connection: &str,
        mode: SyncMode,
    ) -> Result<Option<SyncRun>, ApiError> {
        match self
            .store
            .active_run(tenant, connection, mode as i32)
            .await?
        {
            Some(id) => self.get(tenant, &id).await,
            None => Ok(None),
        }
    }

    /// One of the tenant's runs with its progress.
    pub async fn get(&self, tenant: &TenantContext, id: &str) -> Result<Option<SyncRun>, ApiError> {
        crate::store::Store::new(self.store.database().clone())
            .sync_run(tenant, id)
            .await
    }

    /// Pauses an active run (a paused run stays paused).
    pub async fn pause(&self, tenant: &TenantContext, id: &str) -> Result<SyncRun, Status> {
        self.transition(tenant, id, &ACTIVE, SyncRunState::Paused, &[])
            .await
    }

    /// Puts a paused run back in the queue (a running one is left as it is).
    pub async fn resume(&self, tenant: &TenantContext, id: &str) -> Result<SyncRun, Status> {
        self.transition(
            tenant,
            id,
            &[SyncRunState::Paused],
            SyncRunState::Pending,
            &[SyncRunState::Running],
        )
        .await
    }

    /// Cancels an active run (a cancelled run stays cancelled).
    pub async fn cancel(&self, tenant: &TenantContext, id: &str) -> Result<SyncRun, Status> {
        let run = self
            .transition(tenant, id, &ACTIVE, SyncRunState::Cancelled, &[])
            .await?;
        self.on_run_ended(tenant, &run.connection_id).await;
        Ok(run)
    }

    /// Moves the tenant's run `id` from one of `from` to `to` (no change when it is
    /// already in `to` or one of `settled` and not in `from`); NOT_FOUND when the tenant has
    /// no such run, FAILED_PRECONDITION when it is in another state.
    async fn transition(
        &self,
        tenant: &TenantContext,
        id: &str,
        from: &[SyncRunState],
        to: SyncRunState,
        settled: &[SyncRunState],
    ) -> Result<SyncRun, Status> {
        if id.is_empty() {
            return Err(ApiError::invalid(vec![Violation::required("sync_run_id")]).into());
        }
        let current = self
            .get(tenant, id)
            .await?
            .ok_or_else(|| ApiError::not_found("sync run"))?;
        let is_settled =
            |state: i32| state == to as i32 || settled.iter().any(|s| *s as i32 == state);
        let from: Vec<i32> = from.iter().map(|s| *s as i32).collect();
        // A state listed in `from` is moved even when it equals `to` (pausing a run the
        // budget paused makes it wait for ResumeSyncRun instead of resuming by itself).
        if from.contains(&current.state) || !is_settled(current.state) {
            if !self
                .store
                .transition(tenant, id, &from, to as i32, now_ms())
                .await?
            {
                let now = self
                    .get(tenant, id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("sync run"))?;
                if !is_settled(now.state) {
                    return Err(ApiError::new(
                        syncline_domain::ErrorCode::FailedPrecondition,
                        format!(
                            "the run is {}",
                            SyncRunState::try_from(now.state)
                                .map(|s| s.as_str_name())
                                .unwrap_or("in an unknown state")
                        ),
                    )
                    .into());
                }
            }
            if to == SyncRunState::Pending {
                self.wake();
            }
        }
        Ok(self
            .get(tenant, id)
            .await?
            .ok_or_else(|| ApiError::not_found("sync run"))?)
    }
}
