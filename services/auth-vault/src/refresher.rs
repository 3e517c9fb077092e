//! The proactive refresher: tokens are refreshed before they expire, so that services
//! asking for one (GetAccessToken) almost never wait for a provider.
//!
//! Every `interval` a sweep reads the connections whose token expires within `lookahead`
//! (the indexed `credentials.expires_at_ms`), oldest expiry first. Each connection is due
//! at `expires_at - lookahead + jitter(id)`, the jitter stable per connection and at most
//! `jitter`, so tokens obtained together (a mass import, a restart) are spread out instead
//! of refreshed together. Due connections are refreshed through GetAccessToken's own path
//! (the in-process single-flight lock, the cross-process lease, compare-and-set on the
//! token version), at most `max_concurrency` at once and paced per provider at its
//! requests-per-second budget. Counters (refreshed, failed, skipped, in flight) are read
//! with [`Refresher::stats`] and logged after each sweep.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::Row;
use syncline_config::AuthVaultConfig;
use syncline_domain::{ApiError, ProjectId, TenantContext, TenantId};
use syncline_proto::common::v1::ConnectionStatus;
use syncline_storage::now_ms;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::audit::SYSTEM_ACTOR;
use crate::oauth::ProviderKind;
use crate::tokens;
use crate::vault::Vault;

/// Candidates read per query.
const PAGE: i64 = 500;

/// How the refresher runs.
#[derive(Debug, Clone)]
pub struct RefresherSettings {
    /// Between sweeps; zero: no background sweeps.
    pub interval: Duration,
    /// Tokens expiring within this are refreshed.
    pub lookahead_ms: i64,
    /// The most a connection's refresh is put off, to spread refreshes.
    pub jitter_ms: i64,
    /// Refreshes in flight at once.
    pub max_concurrency: usize,
    /// Token requests per second to Salesforce.
    pub salesforce_rps: u32,
    /// Token requests per second to HubSpot.
    pub hubspot_rps: u32,
}

impl RefresherSettings {
    /// From `auth_vault.refresher`.
    pub fn from_config(config: &AuthVaultConfig) -> Self {
        let r = &config.refresher;
        let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
        Self {
            interval: Duration::from_secs(r.interval_secs),
            lookahead_ms: ms(r.lookahead_secs),
            jitter_ms: ms(r.jitter_secs),
            max_concurrency: usize::try_from(r.max_concurrency).unwrap_or(1).max(1),
            salesforce_rps: r.salesforce_rps.max(1),
            hubspot_rps: r.hubspot_rps.max(1),
        }
    }
}

/// Paces calls to at most one per `1 / rps`: never a burst, so no window of any length
/// sees more than its share.
#[derive(Debug)]
struct Pacer {
    spacing: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(rps: u32) -> Self {
        Self {
            spacing: Duration::from_secs(1) / rps.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(Instant::now());
            *next = at + self.spacing;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[derive(Debug, Default)]
struct Counters {
    sweeps: AtomicU64,
    refreshed: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    in_flight: AtomicU64,
}

/// The refresher's counters since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefresherStats {
    /// Sweeps finished.
    pub sweeps: u64,
    /// Tokens replaced by a refresh.
    pub refreshed: u64,
    /// Refreshes that failed (provider down, refused, revoked).
    pub failed: u64,
    /// Due connections found fresh when their turn came (refreshed meanwhile, or too
    /// short-lived to refresh yet).
    pub skipped: u64,
    /// Refreshes running now.
    pub in_flight: u64,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Connections expiring within the look-ahead.
    pub candidates: u64,
    /// Of those, not due yet (their jitter puts them off).
    pub not_due: u64,
    /// Tokens replaced.
    pub refreshed: u64,
    /// Refreshes that failed.
    pub failed: u64,
    /// Found fresh when their turn came.
    pub skipped: u64,
}

enum Outcome {
    Refreshed,
    Failed,
    Skipped,
}

/// Refreshes tokens ahead of expiry.
#[derive(Debug, Clone)]
pub struct Refresher {
    vault: Arc<Vault>,
    settings: RefresherSettings,
    counters: Arc<Counters>,
    pacers: Arc<[Pacer; 2]>,
    sweeping: Arc<Mutex<()>>,
}

/// A stable spread in `[0, max]` for a connection.
fn jitter(id: &str, max: i64) -> i64 {
    if max <= 0 {
        return 0;
    }
    // FNV-1a: stable across processes and releases, unlike the std hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let span = u64::try_from(max).unwrap_or(0).saturating_add(1);
    i64::try_from(hash % span).unwrap_or(0)
}

impl Refresher {
    /// A refresher for `vault`.
    pub fn new(vault: Arc<Vault>, settings: RefresherSettings) -> Self {
        let pacers = Arc::new([
            Pacer::new(settings.salesforce_rps),
            Pacer::new(settings.hubspot_rps),
        ]);
        Self {
            vault,
            settings,
            counters: Arc::default(),
            pacers,
            sweeping: Arc::default(),
        }
    }

    /// Publishes the counters as OpenTelemetry instruments on `meter`:
    /// `syncline.auth_vault.refresher.{sweeps,refreshed,failed,skipped}` (monotonic
    /// counters) and `syncline.auth_vault.refresher.in_flight` (a gauge). They are read
    /// from the same atomics as [`Refresher::stats`] whenever the meter collects.
    pub fn register_metrics(&self, meter: &opentelemetry::metrics::Meter) {
        type Read = fn(&Counters) -> u64;
        let counters: [(&'static str, &'static str, Read); 4] = [
            ("sweeps", "refresher sweeps finished", |c| {
                c.sweeps.load(Ordering::Relaxed)
            }),
            ("refreshed", "tokens replaced ahead of expiry", |c| {
                c.refreshed.load(Ordering::Relaxed)
            }),
            ("failed", "proactive refreshes that failed", |c| {
                c.failed.load(Ordering::Relaxed)
            }),
            ("skipped", "due connections found fresh", |c| {
                c.skipped.load(Ordering::Relaxed)
            }),
        ];
        for (name, description, read) in counters {
            let source = self.counters.clone();
            // The SDK keeps the callback for the meter provider's lifetime.
            let _ = meter
                .u64_observable_counter(format!("syncline.auth_vault.refresher.{name}"))
                .with_description(description)
                .with_callback(move |observer| observer.observe(read(&source), &[]))
                .build();
        }
        let source = self.counters.clone();
        let _ = meter
            .u64_observable_gauge("syncline.auth_vault.refresher.in_flight")
            .with_description("proactive refreshes running now")
            .with_callback(move |observer| {
                observer.observe(source.in_flight.load(Ordering::Relaxed), &[]);
            })
            .build();
    }

    /// The counters so far.
    pub fn stats(&self) -> RefresherStats {
        let c = &self.counters;
        RefresherStats {
            sweeps: c.sweeps.load(Ordering::Relaxed),
            refreshed: c.refreshed.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
            in_flight: c.in_flight.load(Ordering::Relaxed),
        }
    }

    /// Sweeps every `interval` until `shutdown` (not at all when the interval is zero).
    /// Shutdown does not wait for a sweep; a failed sweep is logged and the next one runs.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.settings.interval.is_zero() {
            return;
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                result = self.sweep(now_ms()) => {
                    if let Err(error) = result {
                        tracing::warn!(%error, "token refresher sweep failed");
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.settings.interval) => {}
            }
        }
    }

    /// One sweep as if the time were `now`: refreshes every connection due by then and
    /// returns when all of them are done. `now` decides which connections are due; each
    /// refresh then checks the token against the real clock, like GetAccessToken with a
    /// `min_validity` of the look-ahead (capped at half the token's lifetime, so tokens
    /// shorter-lived than twice the look-ahead are skipped until half their life is gone).
    /// Sweeps of one process never overlap.
    pub async fn sweep(&self, now: i64) -> Result<SweepReport, ApiError> {
        use tracing::Instrument as _;
        use tracing::field::Empty;
        // One span per sweep, exported with the traces: its fields are the sweep's counts.
        let span = tracing::info_span!(
            "auth-vault token refresher sweep",
            candidates = Empty,
            not_due = Empty,
            refreshed = Empty,
            failed = Empty,
            skipped = Empty,
        );
        let report = self.sweep_in_span(now).instrument(span.clone()).await?;
        span.record("candidates", report.candidates);
        span.record("not_due", report.not_due);
        span.record("refreshed", report.refreshed);
        span.record("failed", report.failed);
        span.record("skipped", report.skipped);
        Ok(report)
    }

    async fn sweep_in_span(&self, now: i64) -> Result<SweepReport, ApiError> {
        use tracing::Instrument as _;
        let _exclusive = self.sweeping.lock().await;
        let started = std::time::Instant::now();
        let horizon = now.saturating_add(self.settings.lookahead_ms);
        let semaphore = Arc::new(Semaphore::new(self.settings.max_concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        let mut report = SweepReport::default();
        let mut after = (i64::MIN, String::new());
        loop {
            // The one cross-tenant read: which connections expire soon. Each refresh then
            // runs tenant-scoped, exactly as GetAccessToken does.
            let rows = sqlx::query(
                "SELECT c.project_id, c.tenant_id, c.connection_id, c.token_version,
                        c.expires_at_ms, n.provider
                 FROM credentials c
                 JOIN connections n ON n.project_id = c.project_id
                      AND n.tenant_id = c.tenant_id AND n.id = c.connection_id
                 WHERE c.expires_at_ms > 0 AND c.expires_at_ms <= $1
                   AND (c.expires_at_ms > $2 OR (c.expires_at_ms = $2 AND c.connection_id > $3))
                   AND n.status IN ($4, $5) AND LENGTH(c.refresh_token) > 0
                 ORDER BY c.expires_at_ms, c.connection_id LIMIT $6",
            )
            .bind(horizon)
            .bind(after.0)
            .bind(&after.1)
            .bind(ConnectionStatus::Active as i32)
            .bind(ConnectionStatus::Degraded as i32)
            .bind(PAGE)
            .fetch_all(self.vault.store.db().pool())
            .await
            .map_err(ApiError::internal)?;
            let full = i64::try_from(rows.len()).unwrap_or(0) == PAGE;
            for row in rows {
                let project: String = row.try_get("project_id").map_err(ApiError::internal)?;
                let tenant: String = row.try_get("tenant_id").map_err(ApiError::internal)?;
                let id: String = row.try_get("connection_id").map_err(ApiError::internal)?;
                let version: i64 = row.try_get("token_version").map_err(ApiError::internal)?;
                let expires_at: i64 = row.try_get("expires_at_ms").map_err(ApiError::internal)?;
                let provider: i32 = row.try_get("provider").map_err(ApiError::internal)?;
                after = (expires_at, id.clone());
                report.candidates += 1;
                let due =
                    expires_at - self.settings.lookahead_ms + jitter(&id, self.settings.jitter_ms);
                if due > now {
                    report.not_due += 1;
                    continue;
                }
                let context = TenantContext {
                    project_id: ProjectId::parse(project).map_err(ApiError::internal)?,
                    tenant_id: TenantId::parse(tenant).map_err(ApiError::internal)?,
                    subject: SYSTEM_ACTOR.to_owned(),
                };
                let permit = semaphore
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(ApiError::internal)?;
                let this = self.clone();
                tasks.spawn(
                    async move {
                        let outcome = this.refresh_one(&context, &id, version, provider).await;
                        drop(permit);
                        outcome
                    }
                    .in_current_span(),
                );
                // Collect finished refreshes as we go, so the set stays small.
                while let Some(done) = tasks.try_join_next() {
                    tally(&mut report, done);
                }
            }
            if !full {
                break;
            }
        }
        while let Some(done) = tasks.join_next().await {
            tally(&mut report, done);
        }
        self.counters.sweeps.fetch_add(1, Ordering::Relaxed);
        let stats = self.stats();
        if report.candidates > 0 {
            tracing::info!(
                candidates = report.candidates,
                not_due = report.not_due,
                refreshed = report.refreshed,
                failed = report.failed,
                skipped = report.skipped,
                total.refreshed = stats.refreshed,
                total.failed = stats.failed,
                total.skipped = stats.skipped,
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "token refresher sweep"
            );
        }
        Ok(report)
    }

    async fn refresh_one(
        &self,
        tenant: &TenantContext,
        id: &str,
        version: i64,
        provider: i32,
    ) -> Outcome {
        match ProviderKind::from_proto(provider) {
            Some(ProviderKind::Salesforce) => self.pacers[0].wait().await,
            Some(ProviderKind::HubSpot) => self.pacers[1].wait().await,
            None => return Outcome::Failed,
        }
        self.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let result =
            tokens::get_access_token(&self.vault, tenant, id, Some(self.settings.lookahead_ms))
                .await;
        self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        let outcome = match result {
            Ok(token) if token.version > version => Outcome::Refreshed,
            Ok(_) => Outcome::Skipped,
            Err(error) => {
                tracing::info!(connection.id = id, %error, "proactive refresh failed");
                Outcome::Failed
            }
        };
        let counter = match outcome {
            Outcome::Refreshed => &self.counters.refreshed,
            Outcome::Failed => &self.counters.failed,
            Outcome::Skipped => &self.counters.skipped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        outcome
    }
}

fn tally(report: &mut SweepReport, done: Result<Outcome, tokio::task::JoinError>) {
    match done {
        Ok(Outcome::Refreshed) => report.refreshed += 1,
        Ok(Outcome::Skipped) => report.skipped += 1,
        Ok(Outcome::Failed) | Err(_) => report.failed += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_stable_and_bounded() {
        assert_eq!(jitter("conn_a", 0), 0);
        let a = jitter("conn_a", 120_000);
        assert_eq!(a, jitter("conn_a", 120_000));
        assert!((0..=120_000).contains(&a));
        let spread: std::collections::HashSet<i64> = (0..100)
            .map(|i| jitter(&format!("conn_{i}"), 120_000) / 10_000)
            .collect();
        assert!(spread.len() > 8, "{spread:?}");
    }

    #[tokio::test]
    async fn the_pacer_never_bursts() {
        let pacer = Pacer::new(100);
        let start = Instant::now();
        for _ in 0..5 {
            pacer.wait().await;
        }
        // The first call goes at once, each further one 10 ms after the previous.
        assert!(start.elapsed() >= Duration::from_millis(40));
    }
}
