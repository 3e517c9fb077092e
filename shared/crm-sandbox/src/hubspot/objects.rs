//! `/crm/v3/objects/{objectType}`: list with `after` paging, get, create, update, archive;
//! plus the record serialisation and write paths shared with batch, search and admin.

use super::catalog::{ObjectTypeDef, PropertyDef, iso_ms};
use super::errors::{ApiError, json_of, json_response};
use super::state::{Caller, Portal, Shared, read, write};
use super::store::{
    ChangeKind, ChangeRecord, ChangeSource, PortalData, RecordView, invalid_values_error, now_ms,
    validate_values,
};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::ser::SerializeMap;
use std::sync::Arc;

/// Query parameters, repeated keys allowed (`properties=a&properties=b` or `properties=a,b`).
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses a raw query string.
    #[must_use]
    pub fn parse(query: Option<&str>) -> Self {
        Self {
            pairs: url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        }
    }

    /// The first value of `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All comma-separated values of every `key`.
    #[must_use]
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut seen = false;
        for (k, v) in &self.pairs {
            if k == key {
                seen = true;
                out.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
            }
        }
        seen.then_some(out)
    }

    /// `key` as a boolean (`true` only for "true").
    #[must_use]
    pub fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// The properties a read returns: the requested ones that exist plus the created/modified
/// dates and `hs_object_id` (as HubSpot always adds), or the type's defaults when none were
/// requested. Sorted by name, like HubSpot's output.
#[must_use]
pub fn select<'a>(def: &'a ObjectTypeDef, requested: Option<&[String]>) -> Vec<&'a PropertyDef> {
    let mut names: Vec<&str> = match requested {
        Some(r) if !r.is_empty() => {
            let mut n: Vec<&str> = r.iter().map(String::as_str).collect();
            n.extend([
                def.created_property(),
                def.modified_property(),
                "hs_object_id",
            ]);
            n
        }
        _ => def.default_properties.iter().map(String::as_str).collect(),
    };
    names.sort_unstable();
    names.dedup();
    names.into_iter().filter_map(|n| def.property(n)).collect()
}

/// Every property that has a value on the record (write responses).
#[must_use]
pub fn with_values<'a>(def: &'a ObjectTypeDef, view: &RecordView<'_>) -> Vec<&'a PropertyDef> {
    let mut props: Vec<&PropertyDef> = def
        .properties
        .iter()
        .filter(|p| view.value(p).is_some())
        .collect();
    props.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    props
}

/// A record as HubSpot serialises it.
pub struct RecordOut<'a> {
    /// The record.
    pub view: RecordView<'a>,
    /// Properties to include (`null` when the record has no value).
    pub props: &'a [&'a PropertyDef],
    /// Include `url` (search and batch responses do).
    pub url: Option<(u64, &'a str)>,
    /// Include `new` (batch upsert).
    pub new: Option<bool>,
}

struct PropsOut<'a>(&'a RecordView<'a>, &'a [&'a PropertyDef]);

impl Serialize for PropsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.1.len()))?;
        for p in self.1 {
            m.serialize_entry(&p.name, &self.0.value(p))?;
        }
        m.end()
    }
}

impl Serialize for RecordOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &self.view.id().to_string())?;
        m.serialize_entry("properties", &PropsOut(&self.view, self.props))?;
        m.serialize_entry("createdAt", &iso_ms(self.view.created_ms()))?;
        m.serialize_entry("updatedAt", &iso_ms(self.view.updated_ms()))?;
        m.serialize_entry("archived", &self.view.archived_ms().is_some())?;
        if let Some(at) = self.view.archived_ms() {
            m.serialize_entry("archivedAt", &iso_ms(at))?;
        }
        if let Some(new) = self.new {
            m.serialize_entry("new", &new)?;
        }
        if let Some((portal, type_id)) = self.url {
            // HubSpot's record URL has the same form for every object type.
            m.serialize_entry(
                "url",
                &format!(
                    "https://app.hubspot.com/contacts/{portal}/record/{type_id}/{}",
                    self.view.id()
                ),
            )?;
        }
        m.end()
    }
}

/// The object type index for `name`, or HubSpot's "Unable to infer object type" 400.
pub fn resolve(data: &PortalData, name: &str) -> Result<usize, ApiError> {
    data.type_index(name)
        .ok_or_else(|| ApiError::unknown_object_type(name))
}

/// Scope needed to read or write an object type.
fn scope_for(def: &ObjectTypeDef, write: bool) -> String {
    let object = match def.kind {
        super::catalog::ObjectKind::Contact => "contacts",
        super::catalog::ObjectKind::Company => "companies",
        super::catalog::ObjectKind::Deal => "deals",
        super::catalog::ObjectKind::Custom => "custom",
    };
    format!(
        "crm.objects.{object}.{}",
        if write { "write" } else { "read" }
    )
}

/// Checks the scope for reading (`write == false`) or writing an object type.
pub fn check_scope(caller: &Caller, def: &ObjectTypeDef, write: bool) -> Result<(), ApiError> {
    super::server::require_scope(caller, &scope_for(def, write))
}

fn limit_param(params: &Params, default: usize, max: usize) -> Result<usize, ApiError> {
    match params.get("limit") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::validation(format!(
                "limit must be between 1 and {max}, but was {v}"
            ))),
        },
    }
}

/// `GET /crm/v3/objects/{objectType}`.
pub async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(object_type): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.as_deref());
    match list_page(
        &shared,
        &caller.portal,
        &object_type,
        &params,
        Some(&caller),
    ) {
        Ok(bytes) => json_response(StatusCode::OK, bytes),
        Err(e) => e.into_response(),
    }
}

#[derive(Serialize)]
struct Next {
    after: String,
    link: String,
}

#[derive(Serialize)]
struct Paging {
    next: Next,
}

/// One list page as JSON bytes; public so benchmarks can measure the serving cost alone.
pub fn list_page(
    shared: &Shared,
    portal: &Portal,
    object_type: &str,
    params: &Params,
    caller: Option<&Caller>,
) -> Result<Vec<u8>, ApiError> {
    let limit = limit_param(params, 10, 100)?;
    let after = match params.get("after") {
        None | Some("") => 1,
        Some(a) => a.parse::<u64>().map_err(|_| {
            ApiError::validation(format!("after must be a numeric cursor, but was {a}"))
        })?,
    };
    let archived = params.flag("archived");
    let requested = params.list("properties");
    let data = read(&portal.data);
    let idx = resolve(&data, object_type)?;
    let store = &data.objects[idx];
    if let Some(c) = caller {
        check_scope(c, &store.def, false)?;
    }
    let props = select(&store.def, requested.as_deref());
    let mut views: Vec<RecordView<'_>> = if archived {
        store.iter_archived(after).take(limit + 1).collect()
    } else {
        store.iter_live(after).take(limit + 1).collect()
    };
    let next = (views.len() > limit)
        .then(|| views.pop().map(|v| v.id()))
        .flatten();
    let results: Vec<RecordOut<'_>> = views
        .into_iter()
        .map(|view| RecordOut {
            view,
            props: &props,
            url: None,
            new: None,
        })
        .collect();
    let paging = next.map(|after| {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        ser.append_pair("limit", &limit.to_string());
        if let Some(r) = &requested {
            ser.append_pair("properties", &r.join(","));
        }
        if archived {
            ser.append_pair("archived", "true");
        }
        ser.append_pair("after", &after.to_string());
        let base = read(&shared.base_url).clone();
        Paging {
            next: Next {
                after: after.to_string(),
                link: format!("{base}/crm/v3/objects/{object_type}?{}", ser.finish()),
            },
        }
    });
    #[derive(Serialize)]
    struct Page<'a> {
        results: Vec<RecordOut<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        paging: Option<Paging>,
    }
    serde_json::to_vec(&Page { results, paging })
        .map_err(|_| ApiError::server_error(StatusCode::INTERNAL_SERVER_ERROR))
}

/// Finds a record id from the path segment and an optional `idProperty`.
pub fn find_id(data: &PortalData, idx: usize, raw: &str, id_property: Option<&str>) -> Option<u64> {
    let store = &data.objects[idx];
    match id_property {
        Some(p) if p != "hs_object_id" => store.find_unique(p, raw),
        _ => raw.parse::<u64>().ok(),
    }
}

/// `GET /crm/v3/objects/{objectType}/{objectId}`.
pub async fn get_one(
    Extension(caller): Extension<Caller>,
    Path((object_type, object_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.as_deref());
    let data = read(&caller.portal.data);
    let idx = match resolve(&data, &object_type) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let store = &data.objects[idx];
    if let Err(e) = check_scope(&caller, &store.def, false) {
        return e.into_response();
    }
    let id = find_id(&data, idx, &object_id, params.get("idProperty"));
    let view = id.and_then(|id| {
        if params.flag("archived") {
            store.get_archived(id)
        } else {
            store.get(id)
        }
    });
    let Some(view) = view else {
        return ApiError::object_not_found(&object_id).into_response();
    };
    let requested = params.list("properties");
    let props = select(&store.def, requested.as_deref());
    json_of(
        StatusCode::OK,
        &RecordOut {
            view,
            props: &props,
            url: None,
            new: None,
        },
    )
}

/// Body of single create/update.
#[derive(Debug, serde::Deserialize)]
struct WriteBody {
    #[serde(default)]
    properties: serde_json::Map<String, serde_json::Value>,
}

fn parse_body(body: &[u8]) -> Result<WriteBody, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::validation(format!("Invalid input JSON on line 1: {e}")))
}

/// The message HubSpot uses when a unique value is taken.
pub fn conflict_message(def: &ObjectTypeDef, existing: u64) -> String {
    format!("{} already exists. Existing ID: {existing}", def.singular)
}

/// A unique value among `values` that another live record already holds.
pub fn unique_conflict(
    data: &PortalData,
    idx: usize,
    values: &[(String, String)],
    own_id: Option<u64>,
) -> Option<u64> {
    let store = &data.objects[idx];
    values.iter().find_map(|(k, v)| {
        let prop = store.def.property(k)?;
        if !prop.has_unique_value || v.is_empty() {
            return None;
        }
        store.find_unique(k, v).filter(|id| Some(*id) != own_id)
    })
}

/// Creates a record (API, batch or admin); returns the id and the change to publish.
pub fn create_record(
    data: &mut PortalData,
    idx: usize,
    values: Vec<(String, String)>,
    source: ChangeSource,
    now: i64,
) -> Result<(u64, ChangeRecord), ApiError> {
    if let Some(existing) = unique_conflict(data, idx, &values, None) {
        return Err(ApiError::conflict(conflict_message(
            &data.objects[idx].def,
            existing,
        )));
    }
    let id = data.objects[idx].create(values.clone(), now);
    let changed = values
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, Some(v)))
        .collect();
    let change = data.log(idx, id, ChangeKind::Created, changed, source, now);
    Ok((id, change))
}

/// Updates a live record; `Ok(None)` change when no value really changed.
pub fn update_record(
    data: &mut PortalData,
    idx: usize,
    id: u64,
    values: Vec<(String, String)>,
    source: ChangeSource,
    now: i64,
) -> Result<Option<ChangeRecord>, ApiError> {
    if data.objects[idx].get(id).is_none() {
        return Err(ApiError::object_not_found(&id.to_string()));
    }
    if let Some(existing) = unique_conflict(data, idx, &values, Some(id)) {
        return Err(ApiError::conflict(conflict_message(
            &data.objects[idx].def,
            existing,
        )));
    }
    let changed = data.objects[idx]
        .update(id, values, now)
        .unwrap_or_default();
    if changed.is_empty() {
        return Ok(None);
    }
    Ok(Some(data.log(
        idx,
        id,
        ChangeKind::Updated,
        changed,
        source,
        now,
    )))
}

/// Archives a live record; `None` when there is none.
pub fn archive_record(
    data: &mut PortalData,
    idx: usize,
    id: u64,
    source: ChangeSource,
    now: i64,
) -> Option<ChangeRecord> {
    data.objects[idx]
        .archive(id, now)
        .then(|| data.log(idx, id, ChangeKind::Archived, Vec::new(), source, now))
}

/// Publishes changes to webhooks after the portal lock is released.
pub fn publish(shared: &Shared, portal_id: u64, changes: Vec<ChangeRecord>) {
    for c in changes {
        shared.publish(portal_id, c);
    }
}

fn validated(
    def: &ObjectTypeDef,
    props: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<(String, String)>, ApiError> {
    validate_values(def, props).map_err(|errors| invalid_values_error(&errors))
}

/// `POST /crm/v3/objects/{objectType}`: 201 with the new record.
pub async fn create(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> Response {
    let portal = &caller.portal;
    let result = (|| {
        let body = parse_body(&body)?;
        let mut data = write(&portal.data);
        let idx = resolve(&data, &object_type)?;
        check_scope(&caller, &data.objects[idx].def, true)?;
        let values = validated(&data.objects[idx].def, &body.properties)?;
        let (id, change) =
            create_record(&mut data, idx, values, ChangeSource::Integration, now_ms())?;
        let store = &data.objects[idx];
        let view = store
            .get(id)
            .ok_or_else(|| ApiError::object_not_found(&id.to_string()))?;
        let props = with_values(&store.def, &view);
        let bytes = serde_json::to_vec(&RecordOut {
            view,
            props: &props,
            url: None,
            new: None,
        })
        .map_err(|_| ApiError::server_error(StatusCode::INTERNAL_SERVER_ERROR))?;
        Ok::<_, ApiError>((bytes, change))
    })();
    match result {
        Ok((bytes, change)) => {
            publish(&shared, portal.id, vec![change]);
            json_response(StatusCode::CREATED, bytes)
        }
        Err(e) => e.into_response(),
    }
}

/// `PATCH /crm/v3/objects/{objectType}/{objectId}`: 200 with the record.
pub async fn update(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((object_type, object_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let params = Params::parse(query.as_deref());
    let portal = &caller.portal;
    let result = (|| {
        let body = parse_body(&body)?;
        let mut data = write(&portal.data);
        let idx = resolve(&data, &object_type)?;
        check_scope(&caller, &data.objects[idx].def, true)?;
        let id = find_id(&data, idx, &object_id, params.get("idProperty"))
            .ok_or_else(|| ApiError::object_not_found(&object_id))?;
        let values = validated(&data.objects[idx].def, &body.properties)?;
        let change = update_record(
            &mut data,
            idx,
            id,
            values,
            ChangeSource::Integration,
            now_ms(),
        )
        .map_err(|e| {
            if e.status == StatusCode::NOT_FOUND {
                ApiError::object_not_found(&object_id)
            } else {
                e
            }
        })?;
        let store = &data.objects[idx];
        let view = store
            .get(id)
            .ok_or_else(|| ApiError::object_not_found(&object_id))?;
        let props = with_values(&store.def, &view);
        let bytes = serde_json::to_vec(&RecordOut {
            view,
            props: &props,
            url: None,
            new: None,
        })
        .map_err(|_| ApiError::server_error(StatusCode::INTERNAL_SERVER_ERROR))?;
        Ok::<_, ApiError>((bytes, change))
    })();
    match result {
        Ok((bytes, change)) => {
            publish(&shared, portal.id, change.into_iter().collect());
            json_response(StatusCode::OK, bytes)
        }
        Err(e) => e.into_response(),
    }
}

/// `DELETE /crm/v3/objects/{objectType}/{objectId}`: 204 (also for unknown ids, as HubSpot).
pub async fn archive(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((object_type, object_id)): Path<(String, String)>,
) -> Response {
    let portal = &caller.portal;
    let change = {
        let mut data = write(&portal.data);
        let idx = match resolve(&data, &object_type) {
            Ok(i) => i,
            Err(e) => return e.into_response(),
        };
        if let Err(e) = check_scope(&caller, &data.objects[idx].def, true) {
            return e.into_response();
        }
        object_id
            .parse::<u64>()
            .ok()
            .and_then(|id| archive_record(&mut data, idx, id, ChangeSource::Integration, now_ms()))
    };
    publish(&shared, portal.id, change.into_iter().collect());
    StatusCode::NO_CONTENT.into_response()
}
