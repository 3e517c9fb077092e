//! The workers: each claims one (run, object) slice and works it for one turn — reads a page
//! from the CRM, maps it with the tenant's compiled plan, commits changes, record state and
//! checkpoint together, reading the next page meanwhile — then gives the slice back so other
//! tenants get their turn.
//!
//! Failures never drop a page: a retryable provider error (429, 5xx, transport) releases the
//! slice with a backoff (`syncline_connectors::limits`: full jitter, never less than the
//! provider's `Retry-After`) and a per-connection circuit breaker stops calling a connection
//! that keeps failing; a 401 is reported to auth-vault once and retried with the new token; a
//! connection that needs re-authorization pauses the run (NEEDS_REAUTH); the provider's quota,
//! or the tenant's budget (a share of its daily quota), pauses the run until it resumes by
//! itself; a read refused for a field the CRM no longer has makes schema-discovery describe
//! the object again and the run goes on without the mapping rules that drift broke (named in
//! the object's progress); anything else a retry cannot fix fails the run with its reason.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use syncline_connectors::{
    Admission, CircuitBreaker, Connector, ConnectorError, Credentials, Provider, QuotaDecision,
    ReadCursor, ReadRequest, RecordPage, RecordReader,
};
use syncline_domain::ApiError;
use syncline_proto::common::v1::ErrorReason;
use syncline_proto::sync::v1::{DeadLetter, DeadLetterStage};
use syncline_storage::now_ms;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tonic::Status;
use tracing::Instrument;

use super::remote::RemoteError;
use super::store::{Claim, Committed, DELETED_HASH, PageCommit, PageRecord};
use super::{RunOptions, Runner};
use crate::changelog::prepared::PreparedChange;

/// The content hash of a mapped record: its fields in rule order and its deleted flag
/// (not its modified time: a record touched without a change is unchanged).
pub fn content_hash(record: &syncline_mapping_plan::MappedRecord) -> String {
    if record.deleted {
        return DELETED_HASH.to_owned();
    }
    let mut hasher = Sha256::new();
    // One buffer for every value's encoding: this runs for each record read.
    let mut encoded = Vec::new();
    for (name, value) in &record.fields {
        encoded.clear();
        prost::Message::encode_raw(value, &mut encoded);
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(&encoded);
        hasher.update([0xff]);
    }
    let digest = hasher.finalize();
    lower_hex(&digest[..16])
}

/// `bytes` as lowercase hex, two digits each (the form stored hashes have always had).
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// The wait before retry `attempt` (0-based: the slice's failed attempts so far), from the
/// shared limits: full jitter, never less than the provider's `Retry-After`.
pub(crate) fn backoff(
    options: &RunOptions,
    attempt: i32,
    retry_after: Option<Duration>,
) -> Duration {
    let attempt = u32::try_from(attempt).unwrap_or(0).saturating_add(1);
    options
        .backoff
        .delay(attempt, retry_after, rand::random::<f64>())
}

fn from_chrono(at: chrono::DateTime<chrono::Utc>) -> i64 {
    at.timestamp_millis()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// What to do with a slice after a failed attempt.
enum Outcome {
    /// Give it back to be retried at `now + wait`.
    Retry(Duration),
    /// Pause the run with a reason; resumes by itself after `resume_after` when set.
    Pause(ErrorReason, String, Option<Duration>),
    /// Fail the run.
    Fail(ErrorReason, String),
}

impl Runner {
    /// Runs one worker until `shutdown`.
    pub(crate) async fn work(self: Arc<Self>, shutdown: CancellationToken) {
        let poll = Duration::from_millis(self.options.poll_interval_ms);
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let claimed = self
                .store
                .claim(
                    &self.holder,
                    now_ms(),
                    millis(self.options.lease),
                    self.options.per_tenant_concurrency,
                )
                .await;
            match claimed {
                Ok(Some(claim)) => {
                    self.process(claim).await;
                    continue;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "claiming a sync slice failed"),
            }
            if let Err(error) = self.store.resume_due(now_ms()).await {
                tracing::warn!(%error, "resuming paused sync runs failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Works `claim` for one turn: pages one after another until the object is caught up,
    /// the turn (`sync_engine.runs.turn_ms`) is over or something stops it, then gives the
    /// slice back so that other slices waiting for a worker get theirs.
    ///
    /// The pages go through three stages at once, on different threads: a reader task asks
    /// the CRM for page k+2 (its cursor came with page k+1), a task of its own maps page
    /// k+1, and this task commits page k. Pages are committed in order and the cursor only
    /// moves with a commit, so whatever was read ahead when the turn stops is simply read
    /// again by whoever works the slice next.
    async fn process(self: &Arc<Self>, claim: Claim) {
        let turn_ends = tokio::time::Instant::now() + self.options.turn;
        let (ahead, mut pages) = tokio::sync::mpsc::channel(1);
        let _reader = AbortOnDropHandle::new(tokio::spawn(Arc::clone(self).read_ahead(
            claim.clone(),
            turn_ends,
            ahead,
        )));
        // The page the reader owes next; its claim settles a reader that ended without it.
        let mut expected = claim;
        loop {
            let Some(Ahead {
                claim,
                span,
                mapped,
                more,
            }) = pages.recv().await
            else {
                let outcome = Outcome::Retry(backoff(&self.options, 0, None));
                self.settle_logged(&expected, outcome, page_span(&expected))
                    .await;
                return;
            };
            let step = async {
                let page = mapped.fetched(&self.options).await?;
                let lease_until = if more {
                    now_ms() + millis(self.options.lease)
                } else {
                    0
                };
                let next_cursor = page.cursor.clone();
                let kept = self.commit(&claim, page, lease_until).await?;
                Ok((more && kept).then_some(next_cursor))
            }
            .instrument(span.clone())
            .await;
            match step {
                Ok(Some(cursor)) => {
                    expected = claim;
                    expected.cursor = cursor;
                    expected.attempts = 0;
                }
                // The turn ended (last page, run paused or cancelled, slice lost): whoever
                // works the slice next reads what was read ahead again.
                Ok(None) => return,
                Err(outcome) => {
                    self.settle_logged(&claim, outcome, span).await;
                    return;
                }
            }
        }
    }

    /// Reads the slice's pages from `claim`'s cursor on, handing each to a mapping task and
    /// sending them in order, until a page ends the turn (caught up, a wait or pause, the
    /// turn over) or fails, or nobody takes them any more.
    async fn read_ahead(
        self: Arc<Self>,
        mut claim: Claim,
        turn_ends: tokio::time::Instant,
        pages: tokio::sync::mpsc::Sender<Ahead>,
    ) {
        loop {
            let span = page_span(&claim);
            let read = self.read(&claim).instrument(span.clone()).await;
            let (mapped, next_cursor) = match read {
                Err(outcome) => (Mapped::Failed(outcome), None),
                Ok(read) => {
                    let more = !read.page.caught_up
                        && read.not_before_ms == 0
                        && !matches!(read.quota, QuotaDecision::Pause { .. })
                        && tokio::time::Instant::now() < turn_ends;
                    let next_cursor = more.then(|| read.page.cursor.0.clone());
                    let runner = Arc::clone(&self);
                    let page_claim = claim.clone();
                    let task = tokio::spawn(
                        async move { runner.map_page(&page_claim, read) }.instrument(span.clone()),
                    );
                    (Mapped::Task(AbortOnDropHandle::new(task)), next_cursor)
                }
            };
            let more = next_cursor.is_some();
            let page = Ahead {
                claim: claim.clone(),
                span,
                mapped,
                more,
            };
            if pages.send(page).await.is_err() {
                return;
            }
            let Some(cursor) = next_cursor else {
                return;
            };
            claim.cursor = cursor;
            claim.attempts = 0;
        }
    }

    async fn settle_logged(&self, claim: &Claim, outcome: Outcome, span: tracing::Span) {
        if let Err(error) = self.settle(claim, outcome).instrument(span).await {
            tracing::warn!(%error, sync_run.id = %claim.run_id, "recording a sync page failed");
            // The lease runs out and another attempt takes the slice over.
        }
    }

    async fn settle(&self, claim: &Claim, outcome: Outcome) -> Result<(), ApiError> {
        match outcome {
            Outcome::Retry(wait) => {
                tracing::info!(wait_ms = millis(wait), "sync page will be retried");
                self.store
                    .release(claim, &self.holder, Some(now_ms() + millis(wait)))
                    .await
            }
            Outcome::Pause(reason, message, resume_after) => {
                tracing::warn!(reason = reason.as_str_name(), %message, "sync run paused");
                let resume_at = resume_after.map(|d| now_ms() + millis(d));
                self.store
                    .pause_with_reason(&claim.run_id, reason, &message, resume_at)
                    .await?;
                self.store.release(claim, &self.holder, None).await
            }
            Outcome::Fail(reason, message) => {
                tracing::warn!(reason = reason.as_str_name(), %message, "sync run failed");
                if self
                    .store
                    .fail(&claim.run_id, reason, &message, now_ms())
                    .await?
                {
                    self.on_run_ended(&claim.tenant, &claim.connection_id).await;
                }
                self.store.release(claim, &self.holder, None).await
            }
        }
    }

    /// Whether the connection's breaker lets a call through now; when not, how long to wait.
    fn admit(&self, connection: &str) -> Result<(), Duration> {
        let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let breaker = breakers
            .entry(connection.to_owned())
            .or_insert_with(|| CircuitBreaker::new(self.options.breaker));
        match breaker.admit(chrono::Utc::now()) {
            Admission::Allow | Admission::Probe => Ok(()),
            Admission::Reject { retry_at } => Err(Duration::from_millis(
                u64::try_from(from_chrono(retry_at) - now_ms()).unwrap_or(0),
            )),
        }
    }

    fn record_call(&self, connection: &str, error: Option<&ConnectorError>) {
        let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let breaker = breakers
            .entry(connection.to_owned())
            .or_insert_with(|| CircuitBreaker::new(self.options.breaker));
        match error {
            None => breaker.on_success(),
            Some(error) => {
                let was_closed = matches!(
                    breaker.state(),
                    syncline_connectors::BreakerState::Closed { .. }
                );
                breaker.on_error(error, chrono::Utc::now());
                if was_closed
                    && matches!(
                        breaker.state(),
                        syncline_connectors::BreakerState::Open { .. }
                    )
                {
                    tracing::warn!(
                        connection.id = connection,
                        "circuit breaker open: the crm keeps failing"
                    );
                }
            }
        }
    }

    /// Reads the page at `claim`'s cursor from the CRM, with the plan to map it and what the
    /// tenant's budget says after it.
    async fn read(&self, claim: &Claim) -> Result<Read, Outcome> {
        let options = &self.options;
        if let Err(wait) = self.admit(&claim.connection_id) {
            return Err(Outcome::Retry(wait));
        }
        let mut plan = self
            .remote
            .plan(&claim.tenant, &claim.connection_id, claim.plan_version)
            .await
            .map_err(|e| remote_outcome(e, claim.attempts, options))?;
        if plan.compiled.object(&claim.object).is_none() {
            return Err(Outcome::Fail(
                ErrorReason::FailedPrecondition,
                format!("the mapping plan has no object {}", claim.object),
            ));
        }
        let mut token = self
            .remote
            .token(&claim.tenant, &claim.connection_id)
            .await
            .map_err(|e| remote_outcome(e, claim.attempts, options))?;
        let Some(provider) = Provider::from_proto(token.provider) else {
            return Err(Outcome::Fail(
                ErrorReason::FailedPrecondition,
                "the connection's provider has no connector".into(),
            ));
        };
        tracing::Span::current().record("provider", provider.as_str());
        let connector = Connector::for_provider(provider, self.http.clone());
        let cursor = ReadCursor(claim.cursor.clone());
        let mut reported = false;
        let mut replanned = false;
        let page: RecordPage = loop {
            let fields = plan.inbound_fields(&claim.object);
            let credentials = Credentials {
                instance_url: token.instance_url.clone(),
                access_token: secrecy::SecretString::from(token.access_token.clone()),
            };
            let request = ReadRequest {
                object: &claim.provider_object,
                fields: &fields,
                cursor: &cursor,
                page_size: options.page_size,
            };
            match connector.read_page(&credentials, request).await {
                Ok(page) => {
                    self.record_call(&claim.connection_id, None);
                    break page;
                }
                Err(ConnectorError::Unauthorized { provider_error }) if !reported => {
                    tracing::info!("crm refused the access token; reporting it once and retrying");
                    reported = true;
                    token = self
                        .remote
                        .report_unauthorized(
                            &claim.tenant,
                            &claim.connection_id,
                            token.version,
                            provider_error,
                        )
                        .await
                        .map_err(|e| remote_outcome(e, claim.attempts, options))?;
                }
                Err(error) if !replanned && is_unknown_field(&error, provider) => {
                    // A field the plan reads is gone from the CRM: let schema-discovery
                    // describe the object again, so mapping sees the drift, and read with
                    // the plan's rules that still fit. A refusal drift does not explain
                    // (the plan still reads the same fields) fails the run as any other.
                    replanned = true;
                    plan = self
                        .replan(claim, &error)
                        .await
                        .map_err(|e| remote_outcome(e, claim.attempts, options))?;
                    if plan.inbound_fields(&claim.object) == fields {
                        self.record_call(&claim.connection_id, Some(&error));
                        return Err(connector_outcome(&error, provider, claim.attempts, options));
                    }
                }
                Err(error) => {
                    self.record_call(&claim.connection_id, Some(&error));
                    return Err(connector_outcome(&error, provider, claim.attempts, options));
                }
            }
        };
        // HubSpot's ten-second window: wait for the next one instead of hitting 429.
        let not_before_ms = options
            .budget
            .window_wait(&page.usage)
            .map_or(0, |wait| now_ms() + millis(wait));
        let quota = options
            .budget
            .decide(provider, &page.usage, chrono::Utc::now(), None);
        Ok(Read {
            plan,
            page,
            not_before_ms,
            quota,
        })
    }

    /// Maps a page read with the tenant's plan and encodes its changes.
    fn map_page(&self, claim: &Claim, read: Read) -> Result<Fetched, Outcome> {
        let Read {
            plan,
            page,
            not_before_ms,
            quota,
        } = read;
        let Some(object) = plan.compiled.object(&claim.object) else {
            return Err(Outcome::Fail(
                ErrorReason::FailedPrecondition,
                format!("the mapping plan has no object {}", claim.object),
            ));
        };
        let now = now_ms();
        let mut records = Vec::with_capacity(page.records.len());
        let mut failed = 0_i64;
        let mut dead_letters = Vec::new();
        for provider_record in page.records {
            let mapped = object.apply_inbound(&provider_record);
            if !mapped.errors.is_empty() {
                failed += 1;
                tracing::debug!(
                    record.id = %mapped.id,
                    errors = mapped.errors.len(),
                    "fields of a record could not be mapped; published without them"
                );
                dead_letters.extend(map_letters(claim, &mapped, &provider_record, now));
            }
            let hash = content_hash(&mapped);
            let change = PreparedChange::mapped(
                &claim.connection_id,
                &claim.object,
                &claim.run_id,
                &mapped.record_parts(),
                Some(&provider_record).filter(|_| self.options.keep_provider_records),
            );
            records.push(PageRecord {
                id: mapped.id,
                hash,
                change,
            });
        }
        Ok(Fetched {
            skipped: plan.skipped(&claim.object),
            quota,
            usage: page.usage,
            cursor: page.cursor.0,
            caught_up: page.caught_up,
            estimated_total: page.estimated_total,
            provider_calls: i64::from(page.provider_calls),
            records,
            records_failed: failed,
            dead_letters,
            not_before_ms,
        })
    }

    /// After the CRM refused a field the plan reads: asks schema-discovery to describe the
    /// slice's object again (mapping then sees the drift), drops the cached plan and reads
    /// it again without the rules drift broke.
    async fn replan(
        &self,
        claim: &Claim,
        error: &ConnectorError,
    ) -> Result<Arc<super::remote::Plan>, RemoteError> {
        tracing::warn!(
            %error,
            provider_object = %claim.provider_object,
            "the crm refused a field the mapping plan reads; describing the object again"
        );
        let schema_version = self
            .remote
            .refresh_schema(&claim.tenant, &claim.connection_id, &claim.provider_object)
            .await?;
        self.remote
            .forget_plan(&claim.tenant, &claim.connection_id, claim.plan_version);
        let plan = self
            .remote
            .plan(&claim.tenant, &claim.connection_id, claim.plan_version)
            .await?;
        tracing::info!(
            schema_version,
            left_out = plan.broken.len(),
            "mapping plan read again after the schema refresh"
        );
        Ok(plan)
    }

    /// Commits a fetched page (keeping the slice until `keep_lease_until_ms` when not 0) and
    /// pauses the run when the page used up its API budget. `Ok(true)` when the worker still
    /// holds the slice for its next page.
    async fn commit(
        &self,
        claim: &Claim,
        page: Fetched,
        keep_lease_until_ms: i64,
    ) -> Result<bool, Outcome> {
        let options = &self.options;
        let read = page.records.len();
        let commit = PageCommit {
            records: page.records,
            cursor: page.cursor,
            caught_up: page.caught_up,
            estimated_total: page.estimated_total,
            provider_calls: page.provider_calls,
            records_failed: page.records_failed,
            now_ms: now_ms(),
            not_before_ms: page.not_before_ms,
            keep_lease_until_ms,
            dead_letters: page.dead_letters,
            skipped: page.skipped,
        };
        let committed = self
            .store
            .commit_page(&self.log, claim, &self.holder, commit)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "committing a sync page failed");
                Outcome::Retry(backoff(options, claim.attempts, None))
            })?;
        tracing::Span::current().record("records", read);
        match committed {
            Committed::Discarded => {
                tracing::info!(
                    "sync page discarded: the run was cancelled or the slice taken over"
                );
                Ok(false)
            }
            Committed::Stored {
                published,
                unchanged,
                run_finished,
                kept,
            } => {
                tracing::debug!(published, unchanged, run_finished, "sync page committed");
                if run_finished {
                    self.on_run_ended(&claim.tenant, &claim.connection_id).await;
                }
                if let QuotaDecision::Pause { until } = page.quota
                    && !run_finished
                {
                    let message = format!(
                        "the connection used {} of its {} daily api calls; syncs may use {}%",
                        page.usage.daily_used.unwrap_or_default(),
                        page.usage.daily_limit.unwrap_or_default(),
                        options.daily_quota_share_percent
                    );
                    self.store
                        .pause_with_reason(
                            &claim.run_id,
                            ErrorReason::QuotaExhausted,
                            &message,
                            Some(from_chrono(until)),
                        )
                        .await
                        .map_err(|e| {
                            tracing::warn!(error = %e, "pausing a run over its budget failed");
                            Outcome::Retry(backoff(options, claim.attempts, None))
                        })?;
                    tracing::warn!(%message, resume_at = %until, "sync run paused: api budget used");
                }
                Ok(kept)
            }
        }
    }
}

/// One MAP dead letter per field of `mapped` that failed, carrying the provider record as
/// read and the trace of this page.
fn map_letters(
    claim: &Claim,
    mapped: &syncline_mapping_plan::MappedRecord,
    provider_record: &syncline_proto::common::v1::Record,
    now: i64,
) -> Vec<DeadLetter> {
    let trace_id = syncline_telemetry::current_trace_id().unwrap_or_default();
    mapped
        .errors
        .iter()
        .map(|error| DeadLetter {
            id: syncline_domain::ids::new_resource_id("dlq"),
            connection_id: claim.connection_id.clone(),
            object: claim.object.clone(),
            record_id: mapped.id.clone(),
            stage: DeadLetterStage::Map as i32,
            operation: 0,
            error_reason: ErrorReason::InvalidArgument as i32,
            error_message: error.message.clone(),
            field: error.field.to_string(),
            attempt_count: 1,
            first_failure_time: Some(syncline_service_kit::time::timestamp(now)),
            last_failure_time: Some(syncline_service_kit::time::timestamp(now)),
            record: Some(provider_record.clone()),
            webhook_endpoint_id: String::new(),
            trace_id: trace_id.clone(),
        })
        .collect()
}

/// The span of one page of `claim`: its tenant, connection, run and object, continuing the
/// trace of the request that started the run.
fn page_span(claim: &Claim) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "sync.page",
        tenant.id = %claim.tenant.tenant_id,
        project.id = %claim.tenant.project_id,
        connection.id = %claim.connection_id,
        sync_run.id = %claim.run_id,
        object = %claim.object,
        provider = tracing::field::Empty,
        records = tracing::field::Empty,
    );
    if let Ok(value) = tonic::codegen::http::HeaderValue::from_str(claim.trace_parent.as_str()) {
        let mut headers = tonic::codegen::http::HeaderMap::new();
        headers.insert("traceparent", value);
        syncline_telemetry::propagation::adopt_remote_parent(&span, &headers);
    }
    span
}

/// A page read ahead: the claim it was read at (its cursor), its span, its mapping and
/// whether the reader goes on to the next page (the commit then keeps the slice).
struct Ahead {
    claim: Claim,
    span: tracing::Span,
    mapped: Mapped,
    more: bool,
}

/// A page read ahead, being mapped, or the reason it could not be read.
enum Mapped {
    Task(AbortOnDropHandle<Result<Fetched, Outcome>>),
    Failed(Outcome),
}

impl Mapped {
    /// The mapped page, once its task is done.
    async fn fetched(self, options: &RunOptions) -> Result<Fetched, Outcome> {
        match self {
            Self::Failed(outcome) => Err(outcome),
            Self::Task(task) => task.await.unwrap_or_else(|error| {
                tracing::warn!(%error, "mapping a sync page failed");
                Err(Outcome::Retry(backoff(options, 0, None)))
            }),
        }
    }
}

/// A page read from the CRM, with the plan to map it and the budget's word after it.
struct Read {
    plan: Arc<super::remote::Plan>,
    page: RecordPage,
    /// The slice's next page waits until then (0: no wait).
    not_before_ms: i64,
    quota: QuotaDecision,
}

/// A page read from the CRM and mapped, with what the commit and the budget need to know.
struct Fetched {
    records: Vec<PageRecord>,
    cursor: String,
    caught_up: bool,
    estimated_total: Option<i64>,
    provider_calls: i64,
    records_failed: i64,
    dead_letters: Vec<DeadLetter>,
    /// The slice's next page waits until then (0: no wait).
    not_before_ms: i64,
    usage: syncline_connectors::ApiUsage,
    /// What the tenant's budget says after this page.
    quota: QuotaDecision,
    /// The CRM fields the plan no longer reads (schema drift broke their rules).
    skipped: Option<super::remote::Skipped>,
}

/// Whether `error` is the CRM refusing a read because a field it names does not exist
/// (Salesforce 400 `INVALID_FIELD`, "No such column 'X' on entity 'Y'"). HubSpot never
/// refuses a read for that: it leaves unknown properties out, and the periodic plan check
/// notices the drift.
fn is_unknown_field(error: &ConnectorError, provider: Provider) -> bool {
    match (provider, error) {
        (Provider::Salesforce, ConnectorError::Refused { code, .. }) => code == "INVALID_FIELD",
        (Provider::Salesforce, _) | (Provider::HubSpot, _) => false,
    }
}

fn connector_outcome(
    error: &ConnectorError,
    provider: Provider,
    attempts: i32,
    options: &RunOptions,
) -> Outcome {
    match error {
        ConnectorError::RateLimited { .. }
        | ConnectorError::Unavailable { .. }
        | ConnectorError::Transport(_) => {
            Outcome::Retry(backoff(options, attempts, error.retry_after()))
        }
        ConnectorError::QuotaExhausted => {
            let now = chrono::Utc::now();
            let until = options.budget.after_exhausted(
                provider,
                &syncline_connectors::ApiUsage::default(),
                now,
                None,
            );
            Outcome::Pause(
                ErrorReason::QuotaExhausted,
                "the crm api quota of this connection is used up".into(),
                Some(Duration::from_millis(
                    u64::try_from(from_chrono(until) - from_chrono(now)).unwrap_or(0),
                )),
            )
        }
        ConnectorError::Unauthorized { .. } => Outcome::Pause(
            ErrorReason::NeedsReauth,
            "the crm refused the connection's credentials again after a refresh".into(),
            None,
        ),
        ConnectorError::Refused { .. }
        | ConnectorError::InvalidResponse { .. }
        | ConnectorError::Unsupported { .. } => {
            Outcome::Fail(ErrorReason::ProviderRejected, error.to_string())
        }
    }
}

fn remote_outcome(error: RemoteError, attempts: i32, options: &RunOptions) -> Outcome {
    match error {
        RemoteError::NeedsReauth(message) => {
            Outcome::Pause(ErrorReason::NeedsReauth, message, None)
        }
        RemoteError::Permanent(reason, message) => Outcome::Fail(reason, message),
        RemoteError::Transient(status) => {
            tracing::info!(code = ?status.code(), "a backend call failed; will retry");
            Outcome::Retry(backoff(options, attempts, None))
        }
    }
}

/// Whether a status from another Syncline service is worth retrying.
pub(crate) fn is_transient(status: &Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::ResourceExhausted
            | tonic::Code::Aborted
            | tonic::Code::Internal
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
    )
}
