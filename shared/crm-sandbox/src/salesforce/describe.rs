//! Global describe (`/sobjects`) and sObject describe (`/sobjects/{Name}/describe`), with
//! every key the real responses carry.

use super::api::{Ctx, json_response};
use super::errors::SfError;
use super::schema::{FieldDef, FieldType, ObjectDef, Schema};
use axum::Extension;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn urls(version: &str, name: &str) -> Value {
    let b = format!("/services/data/{version}/sobjects/{name}");
    json!({
        "sobject": b,
        "describe": format!("{b}/describe"),
        "rowTemplate": format!("{b}/{{ID}}"),
    })
}

fn object_flags(o: &ObjectDef, version: &str) -> serde_json::Map<String, Value> {
    let user = o.name == "User";
    let v = json!({
        "name": o.name,
        "label": o.label,
        "custom": o.custom,
        "keyPrefix": o.key_prefix,
        "labelPlural": o.label_plural,
        "layoutable": true,
        "activateable": false,
        "updateable": true,
        "urls": urls(version, &o.name),
        "searchable": true,
        "createable": true,
        "customSetting": false,
        "deletable": !user,
        "deprecatedAndHidden": false,
        "feedEnabled": !o.custom,
        "mergeable": matches!(o.name.as_str(), "Account" | "Contact" | "Lead"),
        "queryable": true,
        "replicateable": true,
        "retrieveable": true,
        "undeletable": !user,
        "triggerable": true,
    });
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// The global describe body.
#[must_use]
pub fn global(schema: &Schema, version: &str) -> Value {
    let sobjects: Vec<Value> = schema
        .objects()
        .iter()
        .map(|o| Value::Object(object_flags(o, version)))
        .collect();
    json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects})
}

/// One field's describe.
#[must_use]
pub fn field(f: &FieldDef) -> Value {
    let t = f.ftype;
    let byte_length = if t.is_text() { f.length * 3 } else { 0 };
    let is_id = t == FieldType::Id;
    let filterable = !matches!(t, FieldType::Textarea | FieldType::Address) || f.length <= 255;
    let sortable = !matches!(
        t,
        FieldType::Textarea | FieldType::Multipicklist | FieldType::Address
    );
    let default_value = f
        .picklist
        .iter()
        .find(|p| p.default)
        .map(|p| Value::String(p.value.clone()));
    let picklist: Vec<Value> = f
        .picklist
        .iter()
        .map(|p| json!({"active": true, "defaultValue": p.default, "label": p.label, "validFor": null, "value": p.value}))
        .collect();
    let mut a = json!({
        "aggregatable": sortable,
        "aiPredictionField": false,
        "autoNumber": false,
        "byteLength": byte_length,
        "calculated": false,
        "calculatedFormula": null,
        "cascadeDelete": false,
        "caseSensitive": false,
        "compoundFieldName": compound_parent(&f.name),
        "controllerName": null,
        "createable": f.createable,
        "custom": f.custom,
        "defaultValue": default_value.unwrap_or(if t == FieldType::Boolean { Value::Bool(false) } else { Value::Null }),
        "defaultValueFormula": null,
        "defaultedOnCreate": is_id || t == FieldType::Boolean || f.picklist.iter().any(|p| p.default) || matches!(f.name.as_str(), "OwnerId" | "CreatedDate" | "CreatedById" | "LastModifiedDate" | "LastModifiedById" | "SystemModstamp"),
        "dependentPicklist": false,
        "deprecatedAndHidden": false,
        "digits": 0,
        "displayLocationInDecimal": false,
        "encrypted": false,
        "externalId": f.external_id,
        "extraTypeInfo": match t { FieldType::Textarea => Value::String("plaintextarea".into()), FieldType::Url => Value::String("url".into()), _ => Value::Null },
        "filterable": filterable,
        "filteredLookupInfo": null,
        "formulaTreatNullNumberAsZero": false,
        "groupable": sortable && !matches!(t, FieldType::Double | FieldType::Currency | FieldType::Percent | FieldType::Datetime),
        "highScaleNumber": false,
        "htmlFormatted": false,
        "idLookup": is_id || f.external_id || (f.name_field && t == FieldType::String),
    });
    let b = json!({
        "inlineHelpText": null,
        "label": f.label,
        "length": if t.is_text() { f.length } else { 0 },
        "mask": null,
        "maskType": null,
        "name": f.name,
        "nameField": f.name_field,
        "namePointing": false,
        "nillable": f.nillable,
        "permissionable": f.custom && f.nillable,
        "picklistValues": picklist,
        "polymorphicForeignKey": false,
        "precision": f.precision,
        "queryByDistance": false,
        "referenceTargetField": null,
        "referenceTo": f.reference_to,
        "relationshipName": f.relationship_name,
        "relationshipOrder": null,
        "restrictedDelete": false,
        "restrictedPicklist": matches!(t, FieldType::Picklist | FieldType::Multipicklist) && f.custom,
        "scale": f.scale,
        "searchPrefilterable": false,
        "soapType": t.soap_type(),
        "sortable": sortable,
        "type": t,
        "unique": f.unique,
        "updateable": f.updateable,
        "writeRequiresMasterRead": false,
    });
    if let (Value::Object(am), Value::Object(bm)) = (&mut a, b) {
        am.extend(bm);
    }
    a
}

fn compound_parent(name: &str) -> Value {
    for prefix in ["Billing", "Mailing", "Shipping", ""] {
        for part in ["Street", "City", "State", "PostalCode", "Country"] {
            if name == format!("{prefix}{part}") {
                return Value::String(format!("{prefix}Address"));
            }
        }
    }
    if matches!(name, "FirstName" | "LastName") {
        return Value::String("Name".into());
    }
    Value::Null
}

/// The sObject describe body.
#[must_use]
pub fn object(schema: &Schema, o: &ObjectDef, version: &str) -> Value {
    let mut m = object_flags(o, version);
    let base = format!("/services/data/{version}/sobjects/{}", o.name);
    m.insert(
        "urls".into(),
        json!({
            "compactLayouts": format!("{base}/describe/compactLayouts"),
            "rowTemplate": format!("{base}/{{ID}}"),
            "approvalLayouts": format!("{base}/describe/approvalLayouts"),
            "defaultValues": format!("{base}/defaultValues?recordTypeId&fields"),
            "listviews": format!("{base}/listviews"),
            "describe": format!("{base}/describe"),
            "quickActions": format!("{base}/quickActions"),
            "layouts": format!("{base}/describe/layouts"),
            "sobject": base,
        }),
    );
    let children: Vec<Value> = schema
        .objects()
        .iter()
        .flat_map(|child| {
            child
                .fields
                .iter()
                .filter(|f| f.ftype == FieldType::Reference && f.reference_to.contains(&o.name))
                .filter(|f| {
                    !matches!(
                        f.name.as_str(),
                        "OwnerId" | "CreatedById" | "LastModifiedById"
                    )
                })
                .map(|f| {
                    let rel = if child.custom || f.custom {
                        format!("{}__r", child.label_plural.replace(' ', "_"))
                    } else {
                        child.label_plural.replace(' ', "")
                    };
                    json!({
                        "cascadeDelete": false,
                        "childSObject": child.name,
                        "deprecatedAndHidden": false,
                        "field": f.name,
                        "junctionIdListNames": [],
                        "junctionReferenceTo": [],
                        "relationshipName": rel,
                        "restrictedDelete": false,
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let extra = json!({
        "actionOverrides": [],
        "associateEntityType": null,
        "associateParentEntity": null,
        "childRelationships": children,
        "compactLayoutable": true,
        "deepCloneable": false,
        "defaultImplementation": null,
        "extendedBy": null,
        "extendsInterfaces": null,
        "fields": o.fields.iter().map(field).collect::<Vec<_>>(),
        "hasSubtypes": false,
        "implementedBy": null,
        "implementsInterfaces": null,
        "isInterface": false,
        "isSubtype": false,
        "listviewable": null,
        "lookupLayoutable": null,
        "mruEnabled": !o.custom,
        "namedLayoutInfos": [],
        "networkScopeFieldName": null,
        "recordTypeInfos": [{
            "active": true,
            "available": true,
            "defaultRecordTypeMapping": true,
            "developerName": "Master",
            "master": true,
            "name": "Master",
            "recordTypeId": "012000000000000AAA",
            "urls": {"layout": format!("{base}/describe/layouts/012000000000000AAA")},
        }],
        "searchLayoutable": true,
        "sobjectDescribeOption": "FULL",
        "supportedScopes": [],
    });
    if let Value::Object(e) = extra {
        m.extend(e);
    }
    Value::Object(m)
}

/// `GET /sobjects`.
pub async fn global_handler(Extension(ctx): Extension<Ctx>) -> Response {
    let body = global(&ctx.org.read().schema, &ctx.version);
    json_response(StatusCode::OK, body.to_string())
}

/// `GET /sobjects/{Name}/describe`.
pub async fn describe_handler(
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<std::collections::HashMap<String, String>>,
) -> Response {
    let name = p.get("object").cloned().unwrap_or_default();
    let data = ctx.org.read();
    let Some(o) = data.schema.object(&name) else {
        return SfError::not_found().into_response();
    };
    let body = object(&data.schema, o, &ctx.version).to_string();
    let etag = format!("\"{:08x}\"", crate::common::rng::hash_str(&body) as u32);
    let last_modified = chrono::DateTime::from_timestamp(ctx.org.meta.anchor, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let mut r = json_response(StatusCode::OK, body);
    for (k, v) in [("etag", etag), ("last-modified", last_modified)] {
        if let Ok(v) = axum::http::HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

/// `GET /sobjects/{Name}`: basic information.
pub async fn basic_info_handler(
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<std::collections::HashMap<String, String>>,
) -> Response {
    let name = p.get("object").cloned().unwrap_or_default();
    let data = ctx.org.read();
    let Some(o) = data.schema.object(&name) else {
        return SfError::not_found().into_response();
    };
    let body =
        json!({"objectDescribe": Value::Object(object_flags(o, &ctx.version)), "recentItems": []});
    json_response(StatusCode::OK, body.to_string())
}
