//! `GET /oauth/callback`: where providers send the end user's browser back after an OAuth
//! authorization.
//!
//! The gateway does not interpret `state` or `code`: it hands them to auth-vault's internal
//! `TokenService/CompleteAuthorization` with a service credential and answers a small
//! page saying whether the connection is ready, or what went wrong (expired, altered or
//! reused link; the CRM refused). With a `return_url` from StartAuthorization, success
//! redirects there instead. Neither the code nor the state is logged or echoed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use syncline_domain::{ProjectId, TenantContext, TenantId};
use syncline_proto::authvault::v1::CompleteAuthorizationRequest;
use syncline_proto::authvault::v1::token_service_client::TokenServiceClient;
use syncline_service_kit::client::ServiceCaller;
use tonic_types::StatusExt;

use crate::Gateway;

const TOKEN_SERVICE: &str = "syncline.authvault.v1.TokenService";

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The callback URL carries the code: never leak it to the next page.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    response
}

fn page(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;\
         padding:0 1rem;color:#222}}</style></head>\
         <body><h1>{title}</h1><p>{detail}</p></body></html>\n",
        title = escape(title),
        detail = escape(detail),
    );
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(response)
}

/// The `state` violation reason in a CompleteAuthorization error, if any.
fn state_reason(status: &tonic::Status) -> Option<String> {
    status
        .get_error_details()
        .bad_request()
        .and_then(|b| b.field_violations.iter().find(|v| v.field == "state"))
        .map(|v| v.reason.clone())
}

/// The vault's message without the trailing `(trace …)`.
fn message_of(status: &tonic::Status) -> &str {
    let message = status.message();
    message
        .rfind(" (trace ")
        .map_or(message, |at| &message[..at])
}

fn error_page(status: &tonic::Status) -> Response {
    use tonic::Code;
    match (status.code(), state_reason(status).as_deref()) {
        (Code::InvalidArgument, Some("STATE_EXPIRED")) => page(
            StatusCode::BAD_REQUEST,
            "This link has expired",
            "The authorization took too long. Go back to the application and connect again.",
        ),
        (Code::InvalidArgument, Some("STATE_USED")) => page(
            StatusCode::BAD_REQUEST,
            "This link was already used",
            "This authorization was already completed or cancelled. Go back to the \
             application and connect again if the connection is not ready.",
        ),
        (Code::InvalidArgument, Some(_)) => page(
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            "The authorization request was altered or did not come from this service. \
             Nothing was stored. Go back to the application and connect again.",
        ),
        (Code::InvalidArgument, None) => page(
            StatusCode::BAD_REQUEST,
            "The authorization is incomplete",
            "The CRM sent back an incomplete answer. Go back to the application and connect \
             again.",
        ),
        (Code::FailedPrecondition | Code::NotFound, _) => page(
            StatusCode::BAD_REQUEST,
            "The connection was not completed",
            message_of(status),
        ),
        (Code::Unavailable | Code::DeadlineExceeded, _) => page(
            StatusCode::BAD_GATEWAY,
            "The CRM could not be reached",
            "The connection could not be completed right now. Please try again in a moment.",
        ),
        (
            Code::Ok
            | Code::Cancelled
            | Code::Unknown
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::Internal
            | Code::DataLoss
            | Code::Unauthenticated,
            _,
        ) => page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The connection could not be completed. Please try again.",
        ),
    }
}

/// The context of the gateway's own call: CompleteAuthorization takes its tenant from the
/// stored authorization, not from the caller.
fn callback_context() -> Option<TenantContext> {
    Some(TenantContext {
        project_id: ProjectId::parse("syncline").ok()?,
        tenant_id: TenantId::parse("oauth-callback").ok()?,
        subject: "gateway".into(),
    })
}

/// Handles `GET /oauth/callback?code&state[&error&error_description]`.
pub(crate) async fn callback(
    State(gateway): State<Arc<Gateway>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| query.get(k).cloned().unwrap_or_default();
    let state = get("state");
    if state.is_empty() {
        return page(
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            "The authorization answer has no state. Go back to the application and connect \
             again.",
        );
    }
    let Some((_, channel)) = gateway.backends.for_service(TOKEN_SERVICE) else {
        return error_page(&tonic::Status::internal("no auth-vault backend"));
    };
    let Some(context) = callback_context() else {
        return error_page(&tonic::Status::internal("bad callback context"));
    };
    let caller = ServiceCaller::new(Arc::new(gateway.internal.clone()), "gateway");
    let message = CompleteAuthorizationRequest {
        state,
        code: get("code"),
        error: get("error"),
        error_description: get("error_description"),
    };
    let mut request = match caller.request(&context, message) {
        Ok(request) => request,
        Err(status) => return error_page(&status),
    };
    request.set_timeout(Duration::from_secs(30));
    match TokenServiceClient::new(channel)
        .complete_authorization(request)
        .await
    {
        Ok(response) => {
            let done = response.into_inner();
            tracing::info!(
                tenant.id = %done.tenant_id,
                connection.id = %done.connection_id,
                "oauth callback completed"
            );
            if let Ok(mut url) = url_with(&done.return_url) {
                url.query_pairs_mut()
                    .append_pair("connection_id", &done.connection_id)
                    .append_pair("status", "connected");
                if let Ok(location) = HeaderValue::from_str(url.as_str()) {
                    let mut response = StatusCode::SEE_OTHER.into_response();
                    response.headers_mut().insert(header::LOCATION, location);
                    return secure(response);
                }
            }
            page(
                StatusCode::OK,
                "Connected",
                "Your CRM is connected. You can close this window and return to the \
                 application.",
            )
        }
        Err(status) => {
            tracing::info!(code = ?status.code(), "oauth callback refused: {}", message_of(&status));
            error_page(&status)
        }
    }
}

fn url_with(text: &str) -> Result<reqwest::Url, ()> {
    if text.is_empty() {
        return Err(());
    }
    reqwest::Url::parse(text).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        let response = page(StatusCode::BAD_REQUEST, "x", "<script>alert(1)</script>");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()[header::REFERRER_POLICY],
            HeaderValue::from_static("no-referrer")
        );
        assert_eq!(escape("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }

    fn state_error(reason: &str) -> tonic::Status {
        let mut details = tonic_types::ErrorDetails::new();
        let mut violation = tonic_types::FieldViolation::new("state", "bad");
        violation.reason = reason.into();
        details.set_bad_request(vec![violation]);
        tonic::Status::with_error_details(tonic::Code::InvalidArgument, "bad state", details)
    }

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn each_refusal_gets_its_own_page() {
        for (reason, text) in [
            ("STATE_EXPIRED", "expired"),
            ("STATE_USED", "already used"),
            ("STATE_INVALID", "not valid"),
        ] {
            let response = error_page(&state_error(reason));
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            assert!(body(response).await.contains(text), "{reason}");
        }
        let unavailable = error_page(&tonic::Status::unavailable("down"));
        assert_eq!(unavailable.status(), StatusCode::BAD_GATEWAY);
        let internal = error_page(&tonic::Status::internal("secret detail"));
        assert!(!body(internal).await.contains("secret detail"));
    }

    #[test]
    fn trace_suffixes_are_dropped_from_messages() {
        let status = tonic::Status::failed_precondition("refused: access_denied (trace abc)");
        assert_eq!(message_of(&status), "refused: access_denied");
    }
}
