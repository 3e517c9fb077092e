//! A [`CompiledPlan`]: a `MappingPlan` compiled once (transforms pre-parsed, target names
//! interned, rules grouped per object and direction) and applied per record.

use std::collections::HashMap;
use std::sync::Arc;

use prost_types::Value;
use prost_types::value::Kind;
use syncline_proto::common::v1::Record;
use syncline_proto::mapping::v1::{
    CompiledFieldRule, FieldMappingViolation, MappingPlan, ObjectPlan, ViolationKind, WriteGuard,
};
use syncline_proto::schema::v1::FieldType;
use syncline_proto::wire::RecordParts;

use crate::transform::{self, Step, TransformError};

/// Which way a plan maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Provider record to model record (reads).
    Inbound,
    /// Model record to provider record (writes).
    Outbound,
}

impl Direction {
    /// `inbound` or `outbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// A plan rule that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object}: {direction} rule {index} (target `{target_field}`): {message}")]
pub struct CompileError {
    /// Model object of the rule.
    pub object: String,
    pub direction: &'static str,
    /// Index of the rule in its direction's list.
    pub index: usize,
    pub target_field: String,
    pub message: String,
}

/// A record the plan has no object for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the mapping plan has no object `{0}`")]
pub struct UnknownObject(pub String);

/// One field that could not be mapped; the field is left out of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The target field that was not written.
    pub field: Arc<str>,
    pub message: String,
}

/// The result of mapping one record: only the plan's target fields, plus per-field errors.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedRecord {
    /// Target object (the model object inbound, the provider object outbound).
    pub object: Arc<str>,
    /// The source record's id.
    pub id: String,
    /// Mapped fields in rule order; keys are the plan's interned target names.
    pub fields: Vec<(Arc<str>, Value)>,
    /// Fields that failed, each absent from `fields`.
    pub errors: Vec<FieldError>,
    /// Targets a write guard kept out of `fields` (outbound, guarded apply only): the
    /// existing CRM record already has a value, or the record is not being created.
    pub skipped: Vec<Arc<str>>,
    pub system_modstamp: Option<prost_types::Timestamp>,
    pub deleted: bool,
}

impl MappedRecord {
    /// The value of a mapped field.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(name, _)| name.as_ref() == field)
            .map(|(_, v)| v)
    }

    /// As the parts of a `syncline.common.v1.Record`, fields in rule order: what a sync
    /// encodes for each record read, without building the record's map first.
    pub fn record_parts(&self) -> RecordParts<'_, impl Iterator<Item = (&str, &Value)> + Clone> {
        RecordParts {
            object: &self.object,
            id: &self.id,
            fields: self
                .fields
                .iter()
                .map(|(name, value)| (name.as_ref(), value)),
            system_modstamp: self.system_modstamp.as_ref(),
            deleted: self.deleted,
        }
    }

    /// As a `syncline.common.v1.Record`.
    pub fn into_record(self) -> Record {
        Record {
            object: self.object.to_string(),
            id: self.id,
            fields: self
                .fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            system_modstamp: self.system_modstamp,
            deleted: self.deleted,
        }
    }
}

/// FxHash (rustc's hasher): fast for short field names; the plan's keys are not chosen by
/// an attacker who could aim collisions at it in any way that matters (the plan is ours).
#[derive(Debug, Clone, Copy, Default)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write(&[i]);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// When an outbound rule may write its target (the manifest's write guard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Whenever the source value is there.
    Always,
    /// Only while the existing CRM value is empty (missing, null, `""` or an empty list).
    IfEmpty,
    /// Only when the record is being created.
    OnCreate,
}

impl Guard {
    fn from_proto(guard: i32) -> Option<Self> {
        match WriteGuard::try_from(guard).ok()? {
            WriteGuard::Unspecified | WriteGuard::Always => Some(Guard::Always),
            WriteGuard::IfEmpty => Some(Guard::IfEmpty),
            WriteGuard::OnCreate => Some(Guard::OnCreate),
        }
    }
}

/// What a guarded apply knows about the CRM record being written.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    /// Guards are not applied (inbound, or an unguarded outbound apply).
    Unguarded,
    /// The record is being created: every rule writes.
    Create,
    /// The record exists with these values.
    Update(&'a Record),
}

/// Whether a CRM value counts as empty for `if_empty`.
fn is_empty_value(value: Option<&Value>) -> bool {
    match value.and_then(|v| v.kind.as_ref()) {
        None | Some(Kind::NullValue(_)) => true,
        Some(Kind::StringValue(s)) => s.is_empty(),
        Some(Kind::ListValue(l)) => l.values.is_empty(),
        Some(_) => false,
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    /// Slots (indexes into the direction's distinct source fields) of the fields read.
    sources: Box<[u32]>,
    target: Arc<str>,
    steps: Box<[Step]>,
    /// Coercion to the target type after the steps; `None` when the type is unspecified.
    coerce: Option<FieldType>,
    /// A missing source still yields a value (the steps hold a default).
    fills_missing: bool,
    /// When the target may be written (outbound; inbound rules are `Always`).
    guard: Guard,
}

impl Rule {
    /// Whether the guard lets this rule write its target of `target`.
    fn may_write(&self, target: Target<'_>) -> bool {
        match (self.guard, target) {
            (Guard::Always, _) | (_, Target::Unguarded | Target::Create) => true,
            (Guard::OnCreate, Target::Update(_)) => false,
            (Guard::IfEmpty, Target::Update(existing)) => {
                is_empty_value(existing.fields.get(self.target.as_ref()))
            }
        }
    }
}

/// The rules of one direction of one object.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
    /// The distinct source fields, by slot.
    sources: Vec<String>,
    /// Source field name to slot.
    slot_of: FxMap<Box<str>, u32>,
    /// How many rules read each slot (a value read once can be moved, not copied).
    uses: Vec<u32>,
}

impl Rules {
    fn compile(
        object: &str,
        direction: Direction,
        rules: &[CompiledFieldRule],
    ) -> Result<Self, CompileError> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut compiled = Vec::with_capacity(rules.len());
        let mut sources: Vec<String> = Vec::new();
        let mut slot_of: FxMap<Box<str>, u32> = FxMap::default();
        for (index, rule) in rules.iter().enumerate() {
            let error = |message: String| CompileError {
                object: object.to_owned(),
                direction: direction.as_str(),
                index,
                target_field: rule.target_field.clone(),
                message,
            };
            if rule.target_field.is_empty() {
                return Err(error("has no target field".into()));
            }
            if rule.source_fields.is_empty() || rule.source_fields.iter().any(String::is_empty) {
                return Err(error("needs at least one non-empty source field".into()));
            }
            if seen.insert(&rule.target_field, index).is_some() {
                return Err(error("another rule writes the same target field".into()));
            }
            let steps = rule
                .transforms
                .iter()
                .map(transform::compile)
                .collect::<Result<Vec<_>, TransformError>>()
                .map_err(|e| error(e.0))?;
            if rule.source_fields.len() > 1
                && !matches!(steps.first(), Some(Step::Concatenate { .. }))
            {
                return Err(error(
                    "several source fields need `concatenate` as the first transform".into(),
                ));
            }
            let guard = Guard::from_proto(rule.write_guard)
                .ok_or_else(|| error("unknown write guard".into()))?;
            let coerce = match FieldType::try_from(rule.target_type) {
                Ok(FieldType::Unspecified) => None,
                Ok(ty) => Some(ty),
                Err(_) => return Err(error("unknown target type".into())),
            };
            let mut slots = Vec::with_capacity(rule.source_fields.len());
            for field in &rule.source_fields {
                let next = u32::try_from(sources.len())
                    .map_err(|_| error("too many source fields".into()))?;
                let slot = *slot_of.entry(field.as_str().into()).or_insert_with(|| {
                    sources.push(field.clone());
                    next
                });
                slots.push(slot);
            }
            compiled.push(Rule {
                sources: slots.into_boxed_slice(),
                target: Arc::from(rule.target_field.as_str()),
                fills_missing: steps.iter().any(Step::fills_null),
                steps: steps.into_boxed_slice(),
                coerce,
                guard,
            });
        }
        let mut uses = vec![0u32; sources.len()];
        for rule in &compiled {
            for &slot in &*rule.sources {
                uses[slot as usize] += 1;
            }
        }
        Ok(Self {
            rules: compiled,
            sources,
            slot_of,
            uses,
        })
    }

    /// Like [`Rules::apply`], consuming the record: values read by one rule are moved
    /// into the output instead of copied (what a worker does with a record it just read).
    pub fn apply_owned(&self, object: &Arc<str>, record: Record) -> MappedRecord {
        self.apply_owned_to(object, record, Target::Unguarded)
    }

    fn apply_owned_to(
        &self,
        object: &Arc<str>,
        record: Record,
        target: Target<'_>,
    ) -> MappedRecord {
        let mut slots: Vec<Option<Value>> = vec![None; self.sources.len()];
        for (name, value) in record.fields {
            if let Some(&slot) = self.slot_of.get(name.as_str()) {
                slots[slot as usize] = Some(value);
            }
        }
        let mut take = |slot: u32| -> Option<Value> {
            let i = slot as usize;
            if self.uses[i] == 1 {
                slots[i].take()
            } else {
                slots[i].clone()
            }
        };
        let mut fields = Vec::with_capacity(self.rules.len());
        let mut errors = Vec::new();
        let mut skipped = Vec::new();
        for rule in &self.rules {
            if !rule.may_write(target) {
                skipped.push(rule.target.clone());
                continue;
            }
            let input = match &*rule.sources {
                [one] => match take(*one) {
                    Some(v) => v,
                    None if rule.fills_missing => transform::null(),
                    None => continue,
                },
                many => {
                    let values: Vec<Option<Value>> = many.iter().map(|&s| take(s)).collect();
                    if values.iter().all(Option::is_none) && !rule.fills_missing {
                        continue;
                    }
                    transform::list(
                        values
                            .into_iter()
                            .map(|v| v.unwrap_or_else(transform::null))
                            .collect(),
                    )
                }
            };
            match run(rule, input) {
                Ok(value) => fields.push((rule.target.clone(), value)),
                Err(e) => errors.push(FieldError {
                    field: rule.target.clone(),
                    message: e.0,
                }),
            }
        }
        MappedRecord {
            object: object.clone(),
            id: record.id,
            fields,
            errors,
            skipped,
            system_modstamp: record.system_modstamp,
            deleted: record.deleted,
        }
    }

    /// The distinct source fields the rules read, in rule order: the provider fields a
    /// worker asks the CRM for (inbound).
    pub fn source_fields(&self) -> &[String] {
        &self.sources
    }

    /// The target fields, in rule order.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.target.as_ref())
    }

    /// The targets whose write depends on the existing CRM value (`if_empty`): the fields
    /// a worker must read from the CRM record before a guarded update.
    pub fn if_empty_targets(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .filter(|r| r.guard == Guard::IfEmpty)
            .map(|r| r.target.as_ref())
    }

    /// Maps `record`'s fields into `object`. Only rule targets are ever written; a rule
    /// whose sources are all absent is skipped (absent means "not read or not changed")
    /// unless it fills missing values with a default.
    pub fn apply(&self, object: &Arc<str>, record: &Record) -> MappedRecord {
        self.apply_to(object, record, Target::Unguarded)
    }

    /// [`Rules::apply`] for an outbound write with the write guards enforced: `existing`
    /// is the CRM record as it is now, `None` when the write creates it. A guarded rule
    /// that may not write (`on_create` on an update, `if_empty` over a non-empty value) is
    /// left out and listed in [`MappedRecord::skipped`].
    pub fn apply_guarded(
        &self,
        object: &Arc<str>,
        record: &Record,
        existing: Option<&Record>,
    ) -> MappedRecord {
        let target = existing.map_or(Target::Create, Target::Update);
        self.apply_to(object, record, target)
    }

    fn apply_to(&self, object: &Arc<str>, record: &Record, target: Target<'_>) -> MappedRecord {
        // Resolve every source once: walk the record when it is not much larger than what
        // the plan reads (one fast hash per field), else look each source up.
        let mut slots: Vec<Option<&Value>> = vec![None; self.sources.len()];
        if record.fields.len() <= 4 * self.sources.len() {
            for (name, value) in &record.fields {
                if let Some(&slot) = self.slot_of.get(name.as_str()) {
                    slots[slot as usize] = Some(value);
                }
            }
        } else {
            for (slot, name) in self.sources.iter().enumerate() {
                slots[slot] = record.fields.get(name);
            }
        }
        let mut fields = Vec::with_capacity(self.rules.len());
        let mut errors = Vec::new();
        let mut skipped = Vec::new();
        for rule in &self.rules {
            if !rule.may_write(target) {
                skipped.push(rule.target.clone());
                continue;
            }
            let input = match &*rule.sources {
                [one] => match slots[*one as usize] {
                    Some(v) => match run_ref(rule, v) {
                        Ok(value) => {
                            fields.push((rule.target.clone(), value));
                            continue;
                        }
                        Err(e) => {
                            errors.push(FieldError {
                                field: rule.target.clone(),
                                message: e.0,
                            });
                            continue;
                        }
                    },
                    None if rule.fills_missing => transform::null(),
                    None => continue,
                },
                many => {
                    let mut any = false;
                    let values = many
                        .iter()
                        .map(|&slot| match slots[slot as usize] {
                            Some(v) => {
                                any = true;
                                v.clone()
                            }
                            None => transform::null(),
                        })
                        .collect();
                    if !any && !rule.fills_missing {
                        continue;
                    }
                    transform::list(values)
                }
            };
            match run(rule, input) {
                Ok(value) => fields.push((rule.target.clone(), value)),
                Err(e) => errors.push(FieldError {
                    field: rule.target.clone(),
                    message: e.0,
                }),
            }
        }
        MappedRecord {
            object: object.clone(),
            id: record.id.clone(),
            fields,
            errors,
            skipped,
            system_modstamp: record.system_modstamp,
            deleted: record.deleted,
        }
    }
}

/// Runs a rule on a borrowed source value: the first step reads it in place.
fn run_ref(rule: &Rule, value: &Value) -> Result<Value, TransformError> {
    match rule.steps.split_first() {
        None => finish(rule, value.clone()),
        Some((first, rest)) => {
            let mut value = first.apply_ref(value)?;
            for step in rest {
                value = step.apply(value)?;
            }
            finish(rule, value)
        }
    }
}

fn run(rule: &Rule, mut value: Value) -> Result<Value, TransformError> {
    for step in &rule.steps {
        value = step.apply(value)?;
    }
    finish(rule, value)
}

/// Coerces a rule's last value to the target type.
fn finish(rule: &Rule, value: Value) -> Result<Value, TransformError> {
    match rule.coerce {
        // Fast path: text into a text field needs no conversion.
        Some(
            FieldType::String
            | FieldType::TextArea
            | FieldType::Email
            | FieldType::Phone
            | FieldType::Url
            | FieldType::Picklist
            | FieldType::Id
            | FieldType::Reference,
        ) if matches!(value.kind, Some(Kind::StringValue(_))) => Ok(value),
        Some(ty) => transform::coerce(value, ty),
        None => Ok(value),
    }
}

/// One object of a plan, compiled.
#[derive(Debug, Clone)]
pub struct CompiledObject {
    object: Arc<str>,
    provider_object: Arc<str>,
    external_id_field: String,
    inbound: Rules,
    outbound: Rules,
}

impl CompiledObject {
    fn compile(plan: &ObjectPlan) -> Result<Self, CompileError> {
        Ok(Self {
            object: Arc::from(plan.object.as_str()),
            provider_object: Arc::from(plan.provider_object.as_str()),
            external_id_field: plan.external_id_field.clone(),
            inbound: Rules::compile(&plan.object, Direction::Inbound, &plan.inbound)?,
            outbound: Rules::compile(&plan.object, Direction::Outbound, &plan.outbound)?,
        })
    }

    /// The model object key.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// The CRM object.
    pub fn provider_object(&self) -> &str {
        &self.provider_object
    }

    /// The provider field used to match records on outbound upserts ("" if none).
    pub fn external_id_field(&self) -> &str {
        &self.external_id_field
    }

    /// The rules of one direction.
    pub fn rules(&self, direction: Direction) -> &Rules {
        match direction {
            Direction::Inbound => &self.inbound,
            Direction::Outbound => &self.outbound,
        }
    }

    /// Maps a provider record to a model record.
    pub fn apply_inbound(&self, record: &Record) -> MappedRecord {
        self.inbound.apply(&self.object, record)
    }

    /// Maps a model record to a provider record.
    pub fn apply_outbound(&self, record: &Record) -> MappedRecord {
        self.outbound.apply(&self.provider_object, record)
    }

    /// Maps a model record to a provider record with the write guards enforced: `existing`
    /// is the CRM record as it is now (`None`: the write creates it). A guarded field is
    /// never written over a non-empty existing value (`if_empty`) or on an update
    /// (`on_create`). `existing` must hold the current values of the `if_empty` targets
    /// (`rules(Direction::Outbound).if_empty_targets()`): a field missing from it counts as
    /// empty.
    pub fn apply_outbound_guarded(
        &self,
        record: &Record,
        existing: Option<&Record>,
    ) -> MappedRecord {
        self.outbound
            .apply_guarded(&self.provider_object, record, existing)
    }

    /// [`CompiledObject::apply_outbound_guarded`], consuming the record.
    pub fn apply_outbound_guarded_owned(
        &self,
        record: Record,
        existing: Option<&Record>,
    ) -> MappedRecord {
        let target = existing.map_or(Target::Create, Target::Update);
        self.outbound
            .apply_owned_to(&self.provider_object, record, target)
    }

    /// [`CompiledObject::apply_inbound`], consuming the record (moves instead of copies).
    pub fn apply_inbound_owned(&self, record: Record) -> MappedRecord {
        self.inbound.apply_owned(&self.object, record)
    }

    /// [`CompiledObject::apply_outbound`], consuming the record.
    pub fn apply_outbound_owned(&self, record: Record) -> MappedRecord {
        self.outbound.apply_owned(&self.provider_object, record)
    }
}

/// A rule of a plan that schema drift broke, left out by
/// [`CompiledPlan::compile_without_broken`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenRule {
    /// Model object of the rule.
    pub object: String,
    /// The CRM object.
    pub provider_object: String,
    pub direction: Direction,
    /// Model fields (inbound: the target; outbound: the sources).
    pub model_fields: Vec<String>,
    /// CRM fields (inbound: the sources; outbound: the target).
    pub provider_fields: Vec<String>,
    /// The provider field the drift is about ("" when the CRM object itself is gone).
    pub broken_field: String,
    /// What the drift did (`ViolationKind`).
    pub kind: ViolationKind,
    /// Mapping's description of the drift.
    pub message: String,
}

/// Whether `violation` (of `object`) names `rule` of `direction`: its model and provider
/// fields match, an empty one matching any; a violation naming neither (the CRM object is
/// gone) breaks every rule of the object.
fn names_rule(
    violation: &FieldMappingViolation,
    direction: Direction,
    rule: &CompiledFieldRule,
) -> bool {
    let (model, provider): (&[String], &[String]) = match direction {
        Direction::Inbound => (
            std::slice::from_ref(&rule.target_field),
            &rule.source_fields,
        ),
        Direction::Outbound => (
            &rule.source_fields,
            std::slice::from_ref(&rule.target_field),
        ),
    };
    let model_ok = violation.model_field.is_empty() || model.contains(&violation.model_field);
    let provider_ok =
        violation.provider_field.is_empty() || provider.contains(&violation.provider_field);
    model_ok && provider_ok
}

/// `plan` without the rules its `drift_violations` name (and without the violations),
/// with the rules left out.
fn without_broken(plan: &MappingPlan) -> (MappingPlan, Vec<BrokenRule>) {
    let mut kept = plan.clone();
    kept.drift_violations.clear();
    let mut broken = Vec::new();
    for object in &mut kept.objects {
        let violations: Vec<&FieldMappingViolation> = plan
            .drift_violations
            .iter()
            .filter(|v| v.object == object.object)
            .collect();
        if violations.is_empty() {
            continue;
        }
        for direction in [Direction::Inbound, Direction::Outbound] {
            let rules = match direction {
                Direction::Inbound => &mut object.inbound,
                Direction::Outbound => &mut object.outbound,
            };
            rules.retain(|rule| {
                let Some(violation) = violations.iter().find(|v| names_rule(v, direction, rule))
                else {
                    return true;
                };
                let (model_fields, provider_fields) = match direction {
                    Direction::Inbound => {
                        (vec![rule.target_field.clone()], rule.source_fields.clone())
                    }
                    Direction::Outbound => {
                        (rule.source_fields.clone(), vec![rule.target_field.clone()])
                    }
                };
                broken.push(BrokenRule {
                    object: object.object.clone(),
                    provider_object: object.provider_object.clone(),
                    direction,
                    model_fields,
                    provider_fields,
                    broken_field: violation.provider_field.clone(),
                    kind: violation.kind(),
                    message: violation.message.clone(),
                });
                false
            });
        }
    }
    (kept, broken)
}

/// An immutable compiled mapping plan; cache it by (connection, plan version).
#[derive(Debug, Clone)]
pub struct CompiledPlan {
    connection_id: String,
    plan_version: i64,
    objects: Vec<CompiledObject>,
    by_object: HashMap<String, usize>,
    by_provider_object: HashMap<String, usize>,
}

impl CompiledPlan {
    /// Compiles every object's rules; fails on the first malformed rule, and on a plan
    /// that carries `drift_violations` (read with `include_broken`: schema drift broke it,
    /// so it must not be applied).
    pub fn compile(plan: &MappingPlan) -> Result<Self, CompileError> {
        if let Some(first) = plan.drift_violations.first() {
            let fields: Vec<String> = plan
                .drift_violations
                .iter()
                .map(|v| format!("{}.{}", v.object, v.provider_field))
                .collect();
            return Err(CompileError {
                object: first.object.clone(),
                direction: "plan",
                index: 0,
                target_field: first.provider_field.clone(),
                message: format!(
                    "schema drift broke the plan ({}); it must not be applied",
                    fields.join(", ")
                ),
            });
        }
        let objects = plan
            .objects
            .iter()
            .map(CompiledObject::compile)
            .collect::<Result<Vec<_>, _>>()?;
        let mut by_object = HashMap::new();
        let mut by_provider_object = HashMap::new();
        for (i, o) in objects.iter().enumerate() {
            by_object.entry(o.object.to_string()).or_insert(i);
            by_provider_object
                .entry(o.provider_object.to_string())
                .or_insert(i);
        }
        Ok(Self {
            connection_id: plan.connection_id.clone(),
            plan_version: plan.plan_version,
            objects,
            by_object,
            by_provider_object,
        })
    }

    /// Compiles `plan` leaving out every rule its `drift_violations` name (read with
    /// `include_broken`): what a sync worker applies while the mapping waits to be saved
    /// again, so a field the CRM lost is no longer read or written and the other fields
    /// keep flowing. Returns the rules left out; fails only on a malformed rule.
    /// [`CompiledPlan::compile`] still refuses such a plan.
    pub fn compile_without_broken(
        plan: &MappingPlan,
    ) -> Result<(Self, Vec<BrokenRule>), CompileError> {
        let (kept, broken) = without_broken(plan);
        Ok((Self::compile(&kept)?, broken))
    }

    pub fn connection_id(&self) -> &str {
        &self.connection_id
    }

    pub fn plan_version(&self) -> i64 {
        self.plan_version
    }

    /// The compiled objects, in plan order.
    pub fn objects(&self) -> &[CompiledObject] {
        &self.objects
    }

    /// One object by its model key.
    pub fn object(&self, object: &str) -> Option<&CompiledObject> {
        self.by_object.get(object).map(|&i| &self.objects[i])
    }

    /// One object by its CRM object name (the first, if several model objects share it).
    pub fn object_for_provider(&self, provider_object: &str) -> Option<&CompiledObject> {
        self.by_provider_object
            .get(provider_object)
            .map(|&i| &self.objects[i])
    }

    /// Maps a provider record (its `object` is the CRM object) to a model record.
    pub fn apply_inbound(&self, record: &Record) -> Result<MappedRecord, UnknownObject> {
        self.object_for_provider(&record.object)
            .map(|o| o.apply_inbound(record))
            .ok_or_else(|| UnknownObject(record.object.clone()))
    }

    /// Maps a model record (its `object` is the model object) to a provider record.
    pub fn apply_outbound(&self, record: &Record) -> Result<MappedRecord, UnknownObject> {
        self.object(&record.object)
            .map(|o| o.apply_outbound(record))
            .ok_or_else(|| UnknownObject(record.object.clone()))
    }

    /// [`CompiledPlan::apply_outbound`] with the write guards enforced against `existing`,
    /// the CRM record as it is now (`None`: the write creates it).
    pub fn apply_outbound_guarded(
        &self,
        record: &Record,
        existing: Option<&Record>,
    ) -> Result<MappedRecord, UnknownObject> {
        self.object(&record.object)
            .map(|o| o.apply_outbound_guarded(record, existing))
            .ok_or_else(|| UnknownObject(record.object.clone()))
    }
}
