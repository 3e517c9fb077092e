//! Comparing two schema versions.

use std::collections::{BTreeMap, BTreeSet};

use syncline_proto::schema::v1::{DriftKind, Field, FieldDrift, ObjectDrift, ObjectSchema};

/// The objects that differ between `before` and `after`, ordered by name; fields ordered by
/// name within each.
pub fn compare(before: &[ObjectSchema], after: &[ObjectSchema]) -> Vec<ObjectDrift> {
    let old: BTreeMap<&str, &ObjectSchema> = before.iter().map(|o| (o.name.as_str(), o)).collect();
    let new: BTreeMap<&str, &ObjectSchema> = after.iter().map(|o| (o.name.as_str(), o)).collect();
    let names: BTreeSet<&str> = old.keys().chain(new.keys()).copied().collect();
    let mut out = Vec::new();
    for name in names {
        match (old.get(name), new.get(name)) {
            (Some(_), None) => out.push(ObjectDrift {
                object_name: name.to_owned(),
                kind: DriftKind::Removed as i32,
                fields: Vec::new(),
            }),
            (None, Some(_)) => out.push(ObjectDrift {
                object_name: name.to_owned(),
                kind: DriftKind::Added as i32,
                fields: Vec::new(),
            }),
            (Some(a), Some(b)) => {
                let fields = compare_fields(&a.fields, &b.fields);
                if !fields.is_empty() || attributes(a) != attributes(b) {
                    out.push(ObjectDrift {
                        object_name: name.to_owned(),
                        kind: DriftKind::AttributesChanged as i32,
                        fields,
                    });
                }
            }
            (None, None) => {}
        }
    }
    out
}

/// An object's own attributes, without its fields.
fn attributes(o: &ObjectSchema) -> ObjectSchema {
    ObjectSchema {
        fields: Vec::new(),
        field_count: 0,
        ..o.clone()
    }
}

fn compare_fields(before: &[Field], after: &[Field]) -> Vec<FieldDrift> {
    let old: BTreeMap<&str, &Field> = before.iter().map(|f| (f.name.as_str(), f)).collect();
    let new: BTreeMap<&str, &Field> = after.iter().map(|f| (f.name.as_str(), f)).collect();
    let names: BTreeSet<&str> = old.keys().chain(new.keys()).copied().collect();
    let mut out = Vec::new();
    for name in names {
        let (a, b) = (old.get(name).copied(), new.get(name).copied());
        let mut drift = FieldDrift {
            field_name: name.to_owned(),
            before: a.cloned(),
            after: b.cloned(),
            ..FieldDrift::default()
        };
        match (a, b) {
            (Some(_), None) => drift.kinds.push(DriftKind::Removed as i32),
            (None, Some(_)) => drift.kinds.push(DriftKind::Added as i32),
            (Some(a), Some(b)) => {
                if a.r#type != b.r#type || a.native_type != b.native_type {
                    drift.kinds.push(DriftKind::Retyped as i32);
                }
                let active = |f: &Field| -> BTreeSet<String> {
                    f.picklist_values
                        .iter()
                        .filter(|p| p.active)
                        .map(|p| p.value.clone())
                        .collect()
                };
                let (va, vb) = (active(a), active(b));
                drift.added_picklist_values = vb.difference(&va).cloned().collect();
                drift.removed_picklist_values = va.difference(&vb).cloned().collect();
                if !drift.added_picklist_values.is_empty()
                    || !drift.removed_picklist_values.is_empty()
                {
                    drift.kinds.push(DriftKind::PicklistChanged as i32);
                }
                let rest = |f: &Field| Field {
                    r#type: 0,
                    native_type: String::new(),
                    picklist_values: Vec::new(),
                    ..f.clone()
                };
                if rest(a) != rest(b) {
                    drift.kinds.push(DriftKind::AttributesChanged as i32);
                }
            }
            (None, None) => {}
        }
        if !drift.kinds.is_empty() {
            out.push(drift);
        }
    }
    out
}

/// Lowercase names of `kinds`, comma-separated, for the drift table.
pub fn kinds_text(kinds: &[i32]) -> String {
    kinds
        .iter()
        .filter_map(|k| DriftKind::try_from(*k).ok())
        .map(|k| match k {
            DriftKind::Added => "added",
            DriftKind::Removed => "removed",
            DriftKind::Retyped => "retyped",
            DriftKind::PicklistChanged => "picklist_changed",
            DriftKind::AttributesChanged => "attributes_changed",
            DriftKind::Unspecified => "unspecified",
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether a mapping using the field (or object) may break: it was removed or retyped.
pub fn is_breaking(kinds: &[i32]) -> bool {
    kinds
        .iter()
        .any(|k| *k == DriftKind::Removed as i32 || *k == DriftKind::Retyped as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncline_proto::schema::v1::{FieldType, PicklistValue};

    fn field(name: &str, t: FieldType, native: &str) -> Field {
        Field {
            name: name.into(),
            native_type: native.into(),
            r#type: t as i32,
            ..Field::default()
        }
    }

    fn pick(values: &[(&str, bool)]) -> Vec<PicklistValue> {
        values
            .iter()
            .map(|(v, active)| PicklistValue {
                value: (*v).into(),
                label: (*v).into(),
                active: *active,
                default_value: false,
            })
            .collect()
    }

    fn object(name: &str, fields: Vec<Field>) -> ObjectSchema {
        ObjectSchema {
            name: name.into(),
            fields,
            ..ObjectSchema::default()
        }
    }

    #[test]
    fn equal_versions_have_no_drift() {
        let v = vec![object(
            "Account",
            vec![field("Name", FieldType::String, "string")],
        )];
        assert!(compare(&v, &v).is_empty());
    }

    #[test]
    fn every_kind_is_found() {
        let mut status = field("Status__c", FieldType::Picklist, "picklist");
        status.picklist_values = pick(&[("Open", true), ("Closed", true), ("Old", true)]);
        let mut status2 = status.clone();
        status2.picklist_values = pick(&[
            ("Open", true),
            ("Closed", true),
            ("Old", false),
            ("New", true),
        ]);
        let mut name2 = field("Name", FieldType::String, "string");
        name2.nillable = true;
        let before = vec![
            object(
                "Account",
                vec![
                    field("Name", FieldType::String, "string"),
                    field("Score__c", FieldType::Decimal, "double"),
                    field("Gone__c", FieldType::String, "string"),
                    status,
                ],
            ),
            object("Old__c", vec![]),
        ];
        let after = vec![
            object(
                "Account",
                vec![
                    name2,
                    field("Score__c", FieldType::String, "string"),
                    field("New__c", FieldType::Date, "date"),
                    status2,
                ],
            ),
            object("New__c", vec![]),
        ];
        let drift = compare(&before, &after);
        let names: Vec<_> = drift
            .iter()
            .map(|d| (d.object_name.as_str(), d.kind))
            .collect();
        assert_eq!(
            names,
            [
                ("Account", DriftKind::AttributesChanged as i32),
                ("New__c", DriftKind::Added as i32),
                ("Old__c", DriftKind::Removed as i32)
            ]
        );
        let fields: Vec<_> = drift[0]
            .fields
            .iter()
            .map(|f| (f.field_name.as_str(), kinds_text(&f.kinds)))
            .collect();
        assert_eq!(
            fields,
            [
                ("Gone__c", "removed".to_owned()),
                ("Name", "attributes_changed".to_owned()),
                ("New__c", "added".to_owned()),
                ("Score__c", "retyped".to_owned()),
                ("Status__c", "picklist_changed".to_owned()),
            ]
        );
        let status = &drift[0].fields[4];
        assert_eq!(status.added_picklist_values, ["New"]);
        assert_eq!(status.removed_picklist_values, ["Old"]);
        assert!(is_breaking(&drift[0].fields[0].kinds));
        assert!(!is_breaking(&drift[0].fields[1].kinds));
    }
}
