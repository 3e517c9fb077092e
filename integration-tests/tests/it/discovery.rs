//! schema-discovery end to end: a Salesforce sandbox org and a HubSpot sandbox portal
//! connected through the real OAuth flow, described through the gateway (standard and custom
//! objects, normalised types, picklists), changed through the sandboxes' admin handles, and
//! described again: the drift is exactly those changes, and no other tenant sees any of it.

use std::collections::BTreeMap;

use syncline_crm_sandbox::hubspot::{DEMO_PORTAL_ID, SchemaChange};
use syncline_crm_sandbox::salesforce::NewField;
use syncline_integration_tests::{
    Sandboxes, Storage, TestSuite, spawn_suite, spawn_suite_with, unique_tenant,
};
use syncline_proto::schema::v1::schema_service_client::SchemaServiceClient;
use syncline_proto::schema::v1::{
    DriftKind, Field, FieldType, GetObjectRequest, GetSchemaDriftRequest, ListObjectsRequest,
    ListSchemaVersionsRequest, ObjectDrift, ObjectSchema, ObjectView, RefreshSchemaRequest,
    RefreshSchemaResponse,
};
use syncline_test_support::crm::{self, SandboxApp};
use tonic::Code;

const PROJECT: &str = "proj-discovery";

crate::both_storages!(discovery_end_to_end, scheduled_refresh_finds_drift);

fn schema(suite: &TestSuite) -> SchemaServiceClient<tonic::transport::Channel> {
    SchemaServiceClient::new(suite.gateway())
}

async fn refresh(suite: &TestSuite, tenant: &str, connection: &str) -> RefreshSchemaResponse {
    schema(suite)
        .refresh_schema(suite.as_tenant(
            PROJECT,
            tenant,
            RefreshSchemaRequest {
                connection_id: connection.into(),
                object_names: Vec::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

async fn objects(suite: &TestSuite, tenant: &str, connection: &str) -> Vec<ObjectSchema> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = schema(suite)
            .list_objects(suite.as_tenant(
                PROJECT,
                tenant,
                ListObjectsRequest {
                    connection_id: connection.into(),
                    page_size: 3,
                    page_token: page_token.clone(),
                    ..ListObjectsRequest::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        out.extend(page.objects);
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

async fn object(suite: &TestSuite, tenant: &str, connection: &str, name: &str) -> ObjectSchema {
    schema(suite)
        .get_object(suite.as_tenant(
            PROJECT,
            tenant,
            GetObjectRequest {
                connection_id: connection.into(),
                object_name: name.into(),
                ..GetObjectRequest::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .object
        .unwrap()
}

fn field<'a>(object: &'a ObjectSchema, name: &str) -> &'a Field {
    object
        .fields
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{} has no field {name}", object.name))
}

async fn drift(suite: &TestSuite, tenant: &str, connection: &str, from: i64) -> Vec<ObjectDrift> {
    schema(suite)
        .get_schema_drift(suite.as_tenant(
            PROJECT,
            tenant,
            GetSchemaDriftRequest {
                connection_id: connection.into(),
                from_version: from,
                to_version: 0,
                object_names: Vec::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .objects
}

/// `object -> field -> kinds` of a drift.
fn summary(drift: &[ObjectDrift]) -> BTreeMap<String, BTreeMap<String, Vec<DriftKind>>> {
    drift
        .iter()
        .map(|o| {
            let fields = o
                .fields
                .iter()
                .map(|f| {
                    let kinds = f
                        .kinds
                        .iter()
                        .map(|k| DriftKind::try_from(*k).unwrap())
                        .collect();
                    (f.field_name.clone(), kinds)
                })
                .collect();
            (o.object_name.clone(), fields)
        })
        .collect()
}

/// The drift rows `(object, field, kinds, breaking)` and drift events `(from, to)` stored for
/// a connection.
async fn stored_drift(
    suite: &TestSuite,
    tenant: &str,
    connection: &str,
) -> (Vec<(String, String, String, i32)>, Vec<(i64, i64)>) {
    use sqlx::Row;
    let db = suite
        .service_database(
            syncline_config::ServiceName::SchemaDiscovery,
            syncline_schema_discovery::MIGRATIONS,
        )
        .await;
    let rows = sqlx::query(
        "SELECT object_name, field_name, kinds, breaking FROM schema_drift
         WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3
         ORDER BY object_name, field_name",
    )
    .bind(PROJECT)
    .bind(tenant)
    .bind(connection)
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get::<String, _>(0),
            r.get::<String, _>(1),
            r.get::<String, _>(2),
            r.get::<i32, _>(3),
        )
    })
    .collect();
    let events = sqlx::query(
        "SELECT from_version, to_version FROM schema_drift_events
         WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3",
    )
    .bind(PROJECT)
    .bind(tenant)
    .bind(connection)
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get::<i64, _>(0), r.get::<i64, _>(1)))
    .collect();
    db.close().await;
    (rows, events)
}

async fn discovery_end_to_end(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = spawn_suite(storage).await;
    let (sf, hs) = (&sandboxes.salesforce, &sandboxes.hubspot);
    let acme = unique_tenant("acme");
    let globex = unique_tenant("globex");

    let sf_conn = crm::connect(
        &suite.caller(PROJECT, &acme),
        &SandboxApp::salesforce(sf.base_url()),
        "",
    )
    .await;
    let hs_conn = crm::connect(
        &suite.caller(PROJECT, &acme),
        &SandboxApp::hubspot(hs.base_url(), crm::HUBSPOT_SCHEMA_SCOPES),
        "",
    )
    .await;

    // Salesforce: the first refresh stores version 1; standard and custom objects.
    let first = refresh(&suite, &acme, &sf_conn).await;
    assert_eq!(
        (
            first.schema_version,
            first.changed,
            first.previous_schema_version
        ),
        (1, true, 0)
    );
    let listed = objects(&suite, &acme, &sf_conn).await;
    let names: Vec<&str> = listed.iter().map(|o| o.name.as_str()).collect();
    for expected in [
        "Account",
        "Contact",
        "Opportunity",
        "Project__c",
        "Invoice__c",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let project = listed.iter().find(|o| o.name == "Project__c").unwrap();
    assert!(project.custom && project.queryable && project.createable);
    assert!(project.fields.is_empty() && project.field_count > 10);
    assert!(!listed.iter().find(|o| o.name == "Account").unwrap().custom);

    let account = object(&suite, &acme, &sf_conn, "Account").await;
    assert_eq!(account.field_count as usize, account.fields.len());
    let id = field(&account, "Id");
    assert_eq!(
        (id.r#type, id.native_type.as_str()),
        (FieldType::Id as i32, "id")
    );
    let owner = field(&account, "OwnerId");
    assert_eq!(owner.r#type, FieldType::Reference as i32);
    assert_eq!(owner.reference_targets, ["User"]);
    assert_eq!(owner.relationship_name, "Owner");
    let external = field(&account, "External_Id__c");
    assert!(external.custom && external.external_id);
    let active = field(&account, "Active__c");
    assert_eq!(active.r#type, FieldType::Picklist as i32);
    let values: Vec<&str> = active
        .picklist_values
        .iter()
        .map(|p| p.value.as_str())
        .collect();
    assert_eq!(values, ["Yes", "No"]);
    let tags = field(
        &object(&suite, &acme, &sf_conn, "Project__c").await,
        "Tags__c",
    )
    .clone();
    assert_eq!(tags.r#type, FieldType::MultiPicklist as i32);
    assert_eq!(tags.native_type, "multipicklist");

    // Nothing changed: no new version.
    let again = refresh(&suite, &acme, &sf_conn).await;
    assert_eq!((again.schema_version, again.changed), (1, false));

    // Add, remove and retype fields in the org; the refresh stores version 2 and the drift
    // is exactly those changes.
    let admin = sf.admin();
    admin
        .add_field(
            "demo",
            "Account",
            NewField {
                name: "Churn_Risk__c".into(),
                label: Some("Churn Risk".into()),
                ftype: "double".into(),
                picklist: Vec::new(),
                reference_to: None,
            },
        )
        .unwrap();
    admin
        .remove_field("demo", "Account", "UpsellOpportunity__c")
        .unwrap();
    admin
        .retype_field("demo", "Account", "NumberofLocations__c", "string")
        .unwrap();
    // The org also ends every session: the describe gets a 401, reports it to auth-vault
    // once, and retries with the refreshed token.
    let refreshes = admin.stats("demo").unwrap().stats.refresh_grants;
    assert!(admin.expire_sessions("demo").unwrap() > 0);
    let second = refresh(&suite, &acme, &sf_conn).await;
    assert_eq!(
        admin.stats("demo").unwrap().stats.refresh_grants,
        refreshes + 1
    );
    assert_eq!(
        (
            second.schema_version,
            second.changed,
            second.previous_schema_version
        ),
        (2, true, 1)
    );
    let sf_drift = drift(&suite, &acme, &sf_conn, 1).await;
    let sf_summary = summary(&sf_drift);
    assert_eq!(
        sf_summary.keys().collect::<Vec<_>>(),
        ["Account"],
        "{sf_summary:?}"
    );
    let account_drift = &sf_summary["Account"];
    assert_eq!(
        account_drift.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "Churn_Risk__c",
            "NumberofLocations__c",
            "UpsellOpportunity__c"
        ]
    );
    assert_eq!(account_drift["Churn_Risk__c"], [DriftKind::Added]);
    assert_eq!(account_drift["UpsellOpportunity__c"], [DriftKind::Removed]);
    assert_eq!(account_drift["NumberofLocations__c"][0], DriftKind::Retyped);
    // The drift reaches the tenant as a lifecycle event, once, with a stable id.
    let mut events =
        syncline_proto::sync::v1::sync_service_client::SyncServiceClient::new(suite.gateway())
            .stream_lifecycle_events(suite.as_tenant(
                PROJECT,
                &acme,
                syncline_proto::sync::v1::StreamLifecycleEventsRequest::default(),
            ))
            .await
            .unwrap()
            .into_inner();
    let drift_event = loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(30), events.message())
            .await
            .expect("a lifecycle message within 30 s")
            .unwrap()
            .expect("the stream stays open");
        match message.event {
            Some(event)
                if event.r#type
                    == syncline_proto::common::v1::EventType::SchemaDriftDetected as i32 =>
            {
                break event;
            }
            _ => {}
        }
    };
    assert_eq!(drift_event.connection_id, sf_conn);
    assert!(drift_event.id.starts_with("drift_"), "{}", drift_event.id);
    let retyped = sf_drift[0]
        .fields
        .iter()
        .find(|f| f.field_name == "NumberofLocations__c")
        .unwrap();
    assert_eq!(
        retyped.before.as_ref().unwrap().r#type,
        FieldType::Decimal as i32
    );
    assert_eq!(
        retyped.after.as_ref().unwrap().r#type,
        FieldType::String as i32
    );
    // The drift is stored for the mapping service: the removed and retyped fields are the
    // breaking rows; the refresh that found it is recorded with whether sync-engine took
    // the SCHEMA_DRIFT_DETECTED event.
    let (rows, events) = stored_drift(&suite, &acme, &sf_conn).await;
    assert_eq!(
        rows,
        [
            (
                "Account".to_owned(),
                "Churn_Risk__c".to_owned(),
                "added".to_owned(),
                0
            ),
            (
                "Account".to_owned(),
                "NumberofLocations__c".to_owned(),
                "retyped,attributes_changed".to_owned(),
                1
            ),
            (
                "Account".to_owned(),
                "UpsellOpportunity__c".to_owned(),
                "removed".to_owned(),
                1
            ),
        ]
    );
    assert_eq!(events, [(1, 2)]);
    // Describing only Account again finds nothing new; a drift limited to other objects is
    // empty.
    let partial = schema(&suite)
        .refresh_schema(suite.as_tenant(
            PROJECT,
            &acme,
            RefreshSchemaRequest {
                connection_id: sf_conn.clone(),
                object_names: vec!["Account".into()],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((partial.schema_version, partial.changed), (2, false));
    let filtered = schema(&suite)
        .get_schema_drift(suite.as_tenant(
            PROJECT,
            &acme,
            GetSchemaDriftRequest {
                connection_id: sf_conn.clone(),
                from_version: 1,
                to_version: 2,
                object_names: vec!["Contact".into()],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(filtered.objects.is_empty());
    // Version 1 is still readable as it was.
    let old = schema(&suite)
        .get_object(suite.as_tenant(
            PROJECT,
            &acme,
            GetObjectRequest {
                connection_id: sf_conn.clone(),
                object_name: "Account".into(),
                schema_version: 1,
                view: ObjectView::Basic as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(old.schema_version, 1);
    assert!(old.object.unwrap().fields.is_empty());
    let versions = schema(&suite)
        .list_schema_versions(suite.as_tenant(
            PROJECT,
            &acme,
            ListSchemaVersionsRequest {
                connection_id: sf_conn.clone(),
                ..ListSchemaVersionsRequest::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .schema_versions;
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2, 1]
    );
    assert_ne!(versions[0].content_hash, versions[1].content_hash);

    // HubSpot: the first ListObjects describes the portal; standard objects and `2-…`
    // custom objects with their properties.
    let listed = objects(&suite, &acme, &hs_conn).await;
    let names: Vec<&str> = listed.iter().map(|o| o.name.as_str()).collect();
    for expected in ["companies", "contacts", "deals"] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let custom: Vec<&ObjectSchema> = listed.iter().filter(|o| o.custom).collect();
    assert!(!custom.is_empty(), "{names:?}");
    assert!(custom.iter().all(|o| o.name.starts_with("2-")), "{names:?}");
    let projects = custom
        .iter()
        .find(|o| o.label == "Project")
        .unwrap()
        .name
        .clone();
    let described = object(&suite, &acme, &hs_conn, &projects).await;
    let satisfaction = field(&described, "satisfaction");
    assert_eq!(satisfaction.native_type, "enumeration");
    assert_eq!(satisfaction.r#type, FieldType::Picklist as i32);
    assert!(!satisfaction.picklist_values.is_empty());
    assert_eq!(
        field(&described, "hs_object_id").r#type,
        FieldType::Id as i32
    );
    let contacts = object(&suite, &acme, &hs_conn, "contacts").await;
    assert_eq!(field(&contacts, "email").r#type, FieldType::Email as i32);
    assert!(!field(&contacts, "email").custom);

    let hs_admin = hs.admin();
    hs_admin
        .change_schema(
            DEMO_PORTAL_ID,
            "contacts",
            &SchemaChange::Add {
                name: "churn_score".into(),
                ptype: "number".into(),
                label: Some("Churn score".into()),
            },
        )
        .unwrap();
    hs_admin
        .change_schema(
            DEMO_PORTAL_ID,
            &projects,
            &SchemaChange::Remove {
                name: "notes".into(),
            },
        )
        .unwrap();
    hs_admin
        .change_schema(
            DEMO_PORTAL_ID,
            &projects,
            &SchemaChange::Retype {
                name: "satisfaction".into(),
                ptype: "string".into(),
            },
        )
        .unwrap();
    let hs_second = refresh(&suite, &acme, &hs_conn).await;
    assert_eq!((hs_second.schema_version, hs_second.changed), (2, true));
    let hs_summary = summary(&drift(&suite, &acme, &hs_conn, 1).await);
    let mut expected = vec![projects.clone(), "contacts".to_owned()];
    expected.sort();
    assert_eq!(
        hs_summary.keys().cloned().collect::<Vec<_>>(),
        expected,
        "{hs_summary:?}"
    );
    assert_eq!(
        hs_summary["contacts"].keys().collect::<Vec<_>>(),
        ["churn_score"]
    );
    assert_eq!(hs_summary["contacts"]["churn_score"], [DriftKind::Added]);
    let project_drift = &hs_summary[&projects];
    assert_eq!(
        project_drift.keys().map(String::as_str).collect::<Vec<_>>(),
        ["notes", "satisfaction"]
    );
    assert_eq!(project_drift["notes"], [DriftKind::Removed]);
    assert_eq!(project_drift["satisfaction"][0], DriftKind::Retyped);

    // Another tenant naming the same connections finds nothing, and cannot describe them.
    for conn in [&sf_conn, &hs_conn] {
        let status = schema(&suite)
            .get_object(suite.as_tenant(
                PROJECT,
                &globex,
                GetObjectRequest {
                    connection_id: conn.clone(),
                    object_name: "Account".into(),
                    ..GetObjectRequest::default()
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let status = schema(&suite)
            .get_schema_drift(suite.as_tenant(
                PROJECT,
                &globex,
                GetSchemaDriftRequest {
                    connection_id: conn.clone(),
                    from_version: 1,
                    ..GetSchemaDriftRequest::default()
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        for call in ["refresh", "list"] {
            let status = match call {
                "refresh" => schema(&suite)
                    .refresh_schema(suite.as_tenant(
                        PROJECT,
                        &globex,
                        RefreshSchemaRequest {
                            connection_id: conn.clone(),
                            object_names: Vec::new(),
                        },
                    ))
                    .await
                    .map(|_| ())
                    .unwrap_err(),
                _ => schema(&suite)
                    .list_objects(suite.as_tenant(
                        PROJECT,
                        &globex,
                        ListObjectsRequest {
                            connection_id: conn.clone(),
                            ..ListObjectsRequest::default()
                        },
                    ))
                    .await
                    .map(|_| ())
                    .unwrap_err(),
            };
            assert_eq!(status.code(), Code::NotFound, "{call}: {status:?}");
        }
    }

    suite.stop().await;
    sandboxes.stop().await;
}

/// With a one-second schedule, a field added in the org shows up as a new version without
/// anyone calling RefreshSchema (waited for by reading the versions, with a deadline).
async fn scheduled_refresh_finds_drift(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = spawn_suite_with(storage, |config| {
        config.schema_discovery.refresh_interval_secs = 1;
    })
    .await;
    let sf = &sandboxes.salesforce;
    let acme = unique_tenant("acme");
    let conn = crm::connect(
        &suite.caller(PROJECT, &acme),
        &SandboxApp::salesforce(sf.base_url()),
        "",
    )
    .await;
    assert_eq!(refresh(&suite, &acme, &conn).await.schema_version, 1);
    sf.admin()
        .add_field(
            "demo",
            "Invoice__c",
            NewField {
                name: "Scheduled__c".into(),
                label: None,
                ftype: "picklist".into(),
                picklist: vec!["A".into(), "B".into()],
                reference_to: None,
            },
        )
        .unwrap();
    // A round that started after the change has finished once two more rounds have.
    let mut sweeps = syncline_schema_discovery::completed_sweeps(
        suite
            .addr(syncline_config::ServiceName::SchemaDiscovery)
            .expect("schema-discovery runs"),
    )
    .expect("the scheduler runs");
    let seen = *sweeps.borrow();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        sweeps.wait_for(|n| *n >= seen + 2),
    )
    .await
    .expect("the scheduler finishes two rounds within 30 s")
    .expect("the scheduler is running");
    let latest = schema(&suite)
        .list_schema_versions(suite.as_tenant(
            PROJECT,
            &acme,
            ListSchemaVersionsRequest {
                connection_id: conn.clone(),
                ..ListSchemaVersionsRequest::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .schema_versions[0]
        .version;
    assert_eq!(latest, 2);
    let found = summary(&drift(&suite, &acme, &conn, 1).await);
    assert_eq!(found.keys().collect::<Vec<_>>(), ["Invoice__c"]);
    assert_eq!(found["Invoice__c"]["Scheduled__c"], [DriftKind::Added]);
    suite.stop().await;
    sandboxes.stop().await;
}
