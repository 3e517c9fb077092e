//! Lifecycle events (CONNECTION_AUTHORIZED, CONNECTION_NEEDS_REAUTH, CONNECTION_RECOVERED)
//! through a durable outbox.
//!
//! The event is written to `outbox` in the same transaction as the connection's status
//! change, so a status the product must hear about is never stored without its event. A
//! background publisher sends due events to sync-engine's internal
//! `IntakeService.PublishLifecycleEvent` (which puts them on the tenant's event log,
//! streams and webhooks) and deletes them once accepted. Any failure — sync-engine down,
//! or UNIMPLEMENTED while its intake is not built — keeps the event and retries it later
//! with back-off: delivery is at least once, and the event id (the outbox row id) is
//! stable, so sync-engine dedupes retries.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use sqlx::Row;
use syncline_domain::{ApiError, ProjectId, TenantContext, TenantId};
use syncline_proto::authvault::v1::Connection;
use syncline_proto::common::v1::{ErrorReason, Event, EventType};
use syncline_proto::sync::v1::PublishLifecycleEventRequest;
use syncline_proto::sync::v1::intake_service_client::IntakeServiceClient;
use syncline_service_kit::client::ServiceCaller;
use syncline_service_kit::time;
use syncline_storage::{Database, now_ms};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Events claimed per publishing pass.
const BATCH: i64 = 100;
/// The longest wait between two attempts of one event.
const MAX_BACKOFF_MS: i64 = 5 * 60 * 1000;
/// How long a publisher owns the events it claimed.
const LEASE_MS: i64 = 60_000;
/// How often the publisher looks for due events when nothing wakes it.
const POLL: Duration = Duration::from_secs(5);

/// A lifecycle event about `connection`, to be written with its status change.
pub fn event(
    kind: EventType,
    connection: &Connection,
    reason: ErrorReason,
    message: &str,
) -> Event {
    Event {
        id: syncline_domain::ids::new_resource_id("evt"),
        sequence: 0,
        r#type: kind as i32,
        occur_time: Some(time::timestamp(now_ms())),
        connection_id: connection.id.clone(),
        provider: connection.provider,
        reason: reason as i32,
        message: message.to_owned(),
        trace_id: syncline_telemetry::current_trace_id().unwrap_or_default(),
        ..Event::default()
    }
}

/// The event a connection becoming ACTIVE from `previous` deserves, if any: its first
/// authorization (or import) when it was pending, its recovery when it needed
/// re-authorization; nothing for a connection that was working already.
pub fn on_activation(connection: &Connection, previous: i32) -> Option<Event> {
    use syncline_proto::common::v1::ConnectionStatus;
    match ConnectionStatus::try_from(previous) {
        Ok(ConnectionStatus::PendingAuthorization) => Some(event(
            EventType::ConnectionAuthorized,
            connection,
            ErrorReason::Unspecified,
            "the connection was authorized",
        )),
        Ok(ConnectionStatus::NeedsReauth) => Some(event(
            EventType::ConnectionRecovered,
            connection,
            ErrorReason::Unspecified,
            "the connection was authorized again and works",
        )),
        Ok(
            ConnectionStatus::Active
            | ConnectionStatus::Degraded
            | ConnectionStatus::Disabled
            | ConnectionStatus::Unspecified,
        )
        | Err(_) => None,
    }
}

/// Writes `event` to the outbox inside the caller's transaction.
pub async fn insert(
    tx: &mut sqlx::AnyConnection,
    tenant: &TenantContext,
    event: &Event,
) -> Result<(), ApiError> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO outbox
             (id, project_id, tenant_id, connection_id, event, attempts, next_attempt_at_ms,
              lease_owner, lease_until_ms, last_error, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, 0, $6, '', 0, '', $6)",
    )
    .bind(&event.id)
    .bind(tenant.project_id.as_str())
    .bind(tenant.tenant_id.as_str())
    .bind(&event.connection_id)
    .bind(event.encode_to_vec())
    .bind(now)
    .execute(tx)
    .await
    .map_err(ApiError::internal)?;
    Ok(())
}

/// What one publishing pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Accepted by sync-engine and removed from the outbox.
    pub published: u64,
    /// Kept for a later attempt.
    pub deferred: u64,
    /// The pass took a full batch: more may be due at once.
    pub more: bool,
}

/// Publishes the outbox to sync-engine.
#[derive(Debug, Clone)]
pub struct Publisher {
    db: Database,
    caller: ServiceCaller,
    client: IntakeServiceClient<tonic::transport::Channel>,
    wake: Arc<Notify>,
    owner: String,
}

impl Publisher {
    /// Publishes through `channel` (sync-engine), woken by `wake` when events are written.
    pub fn new(
        db: Database,
        caller: ServiceCaller,
        channel: tonic::transport::Channel,
        wake: Arc<Notify>,
        owner: String,
    ) -> Self {
        Self {
            db,
            caller,
            client: IntakeServiceClient::new(channel),
            wake,
            owner,
        }
    }

    /// Publishes until `shutdown`: after every wake-up, and every few seconds for retries.
    /// Shutdown does not wait for it; a failed pass is logged and retried, never fatal.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let outcome = self.pass(now_ms()).await;
            match &outcome {
                Ok(report) if report.published > 0 || report.deferred > 0 => {
                    tracing::debug!(
                        published = report.published,
                        deferred = report.deferred,
                        "lifecycle outbox pass"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "lifecycle outbox pass failed"),
            }
            if matches!(&outcome, Ok(report) if report.more && report.published > 0) {
                // A full batch went out: the next one may be due already.
                if shutdown.is_cancelled() {
                    return;
                }
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Events still in the outbox (every tenant's), for tests and operators.
    pub async fn pending(&self) -> Result<i64, ApiError> {
        let row = sqlx::query("SELECT COUNT(*) FROM outbox")
            .fetch_one(self.db.pool())
            .await
            .map_err(ApiError::internal)?;
        row.try_get::<i64, _>(0).map_err(ApiError::internal)
    }

    /// One pass at time `now`: claims the events due, publishes each, removes the accepted
    /// ones and schedules the others again.
    pub async fn pass(&self, now: i64) -> Result<PassReport, ApiError> {
        // The one cross-tenant read: which events are due. Every statement on an event
        // after it names its project and tenant.
        let rows = sqlx::query(
            "SELECT id, project_id, tenant_id, event, attempts FROM outbox
             WHERE next_attempt_at_ms <= $1 AND lease_until_ms < $1
             ORDER BY next_attempt_at_ms, id LIMIT $2",
        )
        .bind(now)
        .bind(BATCH)
        .fetch_all(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        let mut report = PassReport {
            more: i64::try_from(rows.len()).unwrap_or(0) >= BATCH,
            ..PassReport::default()
        };
        for row in rows {
            let id: String = row.try_get("id").map_err(ApiError::internal)?;
            let project: String = row.try_get("project_id").map_err(ApiError::internal)?;
            let tenant: String = row.try_get("tenant_id").map_err(ApiError::internal)?;
            let attempts: i32 = row.try_get("attempts").map_err(ApiError::internal)?;
            let bytes: Vec<u8> = row.try_get("event").map_err(ApiError::internal)?;
            let claimed = sqlx::query(
                "UPDATE outbox SET lease_owner = $4, lease_until_ms = $5
                 WHERE project_id = $1 AND tenant_id = $2 AND id = $3 AND lease_until_ms < $6",
            )
            .bind(&project)
            .bind(&tenant)
            .bind(&id)
            .bind(&self.owner)
            .bind(now + LEASE_MS)
            .bind(now)
            .execute(self.db.pool())
            .await
            .map_err(ApiError::internal)?;
            if claimed.rows_affected() != 1 {
                continue;
            }
            let context = TenantContext {
                project_id: ProjectId::parse(project.clone()).map_err(ApiError::internal)?,
                tenant_id: TenantId::parse(tenant.clone()).map_err(ApiError::internal)?,
                subject: "auth-vault".into(),
            };
            let event = Event::decode(bytes.as_slice()).map_err(ApiError::internal)?;
            let outcome = match self.caller.request(
                &context,
                PublishLifecycleEventRequest { event: Some(event) },
            ) {
                Ok(request) => self.client.clone().publish_lifecycle_event(request).await,
                Err(status) => Err(status),
            };
            match outcome {
                Ok(_) => {
                    sqlx::query(
                        "DELETE FROM outbox WHERE project_id = $1 AND tenant_id = $2 AND id = $3",
                    )
                    .bind(&project)
                    .bind(&tenant)
                    .bind(&id)
                    .execute(self.db.pool())
                    .await
                    .map_err(ApiError::internal)?;
                    report.published += 1;
                }
                Err(status) => {
                    // UNIMPLEMENTED (intake not built yet) and UNAVAILABLE alike: later.
                    let attempts = attempts.saturating_add(1);
                    let delay = (1000_i64 << attempts.clamp(0, 20)).min(MAX_BACKOFF_MS);
                    let code = format!("{:?}", status.code());
                    if status.code() == tonic::Code::Unimplemented {
                        tracing::debug!(event.id = %id, "sync-engine does not take lifecycle events yet; kept");
                    } else {
                        tracing::warn!(event.id = %id, grpc.code = %code, "lifecycle event not published; kept");
                    }
                    sqlx::query(
                        "UPDATE outbox SET attempts = $4, next_attempt_at_ms = $5,
                             lease_owner = '', lease_until_ms = 0, last_error = $6
                         WHERE project_id = $1 AND tenant_id = $2 AND id = $3",
                    )
                    .bind(&project)
                    .bind(&tenant)
                    .bind(&id)
                    .bind(attempts)
                    .bind(now + delay)
                    .bind(code)
                    .execute(self.db.pool())
                    .await
                    .map_err(ApiError::internal)?;
                    report.deferred += 1;
                }
            }
        }
        Ok(report)
    }
}
