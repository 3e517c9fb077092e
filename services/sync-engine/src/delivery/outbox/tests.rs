//! Outbox behaviour on both engines, driven without HTTP: fan-out, per-endpoint order,
//! retries, dead letters, disablement, replay and leases.

use syncline_config::ServiceName;
use syncline_proto::sync::v1::{WebhookEndpoint, WebhookTopic};
use syncline_service_kit::pagination::PageRequest;

use super::*;
use crate::changelog::ChangeLog;
use crate::changelog::tests::{change, tenant};
use crate::store::Store;

const DAY_MS: i64 = 24 * 3600 * 1000;

const POLICY: DisablePolicy = DisablePolicy {
    consecutive_dead: 2,
    failing_for_ms: 5 * DAY_MS,
};

async fn on_every_backend<F, Fut>(test: &str, check: F)
where
    F: Fn(Store, ChangeLog) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    syncline_test_support::storage::on_every_backend(
        test,
        ServiceName::SyncEngine,
        crate::MIGRATIONS,
        |db| {
            let log = ChangeLog::standalone(db.clone());
            check(Store::new(db), log)
        },
    )
    .await;
}

fn endpoint(id: &str) -> WebhookEndpoint {
    WebhookEndpoint {
        id: id.into(),
        url: format!("http://127.0.0.1:9/{id}"),
        topics: vec![WebhookTopic::Changes as i32],
        ..WebhookEndpoint::default()
    }
}

fn record_id(claimed: &Claimed) -> &str {
    match &claimed.payload {
        Payload::Change(change) => change.record.as_ref().map_or("", |r| r.id.as_str()),
        Payload::Event(event) => event.id.as_str(),
    }
}

async fn claim(store: &Store, now: i64) -> Vec<Claimed> {
    claim_due(store.database(), now, now + 60_000, 10)
        .await
        .unwrap()
}

fn everything() -> DeadLetterFilter {
    DeadLetterFilter {
        from_ms: i64::MIN,
        until_ms: i64::MAX,
        ..DeadLetterFilter::default()
    }
}

#[tokio::test]
async fn appends_fan_out_to_the_enabled_endpoints_that_want_each_change() {
    on_every_backend(
        "appends_fan_out_to_the_enabled_endpoints_that_want_each_change",
        |store, log| async move {
            let acme = tenant("p1", "acme");
            let globex = tenant("p1", "globex");
            let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
            for (owner, endpoint) in [
                (&acme, endpoint("whk_all")),
                (
                    &acme,
                    WebhookEndpoint {
                        objects: vec!["deal".into()],
                        ..endpoint("whk_deals")
                    },
                ),
                (
                    &acme,
                    WebhookEndpoint {
                        disabled: true,
                        ..endpoint("whk_off")
                    },
                ),
                (
                    &acme,
                    WebhookEndpoint {
                        topics: vec![WebhookTopic::LifecycleEvents as i32],
                        ..endpoint("whk_events")
                    },
                ),
                (&globex, endpoint("whk_theirs")),
            ] {
                store
                    .insert_webhook_endpoint(owner, &endpoint, secret)
                    .await
                    .unwrap();
            }
            let appended = log
                .append(
                    &acme,
                    vec![
                        change("conn_a", "contact", "c1"),
                        change("conn_a", "deal", "d1"),
                    ],
                )
                .await
                .unwrap();
            assert_eq!(appended.deliveries, 3);
            let heads = claim(&store, now()).await;
            let mut seen: Vec<(&str, &str)> = heads
                .iter()
                .map(|c| (c.endpoint_id.as_str(), record_id(c)))
                .collect();
            seen.sort_unstable();
            assert_eq!(seen, [("whk_all", "c1"), ("whk_deals", "d1")]);
            assert!(heads.iter().all(|c| matches!(&c.payload, Payload::Change(change) if change.provider_record.is_none())));
            assert!(heads.iter().all(|c| c.signing_secret == secret));
            assert!(!format!("{:?}", heads[0]).contains("whsec_"));
        },
    )
    .await;
}

fn now() -> i64 {
    syncline_storage::now_ms()
}

#[tokio::test]
async fn heads_retry_on_schedule_then_die_and_the_endpoint_is_disabled() {
    on_every_backend(
        "heads_retry_on_schedule_then_die_and_the_endpoint_is_disabled",
        |store, log| async move {
            let acme = tenant("p1", "acme");
            store
                .insert_webhook_endpoint(&acme, &endpoint("whk_1"), "whsec_AAAA")
                .await
                .unwrap();
            let batch = (1..=3)
                .map(|i| change("conn_a", "contact", &format!("c{i}")))
                .collect();
            log.append(&acme, batch).await.unwrap();
            let t0 = now();
            let heads = claim(&store, t0).await;
            assert_eq!(heads.len(), 1);
            assert_eq!(record_id(&heads[0]), "c1");
            let first_id = heads[0].id.clone();
            let outcome = record_failure(
                store.database(),
                &heads[0],
                t0,
                "http 500",
                Some(1_000),
                POLICY,
                "",
            )
            .await
            .unwrap();
            assert_eq!(outcome, FailureOutcome::Retry(t0 + 1_000));
            assert!(
                claim(&store, t0 + 999).await.is_empty(),
                "not due, and c2 waits behind c1"
            );

            let retry = claim(&store, t0 + 1_000).await;
            assert_eq!(retry.len(), 1);
            assert_eq!(
                (retry[0].id.as_str(), retry[0].attempt_count),
                (first_id.as_str(), 1)
            );
            let outcome = record_failure(
                store.database(),
                &retry[0],
                t0 + 1_000,
                "http 500",
                None,
                POLICY,
                "",
            )
            .await
            .unwrap();
            assert_eq!(
                outcome,
                FailureOutcome::Dead {
                    endpoint_disabled: false
                }
            );

            let next = claim(&store, t0 + 1_000).await;
            assert_eq!(record_id(&next[0]), "c2", "the dead head no longer blocks");
            let outcome = record_failure(
                store.database(),
                &next[0],
                t0 + 2_000,
                "timeout",
                None,
                POLICY,
                "",
            )
            .await
            .unwrap();
            assert_eq!(
                outcome,
                FailureOutcome::Dead {
                    endpoint_disabled: true
                }
            );
            assert!(claim(&store, t0 + 10_000).await.is_empty(), "disabled");
            let stored = store
                .webhook_endpoint(&acme, "whk_1")
                .await
                .unwrap()
                .unwrap();
            assert!(stored.disabled);

            let page = PageRequest::parse(0, "").unwrap();
            let letters = dead_letters(store.database(), &acme, &everything(), &page)
                .await
                .unwrap();
            let described: Vec<(&str, i32, &str)> = letters
                .iter()
                .map(|d| {
                    (
                        d.record.as_ref().map_or("", |r| r.id.as_str()),
                        d.attempt_count,
                        d.error_message.as_str(),
                    )
                })
                .collect();
            assert_eq!(described, [("c2", 1, "timeout"), ("c1", 2, "http 500")]);
            assert_eq!(letters[1].webhook_endpoint_id, "whk_1");
            assert_eq!(letters[1].stage, DeadLetterStage::Deliver as i32);
            assert_eq!(
                letters[1].first_failure_time,
                Some(time::timestamp(t0)),
                "first failure kept"
            );
            let other = tenant("p1", "globex");
            assert!(
                dead_letters(store.database(), &other, &everything(), &page)
                    .await
                    .unwrap()
                    .is_empty()
            );
        },
    )
    .await;
}

#[tokio::test]
async fn replay_by_time_range_requeues_with_the_same_id_until_delivered() {
    on_every_backend(
        "replay_by_time_range_requeues_with_the_same_id_until_delivered",
        |store, log| async move {
            let acme = tenant("p1", "acme");
            store
                .insert_webhook_endpoint(&acme, &endpoint("whk_1"), "whsec_AAAA")
                .await
                .unwrap();
            log.append(
                &acme,
                vec![
                    change("conn_a", "contact", "c1"),
                    change("conn_a", "contact", "c2"),
                ],
            )
            .await
            .unwrap();
            let t0 = now();
            let lenient = DisablePolicy {
                consecutive_dead: 100,
                ..POLICY
            };
            let c1 = claim(&store, t0).await.remove(0);
            record_failure(store.database(), &c1, t0, "http 503", None, lenient, "")
                .await
                .unwrap();
            let c2 = claim(&store, t0).await.remove(0);
            record_failure(
                store.database(),
                &c2,
                t0 + 5_000,
                "http 503",
                None,
                lenient,
                "",
            )
            .await
            .unwrap();

            let only_first = DeadLetterFilter {
                from_ms: t0,
                until_ms: t0 + 5_000,
                ..DeadLetterFilter::default()
            };
            assert_eq!(
                replay(store.database(), &acme, &only_first, true, t0 + 6_000)
                    .await
                    .unwrap(),
                1
            );
            assert!(
                claim(&store, t0 + 6_000).await.is_empty(),
                "a dry run queues nothing"
            );
            let other = tenant("p1", "globex");
            assert_eq!(
                replay(store.database(), &other, &everything(), false, t0 + 6_000)
                    .await
                    .unwrap(),
                0
            );
            assert_eq!(
                replay(store.database(), &acme, &only_first, false, t0 + 6_000)
                    .await
                    .unwrap(),
                1
            );
            let again = claim(&store, t0 + 6_000).await;
            assert_eq!(again.len(), 1);
            assert_eq!(again[0].id, c1.id, "the same webhook-id");
            assert_eq!(again[0].attempt_count, 0, "a fresh round");
            assert!(
                record_success(store.database(), &again[0], t0 + 6_000)
                    .await
                    .unwrap()
            );
            let page = PageRequest::parse(0, "").unwrap();
            let left = dead_letters(store.database(), &acme, &everything(), &page)
                .await
                .unwrap();
            assert_eq!(left.len(), 1, "the delivered one's dead letter is gone");
            assert_eq!(left[0].record.as_ref().unwrap().id, "c2");
        },
    )
    .await;
}

#[tokio::test]
async fn a_lease_keeps_other_dispatchers_off_until_it_lapses() {
    on_every_backend(
        "a_lease_keeps_other_dispatchers_off_until_it_lapses",
        |store, log| async move {
            let acme = tenant("p1", "acme");
            store
                .insert_webhook_endpoint(&acme, &endpoint("whk_1"), "whsec_AAAA")
                .await
                .unwrap();
            log.append(&acme, vec![change("conn_a", "contact", "c1")])
                .await
                .unwrap();
            let t0 = now();
            let first = claim_due(store.database(), t0, t0 + 1_000, 10)
                .await
                .unwrap();
            assert_eq!(first.len(), 1);
            assert!(
                claim_due(store.database(), t0 + 999, t0 + 2_000, 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
            let second = claim_due(store.database(), t0 + 1_000, t0 + 2_000, 10)
                .await
                .unwrap();
            assert_eq!(second.len(), 1);
            assert!(
                !record_success(store.database(), &first[0], t0 + 1_001)
                    .await
                    .unwrap(),
                "the lapsed lease records nothing"
            );
            assert!(
                record_success(store.database(), &second[0], t0 + 1_001)
                    .await
                    .unwrap()
            );
            assert!(
                claim(&store, t0 + 100_000).await.is_empty(),
                "delivered once"
            );
        },
    )
    .await;
}

#[tokio::test]
async fn an_endpoint_failing_for_days_is_disabled_and_deleting_it_drops_its_queue() {
    on_every_backend(
        "an_endpoint_failing_for_days_is_disabled_and_deleting_it_drops_its_queue",
        |store, log| async move {
            let acme = tenant("p1", "acme");
            store
                .insert_webhook_endpoint(&acme, &endpoint("whk_1"), "whsec_AAAA")
                .await
                .unwrap();
            log.append(
                &acme,
                vec![
                    change("conn_a", "contact", "c1"),
                    change("conn_a", "contact", "c2"),
                ],
            )
            .await
            .unwrap();
            let t0 = now();
            let c1 = claim(&store, t0).await.remove(0);
            let outcome = record_failure(
                store.database(),
                &c1,
                t0,
                "http 500",
                Some(DAY_MS),
                POLICY,
                "",
            )
            .await
            .unwrap();
            assert_eq!(outcome, FailureOutcome::Retry(t0 + DAY_MS));
            let c1 = claim(&store, t0 + 5 * DAY_MS).await.remove(0);
            record_failure(
                store.database(),
                &c1,
                t0 + 5 * DAY_MS,
                "http 500",
                Some(DAY_MS),
                POLICY,
                "",
            )
            .await
            .unwrap();
            let stored = store
                .webhook_endpoint(&acme, "whk_1")
                .await
                .unwrap()
                .unwrap();
            assert!(stored.disabled, "failing for 5 days");
            assert!(claim(&store, t0 + 10 * DAY_MS).await.is_empty());

            let mut enabled = stored.clone();
            enabled.disabled = false;
            store
                .update_webhook_endpoint(&acme, &enabled)
                .await
                .unwrap();
            let resumed = claim(&store, t0 + 10 * DAY_MS).await;
            assert_eq!(
                record_id(&resumed[0]),
                "c1",
                "re-enabling resumes the queue in order"
            );

            assert!(store.delete_webhook_endpoint(&acme, "whk_1").await.unwrap());
            let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries")
                .fetch_one(store.database().pool())
                .await
                .unwrap();
            assert_eq!(left, 0);
        },
    )
    .await;
}
