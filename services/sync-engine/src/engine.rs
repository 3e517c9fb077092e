//! The delivery half of a running sync-engine: its change log, stream settings and webhook
//! dispatcher, as one handle.
//!
//! Appends come from sync runs (`crate::runs`, inside each page's transaction) and from tests
//! through [`Engine::append`]; a running service registers its engine under its listen
//! address so that code in the same process (the end-to-end tests) can find it with
//! [`running`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use syncline_domain::{ApiError, TenantContext};
use syncline_proto::sync::v1::Change;
use syncline_storage::{Backend, Database};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::changelog::stream::StreamOptions;
use crate::changelog::{Appended, ChangeLog, Notifier};
use crate::delivery::{Clock, DeliveryOptions, Dispatcher, SystemClock, outbox};
use crate::lifecycle::{EventLog, Published};
use syncline_proto::common::v1::Event;

/// How the engine delivers.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Webhook attempts, schedule and disablement.
    pub delivery: DeliveryOptions,
    /// `StreamChanges` and `StreamLifecycleEvents` heartbeats, polling and buffering. Polling defaults to on for
    /// PostgreSQL (other engines may append) and off for SQLite.
    pub stream: StreamOptions,
    /// Changes, lifecycle events and delivered deliveries older than this are removed.
    pub retention: Duration,
    /// How often retention runs.
    pub retention_interval: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            delivery: DeliveryOptions::default(),
            stream: StreamOptions::default(),
            retention: Duration::from_secs(7 * 24 * 3600),
            retention_interval: Duration::from_secs(3600),
        }
    }
}

impl EngineOptions {
    /// The options `config` sets; the rest keep their defaults.
    pub fn from_config(config: &syncline_config::SyncEngineConfig) -> Self {
        let delivery = &config.delivery;
        let defaults = Self::default();
        Self {
            delivery: DeliveryOptions {
                retry_schedule: delivery
                    .retry_schedule_secs
                    .iter()
                    .map(|s| Duration::from_secs(*s))
                    .collect(),
                request_timeout: Duration::from_millis(delivery.request_timeout_ms),
                disable_after_dead_messages: delivery.disable_after_dead_messages,
                disable_after_failing_for: Duration::from_secs(
                    delivery
                        .disable_after_failing_days
                        .saturating_mul(24 * 3600),
                ),
                concurrency: delivery.concurrency,
                ..defaults.delivery
            },
            retention: Duration::from_secs(config.retention_days.saturating_mul(24 * 3600)),
            ..defaults
        }
    }
}

/// The change log, lifecycle event log, stream settings and dispatcher of one engine.
#[derive(Debug, Clone)]
pub struct Engine {
    log: ChangeLog,
    events: EventLog,
    dispatcher: Arc<Dispatcher>,
    stream: StreamOptions,
    retention: (Duration, Duration),
}

static RUNNING: LazyLock<Mutex<HashMap<SocketAddr, Engine>>> = LazyLock::new(Default::default);

/// The engine of the sync-engine service listening on `addr` in this process, if any.
pub fn running(addr: SocketAddr) -> Option<Engine> {
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&addr)
        .cloned()
}

pub(crate) fn register(addr: SocketAddr, engine: Engine) {
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(addr, engine);
}

pub(crate) fn unregister(addr: SocketAddr) {
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&addr);
}

impl Engine {
    /// An engine over `db` using the system clock; starts nothing.
    pub fn new(db: Database, mut options: EngineOptions) -> Result<Self, reqwest::Error> {
        if options.stream.poll_interval.is_none() && db_is_shared(&db) {
            options.stream.poll_interval = Some(options.delivery.poll_interval);
        }
        Self::with_clock(db, options, Arc::new(SystemClock))
    }

    /// An engine over `db` whose dispatcher reads `clock`.
    pub fn with_clock(
        db: Database,
        options: EngineOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, reqwest::Error> {
        let wake = Arc::new(Notify::new());
        let dispatcher = Arc::new(Dispatcher::new(
            db.clone(),
            options.delivery,
            clock,
            wake.clone(),
        )?);
        Ok(Self {
            events: EventLog::new(db.clone(), Arc::new(Notifier::default()), wake.clone()),
            log: ChangeLog::new(db, Arc::new(Notifier::default()), wake),
            dispatcher,
            stream: options.stream,
            retention: (options.retention, options.retention_interval),
        })
    }

    /// Appends changes to the tenant's log (see [`ChangeLog::append`]).
    pub async fn append(
        &self,
        tenant: &TenantContext,
        changes: Vec<Change>,
    ) -> Result<Appended, ApiError> {
        self.log.append(tenant, changes).await
    }

    /// The change log.
    pub fn change_log(&self) -> &ChangeLog {
        &self.log
    }

    /// Publishes a lifecycle event to the tenant's event log (see [`EventLog::publish`]).
    pub async fn publish_event(
        &self,
        tenant: &TenantContext,
        event: Event,
    ) -> Result<Published, ApiError> {
        self.events.publish(tenant, event).await
    }

    /// The lifecycle event log.
    pub fn event_log(&self) -> &EventLog {
        &self.events
    }

    /// The webhook dispatcher.
    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// Wakes the background dispatcher (work was queued outside an append).
    pub fn wake_dispatcher(&self) {
        self.dispatcher.wake();
    }

    /// Stream settings.
    pub fn stream_options(&self) -> &StreamOptions {
        &self.stream
    }

    /// Removes changes, lifecycle events and delivered deliveries older than the retention,
    /// once.
    pub async fn run_retention(&self, now_ms: i64) -> Result<(), ApiError> {
        let cutoff =
            now_ms.saturating_sub(i64::try_from(self.retention.0.as_millis()).unwrap_or(0));
        let changes = self.log.prune(cutoff).await?;
        let events = self.events.prune(cutoff).await?;
        let deliveries = outbox::prune_delivered(self.log.database(), cutoff).await?;
        if changes + events + deliveries > 0 {
            tracing::info!(changes, events, deliveries, "retention removed old rows");
        }
        Ok(())
    }

    /// Starts the dispatcher and retention loops; both end with `shutdown` and neither stops
    /// the process when a pass fails (the failure is logged and the next pass retries).
    pub fn spawn_background(&self, shutdown: CancellationToken) {
        tokio::spawn(self.dispatcher.clone().run_background(shutdown.clone()));
        let stopping = self.stream.stopping.clone();
        let ended = shutdown.clone();
        tokio::spawn(async move {
            ended.cancelled().await;
            stopping.cancel();
        });
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(error) = engine.run_retention(syncline_storage::now_ms()).await {
                    tracing::warn!(%error, "retention pass failed");
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(engine.retention.1) => {}
                }
            }
        });
    }
}

fn db_is_shared(db: &Database) -> bool {
    db.backend() == Backend::Postgres
}

#[cfg(test)]
mod config_tests {
    use super::*;

    #[test]
    fn default_configuration_gives_the_default_options() {
        let options = EngineOptions::from_config(&syncline_config::SyncEngineConfig::default());
        let defaults = EngineOptions::default();
        assert_eq!(
            options.delivery.retry_schedule,
            DeliveryOptions::svix_schedule()
        );
        assert_eq!(
            options.delivery.request_timeout,
            defaults.delivery.request_timeout
        );
        assert_eq!(
            options.delivery.disable_after_failing_for,
            defaults.delivery.disable_after_failing_for
        );
        assert_eq!(
            options.delivery.disable_after_dead_messages,
            defaults.delivery.disable_after_dead_messages
        );
        assert_eq!(options.delivery.concurrency, defaults.delivery.concurrency);
        assert_eq!(options.retention, defaults.retention);
    }
}
