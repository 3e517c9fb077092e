//! Sending one request to a CRM and classifying its answer.

use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;

use crate::{ConnectorError, Credentials};

/// Adds the bearer token, sends, and turns a non-2xx answer into a typed error; `code_of`
/// extracts the provider's error code and message from an error body.
pub(crate) async fn send(
    request: RequestBuilder,
    credentials: &Credentials,
    code_of: fn(&[u8]) -> (String, String),
) -> Result<Response, ConnectorError> {
    let response = request
        .bearer_auth(credentials.access_token.expose_secret())
        .send()
        .await
        .map_err(|e| ConnectorError::Transport(without_url(&e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = retry_after(&response);
    let body = response.bytes().await.unwrap_or_default();
    Err(classify(status, retry_after, &body, code_of))
}

/// The error for a non-2xx `status` with `body`.
pub(crate) fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    code_of: fn(&[u8]) -> (String, String),
) -> ConnectorError {
    let (code, message) = code_of(body);
    if status == StatusCode::UNAUTHORIZED {
        return ConnectorError::Unauthorized {
            provider_error: if code.is_empty() { message } else { code },
        };
    }
    if status == StatusCode::FORBIDDEN && code == "REQUEST_LIMIT_EXCEEDED" {
        return ConnectorError::QuotaExhausted;
    }
    if status == StatusCode::TOO_MANY_REQUESTS && code == crate::hubspot::DAILY_LIMIT_CODE {
        return ConnectorError::QuotaExhausted;
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return ConnectorError::RateLimited { retry_after };
    }
    if status.is_server_error() {
        return ConnectorError::Unavailable {
            status: status.as_u16(),
            retry_after,
        };
    }
    ConnectorError::Refused {
        status: status.as_u16(),
        code,
        message,
    }
}

/// Reads a JSON body into `T`.
pub(crate) async fn json<T: DeserializeOwned>(
    response: Response,
    what: &str,
) -> Result<T, ConnectorError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ConnectorError::Transport(without_url(&e)))?;
    serde_json::from_slice(&bytes).map_err(|e| ConnectorError::invalid(what, e))
}

/// `Retry-After` in seconds, when present.
pub(crate) fn retry_after(response: &Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// A reqwest error's text without its URL (which may carry query values).
fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    match std::error::Error::source(error) {
        Some(source) => format!("{kind}: {source}"),
        None => kind.to_owned(),
    }
}

/// Joins `instance_url` and an absolute `path`.
pub(crate) fn url(instance_url: &str, path: &str) -> String {
    format!("{}{}", instance_url.trim_end_matches('/'), path)
}

/// Runs `task` on every item with at most `concurrency` in flight (as spawned tasks, so
/// the caller's future stays `Send`); results in input order, the first error wins.
pub(crate) async fn bounded<T, R, F, Fut>(
    items: Vec<T>,
    concurrency: usize,
    task: F,
) -> Result<Vec<R>, ConnectorError>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<R, ConnectorError>> + Send + 'static,
{
    let total = items.len();
    let mut pending = items.into_iter().enumerate();
    let mut running = tokio::task::JoinSet::new();
    let mut out: Vec<Option<R>> = (0..total).map(|_| None).collect();
    loop {
        while running.len() < concurrency.max(1) {
            let Some((i, item)) = pending.next() else {
                break;
            };
            let fut = task(item);
            running.spawn(async move { (i, fut.await) });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (i, result) =
            joined.map_err(|e| ConnectorError::Transport(format!("describe task failed: {e}")))?;
        match result {
            Ok(r) => {
                if let Some(slot) = out.get_mut(i) {
                    *slot = Some(r);
                }
            }
            Err(e) => {
                running.abort_all();
                return Err(e);
            }
        }
    }
    Ok(out.into_iter().flatten().collect())
}
