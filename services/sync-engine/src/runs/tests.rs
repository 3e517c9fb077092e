//! The queue and the page commit on SQLite and PostgreSQL: fair turns under the per-tenant
//! cap, lease takeover, and the record-state dedupe that makes a replayed page publish
//! nothing.

use syncline_config::ServiceName;
use syncline_domain::{ProjectId, TenantContext, TenantId};
use syncline_proto::common::v1::{Record, RecordOperation};
use syncline_proto::sync::v1::{Change, SyncMode, SyncRun};
use syncline_storage::Database;

use super::store::{
    Claim, Committed, DELETED_HASH, NewRun, NewSlice, PageCommit, PageRecord, RunStore,
};
use crate::changelog::prepared::PreparedChange;
use crate::changelog::{ChangeFilter, ChangeLog};

pub(crate) async fn on_every_backend<F, Fut>(test: &str, check: F)
where
    F: Fn(Database) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    syncline_test_support::storage::on_every_backend(
        test,
        ServiceName::SyncEngine,
        crate::MIGRATIONS,
        check,
    )
    .await;
}

pub(crate) fn tenant(name: &str) -> TenantContext {
    TenantContext {
        project_id: ProjectId::parse("p1").unwrap(),
        tenant_id: TenantId::parse(name).unwrap(),
        subject: "test".into(),
    }
}

async fn run(store: &RunStore, tenant: &TenantContext, id: &str, objects: &[&str]) {
    let run = SyncRun {
        id: id.into(),
        connection_id: format!("conn-{}", tenant.tenant_id),
        mode: SyncMode::Incremental as i32,
        ..SyncRun::default()
    };
    let slices = objects
        .iter()
        .map(|o| NewSlice {
            object: (*o).into(),
            provider_object: o.to_uppercase(),
            cursor: String::new(),
        })
        .collect();
    let new = NewRun {
        run,
        slices,
        trace_parent: String::new(),
        created_at_ms: 1,
    };
    assert!(store.insert_run(tenant, &new).await.unwrap());
}

fn log(db: &Database) -> ChangeLog {
    ChangeLog::standalone(db.clone())
}

fn record(claim: &Claim, id: &str, hash: &str) -> PageRecord {
    PageRecord {
        id: id.into(),
        hash: hash.into(),
        change: PreparedChange::from_change(Change {
            connection_id: claim.connection_id.clone(),
            object: claim.object.clone(),
            record: Some(Record {
                object: claim.object.clone(),
                id: id.into(),
                deleted: hash == DELETED_HASH,
                ..Record::default()
            }),
            sync_run_id: claim.run_id.clone(),
            ..Change::default()
        }),
    }
}

fn page(records: Vec<PageRecord>, cursor: &str, caught_up: bool, now_ms: i64) -> PageCommit {
    PageCommit {
        records,
        cursor: cursor.into(),
        caught_up,
        estimated_total: None,
        provider_calls: 1,
        records_failed: 0,
        now_ms,
        not_before_ms: 0,
        keep_lease_until_ms: 0,
        dead_letters: Vec::new(),
        skipped: None,
    }
}

#[tokio::test]
async fn claims_take_turns_across_tenants_under_the_per_tenant_cap() {
    on_every_backend(
        "claims_take_turns_across_tenants_under_the_per_tenant_cap",
        |db| async move {
            let store = RunStore::new(db.clone());
            let (big, small) = (tenant("big"), tenant("small"));
            run(&store, &big, "run_a", &["a1", "a2", "a3"]).await;
            run(&store, &small, "run_b", &["b1"]).await;
            let lease = 60_000;
            let first = store.claim("w1", 1_000, lease, 1).await.unwrap().unwrap();
            let second = store.claim("w2", 1_001, lease, 1).await.unwrap().unwrap();
            assert_ne!(
                first.tenant.tenant_id, second.tenant.tenant_id,
                "a tenant at its cap waits while another has work"
            );
            assert!(store.claim("w3", 1_002, lease, 1).await.unwrap().is_none());
            // With a cap of two, the big tenant's second slice may go.
            let third = store.claim("w3", 1_003, lease, 2).await.unwrap().unwrap();
            assert_eq!(third.tenant.tenant_id.as_str(), "big");
            assert_ne!(third.slice_id, first.slice_id);

            // Every slice given back: the tenant served longest ago goes first.
            for (claim, holder) in [(&first, "w1"), (&second, "w2"), (&third, "w3")] {
                store.release(claim, holder, None).await.unwrap();
            }
            // The big tenant was served last at 1003, the small one at 1001.
            let next = store.claim("w1", 2_000, lease, 1).await.unwrap().unwrap();
            assert_eq!(next.tenant.tenant_id.as_str(), "small");
            let after = store.claim("w2", 2_001, lease, 1).await.unwrap().unwrap();
            assert_eq!(after.tenant.tenant_id.as_str(), "big");
        },
    )
    .await;
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_old_holder_cannot_commit() {
    on_every_backend(
        "an_expired_lease_is_taken_over_and_the_old_holder_cannot_commit",
        |db| async move {
            let store = RunStore::new(db.clone());
            let log = log(&db);
            let acme = tenant("acme");
            run(&store, &acme, "run_1", &["contact"]).await;
            let old = store.claim("dead", 1_000, 100, 1).await.unwrap().unwrap();
            assert!(store.claim("live", 1_050, 100, 1).await.unwrap().is_none());
            let new = store.claim("live", 1_200, 100, 1).await.unwrap().unwrap();
            assert_eq!(new.slice_id, old.slice_id);
            let stale = store
                .commit_page(
                    &log,
                    &old,
                    "dead",
                    page(vec![record(&old, "1", "h1")], "c1", false, 1_250),
                )
                .await
                .unwrap();
            assert_eq!(stale, Committed::Discarded);
            let fresh = store
                .commit_page(
                    &log,
                    &new,
                    "live",
                    page(vec![record(&new, "1", "h1")], "c1", true, 1_260),
                )
                .await
                .unwrap();
            assert_eq!(
                fresh,
                Committed::Stored {
                    published: 1,
                    unchanged: 0,
                    run_finished: true,
                    kept: false,
                }
            );
            assert_eq!(log.head(&acme).await.unwrap().last_sequence, 1);
            let checkpoints = store.checkpoints(&acme, "conn-acme").await.unwrap();
            assert_eq!(checkpoints["contact"], "c1");
        },
    )
    .await;
}

#[tokio::test]
async fn a_replayed_page_publishes_nothing_and_changes_are_typed_by_what_was_known() {
    on_every_backend(
        "a_replayed_page_publishes_nothing_and_changes_are_typed_by_what_was_known",
        |db| async move {
            let store = RunStore::new(db.clone());
            let log = log(&db);
            let acme = tenant("acme");
            run(&store, &acme, "run_1", &["contact"]).await;
            let mut now = 1_000;
            let mut commit = |records: Vec<(&'static str, &'static str)>| {
                now += 10;
                let store = store.clone();
                let log = log.clone();
                async move {
                    let claim = store.claim("w", now, 1_000, 1).await.unwrap().unwrap();
                    let records = records
                        .into_iter()
                        .map(|(id, h)| record(&claim, id, h))
                        .collect();
                    store
                        .commit_page(&log, &claim, "w", page(records, "c", false, now))
                        .await
                        .unwrap()
                }
            };
            let stored = |published, unchanged| Committed::Stored {
                published,
                unchanged,
                run_finished: false,
                kept: false,
            };
            assert_eq!(
                commit(vec![("1", "a"), ("2", "b"), ("3", DELETED_HASH)]).await,
                stored(2, 1)
            );
            // The same page again (a crash after the read, before the commit of the next).
            assert_eq!(
                commit(vec![("1", "a"), ("2", "b"), ("3", DELETED_HASH)]).await,
                stored(0, 3)
            );
            // One changed, one deleted, one repeated twice in a page.
            assert_eq!(
                commit(vec![
                    ("1", "a2"),
                    ("2", DELETED_HASH),
                    ("4", "d"),
                    ("4", "d")
                ])
                .await,
                stored(3, 1)
            );
            let changes = log
                .page(&acme, 0, u64::MAX, &ChangeFilter::default(), 100)
                .await
                .unwrap();
            let ops: Vec<(&str, RecordOperation)> = changes
                .iter()
                .map(|c| (c.record.as_ref().unwrap().id.as_str(), c.operation()))
                .collect();
            assert_eq!(
                ops,
                [
                    ("1", RecordOperation::Create),
                    ("2", RecordOperation::Create),
                    ("1", RecordOperation::Update),
                    ("2", RecordOperation::Delete),
                    ("4", RecordOperation::Create),
                ]
            );
            let mut runs = [SyncRun {
                id: "run_1".into(),
                ..SyncRun::default()
            }];
            store.complete(&acme, &mut runs).await.unwrap();
            let stats = runs[0].stats.unwrap();
            assert_eq!(
                (
                    stats.records_read,
                    stats.changes_published,
                    stats.records_unchanged
                ),
                (10, 5, 5)
            );
        },
    )
    .await;
}

#[tokio::test]
async fn paused_runs_are_not_worked_and_budget_pauses_resume_when_due() {
    on_every_backend(
        "paused_runs_are_not_worked_and_budget_pauses_resume_when_due",
        |db| async move {
            let store = RunStore::new(db.clone());
            let acme = tenant("acme");
            run(&store, &acme, "run_1", &["contact"]).await;
            assert!(
                store
                    .pause_with_reason(
                        "run_1",
                        syncline_proto::common::v1::ErrorReason::QuotaExhausted,
                        "over budget",
                        Some(5_000),
                    )
                    .await
                    .unwrap()
            );
            assert!(store.claim("w", 1_000, 100, 1).await.unwrap().is_none());
            assert_eq!(store.resume_due(4_999).await.unwrap(), 0);
            assert_eq!(store.resume_due(5_000).await.unwrap(), 1);
            assert!(store.claim("w", 5_001, 100, 1).await.unwrap().is_some());

            // Paused by the budget, then through the API: it waits for a resume.
            // (Another connection: one active run per connection and mode.)
            let globex = tenant("globex");
            run(&store, &globex, "run_2", &["deal"]).await;
            store
                .pause_with_reason(
                    "run_2",
                    syncline_proto::common::v1::ErrorReason::QuotaExhausted,
                    "over budget",
                    Some(9_000),
                )
                .await
                .unwrap();
            let paused = [
                super::store::PENDING,
                super::store::RUNNING,
                super::store::PAUSED,
            ];
            assert!(
                store
                    .transition(&globex, "run_2", &paused, super::store::PAUSED, 6_000)
                    .await
                    .unwrap()
            );
            assert_eq!(store.resume_due(10_000).await.unwrap(), 0);
        },
    )
    .await;
}

#[tokio::test]
async fn a_page_committed_within_a_turn_keeps_the_slice_unless_the_run_was_paused() {
    on_every_backend(
        "a_page_committed_within_a_turn_keeps_the_slice_unless_the_run_was_paused",
        |db| async move {
            let store = RunStore::new(db.clone());
            let log = log(&db);
            let acme = tenant("acme");
            run(&store, &acme, "run_1", &["contact"]).await;
            let lease = 60_000;
            let claim = store.claim("w1", 1_000, lease, 1).await.unwrap().unwrap();
            let mut first = page(vec![record(&claim, "1", "h1")], "c1", false, 1_100);
            first.keep_lease_until_ms = 1_100 + lease;
            let kept = store.commit_page(&log, &claim, "w1", first).await.unwrap();
            assert!(
                matches!(kept, Committed::Stored { kept: true, .. }),
                "{kept:?}"
            );
            // Still the first worker's: nobody else may claim it, long after the page.
            assert!(store.claim("w2", 30_000, lease, 1).await.unwrap().is_none());

            // The run is paused while the next page is in flight: that page is stored, and
            // the slice given back.
            let paused = store
                .transition(
                    &acme,
                    "run_1",
                    &[super::store::PENDING, super::store::RUNNING],
                    super::store::PAUSED,
                    30_000,
                )
                .await
                .unwrap();
            assert!(paused);
            let mut second = page(vec![record(&claim, "2", "h2")], "c2", false, 30_100);
            second.keep_lease_until_ms = 30_100 + lease;
            let released = store.commit_page(&log, &claim, "w1", second).await.unwrap();
            assert!(
                matches!(
                    released,
                    Committed::Stored {
                        kept: false,
                        published: 1,
                        ..
                    }
                ),
                "{released:?}"
            );
            assert_eq!(log.head(&acme).await.unwrap().last_sequence, 2);
            // Resumed, the slice is free again and carries on from the stored cursor.
            store
                .transition(
                    &acme,
                    "run_1",
                    &[super::store::PAUSED],
                    super::store::RUNNING,
                    30_200,
                )
                .await
                .unwrap();
            let again = store.claim("w2", 30_300, lease, 1).await.unwrap().unwrap();
            assert_eq!(again.slice_id, claim.slice_id);
            assert_eq!(again.cursor, "c2");
        },
    )
    .await;
}

#[tokio::test]
async fn fields_that_fail_to_map_are_dead_lettered_once_per_record_and_field() {
    use crate::delivery::outbox::{DeadLetterFilter, dead_letters};
    use syncline_proto::sync::v1::{DeadLetter, DeadLetterStage};
    use syncline_service_kit::pagination::PageRequest;

    on_every_backend(
        "fields_that_fail_to_map_are_dead_lettered_once_per_record_and_field",
        |db| async move {
            let store = RunStore::new(db.clone());
            let log = log(&db);
            let (acme, other) = (tenant("acme"), tenant("other"));
            run(&store, &acme, "run_1", &["deal"]).await;
            let letter = |claim: &Claim, record: &str, message: &str| DeadLetter {
                id: syncline_domain::ids::new_resource_id("dlq"),
                connection_id: claim.connection_id.clone(),
                object: claim.object.clone(),
                record_id: record.into(),
                stage: DeadLetterStage::Map as i32,
                error_message: message.into(),
                field: "amount".into(),
                ..DeadLetter::default()
            };
            let all_map = DeadLetterFilter {
                stage: Some(DeadLetterStage::Map as i32),
                until_ms: i64::MAX,
                ..DeadLetterFilter::default()
            };
            let page_request = PageRequest {
                size: 10,
                after: None,
            };

            let claim = store.claim("w1", 1_000, 60_000, 1).await.unwrap().unwrap();
            let mut first = page(vec![record(&claim, "1", "h1")], "c1", false, 1_100);
            first.dead_letters = vec![letter(&claim, "1", "not a number: 'n/a'")];
            store.commit_page(&log, &claim, "w1", first).await.unwrap();
            // The same page read again (a replay after a crash) and the record failing
            // again later: still one letter, the latest.
            let claim = store.claim("w1", 2_000, 60_000, 1).await.unwrap().unwrap();
            let mut again = page(vec![record(&claim, "1", "h1")], "c1", false, 2_100);
            again.dead_letters = vec![letter(&claim, "1", "not a number: 'tbd'")];
            store.commit_page(&log, &claim, "w1", again).await.unwrap();

            let letters = dead_letters(&db, &acme, &all_map, &page_request)
                .await
                .unwrap();
            assert_eq!(letters.len(), 1, "{letters:?}");
            assert_eq!(letters[0].record_id, "1");
            assert_eq!(letters[0].field, "amount");
            assert_eq!(letters[0].error_message, "not a number: 'tbd'");
            assert!(
                dead_letters(&db, &other, &all_map, &page_request)
                    .await
                    .unwrap()
                    .is_empty(),
                "another tenant sees none"
            );
        },
    )
    .await;
}

proptest::proptest! {
    /// Record-state hashes are stored: their text must not change from one version to the
    /// next, or every record would be published again after an upgrade.
    #[test]
    fn hashes_are_written_as_two_lowercase_hex_digits_per_byte(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
    ) {
        let formatted: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        proptest::prop_assert_eq!(super::worker::lower_hex(&bytes), formatted);
    }
}

/// Migration 10 moves SQLite's record state into a table without rowid (the key stored
/// once) and keeps every row; PostgreSQL's variant changes nothing (its tables are always
/// apart from their indexes), so this is SQLite's alone.
#[tokio::test]
async fn record_state_keeps_its_rows_when_sqlite_stores_it_without_rowid() {
    let dir = std::env::temp_dir().join(syncline_domain::ids::new_resource_id("migration"));
    let config = syncline_config::StorageConfig::default();
    let before_10 = &crate::MIGRATIONS[..9];
    assert_eq!(before_10.last().map(|m| m.version), Some(9));
    let db = Database::open(&config, &dir, ServiceName::SyncEngine, before_10)
        .await
        .unwrap();
    for (key, hash) in [
        ("p1/acme/conn/contact/a", "h1"),
        ("p1/acme/conn/contact/b", "h2"),
    ] {
        sqlx::query(
            "INSERT INTO sync_record_hashes (record_key, project_id, tenant_id, hash)
             VALUES ($1, 'p1', 'acme', $2)",
        )
        .bind(key)
        .bind(hash)
        .execute(db.pool())
        .await
        .unwrap();
    }
    db.close().await;

    let db = Database::open(&config, &dir, ServiceName::SyncEngine, crate::MIGRATIONS)
        .await
        .unwrap();
    let (schema,): (String,) =
        sqlx::query_as("SELECT sql FROM sqlite_master WHERE name = 'sync_record_hashes'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert!(schema.ends_with("WITHOUT ROWID"), "{schema}");
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT record_key, project_id, tenant_id, hash FROM sync_record_hashes
         ORDER BY record_key",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let row = |key: &str, hash: &str| (key.into(), "p1".into(), "acme".into(), hash.into());
    assert_eq!(
        rows,
        [
            row("p1/acme/conn/contact/a", "h1"),
            row("p1/acme/conn/contact/b", "h2")
        ]
    );
    db.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
