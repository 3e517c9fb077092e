//! The durable outbox of webhook deliveries and the dead letters they end in.
//!
//! A delivery row is written in the same transaction as its change. Dispatchers (one per
//! engine process) claim the head of each endpoint's queue — its lowest pending sequence —
//! with a lease, attempt it, and record the outcome under the same claim token, so several
//! engines on one PostgreSQL database never deliver one message twice at once, and a
//! message whose dispatcher died is attempted again once its lease lapses.

use prost::Message;
use sqlx::Row;
use sqlx::any::Any;
use syncline_domain::{ApiError, TenantContext, ids};
use syncline_proto::common::v1::Event;
use syncline_proto::sync::v1::{
    Change, DeadLetter, DeadLetterStage, WebhookEndpoint, WebhookTopic,
};
use syncline_service_kit::pagination::PageRequest;
use syncline_service_kit::time;
use syncline_storage::Database;

use crate::changelog::{Params, StoredChange};

/// Delivery states.
pub const PENDING: i32 = 1;
/// Delivered (2xx).
pub const DELIVERED: i32 = 2;
/// Attempts ran out; a dead letter names it.
pub const DEAD: i32 = 3;

/// Deliveries per multi-row INSERT (16 parameters each).
const INSERT_CHUNK: usize = 400;

/// A delivery of a change (`deliveries.kind`).
pub const KIND_CHANGE: i32 = 1;
/// A delivery of a lifecycle event.
pub const KIND_EVENT: i32 = 2;

/// What a delivery carries: a change of the change log or an event of the lifecycle log.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A record change (without its provider record).
    Change(Change),
    /// A lifecycle event.
    Event(Event),
}

impl Payload {
    /// The `deliveries.kind` of this payload.
    pub fn kind(&self) -> i32 {
        match self {
            Self::Change(_) => KIND_CHANGE,
            Self::Event(_) => KIND_EVENT,
        }
    }

    /// The position in its log.
    pub fn sequence(&self) -> u64 {
        match self {
            Self::Change(change) => change.sequence,
            Self::Event(event) => event.sequence,
        }
    }

    /// The connection concerned.
    pub fn connection_id(&self) -> &str {
        match self {
            Self::Change(change) => &change.connection_id,
            Self::Event(event) => &event.connection_id,
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Self::Change(change) => change.encode_to_vec(),
            Self::Event(event) => event.encode_to_vec(),
        }
    }

    fn decode(kind: i32, bytes: &[u8]) -> Result<Self, ApiError> {
        if kind == KIND_EVENT {
            Event::decode(bytes)
                .map(Self::Event)
                .map_err(ApiError::internal)
        } else {
            Change::decode(bytes)
                .map(Self::Change)
                .map_err(ApiError::internal)
        }
    }
}

fn wants_event(endpoint: &WebhookEndpoint, event: &Event) -> bool {
    !endpoint.disabled
        && endpoint
            .topics
            .contains(&(WebhookTopic::LifecycleEvents as i32))
        && (endpoint.connection_ids.is_empty()
            || endpoint.connection_ids.contains(&event.connection_id))
        && (endpoint.event_types.is_empty() || endpoint.event_types.contains(&event.r#type))
}

fn wants(endpoint: &WebhookEndpoint, connection_id: &str, object: &str) -> bool {
    !endpoint.disabled
        && endpoint.topics.contains(&(WebhookTopic::Changes as i32))
        && (endpoint.connection_ids.is_empty()
            || endpoint.connection_ids.iter().any(|c| c == connection_id))
        && (endpoint.objects.is_empty() || endpoint.objects.iter().any(|o| o == object))
}

async fn enabled_endpoints(
    tx: &mut sqlx::Transaction<'_, Any>,
    tenant: &TenantContext,
) -> Result<Vec<WebhookEndpoint>, ApiError> {
    let rows = sqlx::query(
        "SELECT endpoint FROM webhook_endpoints
         WHERE project_id = $1 AND tenant_id = $2 AND disabled = 0",
    )
    .bind(tenant.project_id.as_str())
    .bind(tenant.tenant_id.as_str())
    .fetch_all(&mut **tx)
    .await
    .map_err(ApiError::internal)?;
    rows.iter()
        .map(|row| {
            let bytes: Vec<u8> = row.try_get("endpoint").map_err(ApiError::internal)?;
            WebhookEndpoint::decode(bytes.as_slice()).map_err(ApiError::internal)
        })
        .collect()
}

/// Queues a delivery of each change to each of the tenant's enabled endpoints that wants it;
/// runs inside the append's transaction. Returns how many were queued.
pub(crate) async fn enqueue(
    tx: &mut sqlx::Transaction<'_, Any>,
    tenant: &TenantContext,
    changes: &[StoredChange],
    now: i64,
) -> Result<usize, ApiError> {
    let endpoints = enabled_endpoints(tx, tenant).await?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let mut pairs: Vec<(&WebhookEndpoint, Payload)> = Vec::new();
    for change in changes {
        let mut decoded: Option<Change> = None;
        for endpoint in endpoints
            .iter()
            .filter(|e| wants(e, &change.connection_id, &change.object))
        {
            let body = match &decoded {
                Some(body) => body.clone(),
                None => {
                    // Stored without its provider record, which webhook payloads never carry.
                    let body =
                        Change::decode(change.change.as_slice()).map_err(ApiError::internal)?;
                    decoded.insert(body).clone()
                }
            };
            pairs.push((endpoint, Payload::Change(body)));
        }
    }
    insert_deliveries(tx, tenant, &pairs, now).await
}

/// Queues a delivery of `event` to each of the tenant's enabled endpoints subscribed to
/// lifecycle events (and to its type and connection, when they filter); runs inside the
/// publish's transaction. Returns how many were queued.
pub async fn enqueue_event(
    tx: &mut sqlx::Transaction<'_, Any>,
    tenant: &TenantContext,
    event: &Event,
    now: i64,
) -> Result<usize, ApiError> {
    let endpoints = enabled_endpoints(tx, tenant).await?;
    let pairs: Vec<(&WebhookEndpoint, Payload)> = endpoints
        .iter()
        .filter(|e| wants_event(e, event))
        .map(|e| (e, Payload::Event(event.clone())))
        .collect();
    insert_deliveries(tx, tenant, &pairs, now).await
}

async fn insert_deliveries(
    tx: &mut sqlx::Transaction<'_, Any>,
    tenant: &TenantContext,
    pairs: &[(&WebhookEndpoint, Payload)],
    now: i64,
) -> Result<usize, ApiError> {
    let params = Params::of(tx);
    for chunk in pairs.chunks(INSERT_CHUNK) {
        let statement = format!(
            "INSERT INTO deliveries (id, project_id, tenant_id, endpoint_id, sequence, state,
                                     attempt_count, total_attempts, next_attempt_at_ms,
                                     claimed_until_ms, claim_token, last_error,
                                     created_at_ms, updated_at_ms, change, kind)
             VALUES {}",
            params.rows(chunk.len(), 16)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
        for (endpoint, payload) in chunk {
            query = query
                .bind(ids::new_resource_id("msg"))
                .bind(tenant.project_id.as_str())
                .bind(tenant.tenant_id.as_str())
                .bind(endpoint.id.as_str())
                .bind(i64::try_from(payload.sequence()).unwrap_or(i64::MAX))
                .bind(PENDING)
                .bind(0_i32)
                .bind(0_i32)
                // Due at once, whatever the dispatcher's clock says.
                .bind(0_i64)
                .bind(0_i64)
                .bind("")
                .bind("")
                .bind(now)
                .bind(now)
                .bind(payload.encode())
                .bind(payload.kind());
        }
        query.execute(&mut **tx).await.map_err(ApiError::internal)?;
    }
    Ok(pairs.len())
}

/// A claimed delivery, ready to attempt.
pub struct Claimed {
    /// The `webhook-id`.
    pub id: String,
    /// The tenant.
    pub project_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// Where to POST.
    pub url: String,
    /// The endpoint's `whsec_…` secret. Never logged: `Debug` leaves it out.
    pub signing_secret: String,
    /// Attempts made in this round.
    pub attempt_count: i32,
    /// Attempts made in every round.
    pub total_attempts: i32,
    /// When the first attempt failed, if one did.
    pub first_failure_at_ms: Option<i64>,
    /// The change or event to deliver.
    pub payload: Payload,
    /// The lease's token.
    pub claim_token: String,
}

impl std::fmt::Debug for Claimed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimed")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("endpoint_id", &self.endpoint_id)
            .field("attempt_count", &self.attempt_count)
            .finish_non_exhaustive()
    }
}

/// The heads of endpoint queues (one queue per endpoint and kind: changes and lifecycle
/// events have sequences of their own): pending, due at `now`, not leased, endpoint enabled,
/// and no pending delivery of a lower sequence of the same kind to the same endpoint.
const HEADS: &str = "FROM deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
     WHERE d.state = 1 AND e.disabled = 0
       AND NOT EXISTS (SELECT 1 FROM deliveries p
                       WHERE p.endpoint_id = d.endpoint_id AND p.kind = d.kind AND p.state = 1
                         AND p.sequence < d.sequence)";

/// Claims up to `limit` endpoint heads due at `now` until `lease_until`.
pub async fn claim_due(
    db: &Database,
    now: i64,
    lease_until: i64,
    limit: usize,
) -> Result<Vec<Claimed>, ApiError> {
    let statement = format!(
        "SELECT d.id, d.project_id, d.tenant_id, d.endpoint_id, d.attempt_count,
                d.total_attempts, d.first_failure_at_ms, d.change, d.kind, e.signing_secret, e.endpoint
         {HEADS} AND d.next_attempt_at_ms <= $1 AND d.claimed_until_ms <= $1
         ORDER BY d.next_attempt_at_ms, d.sequence LIMIT $2"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(statement))
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(db.pool())
        .await
        .map_err(ApiError::internal)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let token = ids::new_resource_id("claim");
    let mut candidates = Vec::with_capacity(rows.len());
    for row in &rows {
        let payload: Vec<u8> = row.try_get("change").map_err(ApiError::internal)?;
        let kind: i32 = row.try_get("kind").map_err(ApiError::internal)?;
        let endpoint: Vec<u8> = row.try_get("endpoint").map_err(ApiError::internal)?;
        let endpoint = WebhookEndpoint::decode(endpoint.as_slice()).map_err(ApiError::internal)?;
        candidates.push(Claimed {
            id: row.try_get("id").map_err(ApiError::internal)?,
            project_id: row.try_get("project_id").map_err(ApiError::internal)?,
            tenant_id: row.try_get("tenant_id").map_err(ApiError::internal)?,
            endpoint_id: row.try_get("endpoint_id").map_err(ApiError::internal)?,
            url: endpoint.url,
            signing_secret: row.try_get("signing_secret").map_err(ApiError::internal)?,
            attempt_count: row.try_get("attempt_count").map_err(ApiError::internal)?,
            total_attempts: row.try_get("total_attempts").map_err(ApiError::internal)?,
            first_failure_at_ms: row
                .try_get("first_failure_at_ms")
                .map_err(ApiError::internal)?,
            payload: Payload::decode(kind, payload.as_slice())?,
            claim_token: token.clone(),
        });
    }
    // Claim them in one statement; another dispatcher may have won some.
    let ids_list = (0..candidates.len())
        .map(|i| format!("${}", i + 4))
        .collect::<Vec<_>>()
        .join(", ");
    let statement = format!(
        "UPDATE deliveries SET claimed_until_ms = $1, claim_token = $2
         WHERE state = 1 AND claimed_until_ms <= $3 AND id IN ({ids_list})
         RETURNING id"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement))
        .bind(lease_until)
        .bind(token.as_str())
        .bind(now);
    for candidate in &candidates {
        query = query.bind(candidate.id.as_str());
    }
    let won: Vec<String> = query
        .fetch_all(db.pool())
        .await
        .map_err(ApiError::internal)?
        .iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<_, _>>()
        .map_err(ApiError::internal)?;
    candidates.retain(|c| won.contains(&c.id));
    Ok(candidates)
}

/// When the next endpoint head falls due (or its lease lapses), if any is pending.
pub async fn next_due(db: &Database) -> Result<Option<i64>, ApiError> {
    let statement = format!(
        "SELECT MIN(CASE WHEN d.claimed_until_ms > d.next_attempt_at_ms
                         THEN d.claimed_until_ms ELSE d.next_attempt_at_ms END) AS due
         {HEADS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(statement))
        .fetch_one(db.pool())
        .await
        .map_err(ApiError::internal)?;
    row.try_get::<Option<i64>, _>("due")
        .map_err(ApiError::internal)
}

/// Records a delivered attempt: the delivery is done, the endpoint healthy again, and a dead
/// letter it came from (a replay) removed. False when the lease was lost meanwhile.
pub async fn record_success(db: &Database, claimed: &Claimed, now: i64) -> Result<bool, ApiError> {
    let mut tx = db.pool().begin().await.map_err(ApiError::internal)?;
    let updated = sqlx::query(
        "UPDATE deliveries SET state = $1, attempt_count = attempt_count + 1,
                total_attempts = total_attempts + 1, claimed_until_ms = 0, claim_token = '',
                last_error = '', updated_at_ms = $2
         WHERE id = $3 AND claim_token = $4 AND state = 1",
    )
    .bind(DELIVERED)
    .bind(now)
    .bind(claimed.id.as_str())
    .bind(claimed.claim_token.as_str())
    .execute(&mut *tx)
    .await
    .map_err(ApiError::internal)?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE webhook_endpoints SET failing_since_ms = NULL, consecutive_dead = 0 WHERE id = $1",
    )
    .bind(claimed.endpoint_id.as_str())
    .execute(&mut *tx)
    .await
    .map_err(ApiError::internal)?;
    sqlx::query("DELETE FROM dead_letters WHERE delivery_id = $1")
        .bind(claimed.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(ApiError::internal)?;
    tx.commit().await.map_err(ApiError::internal)?;
    Ok(true)
}

/// What a failed attempt led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Another attempt at this time.
    Retry(i64),
    /// Attempts ran out: a dead letter was written.
    Dead {
        /// The endpoint was disabled by this failure.
        endpoint_disabled: bool,
    },
    /// The lease was lost meanwhile; another dispatcher owns the delivery.
    LeaseLost,
}

/// When to disable an endpoint.
#[derive(Debug, Clone, Copy)]
pub struct DisablePolicy {
    /// After this many messages in a row were dead-lettered.
    pub consecutive_dead: i32,
    /// After failing without a success for this long, in milliseconds.
    pub failing_for_ms: i64,
}

/// Records a failed attempt: schedules the next one `retry_in_ms` from `now`, or, with
/// `None`, dead-letters the message; may disable the endpoint per `policy`.
pub async fn record_failure(
    db: &Database,
    claimed: &Claimed,
    now: i64,
    error: &str,
    retry_in_ms: Option<i64>,
    policy: DisablePolicy,
    trace_id: &str,
) -> Result<FailureOutcome, ApiError> {
    let mut tx = db.pool().begin().await.map_err(ApiError::internal)?;
    let (state, next) = match retry_in_ms {
        Some(delay) => (PENDING, now.saturating_add(delay)),
        None => (DEAD, now),
    };
    let updated = sqlx::query(
        "UPDATE deliveries SET state = $1, attempt_count = attempt_count + 1,
                total_attempts = total_attempts + 1, next_attempt_at_ms = $2,
                claimed_until_ms = 0, claim_token = '', last_error = $3, updated_at_ms = $4,
                first_failure_at_ms = COALESCE(first_failure_at_ms, $4)
         WHERE id = $5 AND claim_token = $6 AND state = 1",
    )
    .bind(state)
    .bind(next)
    .bind(error)
    .bind(now)
    .bind(claimed.id.as_str())
    .bind(claimed.claim_token.as_str())
    .execute(&mut *tx)
    .await
    .map_err(ApiError::internal)?;
    if updated.rows_affected() == 0 {
        return Ok(FailureOutcome::LeaseLost);
    }
    let dead_increment = i32::from(retry_in_ms.is_none());
    let row = sqlx::query(
        "UPDATE webhook_endpoints
         SET failing_since_ms = COALESCE(failing_since_ms, $1),
             consecutive_dead = consecutive_dead + $2
         WHERE id = $3
         RETURNING failing_since_ms, consecutive_dead, endpoint",
    )
    .bind(now)
    .bind(dead_increment)
    .bind(claimed.endpoint_id.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(ApiError::internal)?;
    let mut endpoint_disabled = false;
    if let Some(row) = row {
        let since: Option<i64> = row
            .try_get("failing_since_ms")
            .map_err(ApiError::internal)?;
        let dead: i32 = row
            .try_get("consecutive_dead")
            .map_err(ApiError::internal)?;
        let failing_too_long =
            since.is_some_and(|since| now.saturating_sub(since) >= policy.failing_for_ms);
        if dead >= policy.consecutive_dead || failing_too_long {
            let bytes: Vec<u8> = row.try_get("endpoint").map_err(ApiError::internal)?;
            let mut endpoint =
                WebhookEndpoint::decode(bytes.as_slice()).map_err(ApiError::internal)?;
            endpoint.disabled = true;
            sqlx::query(
                "UPDATE webhook_endpoints SET disabled = 1, endpoint = $1, updated_at_ms = $2
                 WHERE id = $3",
            )
            .bind(endpoint.encode_to_vec())
            .bind(now)
            .bind(claimed.endpoint_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(ApiError::internal)?;
            endpoint_disabled = true;
        }
    }
    if retry_in_ms.is_none() {
        write_dead_letter(&mut tx, claimed, now, error, trace_id).await?;
    }
    tx.commit().await.map_err(ApiError::internal)?;
    Ok(match retry_in_ms {
        Some(_) => FailureOutcome::Retry(next),
        None => FailureOutcome::Dead { endpoint_disabled },
    })
}

/// Replaces the delivery's dead letter (a replay that failed again) with a new one, so ids
/// order dead letters by their last failure.
async fn write_dead_letter(
    tx: &mut sqlx::Transaction<'_, Any>,
    claimed: &Claimed,
    now: i64,
    error: &str,
    trace_id: &str,
) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM dead_letters WHERE delivery_id = $1")
        .bind(claimed.id.as_str())
        .execute(&mut **tx)
        .await
        .map_err(ApiError::internal)?;
    let (object, record, operation) = match &claimed.payload {
        Payload::Change(change) => (
            change.object.clone(),
            change.record.clone(),
            change.operation,
        ),
        // A lifecycle event has no record; the letter names its object, if any.
        Payload::Event(event) => (event.object.clone(), None, 0),
    };
    let letter = DeadLetter {
        id: ids::new_resource_id("dlq"),
        connection_id: claimed.payload.connection_id().to_owned(),
        object,
        record_id: record.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
        stage: DeadLetterStage::Deliver as i32,
        operation,
        error_reason: 0,
        error_message: error.to_owned(),
        field: String::new(),
        attempt_count: claimed.total_attempts.saturating_add(1),
        first_failure_time: Some(time::timestamp(claimed.first_failure_at_ms.unwrap_or(now))),
        last_failure_time: Some(time::timestamp(now)),
        record,
        webhook_endpoint_id: claimed.endpoint_id.clone(),
        trace_id: trace_id.to_owned(),
    };
    sqlx::query(
        "INSERT INTO dead_letters (id, project_id, tenant_id, stage, connection_id, object,
                                   last_failure_at_ms, delivery_id, letter)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(letter.id.as_str())
    .bind(claimed.project_id.as_str())
    .bind(claimed.tenant_id.as_str())
    .bind(letter.stage)
    .bind(letter.connection_id.as_str())
    .bind(letter.object.as_str())
    .bind(now)
    .bind(claimed.id.as_str())
    .bind(letter.encode_to_vec())
    .execute(&mut **tx)
    .await
    .map_err(ApiError::internal)?;
    Ok(())
}

/// Filters of ListDeadLetters and ReplayDeadLetters.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    /// Only this connection, when set.
    pub connection_id: Option<String>,
    /// Only this model object, when set.
    pub object: Option<String>,
    /// Only this stage, when set.
    pub stage: Option<i32>,
    /// Last failure at or after this, in epoch milliseconds.
    pub from_ms: i64,
    /// Last failure before this, in epoch milliseconds.
    pub until_ms: i64,
}

const DEAD_LETTER_FILTER: &str = "project_id = $1 AND tenant_id = $2
       AND ($3 = '' OR connection_id = $3)
       AND ($4 = '' OR object = $4)
       AND ($5 = 0 OR stage = $5)
       AND last_failure_at_ms >= $6 AND last_failure_at_ms < $7";

fn bind_filter<'q>(
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    tenant: &'q TenantContext,
    filter: &'q DeadLetterFilter,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    query
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(filter.connection_id.as_deref().unwrap_or(""))
        .bind(filter.object.as_deref().unwrap_or(""))
        .bind(filter.stage.unwrap_or(0))
        .bind(filter.from_ms)
        .bind(filter.until_ms)
}

/// A page of the tenant's dead letters, newest first.
pub async fn dead_letters(
    db: &Database,
    tenant: &TenantContext,
    filter: &DeadLetterFilter,
    page: &PageRequest,
) -> Result<Vec<DeadLetter>, ApiError> {
    let statement = format!(
        "SELECT letter FROM dead_letters WHERE {DEAD_LETTER_FILTER}
           AND ($8 = '' OR id < $8)
         ORDER BY id DESC LIMIT $9"
    );
    let rows = bind_filter(sqlx::query(sqlx::AssertSqlSafe(statement)), tenant, filter)
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(page.fetch_limit())
        .fetch_all(db.pool())
        .await
        .map_err(ApiError::internal)?;
    rows.iter()
        .map(|row| {
            let bytes: Vec<u8> = row.try_get("letter").map_err(ApiError::internal)?;
            DeadLetter::decode(bytes.as_slice()).map_err(ApiError::internal)
        })
        .collect()
}

/// Queues the matching DELIVER dead letters' deliveries for a new round of attempts (with
/// the same `webhook-id`); each dead letter stays until its delivery succeeds. With
/// `dry_run`, only counts. Returns how many match.
pub async fn replay(
    db: &Database,
    tenant: &TenantContext,
    filter: &DeadLetterFilter,
    dry_run: bool,
    now: i64,
) -> Result<i64, ApiError> {
    let statement = format!(
        "SELECT delivery_id FROM dead_letters WHERE {DEAD_LETTER_FILTER} AND stage = {}",
        DeadLetterStage::Deliver as i32
    );
    let mut tx = db.pool().begin().await.map_err(ApiError::internal)?;
    let rows = bind_filter(sqlx::query(sqlx::AssertSqlSafe(statement)), tenant, filter)
        .fetch_all(&mut *tx)
        .await
        .map_err(ApiError::internal)?;
    let deliveries: Vec<String> = rows
        .iter()
        .map(|row| row.try_get::<String, _>("delivery_id"))
        .collect::<Result<_, _>>()
        .map_err(ApiError::internal)?;
    let count = i64::try_from(deliveries.len()).unwrap_or(i64::MAX);
    if dry_run || deliveries.is_empty() {
        return Ok(count);
    }
    for chunk in deliveries.chunks(500) {
        let list = (0..chunk.len())
            .map(|i| format!("${}", i + 5))
            .collect::<Vec<_>>()
            .join(", ");
        let statement = format!(
            "UPDATE deliveries SET state = 1, attempt_count = 0, next_attempt_at_ms = $1,
                    claimed_until_ms = 0, claim_token = '', updated_at_ms = $1
             WHERE project_id = $2 AND tenant_id = $3 AND state = $4 AND id IN ({list})"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(now)
            .bind(tenant.project_id.as_str())
            .bind(tenant.tenant_id.as_str())
            .bind(DEAD);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        query.execute(&mut *tx).await.map_err(ApiError::internal)?;
    }
    tx.commit().await.map_err(ApiError::internal)?;
    Ok(count)
}

/// Deletes delivered deliveries last touched before `before_ms`; returns how many.
pub async fn prune_delivered(db: &Database, before_ms: i64) -> Result<u64, ApiError> {
    let result = sqlx::query("DELETE FROM deliveries WHERE state = $1 AND updated_at_ms < $2")
        .bind(DELIVERED)
        .bind(before_ms)
        .execute(db.pool())
        .await
        .map_err(ApiError::internal)?;
    Ok(result.rows_affected())
}

/// Drops an endpoint's deliveries and dead letters (the endpoint is being deleted).
pub async fn drop_endpoint(
    tx: &mut sqlx::Transaction<'_, Any>,
    tenant: &TenantContext,
    endpoint_id: &str,
) -> Result<(), ApiError> {
    sqlx::query(
        "DELETE FROM dead_letters WHERE project_id = $1 AND tenant_id = $2 AND delivery_id IN
             (SELECT id FROM deliveries WHERE project_id = $1 AND tenant_id = $2 AND endpoint_id = $3)",
    )
    .bind(tenant.project_id.as_str())
    .bind(tenant.tenant_id.as_str())
    .bind(endpoint_id)
    .execute(&mut **tx)
    .await
    .map_err(ApiError::internal)?;
    sqlx::query(
        "DELETE FROM deliveries WHERE project_id = $1 AND tenant_id = $2 AND endpoint_id = $3",
    )
    .bind(tenant.project_id.as_str())
    .bind(tenant.tenant_id.as_str())
    .bind(endpoint_id)
    .execute(&mut **tx)
    .await
    .map_err(ApiError::internal)?;
    Ok(())
}

#[cfg(test)]
mod tests;
