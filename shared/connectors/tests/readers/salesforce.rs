//! Salesforce: SOQL on `SystemModstamp` with the id tie-breaker through `queryAll`, locators,
//! soft and hard deletes.

use std::collections::{BTreeMap, BTreeSet};

use secrecy::SecretString;
use serde_json::{Map, Value, json};
use syncline_connectors::salesforce::SfCursor;
use syncline_connectors::{Connector, Credentials, Provider, ReadCursor};
use syncline_crm_sandbox::salesforce::{
    OrgConfig, RunningSalesforce, SalesforceAdmin, SalesforceConfig, SalesforceSandbox,
};

use super::drain;

struct Org {
    sandbox: RunningSalesforce,
    admin: SalesforceAdmin,
    credentials: Credentials,
    connector: Connector,
}

async fn org(accounts: u64) -> Org {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox = SalesforceSandbox::start(
        SalesforceConfig {
            orgs: vec![OrgConfig {
                name: "reads".into(),
                counts: vec![("Account".into(), accounts)],
                ..OrgConfig::default()
            }],
            ..SalesforceConfig::default()
        },
        listener,
    )
    .await
    .unwrap();
    let admin = sandbox.admin();
    let tokens = admin.issue_tokens("reads", None).unwrap();
    Org {
        credentials: Credentials {
            instance_url: tokens.instance_url,
            access_token: SecretString::from(tokens.access_token),
        },
        connector: Connector::for_provider(Provider::Salesforce, crate::http()),
        admin,
        sandbox,
    }
}

fn fields() -> Vec<String> {
    vec!["Name".into(), "Industry".into()]
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn name_of(r: &syncline_proto::common::v1::Record) -> Option<String> {
    match r.fields.get("Name")?.kind.as_ref()? {
        prost_types::value::Kind::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn salesforce_backfill_then_increment_sees_exactly_the_changes() {
    let o = org(450).await;
    let backfill = drain(
        &o.connector,
        &o.credentials,
        "Account",
        &fields(),
        &ReadCursor::start(),
        200,
    )
    .await
    .unwrap();
    assert_eq!(backfill.live_ids().len(), 450);
    assert_eq!(backfill.records.len(), 450, "no record read twice");
    assert!(backfill.pages.len() >= 3, "{} pages", backfill.pages.len());
    let first = &backfill.records[0];
    assert!(first.system_modstamp.is_some() && name_of(first).is_some());
    assert!(backfill.pages.iter().all(|p| p.usage.daily_limit.is_some()));
    assert_eq!(backfill.pages[0].estimated_total, Some(250));

    // Changes through the admin surface, as org users would make them.
    let id = |i: u64| o.admin.record_id("reads", "Account", i).unwrap();
    for i in [3, 100, 449] {
        o.admin
            .update_record(
                "reads",
                "Account",
                &id(i),
                obj(json!({"Name": format!("renamed {i}")})),
            )
            .unwrap();
    }
    let created = o
        .admin
        .create_record("reads", "Account", obj(json!({"Name": "new one"})))
        .unwrap();
    o.admin.delete_record("reads", "Account", &id(7)).unwrap();

    let increment = drain(
        &o.connector,
        &o.credentials,
        "Account",
        &fields(),
        &backfill.cursor(),
        200,
    )
    .await
    .unwrap();
    let expected_live: BTreeSet<String> = [id(3), id(100), id(449), created.clone()].into();
    let mut expected_changes = expected_live.clone();
    expected_changes.insert(id(7));
    assert_eq!(increment.changed_since(&backfill.records), expected_changes);
    assert!(increment.live_ids().is_superset(&expected_live));
    assert_eq!(increment.deleted_ids(), BTreeSet::from([id(7)]));
    let renamed: BTreeMap<String, Option<String>> = increment
        .records
        .iter()
        .filter(|r| !r.deleted)
        .map(|r| (r.id.clone(), name_of(r)))
        .collect();
    assert_eq!(renamed[&id(100)].as_deref(), Some("renamed 100"));
    assert_eq!(renamed[&created].as_deref(), Some("new one"));

    // Nothing changed since: only the look-back's re-reads come back, unchanged (same
    // stamp), for the engine to dedupe.
    let quiet = drain(
        &o.connector,
        &o.credentials,
        "Account",
        &fields(),
        &increment.cursor(),
        200,
    )
    .await
    .unwrap();
    let seen: Vec<_> = backfill
        .records
        .iter()
        .chain(&increment.records)
        .cloned()
        .collect();
    assert!(
        quiet.changed_since(&seen).is_empty(),
        "{:?}",
        quiet.changed_since(&seen)
    );
    // Without a look-back, nothing at all.
    let exact = Connector::Salesforce(
        syncline_connectors::salesforce::SalesforceConnector::new(crate::http())
            .with_look_back(std::time::Duration::ZERO),
    );
    let none = drain(
        &exact,
        &o.credentials,
        "Account",
        &fields(),
        &increment.cursor(),
        200,
    )
    .await
    .unwrap();
    assert!(none.live_ids().is_empty(), "{:?}", none.live_ids());
    o.sandbox.shutdown().await;
}

#[tokio::test]
async fn salesforce_ties_across_page_boundaries_lose_nothing() {
    let o = org(0).await;
    // Records created in one burst share whole-second stamps: hundreds per stamp.
    let mut ids = BTreeSet::new();
    for i in 0..900 {
        ids.insert(
            o.admin
                .create_record("reads", "Account", obj(json!({"Name": format!("tie {i}")})))
                .unwrap(),
        );
    }
    let read = drain(
        &o.connector,
        &o.credentials,
        "Account",
        &fields(),
        &ReadCursor::start(),
        200,
    )
    .await
    .unwrap();
    let mut per_stamp: BTreeMap<i64, usize> = BTreeMap::new();
    for r in &read.records {
        *per_stamp
            .entry(r.system_modstamp.unwrap().seconds)
            .or_default() += 1;
    }
    assert!(
        per_stamp.values().any(|n| *n > 200),
        "the data must have a stamp shared across a page boundary: {per_stamp:?}"
    );
    assert_eq!(read.ids(), ids);
    assert!(read.counts().values().all(|n| *n == 1));
    // An expired query locator restarts from the mark without a loss or a repeat.
    let mut cursor = SfCursor::parse(&read.cursors[0]).unwrap();
    let next = cursor.next.clone().unwrap();
    cursor.next = Some(format!("{}X", next.trim_end_matches(char::is_numeric)));
    let resumed = drain(
        &o.connector,
        &o.credentials,
        "Account",
        &fields(),
        &cursor.to_cursor(),
        200,
    )
    .await
    .unwrap();
    let first_page: BTreeSet<String> = read.pages[0].records.iter().map(|r| r.id.clone()).collect();
    assert!(resumed.ids().is_disjoint(&first_page));
    assert_eq!(resumed.ids().len() + first_page.len(), ids.len());
    o.sandbox.shutdown().await;
}

#[tokio::test]
async fn salesforce_hard_deletes_are_seen_through_the_deleted_resource() {
    let o = org(300).await;
    let backfill = drain(
        &o.connector,
        &o.credentials,
        "Account",
        &fields(),
        &ReadCursor::start(),
        200,
    )
    .await
    .unwrap();
    let soft = o.admin.record_id("reads", "Account", 10).unwrap();
    let hard = o.admin.record_id("reads", "Account", 20).unwrap();
    o.admin.delete_record("reads", "Account", &soft).unwrap();
    o.admin.delete_record("reads", "Account", &hard).unwrap();
    o.admin.purge_record("reads", "Account", &hard).unwrap();
    let increment = drain(
        &o.connector,
        &o.credentials,
        "Account",
        &fields(),
        &backfill.cursor(),
        200,
    )
    .await
    .unwrap();
    assert_eq!(
        increment.deleted_ids(),
        BTreeSet::from([soft.clone(), hard.clone()])
    );
    // Besides the deletes, only look-back re-reads of the backfill's last records, unchanged.
    assert_eq!(
        increment.changed_since(&backfill.records),
        BTreeSet::from([soft.clone(), hard.clone()])
    );
    // The purged record came only from `/deleted` (no fields, a deletion time).
    let purged = increment.records.iter().find(|r| r.id == hard).unwrap();
    assert!(purged.fields.is_empty() && purged.system_modstamp.is_some());
    assert_eq!(increment.pages.last().unwrap().provider_calls, 2);
    o.sandbox.shutdown().await;
}

#[tokio::test]
async fn salesforce_resuming_from_every_cursor_misses_nothing() {
    let o = org(0).await;
    let mut ids = BTreeSet::new();
    for i in 0..700 {
        ids.insert(
            o.admin
                .create_record("reads", "Account", obj(json!({"Name": format!("r {i}")})))
                .unwrap(),
        );
    }
    let full = drain(
        &o.connector,
        &o.credentials,
        "Account",
        &fields(),
        &ReadCursor::start(),
        200,
    )
    .await
    .unwrap();
    assert_eq!(full.ids(), ids);
    // A crash after saving page k's cursor: the run resumes from it (the engine saved the
    // records of pages 0..=k with it).
    for k in 0..full.cursors.len() {
        let before: BTreeSet<String> = full.pages[..=k]
            .iter()
            .flat_map(|p| p.records.iter().map(|r| r.id.clone()))
            .collect();
        let after = drain(
            &o.connector,
            &o.credentials,
            "Account",
            &fields(),
            &full.cursors[k],
            200,
        )
        .await
        .unwrap();
        let union: BTreeSet<String> = before.union(&after.ids()).cloned().collect();
        assert_eq!(union, ids, "resuming from cursor {k}");
    }
    o.sandbox.shutdown().await;
}

#[tokio::test]
async fn salesforce_object_refusing_deleted_is_read_without_it() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::get;

    // A minimal org whose object is not replicable: `/deleted` answers 404.
    let deleted_calls = Arc::new(AtomicUsize::new(0));
    let counter = deleted_calls.clone();
    let app = axum::Router::new()
        .route(
            "/services/data/v62.0/queryAll",
            get(|| async {
                let body = json!({"totalSize": 1, "done": true, "records": [{
                    "attributes": {"type": "Thing__c"},
                    "Id": "a01000000000001AAA",
                    "SystemModstamp": "2024-01-01T00:00:00.000+0000",
                    "IsDeleted": false,
                    "Name": "one",
                }]});
                ([("Sforce-Limit-Info", "api-usage=7/1000")], axum::Json(body))
            }),
        )
        .route(
            "/services/data/v62.0/sobjects/Thing__c/deleted/",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async {
                    (
                        StatusCode::NOT_FOUND,
                        axum::Json(json!([{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])),
                    )
                        .into_response()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let credentials = Credentials {
        instance_url: format!("http://{addr}"),
        access_token: SecretString::from("token".to_owned()),
    };
    let connector = Connector::for_provider(Provider::Salesforce, crate::http());
    let first = drain(
        &connector,
        &credentials,
        "Thing__c",
        &["Name".to_owned()],
        &ReadCursor::start(),
        200,
    )
    .await
    .unwrap();
    assert_eq!(first.live_ids().len(), 1);
    assert_eq!(first.pages[0].usage.daily_used, Some(7));
    let next = drain(
        &connector,
        &credentials,
        "Thing__c",
        &["Name".to_owned()],
        &first.cursor(),
        200,
    )
    .await
    .unwrap();
    assert!(next.pages[0].caught_up);
    assert_eq!(next.pages[0].provider_calls, 1);
    assert_eq!(deleted_calls.load(Ordering::SeqCst), 1, "asked once");
    server.abort();
}

#[tokio::test]
async fn salesforce_late_commit_within_the_look_back_is_read() {
    let o = org(100).await;
    let id = |i: u64| o.admin.record_id("reads", "Account", i).unwrap();
    let backfill = drain(
        &o.connector,
        &o.credentials,
        "Account",
        &fields(),
        &ReadCursor::start(),
        200,
    )
    .await
    .unwrap();
    o.admin
        .update_record("reads", "Account", &id(5), obj(json!({"Name": "now"})))
        .unwrap();
    let first = drain(
        &o.connector,
        &o.credentials,
        "Account",
        &fields(),
        &backfill.cursor(),
        200,
    )
    .await
    .unwrap();
    let mark = first
        .records
        .iter()
        .filter_map(|r| r.system_modstamp)
        .map(|t| t.seconds)
        .max()
        .unwrap();
    // A long transaction commits with a stamp a minute before the mark.
    o.admin
        .update_record_at(
            "reads",
            "Account",
            &id(6),
            obj(json!({"Name": "late"})),
            mark - 60,
        )
        .unwrap();
    let exact = Connector::Salesforce(
        syncline_connectors::salesforce::SalesforceConnector::new(crate::http())
            .with_look_back(std::time::Duration::ZERO),
    );
    let without = drain(
        &exact,
        &o.credentials,
        "Account",
        &fields(),
        &first.cursor(),
        200,
    )
    .await
    .unwrap();
    assert!(
        !without.live_ids().contains(&id(6)),
        "no look-back, no late commit"
    );
    let with = drain(
        &o.connector,
        &o.credentials,
        "Account",
        &fields(),
        &first.cursor(),
        200,
    )
    .await
    .unwrap();
    let late = with.records.iter().find(|r| r.id == id(6)).unwrap();
    assert_eq!(name_of(late).as_deref(), Some("late"));
    o.sandbox.shutdown().await;
}

mod property {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

        /// Whatever the batch size and however the stamps tie (records created in bursts
        /// share whole seconds), a read returns every record once, and resuming from any of
        /// its cursors still reads them all.
        #[test]
        fn any_batch_size_and_ties_lose_nothing(
            generated in 0u64..600,
            created in 0usize..900,
            page_size in 200u32..=2000,
            resume_at in 0usize..1000,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let o = org(generated).await;
                let mut expected: BTreeSet<String> = (0..generated)
                    .map(|i| o.admin.record_id("reads", "Account", i).unwrap())
                    .collect();
                for i in 0..created {
                    expected.insert(
                        o.admin
                            .create_record("reads", "Account", obj(json!({"Name": format!("p {i}")})))
                            .unwrap(),
                    );
                }
                let read = drain(
                    &o.connector,
                    &o.credentials,
                    "Account",
                    &fields(),
                    &ReadCursor::start(),
                    page_size,
                )
                .await
                .unwrap();
                prop_assert_eq!(read.ids(), expected.clone());
                prop_assert_eq!(read.records.len(), expected.len());
                let k = resume_at % read.cursors.len();
                let mut resumed: BTreeSet<String> = read.pages[..=k]
                    .iter()
                    .flat_map(|pg| pg.records.iter().map(|r| r.id.clone()))
                    .collect();
                let after = drain(
                    &o.connector,
                    &o.credentials,
                    "Account",
                    &fields(),
                    &read.cursors[k],
                    page_size,
                )
                .await
                .unwrap();
                resumed.extend(after.ids());
                prop_assert_eq!(resumed, expected);
                o.sandbox.shutdown().await;
                Ok(())
            })?;
        }
    }
}
