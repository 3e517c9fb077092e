//! sObject rows: read, create, update, delete, upsert by external id, `/updated`, `/deleted`.

use super::api::{Ctx, json_response};
use super::errors::SfError;
use super::ids::is_well_formed;
use super::query::Plan;
use super::schema::{Gen, ObjectDef};
use super::store::{ChangeOrigin, OrgData, OrgMeta};
use super::value::{Val, format_datetime, parse_datetime};
use super::write::{Presence, index_of};
use axum::Extension;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type P = Path<HashMap<String, String>>;
type Q = Query<HashMap<String, String>>;

fn object_of(data: &OrgData, p: &HashMap<String, String>) -> Result<Arc<ObjectDef>, SfError> {
    let name = p.get("object").map(String::as_str).unwrap_or("");
    data.schema
        .object(name)
        .cloned()
        .ok_or_else(SfError::not_found)
}

fn parse_body(body: &[u8]) -> Result<Map<String, Value>, SfError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(SfError::json_parser(
            "Cannot deserialize instance of sObject from non-object value",
        )),
        Err(e) => Err(SfError::json_parser(format!(
            "Unexpected character in request body: {e}"
        ))),
    }
}

fn field_list(obj: &ObjectDef, fields: Option<&String>) -> Result<Option<Vec<usize>>, SfError> {
    let Some(list) = fields.filter(|f| !f.trim().is_empty()) else {
        return Ok(None);
    };
    list.split(',')
        .map(|f| {
            let f = f.trim();
            obj.fields
                .iter()
                .position(|x| x.name.eq_ignore_ascii_case(f))
                .ok_or_else(|| SfError::new(StatusCode::BAD_REQUEST, "INVALID_FIELD", format!("No such column '{f}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", obj.name)))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Renders one record as the REST API does.
#[must_use]
pub fn render_record(
    data: &OrgData,
    meta: &OrgMeta,
    obj: &Arc<ObjectDef>,
    index: u64,
    fields: Option<Vec<usize>>,
    version: &str,
) -> String {
    let plan = Plan::for_fields(obj.clone(), fields);
    let mut out = String::with_capacity(2048);
    plan.write_records(data, meta, version, &[index], &mut out);
    out
}

/// Indices of live records whose `field` equals `value` (case-insensitively).
pub(crate) fn find_by(
    data: &OrgData,
    meta: &OrgMeta,
    obj: &ObjectDef,
    field: &str,
    value: &str,
) -> Vec<u64> {
    let Some(store) = data.objects.get(&obj.name) else {
        return Vec::new();
    };
    let Some(f) = obj.field(field) else {
        return Vec::new();
    };
    if f.name == "Id" {
        return index_of(meta, obj, value)
            .filter(|i| data.presence(obj, *i) == Presence::Live)
            .into_iter()
            .collect();
    }
    let matches = |v: Val| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(value));
    let mut out = Vec::new();
    let untouched = |i: &u64| {
        *i < store.base_count && !store.live.contains_key(i) && !store.deleted.contains_key(i)
    };
    // Generated code values encode their index, so look those up directly instead of
    // scanning every generated record (upserts on million-record orgs stay O(changes)).
    let direct: Option<Vec<u64>> = match &f.generator {
        Gen::Code(p) | Gen::PairCode(p) => {
            let n = value
                .get(..p.len() + 1)
                .filter(|head| head.eq_ignore_ascii_case(&format!("{p}-")))
                .and_then(|_| value[p.len() + 1..].parse::<u64>().ok());
            Some(match (n, &f.generator) {
                (Some(n), Gen::PairCode(_)) => {
                    vec![n.saturating_mul(2), n.saturating_mul(2).saturating_add(1)]
                }
                (Some(n), _) => vec![n],
                (None, _) => vec![],
            })
        }
        _ => None,
    };
    let candidates: Box<dyn Iterator<Item = u64>> = match direct {
        Some(list) => Box::new(list.into_iter()),
        None => Box::new(0..store.base_count),
    };
    for i in candidates.filter(untouched) {
        if let Some(view) = data.view(meta, obj, i)
            && matches(view.get(obj, f))
        {
            out.push(i);
        }
    }
    for (i, r) in &store.live {
        if r.get(&f.name).cloned().is_some_and(matches) {
            out.push(*i);
        }
    }
    out.sort_unstable();
    out
}

/// `GET /sobjects/{Name}/{Id}` — also `GET /sobjects/{Name}/{Field}/{Value}` by external id.
pub async fn get_record(Extension(ctx): Extension<Ctx>, Path(p): P, Query(q): Q) -> Response {
    let org = &ctx.org;
    let data = org.read();
    let obj = match object_of(&data, &p) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let fields = match field_list(&obj, q.get("fields")) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let index = if let (Some(field), Some(value)) = (p.get("field"), p.get("value")) {
        match obj.field(field) {
            Some(f) if f.external_id || f.name == "Id" => {}
            _ => return SfError::external_id_field_not_found(field).into_response(),
        }
        let hits = find_by(&data, &org.meta, &obj, field, value);
        match hits.len() {
            0 => return SfError::not_found().into_response(),
            1 => hits[0],
            _ => return multiple_choices(&data, &org.meta, &obj, &hits, &ctx.version),
        }
    } else {
        let id = p.get("id").map(String::as_str).unwrap_or("");
        if !is_well_formed(id) {
            return SfError::external_id_field_not_found(id).into_response();
        }
        match index_of(&org.meta, &obj, id) {
            Some(i) if data.presence(&obj, i) == Presence::Live => i,
            _ => return SfError::not_found().into_response(),
        }
    };
    json_response(
        StatusCode::OK,
        render_record(&data, &org.meta, &obj, index, fields, &ctx.version),
    )
}

fn multiple_choices(
    data: &OrgData,
    meta: &OrgMeta,
    obj: &Arc<ObjectDef>,
    hits: &[u64],
    version: &str,
) -> Response {
    let urls: Vec<Value> = hits
        .iter()
        .filter_map(|i| data.view(meta, obj, *i))
        .map(|v| {
            Value::String(format!(
                "/services/data/{version}/sobjects/{}/{}",
                obj.name,
                v.id(obj)
            ))
        })
        .collect();
    json_response(StatusCode::MULTIPLE_CHOICES, Value::Array(urls).to_string())
}

/// `POST /sobjects/{Name}`: create.
pub async fn create(
    Extension(ctx): Extension<Ctx>,
    Path(p): P,
    body: axum::body::Bytes,
) -> Response {
    let org = &ctx.org;
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut data = org.write();
    let obj = match object_of(&data, &p) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    if body.keys().any(|k| k.eq_ignore_ascii_case("Id")) {
        return SfError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "cannot specify Id in an insert call",
        )
        .into_response();
    }
    match OrgData::validate(&data.schema, &obj, &body, true) {
        Ok(values) => {
            let id = data.create(&org.meta, &obj, values, ChangeOrigin::Api, &org.user_id);
            json_response(
                StatusCode::CREATED,
                json!({"id": id, "success": true, "errors": []}).to_string(),
            )
        }
        Err(e) => e
            .into_request_error(StatusCode::BAD_REQUEST)
            .into_response(),
    }
}

/// `PATCH /sobjects/{Name}/{Id}`: update (204).
pub async fn update(
    Extension(ctx): Extension<Ctx>,
    Path(p): P,
    body: axum::body::Bytes,
) -> Response {
    let org = &ctx.org;
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut data = org.write();
    let obj = match object_of(&data, &p) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let id = p.get("id").map(String::as_str).unwrap_or("");
    let Some(index) = index_of(&org.meta, &obj, id) else {
        return if is_well_formed(id) {
            SfError::not_found()
        } else {
            SfError::external_id_field_not_found(id)
        }
        .into_response();
    };
    let values = match OrgData::validate(&data.schema, &obj, &body, false) {
        Ok(v) => v,
        Err(e) => {
            return e
                .into_request_error(StatusCode::BAD_REQUEST)
                .into_response();
        }
    };
    match data.update(
        &org.meta,
        &obj,
        index,
        values,
        ChangeOrigin::Api,
        &org.user_id,
    ) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_request_error(StatusCode::NOT_FOUND).into_response(),
    }
}

/// `DELETE /sobjects/{Name}/{Id}` (204).
pub async fn delete(Extension(ctx): Extension<Ctx>, Path(p): P) -> Response {
    let org = &ctx.org;
    let mut data = org.write();
    let obj = match object_of(&data, &p) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let id = p.get("id").map(String::as_str).unwrap_or("");
    let Some(index) = index_of(&org.meta, &obj, id) else {
        return if is_well_formed(id) {
            SfError::not_found()
        } else {
            SfError::external_id_field_not_found(id)
        }
        .into_response();
    };
    match data.delete(&org.meta, &obj, index, ChangeOrigin::Api, &org.user_id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_request_error(StatusCode::NOT_FOUND).into_response(),
    }
}

/// `PATCH /sobjects/{Name}/{ExtIdField}/{value}`: upsert (201 created, 200/204 updated,
/// 300 several matches, 404 unknown field or `updateOnly` without a match).
pub async fn upsert(
    Extension(ctx): Extension<Ctx>,
    Path(p): P,
    Query(q): Q,
    body: axum::body::Bytes,
) -> Response {
    let org = &ctx.org;
    let mut body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut data = org.write();
    let obj = match object_of(&data, &p) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let field = p.get("field").cloned().unwrap_or_default();
    let value = p.get("value").cloned().unwrap_or_default();
    let Some(f) = obj
        .field(&field)
        .filter(|f| f.external_id || f.name == "Id")
        .cloned()
    else {
        return SfError::external_id_field_not_found(&field).into_response();
    };
    let hits = find_by(&data, &org.meta, &obj, &f.name, &value);
    let with_created = ctx.major() >= 46;
    match hits.len() {
        0 => {
            if q.get("updateOnly").is_some_and(|v| v == "true") || f.name == "Id" {
                return SfError::not_found().into_response();
            }
            body.retain(|k, _| !k.eq_ignore_ascii_case(&f.name));
            body.insert(f.name.clone(), Value::String(value));
            match OrgData::validate(&data.schema, &obj, &body, true) {
                Ok(values) => {
                    let id = data.create(&org.meta, &obj, values, ChangeOrigin::Api, &org.user_id);
                    let mut r = json!({"id": id, "success": true, "errors": []});
                    if with_created {
                        r["created"] = Value::Bool(true);
                    }
                    json_response(StatusCode::CREATED, r.to_string())
                }
                Err(e) => e
                    .into_request_error(StatusCode::BAD_REQUEST)
                    .into_response(),
            }
        }
        1 => {
            let index = hits[0];
            body.retain(|k, _| !k.eq_ignore_ascii_case(&f.name));
            let values = match OrgData::validate(&data.schema, &obj, &body, false) {
                Ok(v) => v,
                Err(e) => {
                    return e
                        .into_request_error(StatusCode::BAD_REQUEST)
                        .into_response();
                }
            };
            if let Err(e) = data.update(
                &org.meta,
                &obj,
                index,
                values,
                ChangeOrigin::Api,
                &org.user_id,
            ) {
                return e
                    .into_request_error(StatusCode::BAD_REQUEST)
                    .into_response();
            }
            if with_created {
                let id = data
                    .view(&org.meta, &obj, index)
                    .map(|v| v.id(&obj))
                    .unwrap_or_default();
                json_response(
                    StatusCode::OK,
                    json!({"id": id, "success": true, "errors": [], "created": false}).to_string(),
                )
            } else {
                StatusCode::NO_CONTENT.into_response()
            }
        }
        _ => multiple_choices(&data, &org.meta, &obj, &hits, &ctx.version),
    }
}

/// `DELETE /sobjects/{Name}/{ExtIdField}/{value}`.
pub async fn delete_by_external_id(Extension(ctx): Extension<Ctx>, Path(p): P) -> Response {
    let org = &ctx.org;
    let mut data = org.write();
    let obj = match object_of(&data, &p) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let field = p.get("field").cloned().unwrap_or_default();
    let value = p.get("value").cloned().unwrap_or_default();
    if obj.field(&field).is_none_or(|f| !f.external_id) {
        return SfError::external_id_field_not_found(&field).into_response();
    }
    let hits = find_by(&data, &org.meta, &obj, &field, &value);
    match hits.len() {
        0 => SfError::not_found().into_response(),
        1 => match data.delete(&org.meta, &obj, hits[0], ChangeOrigin::Api, &org.user_id) {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => e.into_request_error(StatusCode::NOT_FOUND).into_response(),
        },
        _ => multiple_choices(&data, &org.meta, &obj, &hits, &ctx.version),
    }
}

fn window(q: &HashMap<String, String>, max_days: i64) -> Result<(i64, i64), SfError> {
    let bad = |m: &str| {
        SfError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_REPLICATION_DATE",
            m.to_owned(),
        )
    };
    let missing = |n: &str| {
        SfError::new(
            StatusCode::BAD_REQUEST,
            "MISSING_ARGUMENT",
            format!("{n} is not specified"),
        )
    };
    let start = q.get("start").ok_or_else(|| missing("start"))?;
    let end = q.get("end").ok_or_else(|| missing("end"))?;
    let start = parse_datetime(start).ok_or_else(|| bad("start date is not a valid date"))?;
    let end = parse_datetime(end).ok_or_else(|| bad("end date is not a valid date"))?;
    let now = chrono::Utc::now().timestamp();
    if end < start {
        return Err(bad("end date cannot be before start date"));
    }
    if start < now - max_days * 86_400 {
        return Err(bad(&format!(
            "start date cannot be more than {max_days} days ago"
        )));
    }
    Ok((start, end.min(now)))
}

fn minute_floor(t: i64) -> i64 {
    t - t.rem_euclid(60)
}

/// `GET /sobjects/{Name}/updated/?start=&end=`: ids whose `SystemModstamp` is in the window.
///
/// The window is `[start, min(end, now)]`; `latestDateCovered` is that end rounded down to
/// the minute, as the real API reports it. (The real API leaves the current minute out;
/// the sandbox includes it, so a client resuming from `latestDateCovered` may see an id
/// twice but never misses one.)
pub async fn updated(Extension(ctx): Extension<Ctx>, Path(p): P, Query(q): Q) -> Response {
    let org = &ctx.org;
    let (start, end) = match window(&q, 30) {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let data = org.read();
    let obj = match object_of(&data, &p) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let end_cov = minute_floor(end);
    let soql = format!(
        "SELECT Id FROM {} WHERE SystemModstamp >= {} AND SystemModstamp < {} ORDER BY SystemModstamp ASC",
        obj.name,
        format_iso(start),
        format_iso(end + 1)
    );
    let ids = match super::query::plan(&soql, &data.schema) {
        Ok(plan) => {
            let idx = plan.execute(&data, &org.meta, false);
            if idx.len() > 600_000 {
                return SfError::new(
                    StatusCode::BAD_REQUEST,
                    "EXCEEDED_ID_LIMIT",
                    "ID limit exceeded: the maximum is 600,000 records",
                )
                .into_response();
            }
            idx.into_iter()
                .filter_map(|i| data.view(&org.meta, &obj, i))
                .map(|v| Value::String(v.id(&obj)))
                .collect::<Vec<_>>()
        }
        Err(e) => return e.into_response(),
    };
    json_response(
        StatusCode::OK,
        json!({"ids": ids, "latestDateCovered": format_datetime(end_cov)}).to_string(),
    )
}

fn format_iso(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `GET /sobjects/{Name}/deleted/?start=&end=`: records deleted in the window.
pub async fn deleted(Extension(ctx): Extension<Ctx>, Path(p): P, Query(q): Q) -> Response {
    let org = &ctx.org;
    let (start, end) = match window(&q, 15) {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let data = org.read();
    let obj = match object_of(&data, &p) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let end_cov = minute_floor(end);
    let store = data.objects.get(&obj.name);
    let mut rows: Vec<(i64, String)> = store
        .map(|s| {
            s.deleted
                .values()
                .filter(|d| d.deleted_at >= start && d.deleted_at <= end)
                .map(|d| {
                    let id = d
                        .record
                        .get("Id")
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    (d.deleted_at, id)
                })
                .collect()
        })
        .unwrap_or_default();
    rows.sort();
    let earliest = store
        .and_then(|s| s.deleted.values().map(|d| d.deleted_at).min())
        .map_or(minute_floor(start), minute_floor);
    let list: Vec<Value> = rows
        .into_iter()
        .map(|(t, id)| json!({"id": id, "deletedDate": format_datetime(t)}))
        .collect();
    json_response(
        StatusCode::OK,
        json!({"deletedRecords": list, "earliestDateAvailable": format_datetime(earliest), "latestDateCovered": format_datetime(end_cov)}).to_string(),
    )
}
