//! Salesforce REST error bodies: a JSON array of `{message, errorCode, fields?}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One request-level error, rendered as a one-element JSON array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfError {
    /// HTTP status.
    pub status: StatusCode,
    /// `errorCode`.
    pub code: &'static str,
    /// `message`.
    pub message: String,
    /// `fields`, when the real API sends it.
    pub fields: Option<Vec<String>>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "errorCode")]
    error_code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a Vec<String>>,
}

impl SfError {
    /// An error with no `fields`.
    #[must_use]
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: None,
        }
    }

    /// Adds `fields`.
    #[must_use]
    pub fn with_fields(mut self, fields: Vec<String>) -> Self {
        self.fields = Some(fields);
        self
    }

    /// 401 `INVALID_SESSION_ID`.
    #[must_use]
    pub fn invalid_session() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    }

    /// 404 `NOT_FOUND` "The requested resource does not exist".
    #[must_use]
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }

    /// 404 `NOT_FOUND` for a value that is neither an id nor an external id field.
    #[must_use]
    pub fn external_id_field_not_found(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Provided external ID field does not exist or is not accessible: {name}"),
        )
    }

    /// 400 `INVALID_FIELD` "No such column 'X' on sobject of type Y".
    #[must_use]
    pub fn no_such_column(field: &str, object: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            format!("No such column '{field}' on sobject of type {object}"),
        )
    }

    /// 403 `REQUEST_LIMIT_EXCEEDED`.
    #[must_use]
    pub fn request_limit_exceeded() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
    }

    /// 503 `SERVER_UNAVAILABLE` (injected server error).
    #[must_use]
    pub fn server_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            "Server temporarily unavailable. Please try again later.",
        )
    }

    /// 400 `JSON_PARSER_ERROR`.
    #[must_use]
    pub fn json_parser(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            format!("{detail}"),
        )
    }

    /// 405 `METHOD_NOT_ALLOWED`.
    #[must_use]
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("HTTP Method '{method}' not allowed. Allowed are GET,HEAD"),
        )
    }
}

impl IntoResponse for SfError {
    fn into_response(self) -> Response {
        let body = [Body {
            message: &self.message,
            error_code: self.code,
            fields: self.fields.as_ref(),
        }];
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (self.status, json).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=UTF-8"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        }
        resp
    }
}

/// A per-record error in write results: `{statusCode, message, fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordError {
    /// `statusCode`.
    #[serde(rename = "statusCode")]
    pub status_code: &'static str,
    /// `message`.
    pub message: String,
    /// `fields`.
    pub fields: Vec<String>,
}

impl RecordError {
    /// A per-record error.
    #[must_use]
    pub fn new(code: &'static str, message: impl Into<String>, fields: Vec<String>) -> Self {
        Self {
            status_code: code,
            message: message.into(),
            fields,
        }
    }

    /// The same error as a request-level error (single-record endpoints).
    #[must_use]
    ///
    /// The real API omits `fields` for `INVALID_FIELD` and `NOT_FOUND` and sends it (even
    /// empty) for the other codes.
    pub fn into_request_error(self, status: StatusCode) -> SfError {
        let e = SfError::new(status, self.status_code, self.message);
        if matches!(self.status_code, "INVALID_FIELD" | "NOT_FOUND") {
            e
        } else {
            e.with_fields(self.fields)
        }
    }
}
