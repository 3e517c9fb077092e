//! Scheduled incremental runs end to end: once a connection's plan carries the manifest's
//! `schedule` and a run of it started, sync-engine reads the object again by itself (trigger
//! SCHEDULE) and a record changed in the CRM arrives on StreamChanges without anyone
//! calling StartSyncRun. Time is driven by configuration: `schedule_speedup = 60` makes the
//! manifest's minimum, `1m`, one second.

use std::time::{Duration, Instant};

use serde_json::json;
use syncline_integration_tests::{Sandboxes, Storage};
use syncline_proto::common::v1::RecordOperation;
use syncline_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use syncline_proto::mapping::v1::{
    DeployManifestRequest, FieldMapping, Installation, MappingDirection, ObjectMapping,
    SaveFieldMappingsRequest, UpdateInstallationRequest,
};
use syncline_proto::sync::v1::{ListSyncRunsRequest, SyncMode, SyncRun, SyncRunState, SyncTrigger};

use super::{MANIFEST, Tenant, suite};

crate::both_storages!(a_scheduled_object_is_read_again_on_its_schedule);

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
        let field = |model: &str, provider: &str| FieldMapping {
            model_fields: vec![model.into()],
            provider_fields: vec![provider.into()],
            direction: MappingDirection::Inbound as i32,
            ..FieldMapping::default()
        };
        mapping
            .save_field_mappings(self.request(SaveFieldMappingsRequest {
                connection_id: self.connection.clone(),
                objects: vec![ObjectMapping {
                    object: "contact".into(),
                    provider_object: "Contact".into(),
                    fields: vec![field("email", "Email"), field("last_name", "LastName")],
                }],
            }))
            .await
            .unwrap()
            .into_inner()
            .plan_version
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
    let suite = suite(storage, |config| {
        let runs = &mut config.sync_engine.runs;
        runs.schedule_speedup = 60;
        runs.schedule_poll_secs = 1;
    })
    .await;
    let acme = Tenant::connect(&suite, &sandboxes, 30).await;
    let scheduled = MANIFEST.replace(
        "      hubspot: contacts\n",
        "      hubspot: contacts\n    schedule: 1m\n",
    );
    assert_ne!(scheduled, MANIFEST);
    assert_eq!(acme.adopt_manifest(&scheduled).await, 2);

    // The product's first backfill gives the connection its schedule.
    let (backfill, created) = acme.start(SyncMode::Backfill).await;
    assert!(created);
    acme.wait_state(&backfill.id, SyncRunState::Succeeded).await;
    let backfilled = acme.changes(0, 30).await.last().unwrap().sequence;

    // Nobody calls StartSyncRun again: an incremental run with trigger SCHEDULE appears.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let runs = acme.runs().await;
        if let Some(run) = runs.iter().find(|r| r.trigger() == SyncTrigger::Schedule) {
            break run.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled run appeared: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(first.mode(), SyncMode::Incremental);
    assert_eq!(first.objects, ["contact"]);
    assert_eq!(first.plan_version, 2);
    assert_eq!(first.trace_id.len(), 32, "the run has its root span");

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
