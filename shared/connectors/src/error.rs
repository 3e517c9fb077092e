//! What a connector call can fail with, typed so callers can act on it.

use std::time::Duration;

use crate::Provider;

/// A failed connector call.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The CRM refused the access token (HTTP 401): report it to auth-vault once
    /// (`ReportUnauthorized`) and retry with the token it returns.
    #[error("the crm refused the access token: {provider_error}")]
    Unauthorized {
        /// The provider's error code or message (never the token).
        provider_error: String,
    },
    /// Rate limited (HTTP 429): retry after `retry_after` when given.
    #[error("rate limited by the crm")]
    RateLimited {
        /// The provider's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The provider's API quota for the period is used up (Salesforce 403
    /// `REQUEST_LIMIT_EXCEEDED`, HubSpot 429 of the `DAILY` policy): retry after the quota
    /// resets ([`crate::QuotaBudget::after_exhausted`] says when).
    #[error("the crm api quota is exhausted")]
    QuotaExhausted,
    /// The CRM failed or is unavailable (HTTP 5xx): retryable.
    #[error("the crm is unavailable (http {status})")]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// The provider's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The CRM answered with an error a retry will not fix (missing scope, quota, bad
    /// request, unknown object).
    #[error("the crm refused the call (http {status} {code}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The provider's error code (`INVALID_TYPE`, `MISSING_SCOPES`, …).
        code: String,
        /// The provider's message.
        message: String,
    },
    /// A response the connector could not understand.
    #[error("invalid {what} from the crm: {reason}")]
    InvalidResponse {
        /// What was being read (`sobject describe Account`).
        what: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The request did not complete (connect, timeout, TLS).
    #[error("failed to reach the crm: {0}")]
    Transport(String),
    /// The provider does not offer this capability.
    #[error("{provider} does not support {capability}")]
    Unsupported {
        /// Lowercase provider name.
        provider: &'static str,
        /// The method.
        capability: &'static str,
    },
}

impl ConnectorError {
    /// `capability` is not offered by `provider`.
    pub fn unsupported(provider: Provider, capability: &'static str) -> Self {
        Self::Unsupported {
            provider: provider.as_str(),
            capability,
        }
    }

    /// Whether retrying later may succeed (429, 5xx, transport failures).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Unavailable { .. } | Self::Transport(_) => true,
            Self::QuotaExhausted
            | Self::Unauthorized { .. }
            | Self::Refused { .. }
            | Self::InvalidResponse { .. }
            | Self::Unsupported { .. } => false,
        }
    }

    /// How long the provider asked to wait, when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } | Self::Unavailable { retry_after, .. } => {
                *retry_after
            }
            Self::QuotaExhausted
            | Self::Unauthorized { .. }
            | Self::Refused { .. }
            | Self::InvalidResponse { .. }
            | Self::Transport(_)
            | Self::Unsupported { .. } => None,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::InvalidResponse {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// Classifies an error answer as a call would, with Salesforce (`salesforce = true`) or
/// HubSpot error bodies; for tests of the mapping from HTTP status to error.
#[doc(hidden)]
pub fn classify_for_tests(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    salesforce: bool,
) -> ConnectorError {
    let status = reqwest::StatusCode::from_u16(status).unwrap_or(reqwest::StatusCode::BAD_REQUEST);
    let code_of = if salesforce {
        crate::salesforce::error_code
    } else {
        crate::hubspot::error_code
    };
    crate::http::classify(status, retry_after, body, code_of)
}
