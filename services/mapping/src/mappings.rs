//! Installations and field mappings against a manifest and the connection's discovered
//! schema: defaults, validation (each violation naming its field), compilation into a
//! `MappingPlan`, installation state, and what schema drift broke in a plan.
//!
//! The checks against the schema itself live in `schema_check`; here they are combined
//! with the manifest's and applied to whole requests, plans and installations.

use std::collections::HashSet;

use syncline_mapping_plan::{CompiledPlan, transform};
use syncline_proto::mapping::v1::transform::Kind as TransformKind;
use syncline_proto::mapping::v1::{
    CompiledFieldRule, FieldMapping, FieldMappingViolation, Installation, InstallationState,
    MappingDirection, MappingPlan, ObjectMapping, ObjectPlan, ObjectSelection, SyncDirection,
    Transform, ViolationKind, WriteGuard as ProtoWriteGuard,
};
use syncline_proto::schema::v1::FieldType;

use crate::manifest::{Access, ManifestDoc, ObjectSpec, WriteGuard};
use crate::remote::SchemaSnapshot;
use crate::schema_check;

/// The installation a connection has before the tenant chooses anything.
pub fn default_installation(
    connection_id: &str,
    manifest_version: i64,
    doc: &ManifestDoc,
) -> Installation {
    Installation {
        connection_id: connection_id.to_owned(),
        manifest_version,
        objects: doc
            .objects
            .iter()
            .map(|(key, object)| default_selection(key, object))
            .collect(),
        state: InstallationState::NotConfigured as i32,
        ..Installation::default()
    }
}

/// An object's default choice: enabled as the manifest says, every optional field on.
fn default_selection(key: &str, object: &ObjectSpec) -> ObjectSelection {
    ObjectSelection {
        object: key.to_owned(),
        enabled: object.enabled_by_default,
        optional_fields: object
            .fields
            .iter()
            .filter(|(_, f)| !f.required)
            .map(|(k, _)| k.clone())
            .collect(),
        ..ObjectSelection::default()
    }
}

/// The selection for `object`: the tenant's, else the manifest's default.
pub fn selection(
    installation: &Installation,
    doc: &ManifestDoc,
    object: &str,
) -> Option<ObjectSelection> {
    installation
        .objects
        .iter()
        .find(|s| s.object == object)
        .cloned()
        .or_else(|| {
            doc.objects
                .get(object)
                .map(|o| default_selection(object, o))
        })
}

/// Whether an object is read and written under a selection.
fn reads_writes(object: &ObjectSpec, selection: &ObjectSelection) -> (bool, bool) {
    let reads = object.access.contains(&Access::Read) || object.access.contains(&Access::Subscribe);
    let writes = object.access.contains(&Access::Write);
    match SyncDirection::try_from(selection.direction) {
        Ok(SyncDirection::Inbound) => (reads, false),
        Ok(SyncDirection::Outbound) => (false, writes),
        _ => (reads, writes),
    }
}

/// Checks a tenant's object selections against the manifest; violations name
/// `installation.objects[i]...`.
pub fn check_selections(
    doc: &ManifestDoc,
    objects: &[ObjectSelection],
) -> Vec<syncline_domain::Violation> {
    use syncline_domain::Violation;
    let mut violations = Vec::new();
    let mut seen = HashSet::new();
    for (i, s) in objects.iter().enumerate() {
        let at = format!("installation.objects[{i}]");
        let Some(object) = doc.objects.get(&s.object) else {
            violations.push(Violation::new(
                format!("{at}.object"),
                "UNKNOWN_OBJECT",
                format!("`{}` is not an object of the manifest", s.object),
            ));
            continue;
        };
        if !seen.insert(s.object.as_str()) {
            violations.push(Violation::new(
                format!("{at}.object"),
                "DUPLICATE",
                format!("`{}` is listed twice", s.object),
            ));
        }
        for (j, field) in s.optional_fields.iter().enumerate() {
            match object.fields.get(field) {
                None => violations.push(Violation::new(
                    format!("{at}.optional_fields[{j}]"),
                    "UNKNOWN_FIELD",
                    format!("`{field}` is not a field of `{}`", s.object),
                )),
                Some(f) if f.required => violations.push(Violation::new(
                    format!("{at}.optional_fields[{j}]"),
                    "REQUIRED_FIELD",
                    format!("`{field}` is required, so always on"),
                )),
                Some(_) => {}
            }
        }
        let reads =
            object.access.contains(&Access::Read) || object.access.contains(&Access::Subscribe);
        let writes = object.access.contains(&Access::Write);
        let allowed = match SyncDirection::try_from(s.direction) {
            Ok(SyncDirection::Unspecified) => true,
            Ok(SyncDirection::Inbound) => reads,
            Ok(SyncDirection::Outbound) => writes,
            Ok(SyncDirection::Both) => reads && writes,
            Err(_) => false,
        };
        if !allowed {
            violations.push(Violation::new(
                format!("{at}.direction"),
                "DIRECTION_NOT_ALLOWED",
                "the manifest does not declare this access for the object",
            ));
        }
    }
    violations
}

fn violation(
    object: &str,
    index: i32,
    model_field: &str,
    provider_field: &str,
    kind: ViolationKind,
    message: impl Into<String>,
) -> FieldMappingViolation {
    FieldMappingViolation {
        object: object.to_owned(),
        mapping_index: index,
        model_field: model_field.to_owned(),
        provider_field: provider_field.to_owned(),
        kind: kind as i32,
        message: message.into(),
    }
}

fn inbound(direction: MappingDirection) -> bool {
    matches!(
        direction,
        MappingDirection::Inbound | MappingDirection::Both
    )
}

fn outbound(direction: MappingDirection) -> bool {
    matches!(
        direction,
        MappingDirection::Outbound | MappingDirection::Both
    )
}

fn starts_with_concatenate(transforms: &[Transform]) -> bool {
    matches!(
        transforms.first().and_then(|t| t.kind.as_ref()),
        Some(TransformKind::Concatenate(_))
    )
}

/// The CRM object an object mapping targets: its own, else the tenant's selection.
pub fn provider_object(mapping: &ObjectMapping, selection: Option<&ObjectSelection>) -> String {
    if mapping.provider_object.is_empty() {
        selection
            .map(|s| s.provider_object.clone())
            .unwrap_or_default()
    } else {
        mapping.provider_object.clone()
    }
}

/// Checks object mappings against the manifest and the installation. Every violation
/// names its object, mapping index and field.
pub fn validate(
    doc: &ManifestDoc,
    installation: &Installation,
    objects: &[ObjectMapping],
) -> Vec<FieldMappingViolation> {
    let mut out = Vec::new();
    let mut seen_objects = HashSet::new();
    for mapping in objects {
        let key = mapping.object.as_str();
        let Some(spec) = doc.objects.get(key) else {
            out.push(violation(
                key,
                -1,
                "",
                "",
                ViolationKind::ModelFieldUnknown,
                format!(
                    "object `{key}` is not in manifest version {}",
                    installation.manifest_version
                ),
            ));
            continue;
        };
        if !seen_objects.insert(key) {
            out.push(violation(
                key,
                -1,
                "",
                "",
                ViolationKind::DuplicateTarget,
                "the object is listed twice",
            ));
            continue;
        }
        let chosen = selection(installation, doc, key).unwrap_or_default();
        if !chosen.enabled {
            out.push(violation(
                key,
                -1,
                "",
                "",
                ViolationKind::ModelFieldUnknown,
                "the object is not enabled in the installation",
            ));
        }
        if provider_object(mapping, Some(&chosen)).is_empty() {
            out.push(violation(
                key,
                -1,
                "",
                "",
                ViolationKind::ProviderFieldUnknown,
                "name the crm object (`provider_object`)",
            ));
        }
        let (reads, writes) = reads_writes(spec, &chosen);
        let mut inbound_targets = HashSet::new();
        let mut outbound_targets = HashSet::new();
        for (i, field) in mapping.fields.iter().enumerate() {
            let index = i32::try_from(i).unwrap_or(i32::MAX);
            check_field_mapping(
                key,
                spec,
                &chosen,
                (reads, writes),
                index,
                field,
                (&mut inbound_targets, &mut outbound_targets),
                &mut out,
            );
        }
        if reads {
            for (name, field) in spec.fields.iter() {
                if field.required && !inbound_targets.contains(name.as_str()) {
                    out.push(violation(
                        key,
                        -1,
                        name,
                        "",
                        ViolationKind::RequiredUnmapped,
                        format!("required field `{name}` has no inbound mapping"),
                    ));
                }
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn check_field_mapping<'a>(
    object: &str,
    spec: &ObjectSpec,
    chosen: &ObjectSelection,
    (reads, writes): (bool, bool),
    index: i32,
    field: &'a FieldMapping,
    (inbound_targets, outbound_targets): (&mut HashSet<&'a str>, &mut HashSet<&'a str>),
    out: &mut Vec<FieldMappingViolation>,
) {
    let first_model = field.model_fields.first().map_or("", String::as_str);
    let first_provider = field.provider_fields.first().map_or("", String::as_str);
    let mut bad = |kind: ViolationKind, model: &str, provider: &str, message: String| {
        out.push(violation(object, index, model, provider, kind, message));
    };
    let direction = match MappingDirection::try_from(field.direction) {
        Ok(MappingDirection::Unspecified) | Err(_) => {
            bad(
                ViolationKind::InvalidTransform,
                first_model,
                first_provider,
                "set a direction (inbound, outbound or both)".into(),
            );
            return;
        }
        Ok(d) => d,
    };
    if field.model_fields.is_empty()
        || field.provider_fields.is_empty()
        || field
            .model_fields
            .iter()
            .chain(&field.provider_fields)
            .any(String::is_empty)
    {
        bad(
            ViolationKind::InvalidTransform,
            first_model,
            first_provider,
            "name at least one model field and one provider field".into(),
        );
        return;
    }
    if direction == MappingDirection::Both
        && (field.model_fields.len() != 1 || field.provider_fields.len() != 1)
    {
        bad(
            ViolationKind::InvalidTransform,
            first_model,
            first_provider,
            "a mapping in both directions names exactly one field on each side".into(),
        );
        return;
    }
    for model in &field.model_fields {
        match spec.fields.get(model) {
            None => bad(
                ViolationKind::ModelFieldUnknown,
                model,
                first_provider,
                format!("`{model}` is not a field of `{object}` in the manifest"),
            ),
            Some(f) if !f.required && !chosen.optional_fields.contains(model) => bad(
                ViolationKind::ModelFieldUnknown,
                model,
                first_provider,
                format!("optional field `{model}` is not turned on in the installation"),
            ),
            Some(_) => {}
        }
    }
    if inbound(direction) {
        if !reads {
            bad(
                ViolationKind::InvalidTransform,
                first_model,
                first_provider,
                "the object is not read, so inbound mappings are unused".into(),
            );
        }
        if field.model_fields.len() != 1 {
            bad(
                ViolationKind::InvalidTransform,
                first_model,
                first_provider,
                "an inbound mapping writes exactly one model field".into(),
            );
        } else if !inbound_targets.insert(first_model) {
            bad(
                ViolationKind::DuplicateTarget,
                first_model,
                first_provider,
                format!("another mapping already writes model field `{first_model}`"),
            );
        }
        if field.provider_fields.len() > 1 && !starts_with_concatenate(&field.inbound_transforms) {
            bad(
                ViolationKind::InvalidTransform,
                first_model,
                first_provider,
                "several provider fields need `concatenate` as the first inbound transform".into(),
            );
        }
        check_transforms(
            "inbound",
            &field.inbound_transforms,
            &mut bad,
            first_model,
            first_provider,
        );
    }
    if outbound(direction) {
        if !writes {
            bad(
                ViolationKind::NotWritable,
                first_model,
                first_provider,
                "the object is not written to the crm (manifest access or installation direction)"
                    .into(),
            );
        }
        for model in &field.model_fields {
            if spec
                .fields
                .get(model)
                .is_some_and(|f| f.write == WriteGuard::Never)
            {
                bad(
                    ViolationKind::NotWritable,
                    model,
                    first_provider,
                    format!("`{model}` has `write: never` in the manifest"),
                );
            }
        }
        if field.provider_fields.len() != 1 {
            bad(
                ViolationKind::InvalidTransform,
                first_model,
                first_provider,
                "an outbound mapping writes exactly one provider field".into(),
            );
        } else if !outbound_targets.insert(first_provider) {
            bad(
                ViolationKind::DuplicateTarget,
                first_model,
                first_provider,
                format!("another mapping already writes provider field `{first_provider}`"),
            );
        }
        if field.model_fields.len() > 1 && !starts_with_concatenate(&field.outbound_transforms) {
            bad(
                ViolationKind::InvalidTransform,
                first_model,
                first_provider,
                "several model fields need `concatenate` as the first outbound transform".into(),
            );
        }
        check_transforms(
            "outbound",
            &field.outbound_transforms,
            &mut bad,
            first_model,
            first_provider,
        );
    }
}

fn check_transforms(
    side: &str,
    transforms: &[Transform],
    bad: &mut impl FnMut(ViolationKind, &str, &str, String),
    model: &str,
    provider: &str,
) {
    for (i, t) in transforms.iter().enumerate() {
        if let Err(e) = transform::compile(t) {
            bad(
                ViolationKind::InvalidTransform,
                model,
                provider,
                format!("{side} transform {i}: {e}"),
            );
        }
    }
}

/// The compiled write guard of an outbound rule: the strictest of its model fields'
/// manifest guards (`never` fields are refused by validation before this).
fn write_guard(spec: &ObjectSpec, model_fields: &[String]) -> ProtoWriteGuard {
    let strictness = |g: ProtoWriteGuard| match g {
        ProtoWriteGuard::OnCreate => 2,
        ProtoWriteGuard::IfEmpty => 1,
        ProtoWriteGuard::Always | ProtoWriteGuard::Unspecified => 0,
    };
    model_fields
        .iter()
        .filter_map(|f| spec.fields.get(f))
        .map(|f| match f.write {
            WriteGuard::Always | WriteGuard::Never => ProtoWriteGuard::Always,
            WriteGuard::IfEmpty => ProtoWriteGuard::IfEmpty,
            WriteGuard::OnCreate => ProtoWriteGuard::OnCreate,
        })
        .max_by_key(|g| strictness(*g))
        .unwrap_or(ProtoWriteGuard::Always)
}

/// The inbound and outbound rules one field mapping compiles to (by its direction).
pub fn field_rules(
    spec: &ObjectSpec,
    field: &FieldMapping,
) -> (Option<CompiledFieldRule>, Option<CompiledFieldRule>) {
    let direction = MappingDirection::try_from(field.direction).unwrap_or_default();
    let inbound_rule = inbound(direction).then(|| {
        let target = field.model_fields.first().cloned().unwrap_or_default();
        let target_type = spec
            .fields
            .get(&target)
            .and_then(|f| transform::parse_type_word(&f.ty))
            .unwrap_or(FieldType::Unspecified);
        CompiledFieldRule {
            source_fields: field.provider_fields.clone(),
            target_field: target,
            target_type: target_type as i32,
            transforms: field.inbound_transforms.clone(),
            ..CompiledFieldRule::default()
        }
    });
    let outbound_rule = outbound(direction).then(|| CompiledFieldRule {
        source_fields: field.model_fields.clone(),
        target_field: field.provider_fields.first().cloned().unwrap_or_default(),
        // The provider field's type is filled from the schema (`fill_target_types`).
        target_type: FieldType::Unspecified as i32,
        transforms: field.outbound_transforms.clone(),
        write_guard: write_guard(spec, &field.model_fields) as i32,
    });
    (inbound_rule, outbound_rule)
}

/// How often sync-engine reads the object by itself, in seconds (the manifest's
/// `schedule`, validated on deploy); 0 when it has none.
fn schedule_seconds(spec: &ObjectSpec) -> i64 {
    spec.schedule
        .as_deref()
        .and_then(crate::manifest::duration_seconds)
        .and_then(|s| i64::try_from(s).ok())
        .unwrap_or(0)
}

/// The plan rules of one object mapping, with the object's schedule.
pub fn object_plan(
    spec: &ObjectSpec,
    mapping: &ObjectMapping,
    provider_object: String,
) -> ObjectPlan {
    let mut plan = ObjectPlan {
        object: mapping.object.clone(),
        provider_object,
        schedule_seconds: schedule_seconds(spec),
        ..ObjectPlan::default()
    };
    for field in &mapping.fields {
        let (inbound_rule, outbound_rule) = field_rules(spec, field);
        plan.inbound.extend(inbound_rule);
        plan.outbound.extend(outbound_rule);
    }
    plan
}

/// Compiles the plan of a connection from all its saved mappings: enabled objects only.
/// Mappings saved earlier that no longer validate (the installation moved to a newer
/// manifest version) are left out and returned with why, as (object, issue). Also checks
/// the result compiles as a worker will compile it.
pub fn compile_plan(
    doc: &ManifestDoc,
    installation: &Installation,
    mappings: &[ObjectMapping],
    plan_version: i64,
    schema: &SchemaSnapshot,
) -> Result<(MappingPlan, Vec<(String, String)>), syncline_mapping_plan::CompileError> {
    let mut objects = Vec::new();
    let mut stale = Vec::new();
    for (key, spec) in doc.objects.iter() {
        let Some(chosen) = selection(installation, doc, key).filter(|s| s.enabled) else {
            continue;
        };
        let Some(mapping) = mappings.iter().find(|m| m.object == *key) else {
            continue;
        };
        if let Some(first) = validate(doc, installation, std::slice::from_ref(mapping)).first() {
            stale.push((
                key.clone(),
                format!(
                    "the saved mappings do not fit manifest version {}: {}",
                    installation.manifest_version, first.message
                ),
            ));
            continue;
        }
        let crm_object = provider_object(mapping, Some(&chosen));
        // Objects the snapshot was not asked about were checked when saved.
        if let Some(described) = schema.objects.get(&crm_object) {
            let broken = schema_check::check_mapping(
                spec,
                mapping,
                &crm_object,
                described.as_ref(),
                schema.version,
            );
            if let Some(first) = broken.first() {
                stale.push((
                    key.clone(),
                    format!(
                        "the saved mappings do not fit the connection's schema (version {}): {}",
                        schema.version, first.message
                    ),
                ));
                continue;
            }
        }
        let mut plan = object_plan(spec, mapping, crm_object);
        if let Some(Some(described)) = schema.objects.get(&plan.provider_object) {
            schema_check::fill_target_types(&mut plan, described);
        }
        objects.push(plan);
    }
    let plan = MappingPlan {
        connection_id: installation.connection_id.clone(),
        plan_version,
        manifest_version: installation.manifest_version,
        schema_version: schema.version,
        objects,
        ..MappingPlan::default()
    };
    CompiledPlan::compile(&plan)?;
    Ok((plan, stale))
}

/// The CRM objects a request's mappings target (their own, else the installation's
/// choice, else the manifest's default for `provider`).
pub fn target_objects(
    doc: &ManifestDoc,
    installation: &Installation,
    objects: &[ObjectMapping],
) -> Vec<String> {
    objects
        .iter()
        .map(|m| provider_object(m, selection(installation, doc, &m.object).as_ref()))
        .filter(|o| !o.is_empty())
        .collect()
}

/// [`validate`], then each object's well-formed mappings against the connection's
/// schema: violations grouped by object, in request order.
pub fn validate_with_schema(
    doc: &ManifestDoc,
    installation: &Installation,
    objects: &[ObjectMapping],
    schema: &SchemaSnapshot,
) -> Vec<FieldMappingViolation> {
    let manifest = validate(doc, installation, objects);
    let mut out = Vec::with_capacity(manifest.len());
    let mut done = HashSet::new();
    for mapping in objects {
        if !done.insert(mapping.object.as_str()) {
            continue;
        }
        let of_object: Vec<&FieldMappingViolation> = manifest
            .iter()
            .filter(|v| v.object == mapping.object)
            .collect();
        out.extend(of_object.iter().map(|v| (*v).clone()));
        let Some(spec) = doc.objects.get(&mapping.object) else {
            continue;
        };
        let crm_object = provider_object(
            mapping,
            selection(installation, doc, &mapping.object).as_ref(),
        );
        if crm_object.is_empty() {
            continue;
        }
        // Malformed mappings (no direction, empty names, misplaced transforms) are
        // reported by the manifest checks alone.
        let malformed: HashSet<i32> = of_object
            .iter()
            .filter(|v| v.kind == ViolationKind::InvalidTransform as i32)
            .map(|v| v.mapping_index)
            .collect();
        let wellformed = ObjectMapping {
            fields: mapping
                .fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let index = i32::try_from(i).unwrap_or(i32::MAX);
                    if malformed.contains(&index)
                        || f.model_fields.is_empty()
                        || f.provider_fields.is_empty()
                    {
                        FieldMapping::default()
                    } else {
                        f.clone()
                    }
                })
                .collect(),
            ..mapping.clone()
        };
        let start = out.len() - of_object.len();
        out.extend(schema_check::check_mapping(
            spec,
            &wellformed,
            &crm_object,
            schema.object(&crm_object),
            schema.version,
        ));
        // By mapping, manifest findings first; those of no one mapping last.
        out[start..].sort_by_key(|v| {
            if v.mapping_index < 0 {
                i32::MAX
            } else {
                v.mapping_index
            }
        });
    }
    out
}

/// What schema drift broke in a stored plan: each object re-checked against `schema`
/// (the connection's current version). Empty when the plan was compiled against that
/// very version (it was checked then) or nothing broke.
pub fn plan_drift(
    doc: &ManifestDoc,
    plan: &MappingPlan,
    schema: &SchemaSnapshot,
) -> Vec<FieldMappingViolation> {
    if plan.schema_version == schema.version {
        return Vec::new();
    }
    plan.objects
        .iter()
        .filter_map(|object| {
            let spec = doc.objects.get(&object.object)?;
            Some(schema_check::check_plan_object(
                spec,
                object,
                schema.object(&object.provider_object),
                schema.version,
            ))
        })
        .flatten()
        .collect()
}

/// One line naming what drift broke in an object, for `ObjectSelection.issue`.
pub fn drift_issue(schema_version: i64, broken: &[&FieldMappingViolation]) -> String {
    let what: Vec<&str> = broken.iter().map(|v| v.message.as_str()).collect();
    format!(
        "schema drift (schema version {schema_version}) broke the saved mappings; save them again: {}",
        what.join("; ")
    )
}

/// Marks the objects drift broke: each gets an issue naming the fields, and a READY
/// installation needs attention.
pub fn flag_drift(
    installation: &mut Installation,
    schema_version: i64,
    drift: &[FieldMappingViolation],
) {
    if drift.is_empty() {
        return;
    }
    for s in &mut installation.objects {
        let broken: Vec<&FieldMappingViolation> =
            drift.iter().filter(|v| v.object == s.object).collect();
        if s.enabled && !broken.is_empty() {
            s.issue = drift_issue(schema_version, &broken);
        }
    }
    if installation.state() == InstallationState::Ready {
        installation.state = InstallationState::NeedsAttention as i32;
    }
}

/// Sets the installation's state and per-object issues from its latest plan.
pub fn refresh_state(
    installation: &mut Installation,
    doc: &ManifestDoc,
    plan: Option<&MappingPlan>,
) {
    // List every manifest object, so issues have somewhere to go.
    for (key, object) in doc.objects.iter() {
        if !installation.objects.iter().any(|s| s.object == *key) {
            installation.objects.push(default_selection(key, object));
        }
    }
    let Some(plan) = plan else {
        installation.plan_version = 0;
        installation.state = InstallationState::NotConfigured as i32;
        for s in &mut installation.objects {
            s.issue.clear();
        }
        return;
    };
    installation.plan_version = plan.plan_version;
    let mut ready = true;
    for s in &mut installation.objects {
        s.issue.clear();
        if !s.enabled {
            continue;
        }
        if doc.objects.get(&s.object).is_none() {
            s.issue = "the object is not in this manifest version".into();
        } else if plan.manifest_version != installation.manifest_version {
            s.issue = format!(
                "the mapping plan was made for manifest version {}; save the mappings again",
                plan.manifest_version
            );
        } else if !plan.objects.iter().any(|o| o.object == s.object) {
            s.issue = "no field mappings saved".into();
        }
        ready &= s.issue.is_empty();
    }
    installation.state = if ready {
        InstallationState::Ready
    } else {
        InstallationState::NeedsAttention
    } as i32;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use syncline_proto::mapping::v1::transform as pb;

    const EXAMPLE: &str = include_str!("../../../docs/examples/manifest.yaml");

    fn doc() -> ManifestDoc {
        crate::manifest::validate(EXAMPLE).doc.unwrap()
    }

    fn field(model: &[&str], provider: &[&str], direction: MappingDirection) -> FieldMapping {
        FieldMapping {
            model_fields: model.iter().map(|s| (*s).to_owned()).collect(),
            provider_fields: provider.iter().map(|s| (*s).to_owned()).collect(),
            direction: direction as i32,
            ..FieldMapping::default()
        }
    }

    fn contact(fields: Vec<FieldMapping>) -> ObjectMapping {
        let mut all = vec![
            field(&["email"], &["Email"], MappingDirection::Both),
            field(&["last_name"], &["LastName"], MappingDirection::Both),
        ];
        all.extend(fields);
        ObjectMapping {
            object: "contact".into(),
            provider_object: "Contact".into(),
            fields: all,
        }
    }

    fn kinds(v: &[FieldMappingViolation]) -> Vec<(i32, ViolationKind)> {
        v.iter().map(|v| (v.mapping_index, v.kind())).collect()
    }

    #[test]
    fn a_complete_mapping_is_valid_and_compiles() {
        let doc = doc();
        let installation = default_installation("conn_1", 1, &doc);
        let mapping = contact(vec![]);
        assert!(validate(&doc, &installation, std::slice::from_ref(&mapping)).is_empty());
        let plan = compile_plan(
            &doc,
            &installation,
            &[mapping],
            3,
            &SchemaSnapshot::default(),
        )
        .unwrap()
        .0;
        assert_eq!(plan.plan_version, 3);
        let contact = &plan.objects[0];
        // The manifest's `schedule: 15m` goes into the plan for sync-engine.
        assert_eq!(contact.schedule_seconds, 15 * 60);
        assert_eq!(contact.inbound[0].target_type, FieldType::Email as i32);
        assert_eq!(contact.outbound[1].target_field, "LastName");
        // The manifest's `write: if_empty` on email is carried into its outbound rule.
        assert_eq!(contact.outbound[0].target_field, "Email");
        assert_eq!(contact.outbound[0].write_guard(), ProtoWriteGuard::IfEmpty);
        assert_eq!(contact.outbound[1].write_guard(), ProtoWriteGuard::Always);
        assert_eq!(
            contact.inbound[0].write_guard(),
            ProtoWriteGuard::Unspecified
        );
    }

    #[test]
    fn each_violation_names_its_mapping_and_field() {
        let doc = doc();
        let installation = default_installation("conn_1", 1, &doc);
        let bad_split = FieldMapping {
            inbound_transforms: vec![Transform {
                kind: Some(TransformKind::Split(pb::Split {
                    separator: String::new(),
                    index: 0,
                })),
            }],
            ..field(&["first_name"], &["FirstName"], MappingDirection::Inbound)
        };
        let mapping = contact(vec![
            field(
                &["full_name"],
                &["FirstName", "LastName"],
                MappingDirection::Inbound,
            ),
            field(&["first_name"], &["A", "B"], MappingDirection::Both),
            field(&["email"], &["Email2"], MappingDirection::Inbound),
            field(&["phone"], &["Email"], MappingDirection::Outbound),
            bad_split,
            field(&["phone"], &["Phone"], MappingDirection::Unspecified),
        ]);
        let found = validate(&doc, &installation, &[mapping]);
        assert_eq!(
            kinds(&found),
            [
                (2, ViolationKind::InvalidTransform),
                (3, ViolationKind::InvalidTransform),
                (4, ViolationKind::DuplicateTarget),
                (5, ViolationKind::DuplicateTarget),
                (6, ViolationKind::InvalidTransform),
                (7, ViolationKind::InvalidTransform),
            ],
            "{found:#?}"
        );
        assert!(
            found[4].message.contains("separator"),
            "{}",
            found[4].message
        );
        assert_eq!(found[2].model_field, "email");
    }

    #[test]
    fn required_fields_choices_and_access_are_enforced() {
        let doc = doc();
        let mut installation = default_installation("conn_1", 1, &doc);
        let contact_choice = installation
            .objects
            .iter_mut()
            .find(|s| s.object == "contact")
            .unwrap();
        contact_choice.optional_fields = vec!["first_name".into()];
        let mapping = ObjectMapping {
            object: "contact".into(),
            provider_object: "Contact".into(),
            fields: vec![
                field(&["email"], &["Email"], MappingDirection::Both),
                field(&["phone"], &["Phone"], MappingDirection::Inbound),
            ],
        };
        let deal = ObjectMapping {
            object: "deal".into(),
            provider_object: String::new(),
            fields: vec![field(&["name"], &["Name"], MappingDirection::Outbound)],
        };
        let found = validate(&doc, &installation, &[mapping, deal]);
        let summary: Vec<(&str, i32, ViolationKind, &str)> = found
            .iter()
            .map(|v| {
                (
                    v.object.as_str(),
                    v.mapping_index,
                    v.kind(),
                    v.model_field.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("contact", 1, ViolationKind::ModelFieldUnknown, "phone"),
                ("contact", -1, ViolationKind::RequiredUnmapped, "last_name"),
                ("deal", -1, ViolationKind::ProviderFieldUnknown, ""),
                ("deal", 0, ViolationKind::NotWritable, "name"),
                ("deal", -1, ViolationKind::RequiredUnmapped, "name"),
            ],
            "{found:#?}"
        );
    }

    #[test]
    fn mappings_that_no_longer_fit_the_manifest_are_left_out_with_an_issue() {
        let newer =
            crate::manifest::validate(&EXAMPLE.replace("      phone:\n        type: phone\n", ""))
                .doc
                .unwrap();
        let installation = default_installation("conn_1", 2, &newer);
        let old = contact(vec![field(
            &["phone"],
            &["Phone"],
            MappingDirection::Inbound,
        )]);
        let (plan, stale) =
            compile_plan(&newer, &installation, &[old], 4, &SchemaSnapshot::default()).unwrap();
        assert!(plan.objects.is_empty());
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].0, "contact");
        assert!(stale[0].1.contains("manifest version 2") && stale[0].1.contains("phone"));
    }

    #[test]
    fn installation_state_follows_the_plan() {
        let doc = doc();
        let mut installation = default_installation("conn_1", 1, &doc);
        refresh_state(&mut installation, &doc, None);
        assert_eq!(installation.state(), InstallationState::NotConfigured);
        let (plan, _) = compile_plan(
            &doc,
            &installation,
            &[contact(vec![])],
            1,
            &SchemaSnapshot::default(),
        )
        .unwrap();
        refresh_state(&mut installation, &doc, Some(&plan));
        assert_eq!(installation.state(), InstallationState::NeedsAttention);
        let deal = installation
            .objects
            .iter()
            .find(|s| s.object == "deal")
            .unwrap();
        assert_eq!(deal.issue, "no field mappings saved");
        for s in &mut installation.objects {
            s.enabled = s.object == "contact";
        }
        refresh_state(&mut installation, &doc, Some(&plan));
        assert_eq!(installation.state(), InstallationState::Ready);
        installation.manifest_version = 2;
        refresh_state(&mut installation, &doc, Some(&plan));
        assert_eq!(installation.state(), InstallationState::NeedsAttention);
    }
}

#[cfg(test)]
mod default_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::manifest::{ProviderName, default_mappings};

    #[test]
    fn the_manifests_default_mappings_validate_and_compile_for_each_provider() {
        let doc = crate::manifest::validate(include_str!("../../../docs/examples/manifest.yaml"))
            .doc
            .unwrap();
        for provider in [ProviderName::Salesforce, ProviderName::Hubspot] {
            let installation = default_installation("conn_1", 1, &doc);
            let defaults = default_mappings(&doc, provider);
            assert_eq!(defaults.len(), 2, "{provider:?}");
            let violations = validate(&doc, &installation, &defaults);
            assert!(violations.is_empty(), "{provider:?}: {violations:#?}");
            let (plan, stale) = compile_plan(
                &doc,
                &installation,
                &defaults,
                1,
                &SchemaSnapshot::default(),
            )
            .unwrap();
            assert!(stale.is_empty());
            assert_eq!(plan.objects.len(), 2);
        }
        let salesforce = default_mappings(&doc, ProviderName::Salesforce);
        let contact = &salesforce[0];
        let full_name = contact
            .fields
            .iter()
            .find(|f| f.model_fields == ["full_name"])
            .unwrap();
        // `write: never`: inbound only, with its concatenate first.
        assert_eq!(full_name.direction(), MappingDirection::Inbound);
        assert_eq!(full_name.provider_fields, ["FirstName", "LastName"]);
        assert!(starts_with_concatenate(&full_name.inbound_transforms));
        // `deal` is read only: its mappings are inbound.
        assert!(
            salesforce[1]
                .fields
                .iter()
                .all(|f| f.direction() == MappingDirection::Inbound)
        );
    }
}
