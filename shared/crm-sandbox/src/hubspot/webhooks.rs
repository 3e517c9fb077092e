//! HubSpot webhook delivery: event batches (JSON arrays), v1 and v3 signatures, retries.
//!
//! Each change is turned into events for every app installed on the portal that subscribed
//! to it. Events of one app are batched (up to `maxEventsPerRequest`, 100 like HubSpot) and
//! POSTed to the app's target URL with `X-HubSpot-Signature` (v1), `X-HubSpot-Signature-v3`
//! and `X-HubSpot-Request-Timestamp`. A batch is retried on connection failure, timeout,
//! 5xx, 429 (honouring `Retry-After`) and any other status except 400/401/403/404/405, up to
//! `maxAttempts` times, with `attemptNumber` counting up from 0 and fresh signatures each
//! time. Every attempt is reported on a broadcast channel so tests wait on events, not time.

use super::state::{AppConfig, lock};
use super::store::{ChangeKind, ChangeRecord, ChangeSource};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Lower-case hex of bytes.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// v1 signature: hex SHA-256 of `client_secret + body`.
#[must_use]
pub fn signature_v1(client_secret: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(client_secret.as_bytes());
    h.update(body);
    hex(&h.finalize())
}

/// v2 signature: hex SHA-256 of `client_secret + method + uri + body`.
#[must_use]
pub fn signature_v2(client_secret: &str, method: &str, uri: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(client_secret.as_bytes());
    h.update(method.as_bytes());
    h.update(uri.as_bytes());
    h.update(body);
    hex(&h.finalize())
}

/// v3 signature: base64 HMAC-SHA256 keyed by the client secret over
/// `method + uri + body + timestamp`.
#[must_use]
pub fn signature_v3(
    client_secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: &str,
) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()) else {
        return String::new();
    };
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// One subscription of an app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// `subscriptionId` in events.
    pub id: u64,
    /// `contact.creation`, `deal.propertyChange`, `object.deletion`, …
    pub event_type: String,
    /// For `object.*`: the custom object type id; `None` means every custom object.
    #[serde(default)]
    pub object_type_id: Option<String>,
    /// For `*.propertyChange`: the property; `None` means every property (sandbox extension).
    #[serde(default)]
    pub property_name: Option<String>,
}

/// How deliveries are retried.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Attempts in total (HubSpot: 10).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles after each.
    pub initial_backoff_ms: u64,
    /// Upper bound of the delay (also caps `Retry-After`).
    pub max_backoff_ms: u64,
    /// Request timeout.
    pub timeout_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            timeout_ms: 5_000,
        }
    }
}

/// An app's webhook settings (the app's "target URL" and subscriptions).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct WebhookSettings {
    /// Where batches are POSTed.
    pub target_url: String,
    /// Subscriptions; the default subscribes to every creation, deletion and property change.
    pub subscriptions: Vec<Subscription>,
    /// Concurrent requests per app (HubSpot's `maxConcurrentRequests`).
    pub max_concurrent_requests: usize,
    /// Events per request (HubSpot: up to 100).
    pub max_events_per_request: usize,
    /// Retry behaviour.
    pub retry: RetryPolicy,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            target_url: String::new(),
            subscriptions: default_subscriptions(),
            max_concurrent_requests: 10,
            max_events_per_request: 100,
            retry: RetryPolicy::default(),
        }
    }
}

/// Creation, deletion and property-change subscriptions for contacts, companies, deals and
/// every custom object.
#[must_use]
pub fn default_subscriptions() -> Vec<Subscription> {
    let mut out = Vec::new();
    let mut id = 2_881_778;
    for prefix in ["contact", "company", "deal", "object"] {
        for kind in ["creation", "deletion", "propertyChange"] {
            out.push(Subscription {
                id,
                event_type: format!("{prefix}.{kind}"),
                object_type_id: None,
                property_name: None,
            });
            id += 1;
        }
    }
    out
}

/// One webhook event as sent (field order as HubSpot's).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    /// App id.
    pub app_id: u64,
    /// Event id.
    pub event_id: u64,
    /// Subscription id.
    pub subscription_id: u64,
    /// Portal id.
    pub portal_id: u64,
    /// When the change happened, epoch ms.
    pub occurred_at: i64,
    /// `contact.creation`, …
    pub subscription_type: String,
    /// 0 on the first attempt.
    pub attempt_number: u32,
    /// Record id.
    pub object_id: u64,
    /// `CRM` or `INTEGRATION`.
    pub change_source: String,
    /// `NEW` on creation, `DELETED` on deletion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_flag: Option<String>,
    /// Custom object type id, for `object.*` events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_type_id: Option<String>,
    /// Changed property.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property_name: Option<String>,
    /// Its new value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property_value: Option<String>,
}

/// What happened to one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum DeliveryOutcome {
    /// 2xx.
    Delivered,
    /// Failed; will be retried after `delayMs`.
    Retrying {
        /// Delay before the next attempt.
        delay_ms: u64,
    },
    /// Failed for good (no-retry status or attempts exhausted).
    GaveUp,
}

/// A report of one delivery attempt.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryReport {
    /// App id.
    pub app_id: u64,
    /// Portal id.
    pub portal_id: u64,
    /// `attemptNumber` of this attempt.
    pub attempt_number: u32,
    /// Event ids in the batch.
    pub event_ids: Vec<u64>,
    /// HTTP status, `None` on connection failure or timeout.
    pub status: Option<u16>,
    /// Outcome.
    pub outcome: DeliveryOutcome,
}

#[derive(Debug, Clone)]
struct Target {
    app_id: u64,
    portal_id: u64,
    secret: String,
    settings: Arc<WebhookSettings>,
}

#[derive(Debug)]
struct Queued {
    target: Target,
    event: WebhookEvent,
}

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    queues: Mutex<HashMap<(u64, u64), mpsc::UnboundedSender<Queued>>>,
    reports: broadcast::Sender<DeliveryReport>,
    history: Mutex<Vec<DeliveryReport>>,
    next_event_id: AtomicU64,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    runtime: tokio::runtime::Handle,
}

/// Webhook delivery for the whole sandbox.
#[derive(Debug, Clone)]
pub struct WebhookEngine {
    inner: Arc<Inner>,
}

/// Most delivery reports kept for the admin surface.
const HISTORY: usize = 10_000;

impl WebhookEngine {
    /// An engine that spawns on the current runtime and stops when `shutdown` is cancelled.
    #[must_use]
    pub fn new(shutdown: CancellationToken) -> Self {
        let (reports, _) = broadcast::channel(4096);
        Self {
            inner: Arc::new(Inner {
                client: reqwest::Client::new(),
                queues: Mutex::new(HashMap::new()),
                reports,
                history: Mutex::new(Vec::new()),
                next_event_id: AtomicU64::new(100),
                tracker: TaskTracker::new(),
                shutdown,
                runtime: tokio::runtime::Handle::current(),
            }),
        }
    }

    /// Reports of every attempt from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<DeliveryReport> {
        self.inner.reports.subscribe()
    }

    /// Reports so far (most recent last, at most 10,000).
    #[must_use]
    pub fn history(&self) -> Vec<DeliveryReport> {
        lock(&self.inner.history).clone()
    }

    /// Stops delivering and waits for in-flight attempts to end.
    pub async fn close(&self) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    /// Turns a change into the app's subscribed events and queues them.
    pub fn enqueue(&self, app: &AppConfig, portal_id: u64, change: &ChangeRecord) {
        let Some(settings) = &app.webhooks else {
            return;
        };
        if settings.target_url.is_empty() {
            return;
        }
        let prefix = match change.object_type_id.as_str() {
            "0-1" => "contact",
            "0-2" => "company",
            "0-3" => "deal",
            _ => "object",
        };
        let custom = prefix == "object";
        let target = Target {
            app_id: app.app_id,
            portal_id,
            secret: app.client_secret.clone(),
            settings: Arc::new(settings.clone()),
        };
        let change_source = match change.source {
            ChangeSource::Crm => "CRM",
            ChangeSource::Integration => "INTEGRATION",
        };
        let mut events = Vec::new();
        for sub in &settings.subscriptions {
            let Some((sub_prefix, kind)) = sub.event_type.split_once('.') else {
                continue;
            };
            if sub_prefix != prefix {
                continue;
            }
            if custom
                && sub
                    .object_type_id
                    .as_ref()
                    .is_some_and(|t| *t != change.object_type_id)
            {
                continue;
            }
            let base =
                |flag: Option<&str>, prop: Option<(&String, &Option<String>)>| WebhookEvent {
                    app_id: app.app_id,
                    event_id: 0,
                    subscription_id: sub.id,
                    portal_id,
                    occurred_at: change.occurred_at,
                    subscription_type: sub.event_type.clone(),
                    attempt_number: 0,
                    object_id: change.object_id,
                    change_source: change_source.to_owned(),
                    change_flag: flag.map(str::to_owned),
                    object_type_id: custom.then(|| change.object_type_id.clone()),
                    property_name: prop.map(|(n, _)| n.clone()),
                    property_value: prop.map(|(_, v)| v.clone().unwrap_or_default()),
                };
            match (kind, change.kind) {
                ("creation", ChangeKind::Created) => events.push(base(Some("NEW"), None)),
                ("deletion", ChangeKind::Archived) => events.push(base(Some("DELETED"), None)),
                ("propertyChange", ChangeKind::Updated | ChangeKind::Created) => {
                    for (name, value) in &change.properties {
                        if sub.property_name.as_ref().is_none_or(|p| p == name) {
                            events.push(base(None, Some((name, value))));
                        }
                    }
                }
                _ => {}
            }
        }
        if events.is_empty() {
            return;
        }
        let sender = self.queue(app.app_id, portal_id);
        for mut event in events {
            event.event_id = self.inner.next_event_id.fetch_add(1, Ordering::Relaxed);
            // A closed queue means the sandbox is shutting down: nothing left to deliver to.
            let _ = sender.send(Queued {
                target: target.clone(),
                event,
            });
        }
    }

    fn queue(&self, app_id: u64, portal_id: u64) -> mpsc::UnboundedSender<Queued> {
        let mut queues = lock(&self.inner.queues);
        if let Some(tx) = queues.get(&(app_id, portal_id)) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        queues.insert((app_id, portal_id), tx.clone());
        let inner = Arc::clone(&self.inner);
        self.inner
            .tracker
            .spawn_on(batcher(inner, rx), &self.inner.runtime);
        tx
    }
}

async fn batcher(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Queued>) {
    let mut semaphore: Option<(Arc<Semaphore>, usize)> = None;
    loop {
        let first = tokio::select! {
            () = inner.shutdown.cancelled() => return,
            q = rx.recv() => match q { Some(q) => q, None => return },
        };
        let target = first.target.clone();
        let max = target.settings.max_events_per_request.clamp(1, 100);
        let mut batch = vec![first.event];
        while batch.len() < max {
            match rx.try_recv() {
                Ok(q) => batch.push(q.event),
                Err(_) => break,
            }
        }
        let wanted = target.settings.max_concurrent_requests.max(1);
        let sem = match &semaphore {
            Some((s, n)) if *n == wanted => Arc::clone(s),
            _ => {
                let s = Arc::new(Semaphore::new(wanted));
                semaphore = Some((Arc::clone(&s), wanted));
                s
            }
        };
        let Ok(permit) = sem.acquire_owned().await else {
            return;
        };
        let inner2 = Arc::clone(&inner);
        inner.tracker.spawn(async move {
            deliver(&inner2, &target, batch).await;
            drop(permit);
        });
    }
}

fn report(inner: &Inner, r: DeliveryReport) {
    {
        let mut h = lock(&inner.history);
        if h.len() >= HISTORY {
            h.remove(0);
        }
        h.push(r.clone());
    }
    // No subscriber is fine.
    let _ = inner.reports.send(r);
}

/// Statuses HubSpot never retries.
fn is_final_failure(status: u16) -> bool {
    matches!(status, 400 | 401 | 403 | 404 | 405)
}

async fn deliver(inner: &Inner, target: &Target, mut events: Vec<WebhookEvent>) {
    let policy = target.settings.retry;
    let url = target.settings.target_url.clone();
    let event_ids: Vec<u64> = events.iter().map(|e| e.event_id).collect();
    let attempts = policy.max_attempts.max(1);
    for attempt in 0..attempts {
        for e in &mut events {
            e.attempt_number = attempt;
        }
        let body = match serde_json::to_vec(&events) {
            Ok(b) => b,
            Err(error) => {
                tracing::error!(%error, "webhook batch serialisation failed");
                return;
            }
        };
        let timestamp = chrono::Utc::now().timestamp_millis().to_string();
        let request = inner
            .client
            .post(&url)
            .timeout(Duration::from_millis(policy.timeout_ms))
            .header("content-type", "application/json")
            .header(
                "user-agent",
                "HubSpot Connect 2.0 (http://dev.hubspot.com/)",
            )
            .header("x-hubspot-signature", signature_v1(&target.secret, &body))
            .header("x-hubspot-signature-version", "v1")
            .header(
                "x-hubspot-signature-v3",
                signature_v3(&target.secret, "POST", &url, &body, &timestamp),
            )
            .header("x-hubspot-request-timestamp", &timestamp)
            .header("x-hubspot-timeout-millis", policy.timeout_ms.to_string())
            .body(body);
        let result = tokio::select! {
            () = inner.shutdown.cancelled() => return,
            r = request.send() => r,
        };
        let backoff = policy
            .initial_backoff_ms
            .saturating_mul(1u64 << attempt.min(30))
            .min(policy.max_backoff_ms);
        let (status, retry_delay) = match result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                if resp.status().is_success() {
                    (Some(status), None)
                } else if is_final_failure(status) {
                    (Some(status), Some(None))
                } else if status == 429 {
                    let after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| s.saturating_mul(1000).min(policy.max_backoff_ms));
                    (Some(status), Some(Some(after.unwrap_or(backoff))))
                } else {
                    (Some(status), Some(Some(backoff)))
                }
            }
            Err(error) => {
                tracing::debug!(%error, "webhook delivery failed");
                (None, Some(Some(backoff)))
            }
        };
        let last = attempt + 1 >= attempts;
        let outcome = match retry_delay {
            None => DeliveryOutcome::Delivered,
            Some(Some(delay_ms)) if !last => DeliveryOutcome::Retrying { delay_ms },
            Some(_) => DeliveryOutcome::GaveUp,
        };
        report(
            inner,
            DeliveryReport {
                app_id: target.app_id,
                portal_id: target.portal_id,
                attempt_number: attempt,
                event_ids: event_ids.clone(),
                status,
                outcome,
            },
        );
        match outcome {
            DeliveryOutcome::Retrying { delay_ms } => {
                tokio::select! {
                    () = inner.shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
                }
            }
            DeliveryOutcome::Delivered | DeliveryOutcome::GaveUp => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_failures_are_exactly_hubspots() {
        for s in [400, 401, 403, 404, 405] {
            assert!(is_final_failure(s));
        }
        for s in [408, 409, 410, 429, 500, 502, 503] {
            assert!(!is_final_failure(s));
        }
    }
}
