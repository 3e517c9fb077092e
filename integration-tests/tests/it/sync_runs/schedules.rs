//! Scheduled incremental runs end to end: once a connection's plan carries the manifest's
//! `schedule` and a run of it started, sync-engine reads the object again by itself (trigger
//! SCHEDULE) and a record changed in the CRM arrives on StreamChanges without anyone
//! calling StartSyncRun; a connection with an active run is skipped (due again an interval
//! later) until the run ends; a connection that needs re-authorization gets no scheduled
//! runs until it is authorized again; a deleted connection loses its schedules. Time is driven by
//! configuration: `schedule_speedup = 60` makes the manifest's minimum, `1m`, one second;
//! tests wait on what they observe (runs, changes, stored schedules), with deadlines.

use std::time::{Duration, Instant};

use serde_json::json;
use syncline_config::ServiceName;
use syncline_crm_sandbox::common::faults::FaultConfig;
use syncline_integration_tests::{Sandboxes, Storage, TestSuite};
use syncline_proto::common::v1::{ErrorReason, Event, EventType, RecordOperation};
use syncline_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use syncline_proto::mapping::v1::{DeployManifestRequest, Installation, UpdateInstallationRequest};
use syncline_proto::sync::v1::intake_service_client::IntakeServiceClient;
use syncline_proto::sync::v1::{
    CancelSyncRunRequest, ListSyncRunsRequest, PublishLifecycleEventRequest, SyncMode, SyncRun,
    SyncRunState, SyncTrigger,
};
use syncline_storage::Database;
use syncline_sync_engine::runs::schedule::store::{ScheduleStore, Scheduled};
use syncline_test_support::crm;

use super::{MANIFEST, Tenant, suite};

crate::both_storages!(
    a_scheduled_object_is_read_again_on_its_schedule,
    a_connection_needing_reauthorization_gets_no_scheduled_runs_until_authorized_again,
    a_deleted_connection_loses_its_schedules,
    a_connection_with_an_active_run_is_skipped_until_it_ends,
);

/// The contacts manifest with `schedule: 1m` on contacts.
fn scheduled_manifest() -> String {
    let scheduled = MANIFEST.replace(
        "      hubspot: contacts\n",
        "      hubspot: contacts\n    schedule: 1m\n",
    );
    assert_ne!(scheduled, MANIFEST);
    scheduled
}

/// The suite with schedules a minute long running every second, looked for every second.
async fn fast_schedules(storage: Storage) -> TestSuite {
    suite(storage, |config| {
        let runs = &mut config.sync_engine.runs;
        runs.schedule_speedup = 60;
        runs.schedule_poll_secs = 1;
    })
    .await
}

/// sync-engine's database in `suite`, to look at the schedules' rows.
async fn engine_database(suite: &TestSuite) -> Database {
    suite
        .service_database(ServiceName::SyncEngine, syncline_sync_engine::MIGRATIONS)
        .await
}

/// Polls `check` every 100 ms until it answers `Ok` (at most 60 s); fails naming `what` and
/// the last state `check` described in its `Err`.
async fn poll<T, S: std::fmt::Debug>(
    what: &str,
    mut check: impl AsyncFnMut() -> Result<T, S>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match check().await {
            Ok(value) => return value,
            Err(state) => assert!(Instant::now() < deadline, "never {what}: {state:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until `done` holds for the connection's runs (at most 60 s); returns them.
async fn wait_runs(
    tenant: &Tenant<'_>,
    what: &str,
    done: impl Fn(&[SyncRun]) -> bool,
) -> Vec<SyncRun> {
    poll(what, async || {
        let runs = tenant.runs().await;
        if done(&runs) { Ok(runs) } else { Err(runs) }
    })
    .await
}

fn scheduled(runs: &[SyncRun]) -> impl Iterator<Item = &SyncRun> {
    runs.iter().filter(|r| r.trigger() == SyncTrigger::Schedule)
}

impl Tenant<'_> {
    /// Deploys `manifest` as a new version, moves the installation to it and saves the
    /// contact mappings again, so the connection's plan is compiled from it.
    async fn adopt_manifest(&self, manifest: &str) -> i64 {
        let mut mapping = MappingServiceClient::new(self.suite.gateway());
        let deployed = mapping
            .deploy_manifest(self.request(DeployManifestRequest {
                content: manifest.into(),
                description: "schedule contacts".into(),
            }))
            .await
            .unwrap()
            .into_inner();
        let version = deployed.manifest.unwrap().version;
        mapping
            .update_installation(self.request(UpdateInstallationRequest {
                installation: Some(Installation {
                    connection_id: self.connection.clone(),
                    manifest_version: version,
                    ..Installation::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["manifest_version".into()],
                }),
            }))
            .await
            .unwrap();
        crm::save_inbound_mappings(
            &self.caller(),
            &self.connection,
            "contact",
            "Contact",
            &[("email", "Email"), ("last_name", "LastName")],
        )
        .await
        .plan_version
    }

    fn context(&self) -> syncline_domain::TenantContext {
        syncline_domain::TenantContext {
            project_id: syncline_domain::ProjectId::parse(&self.project).unwrap(),
            tenant_id: syncline_domain::TenantId::parse(&self.tenant).unwrap(),
            subject: "test".into(),
        }
    }

    /// The connection's schedules as sync-engine stores them: (object, interval in ms,
    /// stopped).
    async fn schedules(&self, db: &Database) -> Vec<(String, i64, bool)> {
        ScheduleStore::new(db.clone())
            .list(&self.context(), &self.connection)
            .await
            .unwrap()
            .into_iter()
            .map(|(s, _, stopped)| (s.object, s.interval_ms, stopped))
            .collect()
    }

    /// When the connection's (only) schedule is due next, in epoch milliseconds.
    async fn next_due(&self, db: &Database) -> i64 {
        let schedules = ScheduleStore::new(db.clone())
            .list(&self.context(), &self.connection)
            .await
            .unwrap();
        assert_eq!(schedules.len(), 1, "{schedules:?}");
        schedules[0].1
    }

    /// Adopts the scheduled manifest, runs the first backfill and waits until a scheduled
    /// run of the connection succeeded; returns the last sequence the backfill published.
    async fn backfill_with_schedule(&self, contacts: usize) -> u64 {
        assert_eq!(self.adopt_manifest(&scheduled_manifest()).await, 2);
        let (backfill, created) = self.start(SyncMode::Backfill).await;
        assert!(created);
        self.wait_state(&backfill.id, SyncRunState::Succeeded).await;
        let last = self.changes(0, contacts).await.last().unwrap().sequence;
        wait_runs(self, "a scheduled run succeeded", |runs| {
            scheduled(runs).any(|r| r.state() == SyncRunState::Succeeded)
        })
        .await;
        last
    }

    /// The connection's runs, newest first as ListSyncRuns returns them.
    async fn runs(&self) -> Vec<SyncRun> {
        self.sync()
            .list_sync_runs(self.request(ListSyncRunsRequest {
                page_size: 100,
                connection_id: self.connection.clone(),
                ..ListSyncRunsRequest::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .sync_runs
    }
}

async fn a_scheduled_object_is_read_again_on_its_schedule(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = fast_schedules(storage).await;
    let acme = Tenant::connect(&suite, &sandboxes, 30).await;
    assert_eq!(acme.adopt_manifest(&scheduled_manifest()).await, 2);

    // The product's first backfill gives the connection its schedule.
    let (backfill, created) = acme.start(SyncMode::Backfill).await;
    assert!(created);
    let backfilled_run = acme.wait_state(&backfill.id, SyncRunState::Succeeded).await;
    let backfilled = acme.changes(0, 30).await.last().unwrap().sequence;

    // Nobody calls StartSyncRun again: an incremental run with trigger SCHEDULE appears.
    let first = poll("a scheduled run appeared", async || {
        let runs = acme.runs().await;
        let found = scheduled(&runs).next().cloned();
        found.ok_or(runs)
    })
    .await;
    assert_eq!(first.mode(), SyncMode::Incremental);
    assert_eq!(first.objects, ["contact"]);
    assert_eq!(first.plan_version, 2);
    assert_eq!(first.trace_id.len(), 32, "the run has its root span");
    // No scheduled run started while the backfill was active.
    let ended = backfilled_run.end_time.unwrap();
    for run in scheduled(&acme.runs().await) {
        let created = run.create_time.unwrap();
        assert!(
            (created.seconds, created.nanos) >= (ended.seconds, ended.nanos),
            "a scheduled run started while the backfill was active: {run:?}"
        );
    }

    // A contact renamed in the CRM arrives on StreamChanges from a scheduled run.
    let renamed = acme.contact_id(5);
    sandboxes
        .salesforce
        .admin()
        .update_record(
            &acme.org,
            "Contact",
            &renamed,
            json!({"LastName": "Rescheduled"})
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap();
    let changes = acme.changes(backfilled, 1).await;
    let change = &changes[0];
    assert_eq!(change.operation(), RecordOperation::Update);
    let record = change.record.as_ref().unwrap();
    assert_eq!(record.id, renamed);
    assert_eq!(
        record.fields["last_name"].kind,
        Some(prost_types::value::Kind::StringValue("Rescheduled".into())),
    );
    let run = acme.get(&change.sync_run_id).await.unwrap();
    assert_eq!(run.trigger(), SyncTrigger::Schedule, "{run:?}");
    assert_eq!(run.mode(), SyncMode::Incremental);
    assert_eq!(
        acme.runs()
            .await
            .iter()
            .filter(|r| r.trigger() == SyncTrigger::Manual)
            .count(),
        1,
        "only the backfill was started by hand"
    );
    suite.stop().await;
    sandboxes.stop().await;
}

async fn a_connection_needing_reauthorization_gets_no_scheduled_runs_until_authorized_again(
    storage: Storage,
) {
    let sandboxes = Sandboxes::start().await;
    let suite = fast_schedules(storage).await;
    let db = engine_database(&suite).await;
    let acme = Tenant::connect(&suite, &sandboxes, 20).await;
    // Another tenant's scheduled connection shows that the scheduler keeps running.
    let globex = Tenant::connect(&suite, &sandboxes, 5).await;
    let backfilled = acme.backfill_with_schedule(20).await;
    globex.backfill_with_schedule(5).await;

    // The customer revokes access at Salesforce: the next scheduled run pauses for
    // re-authorization, and the user cancels it.
    let admin = sandboxes.salesforce.admin();
    admin.expire_sessions(&acme.org).unwrap();
    admin.revoke_refresh_tokens(&acme.org).unwrap();
    let runs = wait_runs(
        &acme,
        "a scheduled run paused for re-authorization",
        |runs| {
            scheduled(runs).any(|r| {
                r.state() == SyncRunState::Paused && r.error_reason() == ErrorReason::NeedsReauth
            })
        },
    )
    .await;
    let paused = scheduled(&runs)
        .find(|r| r.state() == SyncRunState::Paused)
        .unwrap();
    acme.sync()
        .cancel_sync_run(acme.request(CancelSyncRunRequest {
            sync_run_id: paused.id.clone(),
        }))
        .await
        .unwrap();

    // Its schedule is stopped (auth-vault's CONNECTION_NEEDS_REAUTH, or the scheduler
    // hearing NEEDS_REAUTH from auth-vault when it tries to start a run).
    poll("the schedule stopped", async || {
        let schedules = acme.schedules(&db).await;
        if schedules == [("contact".to_owned(), 60_000, true)] {
            Ok(())
        } else {
            Err(schedules)
        }
    })
    .await;
    assert_eq!(
        globex.schedules(&db).await,
        [("contact".to_owned(), 60_000, false)]
    );

    // While the scheduler starts three more runs of globex's, acme gets none.
    let before = acme.runs().await;
    let globex_before = scheduled(&globex.runs().await).count();
    wait_runs(&globex, "three more scheduled runs", |runs| {
        scheduled(runs).count() >= globex_before + 3
    })
    .await;
    let after = acme.runs().await;
    assert_eq!(
        after.len(),
        before.len(),
        "no runs while it needs re-authorization: {after:?}"
    );
    assert!(
        after.iter().all(|r| r.state() != SyncRunState::Failed),
        "{after:?}"
    );

    // The user authorizes the connection again (CONNECTION_RECOVERED): its schedule is due
    // at once, and a contact renamed meanwhile arrives from a scheduled run.
    let renamed = acme.contact_id(4);
    admin
        .update_record(
            &acme.org,
            "Contact",
            &renamed,
            json!({"LastName": "Returned"}).as_object().unwrap().clone(),
        )
        .unwrap();
    acme.reauthorize().await;
    let changes = acme.changes(backfilled, 1).await;
    assert_eq!(changes[0].record.as_ref().unwrap().id, renamed);
    let run = acme.get(&changes[0].sync_run_id).await.unwrap();
    assert_eq!(run.trigger(), SyncTrigger::Schedule, "{run:?}");
    assert_eq!(
        acme.schedules(&db).await,
        [("contact".to_owned(), 60_000, false)]
    );
    db.close().await;
    suite.stop().await;
    sandboxes.stop().await;
}

async fn a_deleted_connection_loses_its_schedules(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = fast_schedules(storage).await;
    let db = engine_database(&suite).await;
    let acme = Tenant::connect(&suite, &sandboxes, 10).await;
    assert_eq!(acme.adopt_manifest(&scheduled_manifest()).await, 2);
    // The org keeps failing, so the backfill stays active and no run ends (an ending run
    // rewrites the schedules from the plan) while the event is handled.
    sandboxes
        .salesforce
        .admin()
        .set_faults(
            &acme.org,
            FaultConfig {
                error_5xx_rate: 1.0,
                ..FaultConfig::default()
            },
        )
        .unwrap();
    let (backfill, created) = acme.start(SyncMode::Backfill).await;
    assert!(created);
    assert_eq!(
        acme.schedules(&db).await,
        [("contact".to_owned(), 60_000, false)],
        "starting a run wrote the connection's schedule"
    );

    // auth-vault tells sync-engine the connection was deleted.
    IntakeServiceClient::new(suite.channel(ServiceName::SyncEngine))
        .publish_lifecycle_event(suite.as_service(
            "auth-vault",
            &acme.project,
            &acme.tenant,
            PublishLifecycleEventRequest {
                event: Some(Event {
                    id: format!("evt_deleted_{}", acme.connection),
                    r#type: EventType::ConnectionDeleted as i32,
                    connection_id: acme.connection.clone(),
                    message: "deleted".into(),
                    ..Event::default()
                }),
            },
        ))
        .await
        .unwrap();
    assert!(
        acme.schedules(&db).await.is_empty(),
        "the event removed the connection's schedules"
    );
    let still = acme.get(&backfill.id).await.unwrap();
    assert!(
        matches!(still.state(), SyncRunState::Pending | SyncRunState::Running),
        "the backfill is still waiting for the org: {still:?}"
    );

    // A connection deleted while no event reached sync-engine: the scheduler's start finds
    // that auth-vault no longer knows it (NOT_FOUND) and removes its schedule.
    let gone = Tenant {
        connection: syncline_domain::ids::new_resource_id("conn"),
        ..acme
    };
    ScheduleStore::new(db.clone())
        .replace(
            &gone.context(),
            &gone.connection,
            &[Scheduled {
                object: "contact".into(),
                interval_ms: 60_000,
            }],
            0,
            |_| 0,
        )
        .await
        .unwrap();
    assert_eq!(
        gone.schedules(&db).await,
        [("contact".to_owned(), 60_000, false)]
    );
    poll("the unknown connection's schedule removed", async || {
        let schedules = gone.schedules(&db).await;
        if schedules.is_empty() {
            Ok(())
        } else {
            Err(schedules)
        }
    })
    .await;
    assert!(gone.runs().await.is_empty(), "no run was started for it");
    db.close().await;
    suite.stop().await;
    sandboxes.stop().await;
}

async fn a_connection_with_an_active_run_is_skipped_until_it_ends(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = fast_schedules(storage).await;
    let db = engine_database(&suite).await;
    let acme = Tenant::connect(&suite, &sandboxes, 10).await;
    assert_eq!(acme.adopt_manifest(&scheduled_manifest()).await, 2);
    // The org fails every call, so the backfill stays active.
    let admin = sandboxes.salesforce.admin();
    let failing = FaultConfig {
        error_5xx_rate: 1.0,
        ..FaultConfig::default()
    };
    admin.set_faults(&acme.org, failing).unwrap();
    let (backfill, created) = acme.start(SyncMode::Backfill).await;
    assert!(created);

    // The scheduler takes the schedule when it is due, finds the backfill and sets it due
    // again an interval later, twice, without starting a run. (While a process holds its
    // claim the schedule is a minute ahead; that is not a new due time.)
    let mut due = acme.next_due(&db).await;
    for _ in 0..2 {
        let next = poll("the schedule taken", async || {
            let next = acme.next_due(&db).await;
            if next != due && next < syncline_storage::now_ms() + 30_000 {
                Ok(next)
            } else {
                Err(next)
            }
        })
        .await;
        assert!(next > due, "the next due time only moves on");
        due = next;
    }
    let runs = acme.runs().await;
    assert_eq!(runs.len(), 1, "only the backfill: {runs:?}");
    assert_eq!(runs[0].id, backfill.id);

    // The org recovers: the backfill ends and the next scheduled run follows it.
    admin.set_faults(&acme.org, FaultConfig::default()).unwrap();
    let done = acme.wait_state(&backfill.id, SyncRunState::Succeeded).await;
    let runs = wait_runs(&acme, "a scheduled run", |runs| {
        scheduled(runs).next().is_some()
    })
    .await;
    let ended = done.end_time.unwrap();
    for run in scheduled(&runs) {
        let created = run.create_time.unwrap();
        assert!(
            (created.seconds, created.nanos) >= (ended.seconds, ended.nanos),
            "a scheduled run started beside the backfill: {run:?}"
        );
    }
    db.close().await;
    suite.stop().await;
    sandboxes.stop().await;
}
