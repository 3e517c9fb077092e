//! The tenant's change log: appends with per-tenant sequences, pages after a sequence, and
//! retention.
//!
//! Sequences come from the `tenant_sequences` counter row, bumped by the number of changes in
//! the same transaction that inserts them. On PostgreSQL concurrent appenders for one tenant
//! wait on that row's lock, so a sequence is never handed out twice and a tenant's appends
//! commit in sequence order: a reader that sees sequence `n` has already been able to see
//! every sequence below it. On SQLite the single writer gives the same.
//!
//! An append also writes the webhook outbox rows for the tenant's enabled endpoints in the
//! same transaction, so a change is published and queued for delivery, or neither.

pub mod encoded;
pub mod prepared;
pub mod stream;
pub mod tail;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost::Message;
use sqlx::Row;
use syncline_domain::{ApiError, TenantContext, Violation};
use syncline_proto::common::v1::RecordOperation;
use syncline_proto::sync::v1::Change;
use syncline_service_kit::time;
use syncline_storage::{Database, now_ms};
use tokio::sync::{Notify, watch};

use crate::delivery::outbox;

use self::encoded::EncodedChange;
use self::prepared::PreparedChange;
use self::tail::Tail;

/// The most changes one append takes.
pub const MAX_APPEND: usize = 10_000;

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The first sequence assigned (0 when nothing was appended).
    pub first_sequence: u64,
    /// The last sequence assigned: the tenant's head after this append.
    pub last_sequence: u64,
    /// Webhook deliveries queued.
    pub deliveries: usize,
}

/// One change as an append stores it: the row's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredChange {
    pub(crate) sequence: u64,
    pub(crate) connection_id: String,
    pub(crate) object: String,
    /// The `change` column: the `Change` encoding, without its provider record.
    pub(crate) change: Vec<u8>,
    /// The `provider_record` column.
    pub(crate) provider_record: Option<Vec<u8>>,
}

/// An append inside a transaction: what it did and its changes as stored, for
/// [`ChangeLog::published`] once the transaction has committed.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) appended: Appended,
    changes: Vec<StoredChange>,
}

/// Where a tenant's log stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    /// The highest sequence published.
    pub last_sequence: u64,
    /// The highest sequence removed by retention.
    pub pruned_through: u64,
}

/// Which changes a reader wants.
#[derive(Debug, Clone, Default)]
pub struct ChangeFilter {
    /// Only these connections, when not empty.
    pub connection_ids: Vec<String>,
    /// Only these model objects, when not empty.
    pub objects: Vec<String>,
    /// Keep each change's provider record.
    pub include_provider_record: bool,
}

/// Wakes readers of a tenant's log when this process appends to it.
#[derive(Debug, Default)]
pub struct Notifier {
    senders: Mutex<HashMap<(String, String), watch::Sender<u64>>>,
}

/// The key of a tenant's entries in this process's maps.
pub(crate) fn tenant_key(tenant: &TenantContext) -> (String, String) {
    (
        tenant.project_id.as_str().to_owned(),
        tenant.tenant_id.as_str().to_owned(),
    )
}

impl Notifier {
    /// A receiver that changes whenever this process appends to the tenant's log.
    pub fn subscribe(&self, tenant: &TenantContext) -> watch::Receiver<u64> {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        senders
            .entry(tenant_key(tenant))
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Whether a reader of this process follows the tenant's log.
    pub(crate) fn has_readers(&self, tenant: &TenantContext) -> bool {
        self.senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&tenant_key(tenant))
            .is_some_and(|sender| sender.receiver_count() > 0)
    }

    pub(crate) fn publish(&self, tenant: &TenantContext, last_sequence: u64) {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        let key = tenant_key(tenant);
        if let Some(sender) = senders.get(&key) {
            if sender.receiver_count() == 0 {
                senders.remove(&key);
            } else {
                sender.send_replace(last_sequence);
            }
        }
    }
}

/// The change log over the service's database.
#[derive(Debug, Clone)]
pub struct ChangeLog {
    db: Database,
    notifier: Arc<Notifier>,
    delivery_wake: Arc<Notify>,
    tail: Arc<Tail>,
}

pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// `$from, $from+1, …` for `count` parameters.
pub(crate) fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `(…), (…)` rows of `width` placeholders each, numbered from `$1`.
pub(crate) fn value_rows(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(r * width + 1, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a statement with many parameters names them. SQLite keeps named parameters (`$n`
/// is one to it) in a list it scans for each `sqlite3_bind_parameter_name`, which sqlx calls
/// once per parameter: binding a 3,500-parameter insert that way is quadratic and dominated
/// a backfill page's commit. Anonymous `?` parameters are not in that list, so on SQLite
/// the bulk statements use them, bound strictly in textual order; PostgreSQL needs `$n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Params {
    /// `$1, $2, …` (PostgreSQL).
    Numbered,
    /// `?, ?, …` bound in order (SQLite).
    Anonymous,
}

impl Params {
    /// The style for the connection's engine.
    pub(crate) fn of(connection: &sqlx::AnyConnection) -> Self {
        if connection.backend_name() == <sqlx::Sqlite as sqlx::Database>::NAME {
            Self::Anonymous
        } else {
            Self::Numbered
        }
    }

    /// Rows per bulk statement of a sync page (changes, record state). Measured on the
    /// backfill bench: PostgreSQL's time per statement grows faster than its rows (500-row
    /// statements: ~0.5 s of commit per page of 2,000; 100-row: ~0.3 s; 25-row: far
    /// worse), SQLite's does not once parameters are anonymous.
    pub(crate) fn rows_per_statement(self) -> usize {
        match self {
            Self::Numbered => 100,
            Self::Anonymous => 500,
        }
    }

    /// `count` parameters, the first numbered `from` when numbered.
    pub(crate) fn list(self, from: usize, count: usize) -> String {
        match self {
            Self::Numbered => placeholders(from, count),
            Self::Anonymous => vec!["?"; count].join(", "),
        }
    }

    /// `(…), (…)` rows of `width` parameters each, numbered from `$1` when numbered.
    pub(crate) fn rows(self, rows: usize, width: usize) -> String {
        match self {
            Self::Numbered => value_rows(rows, width),
            Self::Anonymous => {
                let row = format!("({})", self.list(1, width));
                vec![row.as_str(); rows].join(", ")
            }
        }
    }
}

/// What every change of an append needs: a connection, an object and an operation.
fn check_change(
    i: usize,
    connection_id: &str,
    object: &str,
    operation: i32,
    violations: &mut Vec<Violation>,
) {
    if connection_id.is_empty() {
        violations.push(Violation::required(format!("changes[{i}].connection_id")));
    }
    if object.is_empty() {
        violations.push(Violation::required(format!("changes[{i}].object")));
    }
    if matches!(
        RecordOperation::try_from(operation),
        Ok(RecordOperation::Unspecified) | Err(_)
    ) {
        violations.push(Violation::new(
            format!("changes[{i}].operation"),
            "INVALID_ENUM",
            "must be CREATE, UPDATE or DELETE",
        ));
    }
}

fn checked(count: usize, mut violations: Vec<Violation>) -> Result<(), ApiError> {
    if count > MAX_APPEND {
        violations.insert(
            0,
            Violation::new(
                "changes",
                "TOO_MANY",
                format!("at most {MAX_APPEND} changes per append"),
            ),
        );
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(violations))
    }
}

/// Checks changes given to an append.
fn validate(changes: &[Change]) -> Result<(), ApiError> {
    let mut violations = Vec::new();
    for (i, change) in changes.iter().enumerate() {
        check_change(
            i,
            &change.connection_id,
            &change.object,
            change.operation,
            &mut violations,
        );
        if change.record.is_none() {
            violations.push(Violation::required(format!("changes[{i}].record")));
        }
    }
    checked(changes.len(), violations)
}

/// Checks prepared changes (a sync builds them; the API's were checked by [`validate`]
/// before they were prepared).
fn validate_prepared(changes: &[PreparedChange]) -> Result<(), ApiError> {
    let mut violations = Vec::new();
    for (i, change) in changes.iter().enumerate() {
        check_change(
            i,
            &change.connection_id,
            &change.object,
            change.operation as i32,
            &mut violations,
        );
    }
    checked(changes.len(), violations)
}

impl ChangeLog {
    /// The log over `db`; appends wake `notifier`'s readers and `delivery_wake`.
    pub fn new(db: Database, notifier: Arc<Notifier>, delivery_wake: Arc<Notify>) -> Self {
        Self {
            db,
            notifier,
            delivery_wake,
            tail: Arc::new(Tail::default()),
        }
    }

    /// A log over `db` on its own, as another engine process would have it: its appends
    /// wake only its own readers and no webhook dispatcher. For tests.
    #[cfg(test)]
    pub(crate) fn standalone(db: Database) -> Self {
        Self::new(db, Arc::default(), Arc::new(Notify::new()))
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Subscribes to this process's appends for `tenant`.
    pub fn subscribe(&self, tenant: &TenantContext) -> watch::Receiver<u64> {
        self.notifier.subscribe(tenant)
    }

    /// Appends `changes` for `tenant` in one transaction, in the given order, assigning each
    /// the next sequence and the publish time, and queues webhook deliveries for the tenant's
    /// enabled endpoints that want them. `sequence` and `publish_time` of the input are
    /// ignored.
    pub async fn append(
        &self,
        tenant: &TenantContext,
        changes: Vec<Change>,
    ) -> Result<Appended, ApiError> {
        validate(&changes)?;
        if changes.is_empty() {
            let head = self.head(tenant).await?;
            return Ok(Appended {
                first_sequence: 0,
                last_sequence: head.last_sequence,
                deliveries: 0,
            });
        }
        let changes = changes
            .into_iter()
            .map(PreparedChange::from_change)
            .collect();
        let now = now_ms();
        let mut tx = self.db.pool().begin().await.map_err(ApiError::internal)?;
        let stored = Self::append_in_tx(&mut tx, tenant, changes, now).await?;
        tx.commit().await.map_err(ApiError::internal)?;
        let appended = stored.appended;
        self.published(tenant, stored);
        Ok(appended)
    }

    /// Appends `changes` inside the caller's transaction `tx` (each with its operation set;
    /// none is a no-op), so they commit together with the caller's other writes (a sync
    /// page's record state and checkpoint). The caller must call [`ChangeLog::published`]
    /// after the commit to wake readers and the dispatcher.
    pub(crate) async fn append_in_tx(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: &TenantContext,
        changes: Vec<PreparedChange>,
        now: i64,
    ) -> Result<Stored, ApiError> {
        validate_prepared(&changes)?;
        if changes.is_empty() {
            return Ok(Stored {
                appended: Appended {
                    first_sequence: 0,
                    last_sequence: 0,
                    deliveries: 0,
                },
                changes: Vec::new(),
            });
        }
        let count = i64::try_from(changes.len()).map_err(ApiError::internal)?;
        // The write comes first, so SQLite takes its write lock at once and PostgreSQL locks
        // the tenant's counter row until commit.
        let last: i64 = sqlx::query(
            "INSERT INTO tenant_sequences (project_id, tenant_id, last_sequence, pruned_through)
             VALUES ($1, $2, $3, 0)
             ON CONFLICT (project_id, tenant_id)
             DO UPDATE SET last_sequence = tenant_sequences.last_sequence + $3
             RETURNING last_sequence",
        )
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(count)
        .fetch_one(&mut **tx)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(ApiError::internal)?;
        let first = last - count + 1;
        let publish_time = time::timestamp(now);
        let stored: Vec<StoredChange> = (first..)
            .zip(changes)
            .map(|(sequence, change)| change.into_stored(to_u64(sequence), &publish_time))
            .collect();
        let params = Params::of(tx);
        for chunk in stored.chunks(params.rows_per_statement()) {
            let statement = format!(
                "INSERT INTO changes (project_id, tenant_id, sequence, connection_id, object,
                                      published_at_ms, change, provider_record)
                 VALUES {}",
                params.rows(chunk.len(), 8)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
            for change in chunk {
                query = query
                    .bind(tenant.project_id.as_str())
                    .bind(tenant.tenant_id.as_str())
                    .bind(to_i64(change.sequence))
                    .bind(change.connection_id.as_str())
                    .bind(change.object.as_str())
                    .bind(now)
                    .bind(change.change.as_slice())
                    .bind(change.provider_record.as_deref());
            }
            query.execute(&mut **tx).await.map_err(ApiError::internal)?;
        }
        let deliveries = outbox::enqueue(tx, tenant, &stored, now).await?;
        Ok(Stored {
            appended: Appended {
                first_sequence: to_u64(first),
                last_sequence: to_u64(last),
                deliveries,
            },
            changes: stored,
        })
    }

    /// Wakes this process's readers of `tenant`'s log and the dispatcher after a committed
    /// [`ChangeLog::append_in_tx`].
    pub(crate) fn published(&self, tenant: &TenantContext, stored: Stored) {
        let Stored { appended, changes } = stored;
        if appended.last_sequence == 0 {
            return;
        }
        // Kept before readers wake, so that they find the changes in memory.
        if self.notifier.has_readers(tenant) {
            self.tail.keep(tenant, changes);
        } else {
            self.tail.forget(tenant);
        }
        self.notifier.publish(tenant, appended.last_sequence);
        if appended.deliveries > 0 {
            self.delivery_wake.notify_one();
        }
    }

    /// After a stream of `tenant`'s changes ended: drops what was kept in memory for it when
    /// no reader of this process follows the tenant any more.
    pub(crate) fn stream_ended(&self, tenant: &TenantContext) {
        if !self.notifier.has_readers(tenant) {
            self.tail.forget(tenant);
        }
    }

    /// The tenant's head and retention mark.
    pub async fn head(&self, tenant: &TenantContext) -> Result<Head, ApiError> {
        read_head(&self.db, "tenant_sequences", tenant).await
    }

    /// At most `limit` changes of `tenant` with `after < sequence <= through` matching
    /// `filter`, in sequence order.
    pub async fn page(
        &self,
        tenant: &TenantContext,
        after: u64,
        through: u64,
        filter: &ChangeFilter,
        limit: usize,
    ) -> Result<Vec<Change>, ApiError> {
        self.page_encoded(tenant, after, through, filter, limit)
            .await?
            .iter()
            .map(|change| Change::decode(change.bytes.as_slice()).map_err(ApiError::internal))
            .collect()
    }

    /// [`ChangeLog::page`] as stored: each change's encoding, with its provider record
    /// appended when `filter` asks for it, never decoded (what `StreamChanges` sends).
    pub async fn page_encoded(
        &self,
        tenant: &TenantContext,
        after: u64,
        through: u64,
        filter: &ChangeFilter,
        limit: usize,
    ) -> Result<Vec<EncodedChange>, ApiError> {
        if let Some(kept) = self.tail.page(tenant, after, through, filter, limit) {
            return Ok(kept);
        }
        // Only placeholders are formatted into the statement.
        let mut next = 6;
        let mut conditions = String::new();
        for (column, values) in [
            ("connection_id", &filter.connection_ids),
            ("object", &filter.objects),
        ] {
            if !values.is_empty() {
                conditions.push_str(&format!(
                    " AND {column} IN ({})",
                    placeholders(next, values.len())
                ));
                next += values.len();
            }
        }
        let provider_record = if filter.include_provider_record {
            "provider_record"
        } else {
            "NULL AS provider_record"
        };
        let statement = format!(
            "SELECT sequence, change, {provider_record} FROM changes
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
        for value in filter.connection_ids.iter().chain(&filter.objects) {
            query = query.bind(value.as_str());
        }
        let rows = query
            .fetch_all(self.db.pool())
            .await
            .map_err(ApiError::internal)?;
        rows.into_iter()
            .map(|row| {
                let sequence: i64 = row.try_get("sequence").map_err(ApiError::internal)?;
                let change: Vec<u8> = row.try_get("change").map_err(ApiError::internal)?;
                let provider_record: Option<Vec<u8>> =
                    row.try_get("provider_record").map_err(ApiError::internal)?;
                EncodedChange::from_row(
                    to_u64(sequence),
                    change,
                    provider_record.as_deref(),
                    filter.include_provider_record,
                )
                .map_err(ApiError::internal)
            })
            .collect()
    }

    /// Removes every tenant's changes published before `before_ms`, raising each tenant's
    /// `pruned_through` to the highest sequence removed; returns how many were removed.
    pub async fn prune(&self, before_ms: i64) -> Result<u64, ApiError> {
        prune_log(&self.db, "tenant_sequences", "changes", before_ms).await
    }
}

/// The head of `tenant`'s log whose counter rows are in `counter` (a table name of this
/// crate, never input).
pub(crate) async fn read_head(
    db: &Database,
    counter: &'static str,
    tenant: &TenantContext,
) -> Result<Head, ApiError> {
    let statement = format!(
        "SELECT last_sequence, pruned_through FROM {counter}
         WHERE project_id = $1 AND tenant_id = $2"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(statement))
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .fetch_optional(db.pool())
        .await
        .map_err(ApiError::internal)?;
    let Some(row) = row else {
        return Ok(Head::default());
    };
    let last: i64 = row.try_get("last_sequence").map_err(ApiError::internal)?;
    let pruned: i64 = row.try_get("pruned_through").map_err(ApiError::internal)?;
    Ok(Head {
        last_sequence: to_u64(last),
        pruned_through: to_u64(pruned),
    })
}

/// Removes every tenant's entries of `rows` published before `before_ms`, raising each
/// tenant's `pruned_through` in `counter` to the highest sequence removed; returns how many
/// were removed. Both names are table names of this crate, never input.
pub(crate) async fn prune_log(
    db: &Database,
    counter: &'static str,
    rows: &'static str,
    before_ms: i64,
) -> Result<u64, ApiError> {
    let mut tx = db.pool().begin().await.map_err(ApiError::internal)?;
    let highest = format!(
        "(SELECT MAX(c.sequence) FROM {rows} c
          WHERE c.project_id = {counter}.project_id
            AND c.tenant_id = {counter}.tenant_id
            AND c.published_at_ms < $1)"
    );
    let statement = format!(
        "UPDATE {counter} SET pruned_through = CASE
             WHEN {highest} > pruned_through THEN {highest}
             ELSE pruned_through END
         WHERE EXISTS (SELECT 1 FROM {rows} c
                       WHERE c.project_id = {counter}.project_id
                         AND c.tenant_id = {counter}.tenant_id
                         AND c.published_at_ms < $1)"
    );
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .bind(before_ms)
        .execute(&mut *tx)
        .await
        .map_err(ApiError::internal)?;
    let removed = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {rows} WHERE published_at_ms < $1"
    )))
    .bind(before_ms)
    .execute(&mut *tx)
    .await
    .map_err(ApiError::internal)?
    .rows_affected();
    tx.commit().await.map_err(ApiError::internal)?;
    Ok(removed)
}

#[cfg(test)]
pub(crate) mod tests;
