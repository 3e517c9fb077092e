//! The mapping service through the gateway: manifests deployed, listed and diffed, bad
//! manifests refused with line and column, field mappings of a connected Salesforce org
//! saved for one tenant and previewed, and nothing of that tenant's installation visible
//! to another.

use prost_types::value::Kind;
use syncline_integration_tests::{Sandboxes, Storage, spawn_suite, unique_tenant};
use syncline_proto::common::v1::Record;
use syncline_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use syncline_proto::mapping::v1::preview_mapping_request::Mapping as PreviewSource;
use syncline_proto::mapping::v1::transform::{self as pb};
use syncline_proto::mapping::v1::{
    DeployManifestRequest, DiffManifestVersionsRequest, FieldMapping, GetInstallationRequest,
    GetMappingPlanRequest, Installation, InstallationState, ListManifestVersionsRequest,
    ManifestChangeKind, MappingDirection, ObjectMapping, ObjectSelection, PreviewMappingRequest,
    SaveFieldMappingsRequest, Transform, UpdateInstallationRequest, ValidateFieldMappingsRequest,
    ValidateManifestRequest, ViolationKind,
};
use syncline_test_support::crm;
use tonic::Code;
use tonic_types::StatusExt;

const EXAMPLE: &str = include_str!("../../../docs/examples/manifest.yaml");

fn text(s: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::StringValue(s.into())),
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

async fn manifests_deploy_list_diff_and_refuse_bad_ones_with_positions(storage: Storage) {
    let suite = spawn_suite(storage).await;
    let project = unique_tenant("proj");
    let tenant = unique_tenant("acme");
    let mut mapping = MappingServiceClient::new(suite.gateway());
    let deploy = |content: String, description: &str| {
        suite.as_tenant(
            &project,
            &tenant,
            DeployManifestRequest {
                content,
                description: description.into(),
            },
        )
    };

    let first = mapping
        .deploy_manifest(deploy(EXAMPLE.into(), "commit 1"))
        .await
        .expect("the example deploys")
        .into_inner();
    assert!(first.created);
    let v1 = first.manifest.unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.objects, ["contact", "deal"]);
    assert_eq!(v1.content_hash.len(), 64);

    let again = mapping
        .deploy_manifest(deploy(EXAMPLE.into(), "commit 1 again"))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created, "identical content keeps the version");
    assert_eq!(again.manifest.unwrap().version, 1);

    let changed = EXAMPLE
        .replace("schedule: 15m", "schedule: 30m")
        .replace("      phone:\n", "      mobile:\n");
    let second = mapping
        .deploy_manifest(deploy(changed, "commit 2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.manifest.unwrap().version, 2);

    let listed = mapping
        .list_manifest_versions(suite.as_tenant(
            &project,
            &tenant,
            ListManifestVersionsRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner();
    let versions: Vec<(i64, &str)> = listed
        .manifests
        .iter()
        .map(|m| (m.version, m.description.as_str()))
        .collect();
    assert_eq!(versions, [(2, "commit 2"), (1, "commit 1")]);

    let diff = mapping
        .diff_manifest_versions(suite.as_tenant(
            &project,
            &tenant,
            DiffManifestVersionsRequest {
                from_version: 1,
                to_version: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let changes: Vec<(ManifestChangeKind, &str)> = diff
        .changes
        .iter()
        .map(|c| (c.kind(), c.path.as_str()))
        .collect();
    assert!(changes.contains(&(ManifestChangeKind::Modified, "objects.contact")));
    assert!(changes.contains(&(ManifestChangeKind::Added, "objects.contact.fields.mobile")));
    assert!(changes.contains(&(ManifestChangeKind::Removed, "objects.contact.fields.phone")));
    assert!(
        diff.unified_diff.contains("+    schedule: 30m"),
        "{}",
        diff.unified_diff
    );

    // A bad manifest: refused, each violation located.
    let bad = EXAMPLE.replace("type: phone", "type: fone");
    let line = bad.lines().position(|l| l.contains("type: fone")).unwrap() + 1;
    let refused = mapping
        .deploy_manifest(deploy(bad.clone(), "broken"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(crate::reason(&refused), "INVALID_ARGUMENT");
    let details = refused.get_error_details();
    let violations = &details
        .bad_request()
        .expect("field violations")
        .field_violations;
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].field, "content");
    assert_eq!(violations[0].reason, "INVALID_TYPE");
    assert!(
        violations[0]
            .description
            .starts_with(&format!("{line}:9: objects.contact.fields.phone.type:")),
        "{}",
        violations[0].description
    );

    let checked = mapping
        .validate_manifest(suite.as_tenant(
            &project,
            &tenant,
            ValidateManifestRequest { content: bad },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!checked.valid);
    assert_eq!(
        (checked.errors[0].line, checked.errors[0].column),
        (line as i32, 9)
    );
    assert_eq!(checked.errors[0].code, "invalid_type");

    // Another project sees none of it.
    let other = mapping
        .list_manifest_versions(suite.as_tenant(
            &unique_tenant("proj"),
            &tenant,
            ListManifestVersionsRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(other.manifests.is_empty());
    suite.stop().await;
}

async fn field_mappings_compile_to_a_plan_preview_and_stay_with_their_tenant(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = spawn_suite(storage).await;
    let project = unique_tenant("proj");
    let (acme, globex) = (unique_tenant("acme"), unique_tenant("globex"));
    let conn = crate::mapping_schema::connect_salesforce(&suite, &sandboxes, &project, &acme).await;
    crm::deploy_manifest(&suite.caller(&project, &acme), EXAMPLE).await;
    let mut mapping = MappingServiceClient::new(suite.gateway());

    let contact = ObjectMapping {
        object: "contact".into(),
        provider_object: "Contact".into(),
        fields: vec![
            map("email", "Email", MappingDirection::Both),
            map("last_name", "LastName", MappingDirection::Both),
            FieldMapping {
                model_fields: vec!["full_name".into()],
                provider_fields: vec!["FirstName".into(), "LastName".into()],
                direction: MappingDirection::Inbound as i32,
                inbound_transforms: vec![
                    Transform {
                        kind: Some(pb::Kind::Concatenate(pb::Concatenate {
                            separator: " ".into(),
                            skip_empty: true,
                        })),
                    },
                    Transform {
                        kind: Some(pb::Kind::ChangeCase(pb::ChangeCase {
                            case: pb::Case::Upper as i32,
                        })),
                    },
                ],
                ..FieldMapping::default()
            },
        ],
    };

    // Violations name their field: an unknown model field, a write guard, provider fields
    // the org does not have.
    let mut bad = contact.clone();
    bad.fields
        .push(map("shoe_size", "Shoe__c", MappingDirection::Inbound));
    bad.fields
        .push(map("full_name", "Name__c", MappingDirection::Outbound));
    let checked = mapping
        .validate_field_mappings(suite.as_tenant(
            &project,
            &acme,
            ValidateFieldMappingsRequest {
                connection_id: conn.clone(),
                objects: vec![bad.clone()],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!checked.valid);
    let kinds: Vec<(i32, ViolationKind, &str)> = checked
        .violations
        .iter()
        .map(|v| (v.mapping_index, v.kind(), v.model_field.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (3, ViolationKind::ModelFieldUnknown, "shoe_size"),
            (3, ViolationKind::ProviderFieldUnknown, "shoe_size"),
            (4, ViolationKind::NotWritable, "full_name"),
            (4, ViolationKind::ProviderFieldUnknown, "full_name"),
        ]
    );
    assert_eq!(checked.schema_version, 1, "validating described the org");
    let refused = mapping
        .save_field_mappings(suite.as_tenant(
            &project,
            &acme,
            SaveFieldMappingsRequest {
                connection_id: conn.clone(),
                objects: vec![bad],
            },
        ))
        .await
        .unwrap_err();
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
            "objects[0].fields[3].model_fields[0]",
            "objects[0].fields[3].provider_fields[0]",
            "objects[0].fields[4]",
            "objects[0].fields[4].provider_fields[0]",
        ]
    );

    let saved = mapping
        .save_field_mappings(suite.as_tenant(
            &project,
            &acme,
            SaveFieldMappingsRequest {
                connection_id: conn.clone(),
                objects: vec![contact],
            },
        ))
        .await
        .expect("valid mappings save")
        .into_inner();
    assert_eq!(saved.plan_version, 1);
    let plan = saved.plan.unwrap();
    assert_eq!(plan.manifest_version, 1);
    assert_eq!(plan.objects[0].inbound.len(), 3);
    assert_eq!(plan.objects[0].outbound.len(), 2);

    let fetched = mapping
        .get_mapping_plan(suite.as_tenant(
            &project,
            &acme,
            GetMappingPlanRequest {
                connection_id: conn.clone(),
                plan_version: 1,
                include_broken: false,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    assert_eq!(fetched.objects, plan.objects);

    let preview = mapping
        .preview_mapping(
            suite.as_tenant(
                &project,
                &acme,
                PreviewMappingRequest {
                    connection_id: conn.clone(),
                    mapping: Some(PreviewSource::PlanVersion(1)),
                    object: "contact".into(),
                    direction: MappingDirection::Inbound as i32,
                    record: Some(Record {
                        object: "Contact".into(),
                        id: "003000000000001".into(),
                        fields: [
                            ("Email", text("ada@example.com")),
                            ("FirstName", text("Ada")),
                            ("LastName", text("Lovelace")),
                            ("SSN__c", text("never mapped")),
                        ]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                        ..Record::default()
                    }),
                },
            ),
        )
        .await
        .unwrap()
        .into_inner();
    assert!(preview.issues.is_empty(), "{:?}", preview.issues);
    let record = preview.record.unwrap();
    assert_eq!(record.object, "contact");
    assert_eq!(record.fields["full_name"], text("ADA LOVELACE"));
    assert_eq!(record.fields["email"], text("ada@example.com"));
    assert_eq!(record.fields.len(), 3, "unmapped fields are never written");

    // A draft, outbound: model record to provider record, with its transforms.
    let draft = |fields: Vec<FieldMapping>| ObjectMapping {
        object: "contact".into(),
        provider_object: "Contact".into(),
        fields,
    };
    let upper = FieldMapping {
        outbound_transforms: vec![Transform {
            kind: Some(pb::Kind::ChangeCase(pb::ChangeCase {
                case: pb::Case::Upper as i32,
            })),
        }],
        ..map("email", "Email", MappingDirection::Outbound)
    };
    let preview =
        |mapping: ObjectMapping, direction: MappingDirection, fields: Vec<(&str, &str)>| {
            suite.as_tenant(
                &project,
                &acme,
                PreviewMappingRequest {
                    connection_id: conn.clone(),
                    mapping: Some(PreviewSource::Draft(mapping)),
                    object: "contact".into(),
                    direction: direction as i32,
                    record: Some(Record {
                        object: "contact".into(),
                        fields: fields
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), text(v)))
                            .collect(),
                        ..Record::default()
                    }),
                },
            )
        };
    let outbound = mapping
        .preview_mapping(preview(
            draft(vec![upper]),
            MappingDirection::Outbound,
            vec![("email", "ada@example.com"), ("last_name", "Lovelace")],
        ))
        .await
        .unwrap()
        .into_inner();
    let record = outbound.record.unwrap();
    assert_eq!(record.object, "Contact");
    assert_eq!(record.fields.len(), 1);
    assert_eq!(record.fields["Email"], text("ADA@EXAMPLE.COM"));

    // A field that cannot be converted is reported and left out; the rest maps.
    let as_number = FieldMapping {
        inbound_transforms: vec![Transform {
            kind: Some(pb::Kind::FormatDate(pb::FormatDate {
                input_format: "%m/%d/%Y".into(),
                output_format: "%Y".into(),
                time_zone: String::new(),
            })),
        }],
        ..map("last_name", "LastName", MappingDirection::Inbound)
    };
    let inbound = mapping
        .preview_mapping(preview(
            draft(vec![
                map("email", "Email", MappingDirection::Inbound),
                as_number,
            ]),
            MappingDirection::Inbound,
            vec![("Email", "ada@example.com"), ("LastName", "Lovelace")],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inbound.issues.len(), 1, "{:?}", inbound.issues);
    assert_eq!(inbound.issues[0].target_field, "last_name");
    assert!(inbound.issues[0].message.contains("Lovelace"));
    let record = inbound.record.unwrap();
    assert_eq!(record.fields.len(), 1);
    assert!(record.fields.contains_key("email"));

    let installation = mapping
        .get_installation(suite.as_tenant(
            &project,
            &acme,
            GetInstallationRequest {
                connection_id: conn.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .installation
        .unwrap();
    assert_eq!(installation.plan_version, 1);
    // `deal` is enabled by default and has no mappings yet.
    assert_eq!(installation.state(), InstallationState::NeedsAttention);

    // Turning `deal` off leaves only mapped objects: READY. Unknown objects are refused.
    let selections = |deal: &str| {
        vec![
            ObjectSelection {
                object: "contact".into(),
                enabled: true,
                provider_object: "Contact".into(),
                optional_fields: vec!["first_name".into(), "full_name".into()],
                ..ObjectSelection::default()
            },
            ObjectSelection {
                object: deal.into(),
                enabled: false,
                ..ObjectSelection::default()
            },
        ]
    };
    let update = |objects| {
        suite.as_tenant(
            &project,
            &acme,
            UpdateInstallationRequest {
                installation: Some(Installation {
                    connection_id: conn.clone(),
                    objects,
                    ..Installation::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["objects".into()],
                }),
            },
        )
    };
    let refused = mapping
        .update_installation(update(selections("invoice")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        refused
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations[0]
            .field,
        "installation.objects[1].object"
    );
    let updated = mapping
        .update_installation(update(selections("deal")))
        .await
        .unwrap()
        .into_inner()
        .installation
        .unwrap();
    assert_eq!(updated.state(), InstallationState::Ready);
    assert_eq!(updated.plan_version, 1);
    assert!(updated.update_time.is_some());

    assert_eq!(
        installation.provider(),
        syncline_proto::common::v1::Provider::Salesforce,
        "the provider comes from auth-vault"
    );

    // Another tenant of the same project: no plan, no installation of acme's.
    let foreign = mapping
        .get_mapping_plan(suite.as_tenant(
            &project,
            &globex,
            GetMappingPlanRequest {
                connection_id: conn.clone(),
                plan_version: 0,
                include_broken: false,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    let theirs = mapping
        .get_installation(suite.as_tenant(
            &project,
            &globex,
            GetInstallationRequest {
                connection_id: conn.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(theirs.code(), Code::NotFound, "not their connection");
    let preview = mapping
        .preview_mapping(suite.as_tenant(
            &project,
            &globex,
            PreviewMappingRequest {
                connection_id: conn.clone(),
                mapping: Some(PreviewSource::PlanVersion(1)),
                object: "contact".into(),
                direction: MappingDirection::Inbound as i32,
                record: Some(Record::default()),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(preview.code(), Code::NotFound);
    suite.stop().await;
    sandboxes.stop().await;
}

crate::both_storages!(
    manifests_deploy_list_diff_and_refuse_bad_ones_with_positions,
    field_mappings_compile_to_a_plan_preview_and_stay_with_their_tenant,
);
