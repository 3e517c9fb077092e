//! HubSpot's error bodies, exactly as the real API sends them.
//!
//! Most endpoints answer with the standard envelope
//! `{status:"error", message, correlationId, category, subCategory?, context?, errors?}`;
//! rate limits use their own body (`errorType:"RATE_LIMIT"`, `policyName`) and the OAuth token
//! endpoint its own (`status:"BAD_REFRESH_TOKEN"`, …). Every body carries a fresh
//! `correlationId` (a UUID, v7 like HubSpot's current ones).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// The content type HubSpot puts on its JSON responses.
pub const JSON_CONTENT_TYPE: &str = "application/json;charset=utf-8";

/// An error response of the HubSpot API: a status code and a JSON body.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub status: StatusCode,
    /// The JSON body as sent.
    pub body: Value,
    /// Extra response headers (e.g. `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
}

/// A fresh correlation id.
#[must_use]
pub fn correlation_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl ApiError {
    /// The standard envelope with a category.
    #[must_use]
    pub fn standard(status: StatusCode, category: &str, message: impl Into<String>) -> Self {
        let body = json!({
            "status": "error",
            "message": message.into(),
            "correlationId": correlation_id(),
            "category": category,
        });
        Self {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// 400 `VALIDATION_ERROR`.
    #[must_use]
    pub fn validation(message: impl Into<String>) -> Self {
        Self::standard(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    /// 400 for an object type the portal does not know: the real body has no category.
    #[must_use]
    pub fn unknown_object_type(name: &str) -> Self {
        let body = json!({
            "status": "error",
            "message": format!("Unable to infer object type from: {name}"),
            "correlationId": correlation_id(),
        });
        Self {
            status: StatusCode::BAD_REQUEST,
            body,
            headers: Vec::new(),
        }
    }

    /// 404 `OBJECT_NOT_FOUND` for a single-record read or write.
    #[must_use]
    pub fn object_not_found(id: &str) -> Self {
        Self::standard(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "Object not found.  objectId are usually numeric.",
        )
        .with_context("id", vec![id.to_owned()])
    }

    /// 401 for a missing or unknown token.
    #[must_use]
    pub fn missing_authentication() -> Self {
        Self::standard(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        )
    }

    /// 401 for an expired OAuth access token, with HubSpot's "expired N unit(s) ago" wording.
    #[must_use]
    pub fn expired_authentication(expired_ms_ago: i64, expire_time_iso: &str) -> Self {
        let secs = (expired_ms_ago / 1000).max(0);
        let ago = if secs < 60 {
            format!("{secs} second(s)")
        } else if secs < 3600 {
            format!("{} minute(s)", secs / 60)
        } else if secs < 86_400 {
            format!("{} hour(s)", secs / 3600)
        } else {
            format!("{} day(s)", secs / 86_400)
        };
        Self::standard(
            StatusCode::UNAUTHORIZED,
            "EXPIRED_AUTHENTICATION",
            format!("The OAuth token used to make this call expired {ago} ago."),
        )
        .with_context("expire time", vec![expire_time_iso.to_owned()])
    }

    /// 403 `MISSING_SCOPES` naming the scopes the call needs.
    #[must_use]
    pub fn missing_scopes(required: &[&str]) -> Self {
        let mut e = Self::standard(
            StatusCode::FORBIDDEN,
            "MISSING_SCOPES",
            "One or more of the following scopes are required.",
        )
        .with_context(
            "requiredGranularScopes",
            required.iter().map(|s| (*s).to_owned()).collect(),
        );
        e.insert_context(
            "links",
            vec!["https://developers.hubspot.com/scopes".to_owned()],
        );
        e
    }

    /// 409 `CONFLICT`.
    #[must_use]
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::standard(StatusCode::CONFLICT, "CONFLICT", message)
    }

    /// A server error, used by fault injection.
    #[must_use]
    pub fn server_error(status: StatusCode) -> Self {
        let body = json!({
            "status": "error",
            "message": "internal error",
            "correlationId": correlation_id(),
            "category": "INTERNAL_ERROR",
        });
        Self {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// 429 with HubSpot's rate-limit body; `policy` is `TEN_SECONDLY_ROLLING`, `SECONDLY` or
    /// `DAILY`.
    #[must_use]
    pub fn rate_limited(policy: &str, retry_after_secs: u64) -> Self {
        let message = match policy {
            "DAILY" => "You have reached your daily limit.",
            "SECONDLY" => "You have reached your secondly limit.",
            _ => "You have reached your ten_secondly_rolling limit.",
        };
        let body = json!({
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(),
            "policyName": policy,
            "requestId": uuid::Uuid::new_v4().to_string(),
        });
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            body,
            headers: vec![("retry-after", retry_after_secs.to_string())],
        }
    }

    /// An OAuth token-endpoint error (`status` is the machine code, e.g. `BAD_REFRESH_TOKEN`).
    #[must_use]
    pub fn oauth(status_code: &str, message: &str) -> Self {
        let body = json!({
            "status": status_code,
            "message": message,
            "correlationId": correlation_id(),
            "requestId": uuid::Uuid::new_v4().to_string(),
        });
        Self {
            status: StatusCode::BAD_REQUEST,
            body,
            headers: Vec::new(),
        }
    }

    /// Adds `context[key] = values`.
    #[must_use]
    pub fn with_context(mut self, key: &str, values: Vec<String>) -> Self {
        self.insert_context(key, values);
        self
    }

    fn insert_context(&mut self, key: &str, values: Vec<String>) {
        if let Some(obj) = self.body.as_object_mut() {
            let ctx = obj
                .entry("context")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(ctx) = ctx.as_object_mut() {
                ctx.insert(key.to_owned(), json!(values));
            }
        }
    }

    /// Adds the `errors[]` detail list.
    #[must_use]
    pub fn with_errors(mut self, errors: Vec<Value>) -> Self {
        if let Some(obj) = self.body.as_object_mut() {
            obj.insert("errors".to_owned(), Value::Array(errors));
        }
        self
    }

    /// The body without `correlationId`, as an entry of a batch response's `errors[]`.
    #[must_use]
    pub fn into_batch_error(self) -> Value {
        let mut body = self.body;
        if let Some(obj) = body.as_object_mut() {
            obj.remove("correlationId");
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let bytes = serde_json::to_vec(&self.body).unwrap_or_default();
        let mut resp = (self.status, bytes).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(JSON_CONTENT_TYPE),
        );
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        resp
    }
}

/// A JSON response with HubSpot's content type.
pub fn json_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    resp
}

/// Serialises `value` as a JSON response; serialisation of our own types cannot fail, but if
/// it did the client gets a 500 rather than a panic.
pub fn json_of<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_response(status, bytes),
        Err(_) => ApiError::server_error(StatusCode::INTERNAL_SERVER_ERROR).into_response(),
    }
}
