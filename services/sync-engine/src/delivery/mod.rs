//! Outbound webhooks: signed per Standard Webhooks, delivered in sequence order per endpoint,
//! retried on a long schedule, dead-lettered when attempts run out, endpoints disabled after
//! persistent failure. The contract is in `docs/delivery.md`.

pub mod outbox;
pub mod payload;
pub mod signature;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use syncline_domain::ApiError;
use syncline_storage::Database;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use outbox::{Claimed, DisablePolicy, FailureOutcome};

/// Where the dispatcher reads the time: the system clock, or a clock tests move by hand.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        syncline_storage::now_ms()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    /// A clock showing `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        Self {
            now_ms: AtomicI64::new(now_ms),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.now_ms.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// How deliveries are attempted.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Delays between attempts: the first attempt is immediate, the n-th retry waits
    /// `retry_schedule[n-1]` after the previous failure; when it is used up the message is
    /// dead-lettered. Default: Svix's (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h).
    pub retry_schedule: Vec<Duration>,
    /// Timeout of one attempt (connect to last byte).
    pub request_timeout: Duration,
    /// Disable an endpoint after this many messages in a row were dead-lettered.
    pub disable_after_dead_messages: u32,
    /// Disable an endpoint after it failed without one success for this long.
    pub disable_after_failing_for: Duration,
    /// How often an idle dispatcher looks for work queued by other processes.
    pub poll_interval: Duration,
    /// Endpoints attempted at once (each endpoint has at most one attempt in flight).
    pub concurrency: usize,
}

impl DeliveryOptions {
    /// Svix's retry schedule after the immediate first attempt.
    pub fn svix_schedule() -> Vec<Duration> {
        [5, 300, 1800, 7200, 18_000, 36_000, 36_000]
            .into_iter()
            .map(Duration::from_secs)
            .collect()
    }

    /// The delay before the next attempt once `attempts_made` attempts failed; `None` when
    /// the schedule is used up.
    pub fn retry_delay(&self, attempts_made: usize) -> Option<Duration> {
        attempts_made
            .checked_sub(1)
            .and_then(|i| self.retry_schedule.get(i))
            .copied()
    }

    fn policy(&self) -> DisablePolicy {
        DisablePolicy {
            consecutive_dead: i32::try_from(self.disable_after_dead_messages).unwrap_or(i32::MAX),
            failing_for_ms: i64::try_from(self.disable_after_failing_for.as_millis())
                .unwrap_or(i64::MAX),
        }
    }
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            retry_schedule: Self::svix_schedule(),
            request_timeout: Duration::from_secs(15),
            disable_after_dead_messages: 5,
            disable_after_failing_for: Duration::from_secs(5 * 24 * 3600),
            poll_interval: Duration::from_secs(1),
            concurrency: 16,
        }
    }
}

/// What one [`Dispatcher::run_due`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Attempts made.
    pub attempted: usize,
    /// Attempts answered 2xx.
    pub delivered: usize,
    /// Failed attempts scheduled for another try.
    pub retrying: usize,
    /// Messages dead-lettered.
    pub dead: usize,
    /// Endpoints disabled.
    pub disabled: usize,
}

struct Settings {
    options: DeliveryOptions,
    clock: Arc<dyn Clock>,
}

/// Attempts due deliveries. One per engine process; several may share a PostgreSQL database.
pub struct Dispatcher {
    db: Database,
    settings: RwLock<Arc<Settings>>,
    manual: AtomicBool,
    pass: tokio::sync::Mutex<()>,
    http: reqwest::Client,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("manual", &self.manual.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The lease on a claimed delivery beyond its request timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// The shortest wait of the background loop, so a due but unclaimable head never spins it.
const MIN_IDLE: Duration = Duration::from_millis(20);

impl Dispatcher {
    /// A dispatcher over `db`; `wake` is signalled when deliveries are queued.
    pub fn new(
        db: Database,
        options: DeliveryOptions,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("syncline-webhooks/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            db,
            settings: RwLock::new(Arc::new(Settings { options, clock })),
            manual: AtomicBool::new(false),
            pass: tokio::sync::Mutex::new(()),
            http,
            wake,
        })
    }

    fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the background loop and makes this dispatcher use `options` and `clock`: from
    /// now on deliveries are attempted only by [`run_due`](Self::run_due). For tests (a
    /// compressed schedule and a clock they move) and for tools that drive delivery by hand.
    /// Waits for a pass in progress to finish.
    pub async fn take_manual_control(&self, options: DeliveryOptions, clock: Arc<dyn Clock>) {
        let _pass = self.pass.lock().await;
        self.manual.store(true, Ordering::SeqCst);
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(Settings { options, clock });
    }

    /// The time on the dispatcher's clock.
    pub fn now_ms(&self) -> i64 {
        self.settings().clock.now_ms()
    }

    /// Wakes the background loop.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Attempts every delivery that is due now, endpoint by endpoint in sequence order, until
    /// none is due; returns what happened.
    pub async fn run_due(&self) -> Result<DispatchReport, ApiError> {
        let _pass = self.pass.lock().await;
        let settings = self.settings();
        let mut report = DispatchReport::default();
        loop {
            let now = settings.clock.now_ms();
            let lease = settings.options.request_timeout + LEASE_MARGIN;
            let lease_until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(0));
            let claimed = outbox::claim_due(
                &self.db,
                now,
                lease_until,
                settings.options.concurrency.max(1),
            )
            .await?;
            if claimed.is_empty() {
                return Ok(report);
            }
            let outcomes: Vec<Result<Outcome, ApiError>> = futures::stream::iter(claimed)
                .map(|claimed| self.attempt(&settings, claimed))
                .buffer_unordered(settings.options.concurrency.max(1))
                .collect()
                .await;
            for outcome in outcomes {
                report.attempted += 1;
                match outcome? {
                    Outcome::Delivered => report.delivered += 1,
                    Outcome::Failed(FailureOutcome::Retry(_)) => report.retrying += 1,
                    Outcome::Failed(FailureOutcome::Dead { endpoint_disabled }) => {
                        report.dead += 1;
                        report.disabled += usize::from(endpoint_disabled);
                    }
                    Outcome::Failed(FailureOutcome::LeaseLost) | Outcome::LeaseLost => {}
                }
            }
        }
    }

    #[tracing::instrument(
        skip_all,
        fields(
            tenant.id = %claimed.tenant_id,
            webhook.endpoint_id = %claimed.endpoint_id,
            webhook.id = %claimed.id,
            attempt = claimed.attempt_count + 1,
        )
    )]
    async fn attempt(&self, settings: &Settings, claimed: Claimed) -> Result<Outcome, ApiError> {
        let result = self.send(settings, &claimed).await;
        let now = settings.clock.now_ms();
        match result {
            Ok(()) => {
                let recorded = outbox::record_success(&self.db, &claimed, now).await?;
                Ok(if recorded {
                    Outcome::Delivered
                } else {
                    Outcome::LeaseLost
                })
            }
            Err(error) => {
                let attempts = usize::try_from(claimed.attempt_count).unwrap_or(0) + 1;
                let delay = settings
                    .options
                    .retry_delay(attempts)
                    .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                tracing::info!(%error, retry_in_ms = ?delay, "webhook delivery attempt failed");
                let trace_id = syncline_telemetry::current_trace_id().unwrap_or_default();
                let outcome = outbox::record_failure(
                    &self.db,
                    &claimed,
                    now,
                    &error,
                    delay,
                    settings.options.policy(),
                    &trace_id,
                )
                .await?;
                if let FailureOutcome::Dead { endpoint_disabled } = outcome {
                    tracing::warn!(endpoint_disabled, "webhook delivery dead-lettered");
                }
                Ok(Outcome::Failed(outcome))
            }
        }
    }

    /// One POST; `Err` carries a description without the secret or the URL.
    async fn send(&self, settings: &Settings, claimed: &Claimed) -> Result<(), String> {
        let key = signature::decode_secret(&claimed.signing_secret).map_err(|e| e.to_string())?;
        let body = payload::payload_body(&claimed.payload).map_err(|e| e.to_string())?;
        let timestamp = settings.clock.now_ms().div_euclid(1000);
        let signature =
            signature::sign(&key, &claimed.id, timestamp, &body).map_err(|e| e.to_string())?;
        let response = self
            .http
            .post(&claimed.url)
            .timeout(settings.options.request_timeout)
            .header("content-type", "application/json")
            .header("webhook-id", &claimed.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("request failed: {}", e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("endpoint answered http {}", status.as_u16()))
        }
    }

    /// Runs passes until `shutdown`: after each, waits for new deliveries in this process, the
    /// next due attempt, or the poll interval (work queued by other engines). Shutdown does
    /// not wait for an attempt in flight: its lease lapses and it is attempted again, which
    /// receivers dedupe by `webhook-id`. Stops attempting once under manual control.
    pub async fn run_background(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let settings = self.settings();
            let mut wait = settings.options.poll_interval;
            if !self.manual.load(Ordering::SeqCst) {
                // After a failed pass, wait the poll interval before trying again.
                let next_due = match self.run_due().await {
                    Ok(_) => outbox::next_due(&self.db).await,
                    Err(error) => {
                        tracing::warn!(%error, "webhook dispatch pass failed");
                        Ok(None)
                    }
                };
                match next_due {
                    Ok(Some(due)) => {
                        let until = due.saturating_sub(settings.clock.now_ms()).max(0);
                        wait = wait.min(Duration::from_millis(u64::try_from(until).unwrap_or(0)));
                    }
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "failed to read the next due delivery"),
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait.max(MIN_IDLE)) => {}
            }
        }
    }
}

enum Outcome {
    Delivered,
    Failed(FailureOutcome),
    LeaseLost,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_is_svix_after_an_immediate_attempt() {
        let options = DeliveryOptions::default();
        let secs: Vec<u64> = (1..=8)
            .filter_map(|n| options.retry_delay(n))
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(secs, [5, 300, 1800, 7200, 18_000, 36_000, 36_000]);
        assert_eq!(options.retry_delay(8), None, "8 attempts, then dead");
        assert_eq!(options.retry_delay(0), None);
    }

    #[tokio::test]
    async fn deliveries_survive_a_dispatcher_that_died_mid_attempt() {
        use crate::changelog::ChangeLog;
        use crate::changelog::tests::{change, tenant};
        use crate::store::Store;
        use syncline_proto::sync::v1::{WebhookEndpoint, WebhookTopic};

        let (tx, received) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
        let received = Arc::new(tokio::sync::Mutex::new(received));
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let tx = tx.clone();
                    async move {
                        let id = headers["webhook-id"].to_str().unwrap().to_owned();
                        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        let record = body["data"]["record"]["id"].as_str().unwrap().to_owned();
                        tx.send((id, record)).unwrap();
                        axum::http::StatusCode::OK
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        syncline_test_support::storage::on_every_backend(
            "deliveries_survive_a_dispatcher_that_died_mid_attempt",
            syncline_config::ServiceName::SyncEngine,
            crate::MIGRATIONS,
            |db| {
                let url = url.clone();
                let received = received.clone();
                async move {
                    let mut received = received.lock().await;
                    let acme = tenant("p1", "acme");
                    let endpoint = WebhookEndpoint {
                        id: "whk_1".into(),
                        url,
                        topics: vec![WebhookTopic::Changes as i32],
                        ..WebhookEndpoint::default()
                    };
                    Store::new(db.clone())
                        .insert_webhook_endpoint(&acme, &endpoint, "whsec_AAAA")
                        .await
                        .unwrap();
                    let log = ChangeLog::standalone(db.clone());
                    log.append(
                        &acme,
                        vec![
                            change("conn_a", "contact", "c1"),
                            change("conn_a", "contact", "c2"),
                        ],
                    )
                    .await
                    .unwrap();
                    let clock = Arc::new(ManualClock::new(syncline_storage::now_ms()));
                    // The first engine claims c1 and dies before recording anything.
                    let lease = Duration::from_secs(45);
                    let lost = outbox::claim_due(&db, clock.now_ms(), clock.now_ms() + 45_000, 10)
                        .await
                        .unwrap();
                    assert_eq!(lost.len(), 1);
                    // The engine that starts next has only the database.
                    let dispatcher = Dispatcher::new(
                        db.clone(),
                        DeliveryOptions::default(),
                        clock.clone(),
                        Arc::new(Notify::new()),
                    )
                    .unwrap();
                    let report = dispatcher.run_due().await.unwrap();
                    assert_eq!(report.attempted, 0, "c1 is leased and c2 waits behind it");
                    clock.advance(lease);
                    let report = dispatcher.run_due().await.unwrap();
                    assert_eq!((report.attempted, report.delivered), (2, 2));
                    let first = received.recv().await.unwrap();
                    let second = received.recv().await.unwrap();
                    assert_eq!((first.1.as_str(), second.1.as_str()), ("c1", "c2"));
                    assert_eq!(first.0, lost[0].id, "the claimed message keeps its id");
                    assert_eq!(dispatcher.run_due().await.unwrap().attempted, 0);
                }
            },
        )
        .await;
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(Duration::from_secs(5));
        assert_eq!(clock.now_ms(), 6_000);
    }
}
