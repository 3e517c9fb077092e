//! Conversions shared by the readers: provider JSON values into `google.protobuf.Value`,
//! provider date-time text into `google.protobuf.Timestamp`, and the usage headers.

use chrono::{DateTime, SecondsFormat, Utc};
use prost_types::value::Kind;

use crate::ApiUsage;

/// A JSON value read straight into a `google.protobuf.Value`, without building a
/// `serde_json::Value` first (numbers as doubles; nested objects such as Salesforce compound
/// addresses as structs). The readers deserialize CRM records field by field into these.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JsonValue(pub prost_types::Value);

impl JsonValue {
    fn of(kind: Kind) -> Self {
        Self(prost_types::Value { kind: Some(kind) })
    }
}

impl<'de> serde::Deserialize<'de> for JsonValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonValueVisitor)
    }
}

struct JsonValueVisitor;

impl<'de> serde::de::Visitor<'de> for JsonValueVisitor {
    type Value = JsonValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<JsonValue, E> {
        Ok(JsonValue::of(Kind::NullValue(0)))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<JsonValue, E> {
        self.visit_unit()
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<JsonValue, E> {
        Ok(JsonValue::of(Kind::BoolValue(b)))
    }

    #[allow(clippy::cast_precision_loss)] // JSON numbers become doubles, as serde_json's as_f64.
    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<JsonValue, E> {
        Ok(JsonValue::of(Kind::NumberValue(n as f64)))
    }

    #[allow(clippy::cast_precision_loss)]
    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<JsonValue, E> {
        Ok(JsonValue::of(Kind::NumberValue(n as f64)))
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<JsonValue, E> {
        Ok(JsonValue::of(Kind::NumberValue(n)))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<JsonValue, E> {
        Ok(JsonValue::of(Kind::StringValue(s.to_owned())))
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<JsonValue, E> {
        Ok(JsonValue::of(Kind::StringValue(s)))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<JsonValue, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(JsonValue(value)) = seq.next_element()? {
            values.push(value);
        }
        Ok(JsonValue::of(Kind::ListValue(prost_types::ListValue {
            values,
        })))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<JsonValue, A::Error> {
        let JsonObject(fields) = JsonObjectVisitor.visit_map(map)?;
        Ok(JsonValue::of(Kind::StructValue(prost_types::Struct {
            fields,
        })))
    }
}

/// A JSON object read straight into the field map of a `syncline.common.v1.Record` (a CRM
/// record as a query returns it), so the reader moves the map into the record instead of
/// building it again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JsonObject(pub std::collections::BTreeMap<String, prost_types::Value>);

impl JsonObject {
    /// The text of `field`, when it is a string.
    pub fn text(&self, field: &str) -> Option<&str> {
        match self.0.get(field).and_then(|v| v.kind.as_ref()) {
            Some(Kind::StringValue(text)) => Some(text),
            _ => None,
        }
    }
}

impl<'de> serde::Deserialize<'de> for JsonObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(JsonObjectVisitor)
    }
}

struct JsonObjectVisitor;

impl<'de> serde::de::Visitor<'de> for JsonObjectVisitor {
    type Value = JsonObject;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<JsonObject, A::Error> {
        let mut fields = std::collections::BTreeMap::new();
        while let Some((key, JsonValue(value))) = map.next_entry::<String, JsonValue>()? {
            fields.insert(key, value);
        }
        Ok(JsonObject(fields))
    }
}

/// Parses the date-time forms the providers send: RFC 3339 (`2024-04-09T20:19:25.123Z`),
/// Salesforce's `2024-04-09T20:19:25.000+0000`, or epoch milliseconds.
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    text.parse::<i64>()
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
}

/// The instant as a protobuf timestamp.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or_default(),
    }
}

/// RFC 3339 with milliseconds and `Z` (`2024-04-09T20:19:25.123Z`).
pub fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Usage from `Sforce-Limit-Info: api-usage=N/M[; api-bursts=…]`; `None` fields when absent
/// or unreadable.
pub fn salesforce_usage(headers: &reqwest::header::HeaderMap) -> ApiUsage {
    let mut usage = ApiUsage::default();
    let Some(text) = headers
        .get("sforce-limit-info")
        .and_then(|v| v.to_str().ok())
    else {
        return usage;
    };
    for part in text.split([';', ',']) {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("api-usage")
            && let Some((used, max)) = value.trim().split_once('/')
        {
            usage.daily_used = used.trim().parse().ok();
            usage.daily_limit = max.trim().parse().ok();
        }
    }
    usage
}

/// Usage from the `X-HubSpot-RateLimit-*` headers (`Daily`, `Daily-Remaining`, `Max`,
/// `Remaining`, `Interval-Milliseconds`); the daily figure used is `Daily − Daily-Remaining`.
pub fn hubspot_usage(headers: &reqwest::header::HeaderMap) -> ApiUsage {
    let num = |name: &str| -> Option<u64> {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    };
    let daily_limit = num("x-hubspot-ratelimit-daily");
    let daily_remaining = num("x-hubspot-ratelimit-daily-remaining");
    ApiUsage {
        daily_used: daily_limit
            .zip(daily_remaining)
            .map(|(limit, left)| limit.saturating_sub(left)),
        daily_limit,
        window_remaining: num("x-hubspot-ratelimit-remaining"),
        window_limit: num("x-hubspot-ratelimit-max"),
        window_ms: num("x-hubspot-ratelimit-interval-milliseconds"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    /// The conversion through `serde_json::Value`, which [`JsonValue`] must equal.
    fn through_serde_json(value: serde_json::Value) -> prost_types::Value {
        use serde_json::Value as J;
        let kind = match value {
            J::Null => Kind::NullValue(0),
            J::Bool(b) => Kind::BoolValue(b),
            J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
            J::String(s) => Kind::StringValue(s),
            J::Array(items) => Kind::ListValue(prost_types::ListValue {
                values: items.into_iter().map(through_serde_json).collect(),
            }),
            J::Object(map) => Kind::StructValue(prost_types::Struct {
                fields: map
                    .into_iter()
                    .map(|(k, v)| (k, through_serde_json(v)))
                    .collect(),
            }),
        };
        prost_types::Value { kind: Some(kind) }
    }

    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            (-1e300f64..1e300).prop_map(serde_json::Value::from),
            ".{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(".{0,6}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn json_reads_into_the_same_protobuf_value_as_through_serde_json(value in json()) {
            let text = serde_json::to_string(&value).unwrap();
            let direct: JsonValue = serde_json::from_str(&text).unwrap();
            let reference = through_serde_json(serde_json::from_str(&text).unwrap());
            prop_assert_eq!(direct.0, reference);
        }

        #[test]
        fn any_text_either_reads_as_json_or_is_refused_like_serde_json(text in ".{0,40}") {
            let direct = serde_json::from_str::<JsonValue>(&text);
            let reference = serde_json::from_str::<serde_json::Value>(&text);
            prop_assert_eq!(direct.is_ok(), reference.is_ok());
        }
    }

    #[test]
    fn salesforce_usage_reads_bare_and_extended_forms() {
        for text in ["api-usage=25/15000", "api-usage=25/15000; api-bursts=1/750"] {
            let mut h = HeaderMap::new();
            h.insert("Sforce-Limit-Info", HeaderValue::from_str(text).unwrap());
            let u = salesforce_usage(&h);
            assert_eq!((u.daily_used, u.daily_limit), (Some(25), Some(15000)));
        }
        assert_eq!(salesforce_usage(&HeaderMap::new()), ApiUsage::default());
    }

    #[test]
    fn hubspot_usage_reads_every_header() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("X-HubSpot-RateLimit-Daily", "250000"),
            ("X-HubSpot-RateLimit-Daily-Remaining", "249990"),
            ("X-HubSpot-RateLimit-Max", "100"),
            ("X-HubSpot-RateLimit-Remaining", "97"),
            ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        let u = hubspot_usage(&h);
        assert_eq!(u.daily_used, Some(10));
        assert_eq!(u.daily_limit, Some(250_000));
        assert_eq!(u.window_remaining, Some(97));
        assert_eq!(u.window_limit, Some(100));
        assert_eq!(u.window_ms, Some(10_000));
    }

    #[test]
    fn instants_parse_in_every_provider_form() {
        let a = parse_instant("2024-04-09T20:19:25.000+0000").unwrap();
        let b = parse_instant("2024-04-09T20:19:25Z").unwrap();
        let c = parse_instant("1712693965000").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(rfc3339_ms(a), "2024-04-09T20:19:25.000Z");
    }
}
