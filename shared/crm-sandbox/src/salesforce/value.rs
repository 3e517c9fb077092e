//! Field values, their JSON form, and conversions from request bodies.

use super::schema::{FieldDef, FieldType};
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, TimeZone, Timelike, Utc};
use serde_json::Value;
use std::cmp::Ordering;
use std::fmt::Write as _;

/// A compound address (read-only; built from the component fields).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Address {
    /// City.
    pub city: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// State.
    pub state: Option<String>,
    /// Street.
    pub street: Option<String>,
}

/// One field value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Val {
    /// No value.
    #[default]
    Null,
    /// Checkbox.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Number.
    Num(f64),
    /// Text of any kind (ids, picklists, e-mails…).
    Str(String),
    /// Calendar date.
    Date(NaiveDate),
    /// Instant, whole seconds since the Unix epoch.
    DateTime(i64),
    /// Compound address.
    Address(Box<Address>),
}

impl Val {
    /// `true` for [`Val::Null`].
    #[must_use]
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// The text, for text values.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Numeric view, for comparisons between ints and floats.
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(i) => Some(*i as f64),
            Self::Num(n) => Some(*n),
            _ => None,
        }
    }

    /// SOQL ordering: nulls first, strings case-insensitively.
    #[must_use]
    pub fn soql_cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Null, Self::Null) => Ordering::Equal,
            (Self::Null, _) => Ordering::Less,
            (_, Self::Null) => Ordering::Greater,
            (Self::Str(a), Self::Str(b)) => cmp_ci(a, b),
            (Self::Bool(a), Self::Bool(b)) => a.cmp(b),
            (Self::Date(a), Self::Date(b)) => a.cmp(b),
            (Self::DateTime(a), Self::DateTime(b)) => a.cmp(b),
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                _ => Ordering::Equal,
            },
        }
    }

    /// Converts a stored value to a (possibly retyped) field's type; `Null` if impossible.
    #[must_use]
    pub fn coerce(self, ftype: FieldType) -> Self {
        match (ftype, self) {
            (_, Self::Null) => Self::Null,
            (t, Self::Str(s)) if t.is_text() => Self::Str(s),
            (t, v) if t.is_text() => match v {
                Self::Bool(b) => Self::Str(b.to_string()),
                Self::Int(i) => Self::Str(i.to_string()),
                Self::Num(n) => Self::Str(n.to_string()),
                Self::Date(d) => Self::Str(d.to_string()),
                Self::DateTime(t) => Self::Str(format_datetime(t)),
                _ => Self::Null,
            },
            (FieldType::Boolean, Self::Bool(b)) => Self::Bool(b),
            (FieldType::Boolean, _) => Self::Bool(false),
            (FieldType::Int, Self::Int(i)) => Self::Int(i),
            (FieldType::Int, Self::Num(n)) => Self::Int(n.round() as i64),
            (FieldType::Int, Self::Str(s)) => s.trim().parse().map_or(Self::Null, Self::Int),
            (t, Self::Num(n)) if t.is_numeric() => Self::Num(n),
            (t, Self::Int(i)) if t.is_numeric() => Self::Num(i as f64),
            (t, Self::Str(s)) if t.is_numeric() => s.trim().parse().map_or(Self::Null, Self::Num),
            (FieldType::Date, Self::Date(d)) => Self::Date(d),
            (FieldType::Date, Self::DateTime(t)) => Utc
                .timestamp_opt(t, 0)
                .single()
                .map_or(Self::Null, |d| Self::Date(d.date_naive())),
            (FieldType::Date, Self::Str(s)) => parse_date(&s).map_or(Self::Null, Self::Date),
            (FieldType::Datetime, Self::DateTime(t)) => Self::DateTime(t),
            (FieldType::Datetime, Self::Date(d)) => Self::DateTime(
                d.and_hms_opt(0, 0, 0)
                    .map_or(0, |n| n.and_utc().timestamp()),
            ),
            (FieldType::Datetime, Self::Str(s)) => {
                parse_datetime(&s).map_or(Self::Null, Self::DateTime)
            }
            (FieldType::Address, v @ Self::Address(_)) => v,
            _ => Self::Null,
        }
    }

    /// Appends the JSON form to `out`, as the REST API prints it.
    pub fn write_json(&self, ftype: FieldType, out: &mut String) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Int(i) => {
                if ftype == FieldType::Int {
                    let _ = write!(out, "{i}");
                } else {
                    let _ = write!(out, "{i}.0");
                }
            }
            Self::Num(n) => write_f64(*n, ftype, out),
            Self::Str(s) => write_json_str(s, out),
            Self::Date(d) => {
                out.push('"');
                push_date(out, d.year(), d.month(), d.day());
                out.push('"');
            }
            Self::DateTime(t) => {
                out.push('"');
                push_datetime(out, *t);
                out.push('"');
            }
            Self::Address(a) => {
                let opt = |s: &Option<String>, out: &mut String| match s {
                    Some(s) => write_json_str(s, out),
                    None => out.push_str("null"),
                };
                out.push_str("{\"city\":");
                opt(&a.city, out);
                out.push_str(",\"country\":");
                opt(&a.country, out);
                out.push_str(",\"geocodeAccuracy\":null,\"latitude\":null,\"longitude\":null,\"postalCode\":");
                opt(&a.postal_code, out);
                out.push_str(",\"state\":");
                opt(&a.state, out);
                out.push_str(",\"street\":");
                opt(&a.street, out);
                out.push('}');
            }
        }
    }

    /// The value as a `serde_json::Value` (for admin views and change events).
    #[must_use]
    pub fn to_json(&self, ftype: FieldType) -> Value {
        let mut s = String::new();
        self.write_json(ftype, &mut s);
        serde_json::from_str(&s).unwrap_or(Value::Null)
    }
}

fn write_f64(n: f64, ftype: FieldType, out: &mut String) {
    if !n.is_finite() {
        out.push_str("null");
    } else if ftype == FieldType::Int {
        let _ = write!(out, "{}", n.round() as i64);
    } else if n.fract() == 0.0 && n.abs() < 1e15 {
        let _ = write!(out, "{}.0", n as i64);
    } else {
        let _ = write!(out, "{n}");
    }
}

/// Case-insensitive comparison as SOQL does it.
#[must_use]
pub fn cmp_ci(a: &str, b: &str) -> Ordering {
    let mut ai = a.chars().flat_map(char::to_lowercase);
    let mut bi = b.chars().flat_map(char::to_lowercase);
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match x.cmp(&y) {
                Ordering::Equal => {}
                o => return o,
            },
        }
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_json_str(s: &str, out: &mut String) {
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Formats an instant as the REST API does: `2024-04-09T20:19:25.000+0000`.
#[must_use]
pub fn format_datetime(secs: i64) -> String {
    let mut s = String::with_capacity(28);
    push_datetime(&mut s, secs);
    s
}

fn push_digits(out: &mut String, mut n: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut i = buf.len();
    while n > 0 && i > 0 {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let start = buf.len().saturating_sub(width).min(i);
    for &b in &buf[start..] {
        out.push(b as char);
    }
}

fn push_date(out: &mut String, year: i32, month: u32, day: u32) {
    push_digits(out, year.max(0) as u32, 4);
    out.push('-');
    push_digits(out, month, 2);
    out.push('-');
    push_digits(out, day, 2);
}

/// Appends `2024-04-09T20:19:25.000+0000` without going through `strftime` (hot path).
pub fn push_datetime(out: &mut String, secs: i64) {
    let dt: DateTime<Utc> = Utc.timestamp_opt(secs, 0).single().unwrap_or_default();
    push_date(out, dt.year(), dt.month(), dt.day());
    out.push('T');
    push_digits(out, dt.hour(), 2);
    out.push(':');
    push_digits(out, dt.minute(), 2);
    out.push(':');
    push_digits(out, dt.second(), 2);
    out.push_str(".000+0000");
}

/// Formats an instant in milliseconds with millisecond precision.
#[must_use]
pub fn format_datetime_ms(ms: i64) -> String {
    let dt: DateTime<Utc> = Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
    dt.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

/// Parses `YYYY-MM-DD`.
#[must_use]
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// Parses the datetime forms clients send: RFC 3339 (`Z`, `+00:00`), or `+0000`.
#[must_use]
pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp());
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(d) = DateTime::parse_from_str(s, f) {
            return Some(d.timestamp());
        }
    }
    None
}

/// RFC 3339 with milliseconds, for admin views.
#[must_use]
pub fn rfc3339(secs: i64) -> String {
    Utc.timestamp_opt(secs, 0)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Why a request value does not fit a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    /// Wrong JSON type or unparsable text.
    WrongType,
    /// Not one of a restricted picklist's values.
    BadPicklist,
    /// Not a well-formed e-mail address.
    BadEmail,
    /// Too long for the field.
    TooLong,
}

/// Converts a request body value to a field value.
pub fn from_request(field: &FieldDef, v: &Value) -> Result<Val, ValueError> {
    use FieldType as T;
    let val = match (field.ftype, v) {
        (_, Value::Null) => Val::Null,
        (T::Boolean, Value::Bool(b)) => Val::Bool(*b),
        (T::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => Val::Bool(true),
        (T::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => Val::Bool(false),
        (T::Int, Value::Number(n)) => Val::Int(
            n.as_i64()
                .or_else(|| n.as_f64().map(|f| f.round() as i64))
                .ok_or(ValueError::WrongType)?,
        ),
        (T::Int, Value::String(s)) => {
            Val::Int(s.trim().parse().map_err(|_| ValueError::WrongType)?)
        }
        (t, Value::Number(n)) if t.is_numeric() => {
            Val::Num(n.as_f64().ok_or(ValueError::WrongType)?)
        }
        (t, Value::String(s)) if t.is_numeric() => {
            Val::Num(s.trim().parse().map_err(|_| ValueError::WrongType)?)
        }
        (T::Date, Value::String(s)) => Val::Date(parse_date(s).ok_or(ValueError::WrongType)?),
        (T::Datetime, Value::String(s)) => {
            Val::DateTime(parse_datetime(s).ok_or(ValueError::WrongType)?)
        }
        (T::Picklist, Value::String(s)) => {
            if !field.picklist.is_empty() && !field.picklist.iter().any(|p| p.value == *s) {
                return Err(ValueError::BadPicklist);
            }
            Val::Str(s.clone())
        }
        (T::Multipicklist, Value::String(s)) => {
            if !field.picklist.is_empty()
                && !s
                    .split(';')
                    .filter(|p| !p.is_empty())
                    .all(|p| field.picklist.iter().any(|x| x.value == p))
            {
                return Err(ValueError::BadPicklist);
            }
            Val::Str(s.clone())
        }
        (T::Email, Value::String(s)) => {
            let ok = s
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !s.contains(' '));
            if !ok && !s.is_empty() {
                return Err(ValueError::BadEmail);
            }
            Val::Str(s.clone())
        }
        (t, Value::String(s)) if t.is_text() => Val::Str(s.clone()),
        (t, Value::Number(n)) if t.is_text() && t != T::Reference && t != T::Id => {
            Val::Str(n.to_string())
        }
        (t, Value::Bool(b)) if t.is_text() && t != T::Reference && t != T::Id => {
            Val::Str(b.to_string())
        }
        _ => return Err(ValueError::WrongType),
    };
    if let Val::Str(s) = &val
        && field.length > 0
        && s.chars().count() > field.length as usize
    {
        return Err(ValueError::TooLong);
    }
    Ok(val)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms_match_the_api() {
        let mut s = String::new();
        Val::DateTime(1_712_693_965).write_json(FieldType::Datetime, &mut s);
        assert_eq!(s, "\"2024-04-09T20:19:25.000+0000\"");
        assert_eq!(format_datetime(0), "1970-01-01T00:00:00.000+0000");
        s.clear();
        Val::Date(NaiveDate::from_ymd_opt(2024, 2, 9).unwrap_or_default())
            .write_json(FieldType::Date, &mut s);
        assert_eq!(s, "\"2024-02-09\"");
        s.clear();
        Val::Num(50000.0).write_json(FieldType::Currency, &mut s);
        assert_eq!(s, "50000.0");
        s.clear();
        write_json_str("a\"b\n\u{1}é", &mut s);
        assert_eq!(
            serde_json::from_str::<String>(&s).ok().as_deref(),
            Some("a\"b\n\u{1}é")
        );
        assert_eq!(
            parse_datetime("2024-04-09T20:19:25.000+0000"),
            Some(1_712_693_965)
        );
        assert_eq!(parse_datetime("2024-04-09T20:19:25Z"), Some(1_712_693_965));
    }
}
