//! `POST /crm/v3/objects/{objectType}/search`: the request parser and its evaluation.
//!
//! The parser takes untrusted JSON and either yields a [`SearchRequest`] or a HubSpot 400;
//! it never panics (property-tested). Semantics follow HubSpot: filter groups are ORed,
//! filters in a group ANDed; `limit` ≤ 200 (numbers or numeric strings, as clients send
//! `"200"`); `after` is a numeric offset; paging at or past 10,000 results is a 400; archived
//! records are never found; date-time filters take RFC 3339 or epoch milliseconds.

use super::catalog::{ObjectTypeDef, PropType, PropertyDef, parse_instant_ms};
use super::errors::{ApiError, json_response};
use super::objects::{RecordOut, check_scope, resolve, select};
use super::state::{Caller, read};
use super::store::{ObjectStore, RecordView};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::cmp::Ordering;

/// Most results a search can page through.
pub const MAX_RESULTS: usize = 10_000;
/// Largest page.
pub const MAX_LIMIT: usize = 200;
/// Most filter groups.
pub const MAX_FILTER_GROUPS: usize = 6;
/// Most filters in one group.
pub const MAX_FILTERS_PER_GROUP: usize = 6;
/// Longest free-text query.
pub const MAX_QUERY_CHARS: usize = 3000;

/// A filter operator with its operands.
#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    /// `EQ`
    Eq(String),
    /// `NEQ`
    Neq(String),
    /// `LT`
    Lt(String),
    /// `LTE`
    Lte(String),
    /// `GT`
    Gt(String),
    /// `GTE`
    Gte(String),
    /// `BETWEEN value AND highValue`
    Between(String, String),
    /// `IN values`
    In(Vec<String>),
    /// `NOT_IN values`
    NotIn(Vec<String>),
    /// `HAS_PROPERTY`
    HasProperty,
    /// `NOT_HAS_PROPERTY`
    NotHasProperty,
    /// `CONTAINS_TOKEN`
    ContainsToken(String),
    /// `NOT_CONTAINS_TOKEN`
    NotContainsToken(String),
}

/// One filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Property.
    pub property_name: String,
    /// Operator and operands.
    pub operator: Operator,
}

/// One sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct Sort {
    /// Property.
    pub property_name: String,
    /// Descending order.
    pub descending: bool,
}

/// A parsed search request.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// ORed groups of ANDed filters.
    pub filter_groups: Vec<Vec<Filter>>,
    /// Sort keys.
    pub sorts: Vec<Sort>,
    /// Requested properties.
    pub properties: Vec<String>,
    /// Page size.
    pub limit: usize,
    /// Offset.
    pub after: usize,
    /// Free-text query.
    pub query: Option<String>,
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn count(v: Option<&Value>, name: &str, default: usize) -> Result<usize, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(v) => scalar(v)
            .and_then(|s| s.trim().parse::<usize>().ok())
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "Invalid input JSON: {name} must be a non-negative integer"
                ))
            }),
    }
}

fn parse_filter(v: &Value) -> Result<Filter, ApiError> {
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::validation("Invalid input JSON: filter must be an object"))?;
    let property_name = obj
        .get("propertyName")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::validation("Invalid input JSON: filter is missing propertyName"))?
        .to_owned();
    let op = obj.get("operator").and_then(Value::as_str).unwrap_or("EQ");
    let value = || {
        obj.get("value").and_then(scalar).ok_or_else(|| {
            ApiError::validation(format!(
                "Filter on {property_name} with operator {op} requires a value"
            ))
        })
    };
    let values = || -> Result<Vec<String>, ApiError> {
        obj.get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(scalar).collect())
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "Filter on {property_name} with operator {op} requires values"
                ))
            })
    };
    let operator = match op {
        "EQ" => Operator::Eq(value()?),
        "NEQ" => Operator::Neq(value()?),
        "LT" => Operator::Lt(value()?),
        "LTE" => Operator::Lte(value()?),
        "GT" => Operator::Gt(value()?),
        "GTE" => Operator::Gte(value()?),
        "BETWEEN" => {
            let high = obj.get("highValue").and_then(scalar).ok_or_else(|| {
                ApiError::validation(format!(
                    "Filter on {property_name} with operator BETWEEN requires a highValue"
                ))
            })?;
            Operator::Between(value()?, high)
        }
        "IN" => Operator::In(values()?),
        "NOT_IN" => Operator::NotIn(values()?),
        "HAS_PROPERTY" => Operator::HasProperty,
        "NOT_HAS_PROPERTY" => Operator::NotHasProperty,
        "CONTAINS_TOKEN" => Operator::ContainsToken(value()?),
        "NOT_CONTAINS_TOKEN" => Operator::NotContainsToken(value()?),
        other => {
            return Err(ApiError::validation(format!(
                "Invalid input JSON: Cannot deserialize value of type `FilterOperatorEnum` from String \"{other}\""
            )));
        }
    };
    Ok(Filter {
        property_name,
        operator,
    })
}

fn parse_sort(v: &Value) -> Result<Sort, ApiError> {
    match v {
        Value::String(s) => Ok(match s.strip_prefix('-') {
            Some(name) => Sort {
                property_name: name.to_owned(),
                descending: true,
            },
            None => Sort {
                property_name: s.clone(),
                descending: false,
            },
        }),
        Value::Object(o) => {
            let property_name = o
                .get("propertyName")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::validation("Invalid input JSON: sort is missing propertyName")
                })?
                .to_owned();
            let descending = match o.get("direction").and_then(Value::as_str) {
                None | Some("ASCENDING") => false,
                Some("DESCENDING") => true,
                Some(other) => {
                    return Err(ApiError::validation(format!(
                        "Invalid sort direction {other}"
                    )));
                }
            };
            Ok(Sort {
                property_name,
                descending,
            })
        }
        _ => Err(ApiError::validation(
            "Invalid input JSON: sort must be a string or an object",
        )),
    }
}

/// Parses a search body.
pub fn parse(body: &Value) -> Result<SearchRequest, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::validation("Invalid input JSON: expected an object"))?;
    let mut filter_groups = Vec::new();
    if let Some(groups) = obj.get("filterGroups").filter(|v| !v.is_null()) {
        let groups = groups.as_array().ok_or_else(|| {
            ApiError::validation("Invalid input JSON: filterGroups must be a list")
        })?;
        if groups.len() > MAX_FILTER_GROUPS {
            return Err(ApiError::validation(format!(
                "Too many filter groups: {} (maximum {MAX_FILTER_GROUPS})",
                groups.len()
            )));
        }
        for g in groups {
            let filters = g.get("filters").and_then(Value::as_array).ok_or_else(|| {
                ApiError::validation("Invalid input JSON: filter group is missing filters")
            })?;
            if filters.len() > MAX_FILTERS_PER_GROUP {
                return Err(ApiError::validation(format!(
                    "Too many filters in a group: {} (maximum {MAX_FILTERS_PER_GROUP})",
                    filters.len()
                )));
            }
            filter_groups.push(
                filters
                    .iter()
                    .map(parse_filter)
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
    }
    let sorts = match obj.get("sorts") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().map(parse_sort).collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::validation(
                "Invalid input JSON: sorts must be a list",
            ));
        }
    };
    let properties = match obj.get("properties") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(_) => {
            return Err(ApiError::validation(
                "Invalid input JSON: properties must be a list",
            ));
        }
    };
    let limit = count(obj.get("limit"), "limit", 10)?;
    if limit > MAX_LIMIT {
        return Err(ApiError::validation(format!(
            "limit must be less than or equal to {MAX_LIMIT}, but was {limit}"
        )));
    }
    let after = count(obj.get("after"), "after", 0)?;
    let query = obj.get("query").and_then(Value::as_str).map(str::to_owned);
    if query
        .as_ref()
        .is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS)
    {
        return Err(ApiError::validation(format!(
            "query must be at most {MAX_QUERY_CHARS} characters"
        )));
    }
    Ok(SearchRequest {
        filter_groups,
        sorts,
        properties,
        limit,
        after,
        query,
    })
}

/// A comparable form of a property value.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Key {
    Missing,
    Num(f64),
    Text(String),
}

fn numeric(prop: &PropertyDef) -> Option<fn(&str) -> Option<f64>> {
    match prop.ptype {
        PropType::Number => Some(|s| s.parse::<f64>().ok()),
        PropType::Date | PropType::Datetime => Some(|s| parse_instant_ms(s).map(|v| v as f64)),
        _ => None,
    }
}

fn key_of(prop: &PropertyDef, value: Option<&str>) -> Key {
    match value {
        None | Some("") => Key::Missing,
        Some(v) => match numeric(prop) {
            Some(f) => f(v).map_or(Key::Missing, Key::Num),
            None => Key::Text(v.to_lowercase()),
        },
    }
}

fn cmp_keys(a: &Key, b: &Key) -> Ordering {
    a.partial_cmp(b).unwrap_or(Ordering::Equal)
}

fn token_match(value: &str, token: &str) -> bool {
    let token = token.to_lowercase();
    let value = value.to_lowercase();
    if let Some(prefix) = token.strip_suffix('*') {
        let prefix = prefix.trim_start_matches('*');
        return value
            .split(|c: char| !c.is_alphanumeric() && c != '@' && c != '.')
            .any(|t| t.starts_with(prefix))
            || value.starts_with(prefix);
    }
    value == token
        || value
            .split(|c: char| !c.is_alphanumeric())
            .any(|t| t == token)
}

/// A filter bound to its property definition.
struct Bound<'a> {
    prop: &'a PropertyDef,
    operator: &'a Operator,
}

impl Bound<'_> {
    fn matches(&self, view: &RecordView<'_>) -> bool {
        let value = view.value(self.prop);
        let v = value.as_deref();
        let key = key_of(self.prop, v);
        let cmp = |operand: &str| {
            let other = key_of(self.prop, Some(operand));
            (key != Key::Missing && other != Key::Missing).then(|| cmp_keys(&key, &other))
        };
        let eq = |operand: &str| {
            // Multi-select enumerations store `a;b`: equal when any part is.
            if self.prop.ptype == PropType::Enumeration {
                v.is_some_and(|v| v.split(';').any(|p| p.eq_ignore_ascii_case(operand)))
            } else {
                cmp(operand) == Some(Ordering::Equal)
            }
        };
        match self.operator {
            Operator::Eq(o) => eq(o),
            Operator::Neq(o) => !eq(o),
            Operator::Lt(o) => cmp(o) == Some(Ordering::Less),
            Operator::Lte(o) => matches!(cmp(o), Some(Ordering::Less | Ordering::Equal)),
            Operator::Gt(o) => cmp(o) == Some(Ordering::Greater),
            Operator::Gte(o) => matches!(cmp(o), Some(Ordering::Greater | Ordering::Equal)),
            Operator::Between(lo, hi) => {
                matches!(cmp(lo), Some(Ordering::Greater | Ordering::Equal))
                    && matches!(cmp(hi), Some(Ordering::Less | Ordering::Equal))
            }
            Operator::In(values) => values.iter().any(|o| eq(o)),
            Operator::NotIn(values) => !values.iter().any(|o| eq(o)),
            Operator::HasProperty => key != Key::Missing,
            Operator::NotHasProperty => key == Key::Missing,
            Operator::ContainsToken(t) => v.is_some_and(|v| token_match(v, t)),
            Operator::NotContainsToken(t) => !v.is_some_and(|v| token_match(v, t)),
        }
    }
}

fn bind<'a>(
    def: &'a ObjectTypeDef,
    req: &'a SearchRequest,
) -> Result<Vec<Vec<Bound<'a>>>, ApiError> {
    req.filter_groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|f| {
                    let prop = def.property(&f.property_name).ok_or_else(|| {
                        ApiError::validation(format!(
                            "Property \"{}\" does not exist",
                            f.property_name
                        ))
                    })?;
                    Ok(Bound {
                        prop,
                        operator: &f.operator,
                    })
                })
                .collect()
        })
        .collect()
}

/// The ids of every live record matching `req`, in the requested order.
pub fn matching_ids(store: &ObjectStore, req: &SearchRequest) -> Result<Vec<u64>, ApiError> {
    let groups = bind(&store.def, req)?;
    let query_props: Vec<&PropertyDef> = store
        .def
        .searchable_properties
        .iter()
        .filter_map(|n| store.def.property(n))
        .collect();
    let query = req
        .query
        .as_ref()
        .map(|q| q.trim().to_lowercase())
        .filter(|q| !q.is_empty());
    let sorts: Vec<(&PropertyDef, bool)> = req
        .sorts
        .iter()
        .map(|s| {
            store
                .def
                .property(&s.property_name)
                .map(|p| (p, s.descending))
                .ok_or_else(|| {
                    ApiError::validation(format!("Property \"{}\" does not exist", s.property_name))
                })
        })
        .collect::<Result<_, _>>()?;
    let matches = |view: &RecordView<'_>| {
        let filters_ok =
            groups.is_empty() || groups.iter().any(|g| g.iter().all(|f| f.matches(view)));
        let query_ok = query.as_ref().is_none_or(|q| {
            query_props.iter().any(|p| {
                view.value(p)
                    .is_some_and(|v| v.to_lowercase().contains(q.as_str()))
            })
        });
        filters_ok && query_ok
    };
    let by_id_only = sorts.iter().all(|(p, _)| p.name == "hs_object_id");
    if by_id_only {
        let mut ids: Vec<u64> = store
            .iter_live(1)
            .filter(|v| matches(v))
            .map(|v| v.id())
            .collect();
        if sorts.first().is_some_and(|(_, desc)| *desc) {
            ids.reverse();
        }
        return Ok(ids);
    }
    let mut keyed: Vec<(Vec<Key>, u64)> = store
        .iter_live(1)
        .filter(|v| matches(v))
        .map(|v| {
            (
                sorts
                    .iter()
                    .map(|(p, _)| key_of(p, v.value(p).as_deref()))
                    .collect(),
                v.id(),
            )
        })
        .collect();
    keyed.sort_by(|(a, ida), (b, idb)| {
        for (i, (_, desc)) in sorts.iter().enumerate() {
            let o = cmp_keys(&a[i], &b[i]);
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        ida.cmp(idb)
    });
    Ok(keyed.into_iter().map(|(_, id)| id).collect())
}

/// `POST /crm/v3/objects/{objectType}/search`.
pub async fn handler(
    Extension(caller): Extension<Caller>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> Response {
    match run(&caller, &object_type, &body) {
        Ok(bytes) => json_response(StatusCode::OK, bytes),
        Err(e) => e.into_response(),
    }
}

fn run(caller: &Caller, object_type: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::validation(format!("Invalid input JSON on line 1: {e}")))?;
    let req = parse(&json)?;
    if req.after >= MAX_RESULTS {
        return Err(ApiError::validation(format!(
            "Paging through more than {MAX_RESULTS} search results is not supported (after: {})",
            req.after
        )));
    }
    let data = read(&caller.portal.data);
    let idx = resolve(&data, object_type)?;
    let store = &data.objects[idx];
    check_scope(caller, &store.def, false)?;
    let ids = matching_ids(store, &req)?;
    let total = ids.len();
    let end = (req.after + req.limit).min(total).min(MAX_RESULTS);
    let props = select(&store.def, Some(&req.properties));
    let page: Vec<RecordOut<'_>> = ids
        .get(req.after.min(end)..end)
        .unwrap_or_default()
        .iter()
        .filter_map(|id| store.get(*id))
        .map(|view| RecordOut {
            view,
            props: &props,
            url: Some((caller.portal.id, store.def.type_id.as_str())),
            new: None,
        })
        .collect();
    let mut out = serde_json::json!({ "total": total, "results": page });
    if req.after + req.limit < total
        && let Some(o) = out.as_object_mut()
    {
        o.insert(
            "paging".into(),
            serde_json::json!({"next": {"after": (req.after + req.limit).to_string()}}),
        );
    }
    serde_json::to_vec(&out).map_err(|_| ApiError::server_error(StatusCode::INTERNAL_SERVER_ERROR))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn parses_recorded_requests_with_string_limit() {
        let raw = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/crm-reference/hubspot/search-request-since-until.json"
        ))
        .expect("the reference fixtures sit beside the repository");
        let req = parse(&serde_json::from_str(&raw).unwrap()).unwrap();
        assert_eq!(req.limit, 200);
        assert_eq!(req.filter_groups[0].len(), 2);
        assert_eq!(
            req.sorts,
            vec![Sort {
                property_name: "hs_object_id".into(),
                descending: false
            }]
        );
    }

    #[test]
    fn rejects_limits_and_bad_operators() {
        assert!(parse(&json!({"limit": 201})).is_err());
        assert!(parse(&json!({"limit": "abc"})).is_err());
        assert!(parse(&json!({"filterGroups": [{"filters": [{"propertyName": "a", "operator": "LIKE", "value": "x"}]}]})).is_err());
        assert!(
            parse(
                &json!({"filterGroups": [{"filters": [{"propertyName": "a", "operator": "IN"}]}]})
            )
            .is_err()
        );
        assert!(parse(&json!([])).is_err());
    }

    #[test]
    fn tokens_match_words_and_prefixes() {
        assert!(token_match("Globex Logistics Inc.", "logistics"));
        assert!(token_match("anna.smith12@globex.com", "anna*"));
        assert!(!token_match("Globex", "glob"));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[A-Z_a-z0-9-]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just("filterGroups".to_owned()),
                            Just("filters".to_owned()),
                            Just("propertyName".to_owned()),
                            Just("operator".to_owned()),
                            Just("value".to_owned()),
                            Just("values".to_owned()),
                            Just("highValue".to_owned()),
                            Just("sorts".to_owned()),
                            Just("limit".to_owned()),
                            Just("after".to_owned()),
                            Just("query".to_owned()),
                            "[a-z]{1,6}",
                        ],
                        inner
                    ),
                    0..6
                )
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn arb_operator() -> impl Strategy<Value = (String, Value)> {
        let word = "[a-z0-9]{1,8}";
        prop_oneof![
            (
                prop_oneof![
                    Just("EQ"),
                    Just("NEQ"),
                    Just("LT"),
                    Just("LTE"),
                    Just("GT"),
                    Just("GTE"),
                    Just("CONTAINS_TOKEN"),
                    Just("NOT_CONTAINS_TOKEN")
                ],
                word
            )
                .prop_map(|(op, v)| (op.to_owned(), json!({"operator": op, "value": v}))),
            (word, word).prop_map(|(a, b)| (
                "BETWEEN".to_owned(),
                json!({"operator": "BETWEEN", "value": a, "highValue": b})
            )),
            (
                prop_oneof![Just("IN"), Just("NOT_IN")],
                prop::collection::vec(word, 0..4)
            )
                .prop_map(|(op, v)| (op.to_owned(), json!({"operator": op, "values": v}))),
            prop_oneof![Just("HAS_PROPERTY"), Just("NOT_HAS_PROPERTY")]
                .prop_map(|op| (op.to_owned(), json!({"operator": op}))),
        ]
    }

    proptest! {
        #[test]
        fn parser_never_panics_on_arbitrary_json(v in arb_json()) {
            let _ = parse(&v);
        }

        #[test]
        fn well_formed_requests_parse_faithfully(
            groups in prop::collection::vec(prop::collection::vec(("[a-z_]{1,10}", arb_operator()), 1..=6), 0..=6),
            limit in 0usize..=200,
            after in 0usize..20_000,
            limit_as_string in any::<bool>(),
        ) {
            let body = json!({
                "filterGroups": groups.iter().map(|g| json!({"filters": g.iter().map(|(name, (_, f))| {
                    let mut f = f.clone();
                    f["propertyName"] = json!(name);
                    f
                }).collect::<Vec<_>>()})).collect::<Vec<_>>(),
                "limit": if limit_as_string { json!(limit.to_string()) } else { json!(limit) },
                "after": after.to_string(),
            });
            let req = parse(&body).unwrap();
            prop_assert_eq!(req.limit, limit);
            prop_assert_eq!(req.after, after);
            prop_assert_eq!(req.filter_groups.len(), groups.len());
            for (parsed, given) in req.filter_groups.iter().zip(&groups) {
                prop_assert_eq!(parsed.len(), given.len());
                for (f, (name, (op, _))) in parsed.iter().zip(given) {
                    prop_assert_eq!(&f.property_name, name);
                    let parsed_op = format!("{:?}", f.operator);
                    let expected_variant: String = op.split('_').map(|w| {
                        let mut c = w.chars();
                        c.next().map(|h| h.to_string() + &c.as_str().to_lowercase()).unwrap_or_default()
                    }).collect();
                    prop_assert!(parsed_op.starts_with(&expected_variant), "{} vs {}", parsed_op, expected_variant);
                }
            }
        }

        #[test]
        fn limits_above_200_are_always_refused(limit in 201u64..1_000_000) {
            let refused = parse(&json!({"limit": limit})).is_err();
            prop_assert!(refused);
        }
    }
}
