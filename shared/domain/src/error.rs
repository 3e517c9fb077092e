//! The one table of error codes, each mapped to a gRPC code and an HTTP status.
//!
//! Services return [`ApiError`]; it becomes a `google.rpc.Status` with an `ErrorInfo`
//! (stable reason, trace id) and, for validation errors, `BadRequest` field violations.
//! Internal causes never reach the caller: they are logged with the trace id instead.

use std::fmt;

use tonic::Code;
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// The error domain in `google.rpc.ErrorInfo`.
pub const ERROR_DOMAIN: &str = "syncline.dev";

/// What a caller can act on. Each code has one gRPC code and one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed; field violations say where.
    InvalidArgument,
    /// No valid credentials.
    Unauthenticated,
    /// Authenticated, but not allowed to do this.
    PermissionDenied,
    /// The resource does not exist for this tenant (or belongs to another).
    NotFound,
    /// A resource with that identity exists already.
    AlreadyExists,
    /// The system is not in a state that allows this.
    FailedPrecondition,
    /// A concurrent change won; retry with fresh state.
    Aborted,
    /// A resume position (sequence, cursor) is older than what is retained.
    CursorExpired,
    /// The CRM connection needs the customer to authorize again.
    NeedsReauth,
    /// Too many requests for this tenant; retry later.
    RateLimited,
    /// A provider quota is used up for now.
    QuotaExhausted,
    /// A CRM provider did not answer or failed.
    ProviderUnavailable,
    /// The deadline passed before the work finished.
    DeadlineExceeded,
    /// Not built yet.
    Unimplemented,
    /// A fault of ours; details are in the log under the trace id.
    Internal,
}

impl ErrorCode {
    /// The gRPC status code.
    pub fn grpc(self) -> Code {
        match self {
            Self::InvalidArgument => Code::InvalidArgument,
            Self::Unauthenticated => Code::Unauthenticated,
            Self::PermissionDenied => Code::PermissionDenied,
            Self::NotFound => Code::NotFound,
            Self::AlreadyExists => Code::AlreadyExists,
            Self::FailedPrecondition | Self::NeedsReauth => Code::FailedPrecondition,
            Self::Aborted => Code::Aborted,
            Self::CursorExpired => Code::OutOfRange,
            Self::RateLimited | Self::QuotaExhausted => Code::ResourceExhausted,
            Self::ProviderUnavailable => Code::Unavailable,
            Self::DeadlineExceeded => Code::DeadlineExceeded,
            Self::Unimplemented => Code::Unimplemented,
            Self::Internal => Code::Internal,
        }
    }

    /// The HTTP status for the gateway's HTTP endpoints.
    pub fn http(self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            Self::InvalidArgument | Self::CursorExpired => S::BAD_REQUEST,
            Self::Unauthenticated => S::UNAUTHORIZED,
            Self::PermissionDenied => S::FORBIDDEN,
            Self::NotFound => S::NOT_FOUND,
            Self::AlreadyExists | Self::Aborted | Self::NeedsReauth => S::CONFLICT,
            Self::FailedPrecondition => S::PRECONDITION_FAILED,
            Self::RateLimited | Self::QuotaExhausted => S::TOO_MANY_REQUESTS,
            Self::ProviderUnavailable => S::BAD_GATEWAY,
            Self::DeadlineExceeded => S::GATEWAY_TIMEOUT,
            Self::Unimplemented => S::NOT_IMPLEMENTED,
            Self::Internal => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable reason in `ErrorInfo.reason` (matches `syncline.common.v1.ErrorReason`).
    pub fn reason(self) -> &'static str {
        match self {
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::FailedPrecondition => "FAILED_PRECONDITION",
            Self::Aborted => "CONFLICT",
            Self::CursorExpired => "CURSOR_EXPIRED",
            Self::NeedsReauth => "NEEDS_REAUTH",
            Self::RateLimited => "RATE_LIMITED",
            Self::QuotaExhausted => "QUOTA_EXHAUSTED",
            Self::ProviderUnavailable => "PROVIDER_UNAVAILABLE",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::Unimplemented => "UNIMPLEMENTED",
            Self::Internal => "INTERNAL",
        }
    }
}

/// One invalid field: its path in the request, a stable reason and a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Dotted path of the field in the request, e.g. `app.redirect_url`.
    pub field: String,
    /// SCREAMING_SNAKE_CASE reason, e.g. `REQUIRED`.
    pub reason: String,
    /// What is wrong, for people.
    pub description: String,
}

impl Violation {
    /// A violation of `field` for `reason`.
    pub fn new(
        field: impl Into<String>,
        reason: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
            description: description.into(),
        }
    }

    /// A required field was left empty.
    pub fn required(field: impl Into<String>) -> Self {
        Self::new(field, "REQUIRED", "is required")
    }
}

/// An error a caller can act on, or an internal one whose cause stays in our logs.
pub struct ApiError {
    code: ErrorCode,
    message: String,
    violations: Vec<Violation>,
    metadata: Vec<(String, String)>,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ApiError {
    /// An error with `code` and a message safe to show the caller.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            violations: Vec::new(),
            metadata: Vec::new(),
            cause: None,
        }
    }

    /// `INVALID_ARGUMENT` with the given field violations.
    pub fn invalid(violations: Vec<Violation>) -> Self {
        let message = match violations.as_slice() {
            [one] => format!("invalid request: {} {}", one.field, one.description),
            many => format!("invalid request: {} fields are invalid", many.len()),
        };
        Self {
            violations,
            ..Self::new(ErrorCode::InvalidArgument, message)
        }
    }

    /// `NOT_FOUND` for a resource kind; never says whether another tenant has it.
    pub fn not_found(kind: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{kind} not found"))
    }

    /// An internal failure: the caller sees a generic message; `cause` goes to the log.
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(ErrorCode::Internal, "internal error")
        }
    }

    /// Adds a caller-safe `ErrorInfo.metadata` entry (e.g. how far a log was pruned).
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The caller-safe message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The field violations, for validation errors.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Converts to a `tonic::Status` carrying `ErrorInfo` (reason, trace id) and, when
    /// present, `BadRequest`. Logs the internal cause with the trace id.
    pub fn into_status(self) -> tonic::Status {
        let trace_id = syncline_telemetry::current_trace_id();
        if let Some(cause) = &self.cause {
            tracing::error!(
                error = %cause,
                trace_id = trace_id.as_deref().unwrap_or(""),
                "internal error"
            );
        }
        let mut details = ErrorDetails::new();
        let mut metadata: std::collections::HashMap<String, String> =
            self.metadata.into_iter().collect();
        if let Some(trace_id) = &trace_id {
            metadata.insert("trace_id".to_owned(), trace_id.clone());
        }
        details.set_error_info(self.code.reason(), ERROR_DOMAIN, metadata);
        if !self.violations.is_empty() {
            let violations: Vec<FieldViolation> = self
                .violations
                .into_iter()
                .map(|v| {
                    let mut fv = FieldViolation::new(v.field, v.description);
                    fv.reason = v.reason;
                    fv
                })
                .collect();
            details.set_bad_request(violations);
        }
        let message = match &trace_id {
            Some(id) => format!("{} (trace {id})", self.message),
            None => self.message,
        };
        tonic::Status::with_error_details(self.code.grpc(), message, details)
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("code", &self.code)
            .field("message", &self.message)
            .field("violations", &self.violations)
            .field("cause", &self.cause.as_ref().map(|c| c.to_string()))
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.reason().to_lowercase(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        error.into_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_field_violations_and_reason() {
        let status: tonic::Status =
            ApiError::invalid(vec![Violation::required("app.client_id")]).into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request details");
        assert_eq!(bad.field_violations[0].field, "app.client_id");
        assert_eq!(bad.field_violations[0].reason, "REQUIRED");
        assert_eq!(
            details.error_info().expect("error info").reason,
            "INVALID_ARGUMENT"
        );
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let status: tonic::Status =
            ApiError::internal(std::io::Error::other("secret db password wrong")).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }

    #[test]
    fn every_code_maps_consistently_between_grpc_and_http() {
        use ErrorCode::*;
        for code in [
            InvalidArgument,
            Unauthenticated,
            PermissionDenied,
            NotFound,
            AlreadyExists,
            FailedPrecondition,
            Aborted,
            CursorExpired,
            NeedsReauth,
            RateLimited,
            QuotaExhausted,
            ProviderUnavailable,
            DeadlineExceeded,
            Unimplemented,
            Internal,
        ] {
            let client_error = code.http().is_client_error();
            let server_side = matches!(
                code.grpc(),
                Code::Internal | Code::Unavailable | Code::DeadlineExceeded | Code::Unimplemented
            );
            assert_eq!(client_error, !server_side, "{code:?}");
        }
    }
}
