//! sObject Collections: `/composite/sobjects` create, update, delete, retrieve and upsert
//! (≤ 200 records, `allOrNone` with rollback, results in input order, 200 even when some
//! records fail).

use super::api::{Ctx, json_response};
use super::errors::{RecordError, SfError};
use super::ids::is_well_formed;
use super::schema::ObjectDef;
use super::sobjects::{find_by, render_record};
use super::store::{ChangeOrigin, OrgData, OrgMeta};
use super::value::Val;
use super::write::{Presence, index_of};
use axum::Extension;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Most records per call.
pub const MAX_RECORDS: usize = 200;

fn too_many() -> SfError {
    SfError::new(
        StatusCode::BAD_REQUEST,
        "EXCEEDED_ID_LIMIT",
        "record limit reached. cannot submit more than 200 records into this call",
    )
}

struct Body {
    all_or_none: bool,
    records: Vec<Map<String, Value>>,
}

fn parse(body: &[u8]) -> Result<Body, SfError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| SfError::json_parser(format!("Unexpected character in request body: {e}")))?;
    let all_or_none = v.get("allOrNone").and_then(Value::as_bool).unwrap_or(false);
    let records: Vec<Map<String, Value>> = match v.get("records") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|r| r.as_object().cloned().unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    };
    if records.is_empty() {
        return Err(SfError::new(
            StatusCode::BAD_REQUEST,
            "REQUIRED_FIELD_MISSING",
            "At least 1 record is required",
        ));
    }
    if records.len() > MAX_RECORDS {
        return Err(too_many());
    }
    Ok(Body {
        all_or_none,
        records,
    })
}

/// One record's planned write, decided before anything is applied.
enum Planned {
    Create(Arc<ObjectDef>, Vec<(String, Val)>),
    Update(Arc<ObjectDef>, u64, String, Vec<(String, Val)>),
    Delete(Arc<ObjectDef>, u64, String),
    Failed(Option<String>, RecordError),
}

fn object_for(data: &OrgData, rec: &Map<String, Value>) -> Result<Arc<ObjectDef>, RecordError> {
    let t = rec
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str);
    match t {
        None => Err(RecordError::new(
            "INVALID_TYPE",
            "Must send a concrete entity type.",
            vec![],
        )),
        Some(t) => data.schema.object(t).cloned().ok_or_else(|| {
            RecordError::new(
                "INVALID_TYPE",
                format!("sObject type '{t}' is not supported."),
                vec![],
            )
        }),
    }
}

fn take_id(rec: &mut Map<String, Value>) -> Option<String> {
    let key = rec.keys().find(|k| k.eq_ignore_ascii_case("id")).cloned()?;
    rec.remove(&key).and_then(|v| v.as_str().map(str::to_owned))
}

fn resolve_live(
    data: &OrgData,
    meta: &OrgMeta,
    obj: &ObjectDef,
    id: &str,
) -> Result<u64, RecordError> {
    if !is_well_formed(id) {
        return Err(RecordError::new(
            "MALFORMED_ID",
            format!("malformed id {id}"),
            vec![],
        ));
    }
    let Some(index) = index_of(meta, obj, id) else {
        return Err(RecordError::new(
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
            vec![],
        ));
    };
    match data.presence(obj, index) {
        Presence::Live => Ok(index),
        Presence::Deleted => Err(RecordError::new(
            "ENTITY_IS_DELETED",
            "entity is deleted",
            vec![],
        )),
        Presence::Missing => Err(RecordError::new(
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
            vec![],
        )),
    }
}

fn rolled_back() -> RecordError {
    RecordError::new(
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "Record rolled back because not all records were valid and the request was using AllOrNone header",
        vec![],
    )
}

/// Applies planned writes (all or none as asked) and renders the result array.
fn apply(
    data: &mut OrgData,
    meta: &OrgMeta,
    user: &str,
    plans: Vec<Planned>,
    all_or_none: bool,
    with_created: Option<Vec<bool>>,
) -> Value {
    let any_failed = plans.iter().any(|p| matches!(p, Planned::Failed(..)));
    let mut out = Vec::with_capacity(plans.len());
    for (i, p) in plans.into_iter().enumerate() {
        let created = with_created.as_ref().and_then(|c| c.get(i).copied());
        let fail = |id: Option<String>, e: RecordError| {
            let mut v = json!({"success": false, "errors": [e]});
            if let Some(id) = id {
                v["id"] = Value::String(id);
            }
            v
        };
        let ok = |id: String| {
            let mut v = json!({"id": id, "success": true, "errors": []});
            if let Some(c) = created {
                v["created"] = Value::Bool(c);
            }
            v
        };
        let v = match p {
            Planned::Failed(id, e) => fail(id, e),
            _ if all_or_none && any_failed => fail(None, rolled_back()),
            Planned::Create(obj, values) => {
                ok(data.create(meta, &obj, values, ChangeOrigin::Api, user))
            }
            Planned::Update(obj, index, id, values) => {
                match data.update(meta, &obj, index, values, ChangeOrigin::Api, user) {
                    Ok(()) => ok(id),
                    Err(e) => fail(None, e),
                }
            }
            Planned::Delete(obj, index, id) => {
                match data.delete(meta, &obj, index, ChangeOrigin::Api, user) {
                    Ok(()) => ok(id),
                    Err(e) => fail(Some(id), e),
                }
            }
        };
        out.push(v);
    }
    Value::Array(out)
}

/// `POST /composite/sobjects`: create.
pub async fn create(Extension(ctx): Extension<Ctx>, body: axum::body::Bytes) -> Response {
    let b = match parse(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let org = &ctx.org;
    let mut data = org.write();
    let plans: Vec<Planned> = b
        .records
        .into_iter()
        .map(|mut rec| {
            let obj = match object_for(&data, &rec) {
                Ok(o) => o,
                Err(e) => return Planned::Failed(None, e),
            };
            if take_id(&mut rec).is_some() {
                return Planned::Failed(
                    None,
                    RecordError::new(
                        "INVALID_FIELD",
                        "cannot specify Id in an insert call",
                        vec!["Id".into()],
                    ),
                );
            }
            match OrgData::validate(&data.schema, &obj, &rec, true) {
                Ok(v) => Planned::Create(obj, v),
                Err(e) => Planned::Failed(None, e),
            }
        })
        .collect();
    let result = apply(
        &mut data,
        &org.meta,
        &org.user_id,
        plans,
        b.all_or_none,
        None,
    );
    json_response(StatusCode::OK, result.to_string())
}

/// `PATCH /composite/sobjects`: update.
pub async fn update(Extension(ctx): Extension<Ctx>, body: axum::body::Bytes) -> Response {
    let b = match parse(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let org = &ctx.org;
    let mut data = org.write();
    let plans: Vec<Planned> = b
        .records
        .into_iter()
        .map(|mut rec| {
            let Some(id) = take_id(&mut rec) else {
                return Planned::Failed(
                    None,
                    RecordError::new(
                        "MISSING_ARGUMENT",
                        "Id not specified in an update call",
                        vec![],
                    ),
                );
            };
            let obj = match object_for(&data, &rec) {
                Ok(o) => o,
                Err(e) => return Planned::Failed(None, e),
            };
            let index = match resolve_live(&data, &org.meta, &obj, &id) {
                Ok(i) => i,
                Err(e) => return Planned::Failed(None, e),
            };
            match OrgData::validate(&data.schema, &obj, &rec, false) {
                Ok(v) => Planned::Update(obj, index, id, v),
                Err(e) => Planned::Failed(None, e),
            }
        })
        .collect();
    let result = apply(
        &mut data,
        &org.meta,
        &org.user_id,
        plans,
        b.all_or_none,
        None,
    );
    json_response(StatusCode::OK, result.to_string())
}

/// `DELETE /composite/sobjects?ids=…&allOrNone=…`.
pub async fn delete(
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let ids: Vec<String> = q
        .get("ids")
        .map(|s| {
            s.split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return SfError::new(
            StatusCode::BAD_REQUEST,
            "MISSING_ARGUMENT",
            "ids is not specified",
        )
        .into_response();
    }
    if ids.len() > MAX_RECORDS {
        return too_many().into_response();
    }
    let all_or_none = q.get("allOrNone").is_some_and(|v| v == "true");
    let org = &ctx.org;
    let mut data = org.write();
    let plans: Vec<Planned> = ids
        .into_iter()
        .map(|id| {
            let obj = (id.len() >= 3)
                .then(|| data.schema.object_by_prefix(&id[..3]).cloned())
                .flatten();
            let Some(obj) = obj else {
                return Planned::Failed(
                    Some(id.clone()),
                    RecordError::new("MALFORMED_ID", format!("malformed id {id}"), vec![]),
                );
            };
            match resolve_live(&data, &org.meta, &obj, &id) {
                Ok(i) => Planned::Delete(obj, i, id),
                Err(e) => Planned::Failed(Some(id), e),
            }
        })
        .collect();
    let result = apply(&mut data, &org.meta, &org.user_id, plans, all_or_none, None);
    json_response(StatusCode::OK, result.to_string())
}

/// `GET /composite/sobjects/{Name}?ids=…&fields=…`: retrieve (null for missing ids).
pub async fn retrieve(
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let org = &ctx.org;
    let data = org.read();
    let Some(obj) = p.get("object").and_then(|o| data.schema.object(o)).cloned() else {
        return SfError::not_found().into_response();
    };
    let ids: Vec<&str> = q
        .get("ids")
        .map(|s| s.split(',').filter(|x| !x.is_empty()).collect())
        .unwrap_or_default();
    if ids.len() > 2000 {
        return too_many().into_response();
    }
    let fields = match q.get("fields") {
        Some(list) => {
            let mut idx = Vec::new();
            for f in list.split(',') {
                match obj
                    .fields
                    .iter()
                    .position(|x| x.name.eq_ignore_ascii_case(f.trim()))
                {
                    Some(i) => idx.push(i),
                    None => return SfError::no_such_column(f.trim(), &obj.name).into_response(),
                }
            }
            Some(idx)
        }
        None => {
            return SfError::new(
                StatusCode::BAD_REQUEST,
                "MISSING_ARGUMENT",
                "fields is not specified",
            )
            .into_response();
        }
    };
    let mut out = String::from("[");
    for (n, id) in ids.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        match index_of(&org.meta, &obj, id).filter(|i| data.presence(&obj, *i) == Presence::Live) {
            Some(i) => out.push_str(&render_record(
                &data,
                &org.meta,
                &obj,
                i,
                fields.clone(),
                &ctx.version,
            )),
            None => out.push_str("null"),
        }
    }
    out.push(']');
    json_response(StatusCode::OK, out)
}

/// `PATCH /composite/sobjects/{Name}/{ExtIdField}`: upsert by external id.
pub async fn upsert(
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let b = match parse(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let org = &ctx.org;
    let mut data = org.write();
    let Some(obj) = p.get("object").and_then(|o| data.schema.object(o)).cloned() else {
        return SfError::not_found().into_response();
    };
    let field_name = p.get("field").cloned().unwrap_or_default();
    let Some(field) = obj.field(&field_name).filter(|f| f.external_id).cloned() else {
        return SfError::external_id_field_not_found(&field_name).into_response();
    };
    // Matches per distinct external id value, looked up once per call.
    let mut by_value: HashMap<String, Vec<u64>> = HashMap::new();
    for rec in &b.records {
        if let Some(v) = rec
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&field.name))
            .and_then(|(_, v)| v.as_str())
        {
            let key = v.to_lowercase();
            by_value
                .entry(key)
                .or_insert_with(|| find_by(&data, &org.meta, &obj, &field.name, v));
        }
    }
    let mut created = Vec::new();
    let plans: Vec<Planned> = b
        .records
        .into_iter()
        .map(|mut rec| {
            created.push(false);
            let Some(value) = rec
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&field.name))
                .and_then(|(_, v)| v.as_str())
                .map(str::to_owned)
            else {
                return Planned::Failed(
                    None,
                    RecordError::new(
                        "MISSING_ARGUMENT",
                        format!("{} not specified", field.name),
                        vec![],
                    ),
                );
            };
            match by_value
                .get(&value.to_lowercase())
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                [] => {
                    if let Some(c) = created.last_mut() {
                        *c = true;
                    }
                    match OrgData::validate(&data.schema, &obj, &rec, true) {
                        Ok(v) => Planned::Create(obj.clone(), v),
                        Err(e) => Planned::Failed(None, e),
                    }
                }
                [index] => {
                    rec.retain(|k, _| !k.eq_ignore_ascii_case(&field.name));
                    let id = data
                        .view(&org.meta, &obj, *index)
                        .map(|v| v.id(&obj))
                        .unwrap_or_default();
                    match OrgData::validate(&data.schema, &obj, &rec, false) {
                        Ok(v) => Planned::Update(obj.clone(), *index, id, v),
                        Err(e) => Planned::Failed(None, e),
                    }
                }
                _ => Planned::Failed(
                    None,
                    RecordError::new(
                        "DUPLICATE_EXTERNAL_ID",
                        format!(
                            "{}: more than one record found for external id field: {value}",
                            field.label
                        ),
                        vec![field.name.clone()],
                    ),
                ),
            }
        })
        .collect();
    let result = apply(
        &mut data,
        &org.meta,
        &org.user_id,
        plans,
        b.all_or_none,
        Some(created),
    );
    json_response(StatusCode::OK, result.to_string())
}
