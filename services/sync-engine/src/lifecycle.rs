//! The tenant's lifecycle event log: `IntakeService.PublishLifecycleEvent` appends to it,
//! `SyncService.StreamLifecycleEvents` and LIFECYCLE_EVENTS webhooks deliver it.
//!
//! Sequences are allocated like the change log's, from a per-tenant counter row
//! (`tenant_event_sequences`) updated in the publish's transaction, so on PostgreSQL
//! publishers for one tenant serialise on that row and commit in sequence order. A publish is
//! idempotent on the event id: under the counter row's lock it first looks the id up, and a
//! retry gets the stored event back without a new sequence or new deliveries. The webhook
//! deliveries are queued in the same transaction.

use std::sync::Arc;

use prost::Message;
use sqlx::Row;
use syncline_domain::{ApiError, TenantContext, Violation, ids};
use syncline_proto::common::v1::{Event, EventType};
use syncline_proto::sync::v1::StreamLifecycleEventsResponse;
use syncline_service_kit::time;
use syncline_storage::{Database, now_ms};
use tokio::sync::{Notify, watch};

use crate::changelog::stream::Source;
use crate::changelog::{Head, Notifier, placeholders, prune_log, read_head, to_i64, to_u64};
use crate::delivery::outbox;

/// The longest event id, connection id or object accepted.
const MAX_ID: usize = 128;
/// The longest message accepted.
const MAX_MESSAGE: usize = 4096;

/// What a publish did.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The event as stored, with its id and sequence.
    pub event: Event,
    /// The id was published before: `event` is the earlier one and nothing was added.
    pub duplicate: bool,
    /// Webhook deliveries queued.
    pub deliveries: usize,
}

/// Which events a reader wants.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only these types, when not empty.
    pub event_types: Vec<i32>,
    /// Only these connections, when not empty.
    pub connection_ids: Vec<String>,
}

/// The lifecycle event log over the service's database.
#[derive(Debug, Clone)]
pub struct EventLog {
    db: Database,
    notifier: Arc<Notifier>,
    delivery_wake: Arc<Notify>,
}

fn too_long(field: &str, value: &str, max: usize, violations: &mut Vec<Violation>) {
    if value.len() > max {
        violations.push(Violation::new(
            field,
            "TOO_LONG",
            format!("at most {max} bytes"),
        ));
    }
}

/// Checks an event to publish.
pub fn validate(event: &Event) -> Result<(), ApiError> {
    let mut violations = Vec::new();
    if matches!(
        EventType::try_from(event.r#type),
        Ok(EventType::Unspecified) | Err(_)
    ) {
        violations.push(Violation::new(
            "event.type",
            "INVALID_ENUM",
            "must be an event type other than EVENT_TYPE_UNSPECIFIED",
        ));
    }
    if !event
        .id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        violations.push(Violation::new(
            "event.id",
            "INVALID_FORMAT",
            "letters, digits, '_' and '-' only",
        ));
    }
    too_long("event.id", &event.id, MAX_ID, &mut violations);
    too_long(
        "event.connection_id",
        &event.connection_id,
        MAX_ID,
        &mut violations,
    );
    too_long("event.object", &event.object, MAX_ID, &mut violations);
    too_long(
        "event.message",
        &event.message,
        MAX_MESSAGE,
        &mut violations,
    );
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(violations))
    }
}

fn decode(row: &sqlx::any::AnyRow) -> Result<Event, ApiError> {
    let bytes: Vec<u8> = row.try_get("event").map_err(ApiError::internal)?;
    Event::decode(bytes.as_slice()).map_err(ApiError::internal)
}

impl EventLog {
    /// The log over `db`; publishes wake `notifier`'s readers and `delivery_wake`.
    pub fn new(db: Database, notifier: Arc<Notifier>, delivery_wake: Arc<Notify>) -> Self {
        Self {
            db,
            notifier,
            delivery_wake,
        }
    }

    /// Subscribes to this process's publishes for `tenant`.
    pub fn subscribe(&self, tenant: &TenantContext) -> watch::Receiver<u64> {
        self.notifier.subscribe(tenant)
    }

    /// Appends `event` to the tenant's log with the next sequence (an `id` when it has none,
    /// the publish time as `occur_time` when it has none) and queues its webhook deliveries,
    /// in one transaction. An event whose id the tenant's log already holds is not added
    /// again: the stored one comes back with `duplicate`.
    pub async fn publish(
        &self,
        tenant: &TenantContext,
        mut event: Event,
    ) -> Result<Published, ApiError> {
        validate(&event)?;
        if event.id.is_empty() {
            event.id = ids::new_resource_id("evt");
        }
        let now = now_ms();
        if event.occur_time.is_none() {
            event.occur_time = Some(time::timestamp(now));
        }
        let mut tx = self.db.pool().begin().await.map_err(ApiError::internal)?;
        // The write comes first, so SQLite takes its write lock at once and PostgreSQL locks
        // the tenant's counter row until commit: the id lookup below cannot race a publish
        // of the same id.
        let last: i64 = sqlx::query(
            "INSERT INTO tenant_event_sequences (project_id, tenant_id, last_sequence, pruned_through)
             VALUES ($1, $2, 0, 0)
             ON CONFLICT (project_id, tenant_id)
             DO UPDATE SET last_sequence = tenant_event_sequences.last_sequence
             RETURNING last_sequence",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .fetch_one(&mut *tx)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(ApiError::internal)?;
        let existing = sqlx::query(
            "SELECT event FROM lifecycle_events
             WHERE project_id = $1 AND tenant_id = $2 AND id = $3",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(event.id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(ApiError::internal)?;
        if let Some(row) = existing {
            tx.rollback().await.map_err(ApiError::internal)?;
            return Ok(Published {
                event: decode(&row)?,
                duplicate: true,
                deliveries: 0,
            });
        }
        let sequence = last.saturating_add(1);
        sqlx::query(
            "UPDATE tenant_event_sequences SET last_sequence = $3
             WHERE project_id = $1 AND tenant_id = $2",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(sequence)
        .execute(&mut *tx)
        .await
        .map_err(ApiError::internal)?;
        event.sequence = to_u64(sequence);
        sqlx::query(
            "INSERT INTO lifecycle_events (project_id, tenant_id, sequence, id, event_type,
                                           connection_id, published_at_ms, event)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(sequence)
        .bind(event.id.as_str())
        .bind(event.r#type)
        .bind(event.connection_id.as_str())
        .bind(now)
        .bind(event.encode_to_vec())
        .execute(&mut *tx)
        .await
        .map_err(ApiError::internal)?;
        let deliveries = outbox::enqueue_event(&mut tx, tenant, &event, now).await?;
        tx.commit().await.map_err(ApiError::internal)?;
        self.notifier.publish(tenant, event.sequence);
        if deliveries > 0 {
            self.delivery_wake.notify_one();
        }
        Ok(Published {
            event,
            duplicate: false,
            deliveries,
        })
    }

    /// The tenant's head and retention mark.
    pub async fn head(&self, tenant: &TenantContext) -> Result<Head, ApiError> {
        read_head(&self.db, "tenant_event_sequences", tenant).await
    }

    /// At most `limit` events of `tenant` with `after < sequence <= through` matching
    /// `filter`, in sequence order.
    pub async fn page(
        &self,
        tenant: &TenantContext,
        after: u64,
        through: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<Event>, ApiError> {
        // Only placeholders are formatted into the statement.
        let mut next = 6;
        let mut conditions = String::new();
        if !filter.event_types.is_empty() {
            conditions.push_str(&format!(
                " AND event_type IN ({})",
                placeholders(next, filter.event_types.len())
            ));
            next += filter.event_types.len();
        }
        if !filter.connection_ids.is_empty() {
            conditions.push_str(&format!(
                " AND connection_id IN ({})",
                placeholders(next, filter.connection_ids.len())
            ));
        }
        let statement = format!(
            "SELECT event FROM lifecycle_events
             WHERE project_id = $1 AND tenant_id = $2 AND sequence > $3 AND sequence <= $4
             {conditions}
             ORDER BY sequence LIMIT $5"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(tenant.project_id.as_str())
            .bind(tenant.tenant_id.as_str())
            .bind(to_i64(after))
            .bind(to_i64(through))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        for kind in &filter.event_types {
            query = query.bind(*kind);
        }
        for connection in &filter.connection_ids {
            query = query.bind(connection.as_str());
        }
        let rows = query
            .fetch_all(self.db.pool())
            .await
            .map_err(ApiError::internal)?;
        rows.iter().map(decode).collect()
    }

    /// Removes every tenant's events published before `before_ms`, raising each tenant's
    /// `pruned_through`; returns how many were removed.
    pub async fn prune(&self, before_ms: i64) -> Result<u64, ApiError> {
        prune_log(
            &self.db,
            "tenant_event_sequences",
            "lifecycle_events",
            before_ms,
        )
        .await
    }
}

/// The lifecycle log filtered for one `StreamLifecycleEvents` call: one event per message,
/// a message without an event as the heartbeat.
#[derive(Debug, Clone)]
pub struct Events {
    /// The log.
    pub log: EventLog,
    /// The stream's filters.
    pub filter: EventFilter,
}

impl Source for Events {
    type Item = Event;
    type Message = StreamLifecycleEventsResponse;

    fn subscribe(&self, tenant: &TenantContext) -> watch::Receiver<u64> {
        self.log.subscribe(tenant)
    }

    fn head(&self, tenant: &TenantContext) -> impl Future<Output = Result<Head, ApiError>> + Send {
        self.log.head(tenant)
    }

    fn page(
        &self,
        tenant: &TenantContext,
        after: u64,
        through: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Event>, ApiError>> + Send {
        self.log.page(tenant, after, through, &self.filter, limit)
    }

    fn sequence(item: &Event) -> u64 {
        item.sequence
    }

    fn messages(&self, page: Vec<Event>, _head: u64) -> Vec<StreamLifecycleEventsResponse> {
        page.into_iter()
            .map(|event| StreamLifecycleEventsResponse { event: Some(event) })
            .collect()
    }

    fn heartbeat(&self, _head: u64) -> StreamLifecycleEventsResponse {
        StreamLifecycleEventsResponse { event: None }
    }
}

#[cfg(test)]
mod tests;
