#![allow(clippy::unwrap_used)]

use super::*;
use crate::mappings::{compile_plan, default_installation, validate_with_schema};
use crate::remote::SchemaSnapshot;
use syncline_proto::mapping::v1::transform as pb;
use syncline_proto::mapping::v1::{FieldMapping, ObjectMapping};
use syncline_proto::schema::v1::PicklistValue;

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
        values: [planned, active]
      code:
        type: string
        write: on_create
      created:
        type: datetime
"#;

fn doc() -> crate::manifest::ManifestDoc {
    crate::manifest::validate(MANIFEST).doc.unwrap()
}

fn field(name: &str, ty: FieldType, writable: bool) -> Field {
    Field {
        name: name.into(),
        r#type: ty as i32,
        native_type: type_word(ty).into(),
        custom: name.ends_with("__c"),
        createable: writable,
        updateable: writable,
        ..Field::default()
    }
}

/// `Project__c` as the org describes it.
fn project() -> ObjectSchema {
    let mut status = field("Status__c", FieldType::Picklist, true);
    status.picklist_values = ["Planned", "In Progress", "Retired"]
        .iter()
        .map(|v| PicklistValue {
            value: (*v).into(),
            label: (*v).into(),
            active: *v != "Retired",
            default_value: false,
        })
        .collect();
    let mut formula = field("Risk_Band__c", FieldType::String, false);
    formula.calculated = true;
    let mut code = field("Project_Code__c", FieldType::String, false);
    code.createable = true;
    ObjectSchema {
        name: "Project__c".into(),
        custom: true,
        fields: vec![
            field("Name", FieldType::String, true),
            field("Deal_Risk_Score__c", FieldType::Decimal, true),
            status,
            formula,
            code,
            field("CreatedDate", FieldType::Datetime, false),
        ],
        ..ObjectSchema::default()
    }
}

fn snapshot(object: Option<ObjectSchema>) -> SchemaSnapshot {
    SchemaSnapshot {
        version: 3,
        objects: [("Project__c".to_owned(), object)].into_iter().collect(),
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

fn with(
    mut mapping: FieldMapping,
    inbound: Vec<pb::Kind>,
    outbound: Vec<pb::Kind>,
) -> FieldMapping {
    let wrap = |k: Vec<pb::Kind>| k.into_iter().map(|k| Transform { kind: Some(k) }).collect();
    mapping.inbound_transforms = wrap(inbound);
    mapping.outbound_transforms = wrap(outbound);
    mapping
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

fn project_mapping(fields: Vec<FieldMapping>) -> ObjectMapping {
    let mut all = vec![map("name", "Name", MappingDirection::Both)];
    all.extend(fields);
    ObjectMapping {
        object: "project".into(),
        provider_object: "Project__c".into(),
        fields: all,
    }
}

fn check(fields: Vec<FieldMapping>) -> Vec<(i32, ViolationKind, String)> {
    let doc = doc();
    let installation = default_installation("conn_1", 1, &doc);
    let found = validate_with_schema(
        &doc,
        &installation,
        &[project_mapping(fields)],
        &snapshot(Some(project())),
    );
    found
        .into_iter()
        .map(|v| (v.mapping_index, v.kind(), v.provider_field))
        .collect()
}

#[test]
fn custom_fields_of_a_custom_object_that_fit_are_valid() {
    let found = check(vec![
        map("risk_score", "Deal_Risk_Score__c", MappingDirection::Both),
        with(
            map("status", "Status__c", MappingDirection::Both),
            vec![picklist(&[
                ("Planned", "planned"),
                ("In Progress", "active"),
            ])],
            vec![picklist(&[
                ("planned", "Planned"),
                ("active", "In Progress"),
            ])],
        ),
        map("created", "CreatedDate", MappingDirection::Inbound),
        map("code", "Project_Code__c", MappingDirection::Outbound),
    ]);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn unknown_fields_and_objects_are_named() {
    let found = check(vec![map(
        "risk_score",
        "Territory__c",
        MappingDirection::Both,
    )]);
    assert_eq!(
        found,
        [(
            1,
            ViolationKind::ProviderFieldUnknown,
            "Territory__c".into()
        )],
        "a field missing both ways is reported once"
    );
    let doc = doc();
    let installation = default_installation("conn_1", 1, &doc);
    let missing = validate_with_schema(
        &doc,
        &installation,
        &[project_mapping(vec![])],
        &snapshot(None),
    );
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].kind(), ViolationKind::ProviderFieldUnknown);
    assert!(
        missing[0].message.contains("`Project__c`"),
        "{}",
        missing[0].message
    );
}

#[test]
fn types_must_fit_after_the_transforms() {
    // A number into a text field needs a coercion; with one it is fine.
    assert_eq!(
        check(vec![map(
            "risk_label",
            "Deal_Risk_Score__c",
            MappingDirection::Inbound
        )]),
        [(
            1,
            ViolationKind::TypeIncompatible,
            "Deal_Risk_Score__c".into()
        )]
    );
    assert!(
        check(vec![with(
            map(
                "risk_label",
                "Deal_Risk_Score__c",
                MappingDirection::Inbound
            ),
            vec![coerce(FieldType::String)],
            vec![],
        )])
        .is_empty()
    );
    // Outbound: text into a decimal field, unless converted.
    assert_eq!(
        check(vec![map(
            "risk_label",
            "Deal_Risk_Score__c",
            MappingDirection::Outbound
        )]),
        [(
            1,
            ViolationKind::TypeIncompatible,
            "Deal_Risk_Score__c".into()
        )]
    );
    assert!(
        check(vec![with(
            map(
                "risk_label",
                "Deal_Risk_Score__c",
                MappingDirection::Outbound
            ),
            vec![],
            vec![coerce(FieldType::Decimal)],
        )])
        .is_empty()
    );
    // A number formatted as text fits a text field.
    assert!(
        check(vec![with(
            map(
                "risk_label",
                "Deal_Risk_Score__c",
                MappingDirection::Inbound
            ),
            vec![pb::Kind::FormatNumber(pb::FormatNumber {
                as_string: true,
                ..pb::FormatNumber::default()
            })],
            vec![],
        )])
        .is_empty()
    );
}

#[test]
fn outbound_targets_must_be_writable() {
    let found = check(vec![
        map("risk_label", "Risk_Band__c", MappingDirection::Outbound),
        map("created", "CreatedDate", MappingDirection::Both),
        map("risk_label", "Project_Code__c", MappingDirection::Outbound),
    ]);
    assert_eq!(
        found,
        [
            (1, ViolationKind::NotWritable, "Risk_Band__c".into()),
            (2, ViolationKind::NotWritable, "CreatedDate".into()),
        ],
        "createable-only fields take always and on_create writes"
    );
}

#[test]
fn picklist_maps_name_values_the_crm_has() {
    let found = check(vec![with(
        map("status", "Status__c", MappingDirection::Both),
        vec![picklist(&[("Planned", "planned"), ("Active", "active")])],
        vec![picklist(&[("planned", "Planned"), ("active", "Retired")])],
    )]);
    assert_eq!(
        found,
        [
            (1, ViolationKind::PicklistValueUnknown, "Status__c".into()),
            (1, ViolationKind::PicklistValueUnknown, "Status__c".into()),
        ]
    );
    let doc = doc();
    let installation = default_installation("conn_1", 1, &doc);
    let messages: Vec<String> = validate_with_schema(
        &doc,
        &installation,
        &[project_mapping(vec![with(
            map("status", "Status__c", MappingDirection::Both),
            vec![picklist(&[("Active", "active")])],
            vec![picklist(&[("active", "Retired")])],
        )])],
        &snapshot(Some(project())),
    )
    .into_iter()
    .map(|v| v.message)
    .collect();
    assert!(messages[0].contains("`Active`"), "{messages:?}");
    assert!(messages[1].contains("`Retired`") && messages[1].contains("active value"));
}

#[test]
fn drift_that_breaks_a_plan_is_found_and_named() {
    let doc = doc();
    let installation = default_installation("conn_1", 1, &doc);
    let mapping = project_mapping(vec![
        map("risk_score", "Deal_Risk_Score__c", MappingDirection::Both),
        with(
            map("status", "Status__c", MappingDirection::Outbound),
            vec![],
            vec![picklist(&[
                ("planned", "Planned"),
                ("active", "In Progress"),
            ])],
        ),
    ]);
    let (mut plan, stale) = compile_plan(
        &doc,
        &installation,
        &[mapping],
        1,
        &snapshot(Some(project())),
    )
    .unwrap();
    assert!(stale.is_empty());
    assert_eq!(plan.schema_version, 3);
    let outbound = &plan.objects[0].outbound;
    assert_eq!(
        outbound[1].target_type,
        FieldType::Decimal as i32,
        "types from the schema"
    );
    // The same version: nothing to re-check.
    assert!(crate::mappings::plan_drift(&doc, &plan, &snapshot(Some(project()))).is_empty());

    // Version 4: the score became text, a mapped picklist value went away.
    let mut drifted = project();
    drifted.fields[1].r#type = FieldType::String as i32;
    drifted.fields[2]
        .picklist_values
        .retain(|v| v.value != "In Progress");
    let mut later = snapshot(Some(drifted));
    later.version = 4;
    plan.schema_version = 3;
    let drift = crate::mappings::plan_drift(&doc, &plan, &later);
    let named: Vec<(ViolationKind, &str)> = drift
        .iter()
        .map(|v| (v.kind(), v.provider_field.as_str()))
        .collect();
    assert_eq!(
        named,
        [
            (ViolationKind::TypeIncompatible, "Deal_Risk_Score__c"),
            (ViolationKind::TypeIncompatible, "Deal_Risk_Score__c"),
            (ViolationKind::PicklistValueUnknown, "Status__c"),
        ],
        "{drift:#?}"
    );
    assert!(
        drift
            .iter()
            .all(|v| v.mapping_index == -1 && v.object == "project")
    );

    // Removed: named as unknown.
    let mut removed = project();
    removed.fields.retain(|f| f.name != "Deal_Risk_Score__c");
    let mut later = snapshot(Some(removed));
    later.version = 5;
    let drift = crate::mappings::plan_drift(&doc, &plan, &later);
    assert!(
        drift
            .iter()
            .all(|v| v.kind() == ViolationKind::ProviderFieldUnknown)
    );
    assert!(
        drift[0].message.contains("Deal_Risk_Score__c") && drift[0].message.contains("version 5")
    );

    // The installation is flagged: the object names the field, READY is left.
    let mut installation = installation;
    crate::mappings::refresh_state(&mut installation, &doc, Some(&plan));
    assert_eq!(
        installation.state(),
        syncline_proto::mapping::v1::InstallationState::Ready
    );
    crate::mappings::flag_drift(&mut installation, 5, &drift);
    assert_eq!(
        installation.state(),
        syncline_proto::mapping::v1::InstallationState::NeedsAttention
    );
    assert!(installation.objects[0].issue.contains("Deal_Risk_Score__c"));
}

#[test]
fn saved_mappings_drift_broke_are_left_out_of_the_next_plan() {
    let doc = doc();
    let installation = default_installation("conn_1", 1, &doc);
    let mapping = project_mapping(vec![map(
        "risk_score",
        "Deal_Risk_Score__c",
        MappingDirection::Both,
    )]);
    let mut removed = project();
    removed.fields.retain(|f| f.name != "Deal_Risk_Score__c");
    let (plan, stale) =
        compile_plan(&doc, &installation, &[mapping], 2, &snapshot(Some(removed))).unwrap();
    assert!(plan.objects.is_empty());
    assert!(stale[0].1.contains("Deal_Risk_Score__c"), "{stale:?}");
}

#[test]
fn compatibility_is_by_family() {
    use FieldType as T;
    for (from, to, ok) in [
        (T::String, T::Email, true),
        (T::Picklist, T::String, true),
        (T::String, T::MultiPicklist, true),
        (T::Integer, T::Currency, true),
        (T::Date, T::Datetime, true),
        (T::Datetime, T::Time, true),
        (T::Date, T::Time, false),
        (T::Decimal, T::String, false),
        (T::String, T::Integer, false),
        (T::Boolean, T::String, false),
        (T::Boolean, T::Boolean, true),
        (T::Other, T::Boolean, true),
        (T::Compound, T::String, false),
    ] {
        assert_eq!(compatible(from, to), ok, "{from:?} -> {to:?}");
    }
}
