//! Value transforms, compiled once from `syncline.mapping.v1.Transform` and applied per value.
//!
//! A [`Step`] holds everything pre-parsed (strftime items, rounding factors, picklist maps),
//! so applying one never parses configuration again. Every failure is a [`TransformError`]
//! whose message is safe to show a user.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat};
use prost_types::value::Kind;
use prost_types::{ListValue, Value};
use syncline_proto::mapping::v1::Transform;
use syncline_proto::mapping::v1::transform as pb;
use syncline_proto::schema::v1::FieldType;

/// Why a transform could not be compiled or applied; the message is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransformError(pub String);

impl TransformError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// What a picklist map does with a value it does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmapped {
    /// Keep the value.
    PassThrough,
    /// Use the map's default value.
    UseDefault,
    /// Fail the field.
    Reject,
}

/// A change of letter case or whitespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseChange {
    Lower,
    Upper,
    Title,
    Trim,
}

/// How a number is rounded to its decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Half away from zero.
    HalfUp,
    HalfEven,
    /// Toward zero.
    Down,
    /// Away from zero.
    Up,
}

/// A date pattern: ISO-8601 / RFC 3339 when `None`, else pre-parsed strftime items.
#[derive(Debug, Clone)]
pub struct DatePattern {
    items: Option<Vec<Item<'static>>>,
    /// For patterns of only `%Y`, `%m`, `%d` and literals (`%m/%d/%Y`): a direct reader
    /// and writer, tried before chrono's general parser.
    fast: Option<Vec<FastItem>>,
}

/// One part of a numeric date pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FastItem {
    Year,
    Month,
    Day,
    Literal(Box<str>),
}

impl FastItem {
    fn from_items(items: &[Item<'static>]) -> Option<Vec<FastItem>> {
        use chrono::format::{Numeric, Pad};
        items
            .iter()
            .map(|item| match item {
                Item::Numeric(Numeric::Year, Pad::Zero) => Some(FastItem::Year),
                Item::Numeric(Numeric::Month, Pad::Zero) => Some(FastItem::Month),
                Item::Numeric(Numeric::Day, Pad::Zero) => Some(FastItem::Day),
                Item::Literal(s) | Item::Space(s) => Some(FastItem::Literal((*s).into())),
                Item::OwnedLiteral(s) | Item::OwnedSpace(s) => Some(FastItem::Literal(s.clone())),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .filter(|fast| {
                [FastItem::Year, FastItem::Month, FastItem::Day]
                    .iter()
                    .all(|part| fast.iter().filter(|f| *f == part).count() == 1)
            })
    }

    /// Reads exactly `YYYY`, `MM`, `DD` and the literals; `None` for anything else.
    fn parse(fast: &[FastItem], s: &str) -> Option<NaiveDate> {
        let b = s.as_bytes();
        let mut at = 0;
        let (mut year, mut month, mut day) = (0i32, 0u32, 0u32);
        let digits = |at: &mut usize, n: usize| -> Option<u32> {
            let part = b.get(*at..*at + n)?;
            *at += n;
            part.iter().try_fold(0u32, |acc, c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })
        };
        for item in fast {
            match item {
                FastItem::Year => year = i32::try_from(digits(&mut at, 4)?).ok()?,
                FastItem::Month => month = digits(&mut at, 2)?,
                FastItem::Day => day = digits(&mut at, 2)?,
                FastItem::Literal(lit) => {
                    if !b.get(at..)?.starts_with(lit.as_bytes()) {
                        return None;
                    }
                    at += lit.len();
                }
            }
        }
        (at == b.len()).then_some(())?;
        NaiveDate::from_ymd_opt(year, month, day)
    }

    /// Writes a date with the pattern; `None` for years outside 0..=9999.
    fn render(fast: &[FastItem], d: NaiveDate) -> Option<String> {
        use chrono::Datelike;
        let year = u32::try_from(d.year()).ok().filter(|y| *y <= 9999)?;
        let mut out = String::with_capacity(16);
        let push = |out: &mut String, value: u32, width: u32| {
            for place in (0..width).rev() {
                let digit = (value / 10u32.pow(place)) % 10;
                out.push(char::from(b'0' + digit as u8));
            }
        };
        for item in fast {
            match item {
                FastItem::Year => push(&mut out, year, 4),
                FastItem::Month => push(&mut out, d.month(), 2),
                FastItem::Day => push(&mut out, d.day(), 2),
                FastItem::Literal(lit) => out.push_str(lit),
            }
        }
        Some(out)
    }
}

/// One compiled transform.
#[derive(Debug, Clone)]
pub enum Step {
    /// Converts to a field type.
    Coerce(FieldType),
    /// Replaces null (or a missing source) with a value.
    Default(Value),
    /// Maps picklist values.
    Picklist {
        values: HashMap<String, String>,
        unmapped: Unmapped,
        default: String,
    },
    /// Joins a list of values into one string.
    Concatenate { separator: String, skip_empty: bool },
    /// Splits a string and keeps one part (negative index counts from the end).
    Split { separator: String, index: i32 },
    /// Changes case or trims.
    Case(CaseChange),
    /// Parses and re-formats a date, date-time or time.
    Date {
        input: DatePattern,
        output: DatePattern,
        zone: FixedOffset,
    },
    /// Scales and rounds a number.
    Number {
        multiplier: f64,
        decimals: Option<u8>,
        rounding: Rounding,
        as_string: bool,
    },
}

/// The most decimal places a number format may ask for.
pub const MAX_DECIMAL_PLACES: i32 = 15;

/// Compiles one transform, checking it is well formed.
pub fn compile(transform: &Transform) -> Result<Step, TransformError> {
    let kind = transform
        .kind
        .as_ref()
        .ok_or_else(|| TransformError::new("transform has no kind"))?;
    Ok(match kind {
        pb::Kind::CoerceType(c) => match FieldType::try_from(c.target_type) {
            Ok(FieldType::Unspecified) | Err(_) => {
                return Err(TransformError::new("coerce_type needs a target type"));
            }
            Ok(ty) => Step::Coerce(ty),
        },
        pb::Kind::DefaultValue(d) => Step::Default(d.value.clone().unwrap_or(null())),
        pb::Kind::PicklistMap(p) => {
            let unmapped = match pb::UnmappedValue::try_from(p.unmapped) {
                Ok(pb::UnmappedValue::Unspecified | pb::UnmappedValue::PassThrough) => {
                    Unmapped::PassThrough
                }
                Ok(pb::UnmappedValue::UseDefault) => Unmapped::UseDefault,
                Ok(pb::UnmappedValue::Reject) => Unmapped::Reject,
                Err(_) => {
                    return Err(TransformError::new(
                        "picklist_map has an unknown unmapped rule",
                    ));
                }
            };
            Step::Picklist {
                values: p.values.clone(),
                unmapped,
                default: p.default_value.clone(),
            }
        }
        pb::Kind::Concatenate(c) => Step::Concatenate {
            separator: c.separator.clone(),
            skip_empty: c.skip_empty,
        },
        pb::Kind::Split(s) => {
            if s.separator.is_empty() {
                return Err(TransformError::new("split needs a non-empty separator"));
            }
            Step::Split {
                separator: s.separator.clone(),
                index: s.index,
            }
        }
        pb::Kind::ChangeCase(c) => Step::Case(match pb::Case::try_from(c.case) {
            Ok(pb::Case::Lower) => CaseChange::Lower,
            Ok(pb::Case::Upper) => CaseChange::Upper,
            Ok(pb::Case::Title) => CaseChange::Title,
            Ok(pb::Case::Trim) => CaseChange::Trim,
            Ok(pb::Case::Unspecified) | Err(_) => {
                return Err(TransformError::new("change_case needs a case"));
            }
        }),
        pb::Kind::FormatDate(f) => Step::Date {
            input: DatePattern::parse(&f.input_format)?,
            output: DatePattern::parse(&f.output_format)?,
            zone: parse_zone(&f.time_zone)?,
        },
        pb::Kind::FormatNumber(n) => {
            if !n.multiplier.is_finite() {
                return Err(TransformError::new(
                    "format_number multiplier must be finite",
                ));
            }
            let decimals = match n.decimal_places {
                None => None,
                Some(d) if (0..=MAX_DECIMAL_PLACES).contains(&d) => u8::try_from(d).ok(),
                Some(_) => {
                    return Err(TransformError::new(format!(
                        "format_number decimal_places must be between 0 and {MAX_DECIMAL_PLACES}"
                    )));
                }
            };
            let rounding = match pb::Rounding::try_from(n.rounding) {
                Ok(pb::Rounding::Unspecified | pb::Rounding::HalfUp) => Rounding::HalfUp,
                Ok(pb::Rounding::HalfEven) => Rounding::HalfEven,
                Ok(pb::Rounding::Down) => Rounding::Down,
                Ok(pb::Rounding::Up) => Rounding::Up,
                Err(_) => return Err(TransformError::new("format_number has an unknown rounding")),
            };
            Step::Number {
                multiplier: if n.multiplier == 0.0 {
                    1.0
                } else {
                    n.multiplier
                },
                decimals,
                rounding,
                as_string: n.as_string,
            }
        }
    })
}

impl DatePattern {
    /// Pre-parses a strftime pattern; empty means ISO-8601.
    pub fn parse(pattern: &str) -> Result<Self, TransformError> {
        if pattern.is_empty() {
            return Ok(Self {
                items: None,
                fast: None,
            });
        }
        let items = StrftimeItems::new(pattern)
            .parse_to_owned()
            .map_err(|_| TransformError::new(format!("`{pattern}` is not a valid date pattern")))?;
        Ok(Self {
            fast: FastItem::from_items(&items),
            items: Some(items),
        })
    }
}

/// `""`/`UTC`/`Z` or a fixed offset such as `+02:00`.
fn parse_zone(zone: &str) -> Result<FixedOffset, TransformError> {
    let unsupported = || {
        TransformError::new(format!(
            "time zone `{zone}` is not supported: use UTC or a fixed offset such as +02:00"
        ))
    };
    match zone {
        "" | "UTC" | "utc" | "Z" | "Etc/UTC" => FixedOffset::east_opt(0).ok_or_else(unsupported),
        _ => {
            let (sign, rest) = match zone.as_bytes().first() {
                Some(b'+') => (1, &zone[1..]),
                Some(b'-') => (-1, &zone[1..]),
                _ => return Err(unsupported()),
            };
            let (h, m) = rest.split_once(':').ok_or_else(unsupported)?;
            let h: i32 = h.parse().map_err(|_| unsupported())?;
            let m: i32 = m.parse().map_err(|_| unsupported())?;
            if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
                return Err(unsupported());
            }
            FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(unsupported)
        }
    }
}

/// The null value.
pub fn null() -> Value {
    Value {
        kind: Some(Kind::NullValue(0)),
    }
}

/// A string value.
pub fn string(s: impl Into<String>) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

/// A number value.
pub fn number(n: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

/// A boolean value.
pub fn boolean(b: bool) -> Value {
    Value {
        kind: Some(Kind::BoolValue(b)),
    }
}

/// A list value.
pub fn list(values: Vec<Value>) -> Value {
    Value {
        kind: Some(Kind::ListValue(ListValue { values })),
    }
}

/// Whether a value is null (or has no kind).
pub fn is_null(value: &Value) -> bool {
    matches!(value.kind, None | Some(Kind::NullValue(_)))
}

/// A number as text: whole numbers without a fraction, others shortest round-trip.
pub fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// A scalar as text; `None` for null; lists are `;`-joined; structs fail.
fn text(value: &Value) -> Result<Option<String>, TransformError> {
    Ok(match &value.kind {
        None | Some(Kind::NullValue(_)) => None,
        Some(Kind::StringValue(s)) => Some(s.clone()),
        Some(Kind::NumberValue(n)) => Some(number_text(*n)),
        Some(Kind::BoolValue(b)) => Some(b.to_string()),
        Some(Kind::ListValue(l)) => {
            let mut parts = Vec::with_capacity(l.values.len());
            for v in &l.values {
                if let Some(t) = text(v)? {
                    parts.push(t);
                }
            }
            Some(parts.join(";"))
        }
        Some(Kind::StructValue(_)) => {
            return Err(TransformError::new(
                "expected a scalar value, got an object",
            ));
        }
    })
}

impl Step {
    /// Applies the step to `value`.
    pub fn apply(&self, value: Value) -> Result<Value, TransformError> {
        match self {
            Step::Coerce(ty) => coerce(value, *ty),
            Step::Default(default) => Ok(if is_null(&value) {
                default.clone()
            } else {
                value
            }),
            Step::Picklist {
                values,
                unmapped,
                default,
            } => map_picklist(value, values, *unmapped, default),
            Step::Concatenate {
                separator,
                skip_empty,
            } => concatenate(value, separator, *skip_empty),
            Step::Split { separator, index } => split(value, separator, *index),
            Step::Case(case) => change_case(value, *case),
            Step::Date {
                input,
                output,
                zone,
            } => format_date(value, input, output, *zone),
            Step::Number {
                multiplier,
                decimals,
                rounding,
                as_string,
            } => format_number(value, *multiplier, *decimals, *rounding, *as_string),
        }
    }

    /// Applies the step to a borrowed value, copying only what the result needs (the first
    /// step of a rule reads the record's value in place).
    pub fn apply_ref(&self, value: &Value) -> Result<Value, TransformError> {
        match (self, &value.kind) {
            (
                Step::Picklist {
                    values,
                    unmapped: Unmapped::PassThrough,
                    ..
                },
                Some(Kind::StringValue(s)),
            ) => Ok(string(values.get(s).unwrap_or(s).clone())),
            (
                Step::Picklist {
                    values,
                    unmapped: Unmapped::UseDefault,
                    default,
                },
                Some(Kind::StringValue(s)),
            ) => Ok(string(values.get(s).unwrap_or(default).clone())),
            (Step::Case(case), Some(Kind::StringValue(s))) => Ok(string(match case {
                CaseChange::Lower if s.is_ascii() => s.to_ascii_lowercase(),
                CaseChange::Upper if s.is_ascii() => s.to_ascii_uppercase(),
                CaseChange::Lower => s.to_lowercase(),
                CaseChange::Upper => s.to_uppercase(),
                CaseChange::Trim => s.trim().to_owned(),
                CaseChange::Title => title_case(s),
            })),
            (
                Step::Date {
                    input,
                    output,
                    zone,
                },
                Some(Kind::StringValue(s)),
            ) if !s.is_empty() => {
                let t = parse_temporal(s, input, *zone).ok_or_else(|| {
                    TransformError::new(format!("`{}` is not a date in the input format", clip(s)))
                })?;
                Ok(string(render_temporal(t, output, *zone)?))
            }
            (
                Step::Number {
                    multiplier,
                    decimals,
                    rounding,
                    as_string,
                },
                Some(Kind::NumberValue(n)),
            ) => format_number(number(*n), *multiplier, *decimals, *rounding, *as_string),
            _ => self.apply(value.clone()),
        }
    }

    /// Whether the step replaces a null, so that a missing source still produces a value.
    pub fn fills_null(&self) -> bool {
        matches!(self, Step::Default(_))
    }
}

fn map_picklist(
    value: Value,
    values: &HashMap<String, String>,
    unmapped: Unmapped,
    default: &str,
) -> Result<Value, TransformError> {
    let map_one = |s: String| -> Result<String, TransformError> {
        match values.get(&s) {
            Some(mapped) => Ok(mapped.clone()),
            None => match unmapped {
                Unmapped::PassThrough => Ok(s),
                Unmapped::UseDefault => Ok(default.to_owned()),
                Unmapped::Reject => Err(TransformError::new(format!(
                    "picklist value `{s}` is not mapped"
                ))),
            },
        }
    };
    match value.kind {
        None | Some(Kind::NullValue(_)) => Ok(value),
        Some(Kind::StringValue(s)) => Ok(string(map_one(s)?)),
        Some(Kind::ListValue(l)) => {
            let mut out = Vec::with_capacity(l.values.len());
            for v in l.values {
                match v.kind {
                    Some(Kind::StringValue(s)) => out.push(string(map_one(s)?)),
                    None | Some(Kind::NullValue(_)) => {}
                    _ => return Err(TransformError::new("picklist values must be text")),
                }
            }
            Ok(list(out))
        }
        Some(Kind::NumberValue(_) | Kind::BoolValue(_)) => {
            let t = text(&value)?.unwrap_or_default();
            Ok(string(map_one(t)?))
        }
        Some(Kind::StructValue(_)) => Err(TransformError::new("picklist values must be text")),
    }
}

fn concatenate(value: Value, separator: &str, skip_empty: bool) -> Result<Value, TransformError> {
    let items = match value.kind {
        Some(Kind::ListValue(l)) => l.values,
        _ => vec![value],
    };
    let mut out = String::new();
    let mut first = true;
    for item in &items {
        let t = text(item)?.unwrap_or_default();
        if skip_empty && t.is_empty() {
            continue;
        }
        if !first {
            out.push_str(separator);
        }
        out.push_str(&t);
        first = false;
    }
    Ok(string(out))
}

fn split(value: Value, separator: &str, index: i32) -> Result<Value, TransformError> {
    let Some(t) = text(&value)? else {
        return Ok(null());
    };
    let parts: Vec<&str> = t.split(separator).collect();
    let len = i64::try_from(parts.len()).unwrap_or(i64::MAX);
    let i = i64::from(index);
    let at = if i < 0 { len + i } else { i };
    Ok(usize::try_from(at)
        .ok()
        .and_then(|at| parts.get(at))
        .map_or_else(null, |p| string(*p)))
}

fn change_case(value: Value, case: CaseChange) -> Result<Value, TransformError> {
    match value.kind {
        Some(Kind::StringValue(s)) => Ok(string(match case {
            CaseChange::Lower => s.to_lowercase(),
            CaseChange::Upper => s.to_uppercase(),
            CaseChange::Trim => s.trim().to_owned(),
            CaseChange::Title => title_case(&s),
        })),
        Some(Kind::ListValue(l)) => {
            let mut out = Vec::with_capacity(l.values.len());
            for v in l.values {
                out.push(change_case(v, case)?);
            }
            Ok(list(out))
        }
        Some(Kind::StructValue(_)) => Err(TransformError::new("change_case expects text")),
        _ => Ok(value),
    }
}

/// Upper-cases the first letter of every whitespace-separated word, lower-cases the rest.
pub fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if c.is_whitespace() {
            start = true;
            out.push(c);
        } else if start {
            out.extend(c.to_uppercase());
            start = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// A parsed date, date-time or time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Temporal {
    Date(NaiveDate),
    DateTime(DateTime<FixedOffset>),
    Time(NaiveTime),
}

/// `YYYY-MM-DD` without going through a format parser (the hot case).
fn iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(digits(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(5..7)?, digits(8..10)?)
}

/// A date as `YYYY-MM-DD` (years outside 0..=9999 in chrono's own rendering).
fn iso_date_text(d: NaiveDate) -> String {
    use chrono::Datelike;
    if let Ok(year @ 0..=9999) = u32::try_from(d.year()) {
        let mut out = String::with_capacity(10);
        for (value, digits) in [(year, 4u32), (d.month(), 2), (d.day(), 2)] {
            if !out.is_empty() {
                out.push('-');
            }
            for place in (0..digits).rev() {
                let digit = (value / 10u32.pow(place)) % 10;
                out.push(char::from(b'0' + digit as u8));
            }
        }
        out
    } else {
        d.format("%Y-%m-%d").to_string()
    }
}

fn parse_temporal(s: &str, pattern: &DatePattern, zone: FixedOffset) -> Option<Temporal> {
    let in_zone = |naive: NaiveDateTime| naive.and_local_timezone(zone).single();
    match &pattern.items {
        None => {
            if let Some(d) = iso_date(s) {
                return Some(Temporal::Date(d));
            }
            if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
                return Some(Temporal::DateTime(dt));
            }
            // ISO 8601 with a basic-format offset, as Salesforce writes every datetime
            // (`2024-01-02T00:10:30.000+0000`).
            if let Ok(dt) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
                return Some(Temporal::DateTime(dt));
            }
            if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                return Some(Temporal::Date(d));
            }
            if let Ok(naive) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
                return in_zone(naive).map(Temporal::DateTime);
            }
            // A time of day, also in UTC's form (Salesforce writes `13:30:00.000Z`).
            NaiveTime::parse_from_str(s.strip_suffix('Z').unwrap_or(s), "%H:%M:%S%.f")
                .ok()
                .map(Temporal::Time)
        }
        Some(items) => {
            if let Some(d) = pattern.fast.as_deref().and_then(|f| FastItem::parse(f, s)) {
                return Some(Temporal::Date(d));
            }
            let mut parsed = Parsed::new();
            chrono::format::parse(&mut parsed, s, items.iter()).ok()?;
            if let Ok(dt) = parsed.to_datetime() {
                return Some(Temporal::DateTime(dt));
            }
            let date = parsed.to_naive_date().ok();
            let time = parsed.to_naive_time().ok();
            match (date, time) {
                (Some(d), Some(t)) => in_zone(d.and_time(t)).map(Temporal::DateTime),
                (Some(d), None) => Some(Temporal::Date(d)),
                (None, Some(t)) => Some(Temporal::Time(t)),
                (None, None) => None,
            }
        }
    }
}

fn render_temporal(
    t: Temporal,
    pattern: &DatePattern,
    zone: FixedOffset,
) -> Result<String, TransformError> {
    let Some(items) = &pattern.items else {
        return Ok(match t {
            Temporal::Date(d) => iso_date_text(d),
            Temporal::DateTime(dt) => dt
                .with_timezone(&zone)
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
            Temporal::Time(t) => t.format("%H:%M:%S%.f").to_string(),
        });
    };
    if let (Some(fast), Temporal::Date(d)) = (&pattern.fast, t)
        && let Some(out) = FastItem::render(fast, d)
    {
        return Ok(out);
    }
    let mut out = String::new();
    let written = match t {
        Temporal::Date(d) => write!(out, "{}", d.format_with_items(items.iter())),
        Temporal::DateTime(dt) => write!(
            out,
            "{}",
            dt.with_timezone(&zone).format_with_items(items.iter())
        ),
        Temporal::Time(t) => write!(out, "{}", t.format_with_items(items.iter())),
    };
    written.map_err(|_| {
        TransformError::new("the output pattern asks for parts the value does not have")
    })?;
    Ok(out)
}

fn format_date(
    value: Value,
    input: &DatePattern,
    output: &DatePattern,
    zone: FixedOffset,
) -> Result<Value, TransformError> {
    let s = match &value.kind {
        None | Some(Kind::NullValue(_)) => return Ok(value),
        Some(Kind::StringValue(s)) => s.as_str(),
        Some(_) => return Err(TransformError::new("format_date expects text")),
    };
    if s.is_empty() {
        return Ok(null());
    }
    let t = parse_temporal(s, input, zone).ok_or_else(|| {
        TransformError::new(format!("`{}` is not a date in the input format", clip(s)))
    })?;
    Ok(string(render_temporal(t, output, zone)?))
}

/// At most 40 characters of a value, for messages.
fn clip(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

fn as_number(value: &Value) -> Result<Option<f64>, TransformError> {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Ok(None),
        Some(Kind::NumberValue(n)) => Ok(Some(*n)),
        Some(Kind::StringValue(s)) if s.trim().is_empty() => Ok(None),
        Some(Kind::StringValue(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Some)
            .ok_or_else(|| TransformError::new(format!("`{}` is not a number", clip(s)))),
        Some(_) => Err(TransformError::new("expected a number")),
    }
}

/// Rounds `n` to `decimals` places.
pub fn round(n: f64, decimals: u8, rounding: Rounding) -> f64 {
    let factor = 10f64.powi(i32::from(decimals));
    let scaled = n * factor;
    let r = match rounding {
        Rounding::HalfUp => scaled.round(),
        Rounding::HalfEven => scaled.round_ties_even(),
        Rounding::Down => scaled.trunc(),
        Rounding::Up => {
            if scaled.fract() == 0.0 {
                scaled
            } else {
                scaled.trunc() + scaled.signum()
            }
        }
    };
    r / factor
}

fn format_number(
    value: Value,
    multiplier: f64,
    decimals: Option<u8>,
    rounding: Rounding,
    as_string: bool,
) -> Result<Value, TransformError> {
    let Some(n) = as_number(&value)? else {
        return Ok(null());
    };
    let mut n = n * multiplier;
    if let Some(d) = decimals {
        n = round(n, d, rounding);
    }
    if !n.is_finite() {
        return Err(TransformError::new("number is out of range"));
    }
    Ok(if as_string {
        string(match decimals {
            Some(d) => format!("{n:.*}", usize::from(d)),
            None => number_text(n),
        })
    } else {
        number(n)
    })
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "on" => Some(true),
        "false" | "no" | "n" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// Converts `value` to `ty`; null stays null.
pub fn coerce(value: Value, ty: FieldType) -> Result<Value, TransformError> {
    if is_null(&value) {
        return Ok(null());
    }
    use FieldType as T;
    match ty {
        T::Unspecified | T::Other => Ok(value),
        T::String
        | T::TextArea
        | T::Email
        | T::Phone
        | T::Url
        | T::Picklist
        | T::Reference
        | T::Id
        | T::Binary => match value.kind {
            Some(Kind::StringValue(_)) => Ok(value),
            _ => Ok(string(text(&value)?.unwrap_or_default())),
        },
        T::MultiPicklist => match value.kind {
            Some(Kind::StringValue(_)) => Ok(value),
            Some(Kind::ListValue(_)) => Ok(string(text(&value)?.unwrap_or_default())),
            _ => Ok(string(text(&value)?.unwrap_or_default())),
        },
        T::Integer => {
            if let Some(Kind::BoolValue(b)) = value.kind {
                return Ok(number(if b { 1.0 } else { 0.0 }));
            }
            match as_number(&value)? {
                None => Ok(null()),
                Some(n) if n.fract() == 0.0 => Ok(number(n)),
                Some(n) => Err(TransformError::new(format!("{n} is not a whole number"))),
            }
        }
        T::Decimal | T::Currency | T::Percent => match value.kind {
            Some(Kind::NumberValue(_)) => Ok(value),
            // Decimal text is kept as text so it does not lose precision, once checked.
            Some(Kind::StringValue(ref s)) => {
                as_number(&value)?;
                if s.trim().len() == s.len() {
                    Ok(value)
                } else {
                    Ok(string(s.trim()))
                }
            }
            Some(Kind::BoolValue(b)) => Ok(number(if b { 1.0 } else { 0.0 })),
            _ => Err(TransformError::new("expected a number")),
        },
        T::Boolean => match &value.kind {
            Some(Kind::BoolValue(_)) => Ok(value),
            Some(Kind::NumberValue(n)) if *n == 0.0 || *n == 1.0 => Ok(boolean(*n == 1.0)),
            Some(Kind::StringValue(s)) => parse_bool(s)
                .map(boolean)
                .ok_or_else(|| TransformError::new(format!("`{}` is not a boolean", clip(s)))),
            _ => Err(TransformError::new("expected a boolean")),
        },
        T::Date | T::Datetime | T::Time => {
            let Some(Kind::StringValue(s)) = &value.kind else {
                return Err(TransformError::new("expected an ISO-8601 date as text"));
            };
            if s.is_empty() {
                return Ok(null());
            }
            let utc = FixedOffset::east_opt(0).ok_or_else(|| TransformError::new("no utc"))?;
            let iso = DatePattern {
                items: None,
                fast: None,
            };
            let t = parse_temporal(s, &iso, utc).ok_or_else(|| {
                TransformError::new(format!("`{}` is not an ISO-8601 date", clip(s)))
            })?;
            let converted = match (ty, t) {
                (T::Date, Temporal::Date(_)) => return Ok(value),
                // RFC 3339 text is kept as sent; other ISO 8601 forms are rewritten as
                // RFC 3339 in UTC, so a model datetime always has one shape.
                (T::Datetime, Temporal::DateTime(_)) if is_rfc3339(s) => return Ok(value),
                (T::Datetime, dt @ Temporal::DateTime(_)) => dt,
                (T::Time, Temporal::Time(_)) => return Ok(value),
                (T::Date, Temporal::DateTime(dt)) => Temporal::Date(dt.date_naive()),
                (T::Datetime, Temporal::Date(d)) => {
                    Temporal::DateTime(d.and_time(NaiveTime::MIN).and_utc().fixed_offset())
                }
                (T::Time, Temporal::DateTime(dt)) => Temporal::Time(dt.time()),
                _ => {
                    return Err(TransformError::new(format!(
                        "`{}` cannot become a {}",
                        clip(s),
                        type_word(ty)
                    )));
                }
            };
            Ok(string(render_temporal(converted, &iso, utc)?))
        }
        T::Compound => match value.kind {
            Some(Kind::StructValue(_)) => Ok(value),
            _ => Err(TransformError::new("expected an object")),
        },
    }
}

/// Whether ISO 8601 datetime text `s` is also RFC 3339 (its offset is `Z` or `±hh:mm`).
fn is_rfc3339(s: &str) -> bool {
    s.ends_with(['Z', 'z']) || s.len() > 6 && s.as_bytes()[s.len() - 3] == b':'
}

/// The manifest's word for a field type (`string`, `datetime`, …).
pub fn type_word(ty: FieldType) -> &'static str {
    use FieldType as T;
    match ty {
        T::Unspecified => "unspecified",
        T::String => "string",
        T::TextArea => "text_area",
        T::Email => "email",
        T::Phone => "phone",
        T::Url => "url",
        T::Integer => "integer",
        T::Decimal => "decimal",
        T::Currency => "currency",
        T::Percent => "percent",
        T::Boolean => "boolean",
        T::Date => "date",
        T::Datetime => "datetime",
        T::Time => "time",
        T::Picklist => "picklist",
        T::MultiPicklist => "multi_picklist",
        T::Reference => "reference",
        T::Id => "id",
        T::Compound => "compound",
        T::Binary => "binary",
        T::Other => "other",
    }
}

/// The field type named by a manifest word, the inverse of [`type_word`].
pub fn parse_type_word(word: &str) -> Option<FieldType> {
    use FieldType as T;
    Some(match word {
        "string" => T::String,
        "text_area" => T::TextArea,
        "email" => T::Email,
        "phone" => T::Phone,
        "url" => T::Url,
        "integer" => T::Integer,
        "decimal" => T::Decimal,
        "currency" => T::Currency,
        "percent" => T::Percent,
        "boolean" => T::Boolean,
        "date" => T::Date,
        "datetime" => T::Datetime,
        "time" => T::Time,
        "picklist" => T::Picklist,
        "multi_picklist" => T::MultiPicklist,
        "reference" => T::Reference,
        "id" => T::Id,
        "compound" => T::Compound,
        "binary" => T::Binary,
        "other" => T::Other,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t(kind: pb::Kind) -> Step {
        compile(&Transform { kind: Some(kind) }).unwrap()
    }

    fn s(v: &Value) -> &str {
        match &v.kind {
            Some(Kind::StringValue(s)) => s,
            other => panic!("not a string: {other:?}"),
        }
    }

    #[test]
    fn dates_reformat_between_patterns_and_zones() {
        let step = t(pb::Kind::FormatDate(pb::FormatDate {
            input_format: "%m/%d/%Y".into(),
            output_format: String::new(),
            time_zone: String::new(),
        }));
        assert_eq!(s(&step.apply(string("03/14/2025")).unwrap()), "2025-03-14");
        let step = t(pb::Kind::FormatDate(pb::FormatDate {
            input_format: String::new(),
            output_format: "%d.%m.%Y %H:%M".into(),
            time_zone: "+02:00".into(),
        }));
        assert_eq!(
            s(&step.apply(string("2025-03-14T22:30:00Z")).unwrap()),
            "15.03.2025 00:30"
        );
        assert!(step.apply(string("yesterday")).is_err());
        assert!(
            compile(&Transform {
                kind: Some(pb::Kind::FormatDate(pb::FormatDate {
                    time_zone: "Mars/Olympus".into(),
                    ..Default::default()
                }))
            })
            .is_err()
        );
    }

    #[test]
    fn numbers_scale_round_and_render() {
        let step = t(pb::Kind::FormatNumber(pb::FormatNumber {
            multiplier: 100.0,
            decimal_places: Some(1),
            rounding: pb::Rounding::HalfEven as i32,
            as_string: true,
        }));
        assert_eq!(s(&step.apply(number(0.12345)).unwrap()), "12.3");
        assert_eq!(s(&step.apply(string("0.5")).unwrap()), "50.0");
        assert!(step.apply(string("lots")).is_err());
        assert_eq!(round(2.5, 0, Rounding::HalfUp), 3.0);
        assert_eq!(round(2.5, 0, Rounding::HalfEven), 2.0);
        assert_eq!(round(-2.1, 0, Rounding::Up), -3.0);
        assert_eq!(round(-2.9, 0, Rounding::Down), -2.0);
    }

    #[test]
    fn picklists_case_split_and_concatenate() {
        let step = t(pb::Kind::PicklistMap(pb::PicklistMap {
            values: [("Hot".to_owned(), "hot".to_owned())].into(),
            unmapped: pb::UnmappedValue::Reject as i32,
            default_value: String::new(),
        }));
        assert_eq!(s(&step.apply(string("Hot")).unwrap()), "hot");
        assert!(step.apply(string("Cold")).unwrap_err().0.contains("Cold"));
        let title = t(pb::Kind::ChangeCase(pb::ChangeCase {
            case: pb::Case::Title as i32,
        }));
        assert_eq!(
            s(&title.apply(string("ada LOVELACE")).unwrap()),
            "Ada Lovelace"
        );
        let join = t(pb::Kind::Concatenate(pb::Concatenate {
            separator: " ".into(),
            skip_empty: true,
        }));
        let joined = join
            .apply(list(vec![string("Ada"), null(), string("Lovelace")]))
            .unwrap();
        assert_eq!(s(&joined), "Ada Lovelace");
        let last = t(pb::Kind::Split(pb::Split {
            separator: " ".into(),
            index: -1,
        }));
        assert_eq!(s(&last.apply(joined).unwrap()), "Lovelace");
    }

    #[test]
    fn coercion_converts_or_fails_clearly() {
        assert_eq!(
            coerce(string("42"), FieldType::Integer).unwrap(),
            number(42.0)
        );
        assert!(coerce(string("4.2"), FieldType::Integer).is_err());
        assert_eq!(
            coerce(string("Yes"), FieldType::Boolean).unwrap(),
            boolean(true)
        );
        assert_eq!(s(&coerce(number(7.0), FieldType::String).unwrap()), "7");
        assert_eq!(
            s(&coerce(string("2025-01-02T10:00:00Z"), FieldType::Date).unwrap()),
            "2025-01-02"
        );
        assert_eq!(
            s(&coerce(string("2025-01-02"), FieldType::Datetime).unwrap()),
            "2025-01-02T00:00:00Z"
        );
        assert!(coerce(string("soon"), FieldType::Date).is_err());
        assert!(is_null(&coerce(null(), FieldType::Integer).unwrap()));
    }
}
