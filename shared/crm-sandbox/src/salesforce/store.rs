//! One org's records: lazily generated base data plus an overlay of changes, and the
//! per-org change log.
//!
//! Record `i` of an object (for `i < base_count`) is a pure function of
//! `(org seed, object, i)`; nothing is stored for it until it is changed or deleted. Created
//! records get indices from `base_count` up. Changed and created records live in `live`,
//! deleted ones in `deleted`; both are ordinary maps keyed by index, so memory grows with
//! the number of changes, not with the data set.
//!
//! Modification stamps of generated records increase with the index over a two-year window
//! that ends at the org's anchor; every change stamps `LastModifiedDate` and
//! `SystemModstamp` with the (monotonic, whole-second) current time, so changed records
//! sort after all untouched ones, as they do in a real org.

use super::ids::make_id;
use super::schema::{FieldDef, FieldType, Gen, ObjectDef, Schema};
use super::value::{Address, Val, rfc3339};
use crate::common::datagen::{self, City};
use crate::common::rng::{SeededRng, derive_index, derive_seed, mix64};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A stored record: canonical field name → value.
pub type Record = HashMap<String, Val>;

/// A deleted record, kept for `queryAll` and `/deleted`.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// The record as it was, with its final stamps.
    pub record: Record,
    /// When it was deleted (seconds).
    pub deleted_at: i64,
    /// Hard-deleted (purged from the recycle bin, or deleted with Bulk `hardDelete`): gone
    /// from `queryAll` and reads, still listed by `/deleted`, as in a real org.
    pub purged: bool,
}

/// The records of one object.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    /// Seed of this object's generated records.
    pub seed: u64,
    /// Number of generated records.
    pub base_count: u64,
    /// Next index for a created record.
    pub next_index: u64,
    /// Created and changed records.
    pub live: BTreeMap<u64, Record>,
    /// Deleted records.
    pub deleted: BTreeMap<u64, Deleted>,
}

/// CDC-style change type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeType {
    /// Record created.
    Create,
    /// Record updated.
    Update,
    /// Record deleted.
    Delete,
}

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOrigin {
    /// Through the REST API.
    Api,
    /// Through the admin surface.
    Admin,
}

/// One entry of the org's change log, shaped after the CDC `ChangeEventHeader`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEvent {
    /// Position in the org's log, from 1.
    pub sequence_number: u64,
    /// Object name.
    pub entity_name: String,
    /// The record's id.
    pub record_id: String,
    /// What happened.
    pub change_type: ChangeType,
    /// Where the change came from.
    pub change_origin: ChangeOrigin,
    /// Fields whose values changed (including the stamps).
    pub changed_fields: Vec<String>,
    /// Fields set to null.
    pub nulled_fields: Vec<String>,
    /// Commit time, epoch milliseconds.
    pub commit_timestamp: i64,
    /// User who made the change.
    pub commit_user: String,
    /// New values of the changed fields (all fields on create).
    pub values: Map<String, Value>,
}

/// Static facts about an org that record generation needs.
#[derive(Debug, Clone)]
pub struct OrgMeta {
    /// Org name (tenant slug) used in admin routes.
    pub name: String,
    /// Org id (`00D…`).
    pub org_id: String,
    /// Two-character code embedded in record ids.
    pub code: String,
    /// Data seed.
    pub seed: u64,
    /// End of the generated data window (seconds).
    pub anchor: i64,
    /// Length of the generated data window (seconds).
    pub span: i64,
}

/// The mutable part of an org.
#[derive(Debug)]
pub struct OrgData {
    /// The org's schema.
    pub schema: Schema,
    /// Records by canonical object name.
    pub objects: HashMap<String, ObjectStore>,
    /// The change log.
    pub changes: Vec<ChangeEvent>,
    last_stamp: i64,
}

/// A per-record generator context: derives any field of one generated record.
pub struct GenRecord<'a> {
    meta: &'a OrgMeta,
    data: &'a OrgData,
    obj: &'a ObjectDef,
    index: u64,
    rec_seed: u64,
    stamp: i64,
    persona: std::cell::OnceCell<Persona>,
}

struct Persona {
    first: &'static str,
    last: &'static str,
    company: String,
    city: City,
    street: String,
    postal: String,
}

/// A record to read: generated on the fly or stored.
#[allow(clippy::large_enum_variant)] // short-lived, built per record on the stack
pub enum RecordView<'a> {
    /// A generated record nobody changed.
    Generated(GenRecord<'a>),
    /// A created or changed record.
    Stored(&'a Record),
    /// A deleted record.
    Deleted(&'a Deleted),
}

impl OrgData {
    /// A fresh org with generated data.
    #[must_use]
    pub fn new(meta: &OrgMeta, schema: Schema, counts: &[(String, u64)]) -> Self {
        let objects = schema
            .objects()
            .iter()
            .map(|o| {
                let n = counts
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&o.name))
                    .map_or(0, |(_, c)| *c);
                (
                    o.name.clone(),
                    ObjectStore {
                        seed: derive_seed(meta.seed, &[&meta.name, &o.name]),
                        base_count: n,
                        next_index: n,
                        live: BTreeMap::new(),
                        deleted: BTreeMap::new(),
                    },
                )
            })
            .collect();
        Self {
            schema,
            objects,
            changes: Vec::new(),
            last_stamp: meta.anchor,
        }
    }

    /// The object's definition and store.
    #[must_use]
    pub fn object(&self, name: &str) -> Option<(&Arc<ObjectDef>, &ObjectStore)> {
        let def = self.schema.object(name)?;
        Some((def, self.objects.get(&def.name)?))
    }

    /// A stamp for a change made now: whole seconds, never earlier than the previous one.
    pub fn next_stamp(&mut self) -> i64 {
        let now = chrono::Utc::now().timestamp();
        self.last_stamp = self.last_stamp.max(now);
        self.last_stamp
    }

    /// Reads a record by index (live, deleted or generated); `None` if it does not exist.
    #[must_use]
    pub fn view<'a>(
        &'a self,
        meta: &'a OrgMeta,
        obj: &'a ObjectDef,
        index: u64,
    ) -> Option<RecordView<'a>> {
        let store = self.objects.get(&obj.name)?;
        if let Some(r) = store.live.get(&index) {
            return Some(RecordView::Stored(r));
        }
        if let Some(d) = store.deleted.get(&index) {
            return (!d.purged).then_some(RecordView::Deleted(d));
        }
        (index < store.base_count)
            .then(|| RecordView::Generated(GenRecord::new(meta, self, obj, store, index)))
    }
}

/// Modification stamp of generated record `index`: increases with the index.
#[must_use]
pub fn generated_stamp(meta: &OrgMeta, base_count: u64, index: u64) -> i64 {
    if base_count == 0 {
        return meta.anchor;
    }
    let start = meta.anchor - meta.span;
    let offset =
        (i128::from(meta.span) * i128::from(index as i64 + 1)) / i128::from(base_count as i64);
    start + offset as i64
}

impl<'a> GenRecord<'a> {
    fn new(
        meta: &'a OrgMeta,
        data: &'a OrgData,
        obj: &'a ObjectDef,
        store: &ObjectStore,
        index: u64,
    ) -> Self {
        Self {
            meta,
            data,
            obj,
            index,
            rec_seed: derive_index(store.seed, index),
            stamp: generated_stamp(meta, store.base_count, index),
            persona: std::cell::OnceCell::new(),
        }
    }

    fn persona(&self) -> &Persona {
        self.persona.get_or_init(|| {
            let mut r = SeededRng::new(mix64(self.rec_seed ^ 0x7e45_0a11));
            let first = datagen::first_name(&mut r);
            let last = datagen::last_name(&mut r);
            let company = datagen::company(&mut r);
            let city = datagen::city(&mut r);
            let street = datagen::street(&mut r);
            let postal = datagen::postal_code(&mut r, &city);
            Persona {
                first,
                last,
                company,
                city,
                street,
                postal,
            }
        })
    }

    /// The value of `field` for this record.
    #[must_use]
    pub fn get(&self, field: &FieldDef) -> Val {
        let mut rng = SeededRng::new(mix64(self.rec_seed ^ field.hash));
        if field.null_rate > 0.0 && rng.chance(field.null_rate) {
            return Val::Null;
        }
        let v = self.generate(field, &mut rng);
        if field.ftype == FieldType::Address || matches!(v, Val::Null) {
            return v;
        }
        // Fields retyped at run time keep their generator; convert to the new type.
        v.coerce(field.ftype)
    }

    fn generate(&self, field: &FieldDef, rng: &mut SeededRng) -> Val {
        let s = |x: &str| Val::Str(x.to_owned());
        match &field.generator {
            Gen::Id => Val::Str(make_id(&self.obj.key_prefix, &self.meta.code, self.index)),
            Gen::IsDeleted => Val::Bool(false),
            Gen::LastModifiedDate | Gen::SystemModstamp => Val::DateTime(self.stamp),
            Gen::CreatedDate => {
                let start = self.meta.anchor - self.meta.span;
                let max_age = (self.stamp - start).clamp(0, 90 * 86_400);
                Val::DateTime(self.stamp - rng.below(max_age as u64 + 1) as i64)
            }
            Gen::User => {
                let users = self
                    .data
                    .objects
                    .get("User")
                    .map_or(1, |u| u.base_count.max(1));
                Val::Str(make_id("005", &self.meta.code, rng.below(users)))
            }
            Gen::FirstName => s(self.persona().first),
            Gen::LastName => s(self.persona().last),
            Gen::FullName => {
                if field.name == "Name" {
                    let p = self.persona();
                    Val::Str(format!("{} {}", p.first, p.last))
                } else {
                    Val::Str(format!(
                        "{} {}",
                        datagen::first_name(rng),
                        datagen::last_name(rng)
                    ))
                }
            }
            Gen::Company => Val::Str(self.persona().company.clone()),
            Gen::Email => {
                let p = self.persona();
                Val::Str(datagen::email(
                    p.first,
                    p.last,
                    &datagen::domain_for(&p.company),
                ))
            }
            Gen::Website => Val::Str(format!(
                "https://www.{}",
                datagen::domain_for(&self.persona().company)
            )),
            Gen::Phone => Val::Str(datagen::phone(rng, &self.persona().city)),
            Gen::Title => s(datagen::title(rng)),
            Gen::Department => s(datagen::department(rng)),
            Gen::Street => Val::Str(self.persona().street.clone()),
            Gen::City => s(self.persona().city.city),
            Gen::State => {
                let st = self.persona().city.state;
                if st.is_empty() { Val::Null } else { s(st) }
            }
            Gen::PostalCode => Val::Str(self.persona().postal.clone()),
            Gen::Country => s(self.persona().city.country),
            Gen::Picklist => {
                if field.picklist.is_empty() {
                    Val::Null
                } else {
                    Val::Str(rng.pick(&field.picklist).value.clone())
                }
            }
            Gen::Multipicklist => {
                if field.picklist.is_empty() {
                    return Val::Null;
                }
                let n = 1 + rng.below(3) as usize;
                let mut chosen: Vec<&str> = Vec::new();
                for _ in 0..n {
                    let v = rng.pick(&field.picklist).value.as_str();
                    if !chosen.contains(&v) {
                        chosen.push(v);
                    }
                }
                Val::Str(chosen.join(";"))
            }
            Gen::Bool(p) => Val::Bool(rng.chance(*p)),
            Gen::Int(lo, hi) => Val::Int(rng.range_i64(*lo, *hi)),
            Gen::Number(lo, hi) => {
                Val::Num(((lo + rng.unit() * (hi - lo)) * 100.0).round() / 100.0)
            }
            Gen::Money(lo, hi) => Val::Num(datagen::amount(rng, *lo, *hi)),
            Gen::DateNear(lo, hi) => {
                let base = chrono::DateTime::from_timestamp(self.stamp, 0)
                    .unwrap_or_default()
                    .date_naive();
                Val::Date(base + chrono::Duration::days(rng.range_i64(*lo, *hi)))
            }
            Gen::DatetimeInLife => Val::DateTime(self.stamp - rng.below(90 * 86_400) as i64),
            Gen::Phrase(n) => Val::Str(datagen::phrase(rng, *n)),
            Gen::Sentence => Val::Str(datagen::sentence(rng)),
            Gen::Code(p) => Val::Str(format!("{p}-{:06}", self.index)),
            Gen::PairCode(p) => Val::Str(format!("{p}-{:06}", self.index / 2)),
            Gen::DealName => Val::Str(format!(
                "{} - {}",
                self.persona().company,
                datagen::phrase(rng, 2)
            )),
            Gen::Reference => {
                let Some(target) = field.reference_to.first().and_then(|t| self.data.object(t))
                else {
                    return Val::Null;
                };
                if target.1.base_count == 0 {
                    return Val::Null;
                }
                Val::Str(make_id(
                    &target.0.key_prefix,
                    &self.meta.code,
                    rng.below(target.1.base_count),
                ))
            }
            Gen::Address(prefix) => {
                let get = |suffix: &str| -> Option<String> {
                    let f = self.obj.field(&format!("{prefix}{suffix}"))?;
                    self.get(f).as_str().map(str::to_owned)
                };
                Val::Address(Box::new(Address {
                    city: get("City"),
                    country: get("Country"),
                    postal_code: get("PostalCode"),
                    state: get("State"),
                    street: get("Street"),
                }))
            }
            Gen::Null => Val::Null,
        }
    }

    /// Materialises every field (for turning a generated record into a stored one).
    #[must_use]
    pub fn materialise(&self) -> Record {
        self.obj
            .fields
            .iter()
            .filter(|f| f.ftype != FieldType::Address)
            .map(|f| (f.name.clone(), self.get(f)))
            .collect()
    }
}

impl RecordView<'_> {
    /// The value of `field`, converted to the field's current type.
    #[must_use]
    pub fn get(&self, obj: &ObjectDef, field: &FieldDef) -> Val {
        match self {
            Self::Generated(g) => g.get(field),
            Self::Stored(r) => stored_get(r, obj, field, false),
            Self::Deleted(d) => stored_get(&d.record, obj, field, true),
        }
    }

    /// `true` for deleted records.
    #[must_use]
    pub fn is_deleted(&self) -> bool {
        matches!(self, Self::Deleted(_))
    }

    /// The record's id.
    #[must_use]
    pub fn id(&self, obj: &ObjectDef) -> String {
        obj.field("Id")
            .and_then(|f| self.get(obj, f).as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

fn stored_get(r: &Record, obj: &ObjectDef, field: &FieldDef, deleted: bool) -> Val {
    if field.name == "IsDeleted" {
        return Val::Bool(deleted);
    }
    if field.ftype == FieldType::Address {
        let prefix = field.name.strip_suffix("Address").unwrap_or("");
        let get = |suffix: &str| -> Option<String> {
            let f = obj.field(&format!("{prefix}{suffix}"))?;
            r.get(&f.name)
                .cloned()
                .and_then(|v| v.coerce(FieldType::String).as_str().map(str::to_owned))
        };
        return Val::Address(Box::new(Address {
            city: get("City"),
            country: get("Country"),
            postal_code: get("PostalCode"),
            state: get("State"),
            street: get("Street"),
        }));
    }
    r.get(&field.name)
        .cloned()
        .map_or(Val::Null, |v| v.coerce(field.ftype))
}

/// A record's fields as JSON, for admin views and change events.
#[must_use]
pub fn record_json(view: &RecordView<'_>, obj: &ObjectDef) -> Map<String, Value> {
    obj.fields
        .iter()
        .map(|f| (f.name.clone(), view.get(obj, f).to_json(f.ftype)))
        .collect()
}

/// Seconds → RFC 3339, re-exported for admin views.
#[must_use]
pub fn stamp_rfc3339(secs: i64) -> String {
    rfc3339(secs)
}
