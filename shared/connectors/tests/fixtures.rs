//! Conversions of the recorded CRM responses in `shared/crm-reference`, error classification,
//! and property tests: arbitrary wire input converts or errors, normalised types are total.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::Value;
use syncline_connectors::hubspot::{self, ObjectSchemaWire, PropertiesPage, Property};
use syncline_connectors::salesforce::{self, GlobalDescribe, SObjectDescribe, SfField};
use syncline_connectors::schema::FieldType;
use syncline_connectors::{FieldDescription, ObjectDescription, ObjectSummary};

fn fixture(path: &str) -> Value {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/crm-reference")
        .join(path);
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    serde_json::from_str(&text).unwrap()
}

fn composite_body(path: &str) -> Value {
    fixture(path)["compositeResponse"][0]["body"].clone()
}

fn sf_describe(body: Value) -> ObjectDescription {
    let wire: SObjectDescribe = serde_json::from_value(body).unwrap();
    ObjectDescription::try_from(wire).unwrap()
}

fn field<'a>(o: &'a ObjectDescription, name: &str) -> &'a FieldDescription {
    o.fields.iter().find(|f| f.name == name).unwrap()
}

#[test]
fn salesforce_account_describe_keeps_names_and_references() {
    let account = sf_describe(composite_body(
        "salesforce/describe-account-composite-sampled.json",
    ));
    assert_eq!(account.object.name, "Account");
    assert!(!account.object.custom);
    let created_by = field(&account, "CreatedById");
    assert_eq!(created_by.field_type, FieldType::Reference);
    assert_eq!(created_by.native_type, "reference");
    assert_eq!(created_by.reference_targets, ["User"]);
    assert_eq!(created_by.relationship_name, "CreatedBy");
    assert_eq!(field(&account, "PhotoUrl").field_type, FieldType::Url);
    let name = field(&account, "Name");
    assert_eq!(
        (name.field_type, name.length, name.nillable),
        (FieldType::String, 255, false)
    );
}

#[test]
fn salesforce_custom_object_describe() {
    let object = sf_describe(composite_body(
        "salesforce/describe-custom-object-TestObject15__c-composite.json",
    ));
    assert_eq!(object.object.name, "TestObject15__c");
    assert!(object.object.custom);
    let mailbox = field(&object, "MailBox__c");
    assert!(mailbox.custom);
    assert_eq!(mailbox.field_type, FieldType::Email);
    let interests = field(&object, "Interests__c");
    assert_eq!(interests.field_type, FieldType::MultiPicklist);
    assert!(!interests.picklist_values.is_empty());
    assert!(
        interests
            .picklist_values
            .iter()
            .all(|p| !p.value.is_empty())
    );
}

#[test]
fn salesforce_whizbang_covers_every_common_type() {
    let object = sf_describe(fixture(
        "salesforce/describe-Whizbang-with-custom-fields.json",
    ));
    let types: Vec<(&str, FieldType)> = object
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.field_type))
        .collect();
    for (name, expected) in [
        ("Id", FieldType::Id),
        ("IsDeleted", FieldType::Boolean),
        ("Currency_Field", FieldType::Currency),
        ("Date_Field", FieldType::Date),
        ("DateTime_Field", FieldType::Datetime),
        ("Number_Field", FieldType::Decimal),
        ("Percent_Field", FieldType::Percent),
        ("Phone_Field", FieldType::Phone),
        ("Picklist_Field", FieldType::Picklist),
        ("TextArea_Field", FieldType::TextArea),
    ] {
        assert!(types.contains(&(name, expected)), "{name}: {types:?}");
    }
    let parent = field(&object, "ParentWhizbang__c");
    assert_eq!(parent.relationship_name, "ParentWhizbang__r");
    let picklist = field(&object, "Picklist_Field");
    assert!(picklist.picklist_values.iter().any(|p| p.active));
    let not_updateable = field(&object, "CreateableButNotUpdateableField");
    assert!(not_updateable.createable && !not_updateable.updateable);
}

#[test]
fn salesforce_global_describe_lists_objects() {
    let wire: GlobalDescribe =
        serde_json::from_value(fixture("salesforce/global-describe-sobjects.json")).unwrap();
    let objects = salesforce::objects_of(wire).unwrap();
    assert_eq!(objects[0].name, "Account");
    assert!(objects[0].queryable);
}

#[test]
fn hubspot_contact_properties_convert() {
    let page: PropertiesPage =
        serde_json::from_value(fixture("hubspot/properties-contacts-sampled.json")).unwrap();
    let contacts = ObjectSummary {
        name: "contacts".into(),
        ..ObjectSummary::default()
    };
    let described = hubspot::describe(&contacts, page).unwrap();
    let by_name = |n: &str| described.fields.iter().find(|f| f.name == n);
    assert_eq!(by_name("mobilephone").unwrap().field_type, FieldType::Phone);
    assert_eq!(by_name("address").unwrap().field_type, FieldType::String);
    assert!(!by_name("address").unwrap().custom);
    let company = by_name("associatedcompanyid").unwrap();
    assert_eq!(company.field_type, FieldType::Reference);
    assert_eq!(company.reference_targets, ["COMPANY"]);
    for f in &described.fields {
        assert!(!f.native_type.is_empty());
        if f.calculated {
            assert!(!f.createable && !f.updateable, "{}", f.name);
        }
        match (f.native_type.as_str(), f.field_type) {
            (_, FieldType::Reference) => assert!(!f.reference_targets.is_empty()),
            ("bool", t) => assert_eq!(t, FieldType::Boolean),
            ("object_coordinates", t) => assert_eq!(t, FieldType::Compound),
            ("enumeration", t) => assert!(
                matches!(
                    t,
                    FieldType::Picklist | FieldType::MultiPicklist | FieldType::Boolean
                ),
                "{}",
                f.name
            ),
            ("number", t) => assert_eq!(t, FieldType::Decimal),
            ("datetime", t) => assert_eq!(t, FieldType::Datetime),
            _ => {}
        }
    }
    // Options of `externalOptions` properties (pipelines, owners) live elsewhere; the others
    // carry theirs.
    assert!(
        described
            .fields
            .iter()
            .any(|f| f.field_type == FieldType::Picklist && !f.picklist_values.is_empty())
    );
    let deals: PropertiesPage =
        serde_json::from_value(fixture("hubspot/properties-deals-sampled.json")).unwrap();
    assert!(hubspot::describe(&contacts, deals).is_ok());
}

#[test]
fn hubspot_object_schema_converts() {
    let wire: ObjectSchemaWire =
        serde_json::from_value(fixture("hubspot/schemas-contacts-object-schema.json")).unwrap();
    let summary = ObjectSummary::try_from(wire).unwrap();
    assert_eq!(summary.name, "0-1");
    assert_eq!(
        (summary.label.as_str(), summary.plural_label.as_str()),
        ("Contact", "Contacts")
    );
}

#[test]
fn error_bodies_become_typed_errors() {
    let not_found =
        serde_json::to_vec(&fixture("salesforce/error-404-describe-not-found.json")).unwrap();
    let error = syncline_connectors::error::classify_for_tests(404, None, &not_found, true);
    match error {
        syncline_connectors::ConnectorError::Refused { status, code, .. } => {
            assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));
        }
        other => panic!("{other:?}"),
    }
    let expired = br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;
    assert!(matches!(
        syncline_connectors::error::classify_for_tests(401, None, expired, true),
        syncline_connectors::ConnectorError::Unauthorized { provider_error } if provider_error == "INVALID_SESSION_ID"
    ));
    let limited = br#"{"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT"}"#;
    let error = syncline_connectors::error::classify_for_tests(
        429,
        Some(std::time::Duration::from_secs(3)),
        limited,
        false,
    );
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), Some(std::time::Duration::from_secs(3)));
    // HubSpot's daily policy is the quota, not a burst.
    let daily = br#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","policyName":"DAILY"}"#;
    assert!(matches!(
        syncline_connectors::error::classify_for_tests(429, None, daily, false),
        syncline_connectors::ConnectorError::QuotaExhausted
    ));
    let unavailable = syncline_connectors::error::classify_for_tests(503, None, b"", false);
    assert!(unavailable.is_retryable());
    let scopes = serde_json::to_vec(&fixture("hubspot/error-403-missing-scopes.json")).unwrap();
    match syncline_connectors::error::classify_for_tests(403, None, &scopes, false) {
        syncline_connectors::ConnectorError::Refused { code, .. } => {
            assert_eq!(code, "MISSING_SCOPES")
        }
        other => panic!("{other:?}"),
    }
}

const SF_TYPES: &[&str] = &[
    "id",
    "string",
    "textarea",
    "email",
    "phone",
    "url",
    "int",
    "long",
    "double",
    "currency",
    "percent",
    "boolean",
    "date",
    "datetime",
    "time",
    "picklist",
    "multipicklist",
    "reference",
    "address",
    "location",
    "base64",
    "combobox",
    "encryptedstring",
];

fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn sf_field_json() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just(String::new()), "[A-Za-z_]{1,20}"],
        prop_oneof![proptest::sample::select(SF_TYPES).prop_map(str::to_owned), ".{0,10}"],
        any::<[bool; 8]>(),
        prop_oneof![Just(Value::Null), any::<i64>().prop_map(Value::from), (0i64..100_000).prop_map(Value::from)],
        proptest::collection::vec(("[a-z]{0,6}", any::<bool>()), 0..4),
        proptest::collection::vec("[A-Z][a-z]{0,8}", 0..3),
        json_scalar(),
    )
        .prop_map(|(name, t, flags, length, picks, refs, default)| {
            serde_json::json!({
                "name": name, "type": t, "label": Value::Null,
                "custom": flags[0], "createable": flags[1], "updateable": flags[2],
                "nillable": flags[3], "unique": flags[4], "externalId": flags[5],
                "calculated": flags[6],
                "length": length, "precision": 0, "scale": Value::Null,
                "referenceTo": if flags[7] { Value::Null } else { serde_json::json!(refs) },
                "relationshipName": Value::Null,
                "picklistValues": picks.iter().map(|(v, a)| serde_json::json!({"value": v, "active": a, "label": Value::Null, "defaultValue": false})).collect::<Vec<_>>(),
                "defaultValue": default,
            })
        })
}

fn hs_property_json() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just(String::new()), "[a-z_]{1,20}"],
        prop_oneof![
            proptest::sample::select(&["string", "number", "date", "datetime", "enumeration", "bool", "phone_number", "object_coordinates", "json"][..]).prop_map(str::to_owned),
            ".{0,10}"
        ],
        prop_oneof![
            proptest::sample::select(&["text", "textarea", "number", "select", "radio", "checkbox", "booleancheckbox", "calculation_equation", "phonenumber", "html", "file"][..]).prop_map(str::to_owned),
            ".{0,10}"
        ],
        any::<[bool; 4]>(),
        proptest::collection::vec(("[a-z]{0,6}", any::<bool>()), 0..4),
    )
        .prop_map(|(name, t, ft, flags, options)| {
            serde_json::json!({
                "name": name, "type": t, "fieldType": ft, "label": "L",
                "calculated": flags[0], "hasUniqueValue": flags[1],
                "hubspotDefined": if flags[2] { Value::Bool(true) } else { Value::Null },
                "modificationMetadata": {"readOnlyValue": flags[3]},
                "options": options.iter().map(|(v, h)| serde_json::json!({"value": v, "label": v, "hidden": h})).collect::<Vec<_>>(),
            })
        })
}

proptest! {
    #[test]
    fn salesforce_fields_convert_or_error(json in sf_field_json()) {
        let wire: SfField = serde_json::from_value(json.clone()).unwrap();
        match FieldDescription::try_from(wire.clone()) {
            Ok(f) => {
                prop_assert_eq!(&f.name, &wire.name);
                prop_assert!(!f.name.is_empty());
                prop_assert_eq!(&f.native_type, &wire.field_type);
                prop_assert_eq!(f.field_type, salesforce::normalise(&wire.field_type));
                prop_assert_eq!((f.custom, f.createable, f.updateable, f.nillable, f.unique, f.external_id),
                    (wire.custom, wire.createable, wire.updateable, wire.nillable, wire.unique, wire.external_id));
                prop_assert_eq!(f.picklist_values.len(), wire.picklist_values.len());
                prop_assert_eq!(i64::from(f.length), wire.length);
            }
            Err(e) => {
                let bad_picklist = wire.picklist_values.iter().any(|p| p.value.is_empty());
                prop_assert!(
                    wire.name.is_empty() || wire.field_type.is_empty() || bad_picklist
                        || i32::try_from(wire.length).is_err(),
                    "unexpected error {e} for {json}"
                );
            }
        }
    }

    #[test]
    fn hubspot_properties_convert_or_error(json in hs_property_json()) {
        let wire: Property = serde_json::from_value(json).unwrap();
        match FieldDescription::try_from(wire.clone()) {
            Ok(f) => {
                prop_assert_eq!(&f.name, &wire.name);
                prop_assert_eq!(&f.native_type, &wire.data_type);
                prop_assert_eq!(f.custom, wire.hubspot_defined != Some(true));
                prop_assert_eq!(f.createable, !(wire.calculated || wire.modification_metadata.as_ref().is_some_and(|m| m.read_only_value)));
                if matches!(f.field_type, FieldType::Picklist | FieldType::MultiPicklist) {
                    prop_assert_eq!(f.picklist_values.len(), wire.options.len());
                } else {
                    prop_assert!(f.picklist_values.is_empty());
                }
            }
            Err(_) => prop_assert!(wire.name.is_empty() || wire.data_type.is_empty()),
        }
    }

    #[test]
    fn normalised_types_are_total(native in ".{0,16}", field_type in ".{0,16}", name in "[a-z_]{0,12}") {
        let sf = salesforce::normalise(&native);
        prop_assert!(sf != FieldType::Unspecified);
        let hs = hubspot::normalise(&name, &native, &field_type, false);
        prop_assert!(hs != FieldType::Unspecified);
    }
}

#[test]
fn every_known_salesforce_type_has_a_specific_normalised_type() {
    for t in SF_TYPES {
        assert_ne!(salesforce::normalise(t), FieldType::Other, "{t}");
        assert_eq!(
            salesforce::normalise(t),
            salesforce::normalise(&t.to_uppercase())
        );
    }
    assert_eq!(salesforce::normalise("anyType"), FieldType::Other);
}
