//! The schedules' table on SQLite and PostgreSQL: claims never overlap, rewrites follow the
//! plan, lifecycle events stop, restart and remove schedules.

use std::collections::{BTreeMap, BTreeSet};

use syncline_domain::TenantContext;
use syncline_proto::mapping::v1::{MappingPlan, ObjectPlan};

use super::scheduled_objects;
use super::store::{ScheduleStore, Scheduled};
use crate::runs::tests::{on_every_backend, tenant};

fn every(object: &str, interval_ms: i64) -> Scheduled {
    Scheduled {
        object: object.into(),
        interval_ms,
    }
}

#[test]
fn a_plan_schedules_the_objects_with_a_schedule() {
    let object = |name: &str, schedule_seconds: i64| ObjectPlan {
        object: name.into(),
        schedule_seconds,
        ..ObjectPlan::default()
    };
    let plan = MappingPlan {
        objects: vec![
            object("contact", 900),
            object("deal", 0),
            object("note", 60),
        ],
        ..MappingPlan::default()
    };
    assert_eq!(
        scheduled_objects(&plan),
        [every("contact", 900_000), every("note", 60_000)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_claimers_never_both_claim_one_due_schedule() {
    on_every_backend(
        "two_claimers_never_both_claim_one_due_schedule",
        |db| async move {
            let store = ScheduleStore::new(db.clone());
            // 30 connections of three tenants, two scheduled objects each, all due at 1000.
            let mut expected = BTreeSet::new();
            for t in 0..3 {
                let tenant = tenant(&format!("t{t}"));
                for c in 0..10 {
                    let connection = format!("conn{c}");
                    store
                        .replace(
                            &tenant,
                            &connection,
                            &[every("contact", 60_000), every("deal", 60_000)],
                            0,
                            |_| 1_000,
                        )
                        .await
                        .unwrap();
                    for object in ["contact", "deal"] {
                        expected.insert((
                            tenant.tenant_id.to_string(),
                            connection.clone(),
                            object.to_owned(),
                        ));
                    }
                }
            }
            // Two claimers (tasks on their own threads and pool connections) race for them.
            let claimer = |name: &'static str| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut claimed = Vec::new();
                    while let Some(due) = store.claim_due(5_000, 5_000, 60_000).await.unwrap() {
                        assert_eq!(due.claimed_until_ms, 65_000);
                        let objects: Vec<&str> =
                            due.objects.iter().map(|s| s.object.as_str()).collect();
                        assert_eq!(
                            objects,
                            ["contact", "deal"],
                            "{name} claims the connection's due objects together"
                        );
                        for scheduled in &due.objects {
                            claimed.push((
                                due.tenant.tenant_id.to_string(),
                                due.connection_id.clone(),
                                scheduled.object.clone(),
                            ));
                        }
                        tokio::task::yield_now().await;
                    }
                    claimed
                })
            };
            let (a, b) = tokio::join!(claimer("a"), claimer("b"));
            let (a, b) = (a.unwrap(), b.unwrap());
            let mut all = BTreeMap::new();
            for (who, claimed) in [("a", &a), ("b", &b)] {
                for key in claimed {
                    if let Some(first) = all.insert(key.clone(), who) {
                        panic!("{key:?} was claimed by {first} and by {who}");
                    }
                }
            }
            assert_eq!(
                all.keys().cloned().collect::<BTreeSet<_>>(),
                expected,
                "every due schedule is claimed once"
            );
            // Claimed schedules are not due again before their claim's lease ends...
            assert!(
                store
                    .claim_due(64_999, 64_999, 60_000)
                    .await
                    .unwrap()
                    .is_none()
            );
            // ...and due again after it (the claimer died before rescheduling them).
            assert!(
                store
                    .claim_due(65_000, 65_000, 60_000)
                    .await
                    .unwrap()
                    .is_some()
            );
        },
    )
    .await;
}

#[tokio::test]
async fn schedules_follow_the_plan_and_the_connection() {
    on_every_backend(
        "schedules_follow_the_plan_and_the_connection",
        |db| async move {
            let store = ScheduleStore::new(db.clone());
            let acme = tenant("acme");
            let other = tenant("other");
            let due_at = |t: i64| move |_: i64| t;
            store
                .replace(
                    &acme,
                    "c1",
                    &[every("contact", 60_000), every("deal", 60_000)],
                    0,
                    due_at(1_000),
                )
                .await
                .unwrap();
            store
                .replace(&other, "c1", &[every("contact", 60_000)], 0, due_at(1_000))
                .await
                .unwrap();
            let listed = |tenant: TenantContext| {
                let store = store.clone();
                async move {
                    store
                        .list(&tenant, "c1")
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|(s, due, suspended)| (s.object, s.interval_ms, due, suspended))
                        .collect::<Vec<_>>()
                }
            };

            // A rewrite keeps an unchanged schedule's due time, moves a changed interval's
            // earlier, and drops what the plan no longer schedules.
            store
                .replace(
                    &acme,
                    "c1",
                    &[every("contact", 60_000), every("note", 30_000)],
                    500,
                    due_at(700),
                )
                .await
                .unwrap();
            assert_eq!(
                listed(acme.clone()).await,
                [
                    ("contact".to_owned(), 60_000, 1_000, false),
                    ("note".to_owned(), 30_000, 700, false)
                ]
            );
            store
                .replace(&acme, "c1", &[every("contact", 10_000)], 600, due_at(800))
                .await
                .unwrap();
            assert_eq!(
                listed(acme.clone()).await,
                [("contact".to_owned(), 10_000, 800, false)]
            );

            // A pass claims what was due when it began, whatever the time now.
            assert!(store.claim_due(799, 5_000, 60_000).await.unwrap().is_none());
            // The claim is the only one; rescheduling applies only to what was claimed.
            let due = store
                .claim_due(1_000, 1_000, 60_000)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(due.tenant.tenant_id.as_str(), "acme");
            assert_eq!(due.objects, [every("contact", 10_000)]);
            let theirs = store
                .claim_due(1_000, 1_000, 60_000)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(theirs.tenant.tenant_id.as_str(), "other");
            assert!(
                store
                    .claim_due(1_000, 1_000, 60_000)
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(
                store
                    .reschedule(&due, "contact", 11_000, 0, 1_000)
                    .await
                    .unwrap()
            );
            assert!(
                !store
                    .reschedule(&due, "contact", 12_000, 0, 1_000)
                    .await
                    .unwrap(),
                "a claim reschedules once"
            );
            assert_eq!(
                listed(acme.clone()).await,
                [("contact".to_owned(), 10_000, 11_000, false)]
            );

            // NEEDS_REAUTH stops the connection's schedules; re-authorizing makes them due
            // at once.
            assert_eq!(store.suspend(&acme, "c1", true, 2_000).await.unwrap(), 1);
            assert!(
                store
                    .claim_due(50_000, 50_000, 60_000)
                    .await
                    .unwrap()
                    .is_none(),
                "a stopped schedule is never due (the other tenant's is still claimed)"
            );
            assert_eq!(store.suspend(&acme, "c1", false, 3_000).await.unwrap(), 1);
            assert_eq!(
                listed(acme.clone()).await,
                [("contact".to_owned(), 10_000, 3_000, false)]
            );
            let again = store
                .claim_due(3_000, 3_000, 60_000)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(again.tenant.tenant_id.as_str(), "acme");

            // A deleted connection loses its schedules, and only that tenant's.
            assert_eq!(store.remove_connection(&acme, "c1").await.unwrap(), 1);
            assert!(listed(acme.clone()).await.is_empty());
            assert_eq!(listed(other.clone()).await.len(), 1);
        },
    )
    .await;
}
