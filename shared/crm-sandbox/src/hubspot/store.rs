//! A portal's records: seeded lazily, with an overlay of created, changed and archived ones.
//!
//! Seeded record `i` has id `i + 1` and every value is derived on demand from
//! `(seed, portal, object, i)`, so a portal with millions of records costs no memory until
//! records are written. The first write to a seeded record copies its values into the overlay;
//! created records get ids above the seeded range. Every write sets the modified-date property
//! and `updatedAt` to the same instant and appends to the portal's change log.

use super::catalog::{
    GENESIS_MS, ObjectKind, ObjectTypeDef, PropType, PropertyDef, SeedCtx, iso_ms,
};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// A record whose values live in memory (created, or seeded and since written).
#[derive(Debug, Clone)]
pub struct StoredRecord {
    /// Non-empty values, system properties excluded.
    pub props: HashMap<String, String>,
    /// Creation instant, epoch ms.
    pub created_ms: i64,
    /// Last modification instant, epoch ms.
    pub updated_ms: i64,
    /// Archive instant, when archived.
    pub archived_ms: Option<i64>,
}

/// The records of one object type.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    /// Type definition including properties.
    pub def: ObjectTypeDef,
    /// Seeded data context.
    pub seed: SeedCtx,
    /// Written records by id.
    pub overlay: BTreeMap<u64, StoredRecord>,
    /// Next id for created records.
    pub next_id: u64,
    /// For unique properties: lower-cased value → id, over live overlay records.
    pub unique: HashMap<String, HashMap<String, u64>>,
}

/// Why a change happened, as webhooks report it in `changeSource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeSource {
    /// Through the public API (`changeSource: "INTEGRATION"`).
    Integration,
    /// Through the admin surface, standing in for a user in the HubSpot UI (`"CRM"`).
    Crm,
}

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    /// Created.
    Created,
    /// One or more values changed.
    Updated,
    /// Archived (deleted).
    Archived,
}

/// One entry of a portal's change log.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRecord {
    /// Position in the portal's log, from 1.
    pub seq: u64,
    /// When, epoch ms (equals the record's new `updatedAt`).
    pub occurred_at: i64,
    /// `0-1`, `2-…`.
    pub object_type_id: String,
    /// Record id.
    pub object_id: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// Changed values (name, new value; `None` when cleared).
    pub properties: Vec<(String, Option<String>)>,
    /// Who made it.
    pub source: ChangeSource,
}

/// A read-only view of one record.
#[derive(Debug, Clone, Copy)]
pub enum RecordView<'a> {
    /// Seeded and never written.
    Seeded {
        /// Store of its type.
        store: &'a ObjectStore,
        /// Seeded index (`id - 1`).
        index: u64,
    },
    /// In the overlay.
    Stored {
        /// Store of its type.
        store: &'a ObjectStore,
        /// Record id.
        id: u64,
        /// Values.
        rec: &'a StoredRecord,
    },
}

impl<'a> RecordView<'a> {
    /// Record id.
    #[must_use]
    pub fn id(&self) -> u64 {
        match self {
            Self::Seeded { index, .. } => index + 1,
            Self::Stored { id, .. } => *id,
        }
    }

    /// Creation instant.
    #[must_use]
    pub fn created_ms(&self) -> i64 {
        match self {
            Self::Seeded { store, index } => store.seed.created_ms(*index),
            Self::Stored { rec, .. } => rec.created_ms,
        }
    }

    /// Last-modified instant.
    #[must_use]
    pub fn updated_ms(&self) -> i64 {
        match self {
            Self::Seeded { store, index } => store.seed.updated_ms(*index),
            Self::Stored { rec, .. } => rec.updated_ms,
        }
    }

    /// Archive instant.
    #[must_use]
    pub fn archived_ms(&self) -> Option<i64> {
        match self {
            Self::Seeded { .. } => None,
            Self::Stored { rec, .. } => rec.archived_ms,
        }
    }

    fn store(&self) -> &'a ObjectStore {
        match self {
            Self::Seeded { store, .. } | Self::Stored { store, .. } => store,
        }
    }

    /// The value of `prop`, `None` when the record has none.
    #[must_use]
    pub fn value(&self, prop: &PropertyDef) -> Option<Cow<'a, str>> {
        let def = &self.store().def;
        if prop.name == "hs_object_id" {
            return Some(Cow::Owned(self.id().to_string()));
        }
        if prop.name == def.created_property() {
            return Some(Cow::Owned(iso_ms(self.created_ms())));
        }
        if prop.name == def.modified_property() {
            return Some(Cow::Owned(iso_ms(self.updated_ms())));
        }
        match self {
            Self::Seeded { store, index } => store.seed.value(prop, *index).map(Cow::Owned),
            Self::Stored { rec, .. } => {
                rec.props.get(&prop.name).map(|v| Cow::Borrowed(v.as_str()))
            }
        }
    }

    /// The value of the property named `name`, if the property exists and has a value.
    #[must_use]
    pub fn value_of(&self, name: &str) -> Option<Cow<'a, str>> {
        self.store().def.property(name).and_then(|p| self.value(p))
    }
}

impl ObjectStore {
    /// A store of `count` seeded records.
    #[must_use]
    pub fn new(def: ObjectTypeDef, seed: u64, portal_id: u64, count: u64) -> Self {
        let seed = SeedCtx::new(seed, portal_id, &def.type_id, count);
        let unique = def
            .properties
            .iter()
            .filter(|p| p.has_unique_value)
            .map(|p| (p.name.clone(), HashMap::new()))
            .collect();
        Self {
            def,
            seed,
            overlay: BTreeMap::new(),
            next_id: count + 1,
            unique,
        }
    }

    /// The live (not archived) record with this id.
    #[must_use]
    pub fn get(&self, id: u64) -> Option<RecordView<'_>> {
        match self.overlay.get(&id) {
            Some(rec) if rec.archived_ms.is_none() => Some(RecordView::Stored {
                store: self,
                id,
                rec,
            }),
            Some(_) => None,
            None if id >= 1 && id <= self.seed.count => Some(RecordView::Seeded {
                store: self,
                index: id - 1,
            }),
            None => None,
        }
    }

    /// The archived record with this id.
    #[must_use]
    pub fn get_archived(&self, id: u64) -> Option<RecordView<'_>> {
        self.overlay
            .get(&id)
            .filter(|r| r.archived_ms.is_some())
            .map(|rec| RecordView::Stored {
                store: self,
                id,
                rec,
            })
    }

    /// Live records with id ≥ `from`, in id order.
    pub fn iter_live(&self, from: u64) -> impl Iterator<Item = RecordView<'_>> + '_ {
        let from = from.max(1);
        let seeded_end = self.seed.count;
        let seeded = (from..=seeded_end).filter_map(move |id| self.get(id));
        let created = self
            .overlay
            .range(from.max(seeded_end + 1)..)
            .filter(|(_, r)| r.archived_ms.is_none())
            .map(move |(id, rec)| RecordView::Stored {
                store: self,
                id: *id,
                rec,
            });
        seeded.chain(created)
    }

    /// Archived records with id ≥ `from`, in id order.
    pub fn iter_archived(&self, from: u64) -> impl Iterator<Item = RecordView<'_>> + '_ {
        self.overlay
            .range(from.max(1)..)
            .filter(|(_, r)| r.archived_ms.is_some())
            .map(move |(id, rec)| RecordView::Stored {
                store: self,
                id: *id,
                rec,
            })
    }

    /// The live record whose unique property `prop` equals `value` (case-insensitive).
    #[must_use]
    pub fn find_unique(&self, prop: &str, value: &str) -> Option<u64> {
        if prop == "hs_object_id" {
            let id = value.parse::<u64>().ok()?;
            return self.get(id).map(|r| r.id());
        }
        let def = self.def.property(prop)?;
        let key = value.to_lowercase();
        if let Some(id) = self.unique.get(prop).and_then(|m| m.get(&key)) {
            return Some(*id);
        }
        let index = self.seed.reverse_unique(def, value)?;
        // A seeded record that was written since has its current value in the index.
        (!self.overlay.contains_key(&(index + 1))).then_some(index + 1)
    }

    fn materialise(&mut self, id: u64) -> Option<&mut StoredRecord> {
        if !self.overlay.contains_key(&id) {
            if id == 0 || id > self.seed.count {
                return None;
            }
            let index = id - 1;
            let mut props = HashMap::new();
            for p in &self.def.properties {
                if let Some(v) = self.seed.value(p, index) {
                    props.insert(p.name.clone(), v);
                }
            }
            let rec = StoredRecord {
                props,
                created_ms: self.seed.created_ms(index),
                updated_ms: self.seed.updated_ms(index),
                archived_ms: None,
            };
            for (name, map) in &mut self.unique {
                if let Some(v) = rec.props.get(name) {
                    map.insert(v.to_lowercase(), id);
                }
            }
            self.overlay.insert(id, rec);
        }
        self.overlay.get_mut(&id)
    }

    fn index_unique(&mut self, id: u64, name: &str, old: Option<&str>, new: Option<&str>) {
        if let Some(map) = self.unique.get_mut(name) {
            if let Some(old) = old {
                map.remove(&old.to_lowercase());
            }
            if let Some(new) = new {
                map.insert(new.to_lowercase(), id);
            }
        }
    }

    /// Creates a record with already validated values; returns its id.
    pub fn create(&mut self, values: Vec<(String, String)>, now_ms: i64) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut props = HashMap::new();
        for (k, v) in values {
            if !v.is_empty() {
                props.insert(k, v);
            }
        }
        let names: Vec<(String, String)> =
            props.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (k, v) in &names {
            self.index_unique(id, k, None, Some(v));
        }
        self.overlay.insert(
            id,
            StoredRecord {
                props,
                created_ms: now_ms,
                updated_ms: now_ms,
                archived_ms: None,
            },
        );
        id
    }

    /// Applies validated values to a live record; returns the properties that really
    /// changed (empty when nothing did, in which case the modified date is left alone).
    pub fn update(
        &mut self,
        id: u64,
        values: Vec<(String, String)>,
        now_ms: i64,
    ) -> Option<Vec<(String, Option<String>)>> {
        self.get(id)?;
        let mut changed = Vec::new();
        let mut index_updates = Vec::new();
        {
            let rec = self.materialise(id)?;
            for (k, v) in values {
                let old = rec.props.get(&k).cloned();
                let new = (!v.is_empty()).then_some(v);
                if old == new {
                    continue;
                }
                match &new {
                    Some(v) => rec.props.insert(k.clone(), v.clone()),
                    None => rec.props.remove(&k),
                };
                index_updates.push((k.clone(), old, new.clone()));
                changed.push((k, new));
            }
            if !changed.is_empty() {
                rec.updated_ms = now_ms.max(rec.updated_ms);
            }
        }
        for (k, old, new) in index_updates {
            self.index_unique(id, &k, old.as_deref(), new.as_deref());
        }
        Some(changed)
    }

    /// Archives a live record; `false` when there is no such live record.
    pub fn archive(&mut self, id: u64, now_ms: i64) -> bool {
        if self.get(id).is_none() {
            return false;
        }
        let Some(rec) = self.materialise(id) else {
            return false;
        };
        rec.archived_ms = Some(now_ms);
        rec.updated_ms = now_ms.max(rec.updated_ms);
        let values: Vec<(String, String)> = rec
            .props
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in values {
            self.index_unique(id, &k, Some(&v), None);
        }
        true
    }
}

/// All data of one portal.
#[derive(Debug)]
pub struct PortalData {
    /// Object stores (standard first, then custom).
    pub objects: Vec<ObjectStore>,
    /// The change log, oldest first.
    pub changes: Vec<ChangeRecord>,
}

/// Record counts for a new portal.
#[derive(Debug, Clone, serde::Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RecordCounts {
    /// Contacts.
    pub contacts: u64,
    /// Companies.
    pub companies: u64,
    /// Deals.
    pub deals: u64,
    /// Records of each seeded custom object.
    pub custom: u64,
}

impl Default for RecordCounts {
    fn default() -> Self {
        Self {
            contacts: 10_000,
            companies: 2_000,
            deals: 5_000,
            custom: 1_000,
        }
    }
}

impl PortalData {
    /// Seeds a portal's types and stores.
    #[must_use]
    pub fn seeded(seed: u64, portal_id: u64, counts: &RecordCounts) -> Self {
        use super::catalog::{seeded_custom_types, standard_type};
        let mut objects = vec![
            ObjectStore::new(
                standard_type(ObjectKind::Contact),
                seed,
                portal_id,
                counts.contacts,
            ),
            ObjectStore::new(
                standard_type(ObjectKind::Company),
                seed,
                portal_id,
                counts.companies,
            ),
            ObjectStore::new(
                standard_type(ObjectKind::Deal),
                seed,
                portal_id,
                counts.deals,
            ),
        ];
        for def in seeded_custom_types(seed, portal_id) {
            objects.push(ObjectStore::new(def, seed, portal_id, counts.custom));
        }
        Self {
            objects,
            changes: Vec::new(),
        }
    }

    /// The position of the object type named `name` (any accepted spelling).
    #[must_use]
    pub fn type_index(&self, name: &str) -> Option<usize> {
        self.objects.iter().position(|o| o.def.matches(name))
    }

    /// Appends a change and returns it.
    pub fn log(
        &mut self,
        store: usize,
        object_id: u64,
        kind: ChangeKind,
        properties: Vec<(String, Option<String>)>,
        source: ChangeSource,
        at_ms: i64,
    ) -> ChangeRecord {
        let rec = ChangeRecord {
            seq: self.changes.len() as u64 + 1,
            occurred_at: at_ms,
            object_type_id: self.objects[store].def.type_id.clone(),
            object_id,
            kind,
            properties,
            source,
        };
        self.changes.push(rec.clone());
        rec
    }
}

/// The wall clock in epoch ms, never before the seeded data's genesis.
#[must_use]
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis().max(GENESIS_MS + 1)
}

/// Why a property value was rejected, in HubSpot's wording.
#[derive(Debug, Clone)]
pub struct InvalidValue {
    /// Property name.
    pub name: String,
    /// Error code (`PROPERTY_DOESNT_EXIST`, `INVALID_OPTION`, …).
    pub code: &'static str,
    /// Message.
    pub message: String,
}

/// Validates and normalises input values against the type's property definitions.
/// Read-only values are dropped silently, as HubSpot does for calculated properties.
pub fn validate_values(
    def: &ObjectTypeDef,
    input: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<(String, String)>, Vec<InvalidValue>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (name, raw) in input {
        let Some(prop) = def.property(name) else {
            errors.push(InvalidValue {
                name: name.clone(),
                code: "PROPERTY_DOESNT_EXIST",
                message: format!("Property \"{name}\" does not exist"),
            });
            continue;
        };
        if prop.read_only_value {
            continue;
        }
        let value = match raw {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if value.is_empty() {
            out.push((name.clone(), value));
            continue;
        }
        let invalid = |code: &'static str, message: String| InvalidValue {
            name: name.clone(),
            code,
            message,
        };
        let checked = match prop.ptype {
            PropType::Number => value.parse::<f64>().map(|_| value.clone()).map_err(|_| {
                invalid(
                    "INVALID_DECIMAL",
                    format!("{value} was not a valid number."),
                )
            }),
            PropType::Bool => match value.to_ascii_lowercase().as_str() {
                "true" | "false" => Ok(value.to_ascii_lowercase()),
                _ => Err(invalid(
                    "INVALID_BOOLEAN",
                    format!("{value} was not a valid boolean."),
                )),
            },
            PropType::Datetime => super::catalog::parse_instant_ms(&value)
                .map(iso_ms)
                .ok_or_else(|| invalid("INVALID_DATE", format!("{value} was not a valid date."))),
            PropType::Date => super::catalog::parse_instant_ms(&value)
                .filter(|ms| ms.rem_euclid(86_400_000) == 0)
                .map(super::catalog::iso_date)
                .ok_or_else(|| {
                    invalid(
                        "INVALID_DATE",
                        format!("{value} is at not midnight! Dates must be at midnight UTC."),
                    )
                }),
            PropType::Enumeration => {
                let allowed: Vec<&str> = prop.options.iter().map(|o| o.value.as_str()).collect();
                let all_ok = value.split(';').all(|v| allowed.contains(&v));
                if all_ok || allowed.is_empty() {
                    Ok(value.clone())
                } else {
                    Err(invalid(
                        "INVALID_OPTION",
                        format!(
                            "{value} was not one of the allowed options: [{}]",
                            allowed.join(", ")
                        ),
                    ))
                }
            }
            PropType::String | PropType::PhoneNumber => Ok(value.clone()),
        };
        match checked {
            Ok(v) => out.push((name.clone(), v)),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The 400 body for invalid property values, in HubSpot's exact (and odd) format: the
/// message embeds a JSON list of `{isValid,message,error,name}`.
#[must_use]
pub fn invalid_values_error(errors: &[InvalidValue]) -> super::errors::ApiError {
    // HubSpot's key order (isValid, message, error, name), which a JSON map would sort away.
    let quote = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let inner: Vec<String> = errors
        .iter()
        .map(|e| {
            format!(
                "{{\"isValid\":false,\"message\":{},\"error\":{},\"name\":{}}}",
                quote(&e.message),
                quote(e.code),
                quote(&e.name)
            )
        })
        .collect();
    let message = format!("Property values were not valid: [{}]", inner.join(","));
    let details = errors
        .iter()
        .map(|e| serde_json::json!({"message": e.message, "code": e.code, "context": {"propertyName": [e.name]}}))
        .collect();
    super::errors::ApiError::validation(message).with_errors(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> PortalData {
        PortalData::seeded(
            1,
            42,
            &RecordCounts {
                contacts: 100,
                companies: 10,
                deals: 10,
                custom: 10,
            },
        )
    }

    #[test]
    fn overlay_hides_archived_and_appends_created() {
        let mut d = data();
        let s = &mut d.objects[0];
        assert_eq!(s.iter_live(1).count(), 100);
        assert!(s.archive(5, now_ms()));
        let id = s.create(vec![("email".into(), "new@example.com".into())], now_ms());
        assert_eq!(id, 101);
        let ids: Vec<u64> = s.iter_live(1).map(|r| r.id()).collect();
        assert_eq!(ids.len(), 100);
        assert!(!ids.contains(&5) && ids.contains(&101));
        assert_eq!(
            s.iter_archived(1).map(|r| r.id()).collect::<Vec<_>>(),
            vec![5]
        );
        assert_eq!(s.find_unique("email", "NEW@example.com"), Some(101));
    }

    #[test]
    fn update_changes_modified_date_only_when_a_value_changes() {
        let mut d = data();
        let s = &mut d.objects[0];
        let before = s.get(3).unwrap().updated_ms();
        let same = s
            .get(3)
            .unwrap()
            .value_of("firstname")
            .unwrap()
            .into_owned();
        let changed = s
            .update(3, vec![("firstname".into(), same)], now_ms())
            .unwrap();
        assert!(changed.is_empty());
        assert_eq!(s.get(3).unwrap().updated_ms(), before);
        let now = now_ms();
        let changed = s
            .update(3, vec![("firstname".into(), "Zed".into())], now)
            .unwrap();
        assert_eq!(
            changed,
            vec![("firstname".to_owned(), Some("Zed".to_owned()))]
        );
        let r = s.get(3).unwrap();
        assert_eq!(r.updated_ms(), now);
        assert_eq!(r.value_of("lastmodifieddate").unwrap(), iso_ms(now));
    }

    #[test]
    fn seeded_email_moves_with_updates() {
        let mut d = data();
        let s = &mut d.objects[0];
        let email = s.get(7).unwrap().value_of("email").unwrap().into_owned();
        assert_eq!(s.find_unique("email", &email), Some(7));
        s.update(
            7,
            vec![("email".into(), "moved@example.com".into())],
            now_ms(),
        );
        assert_eq!(s.find_unique("email", &email), None);
        assert_eq!(s.find_unique("email", "moved@example.com"), Some(7));
    }
}
