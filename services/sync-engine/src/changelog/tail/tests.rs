use syncline_config::ServiceName;
use syncline_proto::sync::v1::Change;

use super::super::tests::{change, tenant};
use super::super::{ChangeFilter, ChangeLog, StoredChange};
use super::*;

/// Runs `check` with a log whose tenant `acme` has a live reader (its appends are kept in
/// memory) and a second log over the same database that keeps nothing (it reads every page
/// from the database, as another process would).
async fn with_two_logs<F, Fut>(test: &str, check: F)
where
    F: Fn(ChangeLog, ChangeLog) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    syncline_test_support::storage::on_every_backend(
        test,
        ServiceName::SyncEngine,
        crate::MIGRATIONS,
        |db| {
            let streamed = ChangeLog::standalone(db.clone());
            let plain = ChangeLog::standalone(db);
            check(streamed, plain)
        },
    )
    .await;
}

fn filters() -> Vec<ChangeFilter> {
    vec![
        ChangeFilter::default(),
        ChangeFilter {
            connection_ids: vec!["conn_b".into()],
            ..ChangeFilter::default()
        },
        ChangeFilter {
            objects: vec!["deal".into()],
            include_provider_record: true,
            ..ChangeFilter::default()
        },
        ChangeFilter {
            include_provider_record: true,
            ..ChangeFilter::default()
        },
    ]
}

/// Every page a reader can ask for, from both logs: they must be the same.
async fn assert_same_pages(streamed: &ChangeLog, plain: &ChangeLog, head: u64) {
    let acme = tenant("p", "acme");
    for filter in filters() {
        for after in 0..=head {
            for through in [after, (after + 4).min(head), head] {
                for limit in [1, 3, 100] {
                    let kept = streamed
                        .page_encoded(&acme, after, through, &filter, limit)
                        .await
                        .unwrap();
                    let read = plain
                        .page_encoded(&acme, after, through, &filter, limit)
                        .await
                        .unwrap();
                    assert_eq!(kept, read, "after {after}, through {through}, {filter:?}");
                }
            }
        }
    }
}

fn batch(round: usize) -> Vec<Change> {
    (0..7)
        .map(|i| {
            let connection = if i % 2 == 0 { "conn_a" } else { "conn_b" };
            let object = if i % 3 == 0 { "deal" } else { "contact" };
            change(connection, object, &format!("r{round}_{i}"))
        })
        .collect()
}

#[tokio::test]
async fn pages_of_a_streamed_tenant_come_from_memory_and_equal_the_database() {
    with_two_logs(
        "pages_of_a_streamed_tenant_come_from_memory_and_equal_the_database",
        |streamed, plain| async move {
            let acme = tenant("p", "acme");
            let _reader = streamed.subscribe(&acme);
            for round in 0..3 {
                streamed.append(&acme, batch(round)).await.unwrap();
            }
            assert!(
                streamed
                    .tail
                    .page(&acme, 0, 21, &ChangeFilter::default(), 100)
                    .is_some_and(|page| page.len() == 21),
                "all 21 changes are kept"
            );
            assert_same_pages(&streamed, &plain, 21).await;
        },
    )
    .await;
}

#[tokio::test]
async fn appends_of_another_process_send_readers_to_the_database() {
    with_two_logs(
        "appends_of_another_process_send_readers_to_the_database",
        |streamed, other| async move {
            let acme = tenant("p", "acme");
            let _reader = streamed.subscribe(&acme);
            streamed.append(&acme, batch(0)).await.unwrap();
            other.append(&acme, batch(1)).await.unwrap();
            streamed.append(&acme, batch(2)).await.unwrap();
            // The third append did not follow the first (the other process took 8–14), so
            // only 15–21 are kept.
            let all = ChangeFilter::default();
            assert!(streamed.tail.page(&acme, 0, 21, &all, 100).is_none());
            assert!(streamed.tail.page(&acme, 14, 21, &all, 100).is_some());
            // Sequences 8–14 are not in memory here: read from the database, in order.
            let page = streamed.page(&acme, 0, 21, &all, 100).await.unwrap();
            assert_eq!(
                page.iter().map(|c| c.sequence).collect::<Vec<_>>(),
                (1..=21).collect::<Vec<_>>()
            );
            assert_same_pages(&streamed, &other, 21).await;

            // A tenant nobody streams here keeps nothing in memory.
            let globex = tenant("p", "globex");
            streamed.append(&globex, batch(3)).await.unwrap();
            assert!(streamed.tail.page(&globex, 0, 7, &all, 100).is_none());
        },
    )
    .await;
}

/// A kept change of `bytes` bytes in all (as [`size`] counts them).
fn entry_of(bytes: usize) -> impl Fn(u64) -> StoredChange {
    move |sequence| StoredChange {
        sequence,
        connection_id: "conn_a".into(),
        object: "contact".into(),
        change: vec![7; bytes - 64],
        provider_record: None,
    }
}

#[test]
fn a_tenant_keeps_at_most_its_byte_budget_newest_first() {
    let tail = Tail::default();
    let acme = tenant("p", "acme");
    let entry = entry_of(64 * 1024 + 64);
    let count = (MAX_BYTES_PER_TENANT / (64 * 1024)) as u64 * 2;
    for first in (1..=count).step_by(10) {
        tail.keep(&acme, (first..first + 10).map(&entry).collect());
    }
    let last = count.div_ceil(10) * 10;
    let all = ChangeFilter::default();
    assert!(
        tail.page(&acme, 0, last, &all, 10_000).is_none(),
        "the oldest were dropped"
    );
    let kept = tail
        .page(&acme, last - 20, last, &all, 10_000)
        .expect("the newest are kept");
    assert_eq!(kept.len(), 20);
    assert_eq!(kept[0].sequence, last - 19);
    let bytes: usize = tail.tenants.lock().unwrap().kept[&key(&acme)].bytes;
    assert!(bytes <= MAX_BYTES_PER_TENANT, "{bytes}");
}

#[tokio::test]
async fn what_was_kept_for_a_tenant_goes_when_its_last_stream_ends() {
    with_two_logs(
        "what_was_kept_for_a_tenant_goes_when_its_last_stream_ends",
        |streamed, _plain| async move {
            let acme = tenant("p", "acme");
            let all = ChangeFilter::default();
            let first = streamed.subscribe(&acme);
            let second = streamed.subscribe(&acme);
            streamed.append(&acme, batch(0)).await.unwrap();
            drop(first);
            streamed.stream_ended(&acme);
            assert!(
                streamed.tail.page(&acme, 0, 7, &all, 100).is_some(),
                "another stream still follows acme"
            );
            drop(second);
            streamed.stream_ended(&acme);
            assert!(streamed.tail.page(&acme, 0, 7, &all, 100).is_none());
        },
    )
    .await;
}

#[test]
fn tenants_together_keep_at_most_the_process_budget_the_biggest_giving_up_its_oldest() {
    // Entries of 1,000 bytes; 12 per tenant, 20 for all.
    let tail = Tail::with_limits(12_000, 20_000);
    let entry = entry_of(1_000);
    let all = ChangeFilter::default();
    let bytes = |t: &TenantContext| {
        tail.tenants
            .lock()
            .unwrap()
            .kept
            .get(&key(t))
            .map_or(0, |kept| kept.bytes)
    };
    let total = || tail.tenants.lock().unwrap().bytes;
    let (small, medium, big) = (
        tenant("p", "small"),
        tenant("p", "medium"),
        tenant("p", "big"),
    );
    tail.keep(&small, (1..=3).map(&entry).collect());
    tail.keep(&medium, (1..=6).map(&entry).collect());
    tail.keep(&big, (1..=10).map(&entry).collect());
    assert_eq!(total(), 19_000, "under both limits nothing goes");

    // Four more of the big tenant: its own limit keeps 3–14 (12), which makes 21 in all,
    // so the biggest (big) gives up one more: 4–14.
    tail.keep(&big, (11..=14).map(&entry).collect());
    assert!(tail.page(&big, 3, 14, &all, 100).is_some());
    assert!(tail.page(&big, 2, 14, &all, 100).is_none(), "3 went");
    assert_eq!(total(), 20_000);

    // Four more of the medium tenant make 24: the biggest comes down to the next biggest,
    // then both take turns; the small tenant keeps everything.
    tail.keep(&medium, (7..=10).map(&entry).collect());
    assert_eq!(total(), 20_000);
    assert_eq!(bytes(&small), 3_000);
    assert_eq!(bytes(&big) + bytes(&medium), 17_000);
    assert!(bytes(&big).min(bytes(&medium)) >= 8_000, "levelled");
    assert!(tail.page(&small, 0, 3, &all, 100).is_some());
    assert!(
        tail.page(&medium, 2, 10, &all, 100).is_some(),
        "the newest 8 stay"
    );
    assert!(
        tail.page(&big, 6, 14, &all, 100).is_some(),
        "the newest 8 stay"
    );

    // A tenant whose last stream ends gives its bytes back to the others.
    let medium_bytes = bytes(&medium);
    tail.forget(&medium);
    assert_eq!(total(), 20_000 - medium_bytes);
    tail.keep(&big, (15..=16).map(&entry).collect());
    assert_eq!(total(), 3_000 + bytes(&big));
    assert!(
        tail.page(&big, 6, 16, &all, 100).is_some(),
        "nothing went this time"
    );
}
