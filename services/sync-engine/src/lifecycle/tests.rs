use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use syncline_config::ServiceName;
use syncline_proto::common::v1::{ErrorReason, Provider};
use syncline_proto::sync::v1::{WebhookEndpoint, WebhookTopic};
use tokio::sync::Notify;
use tokio_stream::wrappers::ReceiverStream;

use super::*;
use crate::changelog::ChangeLog;
use crate::changelog::stream::{self, StreamOptions};
use crate::changelog::tests::{change, tenant};
use crate::delivery::outbox::{self, Payload};
use crate::store::Store;

async fn on_every_backend<F, Fut>(test: &str, check: F)
where
    F: Fn(EventLog, Database) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    syncline_test_support::storage::on_every_backend(
        test,
        ServiceName::SyncEngine,
        crate::MIGRATIONS,
        |db| {
            check(
                EventLog::new(db.clone(), Arc::default(), Arc::new(Notify::new())),
                db,
            )
        },
    )
    .await;
}

fn event(kind: EventType, connection: &str) -> Event {
    Event {
        r#type: kind as i32,
        connection_id: connection.into(),
        provider: Provider::Salesforce as i32,
        reason: ErrorReason::NeedsReauth as i32,
        message: "the connection needs authorizing again".into(),
        ..Event::default()
    }
}

fn with_id(mut event: Event, id: &str) -> Event {
    event.id = id.into();
    event
}

fn sequences(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.sequence).collect()
}

#[tokio::test]
async fn publishes_number_each_tenant_from_one_and_stay_tenant_scoped() {
    on_every_backend(
        "publishes_number_each_tenant_from_one_and_stay_tenant_scoped",
        |log, _db| async move {
            let acme = tenant("p1", "acme");
            let globex = tenant("p1", "globex");
            let other_project = tenant("p2", "acme");
            let mut published = Vec::new();
            for (kind, connection) in [
                (EventType::ConnectionAuthorized, "conn_a"),
                (EventType::ConnectionNeedsReauth, "conn_a"),
                (EventType::ConnectionAuthorized, "conn_b"),
            ] {
                published.push(log.publish(&acme, event(kind, connection)).await.unwrap());
            }
            assert_eq!(
                published
                    .iter()
                    .map(|p| p.event.sequence)
                    .collect::<Vec<_>>(),
                [1, 2, 3]
            );
            assert!(published.iter().all(|p| !p.duplicate));
            assert!(published.iter().all(|p| p.event.id.starts_with("evt_")));
            assert!(published.iter().all(|p| p.event.occur_time.is_some()));
            let g = log
                .publish(&globex, event(EventType::ConnectionDeleted, "conn_g"))
                .await
                .unwrap();
            assert_eq!(g.event.sequence, 1, "each tenant counts from one");
            let o = log
                .publish(
                    &other_project,
                    event(EventType::ConnectionDeleted, "conn_o"),
                )
                .await
                .unwrap();
            assert_eq!(o.event.sequence, 1, "so does a tenant of another project");

            assert_eq!(log.head(&acme).await.unwrap().last_sequence, 3);
            assert_eq!(log.head(&globex).await.unwrap().last_sequence, 1);
            let all = EventFilter::default();
            let acme_events = log.page(&acme, 0, 3, &all, 100).await.unwrap();
            assert_eq!(sequences(&acme_events), [1, 2, 3]);
            assert_eq!(acme_events[1], published[1].event);
            let globex_events = log.page(&globex, 0, 10, &all, 100).await.unwrap();
            assert_eq!(globex_events.len(), 1);
            assert_eq!(globex_events[0].connection_id, "conn_g");
            let foreign = log.page(&other_project, 0, 10, &all, 100).await.unwrap();
            assert_eq!(foreign.len(), 1);
            assert_eq!(foreign[0].connection_id, "conn_o");

            let reauth = EventFilter {
                event_types: vec![EventType::ConnectionNeedsReauth as i32],
                ..EventFilter::default()
            };
            assert_eq!(
                sequences(&log.page(&acme, 0, 3, &reauth, 100).await.unwrap()),
                [2]
            );
            let conn_b = EventFilter {
                connection_ids: vec!["conn_b".into()],
                ..EventFilter::default()
            };
            assert_eq!(
                sequences(&log.page(&acme, 0, 3, &conn_b, 100).await.unwrap()),
                [3]
            );
            assert_eq!(
                sequences(&log.page(&acme, 1, 3, &all, 1).await.unwrap()),
                [2]
            );
        },
    )
    .await;
}

#[tokio::test]
async fn a_retried_publish_returns_the_stored_event_and_adds_nothing() {
    on_every_backend(
        "a_retried_publish_returns_the_stored_event_and_adds_nothing",
        |log, db| async move {
            let acme = tenant("p1", "acme");
            let globex = tenant("p1", "globex");
            let endpoint = WebhookEndpoint {
                id: "whk_events".into(),
                url: "https://hooks.example.com/".into(),
                topics: vec![WebhookTopic::LifecycleEvents as i32],
                ..WebhookEndpoint::default()
            };
            Store::new(db.clone())
                .insert_webhook_endpoint(&acme, &endpoint, "whsec_AAAA")
                .await
                .unwrap();
            let sent = with_id(event(EventType::ConnectionNeedsReauth, "conn_a"), "evt_x1");
            let first = log.publish(&acme, sent.clone()).await.unwrap();
            assert!(!first.duplicate);
            assert_eq!(first.deliveries, 1);
            assert_eq!(first.event.id, "evt_x1");

            // The publisher retries (its answer was lost), even with a changed body.
            let mut retried = sent.clone();
            retried.message = "another message".into();
            let second = log.publish(&acme, retried).await.unwrap();
            assert!(second.duplicate);
            assert_eq!(second.deliveries, 0);
            assert_eq!(second.event, first.event, "the stored event comes back");
            assert_eq!(log.head(&acme).await.unwrap().last_sequence, 1);
            let stored = log
                .page(&acme, 0, 10, &EventFilter::default(), 100)
                .await
                .unwrap();
            assert_eq!(stored.len(), 1);

            // The next event takes the next sequence: the retry left no gap.
            let next = log
                .publish(&acme, event(EventType::ConnectionRecovered, "conn_a"))
                .await
                .unwrap();
            assert_eq!(next.event.sequence, 2);

            // Concurrent retries of one id store it once.
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let log = log.clone();
                    let acme = acme.clone();
                    tokio::spawn(async move {
                        log.publish(
                            &acme,
                            with_id(event(EventType::ConnectionDegraded, "conn_a"), "evt_race"),
                        )
                        .await
                        .unwrap()
                    })
                })
                .collect();
            let mut outcomes = Vec::new();
            for task in tasks {
                outcomes.push(task.await.unwrap());
            }
            assert_eq!(outcomes.iter().filter(|p| !p.duplicate).count(), 1);
            assert!(outcomes.iter().all(|p| p.event.sequence == 3));
            assert_eq!(log.head(&acme).await.unwrap().last_sequence, 3);

            // Ids are per tenant: another tenant's event with that id is its own.
            let theirs = log.publish(&globex, sent).await.unwrap();
            assert!(!theirs.duplicate);
            assert_eq!(theirs.event.sequence, 1);

            // One delivery per stored event, none for the retries.
            let claimed = outbox::claim_due(&db, now_ms(), now_ms() + 60_000, 100)
                .await
                .unwrap();
            assert_eq!(claimed.len(), 1, "the endpoint's queue has one head");
            assert!(matches!(
                &claimed[0].payload,
                Payload::Event(e) if e.id == "evt_x1" && e.sequence == 1
            ));
            let count: i64 = sqlx::query(
                "SELECT COUNT(*) FROM deliveries WHERE project_id = $1 AND tenant_id = $2",
            )
            .bind("p1")
            .bind("acme")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
            assert_eq!(count, 3);
        },
    )
    .await;
}

#[tokio::test]
async fn events_go_to_endpoints_subscribed_to_them_in_their_own_order() {
    on_every_backend(
        "events_go_to_endpoints_subscribed_to_them_in_their_own_order",
        |log, db| async move {
            let acme = tenant("p1", "acme");
            let store = Store::new(db.clone());
            let endpoints = [
                ("whk_1_changes", vec![WebhookTopic::Changes], vec![], false),
                (
                    "whk_2_both",
                    vec![WebhookTopic::Changes, WebhookTopic::LifecycleEvents],
                    vec![],
                    false,
                ),
                (
                    "whk_3_reauth",
                    vec![WebhookTopic::LifecycleEvents],
                    vec![EventType::ConnectionNeedsReauth as i32],
                    false,
                ),
                (
                    "whk_4_disabled",
                    vec![WebhookTopic::LifecycleEvents],
                    vec![],
                    true,
                ),
            ];
            for (id, topics, event_types, disabled) in endpoints {
                let endpoint = WebhookEndpoint {
                    id: id.into(),
                    url: "https://hooks.example.com/".into(),
                    topics: topics.into_iter().map(|t| t as i32).collect(),
                    event_types,
                    disabled,
                    ..WebhookEndpoint::default()
                };
                store
                    .insert_webhook_endpoint(&acme, &endpoint, "whsec_AAAA")
                    .await
                    .unwrap();
            }
            let authorized = log
                .publish(&acme, event(EventType::ConnectionAuthorized, "conn_a"))
                .await
                .unwrap();
            assert_eq!(authorized.deliveries, 1, "whk_2 only");
            let reauth = log
                .publish(&acme, event(EventType::ConnectionNeedsReauth, "conn_a"))
                .await
                .unwrap();
            assert_eq!(reauth.deliveries, 2, "whk_2 and whk_3");
            // Changes have sequences of their own; whk_2 gets both, each log in order.
            let changes = ChangeLog::standalone(db.clone());
            changes
                .append(&acme, vec![change("conn_a", "contact", "c1")])
                .await
                .unwrap();
            let mut heads: Vec<(String, i32, u64)> =
                outbox::claim_due(&db, now_ms(), now_ms() + 60_000, 100)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|c| (c.endpoint_id, c.payload.kind(), c.payload.sequence()))
                    .collect();
            heads.sort();
            assert_eq!(
                heads,
                [
                    ("whk_1_changes".to_owned(), outbox::KIND_CHANGE, 1),
                    ("whk_2_both".to_owned(), outbox::KIND_CHANGE, 1),
                    ("whk_2_both".to_owned(), outbox::KIND_EVENT, 1),
                    ("whk_3_reauth".to_owned(), outbox::KIND_EVENT, 2),
                ]
            );
        },
    )
    .await;
}

#[tokio::test]
async fn invalid_events_are_refused() {
    on_every_backend("invalid_events_are_refused", |log, _db| async move {
        let acme = tenant("p1", "acme");
        let unspecified = log.publish(&acme, Event::default()).await.unwrap_err();
        assert!(format!("{unspecified:?}").contains("event.type"));
        let bad_id = with_id(event(EventType::ConnectionAuthorized, "c"), "evt 1;--");
        let error = log.publish(&acme, bad_id).await.unwrap_err();
        assert!(format!("{error:?}").contains("event.id"));
        assert_eq!(log.head(&acme).await.unwrap().last_sequence, 0);
    })
    .await;
}

async fn next<T>(stream: &mut ReceiverStream<Result<T, tonic::Status>>) -> T {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a message within 10 s")
        .expect("the stream is open")
        .expect("not an error")
}

#[tokio::test]
async fn the_event_stream_resumes_follows_live_and_sends_heartbeats() {
    on_every_backend(
        "the_event_stream_resumes_follows_live_and_sends_heartbeats",
        |log, _db| async move {
            let acme = tenant("p1", "acme");
            let globex = tenant("p1", "globex");
            for connection in ["conn_a", "conn_b", "conn_a"] {
                log.publish(&acme, event(EventType::ConnectionAuthorized, connection))
                    .await
                    .unwrap();
            }
            let options = StreamOptions {
                heartbeat: Duration::from_millis(100),
                ..StreamOptions::default()
            };
            let source = Events {
                log: log.clone(),
                filter: EventFilter {
                    connection_ids: vec!["conn_a".into()],
                    ..EventFilter::default()
                },
            };
            let mut stream = stream::start(source, acme.clone(), 1, 2, options)
                .await
                .unwrap();
            let resumed = next(&mut stream).await.event.unwrap();
            assert_eq!(
                (resumed.sequence, resumed.connection_id.as_str()),
                (3, "conn_a")
            );
            // Another tenant's event and a filtered-out one do not wake it with events.
            log.publish(&globex, event(EventType::ConnectionAuthorized, "conn_a"))
                .await
                .unwrap();
            log.publish(&acme, event(EventType::ConnectionAuthorized, "conn_b"))
                .await
                .unwrap();
            let live = log
                .publish(&acme, event(EventType::ConnectionNeedsReauth, "conn_a"))
                .await
                .unwrap();
            let received = loop {
                if let Some(event) = next(&mut stream).await.event {
                    break event;
                }
            };
            assert_eq!(received, live.event);
            assert_eq!(received.sequence, 5);
            // Idle: a message without an event.
            assert!(next(&mut stream).await.event.is_none());
        },
    )
    .await;
}

#[tokio::test]
async fn a_dead_lettered_event_is_listed_and_replayed_with_the_same_id() {
    on_every_backend(
        "a_dead_lettered_event_is_listed_and_replayed_with_the_same_id",
        |log, db| async move {
            use syncline_service_kit::pagination::PageRequest;
            let acme = tenant("p1", "acme");
            let endpoint = WebhookEndpoint {
                id: "whk_events".into(),
                url: "http://127.0.0.1:9/hook".into(),
                topics: vec![WebhookTopic::LifecycleEvents as i32],
                ..WebhookEndpoint::default()
            };
            Store::new(db.clone())
                .insert_webhook_endpoint(&acme, &endpoint, "whsec_AAAA")
                .await
                .unwrap();
            let published = log
                .publish(&acme, event(EventType::ConnectionNeedsReauth, "conn_a"))
                .await
                .unwrap();
            let now = now_ms();
            let claimed = outbox::claim_due(&db, now, now + 60_000, 10).await.unwrap();
            assert_eq!(claimed.len(), 1);
            let policy = outbox::DisablePolicy {
                consecutive_dead: 100,
                failing_for_ms: i64::MAX,
            };
            let outcome = outbox::record_failure(
                &db,
                &claimed[0],
                now,
                "endpoint answered http 500",
                None,
                policy,
                "",
            )
            .await
            .unwrap();
            assert!(matches!(outcome, outbox::FailureOutcome::Dead { .. }));
            let everything = outbox::DeadLetterFilter {
                from_ms: i64::MIN,
                until_ms: i64::MAX,
                ..outbox::DeadLetterFilter::default()
            };
            let page = PageRequest::parse(0, "").unwrap();
            let letters = outbox::dead_letters(&db, &acme, &everything, &page)
                .await
                .unwrap();
            assert_eq!(letters.len(), 1);
            assert_eq!(letters[0].connection_id, "conn_a");
            assert_eq!(letters[0].webhook_endpoint_id, "whk_events");
            assert!(letters[0].record.is_none());
            let stranger = tenant("p1", "globex");
            assert!(
                outbox::dead_letters(&db, &stranger, &everything, &page)
                    .await
                    .unwrap()
                    .is_empty()
            );

            let replayed = outbox::replay(&db, &acme, &everything, false, now + 1)
                .await
                .unwrap();
            assert_eq!(replayed, 1);
            let again = outbox::claim_due(&db, now + 1, now + 60_000, 10)
                .await
                .unwrap();
            assert_eq!(again.len(), 1);
            assert_eq!(again[0].id, claimed[0].id, "the same webhook-id");
            assert_eq!(again[0].payload, Payload::Event(published.event));
            assert!(
                outbox::record_success(&db, &again[0], now + 2)
                    .await
                    .unwrap()
            );
            assert!(
                outbox::dead_letters(&db, &acme, &everything, &page)
                    .await
                    .unwrap()
                    .is_empty()
            );
        },
    )
    .await;
}

#[tokio::test]
async fn retention_removes_old_events_and_expires_older_cursors() {
    on_every_backend(
        "retention_removes_old_events_and_expires_older_cursors",
        |log, _db| async move {
            let acme = tenant("p1", "acme");
            for _ in 0..3 {
                log.publish(&acme, event(EventType::ConnectionAuthorized, "conn_a"))
                    .await
                    .unwrap();
            }
            assert_eq!(log.prune(now_ms() + 1).await.unwrap(), 3);
            let head = log.head(&acme).await.unwrap();
            assert_eq!((head.last_sequence, head.pruned_through), (3, 3));
            let source = || Events {
                log: log.clone(),
                filter: EventFilter::default(),
            };
            let expired = stream::start(source(), acme.clone(), 1, 10, StreamOptions::default())
                .await
                .unwrap_err();
            assert_eq!(expired.code(), tonic::Code::OutOfRange);
            let mut from_oldest =
                stream::start(source(), acme.clone(), 0, 10, StreamOptions::default())
                    .await
                    .unwrap();
            let next_event = log
                .publish(&acme, event(EventType::ConnectionRecovered, "conn_a"))
                .await
                .unwrap();
            let received = loop {
                if let Some(event) = next(&mut from_oldest).await.event {
                    break event;
                }
            };
            assert_eq!(received.sequence, 4);
            assert_eq!(received, next_event.event);
        },
    )
    .await;
}
