//! The manifest's YAML model (see `docs/manifest.md`). Unknown keys are refused so a typo
//! never passes silently; maps keep their order (objects are listed in manifest order).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// The manifest format this code reads.
pub const FORMAT: u32 = 1;

/// A whole manifest.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestDoc {
    /// Manifest format version; only 1 exists.
    pub format: u32,
    /// The integration's name (shown to tenants).
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Model objects by key, in manifest order.
    pub objects: OrderedMap<ObjectSpec>,
}

/// A CRM the manifest can map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderName {
    Salesforce,
    Hubspot,
}

impl ProviderName {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderName::Salesforce => "salesforce",
            ProviderName::Hubspot => "hubspot",
        }
    }
}

/// What the integration does with an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Read records (backfill and incremental).
    Read,
    /// Write records to the CRM.
    Write,
    /// Receive changes as they happen (webhooks, CDC).
    Subscribe,
}

/// One model object.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// What the integration does with it.
    pub access: Vec<Access>,
    /// The default CRM object per provider; a tenant may pick another (a custom object).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<ProviderName, String>,
    /// Whether tenants get the object enabled until they choose (default true).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled_by_default: bool,
    /// How often incremental reads run: `30s`, `15m`, `1h`, `1d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// How far back the first read goes: `90d`, or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<String>,
    /// The provider field matching records on outbound upserts, per provider.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub external_id: BTreeMap<ProviderName, String>,
    /// Model fields by key, in manifest order.
    pub fields: OrderedMap<FieldSpec>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// When the integration may write a field to the CRM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteGuard {
    /// Whenever the product's value changes (the default).
    #[default]
    Always,
    /// Only when the CRM's value is empty.
    IfEmpty,
    /// Only when creating the record: never overwrite.
    OnCreate,
    /// Never: the field is read only for the integration.
    Never,
}

impl WriteGuard {
    fn is_always(&self) -> bool {
        *self == WriteGuard::Always
    }
}

/// One model field.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// `string`, `integer`, `date`, … (the schema's field types, snake case).
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Always synced; tenants cannot turn it off.
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    /// Tenants pick the CRM field themselves (no default mapping needed).
    #[serde(default, skip_serializing_if = "is_false")]
    pub customer_choice: bool,
    /// When the integration may write it to the CRM.
    #[serde(default, skip_serializing_if = "WriteGuard::is_always")]
    pub write: WriteGuard,
    /// Allowed values of a picklist field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Default mapping per provider: a CRM field name, or a full mapping.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub map: BTreeMap<ProviderName, DefaultMapping>,
}

/// A default mapping: `Email`, or `{ fields: [...], direction, inbound, outbound }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DefaultMapping {
    Field(String),
    Full(FullMapping),
}

/// A default mapping with transforms.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FullMapping {
    /// The CRM field(s); several only inbound, with `concatenate` first.
    pub fields: Vec<String>,
    /// Default: `both` for one field, `inbound` for several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<DirectionWord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbound: Vec<TransformSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound: Vec<TransformSpec>,
}

/// Which way a default mapping carries values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectionWord {
    Inbound,
    Outbound,
    Both,
}

impl<'de> Deserialize<'de> for DefaultMapping {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DefaultMapping;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a crm field name or a mapping with `fields`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(DefaultMapping::Field(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                FullMapping::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(DefaultMapping::Full)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// One transform, as written in YAML: a single-key map such as `{ case: lower }`.
#[derive(Debug, Clone, PartialEq)]
pub enum TransformSpec {
    /// Convert to a field type (`integer`, `date`, …).
    Coerce(String),
    /// Replace null or missing.
    Default(serde_norway::Value),
    Picklist(PicklistSpec),
    Concatenate(ConcatenateSpec),
    Split(SplitSpec),
    /// `lower`, `upper`, `title` or `trim`.
    Case(String),
    Date(DateSpec),
    Number(NumberSpec),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PicklistSpec {
    /// Source value to target value.
    pub map: BTreeMap<String, String>,
    /// `pass_through` (default), `use_default` or `reject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmapped: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConcatenateSpec {
    #[serde(default)]
    pub separator: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_empty: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    pub separator: String,
    #[serde(default)]
    pub index: i32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DateSpec {
    /// strftime input pattern; empty: ISO-8601.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub input: String,
    /// strftime output pattern; empty: ISO-8601.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// `UTC` or a fixed offset such as `+02:00`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zone: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NumberSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimals: Option<i32>,
    /// `half_up` (default), `half_even`, `down`, `up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounding: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub as_string: bool,
}

/// A YAML mapping read in document order, refusing duplicate keys.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderedMap<T>(pub Vec<(String, T)>);

impl<T> OrderedMap<T> {
    pub fn get(&self, key: &str) -> Option<&T> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &T)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OrderedMap<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OrderedMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, T)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
                    }
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(V(PhantomData))
    }
}

impl<T: Serialize> Serialize for OrderedMap<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

const TRANSFORMS: &[&str] = &[
    "coerce",
    "default",
    "picklist",
    "concatenate",
    "split",
    "case",
    "date",
    "number",
];

impl<'de> Deserialize<'de> for TransformSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TransformSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a transform such as `{ case: lower }` (one key)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let Some(name) = map.next_key::<String>()? else {
                    return Err(de::Error::custom("a transform needs one key naming it"));
                };
                let spec = match name.as_str() {
                    "coerce" => TransformSpec::Coerce(map.next_value()?),
                    "default" => TransformSpec::Default(map.next_value()?),
                    "picklist" => TransformSpec::Picklist(map.next_value()?),
                    "concatenate" => TransformSpec::Concatenate(map.next_value()?),
                    "split" => TransformSpec::Split(map.next_value()?),
                    "case" => TransformSpec::Case(map.next_value()?),
                    "date" => TransformSpec::Date(map.next_value()?),
                    "number" => TransformSpec::Number(map.next_value()?),
                    other => return Err(de::Error::unknown_variant(other, TRANSFORMS)),
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(
                        "a transform has exactly one key; list several as separate items",
                    ));
                }
                Ok(spec)
            }
        }
        deserializer.deserialize_map(V)
    }
}

impl Serialize for TransformSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            TransformSpec::Coerce(v) => map.serialize_entry("coerce", v)?,
            TransformSpec::Default(v) => map.serialize_entry("default", v)?,
            TransformSpec::Picklist(v) => map.serialize_entry("picklist", v)?,
            TransformSpec::Concatenate(v) => map.serialize_entry("concatenate", v)?,
            TransformSpec::Split(v) => map.serialize_entry("split", v)?,
            TransformSpec::Case(v) => map.serialize_entry("case", v)?,
            TransformSpec::Date(v) => map.serialize_entry("date", v)?,
            TransformSpec::Number(v) => map.serialize_entry("number", v)?,
        }
        map.end()
    }
}
