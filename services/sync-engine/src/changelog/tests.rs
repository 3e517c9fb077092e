use std::time::Duration;

use futures::StreamExt;
use syncline_config::ServiceName;
use syncline_domain::{ProjectId, TenantId};
use syncline_proto::common::v1::Record;
use syncline_proto::sync::v1::StreamChangesRequest;

use super::stream::{self, StreamOptions};
use super::*;

async fn on_every_backend<F, Fut>(test: &str, check: F)
where
    F: Fn(ChangeLog) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    syncline_test_support::storage::on_every_backend(
        test,
        ServiceName::SyncEngine,
        crate::MIGRATIONS,
        |db| check(ChangeLog::standalone(db)),
    )
    .await;
}

pub(crate) fn tenant(project: &str, tenant: &str) -> TenantContext {
    TenantContext {
        project_id: ProjectId::parse(project).unwrap(),
        tenant_id: TenantId::parse(tenant).unwrap(),
        subject: "test".into(),
    }
}

pub(crate) fn change(connection: &str, object: &str, id: &str) -> Change {
    Change {
        connection_id: connection.into(),
        object: object.into(),
        operation: RecordOperation::Update as i32,
        record: Some(Record {
            object: object.into(),
            id: id.into(),
            ..Record::default()
        }),
        provider_record: Some(Record {
            object: "Contact".into(),
            id: id.into(),
            ..Record::default()
        }),
        ..Change::default()
    }
}

fn sequences(changes: &[Change]) -> Vec<u64> {
    changes.iter().map(|c| c.sequence).collect()
}

fn record_ids(changes: &[Change]) -> Vec<&str> {
    changes
        .iter()
        .map(|c| c.record.as_ref().map_or("", |r| r.id.as_str()))
        .collect()
}

#[tokio::test]
async fn appends_number_each_tenant_from_one_and_pages_filter_in_order() {
    on_every_backend(
        "appends_number_each_tenant_from_one_and_pages_filter_in_order",
        |log| async move {
            let acme = tenant("p1", "acme");
            let globex = tenant("p1", "globex");
            let first = log
                .append(
                    &acme,
                    vec![
                        change("conn_a", "contact", "c1"),
                        change("conn_b", "contact", "c2"),
                        change("conn_a", "deal", "d1"),
                    ],
                )
                .await
                .unwrap();
            assert_eq!((first.first_sequence, first.last_sequence), (1, 3));
            let other = log
                .append(&globex, vec![change("conn_x", "contact", "g1")])
                .await
                .unwrap();
            assert_eq!((other.first_sequence, other.last_sequence), (1, 1));
            let second = log
                .append(&acme, vec![change("conn_a", "contact", "c3")])
                .await
                .unwrap();
            assert_eq!((second.first_sequence, second.last_sequence), (4, 4));
            assert_eq!(log.head(&acme).await.unwrap().last_sequence, 4);

            let all = ChangeFilter::default();
            let page = log.page(&acme, 1, 4, &all, 100).await.unwrap();
            assert_eq!(sequences(&page), [2, 3, 4]);
            assert_eq!(record_ids(&page), ["c2", "d1", "c3"]);
            assert!(page.iter().all(|c| c.provider_record.is_none()));
            assert!(page.iter().all(|c| c.publish_time.is_some()));
            assert_eq!(
                sequences(&log.page(&acme, 0, 4, &all, 2).await.unwrap()),
                [1, 2]
            );
            assert_eq!(
                sequences(&log.page(&acme, 0, 3, &all, 100).await.unwrap()),
                [1, 2, 3],
                "bounded by `through`"
            );
            let contacts_of_a = ChangeFilter {
                connection_ids: vec!["conn_a".into()],
                objects: vec!["contact".into()],
                include_provider_record: true,
            };
            let page = log.page(&acme, 0, 4, &contacts_of_a, 100).await.unwrap();
            assert_eq!(record_ids(&page), ["c1", "c3"]);
            assert!(page.iter().all(|c| c.provider_record.is_some()));
            let theirs = log.page(&globex, 0, 10, &all, 100).await.unwrap();
            assert_eq!(record_ids(&theirs), ["g1"]);
        },
    )
    .await;
}

#[tokio::test]
async fn invalid_changes_are_refused_with_field_violations() {
    on_every_backend(
        "invalid_changes_are_refused_with_field_violations",
        |log| async move {
            let acme = tenant("p1", "acme");
            let error = log
                .append(
                    &acme,
                    vec![Change {
                        record: None,
                        operation: 0,
                        ..change("", "", "x")
                    }],
                )
                .await
                .unwrap_err();
            let fields: Vec<&str> = error
                .violations()
                .iter()
                .map(|v| v.field.as_str())
                .collect();
            assert_eq!(
                fields,
                [
                    "changes[0].connection_id",
                    "changes[0].object",
                    "changes[0].operation",
                    "changes[0].record"
                ]
            );
            assert_eq!(log.head(&acme).await.unwrap().last_sequence, 0);
        },
    )
    .await;
}

#[tokio::test]
async fn concurrent_appends_never_hand_out_the_same_sequence() {
    on_every_backend(
        "concurrent_appends_never_hand_out_the_same_sequence",
        |log| async move {
            let acme = tenant("p1", "acme");
            let tasks: Vec<_> = (0..8)
                .map(|task| {
                    let log = log.clone();
                    let acme = acme.clone();
                    tokio::spawn(async move {
                        let mut ranges = Vec::new();
                        for round in 0..10 {
                            let batch = (0..5)
                                .map(|i| {
                                    change("conn_a", "contact", &format!("{task}-{round}-{i}"))
                                })
                                .collect();
                            let appended = log.append(&acme, batch).await.unwrap();
                            ranges.push((appended.first_sequence, appended.last_sequence));
                        }
                        ranges
                    })
                })
                .collect();
            let mut assigned = Vec::new();
            for task in tasks {
                for (first, last) in task.await.unwrap() {
                    assert_eq!(last - first, 4, "a batch gets consecutive sequences");
                    assigned.extend(first..=last);
                }
            }
            assigned.sort_unstable();
            assert_eq!(assigned, (1..=400).collect::<Vec<u64>>());
            let stored = log
                .page(&acme, 0, 400, &ChangeFilter::default(), 1000)
                .await
                .unwrap();
            assert_eq!(sequences(&stored), (1..=400).collect::<Vec<u64>>());
        },
    )
    .await;
}

async fn next(
    stream: &mut stream::ChangeStream,
) -> syncline_proto::sync::v1::StreamChangesResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a message within 10 s")
        .expect("the stream is open")
        .expect("not an error")
        .to_response()
        .expect("the message decodes as a StreamChangesResponse")
}

#[tokio::test]
async fn a_stream_resumes_after_a_sequence_then_follows_live_appends() {
    on_every_backend(
        "a_stream_resumes_after_a_sequence_then_follows_live_appends",
        |log| async move {
            let acme = tenant("p1", "acme");
            let globex = tenant("p1", "globex");
            let batch = (1..=5)
                .map(|i| change("conn_a", "contact", &format!("c{i}")))
                .collect();
            log.append(&acme, batch).await.unwrap();
            let request = StreamChangesRequest {
                after_sequence: 2,
                max_batch_size: 2,
                ..StreamChangesRequest::default()
            };
            let mut stream =
                stream::open(log.clone(), acme.clone(), request, StreamOptions::default())
                    .await
                    .unwrap();
            let first = next(&mut stream).await;
            assert_eq!(sequences(&first.changes), [3, 4]);
            assert_eq!(first.head_sequence, 5);
            assert_eq!(sequences(&next(&mut stream).await.changes), [5]);

            log.append(&globex, vec![change("conn_x", "contact", "g1")])
                .await
                .unwrap();
            log.append(&acme, vec![change("conn_a", "contact", "c6")])
                .await
                .unwrap();
            let live = next(&mut stream).await;
            assert_eq!(sequences(&live.changes), [6]);
            assert_eq!(record_ids(&live.changes), ["c6"], "never another tenant's");
        },
    )
    .await;
}

#[tokio::test]
async fn an_idle_stream_sends_heartbeats_with_the_head() {
    on_every_backend(
        "an_idle_stream_sends_heartbeats_with_the_head",
        |log| async move {
            let acme = tenant("p1", "acme");
            log.append(&acme, vec![change("conn_a", "contact", "c1")])
                .await
                .unwrap();
            let options = StreamOptions {
                heartbeat: Duration::from_millis(50),
                ..StreamOptions::default()
            };
            let request = StreamChangesRequest {
                after_sequence: 1,
                ..StreamChangesRequest::default()
            };
            let mut stream = stream::open(log.clone(), acme, request, options)
                .await
                .unwrap();
            let heartbeat = next(&mut stream).await;
            assert!(heartbeat.changes.is_empty());
            assert_eq!(heartbeat.head_sequence, 1);
        },
    )
    .await;
}

#[tokio::test]
async fn a_filtered_stream_skips_other_objects_and_stays_live() {
    on_every_backend(
        "a_filtered_stream_skips_other_objects_and_stays_live",
        |log| async move {
            let acme = tenant("p1", "acme");
            let request = StreamChangesRequest {
                objects: vec!["deal".into()],
                ..StreamChangesRequest::default()
            };
            let mut stream =
                stream::open(log.clone(), acme.clone(), request, StreamOptions::default())
                    .await
                    .unwrap();
            log.append(&acme, vec![change("conn_a", "contact", "c1")])
                .await
                .unwrap();
            log.append(
                &acme,
                vec![
                    change("conn_a", "contact", "c2"),
                    change("conn_a", "deal", "d1"),
                ],
            )
            .await
            .unwrap();
            let message = next(&mut stream).await;
            assert_eq!(record_ids(&message.changes), ["d1"]);
            assert_eq!(sequences(&message.changes), [3]);
        },
    )
    .await;
}

#[tokio::test]
async fn retention_removes_old_changes_and_expires_older_cursors() {
    on_every_backend(
        "retention_removes_old_changes_and_expires_older_cursors",
        |log| async move {
            let acme = tenant("p1", "acme");
            let globex = tenant("p1", "globex");
            let batch = (1..=3)
                .map(|i| change("conn_a", "contact", &format!("c{i}")))
                .collect();
            log.append(&acme, batch).await.unwrap();
            let removed = log.prune(now_ms() + 1_000).await.unwrap();
            assert_eq!(removed, 3);
            let head = log.head(&acme).await.unwrap();
            assert_eq!((head.last_sequence, head.pruned_through), (3, 3));
            assert_eq!(log.head(&globex).await.unwrap(), Head::default());

            let expired = stream::open(
                log.clone(),
                acme.clone(),
                StreamChangesRequest {
                    after_sequence: 1,
                    ..StreamChangesRequest::default()
                },
                StreamOptions::default(),
            )
            .await
            .unwrap_err();
            assert_eq!(expired.code(), tonic::Code::OutOfRange);
            assert!(expired.message().contains("no longer retained"));

            let mut from_oldest = stream::open(
                log.clone(),
                acme.clone(),
                StreamChangesRequest::default(),
                StreamOptions::default(),
            )
            .await
            .unwrap();
            log.append(&acme, vec![change("conn_a", "contact", "c4")])
                .await
                .unwrap();
            assert_eq!(sequences(&next(&mut from_oldest).await.changes), [4]);
            assert_eq!(
                log.prune(0).await.unwrap(),
                0,
                "nothing older than the epoch"
            );
        },
    )
    .await;
}

#[test]
fn multi_row_inserts_number_placeholders_row_by_row() {
    assert_eq!(value_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
    assert_eq!(value_rows(1, 1), "($1)");
}

#[test]
fn bulk_statements_use_anonymous_parameters_on_sqlite_and_numbered_ones_on_postgres() {
    assert_eq!(Params::Anonymous.rows(2, 3), "(?, ?, ?), (?, ?, ?)");
    assert_eq!(Params::Anonymous.list(3, 2), "?, ?");
    assert_eq!(Params::Numbered.rows(2, 3), value_rows(2, 3));
    assert_eq!(Params::Numbered.list(3, 2), "$3, $4");
}

#[test]
fn the_notifier_wakes_only_the_tenant_appended_to() {
    let notifier = Notifier::default();
    let acme = tenant("p1", "acme");
    let mut acme_rx = notifier.subscribe(&acme);
    let globex_rx = notifier.subscribe(&tenant("p1", "globex"));
    notifier.publish(&acme, 7);
    assert!(acme_rx.has_changed().unwrap());
    assert_eq!(*acme_rx.borrow_and_update(), 7);
    assert!(!globex_rx.has_changed().unwrap());
    drop((acme_rx, globex_rx));
    notifier.publish(&acme, 8);
    assert_eq!(
        notifier.senders.lock().unwrap().len(),
        1,
        "a sender without receivers is dropped on the next publish"
    );
}

#[tokio::test]
async fn appends_by_another_engine_arrive_through_polling() {
    on_every_backend(
        "appends_by_another_engine_arrive_through_polling",
        |log| async move {
            // A second engine on the same database: its appends wake nothing here.
            let other_engine = ChangeLog::standalone(log.database().clone());
            let acme = tenant("p1", "acme");
            let options = StreamOptions {
                poll_interval: Some(Duration::from_millis(20)),
                ..StreamOptions::default()
            };
            let mut stream = stream::open(
                log.clone(),
                acme.clone(),
                StreamChangesRequest::default(),
                options,
            )
            .await
            .unwrap();
            other_engine
                .append(&acme, vec![change("conn_a", "contact", "c1")])
                .await
                .unwrap();
            assert_eq!(record_ids(&next(&mut stream).await.changes), ["c1"]);
        },
    )
    .await;
}

#[tokio::test]
async fn open_streams_end_unavailable_when_the_service_stops() {
    on_every_backend(
        "open_streams_end_unavailable_when_the_service_stops",
        |log| async move {
            let options = StreamOptions::default();
            let stopping = options.stopping.clone();
            let mut stream = stream::open(
                log.clone(),
                tenant("p1", "acme"),
                StreamChangesRequest::default(),
                options,
            )
            .await
            .unwrap();
            stopping.cancel();
            let ended = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap_err();
            assert_eq!(ended.code(), tonic::Code::Unavailable);
        },
    )
    .await;
}

#[tokio::test]
async fn provider_records_are_kept_apart_and_rows_from_before_the_split_still_read() {
    on_every_backend(
        "provider_records_are_kept_apart_and_rows_from_before_the_split_still_read",
        |log| async move {
            let acme = tenant("p1", "acme");
            log.append(&acme, vec![change("conn_a", "contact", "new")])
                .await
                .unwrap();
            // A row as written before migration 6: the provider record inside `change`.
            let mut old = change("conn_a", "contact", "old");
            old.sequence = 2;
            sqlx::query(
                "UPDATE tenant_sequences SET last_sequence = 2
                 WHERE project_id = $1 AND tenant_id = $2",
            )
            .bind("p1")
            .bind("acme")
            .execute(log.database().pool())
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO changes (project_id, tenant_id, sequence, connection_id, object,
                                      published_at_ms, change)
                 VALUES ($1, $2, 2, 'conn_a', 'contact', 1, $3)",
            )
            .bind("p1")
            .bind("acme")
            .bind(old.encode_to_vec())
            .execute(log.database().pool())
            .await
            .unwrap();

            let (stored,): (Option<Vec<u8>>,) = sqlx::query_as(
                "SELECT provider_record FROM changes WHERE tenant_id = $1 AND sequence = 1",
            )
            .bind("acme")
            .fetch_one(log.database().pool())
            .await
            .unwrap();
            let stored = Record::decode(stored.unwrap().as_slice()).unwrap();
            assert_eq!(
                stored.id, "new",
                "the provider record has a column of its own"
            );

            let without = log
                .page(&acme, 0, 2, &ChangeFilter::default(), 10)
                .await
                .unwrap();
            assert_eq!(record_ids(&without), ["new", "old"]);
            assert!(without.iter().all(|c| c.provider_record.is_none()));
            let with = ChangeFilter {
                include_provider_record: true,
                ..ChangeFilter::default()
            };
            let page = log.page(&acme, 0, 2, &with, 10).await.unwrap();
            let ids: Vec<&str> = page
                .iter()
                .map(|c| c.provider_record.as_ref().unwrap().id.as_str())
                .collect();
            assert_eq!(ids, ["new", "old"]);

            if log.database().backend() == syncline_storage::Backend::Postgres {
                // The PostgreSQL variant of migration 6 ran: change rows stay uncompressed.
                let (options,): (String,) = sqlx::query_as(
                    "SELECT array_to_string(reloptions, ',') FROM pg_class
                     WHERE oid = 'changes'::regclass",
                )
                .fetch_one(log.database().pool())
                .await
                .unwrap();
                assert_eq!(options, "toast_tuple_target=8160");
            }
        },
    )
    .await;
}
