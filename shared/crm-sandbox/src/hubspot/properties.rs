//! `/crm/v3/properties/{objectType}` and `/crm-object-schemas/v3/schemas` (also served at
//! `/crm/v3/schemas`): property definitions and object schemas, custom objects included.

use super::catalog::{
    ObjectKind, ObjectTypeDef, PropOption, PropType, PropertyDef, custom_system_properties,
    custom_type, iso_ms, new_property,
};
use super::errors::{ApiError, json_of};
use super::objects::resolve;
use super::server::require_scope;
use super::state::{Caller, read, write};
use super::store::{ObjectStore, PortalData, now_ms};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A property as the properties API serialises it.
#[must_use]
pub fn property_json(p: &PropertyDef) -> Value {
    let mut v = json!({
        "updatedAt": iso_ms(p.updated_at_ms),
        "createdAt": iso_ms(p.created_at_ms),
        "name": p.name,
        "label": p.label,
        "type": p.ptype.as_str(),
        "fieldType": p.field_type,
        "description": p.description,
        "groupName": p.group_name,
        "options": p.options,
        "displayOrder": p.display_order,
        "calculated": false,
        "externalOptions": false,
        "hasUniqueValue": p.has_unique_value,
        "hidden": p.hidden,
        "modificationMetadata": {
            "archivable": !p.read_only_value,
            "readOnlyDefinition": p.hubspot_defined || p.read_only_value,
            "readOnlyValue": p.read_only_value,
        },
        "formField": p.form_field,
        "dataSensitivity": "non_sensitive",
    });
    if let Some(o) = v.as_object_mut() {
        if p.hubspot_defined {
            o.insert("hubspotDefined".into(), json!(true));
        } else {
            o.insert("archived".into(), json!(false));
        }
    }
    v
}

fn schema_scope(def: &ObjectTypeDef) -> String {
    let object = match def.kind {
        ObjectKind::Contact => "contacts",
        ObjectKind::Company => "companies",
        ObjectKind::Deal => "deals",
        ObjectKind::Custom => "custom",
    };
    format!("crm.schemas.{object}.read")
}

/// `GET /crm/v3/properties/{objectType}`.
pub async fn list(
    Extension(caller): Extension<Caller>,
    Path(object_type): Path<String>,
) -> Response {
    let data = read(&caller.portal.data);
    let idx = match resolve(&data, &object_type) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let def = &data.objects[idx].def;
    if let Err(e) = require_scope(&caller, &schema_scope(def)) {
        return e.into_response();
    }
    let results: Vec<Value> = def.properties.iter().map(property_json).collect();
    json_of(StatusCode::OK, &json!({ "results": results }))
}

fn property_not_found(name: &str, def: &ObjectTypeDef) -> ApiError {
    ApiError::standard(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!(
            "Unable to find property {name} on object type {}",
            def.type_id
        ),
    )
}

/// `GET /crm/v3/properties/{objectType}/{propertyName}`.
pub async fn get_one(
    Extension(caller): Extension<Caller>,
    Path((object_type, name)): Path<(String, String)>,
) -> Response {
    let data = read(&caller.portal.data);
    let idx = match resolve(&data, &object_type) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let def = &data.objects[idx].def;
    match def.property(&name) {
        Some(p) => json_of(StatusCode::OK, &property_json(p)),
        None => property_not_found(&name, def).into_response(),
    }
}

/// A property create or update request.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PropertyInput {
    /// Name (create only).
    pub name: Option<String>,
    /// Label.
    pub label: Option<String>,
    /// Type.
    #[serde(rename = "type")]
    pub ptype: Option<String>,
    /// Field type.
    pub field_type: Option<String>,
    /// Group.
    pub group_name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Options.
    pub options: Option<Vec<PropOption>>,
    /// Unique values.
    pub has_unique_value: Option<bool>,
    /// Hidden.
    pub hidden: Option<bool>,
}

/// Adds a property to an object type (API, admin schema change).
pub fn add_property(
    store: &mut ObjectStore,
    input: &PropertyInput,
    now: i64,
) -> Result<PropertyDef, ApiError> {
    let name = input
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::validation("name is required"))?;
    if store.def.property(&name).is_some() {
        return Err(ApiError::conflict(format!(
            "Property {name} already exists"
        )));
    }
    let ptype = input
        .ptype
        .as_deref()
        .and_then(PropType::parse)
        .ok_or_else(|| {
            ApiError::validation(format!(
                "Invalid property type: {}",
                input.ptype.clone().unwrap_or_default()
            ))
        })?;
    let mut def = new_property(
        &name,
        input.label.as_deref().unwrap_or(&name),
        ptype,
        input.field_type.as_deref(),
        input
            .group_name
            .as_deref()
            .unwrap_or(if store.def.kind == ObjectKind::Custom {
                "custom_properties"
            } else {
                "integrationcreatedproperties"
            }),
        input.options.clone().unwrap_or_default(),
        now,
    );
    def.description = input.description.clone().unwrap_or_default();
    def.has_unique_value = input.has_unique_value.unwrap_or(false);
    def.hidden = input.hidden.unwrap_or(false);
    if def.has_unique_value {
        store.unique.entry(name.clone()).or_default();
    }
    store.def.properties.push(def.clone());
    store.def.updated_at_ms = now;
    Ok(def)
}

/// Changes a property's definition; a type change makes seeded values follow the new type.
pub fn update_property(
    store: &mut ObjectStore,
    name: &str,
    input: &PropertyInput,
    now: i64,
) -> Result<PropertyDef, ApiError> {
    let ptype = match input.ptype.as_deref() {
        Some(t) => Some(
            PropType::parse(t)
                .ok_or_else(|| ApiError::validation(format!("Invalid property type: {t}")))?,
        ),
        None => None,
    };
    let type_id = store.def.type_id.clone();
    let p = store
        .def
        .properties
        .iter_mut()
        .find(|p| p.name == name)
        .ok_or_else(|| {
            ApiError::standard(
                StatusCode::NOT_FOUND,
                "OBJECT_NOT_FOUND",
                format!("Unable to find property {name} on object type {type_id}"),
            )
        })?;
    if p.read_only_value {
        return Err(ApiError::validation(format!(
            "Property {name} is read-only"
        )));
    }
    if let Some(t) = ptype
        && t != p.ptype
    {
        p.ptype = t;
        p.field_type = input
            .field_type
            .clone()
            .unwrap_or_else(|| t.default_field_type().to_owned());
        if p.generator != super::catalog::Gen::None {
            p.generator = super::catalog::Gen::ByType;
        }
        if t == PropType::Bool && input.options.is_none() {
            p.options = vec![
                PropOption {
                    label: "Yes".into(),
                    value: "true".into(),
                    description: String::new(),
                    display_order: 0,
                    hidden: false,
                },
                PropOption {
                    label: "No".into(),
                    value: "false".into(),
                    description: String::new(),
                    display_order: 1,
                    hidden: false,
                },
            ];
        }
    } else if let Some(ft) = &input.field_type {
        p.field_type = ft.clone();
    }
    if let Some(l) = &input.label {
        p.label = l.clone();
    }
    if let Some(g) = &input.group_name {
        p.group_name = g.clone();
    }
    if let Some(d) = &input.description {
        p.description = d.clone();
    }
    if let Some(o) = &input.options {
        p.options = o.clone();
    }
    if let Some(h) = input.hidden {
        p.hidden = h;
    }
    p.updated_at_ms = now;
    let out = p.clone();
    store.def.updated_at_ms = now;
    Ok(out)
}

/// Removes a property (values stay stored but are no longer readable or writable).
pub fn remove_property(store: &mut ObjectStore, name: &str, now: i64) -> Result<(), ApiError> {
    let pos = store.def.properties.iter().position(|p| p.name == name);
    match pos {
        Some(i) if !store.def.properties[i].read_only_value => {
            store.def.properties.remove(i);
            store.unique.remove(name);
            store.def.updated_at_ms = now;
            Ok(())
        }
        Some(_) => Err(ApiError::validation(format!(
            "Property {name} is a HubSpot default property and cannot be deleted"
        ))),
        None => Err(property_not_found(name, &store.def)),
    }
}

fn parse_input(body: &[u8]) -> Result<PropertyInput, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::validation(format!("Invalid input JSON on line 1: {e}")))
}

fn with_store<T>(
    caller: &Caller,
    object_type: &str,
    f: impl FnOnce(&mut ObjectStore) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut data = write(&caller.portal.data);
    let idx = resolve(&data, object_type)?;
    f(&mut data.objects[idx])
}

/// `POST /crm/v3/properties/{objectType}`: 201.
pub async fn create(
    Extension(caller): Extension<Caller>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> Response {
    let result = parse_input(&body)
        .and_then(|input| with_store(&caller, &object_type, |s| add_property(s, &input, now_ms())));
    match result {
        Ok(p) => json_of(StatusCode::CREATED, &property_json(&p)),
        Err(e) => e.into_response(),
    }
}

/// `PATCH /crm/v3/properties/{objectType}/{propertyName}`.
pub async fn update(
    Extension(caller): Extension<Caller>,
    Path((object_type, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let result = parse_input(&body).and_then(|input| {
        with_store(&caller, &object_type, |s| {
            update_property(s, &name, &input, now_ms())
        })
    });
    match result {
        Ok(p) => json_of(StatusCode::OK, &property_json(&p)),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /crm/v3/properties/{objectType}/{propertyName}`: 204.
pub async fn archive(
    Extension(caller): Extension<Caller>,
    Path((object_type, name)): Path<(String, String)>,
) -> Response {
    match with_store(&caller, &object_type, |s| {
        remove_property(s, &name, now_ms())
    }) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

fn association(id: &str, from: &str, to: &str, name: String) -> Value {
    json!({
        "fromObjectTypeId": from,
        "toObjectTypeId": to,
        "name": name,
        "cardinality": "ONE_TO_MANY",
        "inverseCardinality": "ONE_TO_MANY",
        "hasUserEnforcedMaxToObjectIds": false,
        "hasUserEnforcedMaxFromObjectIds": false,
        "maxToObjectIds": 10000,
        "maxFromObjectIds": 10000,
        "id": id,
        "createdAt": null,
        "updatedAt": null,
    })
}

/// An object schema as the schemas API serialises it. Standard objects list no properties
/// (as HubSpot does); custom objects list theirs in full.
#[must_use]
pub fn schema_json(data: &PortalData, def: &ObjectTypeDef) -> Value {
    let custom = def.kind == ObjectKind::Custom;
    let others: Vec<&ObjectTypeDef> = data
        .objects
        .iter()
        .map(|o| &o.def)
        .filter(|d| d.type_id != def.type_id)
        .collect();
    let upper = |d: &ObjectTypeDef| d.singular.to_uppercase().replace(' ', "_");
    let associations: Vec<Value> = others
        .iter()
        .enumerate()
        .filter(|(_, o)| custom || o.kind != ObjectKind::Custom)
        .map(|(i, o)| {
            association(
                &(if custom { 100 } else { 270 } + i).to_string(),
                &def.type_id,
                &o.type_id,
                format!("{}_TO_{}", upper(def), upper(o)),
            )
        })
        .collect();
    let properties: Vec<Value> = if custom {
        def.properties.iter().map(property_json).collect()
    } else {
        Vec::new()
    };
    json!({
        "labels": {"singular": def.singular, "plural": def.plural},
        "requiredProperties": def.required_properties,
        "searchableProperties": def.searchable_properties,
        "primaryDisplayProperty": def.primary_display_property,
        "secondaryDisplayProperties": [],
        "description": if custom { Value::Null } else { json!(format!("HubSpot standard object: {}", def.plural)) },
        "allowsSensitiveProperties": !custom,
        "archived": false,
        "restorable": true,
        "metaType": if custom { "PORTAL_SPECIFIC" } else { "HUBSPOT" },
        "id": def.schema_id,
        "fullyQualifiedName": def.fully_qualified_name,
        "createdAt": iso_ms(def.created_at_ms),
        "updatedAt": iso_ms(def.updated_at_ms),
        "createdByUserId": null,
        "updatedByUserId": null,
        "objectTypeId": def.type_id,
        "properties": properties,
        "associations": associations,
        "name": if custom { def.name.clone() } else { def.fully_qualified_name.clone() },
    })
}

/// `GET /crm-object-schemas/v3/schemas`: the portal's custom object schemas.
pub async fn list_schemas(Extension(caller): Extension<Caller>) -> Response {
    if let Err(e) = require_scope(&caller, "crm.schemas.custom.read") {
        return e.into_response();
    }
    let data = read(&caller.portal.data);
    let results: Vec<Value> = data
        .objects
        .iter()
        .filter(|o| o.def.kind == ObjectKind::Custom)
        .map(|o| schema_json(&data, &o.def))
        .collect();
    json_of(StatusCode::OK, &json!({ "results": results }))
}

/// `GET /crm-object-schemas/v3/schemas/{objectType}`.
pub async fn get_schema(
    Extension(caller): Extension<Caller>,
    Path(object_type): Path<String>,
) -> Response {
    let data = read(&caller.portal.data);
    let idx = match resolve(&data, &object_type) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let def = &data.objects[idx].def;
    if let Err(e) = require_scope(&caller, &schema_scope(def)) {
        return e.into_response();
    }
    json_of(StatusCode::OK, &schema_json(&data, def))
}

/// A schema create request.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SchemaInput {
    /// Name.
    pub name: String,
    /// `{singular, plural}`.
    pub labels: Labels,
    /// Primary display property.
    pub primary_display_property: Option<String>,
    /// Required properties.
    pub required_properties: Vec<String>,
    /// Searchable properties.
    pub searchable_properties: Vec<String>,
    /// Properties.
    pub properties: Vec<PropertyInput>,
}

/// Schema labels.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Labels {
    /// Singular.
    pub singular: String,
    /// Plural.
    pub plural: String,
}

/// Creates a custom object type with no records.
pub fn create_custom_object(
    data: &mut PortalData,
    portal_id: u64,
    seed: u64,
    input: &SchemaInput,
) -> Result<usize, ApiError> {
    if input.name.is_empty() || data.type_index(&input.name).is_some() {
        return Err(ApiError::conflict(format!(
            "Object type {} already exists or has no name",
            input.name
        )));
    }
    let now = now_ms();
    let number = 1_000_000
        + crate::common::derive_seed(seed, &[&portal_id.to_string(), &input.name]) % 9_000_000;
    let primary = input.primary_display_property.clone().unwrap_or_else(|| {
        input
            .properties
            .first()
            .and_then(|p| p.name.clone())
            .unwrap_or_default()
    });
    let mut def = custom_type(
        portal_id,
        number,
        &input.name,
        &input.labels.singular,
        &input.labels.plural,
        custom_system_properties(),
        &primary,
    );
    def.required_properties = input.required_properties.clone();
    def.searchable_properties = input.searchable_properties.clone();
    def.created_at_ms = now;
    def.updated_at_ms = now;
    let mut store = ObjectStore::new(def, seed, portal_id, 0);
    for p in &input.properties {
        add_property(&mut store, p, now)?;
    }
    data.objects.push(store);
    Ok(data.objects.len() - 1)
}

/// `POST /crm-object-schemas/v3/schemas`: 201 with the new schema.
pub async fn create_schema(Extension(caller): Extension<Caller>, body: Bytes) -> Response {
    let input: SchemaInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => {
            return ApiError::validation(format!("Invalid input JSON on line 1: {e}"))
                .into_response();
        }
    };
    let mut data = write(&caller.portal.data);
    match create_custom_object(&mut data, caller.portal.id, caller.portal.seed, &input) {
        Ok(idx) => {
            let v = schema_json(&data, &data.objects[idx].def);
            json_of(StatusCode::CREATED, &v)
        }
        Err(e) => e.into_response(),
    }
}
