//! Field mappings against the connection's discovered schema, end to end: a Salesforce org
//! and a HubSpot portal connected through OAuth, custom fields of custom objects mapped
//! (`Project__c.Territory__c`, `Deal_Risk_Score__c`; HubSpot `2-…` projects and a custom
//! property), bad mappings refused naming the field, the installation's provider filled
//! from auth-vault; then the sandbox changes the schema under the saved mappings and,
//! after a refresh, the installation and the plan name what drift broke.

use syncline_crm_sandbox::hubspot::{DEMO_PORTAL_ID, SchemaChange};
use syncline_crm_sandbox::salesforce::NewField;
use syncline_integration_tests::{Sandboxes, Storage, TestSuite, spawn_suite, unique_tenant};
use syncline_proto::common::v1::Provider;
use syncline_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use syncline_proto::mapping::v1::transform::{self as pb};
use syncline_proto::mapping::v1::{
    FieldMapping, FieldMappingViolation, GetInstallationRequest, GetMappingPlanRequest,
    Installation, InstallationState, MappingDirection, MappingPlan, ObjectMapping,
    SaveFieldMappingsRequest, Transform, ValidateFieldMappingsRequest, ViolationKind, WriteGuard,
};
use syncline_proto::schema::v1::schema_service_client::SchemaServiceClient;
use syncline_proto::schema::v1::{FieldType, ListObjectsRequest, RefreshSchemaRequest};
use syncline_test_support::crm::{self, SandboxApp};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

crate::both_storages!(
    salesforce_custom_fields_map_and_drift_is_flagged,
    hubspot_custom_object_properties_map_and_drift_is_flagged,
);

/// A product syncing projects: a custom object in either CRM.
const MANIFEST: &str = r#"
format: 1
name: projects
objects:
  project:
    access: [read, write]
    providers:
      salesforce: Project__c
    fields:
      name:
        type: string
        required: true
        map:
          salesforce: Name
      risk_score:
        type: decimal
      risk_label:
        type: string
      status:
        type: picklist
        values: [planned, active, done]
      territory:
        type: string
        write: if_empty
      phase:
        type: picklist
        values: [start, middle, end]
"#;

/// Registers the provider app and walks the OAuth flow (the sandboxes approve at once);
/// returns the active connection's id.
pub(crate) async fn connect(
    suite: &TestSuite,
    project: &str,
    tenant: &str,
    provider: Provider,
    base_url: &str,
    client: (&str, &str),
    scopes: &[&str],
) -> String {
    let app = SandboxApp::new(provider, base_url, client, scopes);
    crm::connect(&suite.caller(project, tenant), &app, "").await
}

/// Connects the sandbox's demo Salesforce org for `tenant`.
pub(crate) async fn connect_salesforce(
    suite: &TestSuite,
    sandboxes: &Sandboxes,
    project: &str,
    tenant: &str,
) -> String {
    let app = SandboxApp::salesforce(sandboxes.salesforce.base_url());
    crm::connect(&suite.caller(project, tenant), &app, "").await
}

/// What one tenant of one project does with the mapping and schema services.
struct Tenant<'a> {
    suite: &'a TestSuite,
    project: String,
    tenant: String,
    connection: String,
}

impl Tenant<'_> {
    fn mapping(&self) -> MappingServiceClient<Channel> {
        MappingServiceClient::new(self.suite.gateway())
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        self.suite.as_tenant(&self.project, &self.tenant, message)
    }

    async fn deploy(&self) {
        crm::deploy_manifest(&self.suite.caller(&self.project, &self.tenant), MANIFEST).await;
    }

    async fn validate(&self, mapping: &ObjectMapping) -> (i64, Vec<FieldMappingViolation>) {
        let checked = self
            .mapping()
            .validate_field_mappings(self.request(ValidateFieldMappingsRequest {
                connection_id: self.connection.clone(),
                objects: vec![mapping.clone()],
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(checked.valid, checked.violations.is_empty());
        (checked.schema_version, checked.violations)
    }

    async fn save(&self, mapping: &ObjectMapping) -> Result<MappingPlan, tonic::Status> {
        self.mapping()
            .save_field_mappings(self.request(SaveFieldMappingsRequest {
                connection_id: self.connection.clone(),
                objects: vec![mapping.clone()],
            }))
            .await
            .map(|r| r.into_inner().plan.unwrap())
    }

    async fn installation(&self) -> Installation {
        self.mapping()
            .get_installation(self.request(GetInstallationRequest {
                connection_id: self.connection.clone(),
            }))
            .await
            .unwrap()
            .into_inner()
            .installation
            .unwrap()
    }

    async fn plan(&self, include_broken: bool) -> Result<MappingPlan, tonic::Status> {
        self.mapping()
            .get_mapping_plan(self.request(GetMappingPlanRequest {
                connection_id: self.connection.clone(),
                plan_version: 0,
                include_broken,
            }))
            .await
            .map(|r| r.into_inner().plan.unwrap())
    }

    async fn refresh(&self) -> i64 {
        SchemaServiceClient::new(self.suite.gateway())
            .refresh_schema(self.request(RefreshSchemaRequest {
                connection_id: self.connection.clone(),
                object_names: Vec::new(),
            }))
            .await
            .unwrap()
            .into_inner()
            .schema_version
    }
}

fn map(model: &str, provider: &str, direction: MappingDirection) -> FieldMapping {
    FieldMapping {
        model_fields: vec![model.into()],
        provider_fields: vec![provider.into()],
        direction: direction as i32,
        ..FieldMapping::default()
    }
}

fn transforms(kinds: Vec<pb::Kind>) -> Vec<Transform> {
    kinds
        .into_iter()
        .map(|k| Transform { kind: Some(k) })
        .collect()
}

fn coerce(ty: FieldType) -> pb::Kind {
    pb::Kind::CoerceType(pb::CoerceType {
        target_type: ty as i32,
    })
}

fn picklist(pairs: &[(&str, &str)]) -> pb::Kind {
    pb::Kind::PicklistMap(pb::PicklistMap {
        values: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..pb::PicklistMap::default()
    })
}

/// `(index, kind, provider field)` of each violation.
fn summary(violations: &[FieldMappingViolation]) -> Vec<(i32, ViolationKind, &str)> {
    violations
        .iter()
        .map(|v| (v.mapping_index, v.kind(), v.provider_field.as_str()))
        .collect()
}

fn project_issue(installation: &Installation) -> &str {
    &installation
        .objects
        .iter()
        .find(|o| o.object == "project")
        .unwrap()
        .issue
}

async fn salesforce_custom_fields_map_and_drift_is_flagged(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = spawn_suite(storage).await;
    let acme = unique_tenant("acme");
    let project = unique_tenant("proj");
    let connection = connect_salesforce(&suite, &sandboxes, &project, &acme).await;
    let acme = Tenant {
        suite: &suite,
        project: project.clone(),
        tenant: acme,
        connection,
    };
    acme.deploy().await;
    // The customer's admin adds a custom field to the custom object before anything is
    // discovered.
    let admin = sandboxes.salesforce.admin();
    admin
        .add_field(
            "demo",
            "Project__c",
            NewField {
                name: "Territory__c".into(),
                label: Some("Territory".into()),
                ftype: "string".into(),
                picklist: Vec::new(),
                reference_to: None,
            },
        )
        .unwrap();
    let stage = |values: &[&str]| NewField {
        name: "Stage__c".into(),
        label: Some("Stage".into()),
        ftype: "picklist".into(),
        picklist: values.iter().map(|v| (*v).to_owned()).collect(),
        reference_to: None,
    };
    admin
        .add_field(
            "demo",
            "Project__c",
            stage(&["Kickoff", "Delivery", "Closed"]),
        )
        .unwrap();

    // Bad mappings, each refused naming its field. The connection was never described:
    // validating describes it first (schema version 1).
    let bad = ObjectMapping {
        object: "project".into(),
        provider_object: "Project__c".into(),
        fields: vec![
            map("name", "Name", MappingDirection::Both),
            map("risk_score", "Deal_Risk_Score__c", MappingDirection::Both),
            map("territory", "Territory_Typo__c", MappingDirection::Inbound),
            map(
                "risk_label",
                "Deal_Risk_Score__c",
                MappingDirection::Inbound,
            ),
            map("risk_label", "Id", MappingDirection::Outbound),
            FieldMapping {
                outbound_transforms: transforms(vec![picklist(&[
                    ("planned", "Planned"),
                    ("active", "Active"),
                ])]),
                ..map("status", "Status__c", MappingDirection::Outbound)
            },
        ],
    };
    let (schema_version, violations) = acme.validate(&bad).await;
    assert_eq!(schema_version, 1, "validation describes a new connection");
    assert_eq!(
        summary(&violations),
        [
            (2, ViolationKind::ProviderFieldUnknown, "Territory_Typo__c"),
            (3, ViolationKind::TypeIncompatible, "Deal_Risk_Score__c"),
            (4, ViolationKind::NotWritable, "Id"),
            (5, ViolationKind::PicklistValueUnknown, "Status__c"),
        ],
        "{violations:#?}"
    );
    assert!(violations[3].message.contains("`Active`"));
    let refused = acme.save(&bad).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: Vec<String> = refused
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(
        fields,
        [
            "objects[0].fields[2].provider_fields[0]",
            "objects[0].fields[3].provider_fields[0]",
            "objects[0].fields[4]",
            "objects[0].fields[5].provider_fields[0]",
        ]
    );

    // The custom fields of the custom object, with a coercion where the types differ and
    // picklist values the org has.
    let good = ObjectMapping {
        object: "project".into(),
        provider_object: "Project__c".into(),
        fields: vec![
            map("name", "Name", MappingDirection::Both),
            map("risk_score", "Deal_Risk_Score__c", MappingDirection::Both),
            map("territory", "Territory__c", MappingDirection::Both),
            FieldMapping {
                inbound_transforms: transforms(vec![coerce(FieldType::String)]),
                ..map(
                    "risk_label",
                    "Deal_Risk_Score__c",
                    MappingDirection::Inbound,
                )
            },
            FieldMapping {
                inbound_transforms: transforms(vec![picklist(&[
                    ("Planned", "planned"),
                    ("In Progress", "active"),
                    ("Completed", "done"),
                ])]),
                outbound_transforms: transforms(vec![picklist(&[
                    ("planned", "Planned"),
                    ("active", "In Progress"),
                    ("done", "Completed"),
                ])]),
                ..map("status", "Status__c", MappingDirection::Both)
            },
            FieldMapping {
                inbound_transforms: transforms(vec![picklist(&[
                    ("Kickoff", "start"),
                    ("Delivery", "middle"),
                    ("Closed", "end"),
                ])]),
                outbound_transforms: transforms(vec![picklist(&[
                    ("start", "Kickoff"),
                    ("middle", "Delivery"),
                    ("end", "Closed"),
                ])]),
                ..map("phase", "Stage__c", MappingDirection::Both)
            },
        ],
    };
    let (_, violations) = acme.validate(&good).await;
    assert!(violations.is_empty(), "{violations:#?}");
    let plan = acme.save(&good).await.expect("valid mappings save");
    assert_eq!((plan.plan_version, plan.schema_version), (1, 1));
    let outbound = &plan.objects[0].outbound;
    let rule = |target: &str| outbound.iter().find(|r| r.target_field == target).unwrap();
    assert_eq!(
        rule("Deal_Risk_Score__c").target_type,
        FieldType::Decimal as i32,
        "outbound target types come from the schema"
    );
    assert_eq!(
        rule("Territory__c").write_guard,
        WriteGuard::IfEmpty as i32,
        "the manifest's write guard is in the plan"
    );
    let installation = acme.installation().await;
    assert_eq!(installation.provider(), Provider::Salesforce);
    assert_eq!(
        installation.state(),
        InstallationState::Ready,
        "{installation:#?}"
    );
    let fetched = acme.plan(false).await.unwrap();
    assert_eq!(fetched.checked_schema_version, 1);
    assert!(fetched.drift_violations.is_empty());

    // Drift: the score becomes text, the territory goes away, the stage loses the value
    // `Closed`. After the refresh the installation needs attention naming them, and the
    // plan is refused.
    admin
        .retype_field("demo", "Project__c", "Deal_Risk_Score__c", "string")
        .unwrap();
    admin
        .remove_field("demo", "Project__c", "Territory__c")
        .unwrap();
    admin
        .remove_field("demo", "Project__c", "Stage__c")
        .unwrap();
    admin
        .add_field("demo", "Project__c", stage(&["Kickoff", "Delivery"]))
        .unwrap();
    assert_eq!(acme.refresh().await, 2);
    let installation = acme.installation().await;
    assert_eq!(installation.state(), InstallationState::NeedsAttention);
    let issue = project_issue(&installation);
    assert!(
        issue.contains("Deal_Risk_Score__c")
            && issue.contains("Territory__c")
            && issue.contains("`Closed`"),
        "{issue}"
    );
    let refused = acme.plan(false).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("Deal_Risk_Score__c")
            && refused.message().contains("Territory__c"),
        "{}",
        refused.message()
    );
    let broken = acme.plan(true).await.unwrap();
    assert_eq!(broken.checked_schema_version, 2);
    let named: Vec<(ViolationKind, &str)> = broken
        .drift_violations
        .iter()
        .map(|v| (v.kind(), v.provider_field.as_str()))
        .collect();
    assert!(named.contains(&(ViolationKind::TypeIncompatible, "Deal_Risk_Score__c")));
    assert!(named.contains(&(ViolationKind::ProviderFieldUnknown, "Territory__c")));
    assert!(named.contains(&(ViolationKind::PicklistValueUnknown, "Stage__c")));
    let (schema_version, violations) = acme.validate(&good).await;
    assert_eq!(schema_version, 2);
    assert_eq!(
        summary(&violations),
        [
            (1, ViolationKind::TypeIncompatible, "Deal_Risk_Score__c"),
            (1, ViolationKind::TypeIncompatible, "Deal_Risk_Score__c"),
            (2, ViolationKind::ProviderFieldUnknown, "Territory__c"),
            (5, ViolationKind::PicklistValueUnknown, "Stage__c"),
            (5, ViolationKind::PicklistValueUnknown, "Stage__c"),
        ]
    );

    // Saving mappings that fit the new schema makes it READY again.
    let mut fixed = good.clone();
    fixed.fields.remove(2);
    fixed.fields[1] = FieldMapping {
        inbound_transforms: transforms(vec![coerce(FieldType::Decimal)]),
        ..map(
            "risk_score",
            "Deal_Risk_Score__c",
            MappingDirection::Inbound,
        )
    };
    fixed.fields[4] = FieldMapping {
        inbound_transforms: transforms(vec![picklist(&[
            ("Kickoff", "start"),
            ("Delivery", "middle"),
        ])]),
        outbound_transforms: transforms(vec![picklist(&[
            ("start", "Kickoff"),
            ("middle", "Delivery"),
        ])]),
        ..map("phase", "Stage__c", MappingDirection::Both)
    };
    let plan = acme
        .save(&fixed)
        .await
        .expect("mappings fitting the new schema save");
    assert_eq!((plan.plan_version, plan.schema_version), (2, 2));
    assert_eq!(acme.installation().await.state(), InstallationState::Ready);
    assert!(acme.plan(false).await.unwrap().drift_violations.is_empty());

    // Another tenant naming the connection finds nothing; an unknown connection neither.
    let globex = Tenant {
        tenant: unique_tenant("globex"),
        project: project.clone(),
        connection: acme.connection.clone(),
        suite: &suite,
    };
    for connection in [acme.connection.clone(), "conn_unknown".to_owned()] {
        let status = globex
            .mapping()
            .get_installation(globex.request(GetInstallationRequest {
                connection_id: connection.clone(),
            }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{connection}");
        let status = globex
            .mapping()
            .validate_field_mappings(globex.request(ValidateFieldMappingsRequest {
                connection_id: connection.clone(),
                objects: vec![good.clone()],
            }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{connection}");
    }
    suite.stop().await;
    sandboxes.stop().await;
}

async fn hubspot_custom_object_properties_map_and_drift_is_flagged(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = spawn_suite(storage).await;
    let tenant = unique_tenant("acme");
    let project = unique_tenant("proj");
    let app = SandboxApp::hubspot(sandboxes.hubspot.base_url(), crm::HUBSPOT_SCHEMA_SCOPES);
    let connection = crm::connect(&suite.caller(&project, &tenant), &app, "").await;
    let acme = Tenant {
        suite: &suite,
        project,
        tenant,
        connection,
    };
    acme.deploy().await;

    // The portal's `projects` custom object (`2-…`), found as the page would list it.
    let listed = SchemaServiceClient::new(suite.gateway())
        .list_objects(acme.request(ListObjectsRequest {
            connection_id: acme.connection.clone(),
            page_size: 1000,
            custom: Some(true),
            ..ListObjectsRequest::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let projects = listed
        .objects
        .iter()
        .find(|o| o.label == "Project")
        .unwrap()
        .name
        .clone();
    assert!(projects.starts_with("2-"), "{projects}");
    // A custom property the customer adds to it.
    let admin = sandboxes.hubspot.admin();
    admin
        .change_schema(
            DEMO_PORTAL_ID,
            &projects,
            &SchemaChange::Add {
                name: "deal_risk_score".into(),
                ptype: "number".into(),
                label: Some("Deal risk score".into()),
            },
        )
        .unwrap();
    assert_eq!(acme.refresh().await, 2);

    let mapping = |fields: Vec<FieldMapping>| ObjectMapping {
        object: "project".into(),
        provider_object: projects.clone(),
        fields,
    };
    let (_, violations) = acme
        .validate(&mapping(vec![
            map("name", "project_name", MappingDirection::Both),
            map("risk_label", "hs_object_id", MappingDirection::Outbound),
            map("risk_score", "risk_score_typo", MappingDirection::Inbound),
        ]))
        .await;
    assert_eq!(
        summary(&violations),
        [
            (1, ViolationKind::NotWritable, "hs_object_id"),
            (2, ViolationKind::ProviderFieldUnknown, "risk_score_typo"),
        ],
        "{violations:#?}"
    );
    let good = mapping(vec![
        map("name", "project_name", MappingDirection::Both),
        map("risk_score", "deal_risk_score", MappingDirection::Both),
        FieldMapping {
            inbound_transforms: transforms(vec![picklist(&[
                ("planned", "planned"),
                ("active", "active"),
                ("completed", "done"),
            ])]),
            outbound_transforms: transforms(vec![picklist(&[
                ("planned", "planned"),
                ("active", "active"),
                ("done", "completed"),
            ])]),
            ..map("status", "status", MappingDirection::Both)
        },
    ]);
    let plan = acme.save(&good).await.expect("valid mappings save");
    assert_eq!(plan.schema_version, 2);
    assert_eq!(plan.objects[0].provider_object, projects);
    let installation = acme.installation().await;
    assert_eq!(installation.provider(), Provider::Hubspot);
    assert_eq!(
        installation.state(),
        InstallationState::Ready,
        "{installation:#?}"
    );

    // The property is retyped to text: flagged after the refresh, naming it.
    admin
        .change_schema(
            DEMO_PORTAL_ID,
            &projects,
            &SchemaChange::Retype {
                name: "deal_risk_score".into(),
                ptype: "string".into(),
            },
        )
        .unwrap();
    assert_eq!(acme.refresh().await, 3);
    let installation = acme.installation().await;
    assert_eq!(installation.state(), InstallationState::NeedsAttention);
    assert!(
        project_issue(&installation).contains("deal_risk_score"),
        "{}",
        project_issue(&installation)
    );
    let refused = acme.plan(false).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("deal_risk_score"),
        "{}",
        refused.message()
    );
    suite.stop().await;
    sandboxes.stop().await;
}
