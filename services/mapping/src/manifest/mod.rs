//! Integration manifests: parsing (serde_norway) with limits against hostile input,
//! validation that reports every problem with its line and column, transforms as the
//! mapping plan will run them, and diffs between versions.

mod diff;
mod locate;
pub mod model;

use prost_types::value::Kind;
use syncline_mapping_plan::transform;
use syncline_proto::mapping::v1::transform as pb;
use syncline_proto::mapping::v1::{ManifestError, Transform};
use syncline_proto::schema::v1::FieldType;

pub use diff::diff;
pub use locate::{locate, locate_duplicate};
pub use model::{
    Access, DefaultMapping, DirectionWord, FieldSpec, ManifestDoc, ObjectSpec, ProviderName,
    TransformSpec, WriteGuard,
};

/// Manifests larger than this are refused before parsing.
pub const MAX_BYTES: usize = 1024 * 1024;
/// The most objects one manifest may declare.
pub const MAX_OBJECTS: usize = 200;
/// The most fields one object may declare.
pub const MAX_FIELDS: usize = 1000;
/// The most transforms in one direction of one mapping.
pub const MAX_TRANSFORMS: usize = 16;

/// A problem in a manifest, tied to a position when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// 1-based; 0 when not tied to a position.
    pub line: usize,
    pub column: usize,
    /// Dotted path of the offending node.
    pub path: String,
    /// Stable code for tooling.
    pub code: &'static str,
    pub message: String,
}

impl Issue {
    /// `line:column: message` (or just the message without a position).
    pub fn located(&self) -> String {
        let what = if self.path.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.path, self.message)
        };
        if self.line == 0 {
            what
        } else {
            format!("{}:{}: {what}", self.line, self.column)
        }
    }

    pub fn to_proto(&self) -> ManifestError {
        let clamp = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        ManifestError {
            line: clamp(self.line),
            column: clamp(self.column),
            path: self.path.clone(),
            message: self.message.clone(),
            code: self.code.to_owned(),
        }
    }
}

/// The outcome of validating a manifest.
#[derive(Debug, Clone)]
pub struct Validation {
    /// The parsed manifest, when it parsed (it may still have semantic errors).
    pub doc: Option<ManifestDoc>,
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

impl Validation {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// The manifest, only when valid.
    pub fn valid_doc(&self) -> Option<&ManifestDoc> {
        self.doc.as_ref().filter(|_| self.errors.is_empty())
    }
}

/// Parses and checks `source`. Never panics; every error carries a position when the
/// problem has one.
pub fn validate(source: &str) -> Validation {
    if source.len() > MAX_BYTES {
        return Validation {
            doc: None,
            errors: vec![Issue {
                line: 0,
                column: 0,
                path: String::new(),
                code: "too_large",
                message: format!(
                    "the manifest is {} bytes; the limit is {MAX_BYTES}",
                    source.len()
                ),
            }],
            warnings: Vec::new(),
        };
    }
    if source.trim().is_empty() {
        return Validation {
            doc: None,
            errors: vec![Issue {
                line: 0,
                column: 0,
                path: String::new(),
                code: "empty",
                message: "the manifest is empty".into(),
            }],
            warnings: Vec::new(),
        };
    }
    match serde_norway::from_str::<ManifestDoc>(source) {
        Err(e) => Validation {
            doc: None,
            errors: vec![parse_issue(source, &e)],
            warnings: Vec::new(),
        },
        Ok(doc) => {
            let mut checker = Checker {
                source,
                errors: Vec::new(),
                warnings: Vec::new(),
            };
            checker.check(&doc);
            Validation {
                doc: Some(doc),
                errors: checker.errors,
                warnings: checker.warnings,
            }
        }
    }
}

/// A serde_norway error as an issue: its position, the path it names, a stable code.
fn parse_issue(source: &str, error: &serde_norway::Error) -> Issue {
    let (line, column) = error.location().map_or((0, 0), |l| (l.line(), l.column()));
    let mut message = error.to_string();
    if let Some(at) = message.rfind(" at line ")
        && message[at..].contains(" column ")
    {
        message.truncate(at);
    }
    // serde_norway prefixes messages with the path of the node (`objects.contact: …`).
    let mut path = String::new();
    if let Some((head, rest)) = message.split_once(": ")
        && !head.is_empty()
        && !head.contains(' ')
        && head != "."
    {
        path = head.replace('[', ".").replace(']', "");
        message = rest.to_owned();
    }
    let code = if message.contains("unknown field") {
        "unknown_key"
    } else if message.contains("duplicate key") || message.contains("duplicate entry") {
        "duplicate_key"
    } else if message.contains("missing field") {
        "missing_key"
    } else if message.contains("unknown variant") {
        "invalid_value"
    } else if message.contains("invalid type") || message.contains("invalid value") {
        "invalid_type"
    } else if message.contains("recursion limit") {
        "too_deep"
    } else if message.contains("repetition limit") {
        "alias_limit"
    } else {
        "yaml_syntax"
    };
    let (mut line, mut column) = (line, column);
    if code == "duplicate_key" {
        let key = message.split('`').nth(1).unwrap_or_default();
        let parent: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
        if let Some((l, c)) = locate::locate_duplicate(source, &parent, key) {
            (line, column) = (l, c);
        }
        if !key.is_empty() {
            path = if path.is_empty() {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            };
        }
    }
    if code == "alias_limit" {
        message = "too many alias expansions (refused as an alias bomb)".into();
        // The parser gives no position: point at the first alias.
        if let Some((l, c)) = first_alias(source) {
            (line, column) = (l, c);
        }
    }
    Issue {
        line,
        column,
        path,
        code,
        message,
    }
}

/// The 1-based position of the first alias (`*name`) outside quotes and comments.
fn first_alias(source: &str) -> Option<(usize, usize)> {
    for (n, line) in source.lines().enumerate() {
        let mut quote: Option<char> = None;
        let mut previous = ' ';
        for (col, c) in line.chars().enumerate() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') if previous.is_whitespace() => break,
                (None, '*') if matches!(previous, ' ' | '[' | '{' | ',' | ':' | '-') => {
                    return Some((n + 1, col + 1));
                }
                _ => {}
            }
            previous = c;
        }
    }
    None
}

struct Checker<'a> {
    source: &'a str,
    errors: Vec<Issue>,
    warnings: Vec<Issue>,
}

fn issue(source: &str, path: &[&str], code: &'static str, message: String) -> Issue {
    let (line, column) = locate(source, path);
    Issue {
        line,
        column,
        path: path.join("."),
        code,
        message,
    }
}

/// Whether `name` is a valid object or field key: lower snake case, at most 64 characters.
pub fn valid_key(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 64
}

/// `base` followed by `rest`.
fn join<'x>(base: &[&'x str], rest: &[&'x str]) -> Vec<&'x str> {
    let mut path = base.to_vec();
    path.extend_from_slice(rest);
    path
}

/// Seconds in a `30s` / `15m` / `1h` / `2d` duration.
pub fn duration_seconds(text: &str) -> Option<u64> {
    let unit = text.chars().last()?;
    let number: u64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    number.checked_mul(scale)
}

impl Checker<'_> {
    fn error(&mut self, path: &[&str], code: &'static str, message: impl Into<String>) {
        self.errors
            .push(issue(self.source, path, code, message.into()));
    }

    fn warning(&mut self, path: &[&str], code: &'static str, message: impl Into<String>) {
        self.warnings
            .push(issue(self.source, path, code, message.into()));
    }

    fn check(&mut self, doc: &ManifestDoc) {
        if doc.format != model::FORMAT {
            self.error(
                &["format"],
                "unsupported_format",
                format!(
                    "format {} is not supported; use {}",
                    doc.format,
                    model::FORMAT
                ),
            );
        }
        if doc.name.trim().is_empty() {
            self.error(&["name"], "required", "must not be empty");
        }
        if doc.objects.is_empty() {
            self.error(&["objects"], "required", "declare at least one object");
        }
        if doc.objects.len() > MAX_OBJECTS {
            self.error(
                &["objects"],
                "too_large",
                format!("at most {MAX_OBJECTS} objects"),
            );
            return;
        }
        for (key, object) in doc.objects.iter() {
            self.check_object(key, object);
        }
    }

    fn check_object(&mut self, key: &str, object: &ObjectSpec) {
        let b = ["objects", key];
        let base = b.to_vec();
        if !valid_key(key) {
            self.error(
                &base,
                "invalid_name",
                "object keys are lower snake case (a-z, 0-9, _), at most 64 characters",
            );
        }
        if object.access.is_empty() {
            self.error(
                &join(&b, &["access"]),
                "required",
                "list at least one of read, write, subscribe",
            );
        }
        for (provider, name) in &object.providers {
            if name.trim().is_empty() {
                self.error(
                    &join(&b, &["providers", provider.as_str()]),
                    "required",
                    "the crm object name must not be empty",
                );
            }
        }
        let reads = object.access.contains(&Access::Read);
        if let Some(schedule) = &object.schedule {
            match duration_seconds(schedule) {
                None => self.error(
                    &join(&b, &["schedule"]),
                    "invalid_schedule",
                    format!("`{schedule}` is not a duration such as 15m, 1h or 1d"),
                ),
                Some(s) if s < 60 => self.error(
                    &join(&b, &["schedule"]),
                    "invalid_schedule",
                    "schedules run at most once a minute",
                ),
                Some(_) if !reads => self.error(
                    &join(&b, &["schedule"]),
                    "invalid_schedule",
                    "a schedule needs `read` access",
                ),
                Some(_) => {}
            }
        }
        if let Some(backfill) = &object.backfill {
            let ok = backfill == "all"
                || (backfill.ends_with('d') && duration_seconds(backfill).is_some_and(|s| s > 0));
            if !ok {
                self.error(
                    &join(&b, &["backfill"]),
                    "invalid_backfill",
                    format!("`{backfill}` is not a window such as 90d, or `all`"),
                );
            } else if !reads {
                self.error(
                    &join(&b, &["backfill"]),
                    "invalid_backfill",
                    "a backfill needs `read` access",
                );
            }
        }
        for provider in object.external_id.keys() {
            if !object.providers.contains_key(provider) {
                self.error(
                    &join(&b, &["external_id", provider.as_str()]),
                    "unknown_provider",
                    format!("the object declares no {} object", provider.as_str()),
                );
            }
        }
        if object.fields.is_empty() {
            self.error(
                &join(&b, &["fields"]),
                "required",
                "declare at least one field",
            );
        }
        if object.fields.len() > MAX_FIELDS {
            self.error(
                &join(&b, &["fields"]),
                "too_large",
                format!("at most {MAX_FIELDS} fields per object"),
            );
            return;
        }
        for (name, field) in object.fields.iter() {
            self.check_field(key, object, name, field);
        }
    }

    fn check_field(
        &mut self,
        object_key: &str,
        object: &ObjectSpec,
        name: &str,
        field: &FieldSpec,
    ) {
        let base = ["objects", object_key, "fields", name];
        if !valid_key(name) {
            self.error(
                &base,
                "invalid_name",
                "field keys are lower snake case (a-z, 0-9, _), at most 64 characters",
            );
        }
        let ty = transform::parse_type_word(&field.ty);
        if ty.is_none() {
            self.error(
                &join(&base, &["type"]),
                "invalid_type",
                format!("`{}` is not a field type", field.ty),
            );
        }
        let picklist = matches!(ty, Some(FieldType::Picklist | FieldType::MultiPicklist));
        if !field.values.is_empty() && !picklist {
            self.error(
                &join(&base, &["values"]),
                "invalid_values",
                "only picklist and multi_picklist fields list values",
            );
        }
        for (provider, mapping) in &field.map {
            let p = provider.as_str();
            if !object.providers.contains_key(provider) {
                self.error(
                    &join(&base, &["map", p]),
                    "unknown_provider",
                    format!("the object declares no {p} object to map to"),
                );
            }
            match mapping {
                DefaultMapping::Field(crm) => {
                    if crm.trim().is_empty() {
                        self.error(&join(&base, &["map", p]), "required", "name a crm field");
                    }
                }
                DefaultMapping::Full(full) => {
                    self.check_full_mapping(&join(&base, &["map", p]), field, object, full)
                }
            }
        }
        if field.required && !field.customer_choice {
            for provider in object.providers.keys() {
                if !field.map.contains_key(provider) {
                    self.error(
                        &base,
                        "unmapped_required",
                        format!(
                            "a required field needs a default {} mapping or `customer_choice: true`",
                            provider.as_str()
                        ),
                    );
                }
            }
        }
    }

    fn check_full_mapping(
        &mut self,
        at: &[&str],
        field: &FieldSpec,
        object: &ObjectSpec,
        full: &model::FullMapping,
    ) {
        if full.fields.is_empty() || full.fields.iter().any(|f| f.trim().is_empty()) {
            self.error(
                &join(at, &["fields"]),
                "required",
                "name at least one crm field",
            );
        }
        let several = full.fields.len() > 1;
        let direction = full.direction.unwrap_or(if several {
            DirectionWord::Inbound
        } else {
            DirectionWord::Both
        });
        if several && direction != DirectionWord::Inbound {
            self.error(
                &join(at, &["direction"]),
                "invalid_mapping",
                "several crm fields map only inbound",
            );
        }
        if several && !matches!(full.inbound.first(), Some(TransformSpec::Concatenate(_))) {
            self.error(
                &join(at, &["inbound"]),
                "invalid_transform",
                "several crm fields need `concatenate` as the first inbound transform",
            );
        }
        let writes = matches!(direction, DirectionWord::Outbound | DirectionWord::Both);
        if field.write == WriteGuard::Never && full.direction.is_some() && writes {
            self.error(
                &join(at, &["direction"]),
                "write_guard",
                "the field has `write: never` but this mapping writes it to the crm",
            );
        }
        if writes && full.direction.is_some() && !object.access.contains(&Access::Write) {
            self.warning(
                &join(at, &["direction"]),
                "unused_mapping",
                "the object has no `write` access, so the outbound half is unused",
            );
        }
        if direction == DirectionWord::Inbound && !full.outbound.is_empty() {
            self.warning(
                &join(at, &["outbound"]),
                "unused_transform",
                "outbound transforms of an inbound mapping are never applied",
            );
        }
        for (side, list) in [("inbound", &full.inbound), ("outbound", &full.outbound)] {
            if list.len() > MAX_TRANSFORMS {
                self.error(
                    &join(at, &[side]),
                    "too_large",
                    format!("at most {MAX_TRANSFORMS} transforms"),
                );
                continue;
            }
            for (i, spec) in list.iter().enumerate() {
                let index = i.to_string();
                let checked = to_transform(spec)
                    .and_then(|t| transform::compile(&t).map(|_| ()).map_err(|e| e.0));
                if let Err(message) = checked {
                    self.error(
                        &join(at, &[side, index.as_str()]),
                        "invalid_transform",
                        message,
                    );
                }
            }
        }
    }
}

/// The manifest's default mappings for one provider, as `ObjectMapping`s a tenant starts
/// from (objects without a `providers` entry for it are left out). Directions are narrowed
/// to what the object's access and each field's write guard allow. Only for a valid
/// manifest: transforms that do not convert are skipped.
pub fn default_mappings(
    doc: &ManifestDoc,
    provider: ProviderName,
) -> Vec<syncline_proto::mapping::v1::ObjectMapping> {
    use syncline_proto::mapping::v1::{FieldMapping, MappingDirection, ObjectMapping};
    let mut out = Vec::new();
    for (key, object) in doc.objects.iter() {
        let Some(provider_object) = object.providers.get(&provider) else {
            continue;
        };
        let reads =
            object.access.contains(&Access::Read) || object.access.contains(&Access::Subscribe);
        let writes = object.access.contains(&Access::Write);
        let mut fields = Vec::new();
        for (name, field) in object.fields.iter() {
            let Some(mapping) = field.map.get(&provider) else {
                continue;
            };
            let (crm_fields, declared, inbound, outbound) = match mapping {
                DefaultMapping::Field(crm) => (vec![crm.clone()], None, &[][..], &[][..]),
                DefaultMapping::Full(full) => (
                    full.fields.clone(),
                    full.direction,
                    full.inbound.as_slice(),
                    full.outbound.as_slice(),
                ),
            };
            let direction = declared.unwrap_or(if crm_fields.len() > 1 {
                DirectionWord::Inbound
            } else {
                DirectionWord::Both
            });
            let can_write = writes && field.write != WriteGuard::Never;
            let (inbound_on, outbound_on) = match direction {
                DirectionWord::Inbound => (reads, false),
                DirectionWord::Outbound => (false, can_write),
                DirectionWord::Both => (reads, can_write),
            };
            let direction = match (inbound_on, outbound_on) {
                (true, true) => MappingDirection::Both,
                (true, false) => MappingDirection::Inbound,
                (false, true) => MappingDirection::Outbound,
                (false, false) => continue,
            };
            let convert = |specs: &[TransformSpec]| -> Vec<Transform> {
                specs.iter().filter_map(|t| to_transform(t).ok()).collect()
            };
            fields.push(FieldMapping {
                model_fields: vec![name.clone()],
                provider_fields: crm_fields,
                direction: direction as i32,
                inbound_transforms: if inbound_on {
                    convert(inbound)
                } else {
                    Vec::new()
                },
                outbound_transforms: if outbound_on {
                    convert(outbound)
                } else {
                    Vec::new()
                },
            });
        }
        out.push(ObjectMapping {
            object: key.clone(),
            provider_object: provider_object.clone(),
            fields,
        });
    }
    out
}

/// A YAML transform as the mapping plan's `Transform`.
pub fn to_transform(spec: &TransformSpec) -> Result<Transform, String> {
    let kind = match spec {
        TransformSpec::Coerce(word) => pb::Kind::CoerceType(pb::CoerceType {
            target_type: transform::parse_type_word(word)
                .ok_or_else(|| format!("`{word}` is not a field type"))?
                as i32,
        }),
        TransformSpec::Default(value) => pb::Kind::DefaultValue(pb::DefaultValue {
            value: Some(to_value(value, 0)?),
        }),
        TransformSpec::Picklist(p) => pb::Kind::PicklistMap(pb::PicklistMap {
            values: p.map.clone().into_iter().collect(),
            unmapped: match p.unmapped.as_deref() {
                None | Some("pass_through") => pb::UnmappedValue::PassThrough,
                Some("use_default") => pb::UnmappedValue::UseDefault,
                Some("reject") => pb::UnmappedValue::Reject,
                Some(other) => {
                    return Err(format!(
                        "`{other}` is not one of pass_through, use_default, reject"
                    ));
                }
            } as i32,
            default_value: p.default.clone(),
        }),
        TransformSpec::Concatenate(c) => pb::Kind::Concatenate(pb::Concatenate {
            separator: c.separator.clone(),
            skip_empty: c.skip_empty,
        }),
        TransformSpec::Split(s) => pb::Kind::Split(pb::Split {
            separator: s.separator.clone(),
            index: s.index,
        }),
        TransformSpec::Case(word) => pb::Kind::ChangeCase(pb::ChangeCase {
            case: match word.as_str() {
                "lower" => pb::Case::Lower,
                "upper" => pb::Case::Upper,
                "title" => pb::Case::Title,
                "trim" => pb::Case::Trim,
                other => return Err(format!("`{other}` is not one of lower, upper, title, trim")),
            } as i32,
        }),
        TransformSpec::Date(d) => pb::Kind::FormatDate(pb::FormatDate {
            input_format: d.input.clone(),
            output_format: d.output.clone(),
            time_zone: d.zone.clone(),
        }),
        TransformSpec::Number(n) => pb::Kind::FormatNumber(pb::FormatNumber {
            multiplier: n.multiplier.unwrap_or(1.0),
            decimal_places: n.decimals,
            rounding: match n.rounding.as_deref() {
                None | Some("half_up") => pb::Rounding::HalfUp,
                Some("half_even") => pb::Rounding::HalfEven,
                Some("down") => pb::Rounding::Down,
                Some("up") => pb::Rounding::Up,
                Some(other) => {
                    return Err(format!(
                        "`{other}` is not one of half_up, half_even, down, up"
                    ));
                }
            } as i32,
            as_string: n.as_string,
        }),
    };
    Ok(Transform { kind: Some(kind) })
}

/// A YAML value as a protobuf `Value` (nesting limited; tags refused).
fn to_value(value: &serde_norway::Value, depth: usize) -> Result<prost_types::Value, String> {
    use serde_norway::Value as Y;
    if depth > 16 {
        return Err("the default value is nested too deeply".into());
    }
    let kind = match value {
        Y::Null => Kind::NullValue(0),
        Y::Bool(b) => Kind::BoolValue(*b),
        Y::Number(n) => Kind::NumberValue(n.as_f64().ok_or("the default number is out of range")?),
        Y::String(s) => Kind::StringValue(s.clone()),
        Y::Sequence(items) => Kind::ListValue(prost_types::ListValue {
            values: items
                .iter()
                .map(|v| to_value(v, depth + 1))
                .collect::<Result<_, _>>()?,
        }),
        Y::Mapping(map) => Kind::StructValue(prost_types::Struct {
            fields: map
                .iter()
                .map(|(k, v)| {
                    let key = k.as_str().ok_or("default object keys must be text")?;
                    Ok((key.to_owned(), to_value(v, depth + 1)?))
                })
                .collect::<Result<_, String>>()?,
        }),
        Y::Tagged(_) => return Err("tagged values are not supported".into()),
    };
    Ok(prost_types::Value { kind: Some(kind) })
}

#[cfg(test)]
mod tests;
