//! Field mappings and compiled plans against the connection's discovered schema: the
//! provider object and fields exist, the types fit once the transforms have run, outbound
//! targets are writable, picklist maps name values the CRM has.
//!
//! The same rule-level check serves two callers: a tenant's mappings being validated
//! (violations name the mapping's index) and a stored plan being re-checked against the
//! current schema version, which is how drift that broke a plan is found (index -1).
//!
//! Types: each side has a `FieldType` (the model's from the manifest, the provider's
//! normalised one from discovery). A value flows through the transforms (`coerce` sets the
//! type, `number` makes a decimal or text, `concatenate`/`split`/`case`/`picklist` make
//! text, `date` with an output pattern is an explicit format and trusted) and must then fit
//! the target: text into text, numbers into numbers, dates and date-times into each other,
//! booleans into booleans. Anything else needs an explicit `coerce`.

use syncline_proto::mapping::v1::transform::Kind as TransformKind;
use syncline_proto::mapping::v1::{
    CompiledFieldRule, FieldMappingViolation, MappingDirection, ObjectMapping, ObjectPlan,
    Transform, ViolationKind, WriteGuard,
};
use syncline_proto::schema::v1::{Field, FieldType, ObjectSchema};

use crate::manifest::ObjectSpec;
use crate::mappings;

/// One problem of one rule, before it is tied to a mapping.
#[derive(Debug, Clone, PartialEq)]
struct Finding {
    kind: ViolationKind,
    model_field: String,
    provider_field: String,
    message: String,
}

/// Which way a rule maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Provider fields into a model field.
    Inbound,
    /// Model fields into a provider field.
    Outbound,
}

fn type_word(ty: FieldType) -> &'static str {
    syncline_mapping_plan::transform::type_word(ty)
}

fn is_text(ty: FieldType) -> bool {
    use FieldType as T;
    matches!(
        ty,
        T::String | T::TextArea | T::Email | T::Phone | T::Url | T::Picklist | T::Id | T::Reference
    )
}

fn is_number(ty: FieldType) -> bool {
    use FieldType as T;
    matches!(ty, T::Integer | T::Decimal | T::Currency | T::Percent)
}

/// Whether a value of type `from` can be written into a field of type `to` by the final
/// coercion without an explicit conversion.
pub fn compatible(from: FieldType, to: FieldType) -> bool {
    use FieldType as T;
    if from == to
        || matches!(from, T::Unspecified | T::Other)
        || matches!(to, T::Unspecified | T::Other)
    {
        return true;
    }
    match (from, to) {
        (a, b) if is_text(a) && is_text(b) => true,
        (a, T::MultiPicklist) | (T::MultiPicklist, a) if is_text(a) => true,
        (a, b) if is_number(a) && is_number(b) => true,
        (T::Date | T::Datetime, T::Date | T::Datetime) | (T::Datetime, T::Time) => true,
        _ => false,
    }
}

/// The type of a value of type `input` after `transforms`.
fn flow(input: FieldType, transforms: &[Transform]) -> FieldType {
    use FieldType as T;
    let mut ty = input;
    for t in transforms {
        ty = match &t.kind {
            Some(TransformKind::CoerceType(c)) => {
                FieldType::try_from(c.target_type).unwrap_or(T::Unspecified)
            }
            Some(TransformKind::DefaultValue(_)) | None => ty,
            Some(TransformKind::PicklistMap(_) | TransformKind::ChangeCase(_)) => {
                if is_text(ty) || ty == T::MultiPicklist {
                    ty
                } else {
                    T::String
                }
            }
            Some(TransformKind::Concatenate(_) | TransformKind::Split(_)) => T::String,
            Some(TransformKind::FormatDate(d)) => {
                if !d.output_format.is_empty() {
                    // An explicit output pattern: the author chose the shape; trust it.
                    T::Unspecified
                } else if matches!(ty, T::Date | T::Datetime | T::Time) {
                    ty
                } else {
                    T::Datetime
                }
            }
            Some(TransformKind::FormatNumber(n)) => {
                if n.as_string {
                    T::String
                } else {
                    T::Decimal
                }
            }
        };
    }
    ty
}

/// The picklist maps of a transform list with whether each reads the untouched source
/// value (only `default` before it).
fn picklist_maps(
    transforms: &[Transform],
) -> impl Iterator<Item = (bool, &syncline_proto::mapping::v1::transform::PicklistMap)> {
    let mut untouched = true;
    transforms.iter().filter_map(move |t| {
        let here = untouched;
        match &t.kind {
            Some(TransformKind::PicklistMap(map)) => {
                untouched = false;
                Some((here, map))
            }
            Some(TransformKind::DefaultValue(_)) => None,
            _ => {
                untouched = false;
                None
            }
        }
    })
}

fn has_picklist(field: &Field) -> bool {
    matches!(
        field.r#type(),
        FieldType::Picklist | FieldType::MultiPicklist
    ) && !field.picklist_values.is_empty()
}

/// Whether `value` is one of the field's picklist values (active ones only if asked).
fn in_picklist(field: &Field, value: &str, active_only: bool) -> bool {
    field
        .picklist_values
        .iter()
        .any(|p| p.value == value && (p.active || !active_only))
}

fn model_type(spec: &ObjectSpec, field: &str) -> FieldType {
    spec.fields
        .get(field)
        .and_then(|f| syncline_mapping_plan::transform::parse_type_word(&f.ty))
        .unwrap_or(FieldType::Unspecified)
}

/// Checks one compiled rule against the provider object.
fn check_rule(
    spec: &ObjectSpec,
    provider: &ObjectSchema,
    version: i64,
    way: Way,
    rule: &CompiledFieldRule,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let (model_fields, provider_fields): (&[String], &[String]) = match way {
        Way::Inbound => (
            std::slice::from_ref(&rule.target_field),
            &rule.source_fields,
        ),
        Way::Outbound => (
            &rule.source_fields,
            std::slice::from_ref(&rule.target_field),
        ),
    };
    let first_model = model_fields.first().map_or("", String::as_str);
    let mut finding = |kind, model: &str, provider_field: &str, message: String| {
        out.push(Finding {
            kind,
            model_field: model.to_owned(),
            provider_field: provider_field.to_owned(),
            message,
        });
    };
    let mut found = Vec::with_capacity(provider_fields.len());
    for name in provider_fields {
        match provider.fields.iter().find(|f| f.name == *name) {
            Some(field) => found.push(field),
            None => finding(
                ViolationKind::ProviderFieldUnknown,
                first_model,
                name,
                format!(
                    "`{name}` is not a field of `{}` in the connection's schema (version {version})",
                    provider.name
                ),
            ),
        }
    }
    if found.len() != provider_fields.len() {
        return out;
    }
    match way {
        Way::Inbound => {
            let input = match found.as_slice() {
                [one] => one.r#type(),
                _ => FieldType::Unspecified,
            };
            let target = model_type(spec, &rule.target_field);
            let output = flow(input, &rule.transforms);
            if !compatible(output, target) {
                let source = &provider_fields[0];
                finding(
                    ViolationKind::TypeIncompatible,
                    first_model,
                    source,
                    format!(
                        "`{source}` ({}) cannot become `{}` ({}){}; add a `coerce` transform",
                        type_word(input),
                        rule.target_field,
                        type_word(target),
                        after(input, output, &rule.transforms),
                    ),
                );
            }
            if let [field] = found.as_slice() {
                for (untouched, map) in picklist_maps(&rule.transforms) {
                    if !untouched || !has_picklist(field) {
                        continue;
                    }
                    let mut keys: Vec<&String> = map.values.keys().collect();
                    keys.sort();
                    for key in keys {
                        if !in_picklist(field, key, false) {
                            finding(
                                ViolationKind::PicklistValueUnknown,
                                first_model,
                                &field.name,
                                format!(
                                    "the picklist map reads `{key}`, which is not a value of `{}` in the crm",
                                    field.name
                                ),
                            );
                        }
                    }
                }
            }
        }
        Way::Outbound => {
            let field = found[0];
            let guard = WriteGuard::try_from(rule.write_guard).unwrap_or_default();
            let writable = !field.calculated
                && if guard == WriteGuard::OnCreate {
                    field.createable
                } else {
                    field.createable || field.updateable
                };
            if !writable {
                let why = if field.calculated {
                    "computed by the crm (formula or roll-up)"
                } else if guard == WriteGuard::OnCreate {
                    "not createable"
                } else {
                    "neither createable nor updateable"
                };
                finding(
                    ViolationKind::NotWritable,
                    first_model,
                    &field.name,
                    format!("`{}` is read only in the crm: {why}", field.name),
                );
            }
            let input = match model_fields {
                [one] => model_type(spec, one),
                _ => FieldType::Unspecified,
            };
            let target = field.r#type();
            let output = flow(input, &rule.transforms);
            if !compatible(output, target) {
                finding(
                    ViolationKind::TypeIncompatible,
                    first_model,
                    &field.name,
                    format!(
                        "`{first_model}` ({}) cannot be written to `{}` ({}, {}){}; add a `coerce` transform",
                        type_word(input),
                        field.name,
                        type_word(target),
                        field.native_type,
                        after(input, output, &rule.transforms),
                    ),
                );
            }
            if has_picklist(field) {
                for (_, map) in picklist_maps(&rule.transforms) {
                    let mut targets: Vec<&String> = map.values.values().collect();
                    if !map.default_value.is_empty() {
                        targets.push(&map.default_value);
                    }
                    targets.sort();
                    targets.dedup();
                    for value in targets {
                        if !in_picklist(field, value, true) {
                            finding(
                                ViolationKind::PicklistValueUnknown,
                                first_model,
                                &field.name,
                                format!(
                                    "the picklist map writes `{value}`, which is not an active value of `{}` in the crm",
                                    field.name
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
    out
}

/// " (after its transforms: T)" when the transforms changed the type.
fn after(input: FieldType, output: FieldType, transforms: &[Transform]) -> String {
    if transforms.is_empty() || input == output {
        String::new()
    } else {
        format!(" (after its transforms: {})", type_word(output))
    }
}

fn violation(object: &str, index: i32, f: Finding) -> FieldMappingViolation {
    FieldMappingViolation {
        object: object.to_owned(),
        mapping_index: index,
        model_field: f.model_field,
        provider_field: f.provider_field,
        kind: f.kind as i32,
        message: f.message,
    }
}

fn missing_object(object: &str, provider_object: &str, version: i64) -> FieldMappingViolation {
    FieldMappingViolation {
        object: object.to_owned(),
        mapping_index: -1,
        provider_field: String::new(),
        model_field: String::new(),
        kind: ViolationKind::ProviderFieldUnknown as i32,
        message: format!(
            "crm object `{provider_object}` is not in the connection's schema (version {version})"
        ),
    }
}

/// Checks a tenant's mappings of one object (already valid against the manifest) against
/// `provider`, the CRM object they target (`None`: not in the schema). Violations name the
/// mapping's index in `mapping.fields`.
pub fn check_mapping(
    spec: &ObjectSpec,
    mapping: &ObjectMapping,
    provider_object: &str,
    provider: Option<&ObjectSchema>,
    version: i64,
) -> Vec<FieldMappingViolation> {
    let Some(provider) = provider else {
        return vec![missing_object(&mapping.object, provider_object, version)];
    };
    let mut out = Vec::new();
    for (i, field) in mapping.fields.iter().enumerate() {
        let index = i32::try_from(i).unwrap_or(i32::MAX);
        let (inbound, outbound) = mappings::field_rules(spec, field);
        let direction = MappingDirection::try_from(field.direction).unwrap_or_default();
        let mut findings = Vec::new();
        if let Some(rule) = inbound {
            findings.extend(check_rule(spec, provider, version, Way::Inbound, &rule));
        }
        if let Some(rule) = outbound {
            for f in check_rule(spec, provider, version, Way::Outbound, &rule) {
                // BOTH: a missing field is reported once.
                if direction == MappingDirection::Both
                    && f.kind == ViolationKind::ProviderFieldUnknown
                    && findings.contains(&f)
                {
                    continue;
                }
                findings.push(f);
            }
        }
        out.extend(
            findings
                .into_iter()
                .map(|f| violation(&mapping.object, index, f)),
        );
    }
    out
}

/// Re-checks one object of a stored plan against the current schema: what drift broke.
/// Violations have index -1 and name the object, fields and rule direction.
pub fn check_plan_object(
    spec: &ObjectSpec,
    plan: &ObjectPlan,
    provider: Option<&ObjectSchema>,
    version: i64,
) -> Vec<FieldMappingViolation> {
    let Some(provider) = provider else {
        return vec![missing_object(&plan.object, &plan.provider_object, version)];
    };
    let inbound = plan
        .inbound
        .iter()
        .flat_map(|r| check_rule(spec, provider, version, Way::Inbound, r));
    let outbound = plan
        .outbound
        .iter()
        .flat_map(|r| check_rule(spec, provider, version, Way::Outbound, r));
    let mut out: Vec<FieldMappingViolation> = Vec::new();
    for (way, f) in inbound
        .map(|f| ("inbound", f))
        .chain(outbound.map(|f| ("outbound", f)))
    {
        let mut v = violation(&plan.object, -1, f);
        v.message = format!("{way}: {}", v.message);
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Fills each outbound rule's target type from the provider object (the type the last
/// transform's output is coerced to when written).
pub fn fill_target_types(plan: &mut ObjectPlan, provider: &ObjectSchema) {
    for rule in &mut plan.outbound {
        if let Some(field) = provider.fields.iter().find(|f| f.name == rule.target_field) {
            rule.target_type = field.r#type;
        }
    }
}

#[cfg(test)]
mod tests;
