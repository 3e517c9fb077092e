//! A structural JSON comparator for conformance tests.
//!
//! Conformance means "same keys, same types, same nesting" as a recorded real response, not
//! the same values. [`compare_shape`] walks a recorded (`expected`) and a sandbox (`actual`)
//! document side by side and lists every difference with its JSON path.
//!
//! Rules:
//! - objects must have the same key set (extra keys in `actual` are allowed only with
//!   [`ShapeOptions::allow_extra_keys`]; keys listed in [`ShapeOptions::optional_keys`] may be
//!   missing from `actual`);
//! - scalars must have the same JSON type (all numbers are one type);
//! - `null` in the recording matches any value (the real API returns `null` for an empty
//!   field that the sandbox may fill), and `null` in `actual` matches any recorded value
//!   when [`ShapeOptions::null_matches_any`] is set;
//! - each element of an `actual` array must match at least one element of the recorded
//!   array (an empty recorded array accepts anything); with [`ShapeOptions::same_length`]
//!   arrays must also have equal lengths.

use serde_json::Value;
use std::fmt;

/// Knobs for [`compare_shape`].
#[derive(Debug, Clone, Default)]
pub struct ShapeOptions {
    /// Accept keys in `actual` that the recording lacks.
    pub allow_extra_keys: bool,
    /// Accept `null` in `actual` where the recording has a value.
    pub null_matches_any: bool,
    /// Require arrays of equal length.
    pub same_length: bool,
    /// Key names that may be missing from `actual` objects (anywhere in the document).
    pub optional_keys: Vec<String>,
    /// JSON paths (as printed in mismatches, e.g. `$.records[].attributes`) not compared.
    pub ignore_paths: Vec<String>,
}

impl ShapeOptions {
    /// Strict comparison: same keys, same types.
    #[must_use]
    pub fn strict() -> Self {
        Self::default()
    }
}

/// One structural difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// JSON path of the difference, array indices written as `[]`.
    pub path: String,
    /// What differs.
    pub detail: String,
}

impl fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.detail)
    }
}

/// The JSON type name of a value.
#[must_use]
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Compares the structure of `actual` against the recorded `expected`.
///
/// Returns every mismatch found; an empty `Ok(())` means the shapes agree.
pub fn compare_shape(
    expected: &Value,
    actual: &Value,
    options: &ShapeOptions,
) -> Result<(), Vec<ShapeMismatch>> {
    let mut out = Vec::new();
    walk(expected, actual, "$", options, &mut out);
    if out.is_empty() { Ok(()) } else { Err(out) }
}

/// Like [`compare_shape`] but panics with a readable report; for tests.
#[allow(clippy::panic)]
pub fn assert_same_shape(expected: &Value, actual: &Value, options: &ShapeOptions, what: &str) {
    if let Err(mismatches) = compare_shape(expected, actual, options) {
        let report: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
        panic!(
            "{what}: shape differs from the recording:\n  {}\nactual: {}",
            report.join("\n  "),
            actual
        );
    }
}

fn walk(
    expected: &Value,
    actual: &Value,
    path: &str,
    o: &ShapeOptions,
    out: &mut Vec<ShapeMismatch>,
) {
    if o.ignore_paths.iter().any(|p| p == path) {
        return;
    }
    match (expected, actual) {
        (Value::Null, _) => {}
        (_, Value::Null) if o.null_matches_any => {}
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let child = format!("{path}.{k}");
                match a.get(k) {
                    Some(av) => walk(ev, av, &child, o, out),
                    None if o.optional_keys.iter().any(|x| x == k) => {}
                    None => out.push(ShapeMismatch {
                        path: child,
                        detail: format!("missing key (recorded as {})", type_name(ev)),
                    }),
                }
            }
            if !o.allow_extra_keys {
                for (k, av) in a {
                    if !e.contains_key(k) {
                        out.push(ShapeMismatch {
                            path: format!("{path}.{k}"),
                            detail: format!("unexpected key ({})", type_name(av)),
                        });
                    }
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if o.same_length && e.len() != a.len() {
                out.push(ShapeMismatch {
                    path: path.to_owned(),
                    detail: format!("length {} where the recording has {}", a.len(), e.len()),
                });
            }
            if e.is_empty() {
                return;
            }
            let child = format!("{path}[]");
            for av in a {
                let mut best: Option<Vec<ShapeMismatch>> = None;
                for ev in e {
                    let mut m = Vec::new();
                    walk(ev, av, &child, o, &mut m);
                    if m.is_empty() {
                        best = None;
                        break;
                    }
                    if best.as_ref().is_none_or(|b| m.len() < b.len()) {
                        best = Some(m);
                    }
                }
                if let Some(m) = best {
                    out.extend(m);
                }
            }
        }
        (e, a) => {
            if type_name(e) != type_name(a) {
                out.push(ShapeMismatch {
                    path: path.to_owned(),
                    detail: format!("{} where the recording has {}", type_name(a), type_name(e)),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_shapes_pass_and_differences_are_listed() {
        let e = json!({"a": 1, "b": [{"x": "s"}], "c": null});
        assert!(
            compare_shape(
                &e,
                &json!({"a": 2.5, "b": [], "c": {"z": 1}}),
                &ShapeOptions::strict()
            )
            .is_ok()
        );
        let err = compare_shape(
            &e,
            &json!({"a": "1", "b": [{"y": 1}], "d": true}),
            &ShapeOptions::strict(),
        )
        .err()
        .unwrap_or_default();
        let paths: Vec<&str> = err.iter().map(|m| m.path.as_str()).collect();
        assert!(paths.contains(&"$.a"));
        assert!(paths.contains(&"$.b[].x"));
        assert!(paths.contains(&"$.b[].y"));
        assert!(paths.contains(&"$.c"));
        assert!(paths.contains(&"$.d"));
    }

    #[test]
    fn options_relax_the_comparison() {
        let e = json!({"a": 1, "b": "x"});
        let a = json!({"a": null, "c": 1});
        let o = ShapeOptions {
            allow_extra_keys: true,
            null_matches_any: true,
            optional_keys: vec!["b".into()],
            ..ShapeOptions::default()
        };
        assert!(compare_shape(&e, &a, &o).is_ok());
        assert!(compare_shape(&e, &a, &ShapeOptions::strict()).is_err());
    }
}
