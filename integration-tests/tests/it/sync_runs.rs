//! Sync runs end to end, against the Salesforce sandbox through the real connector: a tenant
//! connects an org through OAuth, maps contacts, and a backfill then an incremental run
//! deliver exactly the org's records and then exactly its changes on StreamChanges (a
//! second backfill publishes nothing: every record is unchanged); runs pause, resume and
//! cancel through the API, tenant-scoped; a small tenant's run finishes while a big tenant's
//! is still running; a revoked connection pauses its run with NEEDS_REAUTH, and the run
//! resumes by itself once the connection is authorized again; a connection over its API
//! budget pauses with QUOTA_EXHAUSTED and resumes by itself; a mapped field removed from the
//! CRM mid-run (Salesforce refuses the read, HubSpot leaves the property out) is left out of
//! the rest of the run, which succeeds and says what it skipped, while a refusal for another
//! reason fails the run; a CRM value the mapping cannot convert is a MAP dead letter while
//! its record is published without it; changes can be kept without provider records.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use syncline_config::SynclineConfig;
use syncline_crm_sandbox::common::faults::{FaultConfig, FaultOutcome};
use syncline_crm_sandbox::hubspot::{PortalConfig, RateLimits, RecordCounts, SchemaChange};
use syncline_crm_sandbox::salesforce::{NewField, OrgConfig};
use syncline_integration_tests::{Sandboxes, Storage, TestSuite, spawn_suite_with, unique_tenant};
use syncline_proto::authvault::v1::auth_vault_service_client::AuthVaultServiceClient;
use syncline_proto::authvault::v1::{GetConnectionRequest, StartAuthorizationRequest};
use syncline_proto::common::v1::{ErrorReason, Provider, RecordOperation};
use syncline_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use syncline_proto::mapping::v1::transform::{CoerceType, Kind as TransformKind};
use syncline_proto::mapping::v1::{FieldMapping, Transform};
use syncline_proto::schema::v1::FieldType;
use syncline_proto::sync::v1::sync_service_client::SyncServiceClient;
use syncline_proto::sync::v1::{
    CancelSyncRunRequest, Change, GetSyncRunRequest, ListSyncRunsRequest, PauseSyncRunRequest,
    ResumeSyncRunRequest, StartSyncRunRequest, StreamChangesRequest, SyncMode, SyncRun,
    SyncRunState,
};
use syncline_test_support::crm::{self, SandboxApp};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

mod schedules;

crate::both_storages!(
    backfill_then_incremental_deliver_each_change_once,
    runs_pause_resume_and_cancel_through_the_api,
    a_small_tenant_finishes_while_a_big_one_runs,
    a_revoked_connection_pauses_its_run_for_reauthorization,
    a_run_paused_for_reauthorization_resumes_when_the_connection_is_reauthorized,
    a_run_over_its_api_budget_pauses_and_resumes_by_itself,
    hubspot_backfill_then_incremental_deliver_each_change_once,
    a_run_the_crm_refuses_fails_with_its_reason,
    a_mapped_salesforce_field_removed_mid_run_is_left_out_and_the_run_succeeds,
    a_mapped_hubspot_property_removed_mid_run_is_left_out_and_the_run_succeeds,
    salesforce_datetimes_arrive_in_rfc_3339_beside_the_provider_record_asked_for,
    changes_keep_no_provider_record_when_the_engine_is_told_not_to,
    a_value_the_mapping_cannot_take_is_dead_lettered_and_its_record_published_without_it,
);

/// Contacts, read only: the fields a run maps.
const MANIFEST: &str = r#"
format: 1
name: contacts
objects:
  contact:
    access: [read]
    providers:
      salesforce: Contact
      hubspot: contacts
    fields:
      email:
        type: email
      last_name:
        type: string
      score:
        type: decimal
      modified_at:
        type: datetime
"#;

fn uuid_u32() -> u32 {
    u32::from_str_radix(&unique_tenant("x")[2..10], 16).unwrap()
}

/// The suite with fast retries and small pages, `configure` applied last.
async fn suite(storage: Storage, configure: impl FnOnce(&mut SynclineConfig)) -> TestSuite {
    spawn_suite_with(storage, |config| {
        let runs = &mut config.sync_engine.runs;
        runs.page_size = 200;
        runs.max_backoff_secs = 1;
        runs.breaker_cool_down_secs = 1;
        runs.poll_interval_ms = 50;
        configure(config);
    })
    .await
}

/// One tenant with a Salesforce org of its own, connected and mapped.
struct Tenant<'a> {
    suite: &'a TestSuite,
    sandboxes: &'a Sandboxes,
    project: String,
    tenant: String,
    org: String,
    connection: String,
}

impl<'a> Tenant<'a> {
    /// Creates an org with `contacts` contacts, connects it through OAuth for a new tenant,
    /// deploys the manifest and maps contact email and last name.
    async fn connect(suite: &'a TestSuite, sandboxes: &'a Sandboxes, contacts: u64) -> Self {
        let org = unique_tenant("org");
        sandboxes
            .salesforce
            .admin()
            .create_org(OrgConfig {
                name: org.clone(),
                counts: vec![("Contact".into(), contacts)],
                ..OrgConfig::default()
            })
            .unwrap();
        Self::connect_crm(suite, sandboxes, Provider::Salesforce, org).await
    }

    /// Creates a HubSpot portal with `contacts` contacts (and few other records) and
    /// connects it like [`Tenant::connect`]; `org` is the portal id.
    async fn connect_hubspot(
        suite: &'a TestSuite,
        sandboxes: &'a Sandboxes,
        contacts: u64,
    ) -> Self {
        let portal = 70_000_000 + u64::from(uuid_u32());
        sandboxes
            .hubspot
            .admin()
            .create_portal(&PortalConfig {
                portal_id: portal,
                counts: RecordCounts {
                    contacts,
                    companies: 10,
                    deals: 10,
                    custom: 10,
                },
                ..PortalConfig::default()
            })
            .unwrap();
        Self::connect_crm(suite, sandboxes, Provider::Hubspot, portal.to_string()).await
    }

    async fn connect_crm(
        suite: &'a TestSuite,
        sandboxes: &'a Sandboxes,
        provider: Provider,
        org: String,
    ) -> Self {
        let project = unique_tenant("proj");
        let tenant = unique_tenant("tenant");
        let (app, choose, object, fields) = match provider {
            Provider::Hubspot => (
                SandboxApp::hubspot(sandboxes.hubspot.base_url(), crm::HUBSPOT_SCHEMA_SCOPES),
                format!("&portal={org}"),
                "contacts",
                ("email", "lastname"),
            ),
            _ => (
                SandboxApp::salesforce(sandboxes.salesforce.base_url()),
                format!("&org={org}"),
                "Contact",
                ("Email", "LastName"),
            ),
        };
        let caller = suite.caller(&project, &tenant);
        let connection = crm::connect(&caller, &app, &choose).await;
        crm::deploy_manifest(&caller, MANIFEST).await;
        let this = Self {
            suite,
            sandboxes,
            project,
            tenant,
            org,
            connection,
        };
        this.map_contacts(object, &[("email", fields.0), ("last_name", fields.1)])
            .await;
        this
    }

    /// Authorizes the (Salesforce) connection again through the same OAuth flow, as its
    /// user does after NEEDS_REAUTH.
    async fn reauthorize(&self) {
        let mut vault = AuthVaultServiceClient::new(self.suite.gateway());
        let connection = vault
            .get_connection(self.request(GetConnectionRequest {
                connection_id: self.connection.clone(),
            }))
            .await
            .unwrap()
            .into_inner()
            .connection
            .unwrap();
        let started = vault
            .start_authorization(self.request(StartAuthorizationRequest {
                provider_app_id: connection.provider_app_id,
                connection_id: self.connection.clone(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(started.connection_id, self.connection);
        crm::authorize_in_browser(&format!("{}&org={}", started.authorization_url, self.org)).await;
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        self.suite.as_tenant(&self.project, &self.tenant, message)
    }

    /// The tenant calling the gateway, for the sandbox CRM fixture.
    fn caller(&self) -> crm::GatewayCaller {
        self.suite.caller(&self.project, &self.tenant)
    }

    /// Describes the connection's schema again, as the scheduled refresh does.
    async fn refresh_schema(&self) {
        crm::refresh_schema(&self.caller(), &self.connection).await;
    }

    /// Saves the contact mappings: inbound (model field, CRM field) pairs.
    async fn map_contacts(&self, provider_object: &str, pairs: &[(&str, &str)]) {
        crm::save_inbound_mappings(
            &self.caller(),
            &self.connection,
            "contact",
            provider_object,
            pairs,
        )
        .await;
    }

    /// The connection's installation, as mapping shows it now.
    async fn installation(&self) -> syncline_proto::mapping::v1::Installation {
        MappingServiceClient::new(self.suite.gateway())
            .get_installation(
                self.request(syncline_proto::mapping::v1::GetInstallationRequest {
                    connection_id: self.connection.clone(),
                }),
            )
            .await
            .unwrap()
            .into_inner()
            .installation
            .unwrap()
    }

    async fn resume(&self, id: &str) {
        self.sync()
            .resume_sync_run(self.request(ResumeSyncRunRequest {
                sync_run_id: id.into(),
            }))
            .await
            .expect("the run resumes");
    }

    fn sync(&self) -> SyncServiceClient<Channel> {
        SyncServiceClient::new(self.suite.gateway())
    }

    async fn start(&self, mode: SyncMode) -> (SyncRun, bool) {
        let started = self
            .sync()
            .start_sync_run(self.request(StartSyncRunRequest {
                connection_id: self.connection.clone(),
                mode: mode as i32,
                objects: Vec::new(),
            }))
            .await
            .expect("the run starts")
            .into_inner();
        (started.sync_run.unwrap(), started.created)
    }

    async fn get(&self, id: &str) -> Result<SyncRun, tonic::Status> {
        self.sync()
            .get_sync_run(self.request(GetSyncRunRequest {
                sync_run_id: id.into(),
            }))
            .await
            .map(|r| r.into_inner().sync_run.unwrap())
    }

    /// Polls GetSyncRun until `done` holds (at most 90 s).
    async fn wait(&self, id: &str, what: &str, done: impl Fn(&SyncRun) -> bool) -> SyncRun {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let run = self.get(id).await.unwrap();
            if done(&run) {
                return run;
            }
            assert!(Instant::now() < deadline, "run never {what}: {run:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_state(&self, id: &str, state: SyncRunState) -> SyncRun {
        self.wait(id, state.as_str_name(), |r| r.state == state as i32)
            .await
    }

    /// Reads the tenant's changes after `after` from StreamChanges until `count` arrived,
    /// and checks the head is the last of them (nothing more was published).
    async fn changes(&self, after: u64, count: usize) -> Vec<Change> {
        self.read_changes(
            StreamChangesRequest {
                after_sequence: after,
                ..StreamChangesRequest::default()
            },
            count,
        )
        .await
    }

    /// [`Tenant::changes`] for `request` (pages of 500).
    async fn read_changes(&self, request: StreamChangesRequest, count: usize) -> Vec<Change> {
        let after = request.after_sequence;
        let mut stream = self
            .sync()
            .stream_changes(self.request(StreamChangesRequest {
                max_batch_size: 500,
                ..request
            }))
            .await
            .unwrap()
            .into_inner();
        let mut changes = Vec::new();
        let mut head = 0;
        while changes.len() < count {
            let message = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .expect("changes arrive")
                .expect("the stream stays open")
                .unwrap();
            head = message.head_sequence;
            changes.extend(message.changes);
        }
        assert_eq!(changes.len(), count, "more changes than expected");
        assert_eq!(
            head,
            changes.last().map_or(after, |c| c.sequence),
            "the log holds changes beyond the expected ones"
        );
        changes
    }

    /// The first `count` changes, asking for their provider records.
    async fn read_changes_with_provider_records(&self, count: usize) -> Vec<Change> {
        let request = StreamChangesRequest {
            include_provider_record: true,
            ..StreamChangesRequest::default()
        };
        self.read_changes(request, count).await
    }

    fn contact_id(&self, index: u64) -> String {
        self.sandboxes
            .salesforce
            .admin()
            .record_id(&self.org, "Contact", index)
            .unwrap()
    }

    /// Adds a custom field `name` of Salesforce type `ftype` to the org's contacts, sets it on
    /// the first `contacts` to `value(index)` and has the schema described again.
    async fn add_contact_field(
        &self,
        name: &str,
        ftype: &str,
        contacts: u64,
        value: impl Fn(u64) -> serde_json::Value,
    ) {
        let admin = self.sandboxes.salesforce.admin();
        let field = NewField {
            name: name.into(),
            label: None,
            ftype: ftype.into(),
            picklist: vec![],
            reference_to: None,
        };
        admin.add_field(&self.org, "Contact", field).unwrap();
        for index in 0..contacts {
            let mut fields = serde_json::Map::new();
            fields.insert(name.into(), value(index));
            admin
                .update_record(&self.org, "Contact", &self.contact_id(index), fields)
                .unwrap();
        }
        self.refresh_schema().await;
    }

    /// Gives the org's `contacts` contacts a text field `Score_Text__c` holding "7.5", except
    /// contact `unreadable`, whose "n/a" no number mapping takes, and maps email, last name
    /// and score (that field coerced to a decimal).
    async fn map_scores_from_text(&self, contacts: u64, unreadable: u64) {
        self.add_contact_field("Score_Text__c", "string", contacts, |index| {
            json!(if index == unreadable { "n/a" } else { "7.5" })
        })
        .await;
        // Text becomes a number only through an explicit coercion.
        let to_decimal = Transform {
            kind: Some(TransformKind::CoerceType(CoerceType {
                target_type: FieldType::Decimal as i32,
            })),
        };
        let fields = vec![
            crm::inbound_mapping("email", "Email"),
            crm::inbound_mapping("last_name", "LastName"),
            FieldMapping {
                inbound_transforms: vec![to_decimal],
                ..crm::inbound_mapping("score", "Score_Text__c")
            },
        ];
        crm::save_field_mappings(
            &self.caller(),
            &self.connection,
            "contact",
            "Contact",
            fields,
        )
        .await;
    }

    /// The tenant's MAP dead letters.
    async fn map_dead_letters(&self) -> Vec<syncline_proto::sync::v1::DeadLetter> {
        let request = syncline_proto::sync::v1::ListDeadLettersRequest {
            stage: syncline_proto::sync::v1::DeadLetterStage::Map as i32,
            ..Default::default()
        };
        self.sync()
            .list_dead_letters(self.request(request))
            .await
            .unwrap()
            .into_inner()
            .dead_letters
    }
}

fn stats(run: &SyncRun) -> (i64, i64, i64) {
    let s = run.stats.unwrap_or_default();
    (s.records_read, s.changes_published, s.records_unchanged)
}

async fn backfill_then_incremental_deliver_each_change_once(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = suite(storage, |_| {}).await;
    let acme = Tenant::connect(&suite, &sandboxes, 450).await;

    let (run, created) = acme.start(SyncMode::Backfill).await;
    assert!(created);
    assert_eq!(run.objects, ["contact"]);
    assert_eq!(run.plan_version, 1);
    assert_eq!(
        run.trace_id.len(),
        32,
        "the run's root span trace id is stored"
    );
    let done = acme.wait_state(&run.id, SyncRunState::Succeeded).await;
    assert_eq!(stats(&done), (450, 450, 0));
    let progress = &done.progress[0];
    assert!(progress.done);
    assert!(!progress.checkpoint.is_empty());
    assert_eq!(progress.estimated_total, 450);
    assert!(done.stats.as_ref().unwrap().provider_calls >= 3);
    assert!(done.end_time.is_some() && done.start_time.is_some());

    // Every contact of the org exactly once, created, mapped, with the run's id.
    let changes = acme.changes(0, 450).await;
    let mut ids: Vec<String> = changes
        .iter()
        .map(|c| c.record.as_ref().unwrap().id.clone())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..450).map(|i| acme.contact_id(i)).collect();
    expected.sort();
    assert_eq!(ids, expected);
    for change in &changes {
        assert_eq!(change.operation(), RecordOperation::Create);
        assert_eq!(change.object, "contact");
        assert_eq!(change.sync_run_id, run.id);
        let record = change.record.as_ref().unwrap();
        assert!(record.fields.contains_key("last_name"), "{record:?}");
        assert!(
            record
                .fields
                .keys()
                .all(|k| k == "email" || k == "last_name"),
            "only mapped fields leave the engine: {record:?}"
        );
    }
    let backfilled = changes.last().unwrap().sequence;

    // Changes in the org: two renamed, one touched in an unmapped field, one created, one
    // deleted.
    let admin = sandboxes.salesforce.admin();
    let fields = |v: serde_json::Value| v.as_object().unwrap().clone();
    let renamed = [acme.contact_id(3), acme.contact_id(200)];
    for id in &renamed {
        admin
            .update_record(
                &acme.org,
                "Contact",
                id,
                fields(json!({"LastName": "Renamed"})),
            )
            .unwrap();
    }
    admin
        .update_record(
            &acme.org,
            "Contact",
            &acme.contact_id(7),
            fields(json!({"Title": "CTO"})),
        )
        .unwrap();
    let new_id = admin
        .create_record(
            &acme.org,
            "Contact",
            fields(json!({"LastName": "Newcomer"})),
        )
        .unwrap();
    let deleted = acme.contact_id(9);
    admin.delete_record(&acme.org, "Contact", &deleted).unwrap();

    let (incremental, created) = acme.start(SyncMode::Incremental).await;
    assert!(created);
    let done = acme
        .wait_state(&incremental.id, SyncRunState::Succeeded)
        .await;
    let (read, published, unchanged) = stats(&done);
    assert_eq!(published, 4, "{done:?}");
    assert_eq!(read, published + unchanged);
    assert!(
        unchanged >= 1,
        "the unmapped edit is read and found unchanged"
    );
    let changes = acme.changes(backfilled, 4).await;
    let got: BTreeMap<String, RecordOperation> = changes
        .iter()
        .map(|c| (c.record.as_ref().unwrap().id.clone(), c.operation()))
        .collect();
    let want: BTreeMap<String, RecordOperation> = [
        (renamed[0].clone(), RecordOperation::Update),
        (renamed[1].clone(), RecordOperation::Update),
        (new_id, RecordOperation::Create),
        (deleted, RecordOperation::Delete),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);

    // Every page's span joins the run's trace and carries the tenant.
    let telemetry = syncline_test_support::otlp::telemetry();
    telemetry.flush().await;
    let page_spans = |spans: &[syncline_test_support::otlp::ReceivedSpan]| {
        spans
            .iter()
            .filter(|s| {
                s.name == "sync.page" && s.attributes.get("sync_run.id") == Some(&incremental.id)
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    let spans = telemetry
        .wait_for(Duration::from_secs(20), |spans| {
            !page_spans(spans).is_empty()
        })
        .await;
    for span in page_spans(&spans) {
        assert_eq!(span.trace_id, incremental.trace_id, "{span:#?}");
        assert_eq!(span.attributes.get("tenant.id"), Some(&acme.tenant));
        assert_eq!(
            span.attributes.get("provider").map(String::as_str),
            Some("salesforce")
        );
    }
    assert!(
        spans
            .iter()
            .any(|s| s.name == "sync.run" && s.trace_id == incremental.trace_id),
        "the run's root span is exported"
    );

    // A second backfill reads everything again and publishes nothing.
    let (again, _) = acme.start(SyncMode::Backfill).await;
    let done = acme.wait_state(&again.id, SyncRunState::Succeeded).await;
    let (read, published, unchanged) = stats(&done);
    assert_eq!(published, 0, "{done:?}");
    assert_eq!(read, unchanged);
    assert!(read >= 450);

    suite.stop().await;
    sandboxes.stop().await;
}

async fn runs_pause_resume_and_cancel_through_the_api(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = suite(storage, |_| {}).await;
    let acme = Tenant::connect(&suite, &sandboxes, 50).await;
    let admin = sandboxes.salesforce.admin();
    let failing = FaultConfig {
        error_5xx_rate: 1.0,
        ..FaultConfig::default()
    };
    // The CRM fails every call: the run retries (nothing lost) and cannot finish.
    admin.set_faults(&acme.org, failing.clone()).unwrap();

    let (run, created) = acme.start(SyncMode::Incremental).await;
    assert!(created);
    let (same, created) = acme.start(SyncMode::Incremental).await;
    assert!(!created, "an active run is returned, not doubled");
    assert_eq!(same.id, run.id);

    let mut sync = acme.sync();
    let paused = sync
        .pause_sync_run(acme.request(PauseSyncRunRequest {
            sync_run_id: run.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .sync_run
        .unwrap();
    assert_eq!(paused.state(), SyncRunState::Paused);
    let again = sync
        .pause_sync_run(acme.request(PauseSyncRunRequest {
            sync_run_id: run.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .sync_run
        .unwrap();
    assert_eq!(again.state(), SyncRunState::Paused, "pause is idempotent");

    // Another tenant sees none of it.
    let stranger = unique_tenant("stranger");
    for status in [
        sync.get_sync_run(suite.as_tenant(
            &acme.project,
            &stranger,
            GetSyncRunRequest {
                sync_run_id: run.id.clone(),
            },
        ))
        .await
        .unwrap_err(),
        sync.resume_sync_run(suite.as_tenant(
            &acme.project,
            &stranger,
            ResumeSyncRunRequest {
                sync_run_id: run.id.clone(),
            },
        ))
        .await
        .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::NotFound);
    }

    // The CRM recovers; the resumed run reads everything from its checkpoint.
    admin.set_faults(&acme.org, FaultConfig::default()).unwrap();
    let resumed = sync
        .resume_sync_run(acme.request(ResumeSyncRunRequest {
            sync_run_id: run.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .sync_run
        .unwrap();
    assert!(matches!(
        resumed.state(),
        SyncRunState::Pending | SyncRunState::Running | SyncRunState::Succeeded
    ));
    let done = acme.wait_state(&run.id, SyncRunState::Succeeded).await;
    assert_eq!(stats(&done), (50, 50, 0));
    acme.changes(0, 50).await;
    let refused = sync
        .cancel_sync_run(acme.request(CancelSyncRunRequest {
            sync_run_id: run.id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::FailedPrecondition,
        "a finished run stays"
    );

    // A run cancelled while the CRM fails ends CANCELLED, and stays so.
    admin.set_faults(&acme.org, failing).unwrap();
    let (second, created) = acme.start(SyncMode::Backfill).await;
    assert!(created);
    for _ in 0..2 {
        let cancelled = sync
            .cancel_sync_run(acme.request(CancelSyncRunRequest {
                sync_run_id: second.id.clone(),
            }))
            .await
            .unwrap()
            .into_inner()
            .sync_run
            .unwrap();
        assert_eq!(cancelled.state(), SyncRunState::Cancelled);
        assert!(cancelled.end_time.is_some());
    }

    // Listed newest first, a page at a time, filtered by state.
    let listed = |page_token: String, states: Vec<i32>| ListSyncRunsRequest {
        page_size: 1,
        page_token,
        connection_id: acme.connection.clone(),
        states,
    };
    let first = sync
        .list_sync_runs(acme.request(listed(String::new(), vec![])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.sync_runs[0].id, second.id);
    let next = sync
        .list_sync_runs(acme.request(listed(first.next_page_token, vec![])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.sync_runs[0].id, run.id);
    let succeeded = sync
        .list_sync_runs(acme.request(listed(String::new(), vec![SyncRunState::Succeeded as i32])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(succeeded.sync_runs[0].id, run.id);

    // Bad requests name their fields.
    let bad = sync
        .start_sync_run(acme.request(StartSyncRunRequest {
            connection_id: String::new(),
            mode: 9,
            objects: vec!["invoice".into()],
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let fields: Vec<String> = bad
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, ["connection_id", "mode"]);
    let unknown = sync
        .start_sync_run(acme.request(StartSyncRunRequest {
            connection_id: acme.connection.clone(),
            mode: SyncMode::Backfill as i32,
            objects: vec!["invoice".into()],
        }))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert_eq!(
        unknown
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations[0]
            .field,
        "objects[0]"
    );
    let foreign = sync
        .start_sync_run(suite.as_tenant(
            &acme.project,
            &stranger,
            StartSyncRunRequest {
                connection_id: acme.connection.clone(),
                mode: SyncMode::Backfill as i32,
                objects: vec![],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound, "not their connection");

    suite.stop().await;
    sandboxes.stop().await;
}

async fn a_small_tenant_finishes_while_a_big_one_runs(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = suite(storage, |config| {
        config.sync_engine.runs.workers = 2;
        config.sync_engine.runs.per_tenant_concurrency = 1;
    })
    .await;
    let big = Tenant::connect(&suite, &sandboxes, 50_000).await;
    let small = Tenant::connect(&suite, &sandboxes, 10).await;
    // The big tenant's CRM answers each call in 20 ms, as a real one does: its 250 pages
    // take five seconds at the least however fast the engine is, so "still running" below
    // says the small tenant was not kept waiting behind it, not that the engine was slow.
    sandboxes
        .salesforce
        .admin()
        .set_faults(
            &big.org,
            FaultConfig {
                latency_ms: 20,
                ..FaultConfig::default()
            },
        )
        .unwrap();

    let (big_run, _) = big.start(SyncMode::Backfill).await;
    big.wait(&big_run.id, "read a page", |r| stats(r).0 > 0)
        .await;
    let (small_run, _) = small.start(SyncMode::Backfill).await;
    let small_done = small
        .wait_state(&small_run.id, SyncRunState::Succeeded)
        .await;
    assert_eq!(stats(&small_done), (10, 10, 0));
    let big_now = big.get(&big_run.id).await.unwrap();
    assert_eq!(
        big_now.state(),
        SyncRunState::Running,
        "the big tenant is still running when the small one is done"
    );
    assert!(stats(&big_now).0 < 50_000);
    big.sync()
        .cancel_sync_run(big.request(CancelSyncRunRequest {
            sync_run_id: big_run.id.clone(),
        }))
        .await
        .unwrap();
    suite.stop().await;
    sandboxes.stop().await;
}

async fn a_revoked_connection_pauses_its_run_for_reauthorization(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = suite(storage, |_| {}).await;
    let acme = Tenant::connect(&suite, &sandboxes, 20).await;
    let admin = sandboxes.salesforce.admin();

    // An expired access token: reported once, refreshed, and the run goes on.
    let (first, _) = acme.start(SyncMode::Incremental).await;
    acme.wait_state(&first.id, SyncRunState::Succeeded).await;
    admin.expire_sessions(&acme.org).unwrap();
    let (second, _) = acme.start(SyncMode::Backfill).await;
    let done = acme.wait_state(&second.id, SyncRunState::Succeeded).await;
    assert_eq!(stats(&done), (20, 0, 20));

    // A revoked refresh token: the run pauses, saying why.
    admin.expire_sessions(&acme.org).unwrap();
    admin.revoke_refresh_tokens(&acme.org).unwrap();
    let (third, _) = acme.start(SyncMode::Backfill).await;
    let paused = acme.wait_state(&third.id, SyncRunState::Paused).await;
    assert_eq!(paused.error_reason(), ErrorReason::NeedsReauth);
    assert!(!paused.error_message.is_empty());
    assert_eq!(stats(&paused).0, 0);
    suite.stop().await;
    sandboxes.stop().await;
}

async fn a_run_paused_for_reauthorization_resumes_when_the_connection_is_reauthorized(
    storage: Storage,
) {
    let sandboxes = Sandboxes::start().await;
    let suite = suite(storage, |_| {}).await;
    let acme = Tenant::connect(&suite, &sandboxes, 120).await;
    let admin = sandboxes.salesforce.admin();
    let mut sync = acme.sync();

    // A run its user paused while the CRM was failing, before it read anything.
    let failing = FaultConfig {
        error_5xx_rate: 1.0,
        ..FaultConfig::default()
    };
    admin.set_faults(&acme.org, failing).unwrap();
    let (held, _) = acme.start(SyncMode::Incremental).await;
    sync.pause_sync_run(acme.request(PauseSyncRunRequest {
        sync_run_id: held.id.clone(),
    }))
    .await
    .unwrap();
    admin.set_faults(&acme.org, FaultConfig::default()).unwrap();

    // The customer revokes access at Salesforce: a backfill pauses for re-authorization.
    admin.expire_sessions(&acme.org).unwrap();
    admin.revoke_refresh_tokens(&acme.org).unwrap();
    let (run, _) = acme.start(SyncMode::Backfill).await;
    let paused = acme.wait_state(&run.id, SyncRunState::Paused).await;
    assert_eq!(paused.error_reason(), ErrorReason::NeedsReauth);
    assert_eq!(stats(&paused).0, 0);

    // The user authorizes the connection again: auth-vault publishes CONNECTION_RECOVERED,
    // sync-engine puts the run back in the queue, and it reads every record once.
    acme.reauthorize().await;
    let done = acme.wait_state(&run.id, SyncRunState::Succeeded).await;
    assert_eq!(done.error_reason(), ErrorReason::Unspecified);
    assert!(done.error_message.is_empty(), "{}", done.error_message);
    let (read, published, unchanged) = stats(&done);
    assert_eq!((read, published + unchanged), (120, 120));
    let changes = acme.changes(0, 120).await;
    let ids: std::collections::BTreeSet<String> = changes
        .iter()
        .map(|c| c.record.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids.len(), 120, "each record is delivered once");

    // The run its user paused is not the re-authorization's to resume.
    let still = acme.get(&held.id).await.unwrap();
    assert_eq!(still.state(), SyncRunState::Paused);
    assert_eq!(still.error_reason(), ErrorReason::Unspecified);
    suite.stop().await;
    sandboxes.stop().await;
}

async fn a_run_over_its_api_budget_pauses_and_resumes_by_itself(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = suite(storage, |config| {
        config.sync_engine.runs.daily_quota_share_percent = 50;
        config.sync_engine.runs.quota_pause_secs = 1;
    })
    .await;
    let acme = Tenant::connect(&suite, &sandboxes, 600).await;
    let admin = sandboxes.salesforce.admin();
    // Half the org's daily calls are used: all that syncs may spend. The pause lasts until
    // enough of the rolling 24 hours' calls have aged out (a few seconds for the few over).
    admin
        .set_quota(&acme.org, Some(50_000), Some(100_000))
        .unwrap();
    let (run, _) = acme.start(SyncMode::Backfill).await;
    let paused = acme.wait_state(&run.id, SyncRunState::Paused).await;
    assert_eq!(paused.error_reason(), ErrorReason::QuotaExhausted);
    assert!(
        paused.error_message.contains("50%"),
        "{}",
        paused.error_message
    );
    let read_when_paused = stats(&paused).0;
    assert!(read_when_paused > 0 && read_when_paused < 600);

    // The quota resets; the run resumes by itself from its checkpoint and finishes.
    admin.set_quota(&acme.org, Some(0), None).unwrap();
    let done = acme.wait_state(&run.id, SyncRunState::Succeeded).await;
    assert_eq!(stats(&done), (600, 600, 0));
    acme.changes(0, 600).await;
    suite.stop().await;
    sandboxes.stop().await;
}

async fn hubspot_backfill_then_incremental_deliver_each_change_once(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = suite(storage, |_| {}).await;
    let acme = Tenant::connect_hubspot(&suite, &sandboxes, 450).await;
    let portal: u64 = acme.org.parse().unwrap();

    let (run, _) = acme.start(SyncMode::Backfill).await;
    let done = acme.wait_state(&run.id, SyncRunState::Succeeded).await;
    assert_eq!(stats(&done), (450, 450, 0));
    let changes = acme.changes(0, 450).await;
    let mut ids: Vec<String> = changes
        .iter()
        .map(|c| c.record.as_ref().unwrap().id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 450, "each contact once");
    assert!(
        changes
            .iter()
            .all(|c| c.operation() == RecordOperation::Create && c.object == "contact")
    );
    let backfilled = changes.last().unwrap().sequence;

    let admin = sandboxes.hubspot.admin();
    let renamed: u64 = ids[10].parse().unwrap();
    let archived: u64 = ids[20].parse().unwrap();
    admin
        .update_record(
            portal,
            "contacts",
            renamed,
            json!({"lastname": "Renamed"}).as_object().unwrap(),
        )
        .unwrap();
    admin.archive_record(portal, "contacts", archived).unwrap();
    let (incremental, _) = acme.start(SyncMode::Incremental).await;
    let done = acme
        .wait_state(&incremental.id, SyncRunState::Succeeded)
        .await;
    assert_eq!(stats(&done).1, 2, "{done:?}");
    let changes = acme.changes(backfilled, 2).await;
    let got: BTreeMap<String, RecordOperation> = changes
        .iter()
        .map(|c| (c.record.as_ref().unwrap().id.clone(), c.operation()))
        .collect();
    let want: BTreeMap<String, RecordOperation> = [
        (renamed.to_string(), RecordOperation::Update),
        (archived.to_string(), RecordOperation::Delete),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
    suite.stop().await;
    sandboxes.stop().await;
}

async fn a_run_the_crm_refuses_fails_with_its_reason(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = suite(storage, |_| {}).await;
    let acme = Tenant::connect(&suite, &sandboxes, 30).await;
    // The org refuses the run's read for good: the connected user may no longer see
    // contacts (400 INVALID_TYPE, as the real API answers), not a missing field.
    sandboxes
        .salesforce
        .admin()
        .force_faults(&acme.org, FaultOutcome::Refused, 1)
        .unwrap();

    let (run, _) = acme.start(SyncMode::Backfill).await;
    let failed = acme.wait_state(&run.id, SyncRunState::Failed).await;
    assert_eq!(failed.error_reason(), ErrorReason::ProviderRejected);
    assert!(
        failed.error_message.contains("INVALID_TYPE")
            && failed
                .error_message
                .contains("sObject type 'Contact' is not supported"),
        "{}",
        failed.error_message
    );
    assert!(failed.end_time.is_some());
    assert_eq!(stats(&failed).1, 0, "nothing published from a refused read");
    assert!(
        failed
            .progress
            .iter()
            .all(|p| p.skipped_fields.is_empty() && p.issue.is_empty()),
        "{failed:?}"
    );
    // The connection can start again (the failed run is not active), and the org serves it.
    let (next, created) = acme.start(SyncMode::Backfill).await;
    assert!(created);
    assert_ne!(next.id, run.id);
    let done = acme.wait_state(&next.id, SyncRunState::Succeeded).await;
    assert_eq!(stats(&done).0, 30);
    suite.stop().await;
    sandboxes.stop().await;
}

/// Salesforce writes datetimes as `2024-01-02T00:10:30.000+0000`; the product gets the same
/// instant in RFC 3339 (`2024-01-02T00:10:30Z`), and with `include_provider_record` the
/// record as the CRM sent it beside it, through the gateway.
async fn salesforce_datetimes_arrive_in_rfc_3339_beside_the_provider_record_asked_for(
    storage: Storage,
) {
    let sandboxes = Sandboxes::start().await;
    let suite = suite(storage, |_| {}).await;
    let acme = Tenant::connect(&suite, &sandboxes, 30).await;
    acme.map_contacts(
        "Contact",
        &[
            ("email", "Email"),
            ("last_name", "LastName"),
            ("modified_at", "LastModifiedDate"),
        ],
    )
    .await;
    let (run, _) = acme.start(SyncMode::Backfill).await;
    let done = acme.wait_state(&run.id, SyncRunState::Succeeded).await;
    assert_eq!(done.stats.unwrap_or_default().records_failed, 0, "{done:?}");

    let changes = acme.read_changes_with_provider_records(30).await;
    let text = |value: Option<&prost_types::Value>| match value.and_then(|v| v.kind.as_ref()) {
        Some(prost_types::value::Kind::StringValue(s)) => s.clone(),
        other => panic!("not text: {other:?}"),
    };
    for change in &changes {
        let provider = change.provider_record.as_ref().expect("asked for");
        assert_eq!(provider.id, change.record.as_ref().unwrap().id);
        let sent = text(provider.fields.get("LastModifiedDate"));
        let (seconds, rest) = sent.split_at(19);
        assert_eq!(&rest[4..], "+0000", "Salesforce's form: {sent}");
        let millis = &rest[1..4];
        let expected = if millis == "000" {
            format!("{seconds}Z")
        } else {
            format!("{seconds}.{millis}Z")
        };
        assert_eq!(text(field(change, "modified_at")), expected, "from {sent}");
    }
    suite.stop().await;
    sandboxes.stop().await;
}

/// With `sync_engine.runs.keep_provider_records` off, changes hold the mapped record alone:
/// a reader asking for provider records gets every change, none with one. A field that
/// fails to map still leaves its dead letter with the provider record, to fix and replay.
async fn changes_keep_no_provider_record_when_the_engine_is_told_not_to(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = suite(storage, |config| {
        config.sync_engine.runs.keep_provider_records = false;
    })
    .await;
    let acme = Tenant::connect(&suite, &sandboxes, 30).await;
    acme.map_scores_from_text(30, 4).await;
    let (run, _) = acme.start(SyncMode::Backfill).await;
    acme.wait_state(&run.id, SyncRunState::Succeeded).await;
    let changes = acme.read_changes_with_provider_records(30).await;
    assert_eq!(changes.len(), 30);
    for change in &changes {
        assert!(change.provider_record.is_none(), "{change:?}");
        assert!(field(change, "last_name").is_some(), "{change:?}");
    }
    let letters = acme.map_dead_letters().await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let provider = letters[0].record.as_ref().expect("the provider record");
    assert_eq!(provider.id, acme.contact_id(4));
    assert!(
        provider.fields.contains_key("Score_Text__c"),
        "{provider:?}"
    );
    suite.stop().await;
    sandboxes.stop().await;
}

/// A CRM value the tenant's mapping cannot convert (text "n/a" into a decimal) loses nothing:
/// the record is published with its other fields and counted failed, and the field's failure
/// is a MAP dead letter carrying the provider record as read, the error and the trace.
async fn a_value_the_mapping_cannot_take_is_dead_lettered_and_its_record_published_without_it(
    storage: Storage,
) {
    let sandboxes = Sandboxes::start().await;
    let suite = suite(storage, |_| {}).await;
    let acme = Tenant::connect(&suite, &sandboxes, 30).await;
    acme.map_scores_from_text(30, 7).await;
    let (run, _) = acme.start(SyncMode::Backfill).await;
    let done = acme.wait_state(&run.id, SyncRunState::Succeeded).await;
    let run_stats = done.stats.unwrap_or_default();
    assert_eq!(
        (
            run_stats.records_read,
            run_stats.changes_published,
            run_stats.records_failed
        ),
        (30, 30, 1)
    );

    let unreadable = acme.contact_id(7);
    let changes = acme.changes(0, 30).await;
    for change in &changes {
        let record = change.record.as_ref().unwrap();
        assert!(field(change, "last_name").is_some(), "{change:?}");
        if record.id == unreadable {
            assert!(field(change, "score").is_none(), "{change:?}");
        } else {
            assert!(field(change, "score").is_some(), "{change:?}");
        }
    }

    let letters = acme.map_dead_letters().await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.record_id, unreadable);
    assert_eq!(letter.connection_id, acme.connection);
    assert_eq!(
        (letter.object.as_str(), letter.field.as_str()),
        ("contact", "score")
    );
    assert!(
        !letter.error_message.is_empty() && !letter.trace_id.is_empty(),
        "{letter:?}"
    );
    let provider = letter.record.as_ref().expect("the provider record as read");
    assert_eq!(provider.id, unreadable);
    assert_eq!(
        provider
            .fields
            .get("Score_Text__c")
            .and_then(|v| v.kind.clone()),
        Some(prost_types::value::Kind::StringValue("n/a".into()))
    );

    // Read again, the record fails again: still one letter for (record, field).
    let (again, _) = acme.start(SyncMode::Backfill).await;
    acme.wait_state(&again.id, SyncRunState::Succeeded).await;
    assert_eq!(acme.map_dead_letters().await.len(), 1);
    suite.stop().await;
    sandboxes.stop().await;
}

/// The model field of `change`'s record, when it has it.
fn field<'c>(change: &'c Change, name: &str) -> Option<&'c prost_types::Value> {
    change.record.as_ref().and_then(|r| r.fields.get(name))
}

async fn a_mapped_salesforce_field_removed_mid_run_is_left_out_and_the_run_succeeds(
    storage: Storage,
) {
    const CONTACTS: u64 = 600;
    let sandboxes = Sandboxes::start().await;
    let suite = suite(storage, |_| {}).await;
    let acme = Tenant::connect(&suite, &sandboxes, CONTACTS).await;
    acme.add_contact_field("Score__c", "double", CONTACTS, |_| json!(7.5))
        .await;
    let admin = sandboxes.salesforce.admin();
    acme.map_contacts(
        "Contact",
        &[
            ("email", "Email"),
            ("last_name", "LastName"),
            ("score", "Score__c"),
        ],
    )
    .await;

    // One call left of the org's daily quota: the run reads its first page and pauses
    // (QUOTA_EXHAUSTED) before the second, which makes "mid-run" a state, not a moment.
    admin.set_quota(&acme.org, Some(0), Some(1)).unwrap();
    let (run, _) = acme.start(SyncMode::Backfill).await;
    assert_eq!(run.plan_version, 2);
    let paused = acme
        .wait(&run.id, "paused after its first page", |r| {
            r.state() == SyncRunState::Paused && stats(r).0 > 0
        })
        .await;
    assert_eq!(paused.error_reason(), ErrorReason::QuotaExhausted);
    let read_before = stats(&paused).0;
    assert!(read_before < i64::try_from(CONTACTS).unwrap());

    // The field goes away in the org; nothing has told Syncline. The quota recovers and the
    // run goes on: the next read is refused (INVALID_FIELD), the worker has the object
    // described again and reads on without the rule drift broke.
    admin
        .remove_field(&acme.org, "Contact", "Score__c")
        .unwrap();
    admin
        .set_quota(&acme.org, Some(0), Some(1_000_000))
        .unwrap();
    acme.resume(&run.id).await;
    let done = acme.wait_state(&run.id, SyncRunState::Succeeded).await;
    assert_eq!(done.error_reason(), ErrorReason::Unspecified);
    assert_eq!(stats(&done), (600, 600, 0));
    let contact = &done.progress[0];
    assert_eq!(contact.object, "contact");
    assert_eq!(contact.skipped_fields, vec!["Score__c".to_owned()]);
    assert_eq!(
        contact.issue,
        "schema drift: Contact.Score__c no longer exists in the CRM; not read until the mapping is saved again"
    );

    // Every record arrives once with the fields that still exist; only those read before
    // the removal carry the score.
    let changes = acme.changes(0, 600).await;
    let ids: std::collections::BTreeSet<&str> = changes
        .iter()
        .map(|c| c.record.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(ids.len(), 600, "each contact once");
    for change in &changes {
        let last_name = field(change, "last_name").expect("last_name is mapped");
        assert!(
            matches!(&last_name.kind, Some(prost_types::value::Kind::StringValue(s)) if !s.is_empty()),
            "{change:?}"
        );
        assert!(field(change, "email").is_some(), "{change:?}");
    }
    let scored = changes
        .iter()
        .filter(|c| field(c, "score").is_some())
        .count();
    assert_eq!(scored, usize::try_from(read_before).unwrap());

    // The installation says the mapping needs attention, naming the field.
    let installation = acme.installation().await;
    assert_eq!(
        installation.state(),
        syncline_proto::mapping::v1::InstallationState::NeedsAttention
    );
    let selection = installation
        .objects
        .iter()
        .find(|o| o.object == "contact")
        .unwrap();
    assert!(selection.issue.contains("Score__c"), "{}", selection.issue);

    // Until the mapping is saved again, a new run starts on the same plan and leaves the
    // field out from its first page.
    let (again, created) = acme.start(SyncMode::Backfill).await;
    assert!(created);
    assert_eq!(again.plan_version, 2);
    let done = acme.wait_state(&again.id, SyncRunState::Succeeded).await;
    assert_eq!(stats(&done).0, 600);
    assert_eq!(done.progress[0].skipped_fields, vec!["Score__c".to_owned()]);
    suite.stop().await;
    sandboxes.stop().await;
}

async fn a_mapped_hubspot_property_removed_mid_run_is_left_out_and_the_run_succeeds(
    storage: Storage,
) {
    const CONTACTS: usize = 250;
    let sandboxes = Sandboxes::start().await;
    // Every page asks mapping about the plan again: drift found by others is noticed at
    // the next page.
    let suite = suite(storage, |config| {
        config.sync_engine.runs.plan_check_secs = 0
    })
    .await;
    let acme = Tenant::connect_hubspot(&suite, &sandboxes, 0).await;
    let portal: u64 = acme.org.parse().unwrap();
    let admin = sandboxes.hubspot.admin();
    admin
        .change_schema(
            portal,
            "contacts",
            &SchemaChange::Add {
                name: "risk_score".into(),
                ptype: "number".into(),
                label: None,
            },
        )
        .unwrap();
    for i in 0..CONTACTS {
        admin
            .create_record(
                portal,
                "contacts",
                json!({
                    "email": format!("c{i}@example.com"),
                    "lastname": format!("Contact {i}"),
                    "risk_score": "7.5",
                })
                .as_object()
                .unwrap(),
            )
            .unwrap();
    }
    acme.refresh_schema().await;
    acme.map_contacts(
        "contacts",
        &[
            ("email", "email"),
            ("last_name", "lastname"),
            ("score", "risk_score"),
        ],
    )
    .await;

    // One call left of the portal's daily quota: the run reads its first page and pauses
    // (QUOTA_EXHAUSTED, HubSpot's DAILY policy) before the second.
    admin.reset(portal).unwrap();
    admin
        .set_rate_limits(
            portal,
            RateLimits {
                daily_max: 1,
                ..RateLimits::default()
            },
        )
        .unwrap();
    let (run, _) = acme.start(SyncMode::Backfill).await;
    let paused = acme
        .wait(&run.id, "paused after its first page", |r| {
            r.state() == SyncRunState::Paused && stats(r).0 > 0
        })
        .await;
    assert_eq!(paused.error_reason(), ErrorReason::QuotaExhausted);
    let read_before = stats(&paused).0;
    assert!(read_before < i64::try_from(CONTACTS).unwrap());

    // The property is deleted in the portal; HubSpot simply leaves it out of responses.
    // The scheduled refresh (here: RefreshSchema) finds the drift, and the worker's next
    // plan check leaves the broken rule out instead of reading the field as missing.
    admin
        .change_schema(
            portal,
            "contacts",
            &SchemaChange::Remove {
                name: "risk_score".into(),
            },
        )
        .unwrap();
    admin
        .set_rate_limits(portal, RateLimits::default())
        .unwrap();
    acme.refresh_schema().await;
    acme.resume(&run.id).await;
    let done = acme.wait_state(&run.id, SyncRunState::Succeeded).await;
    let contact = &done.progress[0];
    assert_eq!(contact.skipped_fields, vec!["risk_score".to_owned()]);
    assert_eq!(
        contact.issue,
        "schema drift: contacts.risk_score no longer exists in the CRM; not read until the mapping is saved again"
    );

    // The backfill's look-back reads the just-created contacts again (as UPDATEs where the
    // score is gone): every contact arrives, each change keeps the fields that still exist,
    // and only the creations read before the removal carry the score.
    let (read, published, unchanged) = stats(&done);
    assert_eq!(read, published + unchanged, "{done:?}");
    let changes = acme.changes(0, usize::try_from(published).unwrap()).await;
    let ids: std::collections::BTreeSet<&str> = changes
        .iter()
        .map(|c| c.record.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(ids.len(), CONTACTS, "every contact arrives");
    for change in &changes {
        assert!(field(change, "last_name").is_some(), "{change:?}");
        assert!(field(change, "email").is_some(), "{change:?}");
    }
    let scored: Vec<&Change> = changes
        .iter()
        .filter(|c| field(c, "score").is_some())
        .collect();
    assert_eq!(scored.len(), usize::try_from(read_before).unwrap());
    assert!(
        scored
            .iter()
            .all(|c| c.operation() == RecordOperation::Create),
        "only creations read before the removal carry the score"
    );
    assert_eq!(
        acme.installation().await.state(),
        syncline_proto::mapping::v1::InstallationState::NeedsAttention
    );
    suite.stop().await;
    sandboxes.stop().await;
}
