//! Connector descriptions as `syncline.schema.v1` messages, and the catalog's content hash.

use prost::Message;
use sha2::{Digest, Sha256};
use syncline_connectors::{FieldDescription, ObjectDescription};
use syncline_proto::schema::v1::{Field, ObjectSchema, PicklistValue};

/// The stored form of a described object.
pub fn object(described: ObjectDescription) -> ObjectSchema {
    let o = described.object;
    let fields: Vec<Field> = described.fields.into_iter().map(field).collect();
    ObjectSchema {
        name: o.name,
        label: o.label,
        plural_label: o.plural_label,
        custom: o.custom,
        createable: o.createable,
        updateable: o.updateable,
        deletable: o.deletable,
        queryable: o.queryable,
        change_events_supported: o.change_events_supported,
        field_count: i32::try_from(fields.len()).unwrap_or(i32::MAX),
        fields,
    }
}

fn field(f: FieldDescription) -> Field {
    Field {
        name: f.name,
        label: f.label,
        native_type: f.native_type,
        r#type: f.field_type as i32,
        custom: f.custom,
        createable: f.createable,
        updateable: f.updateable,
        nillable: f.nillable,
        unique: f.unique,
        external_id: f.external_id,
        calculated: f.calculated,
        reference_targets: f.reference_targets,
        relationship_name: f.relationship_name,
        picklist_values: f
            .picklist_values
            .into_iter()
            .map(|p| PicklistValue {
                value: p.value,
                label: p.label,
                active: p.active,
                default_value: p.default_value,
            })
            .collect(),
        length: f.length,
        precision: f.precision,
        scale: f.scale,
        default_value: f.default_value.map(value),
        description: f.description,
    }
}

fn value(v: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(value).collect(),
        }),
        serde_json::Value::Object(m) => Kind::StructValue(prost_types::Struct {
            fields: m.into_iter().map(|(k, v)| (k, value(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// Hex SHA-256 of the catalog: each object's encoding (objects ordered by name), length-
/// prefixed. Equal catalogs hash equal (prost encodes fields in order; maps are ordered).
pub fn content_hash(objects: &[ObjectSchema]) -> String {
    let mut sorted: Vec<&ObjectSchema> = objects.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut hasher = Sha256::new();
    for o in sorted {
        let bytes = o.encode_to_vec();
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(&bytes);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
