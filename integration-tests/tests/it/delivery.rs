//! Delivery end to end: changes appended through the running sync-engine reach the product
//! through the gateway's `StreamChanges` (in order, resumable, live, tenant-scoped) and as
//! signed webhooks to a local receiver (in order, retried on an injected schedule, dead
//! letters, replay by time range with the same `webhook-id`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use syncline_domain::{ProjectId, TenantContext, TenantId};
use syncline_integration_tests::{Storage, TestSuite, spawn_suite, unique_tenant};
use syncline_proto::common::v1::{Record, RecordOperation, TimeRange};
use syncline_proto::sync::v1::sync_service_client::SyncServiceClient;
use syncline_proto::sync::v1::{
    Change, CreateWebhookEndpointRequest, GetWebhookEndpointRequest, ListDeadLettersRequest,
    ReplayDeadLettersRequest, StreamChangesRequest, StreamChangesResponse,
    UpdateWebhookEndpointRequest, WebhookEndpoint, WebhookTopic,
};
use syncline_sync_engine::delivery::signature;
use syncline_sync_engine::delivery::{Clock, DeliveryOptions, ManualClock};
use tokio::sync::mpsc;
use tonic::Streaming;

crate::both_storages!(
    changes_stream_through_the_gateway_in_order_resumable_live_and_tenant_scoped,
    webhooks_are_signed_ordered_retried_dead_lettered_and_replayed,
    a_persistently_failing_endpoint_is_disabled_and_resumes_when_enabled,
);

fn context(tenant: &str) -> TenantContext {
    TenantContext {
        project_id: ProjectId::parse("p1").unwrap(),
        tenant_id: TenantId::parse(tenant).unwrap(),
        subject: "test".into(),
    }
}

fn change(object: &str, id: &str) -> Change {
    Change {
        connection_id: "conn_1".into(),
        object: object.into(),
        operation: RecordOperation::Update as i32,
        record: Some(Record {
            object: object.into(),
            id: id.into(),
            ..Record::default()
        }),
        ..Change::default()
    }
}

fn ids(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| c.record.as_ref().unwrap().id.clone())
        .collect()
}

/// The next message that carries changes (heartbeats skipped).
async fn next_changes(stream: &mut Streaming<StreamChangesResponse>) -> StreamChangesResponse {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("a message within 20 s")
            .expect("the stream is healthy")
            .expect("the stream is open");
        if !message.changes.is_empty() {
            return message;
        }
    }
}

async fn open(
    suite: &TestSuite,
    tenant: &str,
    request: StreamChangesRequest,
) -> Streaming<StreamChangesResponse> {
    SyncServiceClient::new(suite.gateway())
        .stream_changes(suite.as_tenant("p1", tenant, request))
        .await
        .expect("the stream opens")
        .into_inner()
}

async fn changes_stream_through_the_gateway_in_order_resumable_live_and_tenant_scoped(
    storage: Storage,
) {
    let suite = spawn_suite(storage).await;
    let engine = suite.sync_engine();
    let (a, b) = (unique_tenant("a"), unique_tenant("b"));
    for i in 1..=5 {
        engine
            .append(&context(&a), vec![change("contact", &format!("a{i}"))])
            .await
            .unwrap();
        if i <= 3 {
            engine
                .append(&context(&b), vec![change("contact", &format!("b{i}"))])
                .await
                .unwrap();
        }
    }

    let mut everything = open(
        &suite,
        &a,
        StreamChangesRequest {
            max_batch_size: 2,
            ..StreamChangesRequest::default()
        },
    )
    .await;
    let mut received = Vec::new();
    while received.len() < 5 {
        let message = next_changes(&mut everything).await;
        assert!(message.changes.len() <= 2, "max_batch_size is honoured");
        assert_eq!(message.head_sequence, 5);
        received.extend(message.changes);
    }
    assert_eq!(
        received.iter().map(|c| c.sequence).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(ids(&received), ["a1", "a2", "a3", "a4", "a5"]);

    let mut resumed = open(
        &suite,
        &a,
        StreamChangesRequest {
            after_sequence: 3,
            ..StreamChangesRequest::default()
        },
    )
    .await;
    let rest = next_changes(&mut resumed).await;
    assert_eq!(
        ids(&rest.changes),
        ["a4", "a5"],
        "exactly the rest, in order"
    );

    // Live: appended after the stream caught up; the other tenant's change never shows.
    engine
        .append(&context(&b), vec![change("contact", "b4")])
        .await
        .unwrap();
    engine
        .append(&context(&a), vec![change("deal", "a6")])
        .await
        .unwrap();
    let live = next_changes(&mut resumed).await;
    assert_eq!(ids(&live.changes), ["a6"]);
    assert_eq!(live.changes[0].sequence, 6);

    let mut theirs = open(&suite, &b, StreamChangesRequest::default()).await;
    let mut received = Vec::new();
    while received.len() < 4 {
        received.extend(next_changes(&mut theirs).await.changes);
    }
    assert_eq!(ids(&received), ["b1", "b2", "b3", "b4"]);

    drop((everything, resumed, theirs));
    suite.stop().await;
}

/// One POST the receiver got.
#[derive(Debug)]
struct Received {
    id: String,
    timestamp: i64,
    signature: String,
    body: Bytes,
}

impl Received {
    fn sequence(&self) -> String {
        let body: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
        body["data"]["sequence"].as_str().unwrap().to_owned()
    }
}

struct Receiver {
    status: Arc<AtomicU16>,
    received: mpsc::UnboundedReceiver<Received>,
    url: String,
}

impl Receiver {
    async fn start() -> Self {
        let status = Arc::new(AtomicU16::new(200));
        let (tx, received) = mpsc::unbounded_channel();
        let handler =
            |State((status, tx)): State<(Arc<AtomicU16>, mpsc::UnboundedSender<Received>)>,
             headers: HeaderMap,
             body: Bytes| async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                tx.send(Received {
                    id: header("webhook-id"),
                    timestamp: header("webhook-timestamp").parse().unwrap_or(0),
                    signature: header("webhook-signature"),
                    body,
                })
                .unwrap();
                StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap()
            };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(handler))
            .with_state((status.clone(), tx));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            status,
            received,
            url,
        }
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Everything received so far (the dispatcher's pass has returned, so nothing is in
    /// flight).
    fn drain(&mut self) -> Vec<Received> {
        let mut all = Vec::new();
        while let Ok(received) = self.received.try_recv() {
            all.push(received);
        }
        all
    }
}

async fn webhooks_are_signed_ordered_retried_dead_lettered_and_replayed(storage: Storage) {
    let suite = spawn_suite(storage).await;
    let engine = suite.sync_engine();
    let dispatcher = engine.dispatcher().clone();
    let clock = Arc::new(ManualClock::new(syncline_storage::now_ms()));
    let options = DeliveryOptions {
        retry_schedule: vec![Duration::from_secs(1), Duration::from_secs(2)],
        disable_after_dead_messages: 100,
        ..DeliveryOptions::default()
    };
    dispatcher.take_manual_control(options, clock.clone()).await;
    let mut receiver = Receiver::start().await;
    let (a, b) = (unique_tenant("a"), unique_tenant("b"));
    let mut sync = SyncServiceClient::new(suite.gateway());
    let created = sync
        .create_webhook_endpoint(suite.as_tenant(
            "p1",
            &a,
            CreateWebhookEndpointRequest {
                webhook_endpoint: Some(WebhookEndpoint {
                    url: receiver.url.clone(),
                    topics: vec![WebhookTopic::Changes as i32],
                    ..WebhookEndpoint::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let endpoint_id = created.webhook_endpoint.unwrap().id;
    let key = signature::decode_secret(&created.signing_secret).unwrap();

    // Delivered in sequence order, each signed.
    let batch = (1..=3)
        .map(|i| change("contact", &format!("a{i}")))
        .collect();
    engine.append(&context(&a), batch).await.unwrap();
    engine
        .append(&context(&b), vec![change("contact", "b1")])
        .await
        .unwrap();
    let report = dispatcher.run_due().await.unwrap();
    assert_eq!((report.attempted, report.delivered), (3, 3));
    let delivered = receiver.drain();
    assert_eq!(
        delivered.iter().map(Received::sequence).collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    for received in &delivered {
        assert!(received.id.starts_with("msg_"));
        assert_eq!(received.timestamp, clock.now_ms() / 1000);
        assert!(
            signature::verify(
                &key,
                &received.id,
                received.timestamp,
                &received.body,
                &received.signature,
                received.timestamp,
                300
            ),
            "a valid Standard Webhooks signature"
        );
    }

    // A failing receiver: immediately, +1 s, +2 s, then a dead letter.
    receiver.answer(500);
    engine
        .append(&context(&a), vec![change("deal", "a4")])
        .await
        .unwrap();
    let mut attempts = Vec::new();
    for advance in [0, 1, 2] {
        clock.advance(Duration::from_secs(advance));
        let report = dispatcher.run_due().await.unwrap();
        assert_eq!(report.attempted, 1, "one attempt after +{advance} s");
        assert_eq!(
            dispatcher.run_due().await.unwrap().attempted,
            0,
            "nothing more is due before the next step of the schedule"
        );
        attempts.extend(receiver.drain());
    }
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts.iter().all(|r| r.id == attempts[0].id),
        "one webhook-id"
    );
    assert!(attempts.iter().all(|r| r.sequence() == "4"));
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        dispatcher.run_due().await.unwrap().attempted,
        0,
        "attempts ran out"
    );

    let letters = sync
        .list_dead_letters(suite.as_tenant("p1", &a, ListDeadLettersRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.record.as_ref().unwrap().id, "a4");
    assert_eq!(letter.attempt_count, 3);
    assert_eq!(letter.webhook_endpoint_id, endpoint_id);
    assert_eq!(letter.error_message, "endpoint answered http 500");
    let theirs = sync
        .list_dead_letters(suite.as_tenant("p1", &b, ListDeadLettersRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(theirs.dead_letters.is_empty());

    // Replay by time range: a range before the failure matches nothing; one around it
    // re-delivers with the same webhook-id, and the dead letter goes.
    receiver.answer(204);
    let failed_at = letter.last_failure_time.unwrap();
    let earlier = prost_types::Timestamp {
        seconds: failed_at.seconds - 60,
        nanos: 0,
    };
    let range = |start: prost_types::Timestamp, end: prost_types::Timestamp| TimeRange {
        start_time: Some(start),
        end_time: Some(end),
    };
    let before = prost_types::Timestamp {
        seconds: failed_at.seconds - 30,
        nanos: 0,
    };
    let replay = |time_range: TimeRange| ReplayDeadLettersRequest {
        time_range: Some(time_range),
        ..ReplayDeadLettersRequest::default()
    };
    let none = sync
        .replay_dead_letters(suite.as_tenant("p1", &a, replay(range(earlier, before))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(none.replayed_count, 0);
    let after = prost_types::Timestamp {
        seconds: failed_at.seconds + 1,
        nanos: 0,
    };
    let replayed = sync
        .replay_dead_letters(suite.as_tenant("p1", &a, replay(range(earlier, after))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed.replayed_count, 1);
    let report = dispatcher.run_due().await.unwrap();
    assert_eq!((report.attempted, report.delivered), (1, 1));
    let again = receiver.drain();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].id, attempts[0].id,
        "the same webhook-id, so receivers dedupe"
    );
    let left = sync
        .list_dead_letters(suite.as_tenant("p1", &a, ListDeadLettersRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(left.dead_letters.is_empty());

    suite.stop().await;
}

async fn a_persistently_failing_endpoint_is_disabled_and_resumes_when_enabled(storage: Storage) {
    let suite = spawn_suite(storage).await;
    let engine = suite.sync_engine();
    let dispatcher = engine.dispatcher().clone();
    let options = DeliveryOptions {
        retry_schedule: Vec::new(),
        disable_after_dead_messages: 2,
        ..DeliveryOptions::default()
    };
    let clock = Arc::new(ManualClock::new(syncline_storage::now_ms()));
    dispatcher.take_manual_control(options, clock).await;
    let mut receiver = Receiver::start().await;
    receiver.answer(500);
    let a = unique_tenant("a");
    let mut sync = SyncServiceClient::new(suite.gateway());
    let endpoint = sync
        .create_webhook_endpoint(suite.as_tenant(
            "p1",
            &a,
            CreateWebhookEndpointRequest {
                webhook_endpoint: Some(WebhookEndpoint {
                    url: receiver.url.clone(),
                    topics: vec![WebhookTopic::Changes as i32],
                    ..WebhookEndpoint::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .webhook_endpoint
        .unwrap();

    let batch = (1..=3)
        .map(|i| change("contact", &format!("a{i}")))
        .collect();
    engine.append(&context(&a), batch).await.unwrap();
    let report = dispatcher.run_due().await.unwrap();
    assert_eq!(
        (report.attempted, report.dead, report.disabled),
        (2, 2, 1),
        "two messages die, then the endpoint is disabled before the third"
    );
    assert_eq!(receiver.drain().len(), 2);
    let get = GetWebhookEndpointRequest {
        webhook_endpoint_id: endpoint.id.clone(),
    };
    let stored = sync
        .get_webhook_endpoint(suite.as_tenant("p1", &a, get))
        .await
        .unwrap()
        .into_inner()
        .webhook_endpoint
        .unwrap();
    assert!(stored.disabled);
    let appended = engine
        .append(&context(&a), vec![change("contact", "a4")])
        .await
        .unwrap();
    assert_eq!(
        appended.deliveries, 0,
        "nothing is queued for a disabled endpoint"
    );

    receiver.answer(200);
    sync.update_webhook_endpoint(suite.as_tenant(
        "p1",
        &a,
        UpdateWebhookEndpointRequest {
            webhook_endpoint: Some(WebhookEndpoint {
                id: endpoint.id.clone(),
                disabled: false,
                ..WebhookEndpoint::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["disabled".into()],
            }),
        },
    ))
    .await
    .unwrap();
    let report = dispatcher.run_due().await.unwrap();
    assert_eq!((report.attempted, report.delivered), (1, 1));
    let resumed = receiver.drain();
    assert_eq!(
        resumed.iter().map(Received::sequence).collect::<Vec<_>>(),
        ["3"],
        "the message held back resumes"
    );

    suite.stop().await;
}
