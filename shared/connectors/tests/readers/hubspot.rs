//! HubSpot: list backfill, keyset search increments past the 10,000 cap and through ties,
//! archived records as deletes, the look-back for late writes.

use std::collections::BTreeSet;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Map, Value, json};
use syncline_connectors::hubspot::{HsCursor, HsPhase, HubSpotConnector};
use syncline_connectors::{Connector, Credentials, ReadCursor};
use syncline_crm_sandbox::hubspot::{
    DEMO_CLIENT_ID, DEMO_PORTAL_ID, HubSpotAdmin, HubSpotConfig, HubSpotSandbox, PortalConfig,
    RateLimits, RecordCounts, RunningHubSpot,
};

use super::drain;

const PORTAL: u64 = DEMO_PORTAL_ID;

struct Portal {
    sandbox: RunningHubSpot,
    admin: HubSpotAdmin,
    credentials: Credentials,
    connector: Connector,
}

/// A portal with `contacts` seeded contacts and limits high enough not to interfere.
async fn portal(contacts: u64) -> Portal {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox = HubSpotSandbox::start(
        HubSpotConfig {
            portals: vec![PortalConfig {
                portal_id: PORTAL,
                counts: RecordCounts {
                    contacts,
                    ..RecordCounts::default()
                },
                limits: RateLimits {
                    ten_second_max: 1_000_000,
                    daily_max: 100_000_000,
                    search_per_second: 1_000_000,
                    utc_offset_minutes: 0,
                },
                ..PortalConfig::default()
            }],
            ..HubSpotConfig::default()
        },
        listener,
    )
    .await
    .unwrap();
    let admin = sandbox.admin();
    let tokens = admin.issue_tokens(DEMO_CLIENT_ID, PORTAL).unwrap();
    Portal {
        credentials: Credentials {
            instance_url: sandbox.base_url().to_owned(),
            access_token: SecretString::from(tokens.access_token),
        },
        connector: Connector::HubSpot(HubSpotConnector::new(crate::http())),
        admin,
        sandbox,
    }
}

fn fields() -> Vec<String> {
    vec!["email".into(), "firstname".into()]
}

fn props(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A cursor already past the backfill, sweeping modifications from `lower_ms`.
fn search_from(lower_ms: i64) -> ReadCursor {
    HsCursor {
        phase: HsPhase::Search,
        lower_ms: Some(lower_ms),
        archived_from_ms: Some(lower_ms),
        ..HsCursor::default()
    }
    .to_cursor()
}

#[tokio::test]
async fn hubspot_backfill_then_increment_sees_exactly_the_changes() {
    let p = portal(350).await;
    let backfill = drain(
        &p.connector,
        &p.credentials,
        "contacts",
        &fields(),
        &ReadCursor::start(),
        100,
    )
    .await
    .unwrap();
    let all: BTreeSet<String> = (1..=350).map(|i: u64| i.to_string()).collect();
    assert_eq!(backfill.live_ids(), all);
    assert!(
        backfill
            .pages
            .iter()
            .all(|pg| pg.usage.window_limit.is_some())
    );
    assert!(backfill.records.iter().all(|r| r.system_modstamp.is_some()));

    for id in [5u64, 120, 349] {
        p.admin
            .update_record(
                PORTAL,
                "contacts",
                id,
                &props(json!({"firstname": format!("n{id}")})),
            )
            .unwrap();
    }
    let created = p
        .admin
        .create_record(
            PORTAL,
            "contacts",
            &props(json!({"email": "new@example.com"})),
        )
        .unwrap();
    p.admin.archive_record(PORTAL, "contacts", 77).unwrap();

    let increment = drain(
        &p.connector,
        &p.credentials,
        "contacts",
        &fields(),
        &backfill.cursor(),
        100,
    )
    .await
    .unwrap();
    let expected: BTreeSet<String> = ["5", "120", "349", &created.to_string()]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(increment.live_ids(), expected);
    assert_eq!(increment.deleted_ids(), BTreeSet::from(["77".to_owned()]));
    let mut changes = expected.clone();
    changes.insert("77".to_owned());
    assert_eq!(increment.changed_since(&backfill.records), changes);

    // Within the look-back the same records come back unchanged (same modified time), for
    // the engine to dedupe; nothing else does.
    let again = drain(
        &p.connector,
        &p.credentials,
        "contacts",
        &fields(),
        &increment.cursor(),
        100,
    )
    .await
    .unwrap();
    assert_eq!(again.live_ids(), expected);
    assert!(again.changed_since(&increment.records).is_empty());
    p.sandbox.shutdown().await;
}

#[tokio::test]
async fn hubspot_idle_runs_do_not_drift_back() {
    let p = portal(30).await;
    // Nothing modified since `start`: every run's sweep finds nothing.
    let start = now_ms();
    let mut cursor = search_from(start);
    let mut lowers = Vec::new();
    for _ in 0..4 {
        let run = drain(
            &p.connector,
            &p.credentials,
            "contacts",
            &fields(),
            &cursor,
            100,
        )
        .await
        .unwrap();
        assert!(run.records.is_empty());
        cursor = run.cursor();
        // The sweep of the run that just ended started here.
        lowers.push(HsCursor::parse(&run.cursors[0]).unwrap().lower_ms);
    }
    let back = i64::try_from(syncline_connectors::hubspot::DEFAULT_LOOK_BACK.as_millis()).unwrap();
    assert_eq!(lowers[0], Some(start));
    assert!(
        lowers[1..].iter().all(|l| *l == Some(start - back)),
        "{lowers:?}"
    );
    p.sandbox.shutdown().await;
}

#[tokio::test]
async fn hubspot_more_than_ten_thousand_changes_in_one_increment_are_all_read() {
    let p = portal(10_300).await;
    let start = now_ms() - 1;
    let changed: BTreeSet<String> = (1..=10_200u64).map(|i| i.to_string()).collect();
    for id in 1..=10_200u64 {
        p.admin
            .update_record(
                PORTAL,
                "contacts",
                id,
                &props(json!({"firstname": format!("x{id}")})),
            )
            .unwrap();
    }
    let increment = drain(
        &p.connector,
        &p.credentials,
        "contacts",
        &fields(),
        &search_from(start),
        200,
    )
    .await
    .unwrap();
    assert_eq!(increment.live_ids(), changed);
    eprintln!(
        "10,200 changes: {} pages, {} records returned",
        increment.pages.len(),
        increment.records.len()
    );
    // Keyset pages: about one search per 200 records, not a re-read of the whole set.
    assert!(
        increment.pages.len() < 80,
        "{} pages",
        increment.pages.len()
    );
    p.sandbox.shutdown().await;
}

#[tokio::test]
async fn hubspot_ten_thousand_records_in_one_millisecond_are_all_read() {
    let p = portal(10_300).await;
    let at = now_ms() - 60_000;
    for id in 1..=10_100u64 {
        p.admin
            .update_record_at(
                PORTAL,
                "contacts",
                id,
                &props(json!({"firstname": format!("t{id}")})),
                at,
            )
            .unwrap();
    }
    let increment = drain(
        &p.connector,
        &p.credentials,
        "contacts",
        &fields(),
        &search_from(at - 1000),
        200,
    )
    .await
    .unwrap();
    let expected: BTreeSet<String> = (1..=10_100u64).map(|i| i.to_string()).collect();
    assert_eq!(increment.live_ids(), expected);
    eprintln!(
        "10,100 records in one millisecond: {} pages, {} records returned",
        increment.pages.len(),
        increment.records.len()
    );
    p.sandbox.shutdown().await;
}

#[tokio::test]
async fn hubspot_late_write_within_the_look_back_is_read() {
    let p = portal(50).await;
    let start = now_ms() - 1;
    for id in [1u64, 2, 3] {
        p.admin
            .update_record(PORTAL, "contacts", id, &props(json!({"firstname": "w"})))
            .unwrap();
    }
    let first = drain(
        &p.connector,
        &p.credentials,
        "contacts",
        &fields(),
        &search_from(start),
        100,
    )
    .await
    .unwrap();
    let watermark = first
        .records
        .iter()
        .filter_map(|r| r.system_modstamp.as_ref())
        .map(|t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000))
        .max()
        .unwrap();
    // Two writes that reach the search index late: modified before the watermark.
    p.admin
        .update_record_at(
            PORTAL,
            "contacts",
            20,
            &props(json!({"firstname": "late"})),
            watermark - 60_000,
        )
        .unwrap();
    p.admin
        .update_record_at(
            PORTAL,
            "contacts",
            21,
            &props(json!({"firstname": "too late"})),
            watermark - 3_600_000,
        )
        .unwrap();
    let next = drain(
        &p.connector,
        &p.credentials,
        "contacts",
        &fields(),
        &first.cursor(),
        100,
    )
    .await
    .unwrap();
    assert!(next.live_ids().contains("20"), "{:?}", next.live_ids());
    // Older than the (ten-minute) look-back: the documented limit.
    assert!(!next.live_ids().contains("21"));
    // A longer look-back reads it.
    let wide = Connector::HubSpot(
        HubSpotConnector::new(crate::http()).with_look_back(Duration::from_secs(2 * 3600)),
    );
    let wider = drain(
        &wide,
        &p.credentials,
        "contacts",
        &fields(),
        &first.cursor(),
        100,
    )
    .await
    .unwrap();
    assert!(wider.live_ids().contains("21"));
    p.sandbox.shutdown().await;
}

#[tokio::test]
async fn hubspot_resuming_from_every_cursor_misses_nothing() {
    let p = portal(260).await;
    let backfill = drain(
        &p.connector,
        &p.credentials,
        "contacts",
        &fields(),
        &ReadCursor::start(),
        100,
    )
    .await
    .unwrap();
    for id in 1..=130u64 {
        p.admin
            .update_record(
                PORTAL,
                "contacts",
                id,
                &props(json!({"firstname": format!("r{id}")})),
            )
            .unwrap();
    }
    for id in [200u64, 201, 202] {
        p.admin.archive_record(PORTAL, "contacts", id).unwrap();
    }
    let increment = drain(
        &p.connector,
        &p.credentials,
        "contacts",
        &fields(),
        &backfill.cursor(),
        40,
    )
    .await
    .unwrap();
    let expected_live: BTreeSet<String> = (1..=130u64).map(|i| i.to_string()).collect();
    let expected_deleted: BTreeSet<String> = ["200", "201", "202"].map(str::to_owned).into();
    assert_eq!(increment.live_ids(), expected_live);
    assert_eq!(increment.deleted_ids(), expected_deleted);
    assert!(increment.pages.len() > 4);
    // A crash after page k: the engine saved pages 0..=k and resumes from cursor k.
    for k in 0..increment.cursors.len() {
        let before: Vec<_> = increment.pages[..=k]
            .iter()
            .flat_map(|pg| pg.records.iter().cloned())
            .collect();
        let after = drain(
            &p.connector,
            &p.credentials,
            "contacts",
            &fields(),
            &increment.cursors[k],
            40,
        )
        .await
        .unwrap();
        let live: BTreeSet<String> = before
            .iter()
            .chain(after.records.iter())
            .filter(|r| !r.deleted)
            .map(|r| r.id.clone())
            .collect();
        let deleted: BTreeSet<String> = before
            .iter()
            .chain(after.records.iter())
            .filter(|r| r.deleted)
            .map(|r| r.id.clone())
            .collect();
        assert!(live.is_superset(&expected_live), "resuming from cursor {k}");
        assert_eq!(deleted, expected_deleted, "resuming from cursor {k}");
    }
    p.sandbox.shutdown().await;
}

mod property {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        /// Whatever the page size and however the modified times tie, an increment reads
        /// every modified record, and resuming from any of its cursors still does.
        #[test]
        fn any_ties_and_page_size_lose_nothing(
            stamps in proptest::collection::vec(0u8..4, 1..500),
            page_size in 1u32..=200,
            resume_at in 0usize..1000,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let p = portal(500).await;
                let base = now_ms() - 120_000;
                let mut expected = BTreeSet::new();
                for (i, slot) in stamps.iter().enumerate() {
                    let id = i as u64 + 1;
                    p.admin
                        .update_record_at(
                            PORTAL,
                            "contacts",
                            id,
                            &props(json!({"firstname": format!("p{id}")})),
                            base + i64::from(*slot) * 7,
                        )
                        .unwrap();
                    expected.insert(id.to_string());
                }
                let read = drain(
                    &p.connector,
                    &p.credentials,
                    "contacts",
                    &fields(),
                    &search_from(base - 1),
                    page_size,
                )
                .await
                .unwrap();
                prop_assert_eq!(read.live_ids(), expected.clone());
                let k = resume_at % read.cursors.len();
                let mut resumed: BTreeSet<String> = read.pages[..=k]
                    .iter()
                    .flat_map(|pg| pg.records.iter().map(|r| r.id.clone()))
                    .collect();
                let after = drain(
                    &p.connector,
                    &p.credentials,
                    "contacts",
                    &fields(),
                    &read.cursors[k],
                    page_size,
                )
                .await
                .unwrap();
                resumed.extend(after.live_ids());
                prop_assert_eq!(resumed, expected);
                p.sandbox.shutdown().await;
                Ok(())
            })?;
        }
    }
}

#[tokio::test]
async fn hubspot_archived_scans_can_be_spaced_out() {
    let p = portal(120).await;
    let hourly = Connector::HubSpot(
        HubSpotConnector::new(crate::http()).with_archived_scan_every(Duration::from_secs(3600)),
    );
    let backfill = drain(
        &hourly,
        &p.credentials,
        "contacts",
        &fields(),
        &ReadCursor::start(),
        100,
    )
    .await
    .unwrap();
    assert_eq!(backfill.live_ids().len(), 120);
    p.admin.archive_record(PORTAL, "contacts", 5).unwrap();
    // Within the hour: the run ends after its search sweep, without the scan.
    let quiet = drain(
        &hourly,
        &p.credentials,
        "contacts",
        &fields(),
        &backfill.cursor(),
        100,
    )
    .await
    .unwrap();
    assert!(quiet.deleted_ids().is_empty());
    assert_eq!(quiet.pages.len(), 1);
    // A reader scanning every run (or the next scan) reports the delete.
    let scanned = drain(
        &p.connector,
        &p.credentials,
        "contacts",
        &fields(),
        &quiet.cursor(),
        100,
    )
    .await
    .unwrap();
    assert_eq!(scanned.deleted_ids(), BTreeSet::from(["5".to_owned()]));
    p.sandbox.shutdown().await;
}
