//! `POST /crm/v3/objects/{objectType}/batch/{read|create|update|upsert|archive}`.
//!
//! At most 100 inputs. Invalid property names or values and duplicate ids fail the whole
//! batch with 400; per-record problems (missing ids, unique conflicts) give 207 with
//! `errors[]` and `numErrors` beside the successful `results`. Create answers 201, archive
//! 204, the others 200.

use super::catalog::iso_ms;
use super::errors::{ApiError, json_response};
use super::objects::Params;
use super::objects::{
    RecordOut, archive_record, check_scope, create_record, publish, resolve, select, update_record,
    with_values,
};
use super::state::{Caller, Shared, write};
use super::store::{
    ChangeRecord, ChangeSource, PortalData, invalid_values_error, now_ms, validate_values,
};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::sync::Arc;

/// Most inputs in one batch.
pub const MAX_INPUTS: usize = 100;

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Input {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    id_property: Option<String>,
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    object_write_trace_id: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    inputs: Vec<Input>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    id_property: Option<String>,
}

fn id_string(v: &Option<Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// One batch call.
pub async fn handler(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((object_type, action)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let params = Params::parse(query.as_deref());
    let started = now_ms();
    let result = run(&caller, &object_type, &action, &params, &body, started);
    match result {
        Ok(Outcome::NoContent(changes)) => {
            publish(&shared, caller.portal.id, changes);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Outcome::Json(status, bytes, changes)) => {
            publish(&shared, caller.portal.id, changes);
            json_response(status, bytes)
        }
        Err(e) => e.into_response(),
    }
}

enum Outcome {
    NoContent(Vec<ChangeRecord>),
    Json(StatusCode, Vec<u8>, Vec<ChangeRecord>),
}

fn not_found_error(word: &str, ids: Vec<String>) -> Value {
    ApiError::standard(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!("Could not get some {word} objects, they may be deleted or not exist. Check that ids are valid."),
    )
    .with_context("ids", ids)
    .into_batch_error()
}

fn run(
    caller: &Caller,
    object_type: &str,
    action: &str,
    params: &Params,
    body: &[u8],
    started: i64,
) -> Result<Outcome, ApiError> {
    let body: Body = serde_json::from_slice(body)
        .map_err(|e| ApiError::validation(format!("Invalid input JSON on line 1: {e}")))?;
    if body.inputs.len() > MAX_INPUTS {
        return Err(ApiError::validation(format!(
            "Batch input is limited to {MAX_INPUTS} inputs, but {} were given",
            body.inputs.len()
        )));
    }
    let mut data = write(&caller.portal.data);
    let idx = resolve(&data, object_type)?;
    let write_action = action != "read";
    check_scope(caller, &data.objects[idx].def, write_action)?;
    let now = now_ms();
    let portal_id = caller.portal.id;
    let id_property = body
        .id_property
        .clone()
        .or_else(|| params.get("idProperty").map(str::to_owned));
    let mut changes = Vec::new();
    let mut errors: Vec<Value> = Vec::new();
    // (id, new flag for upsert)
    let mut done: Vec<(u64, Option<bool>)> = Vec::new();
    let status_ok = match action {
        "read" => {
            let mut missing = Vec::new();
            let mut seen = HashSet::new();
            for input in &body.inputs {
                let raw = id_string(&input.id);
                match super::objects::find_id(&data, idx, &raw, id_property.as_deref())
                    .filter(|id| data.objects[idx].get(*id).is_some())
                {
                    Some(id) => {
                        if seen.insert(id) {
                            done.push((id, None));
                        }
                    }
                    None => missing.push(raw),
                }
            }
            if !missing.is_empty() {
                errors.push(not_found_error(
                    &data.objects[idx].def.message_word(),
                    missing,
                ));
            }
            StatusCode::OK
        }
        "create" => {
            let validated = validate_all(&data, idx, &body.inputs)?;
            for (i, (input, values)) in body.inputs.iter().zip(validated).enumerate() {
                let trace = input
                    .object_write_trace_id
                    .clone()
                    .unwrap_or_else(|| i.to_string());
                match create_record(&mut data, idx, values, ChangeSource::Integration, now) {
                    Ok((id, change)) => {
                        done.push((id, None));
                        changes.push(change);
                    }
                    Err(e) => errors.push(conflict_error(e, &trace)),
                }
            }
            StatusCode::CREATED
        }
        "update" => {
            let ids: Vec<String> = body.inputs.iter().map(|i| id_string(&i.id)).collect();
            let mut seen = HashSet::new();
            let dups: Vec<String> = ids
                .iter()
                .filter(|id| !seen.insert(id.as_str()))
                .cloned()
                .collect();
            if !dups.is_empty() {
                return Err(ApiError::validation(format!(
                    "Duplicate IDs found in batch input: [{}]. IDs must be unique",
                    dups.join(", ")
                ))
                .with_context("ids", dups));
            }
            let validated = validate_all(&data, idx, &body.inputs)?;
            let mut missing = Vec::new();
            for (i, (input, values)) in body.inputs.iter().zip(validated).enumerate() {
                let raw = &ids[i];
                let by = input.id_property.as_deref().or(id_property.as_deref());
                let Some(id) = super::objects::find_id(&data, idx, raw, by)
                    .filter(|id| data.objects[idx].get(*id).is_some())
                else {
                    missing.push(raw.clone());
                    continue;
                };
                match update_record(&mut data, idx, id, values, ChangeSource::Integration, now) {
                    Ok(change) => {
                        done.push((id, None));
                        changes.extend(change);
                    }
                    Err(e) => errors.push(conflict_error(e, &i.to_string())),
                }
            }
            if !missing.is_empty() {
                errors.push(not_found_error(
                    &data.objects[idx].def.message_word(),
                    missing,
                ));
            }
            StatusCode::OK
        }
        "upsert" => {
            let validated = validate_all(&data, idx, &body.inputs)?;
            for (i, (input, mut values)) in body.inputs.iter().zip(validated).enumerate() {
                let raw = id_string(&input.id);
                let prop = input
                    .id_property
                    .clone()
                    .or_else(|| id_property.clone())
                    .unwrap_or_else(|| "hs_object_id".to_owned());
                let unique = prop == "hs_object_id"
                    || data.objects[idx]
                        .def
                        .property(&prop)
                        .is_some_and(|p| p.has_unique_value);
                if !unique {
                    return Err(ApiError::validation(format!(
                        "Property \"{prop}\" is not a unique identifier property"
                    )));
                }
                match data.objects[idx].find_unique(&prop, &raw) {
                    Some(id) => match update_record(
                        &mut data,
                        idx,
                        id,
                        values,
                        ChangeSource::Integration,
                        now,
                    ) {
                        Ok(change) => {
                            done.push((id, Some(false)));
                            changes.extend(change);
                        }
                        Err(e) => errors.push(conflict_error(e, &i.to_string())),
                    },
                    None if prop == "hs_object_id" => errors.push(not_found_error(
                        &data.objects[idx].def.message_word(),
                        vec![raw],
                    )),
                    None => {
                        values.retain(|(k, _)| *k != prop);
                        values.push((prop.clone(), raw.clone()));
                        match create_record(&mut data, idx, values, ChangeSource::Integration, now)
                        {
                            Ok((id, change)) => {
                                done.push((id, Some(true)));
                                changes.push(change);
                            }
                            Err(e) => errors.push(conflict_error(e, &i.to_string())),
                        }
                    }
                }
            }
            StatusCode::OK
        }
        "archive" => {
            for input in &body.inputs {
                let raw = id_string(&input.id);
                if let Some(id) = raw.parse::<u64>().ok()
                    && let Some(change) =
                        archive_record(&mut data, idx, id, ChangeSource::Integration, now)
                {
                    changes.push(change);
                }
            }
            return Ok(Outcome::NoContent(changes));
        }
        _ => {
            return Err(ApiError::standard(
                StatusCode::NOT_FOUND,
                "OBJECT_NOT_FOUND",
                format!("Unknown batch action: {action}"),
            ));
        }
    };
    let data: &PortalData = &data;
    let store = &data.objects[idx];
    let read_props = select(&store.def, Some(&body.properties));
    let mut prop_lists = Vec::with_capacity(done.len());
    for (id, _) in &done {
        let props = match store.get(*id) {
            Some(view) if action != "read" => with_values(&store.def, &view),
            _ => read_props.clone(),
        };
        prop_lists.push(props);
    }
    let results: Vec<RecordOut<'_>> = done
        .iter()
        .zip(&prop_lists)
        .filter_map(|((id, new), props)| {
            store.get(*id).map(|view| RecordOut {
                view,
                props,
                url: Some((portal_id, store.def.type_id.as_str())),
                new: *new,
            })
        })
        .collect();
    let mut out = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso_ms(started),
        "completedAt": iso_ms(now_ms()),
    });
    let status = if errors.is_empty() {
        status_ok
    } else {
        if let Some(o) = out.as_object_mut() {
            o.insert("numErrors".into(), json!(errors.len()));
            o.insert("errors".into(), Value::Array(errors));
        }
        StatusCode::MULTI_STATUS
    };
    let bytes = serde_json::to_vec(&out)
        .map_err(|_| ApiError::server_error(StatusCode::INTERNAL_SERVER_ERROR))?;
    Ok(Outcome::Json(status, bytes, changes))
}

fn validate_all(
    data: &PortalData,
    idx: usize,
    inputs: &[Input],
) -> Result<Vec<Vec<(String, String)>>, ApiError> {
    let def = &data.objects[idx].def;
    let mut all = Vec::with_capacity(inputs.len());
    let mut invalid = Vec::new();
    for input in inputs {
        match validate_values(def, &input.properties) {
            Ok(v) => all.push(v),
            Err(mut e) => invalid.append(&mut e),
        }
    }
    if invalid.is_empty() {
        Ok(all)
    } else {
        Err(invalid_values_error(&invalid))
    }
}

fn conflict_error(e: ApiError, trace: &str) -> Value {
    let existing = e
        .body
        .get("message")
        .and_then(Value::as_str)
        .and_then(|m| m.rsplit("Existing ID: ").next())
        .map(str::to_owned)
        .unwrap_or_default();
    let is_conflict = e.status == StatusCode::CONFLICT;
    let mut err = e.into_batch_error();
    if is_conflict && let Some(o) = err.as_object_mut() {
        o.insert(
            "context".into(),
            json!({"objectWriteTraceId": [trace], "existingId": [existing]}),
        );
    }
    err
}
