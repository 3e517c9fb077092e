//! The router and the gate every API call passes: authentication, injected faults, rate
//! limits and the `X-HubSpot-RateLimit-*` headers.

use super::errors::ApiError;
use super::state::{Caller, Shared};
use super::{admin, batch, oauth, objects, properties, search};
use crate::common::FaultOutcome;
use crate::common::stats::StatKind;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;

/// The whole HubSpot sandbox router: API, OAuth and admin.
pub fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route(
            "/crm/v3/objects/{object_type}",
            get(objects::list).post(objects::create),
        )
        .route(
            "/crm/v3/objects/{object_type}/search",
            post(search::handler),
        )
        .route(
            "/crm/v3/objects/{object_type}/batch/{action}",
            post(batch::handler),
        )
        .route(
            "/crm/v3/objects/{object_type}/{object_id}",
            get(objects::get_one)
                .patch(objects::update)
                .delete(objects::archive),
        )
        .route(
            "/crm/v3/properties/{object_type}",
            get(properties::list).post(properties::create),
        )
        .route(
            "/crm/v3/properties/{object_type}/{property_name}",
            get(properties::get_one)
                .patch(properties::update)
                .delete(properties::archive),
        )
        .route(
            "/crm-object-schemas/v3/schemas",
            get(properties::list_schemas).post(properties::create_schema),
        )
        .route(
            "/crm-object-schemas/v3/schemas/{object_type}",
            get(properties::get_schema),
        )
        .route(
            "/crm/v3/schemas",
            get(properties::list_schemas).post(properties::create_schema),
        )
        .route("/crm/v3/schemas/{object_type}", get(properties::get_schema))
        .route("/account-info/v3/details", get(account_details))
        .route("/account-info/2026-03/details", get(account_details))
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), gate));
    let oauth = Router::new()
        .route("/oauth/authorize", get(oauth::authorize))
        .route("/oauth/v1/token", post(oauth::token_v1))
        .route("/oauth/v3/token", post(oauth::token_v3))
        .route("/oauth/2026-03/token", post(oauth::token_v3))
        .route(
            "/oauth/v1/access-tokens/{token}",
            get(oauth::access_token_info),
        )
        .route(
            "/oauth/v1/refresh-tokens/{token}",
            get(oauth::refresh_token_info).delete(oauth::revoke_refresh_token),
        );
    api.merge(oauth)
        .nest("/__admin", admin::router())
        .with_state(shared)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn set(headers: &mut HeaderMap, name: &'static str, value: u64) {
    headers.insert(name, HeaderValue::from(value));
}

fn rate_headers(headers: &mut HeaderMap, quota: &super::rate_limit::Quota, oauth: bool) {
    set(headers, "x-hubspot-ratelimit-interval-milliseconds", 10_000);
    set(headers, "x-hubspot-ratelimit-max", quota.max);
    set(headers, "x-hubspot-ratelimit-remaining", quota.remaining);
    let secondly = (quota.max / 10).max(1);
    set(headers, "x-hubspot-ratelimit-secondly", secondly);
    set(
        headers,
        "x-hubspot-ratelimit-secondly-remaining",
        quota.remaining.min(secondly),
    );
    // HubSpot omits the daily headers on OAuth-authenticated calls.
    if !oauth {
        set(headers, "x-hubspot-ratelimit-daily", quota.daily);
        set(
            headers,
            "x-hubspot-ratelimit-daily-remaining",
            quota.daily_remaining,
        );
    }
}

async fn gate(State(shared): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let now = super::store::now_ms();
    let caller = match shared.authenticate(bearer(req.headers()), now) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let portal = Arc::clone(&caller.portal);
    portal.stats.bump(StatKind::ApiCall);
    let decision = portal.faults.decide();
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let search = req.uri().path().ends_with("/search");
    let admitted = super::state::lock(&portal.limiter).admit(&caller.app_key, search);
    let quota = match admitted {
        Ok(q) => q,
        Err(refusal) => {
            let mut resp =
                ApiError::rate_limited(refusal.policy, refusal.retry_after_secs).into_response();
            rate_headers(resp.headers_mut(), &refusal.quota, caller.oauth);
            return resp;
        }
    };
    match decision.outcome {
        FaultOutcome::Pass => {}
        FaultOutcome::ServerError => {
            portal.stats.bump(StatKind::InjectedFault);
            let mut resp = ApiError::server_error(StatusCode::BAD_GATEWAY).into_response();
            rate_headers(resp.headers_mut(), &quota, caller.oauth);
            return resp;
        }
        FaultOutcome::Refused => {
            portal.stats.bump(StatKind::InjectedFault);
            let mut resp =
                ApiError::missing_scopes(&[&read_scope(req.uri().path())]).into_response();
            rate_headers(resp.headers_mut(), &quota, caller.oauth);
            return resp;
        }
        FaultOutcome::RateLimited => {
            portal.stats.bump(StatKind::InjectedFault);
            let mut resp = ApiError::rate_limited("TEN_SECONDLY_ROLLING", 10).into_response();
            let q = super::rate_limit::Quota {
                remaining: 0,
                ..quota
            };
            rate_headers(resp.headers_mut(), &q, caller.oauth);
            return resp;
        }
    }
    let oauth = caller.oauth;
    req.extensions_mut().insert(caller);
    let mut resp = next.run(req).await;
    rate_headers(resp.headers_mut(), &quota, oauth);
    resp
}

/// The read scope a call under `path` needs (`crm.objects.contacts.read`), for a forced
/// refusal.
fn read_scope(path: &str) -> String {
    let object = path
        .split('/')
        .skip_while(|s| *s != "objects" && *s != "properties")
        .nth(1)
        .unwrap_or("contacts");
    format!("crm.objects.{object}.read")
}

/// 403 `MISSING_SCOPES` unless the caller's token has `scope`.
pub fn require_scope(caller: &Caller, scope: &str) -> Result<(), ApiError> {
    if caller.scopes.iter().any(|s| s == scope) {
        Ok(())
    } else {
        Err(ApiError::missing_scopes(&[scope]))
    }
}

async fn account_details(axum::Extension(caller): axum::Extension<Caller>) -> Response {
    let limits = super::state::lock(&caller.portal.limiter).limits();
    let offset = limits.utc_offset_minutes;
    let sign = if offset < 0 { '-' } else { '+' };
    let body = serde_json::json!({
        "portalId": caller.portal.id,
        "accountType": "STANDARD",
        "timeZone": "US/Eastern",
        "companyCurrency": "USD",
        "additionalCurrencies": [],
        "utcOffset": format!("{sign}{:02}:{:02}", offset.abs() / 60, offset.abs() % 60),
        "utcOffsetMilliseconds": offset * 60_000,
        "uiDomain": "app.hubspot.com",
        "dataHostingLocation": "na1",
    });
    super::errors::json_of(StatusCode::OK, &body)
}
