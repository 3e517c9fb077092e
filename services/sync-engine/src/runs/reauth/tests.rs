//! Only runs paused for re-authorization, of the named tenant and connection, resume.

use syncline_config::ServiceName;
use syncline_domain::{ProjectId, TenantContext, TenantId};
use syncline_proto::common::v1::{ErrorReason, Event, EventType};
use syncline_proto::sync::v1::{SyncMode, SyncRun, SyncRunState};
use syncline_storage::Database;

use super::reauthorizes;
use crate::runs::store::{NewRun, NewSlice, PAUSED, RunStore};

fn tenant(name: &str) -> TenantContext {
    TenantContext {
        project_id: ProjectId::parse("p1").unwrap(),
        tenant_id: TenantId::parse(name).unwrap(),
        subject: "test".into(),
    }
}

async fn insert(
    store: &RunStore,
    tenant: &TenantContext,
    id: &str,
    connection: &str,
    mode: SyncMode,
) {
    let new = NewRun {
        run: SyncRun {
            id: id.into(),
            connection_id: connection.into(),
            mode: mode as i32,
            ..SyncRun::default()
        },
        slices: vec![NewSlice {
            object: "contact".into(),
            provider_object: "Contact".into(),
            cursor: String::new(),
        }],
        trace_parent: String::new(),
        created_at_ms: 1,
    };
    assert!(store.insert_run(tenant, &new).await.unwrap());
}

async fn state(db: &Database, tenant: &TenantContext, id: &str) -> (SyncRunState, ErrorReason) {
    let run = crate::store::Store::new(db.clone())
        .sync_run(tenant, id)
        .await
        .unwrap()
        .unwrap();
    (run.state(), run.error_reason())
}

#[tokio::test]
async fn only_runs_paused_for_reauthorization_of_the_tenants_connection_resume() {
    syncline_test_support::storage::on_every_backend(
        "only_runs_paused_for_reauthorization_of_the_tenants_connection_resume",
        ServiceName::SyncEngine,
        crate::MIGRATIONS,
        |db| async move {
            let store = RunStore::new(db.clone());
            let (acme, globex) = (tenant("acme"), tenant("globex"));
            let reauth = |id: &'static str| {
                let store = store.clone();
                async move {
                    assert!(
                        store
                            .pause_with_reason(id, ErrorReason::NeedsReauth, "refused", None)
                            .await
                            .unwrap()
                    );
                }
            };
            // acme's conn_a: one run paused for re-authorization, one paused by the user.
            insert(&store, &acme, "r_reauth", "conn_a", SyncMode::Backfill).await;
            reauth("r_reauth").await;
            insert(&store, &acme, "r_user", "conn_a", SyncMode::Incremental).await;
            let active = crate::runs::ACTIVE.map(|state| state as i32);
            assert!(
                store
                    .transition(&acme, "r_user", &active, PAUSED, 2)
                    .await
                    .unwrap()
            );
            // acme's conn_b: paused by the API budget (resuming later by itself).
            insert(&store, &acme, "r_quota", "conn_b", SyncMode::Backfill).await;
            assert!(
                store
                    .pause_with_reason(
                        "r_quota",
                        ErrorReason::QuotaExhausted,
                        "quota",
                        Some(i64::MAX)
                    )
                    .await
                    .unwrap()
            );
            // Another connection of acme's, and globex's connection of the same id.
            insert(&store, &acme, "r_other", "conn_c", SyncMode::Backfill).await;
            reauth("r_other").await;
            insert(&store, &globex, "r_globex", "conn_a", SyncMode::Backfill).await;
            reauth("r_globex").await;

            assert_eq!(store.resume_reauthorized(&acme, "conn_a").await.unwrap(), 1);
            assert_eq!(
                state(&db, &acme, "r_reauth").await,
                (SyncRunState::Pending, ErrorReason::Unspecified)
            );
            assert_eq!(
                state(&db, &acme, "r_user").await,
                (SyncRunState::Paused, ErrorReason::Unspecified)
            );
            assert_eq!(store.resume_reauthorized(&acme, "conn_b").await.unwrap(), 0);
            assert_eq!(
                state(&db, &acme, "r_quota").await,
                (SyncRunState::Paused, ErrorReason::QuotaExhausted)
            );
            for (tenant, id) in [(&acme, "r_other"), (&globex, "r_globex")] {
                assert_eq!(
                    state(&db, tenant, id).await,
                    (SyncRunState::Paused, ErrorReason::NeedsReauth),
                    "{id}"
                );
            }
            // Nothing is left to resume on conn_a: a repeated event changes nothing.
            assert_eq!(store.resume_reauthorized(&acme, "conn_a").await.unwrap(), 0);
        },
    )
    .await;
}

#[test]
fn authorized_and_recovered_events_with_a_connection_reauthorize() {
    let event = |kind: EventType, connection: &str| Event {
        r#type: kind as i32,
        connection_id: connection.into(),
        ..Event::default()
    };
    assert!(reauthorizes(&event(EventType::ConnectionAuthorized, "c")));
    assert!(reauthorizes(&event(EventType::ConnectionRecovered, "c")));
    assert!(!reauthorizes(&event(EventType::ConnectionRecovered, "")));
    for kind in [
        EventType::ConnectionNeedsReauth,
        EventType::ConnectionDegraded,
        EventType::ConnectionDeleted,
        EventType::SyncRunSucceeded,
    ] {
        assert!(!reauthorizes(&event(kind, "c")), "{kind:?}");
    }
}

#[tokio::test]
async fn a_run_its_user_paused_while_it_waited_for_reauthorization_waits_for_the_user() {
    syncline_test_support::storage::on_every_backend(
        "a_run_its_user_paused_while_it_waited_for_reauthorization_waits_for_the_user",
        ServiceName::SyncEngine,
        crate::MIGRATIONS,
        |db| async move {
            let store = RunStore::new(db.clone());
            let acme = tenant("acme");
            insert(&store, &acme, "r_1", "conn_a", SyncMode::Backfill).await;
            assert!(
                store
                    .pause_with_reason("r_1", ErrorReason::NeedsReauth, "refused", None)
                    .await
                    .unwrap()
            );
            // PauseSyncRun on the paused run, from the states the API moves it from.
            let active = crate::runs::ACTIVE.map(|state| state as i32);
            assert!(
                store
                    .transition(&acme, "r_1", &active, PAUSED, 2)
                    .await
                    .unwrap()
            );
            assert_eq!(
                state(&db, &acme, "r_1").await,
                (SyncRunState::Paused, ErrorReason::Unspecified)
            );
            // The connection is authorized again: the run stays paused for its user.
            assert_eq!(store.resume_reauthorized(&acme, "conn_a").await.unwrap(), 0);
            assert_eq!(state(&db, &acme, "r_1").await.0, SyncRunState::Paused);
        },
    )
    .await;
}
