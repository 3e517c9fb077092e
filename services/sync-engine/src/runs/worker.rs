//! The workers: each claims one (run, object) slice, reads ONE page from the CRM, maps it
//! with the tenant's compiled plan, commits changes, record state and checkpoint together,
//! and gives the slice back so other tenants get their turn.
//!
//! Failures never drop a page: a retryable provider error (429, 5xx, transport) releases the
//! slice with a backoff (the provider's `Retry-After` when given, else exponential with
//! jitter) and a per-connection circuit breaker stops calling a connection that keeps
//! failing; a 401 is reported to auth-vault once and retried with the new token; a
//! connection that needs re-authorization pauses the run (NEEDS_REAUTH); the provider's quota,
//! or the tenant's budget (a share of its daily quota), pauses the run until it resumes by
//! itself; anything a retry cannot fix fails the run with its reason.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use syncline_connectors::{
    Connector, ConnectorError, Credentials, Provider, ReadCursor, ReadRequest, RecordPage,
    RecordReader,
};
use syncline_domain::ApiError;
use syncline_proto::common::v1::ErrorReason;
use syncline_proto::sync::v1::Change;
use syncline_storage::now_ms;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::Instrument;

use super::remote::RemoteError;
use super::store::{Claim, Committed, DELETED_HASH, PageCommit, PageRecord};
use super::{RunOptions, Runner};

/// Consecutive retryable failures after which a connection's breaker opens (for the
/// longest backoff, `max_backoff`).
const BREAKER_THRESHOLD: u32 = 5;

/// The content hash of a mapped record: its fields in rule order and its deleted flag
/// (not its modified time: a record touched without a change is unchanged).
pub(crate) fn content_hash(record: &syncline_mapping_plan::MappedRecord) -> String {
    if record.deleted {
        return DELETED_HASH.to_owned();
    }
    let mut hasher = Sha256::new();
    for (name, value) in &record.fields {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(prost::Message::encode_to_vec(value));
        hasher.update([0xff]);
    }
    let digest = hasher.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The wait before retry `attempt` (0-based): the provider's `Retry-After` when it gave one,
/// else `1 s × 2^attempt` capped at `max`, with full jitter in its upper half.
pub(crate) fn backoff(attempt: i32, retry_after: Option<Duration>, max: Duration) -> Duration {
    if let Some(wait) = retry_after {
        return wait.min(max);
    }
    let exp = 1_u64 << u32::try_from(attempt.clamp(0, 20)).unwrap_or(20);
    let ceiling = Duration::from_secs(exp).min(max);
    let half = ceiling / 2;
    let jitter = rand::random_range(0..=u64::try_from(half.as_millis()).unwrap_or(0));
    half + Duration::from_millis(jitter)
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

    async fn process(&self, claim: Claim) {
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
        if let Ok(value) = tonic::codegen::http::HeaderValue::from_str(claim.trace_parent.as_str())
        {
            let mut headers = tonic::codegen::http::HeaderMap::new();
            headers.insert("traceparent", value);
            syncline_telemetry::propagation::adopt_remote_parent(&span, &headers);
        }
        let result = self.page(&claim).instrument(span.clone()).await;
        let handled = match result {
            Ok(()) => Ok(()),
            Err(outcome) => self.settle(&claim, outcome).instrument(span).await,
        };
        if let Err(error) = handled {
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
                self.store
                    .fail(&claim.run_id, reason, &message, now_ms())
                    .await?;
                self.store.release(claim, &self.holder, None).await
            }
        }
    }

    fn breaker_open_for(&self, connection: &str) -> Option<Duration> {
        let breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let (_, open_until) = breakers.get(connection)?;
        let left = *open_until - now_ms();
        (left > 0).then(|| Duration::from_millis(u64::try_from(left).unwrap_or(0)))
    }

    fn record_call(&self, connection: &str, failed: bool) {
        let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        if !failed {
            breakers.remove(connection);
            return;
        }
        let entry = breakers.entry(connection.to_owned()).or_insert((0, 0));
        entry.0 += 1;
        if entry.0 >= BREAKER_THRESHOLD {
            entry.1 = now_ms() + millis(self.options.max_backoff);
            entry.0 = 0;
            tracing::warn!(
                connection.id = connection,
                "circuit breaker open: the crm keeps failing"
            );
        }
    }

    async fn page(&self, claim: &Claim) -> Result<(), Outcome> {
        let options = &self.options;
        if let Some(wait) = self.breaker_open_for(&claim.connection_id) {
            return Err(Outcome::Retry(wait));
        }
        let plan = self
            .remote
            .plan(&claim.tenant, &claim.connection_id, claim.plan_version)
            .await
            .map_err(|e| remote_outcome(e, claim.attempts, options))?;
        let Some(object) = plan.compiled.object(&claim.object) else {
            return Err(Outcome::Fail(
                ErrorReason::FailedPrecondition,
                format!("the mapping plan has no object {}", claim.object),
            ));
        };
        let fields = plan.inbound_fields(&claim.object);
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
        let page: RecordPage = loop {
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
                    self.record_call(&claim.connection_id, false);
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
                Err(error) => {
                    self.record_call(&claim.connection_id, error.is_retryable());
                    return Err(connector_outcome(&error, claim.attempts, options));
                }
            }
        };
        let now = now_ms();
        let read = page.records.len();
        let mut records = Vec::with_capacity(read);
        let mut failed = 0_i64;
        for provider_record in page.records {
            let mapped = object.apply_inbound(&provider_record);
            if !mapped.errors.is_empty() {
                failed += 1;
                tracing::debug!(
                    record.id = %mapped.id,
                    errors = mapped.errors.len(),
                    "fields of a record could not be mapped; published without them"
                );
            }
            let hash = content_hash(&mapped);
            let id = mapped.id.clone();
            records.push(PageRecord {
                id,
                hash,
                change: Change {
                    connection_id: claim.connection_id.clone(),
                    object: claim.object.clone(),
                    record: Some(mapped.into_record()),
                    provider_record: Some(provider_record),
                    sync_run_id: claim.run_id.clone(),
                    ..Change::default()
                },
            });
        }
        // HubSpot's ten-second window: wait for the next one instead of hitting 429.
        let not_before_ms = match (page.usage.window_remaining, page.usage.window_ms) {
            (Some(remaining), Some(window)) if remaining <= 1 => {
                now + i64::try_from(window).unwrap_or(10_000)
            }
            _ => 0,
        };
        let commit = PageCommit {
            records,
            cursor: page.cursor.0.clone(),
            caught_up: page.caught_up,
            estimated_total: page.estimated_total,
            provider_calls: i64::from(page.provider_calls),
            records_failed: failed,
            now_ms: now,
            not_before_ms,
        };
        let committed = self
            .store
            .commit_page(&self.log, claim, &self.holder, commit)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "committing a sync page failed");
                Outcome::Retry(backoff(claim.attempts, None, options.max_backoff))
            })?;
        tracing::Span::current().record("records", read);
        match committed {
            Committed::Discarded => {
                tracing::info!(
                    "sync page discarded: the run was cancelled or the slice taken over"
                );
            }
            Committed::Stored {
                published,
                unchanged,
                run_finished,
            } => {
                tracing::debug!(published, unchanged, run_finished, "sync page committed");
                if let (Some(used), Some(limit)) = (page.usage.daily_used, page.usage.daily_limit)
                    && limit > 0
                    && used.saturating_mul(100)
                        >= limit.saturating_mul(u64::from(options.daily_quota_share_percent))
                    && !run_finished
                {
                    let message = format!(
                        "the connection used {used} of its {limit} daily api calls; syncs may use {}%",
                        options.daily_quota_share_percent
                    );
                    self.store
                        .pause_with_reason(
                            &claim.run_id,
                            ErrorReason::QuotaExhausted,
                            &message,
                            Some(now_ms() + millis(options.quota_pause)),
                        )
                        .await
                        .map_err(|e| {
                            tracing::warn!(error = %e, "pausing a run over its budget failed");
                            Outcome::Retry(backoff(claim.attempts, None, options.max_backoff))
                        })?;
                    tracing::warn!(%message, "sync run paused: api budget used");
                }
            }
        }
        Ok(())
    }
}

fn connector_outcome(error: &ConnectorError, attempts: i32, options: &RunOptions) -> Outcome {
    match error {
        ConnectorError::RateLimited { .. }
        | ConnectorError::Unavailable { .. }
        | ConnectorError::Transport(_) => {
            Outcome::Retry(backoff(attempts, error.retry_after(), options.max_backoff))
        }
        ConnectorError::QuotaExhausted => Outcome::Pause(
            ErrorReason::QuotaExhausted,
            "the crm api quota of this connection is used up".into(),
            Some(options.quota_pause),
        ),
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
            Outcome::Retry(backoff(attempts, None, options.max_backoff))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_honours_retry_after_and_grows_with_jitter_up_to_the_cap() {
        let max = Duration::from_secs(300);
        assert_eq!(
            backoff(3, Some(Duration::from_secs(7)), max),
            Duration::from_secs(7)
        );
        for attempt in 0..12 {
            let ceiling = Duration::from_secs(1 << attempt).min(max);
            let wait = backoff(attempt, None, max);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "{attempt}: {wait:?}"
            );
        }
        assert!(backoff(40, None, max) <= max);
    }
}
