//! `POST /composite`: up to 25 subrequests in one call, later ones able to use earlier
//! results through `@{referenceId.path}` references.
//!
//! Subrequests are dispatched in-process through the data router with the caller's token;
//! the whole composite counts as one API call. `allOrNone: true` stops at the first failed
//! subrequest and answers `PROCESSING_HALTED` for the rest; unlike a real org the sandbox
//! does not undo the subrequests that already succeeded.

use super::api::{Ctx, Subrequest, json_response};
use super::errors::SfError;
use axum::Extension;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

/// Most subrequests per call.
pub const MAX_SUBREQUESTS: usize = 25;

/// Resolves `@{ref.path}` in `text` against earlier bodies; `None` if a reference is unknown.
fn substitute(text: &str, results: &Map<String, Value>) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        let path = &after[..end];
        let mut parts = path.split('.');
        let mut v = results.get(parts.next()?)?;
        for part in parts {
            let (name, index) = match part.split_once('[') {
                Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
                None => (part, None),
            };
            if !name.is_empty() {
                v = v.get(name)?;
            }
            if let Some(i) = index {
                v = v.get(i)?;
            }
        }
        match v {
            Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn substitute_value(v: &Value, results: &Map<String, Value>) -> Option<Value> {
    Some(match v {
        Value::String(s) => Value::String(substitute(s, results)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute_value(x, results))
                .collect::<Option<_>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Some((k.clone(), substitute_value(x, results)?)))
                .collect::<Option<_>>()?,
        ),
        other => other.clone(),
    })
}

fn halted(reference_id: &Value, message: &str) -> Value {
    json!({
        "body": [{"errorCode": "PROCESSING_HALTED", "message": message}],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": reference_id,
    })
}

/// `POST /services/data/vXX.X/composite`.
pub async fn composite(
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return SfError::json_parser("Unexpected character in request body").into_response();
    };
    let all_or_none = req
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let subs = req
        .get("compositeRequest")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if subs.is_empty() {
        return SfError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "compositeRequest is required and must contain at least one subrequest",
        )
        .into_response();
    }
    if subs.len() > MAX_SUBREQUESTS {
        return SfError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            format!("Composite request cannot have more than {MAX_SUBREQUESTS} subrequests"),
        )
        .into_response();
    }
    let Some(router) = ctx.org_router() else {
        return SfError::server_unavailable().into_response();
    };
    let auth = headers.get(header::AUTHORIZATION).cloned();
    let mut results = Map::new();
    let mut out = Vec::with_capacity(subs.len());
    let mut failed = false;
    for sub in &subs {
        let reference_id = sub.get("referenceId").cloned().unwrap_or(Value::Null);
        if failed && all_or_none {
            out.push(halted(&reference_id, "The transaction was rolled back since another operation in the same transaction failed."));
            continue;
        }
        let method = sub
            .get("method")
            .and_then(Value::as_str)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .unwrap_or(Method::GET);
        let raw_url = sub.get("url").and_then(Value::as_str).unwrap_or("");
        let (Some(url), Some(body)) = (
            substitute(raw_url, &results),
            sub.get("body")
                .map_or(Some(Value::Null), |b| substitute_value(b, &results)),
        ) else {
            failed = true;
            out.push(halted(
                &reference_id,
                "Invalid reference specified. No value found for a referenced field.",
            ));
            continue;
        };
        if !url.starts_with("/services/data/") || url.contains("/composite") {
            failed = true;
            out.push(json!({"body": [{"errorCode": "INVALID_REQUEST", "message": format!("Unsupported subrequest url: {url}")}], "httpHeaders": {}, "httpStatusCode": 400, "referenceId": reference_id}));
            continue;
        }
        let mut builder = Request::builder().method(method).uri(&url);
        if let Some(a) = &auth {
            builder = builder.header(header::AUTHORIZATION, a.clone());
        }
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        let Ok(mut inner) = builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
        else {
            failed = true;
            out.push(halted(&reference_id, "Malformed subrequest"));
            continue;
        };
        inner.extensions_mut().insert(Subrequest);
        inner.extensions_mut().insert(ctx.clone());
        let resp = match router.clone().oneshot(inner).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = resp.status();
        let mut hdrs = Map::new();
        for name in ["etag", "last-modified", "location"] {
            if let Some(v) = resp.headers().get(name).and_then(|v| v.to_str().ok()) {
                let key = match name {
                    "etag" => "ETag",
                    "last-modified" => "Last-Modified",
                    _ => "Location",
                };
                hdrs.insert(key.into(), Value::String(v.to_owned()));
            }
        }
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .unwrap_or_default();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if status.as_u16() >= 400 {
            failed = true;
        }
        if let Some(r) = reference_id.as_str() {
            results.insert(r.to_owned(), body.clone());
        }
        out.push(json!({"body": body, "httpHeaders": hdrs, "httpStatusCode": status.as_u16(), "referenceId": reference_id}));
    }
    json_response(
        StatusCode::OK,
        json!({"compositeResponse": out}).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_paths_and_indices() {
        let mut r = Map::new();
        r.insert("NewAccount".into(), json!({"id": "001X"}));
        r.insert("Q".into(), json!({"records": [{"Id": "003A"}]}));
        assert_eq!(
            substitute("/sobjects/Account/@{NewAccount.id}", &r).as_deref(),
            Some("/sobjects/Account/001X")
        );
        assert_eq!(
            substitute("@{Q.records[0].Id}", &r).as_deref(),
            Some("003A")
        );
        assert_eq!(substitute("@{Missing.id}", &r), None);
    }
}
