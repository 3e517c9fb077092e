//! HubSpot OAuth: an auto-approving authorize endpoint and the token endpoints.
//!
//! `GET /oauth/authorize?client_id&redirect_uri&scope&state[&portal=<hub id>]` approves at
//! once and redirects to `redirect_uri?code=…&state=…`. The `portal` parameter is a sandbox
//! extension choosing the portal that "installs" the app; without it the default demo portal
//! is used. `POST /oauth/v1/token` (and `/oauth/v3/token`, `/oauth/2026-03/token`) exchange
//! codes and refresh tokens for access tokens living 1800 s. Refresh tokens do not rotate,
//! as on HubSpot. Token errors use HubSpot's `{status:"BAD_…", message}` bodies.

use super::errors::{ApiError, json_of};
use super::state::{
    ACCESS_TOKEN_SECONDS, AccessGrant, CodeGrant, RefreshGrant, Shared, lock, read,
};
use super::store::now_ms;
use crate::common::stats::StatKind;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Authorization codes live 10 minutes.
const CODE_MS: i64 = 10 * 60 * 1000;

fn form(bytes: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

fn random_token(prefix: &str) -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    format!("{prefix}{}{}", a.simple(), b.simple())
}

/// A successful token exchange.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TokenPair {
    /// Bearer token for API calls.
    pub access_token: String,
    /// Long-lived refresh token.
    pub refresh_token: String,
    /// Seconds until the access token expires (1800).
    pub expires_in: i64,
    /// Portal (hub id) the tokens belong to.
    pub hub_id: u64,
}

/// `GET /oauth/authorize`: auto-approves and redirects with `code` and `state`.
pub async fn authorize(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let q = form(query.unwrap_or_default().as_bytes());
    let bad = |msg: &str| (StatusCode::BAD_REQUEST, msg.to_owned()).into_response();
    let Some(client_id) = q.get("client_id") else {
        return bad("missing client_id");
    };
    let Some(redirect_uri) = q.get("redirect_uri") else {
        return bad("missing redirect_uri");
    };
    let Some(app) = read(&shared.apps).get(client_id).cloned() else {
        return bad("unknown client_id");
    };
    if !app.redirect_uris.is_empty() && !app.redirect_uris.contains(redirect_uri) {
        return bad("redirect_uri does not match any registered redirect uri");
    }
    let portal_id = match q.get("portal").map(|p| p.parse::<u64>()) {
        None => shared.default_portal,
        Some(Ok(p)) => p,
        Some(Err(_)) => return bad("portal must be a hub id"),
    };
    if shared.portal(portal_id).is_none() {
        return bad("unknown portal");
    }
    let code = uuid::Uuid::new_v4().to_string();
    lock(&shared.auth).codes.insert(
        code.clone(),
        CodeGrant {
            client_id: client_id.clone(),
            portal_id,
            redirect_uri: redirect_uri.clone(),
            expires_ms: now_ms() + CODE_MS,
        },
    );
    let mut location =
        url::Url::parse(redirect_uri).map_or_else(|_| redirect_uri.clone(), |u| u.to_string());
    location.push(if location.contains('?') { '&' } else { '?' });
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    ser.append_pair("code", &code);
    if let Some(state) = q.get("state") {
        ser.append_pair("state", state);
    }
    location.push_str(&ser.finish());
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// `POST /oauth/v1/token`.
pub async fn token_v1(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    token(&shared, &form(&body), false)
}

/// `POST /oauth/v3/token` and `/oauth/2026-03/token`: same grants, with `hub_id`, `user_id`
/// and `scopes` in the answer.
pub async fn token_v3(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    token(&shared, &form(&body), true)
}

fn token(shared: &Shared, f: &HashMap<String, String>, v3: bool) -> Response {
    match exchange(shared, f) {
        Ok((pair, scopes)) => {
            let mut body = serde_json::json!({
                "token_type": "bearer",
                "refresh_token": pair.refresh_token,
                "access_token": pair.access_token,
                "expires_in": pair.expires_in,
            });
            if v3 && let Some(obj) = body.as_object_mut() {
                obj.insert("hub_id".into(), pair.hub_id.into());
                obj.insert("user_id".into(), user_id(pair.hub_id).into());
                obj.insert("scopes".into(), scopes.into());
                obj.insert("token_use".into(), "access".into());
            }
            json_of(StatusCode::OK, &body)
        }
        Err((portal, e)) => {
            if let Some(p) = portal.and_then(|id| shared.portal(id)) {
                p.stats.bump(StatKind::FailedGrant);
            }
            e.into_response()
        }
    }
}

fn user_id(hub_id: u64) -> u64 {
    76_000_000 + hub_id % 1_000_000
}

type Failure = (Option<u64>, ApiError);

fn exchange(
    shared: &Shared,
    f: &HashMap<String, String>,
) -> Result<(TokenPair, Vec<String>), Failure> {
    let grant_type = f.get("grant_type").map(String::as_str).unwrap_or_default();
    let client_id = f.get("client_id").cloned().unwrap_or_default();
    let app = read(&shared.apps).get(&client_id).cloned();
    let fail = |portal: Option<u64>, code: &str, msg: &str| (portal, ApiError::oauth(code, msg));
    match grant_type {
        "authorization_code" => {
            let code = f.get("code").cloned().unwrap_or_default();
            let grant = lock(&shared.auth).codes.get(&code).cloned();
            let Some(grant) = grant else {
                return Err(fail(None, "BAD_AUTH_CODE", "missing or unknown auth code"));
            };
            let Some(app) = app.filter(|a| a.client_id == grant.client_id) else {
                return Err(fail(
                    Some(grant.portal_id),
                    "BAD_CLIENT_ID",
                    "missing or invalid client id",
                ));
            };
            if f.get("client_secret") != Some(&app.client_secret) {
                return Err(fail(
                    Some(grant.portal_id),
                    "BAD_CLIENT_SECRET",
                    "missing or invalid client secret",
                ));
            }
            if f.get("redirect_uri") != Some(&grant.redirect_uri) {
                return Err(fail(
                    Some(grant.portal_id),
                    "BAD_REDIRECT_URI",
                    "redirect_uri does not match initial redirect_uri",
                ));
            }
            if grant.expires_ms <= now_ms() {
                lock(&shared.auth).codes.remove(&code);
                return Err(fail(
                    Some(grant.portal_id),
                    "EXPIRED_AUTH_CODE",
                    "auth code is expired",
                ));
            }
            lock(&shared.auth).codes.remove(&code);
            let pair = issue(
                shared,
                &app.client_id,
                app.app_id,
                grant.portal_id,
                &app.scopes,
                None,
            );
            shared.install(app.app_id, grant.portal_id);
            if let Some(p) = shared.portal(grant.portal_id) {
                p.stats.bump(StatKind::CodeGrant);
            }
            Ok((pair, app.scopes))
        }
        "refresh_token" => {
            let token = f.get("refresh_token").cloned().unwrap_or_default();
            let grant = lock(&shared.auth).refresh.get(&token).cloned();
            let portal = grant.as_ref().map(|g| g.portal_id);
            let Some(grant) = grant.filter(|g| !g.revoked) else {
                return Err(fail(
                    portal,
                    "BAD_REFRESH_TOKEN",
                    "missing or invalid refresh token",
                ));
            };
            let Some(app) = app.filter(|a| a.client_id == grant.client_id) else {
                return Err(fail(
                    portal,
                    "BAD_CLIENT_ID",
                    "missing or invalid client id",
                ));
            };
            if f.get("client_secret") != Some(&app.client_secret) {
                return Err(fail(
                    portal,
                    "BAD_CLIENT_SECRET",
                    "missing or invalid client secret",
                ));
            }
            let pair = issue(
                shared,
                &app.client_id,
                app.app_id,
                grant.portal_id,
                &app.scopes,
                Some(token),
            );
            if let Some(p) = shared.portal(grant.portal_id) {
                p.stats.bump(StatKind::RefreshGrant);
            }
            Ok((pair, app.scopes))
        }
        _ => Err(fail(
            None,
            "BAD_GRANT_TYPE",
            "missing or invalid grant type",
        )),
    }
}

/// Issues an access token (and a refresh token unless one is being reused).
pub(crate) fn issue(
    shared: &Shared,
    client_id: &str,
    app_id: u64,
    portal_id: u64,
    scopes: &[String],
    refresh: Option<String>,
) -> TokenPair {
    let access_token = random_token("CO");
    let refresh_token = refresh.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut auth = lock(&shared.auth);
    auth.access.insert(
        access_token.clone(),
        AccessGrant {
            client_id: client_id.to_owned(),
            app_id,
            portal_id,
            expires_ms: now_ms() + ACCESS_TOKEN_SECONDS * 1000,
            scopes: scopes.to_vec(),
        },
    );
    auth.refresh
        .entry(refresh_token.clone())
        .or_insert_with(|| RefreshGrant {
            client_id: client_id.to_owned(),
            portal_id,
            revoked: false,
        });
    TokenPair {
        access_token,
        refresh_token,
        expires_in: ACCESS_TOKEN_SECONDS,
        hub_id: portal_id,
    }
}

fn not_found(what: &str) -> Response {
    ApiError::standard(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!("{what} not found"),
    )
    .into_response()
}

/// `GET /oauth/v1/access-tokens/{token}`: token metadata.
pub async fn access_token_info(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
) -> Response {
    let Some(g) = lock(&shared.auth).access.get(&token).cloned() else {
        return not_found("access token");
    };
    let remaining = ((g.expires_ms - now_ms()) / 1000).max(0);
    if remaining == 0 {
        return ApiError::expired_authentication(
            now_ms() - g.expires_ms,
            &super::catalog::iso_ms(g.expires_ms),
        )
        .into_response();
    }
    json_of(
        StatusCode::OK,
        &serde_json::json!({
            "token": token,
            "user": format!("demo-user@portal{}.example.com", g.portal_id),
            "hub_domain": format!("portal{}.example.com", g.portal_id),
            "scopes": g.scopes,
            "hub_id": g.portal_id,
            "app_id": g.app_id,
            "expires_in": remaining,
            "user_id": user_id(g.portal_id),
            "token_type": "access",
        }),
    )
}

/// `GET /oauth/v1/refresh-tokens/{token}`: token metadata.
pub async fn refresh_token_info(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
) -> Response {
    let Some(g) = lock(&shared.auth)
        .refresh
        .get(&token)
        .cloned()
        .filter(|g| !g.revoked)
    else {
        return not_found("refresh token");
    };
    let scopes = read(&shared.apps)
        .get(&g.client_id)
        .map(|a| a.scopes.clone())
        .unwrap_or_default();
    json_of(
        StatusCode::OK,
        &serde_json::json!({
            "token": token,
            "user": format!("demo-user@portal{}.example.com", g.portal_id),
            "hub_domain": format!("portal{}.example.com", g.portal_id),
            "scopes": scopes,
            "hub_id": g.portal_id,
            "client_id": g.client_id,
            "user_id": user_id(g.portal_id),
            "token_type": "refresh",
        }),
    )
}

/// `DELETE /oauth/v1/refresh-tokens/{token}`: revokes (204).
pub async fn revoke_refresh_token(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
) -> Response {
    let portal = {
        let mut auth = lock(&shared.auth);
        match auth.refresh.get_mut(&token) {
            Some(g) if !g.revoked => {
                g.revoked = true;
                Some(g.portal_id)
            }
            _ => None,
        }
    };
    match portal {
        Some(p) => {
            if let Some(p) = shared.portal(p) {
                p.stats.bump(StatKind::Revocation);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found("refresh token"),
    }
}
