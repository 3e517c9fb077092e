//! Creating, updating and deleting records, with the validation the real API does, and
//! the change log entries every write produces.

use super::errors::RecordError;
use super::ids::{make_id, parse_id};
use super::schema::{FieldType, ObjectDef, Schema};
use super::store::{
    ChangeEvent, ChangeOrigin, ChangeType, Deleted, OrgData, OrgMeta, Record, RecordView,
};
use super::value::{Val, ValueError, from_request};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Where a record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Readable and writable.
    Live,
    /// Deleted (in the recycle bin).
    Deleted,
    /// Never existed.
    Missing,
}

/// Resolves an id to a record index of `obj` in this org.
#[must_use]
pub fn index_of(meta: &OrgMeta, obj: &ObjectDef, id: &str) -> Option<u64> {
    let parts = parse_id(id)?;
    (parts.prefix == obj.key_prefix && parts.org == meta.code).then_some(parts.index)
}

impl OrgData {
    /// Whether record `index` of `obj` exists.
    #[must_use]
    pub fn presence(&self, obj: &ObjectDef, index: u64) -> Presence {
        let Some(store) = self.objects.get(&obj.name) else {
            return Presence::Missing;
        };
        if store.live.contains_key(&index) {
            Presence::Live
        } else if let Some(d) = store.deleted.get(&index) {
            if d.purged {
                Presence::Missing
            } else {
                Presence::Deleted
            }
        } else if index < store.base_count {
            Presence::Live
        } else {
            Presence::Missing
        }
    }

    /// Checks a request body against the object's fields; returns canonical name → value.
    pub fn validate(
        schema: &Schema,
        obj: &ObjectDef,
        body: &Map<String, Value>,
        creating: bool,
    ) -> Result<Vec<(String, Val)>, RecordError> {
        let mut out = Vec::with_capacity(body.len());
        let mut readonly = Vec::new();
        for (key, raw) in body {
            if key == "attributes" {
                continue;
            }
            let Some(field) = obj.field(key) else {
                return Err(RecordError::new(
                    "INVALID_FIELD",
                    format!("No such column '{key}' on sobject of type {}", obj.name),
                    vec![],
                ));
            };
            let writable = if creating {
                field.createable
            } else {
                field.updateable
            };
            if !writable {
                readonly.push(field.name.clone());
                continue;
            }
            let val = from_request(field, raw).map_err(|e| {
                let f = vec![field.name.clone()];
                match e {
                    ValueError::WrongType if field.ftype == FieldType::Reference => {
                        RecordError::new(
                            "MALFORMED_ID",
                            format!(
                                "{}: id value of incorrect type: {}",
                                field.label,
                                raw_text(raw)
                            ),
                            f,
                        )
                    }
                    ValueError::WrongType => RecordError::new(
                        "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        format!(
                            "{}: value not of required type: {}",
                            field.label,
                            raw_text(raw)
                        ),
                        f,
                    ),
                    ValueError::BadPicklist => RecordError::new(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        format!(
                            "{}: bad value for restricted picklist field: {}",
                            field.label,
                            raw_text(raw)
                        ),
                        f,
                    ),
                    ValueError::BadEmail => RecordError::new(
                        "INVALID_EMAIL_ADDRESS",
                        format!("{}: invalid email address: {}", field.label, raw_text(raw)),
                        f,
                    ),
                    ValueError::TooLong => RecordError::new(
                        "STRING_TOO_LONG",
                        format!(
                            "{}: data value too large: {} (max length={})",
                            field.label,
                            raw_text(raw),
                            field.length
                        ),
                        f,
                    ),
                }
            })?;
            if field.ftype == FieldType::Reference
                && let Val::Str(s) = &val
                && (parse_id(s).is_none()
                    || !field.reference_to.iter().any(|t| {
                        schema
                            .object(t)
                            .is_none_or(|o| s.starts_with(o.key_prefix.as_str()))
                    }))
            {
                return Err(RecordError::new(
                    "MALFORMED_ID",
                    format!("{}: id value of incorrect type: {s}", field.label),
                    vec![field.name.clone()],
                ));
            }
            if val.is_null() && field.required && !creating {
                return Err(RecordError::new(
                    "REQUIRED_FIELD_MISSING",
                    format!("Required fields are missing: [{}]", field.name),
                    vec![field.name.clone()],
                ));
            }
            out.push((field.name.clone(), val));
        }
        if !readonly.is_empty() {
            return Err(RecordError::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    readonly.join(", ")
                ),
                readonly,
            ));
        }
        if creating {
            let missing: Vec<String> = obj
                .fields
                .iter()
                .filter(|f| f.required && f.createable && f.name != "OwnerId")
                .filter(|f| !f.picklist.iter().any(|p| p.default))
                .filter(|f| !out.iter().any(|(n, v)| *n == f.name && !v.is_null()))
                .map(|f| f.name.clone())
                .collect();
            if !missing.is_empty() {
                return Err(RecordError::new(
                    "REQUIRED_FIELD_MISSING",
                    format!("Required fields are missing: [{}]", missing.join(", ")),
                    missing,
                ));
            }
        }
        Ok(out)
    }

    /// Creates a record; returns its id.
    pub fn create(
        &mut self,
        meta: &OrgMeta,
        obj: &Arc<ObjectDef>,
        values: Vec<(String, Val)>,
        origin: ChangeOrigin,
        user: &str,
    ) -> String {
        let stamp = self.next_stamp();
        let index = match self.objects.get_mut(&obj.name) {
            Some(store) => {
                let i = store.next_index;
                store.next_index += 1;
                i
            }
            None => 0,
        };
        let id = make_id(&obj.key_prefix, &meta.code, index);
        let mut rec: Record = Record::new();
        for f in &obj.fields {
            if f.ftype == FieldType::Address {
                continue;
            }
            let v = match f.name.as_str() {
                "Id" => Val::Str(id.clone()),
                "IsDeleted" => Val::Bool(false),
                "CreatedDate" | "LastModifiedDate" | "SystemModstamp" => Val::DateTime(stamp),
                "CreatedById" | "LastModifiedById" | "OwnerId" => Val::Str(user.to_owned()),
                _ if f.ftype == FieldType::Boolean => Val::Bool(false),
                _ => f
                    .picklist
                    .iter()
                    .find(|p| p.default)
                    .map_or(Val::Null, |p| Val::Str(p.value.clone())),
            };
            rec.insert(f.name.clone(), v);
        }
        for (k, v) in values {
            rec.insert(k, v);
        }
        let mut json = Map::new();
        for f in &obj.fields {
            if let Some(v) = rec.get(&f.name) {
                json.insert(f.name.clone(), v.to_json(f.ftype));
            }
        }
        let changed: Vec<String> = json.keys().cloned().collect();
        let nulled: Vec<String> = json
            .iter()
            .filter(|(_, v)| v.is_null())
            .map(|(k, _)| k.clone())
            .collect();
        if let Some(store) = self.objects.get_mut(&obj.name) {
            store.live.insert(index, rec);
        }
        self.log(
            obj,
            &id,
            ChangeType::Create,
            origin,
            changed,
            nulled,
            stamp,
            user,
            json,
        );
        id
    }

    /// Updates a live record (stamps it even when no value changes, like the real API).
    pub fn update(
        &mut self,
        meta: &OrgMeta,
        obj: &Arc<ObjectDef>,
        index: u64,
        values: Vec<(String, Val)>,
        origin: ChangeOrigin,
        user: &str,
    ) -> Result<(), RecordError> {
        match self.presence(obj, index) {
            Presence::Live => {}
            Presence::Deleted => {
                return Err(RecordError::new(
                    "ENTITY_IS_DELETED",
                    "entity is deleted",
                    vec![],
                ));
            }
            Presence::Missing => {
                return Err(RecordError::new(
                    "NOT_FOUND",
                    "The requested resource does not exist",
                    vec![],
                ));
            }
        }
        let stamp = self.next_stamp();
        let mut rec = self.take_record(meta, obj, index);
        let mut changed = Vec::new();
        let mut nulled = Vec::new();
        let mut json = Map::new();
        for (k, v) in values {
            let old = rec.get(&k).cloned().unwrap_or_default();
            if old != v {
                if v.is_null() {
                    nulled.push(k.clone());
                }
                changed.push(k.clone());
                let ftype = obj.field(&k).map_or(FieldType::String, |f| f.ftype);
                json.insert(k.clone(), v.to_json(ftype));
            }
            rec.insert(k, v);
        }
        rec.insert("LastModifiedDate".into(), Val::DateTime(stamp));
        rec.insert("SystemModstamp".into(), Val::DateTime(stamp));
        rec.insert("LastModifiedById".into(), Val::Str(user.to_owned()));
        changed.push("LastModifiedDate".into());
        json.insert(
            "LastModifiedDate".into(),
            Val::DateTime(stamp).to_json(FieldType::Datetime),
        );
        let id = make_id(&obj.key_prefix, &meta.code, index);
        if let Some(store) = self.objects.get_mut(&obj.name) {
            store.live.insert(index, rec);
        }
        self.log(
            obj,
            &id,
            ChangeType::Update,
            origin,
            changed,
            nulled,
            stamp,
            user,
            json,
        );
        Ok(())
    }

    /// Deletes a live record (moves it to the recycle bin).
    pub fn delete(
        &mut self,
        meta: &OrgMeta,
        obj: &Arc<ObjectDef>,
        index: u64,
        origin: ChangeOrigin,
        user: &str,
    ) -> Result<(), RecordError> {
        match self.presence(obj, index) {
            Presence::Live => {}
            Presence::Deleted => {
                return Err(RecordError::new(
                    "ENTITY_IS_DELETED",
                    "entity is deleted",
                    vec![],
                ));
            }
            Presence::Missing => {
                return Err(RecordError::new(
                    "NOT_FOUND",
                    "The requested resource does not exist",
                    vec![],
                ));
            }
        }
        let stamp = self.next_stamp();
        let mut rec = self.take_record(meta, obj, index);
        rec.insert("LastModifiedDate".into(), Val::DateTime(stamp));
        rec.insert("SystemModstamp".into(), Val::DateTime(stamp));
        rec.insert("LastModifiedById".into(), Val::Str(user.to_owned()));
        let id = make_id(&obj.key_prefix, &meta.code, index);
        if let Some(store) = self.objects.get_mut(&obj.name) {
            store.live.remove(&index);
            store.deleted.insert(
                index,
                Deleted {
                    record: rec,
                    deleted_at: stamp,
                    purged: false,
                },
            );
        }
        self.log(
            obj,
            &id,
            ChangeType::Delete,
            origin,
            vec![],
            vec![],
            stamp,
            user,
            Map::new(),
        );
        Ok(())
    }

    /// Removes a record from the live overlay, materialising it if it was generated.
    fn take_record(&mut self, meta: &OrgMeta, obj: &ObjectDef, index: u64) -> Record {
        if let Some(r) = self
            .objects
            .get_mut(&obj.name)
            .and_then(|s| s.live.remove(&index))
        {
            return r;
        }
        match self.view(meta, obj, index) {
            Some(RecordView::Generated(g)) => g.materialise(),
            _ => Record::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn log(
        &mut self,
        obj: &ObjectDef,
        id: &str,
        change_type: ChangeType,
        origin: ChangeOrigin,
        changed_fields: Vec<String>,
        nulled_fields: Vec<String>,
        stamp: i64,
        user: &str,
        values: Map<String, Value>,
    ) {
        let sequence_number = self.changes.len() as u64 + 1;
        self.changes.push(ChangeEvent {
            sequence_number,
            entity_name: obj.name.clone(),
            record_id: id.to_owned(),
            change_type,
            change_origin: origin,
            changed_fields,
            nulled_fields,
            commit_timestamp: stamp * 1000,
            commit_user: user.to_owned(),
            values,
        });
    }
}

fn raw_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
