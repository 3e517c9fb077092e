//! OAuth 2.0 web-server flow as Salesforce runs it: `/services/oauth2/authorize`,
//! `/services/oauth2/token` (authorization code, refresh token), `/revoke`, `/userinfo`.
//!
//! Sandbox specifics (documented in the module of the public API): the authorize endpoint
//! approves at once (no login page) and takes an extra `org` parameter naming the org to
//! connect (default: the demo org); `deny=true` simulates the user refusing.

use super::org::{AccessToken, AuthCode, ConnectedApp, DEMO_CLIENT_ID, Org, RefreshToken, Shared};
use crate::common::faults::lock;
use crate::common::stats::StatKind;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

type AppState = State<Arc<Shared>>;

fn oauth_error(error: &str, description: &str) -> Response {
    let mut r = (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache,must-revalidate,max-age=0,no-store,private"),
    );
    r
}

fn random_token(len: usize) -> String {
    const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in uuid::Uuid::new_v4().as_bytes() {
            if out.len() < len {
                out.push(A[(*b as usize) % A.len()] as char);
            }
        }
    }
    out
}

fn redirect_allowed(app: &ConnectedApp, uri: &str) -> bool {
    if app.redirect_uris.iter().any(|u| u == uri) {
        return true;
    }
    // The demo app accepts any loopback callback so tests can bind port 0.
    app.client_id == DEMO_CLIENT_ID
        && (uri.starts_with("http://127.0.0.1")
            || uri.starts_with("http://localhost")
            || uri.starts_with("https://127.0.0.1")
            || uri.starts_with("https://localhost"))
}

fn redirect_to(uri: &str, params: &[(&str, &str)]) -> Response {
    let mut url = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => {
            return oauth_error(
                "redirect_uri_mismatch",
                "redirect_uri must match configuration",
            );
        }
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(url.as_str()) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `GET /services/oauth2/authorize`.
pub async fn authorize(State(s): AppState, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let app = s
        .apps
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(get("client_id"))
        .cloned();
    let Some(app) = app else {
        return oauth_error("invalid_client_id", "client identifier invalid");
    };
    let redirect_uri = get("redirect_uri");
    if !redirect_allowed(&app, redirect_uri) {
        return oauth_error(
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        );
    }
    let state = get("state");
    let with_state = |mut p: Vec<(&'static str, String)>| {
        if !state.is_empty() {
            p.push(("state", state.to_owned()));
        }
        p
    };
    let send = |p: Vec<(&'static str, String)>| {
        let refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        redirect_to(redirect_uri, &refs)
    };
    if get("response_type") != "code" {
        return send(with_state(vec![
            ("error", "unsupported_response_type".into()),
            ("error_description", "response type not supported".into()),
        ]));
    }
    if get("deny") == "true" {
        return send(with_state(vec![
            ("error", "access_denied".into()),
            ("error_description", "end-user denied authorization".into()),
        ]));
    }
    let org_name = q
        .get("org")
        .cloned()
        .unwrap_or_else(|| super::org::DEMO_ORG.to_owned());
    if s.org(&org_name).is_none() {
        return send(with_state(vec![
            ("error", "invalid_request".into()),
            (
                "error_description",
                format!("unknown sandbox org: {org_name}"),
            ),
        ]));
    }
    let challenge = q.get("code_challenge").map(|c| {
        (
            c.clone(),
            q.get("code_challenge_method")
                .cloned()
                .unwrap_or_else(|| "plain".into()),
        )
    });
    let code = format!("aPrx{}", random_token(60));
    lock(&s.codes).insert(
        code.clone(),
        AuthCode {
            org: org_name,
            client_id: app.client_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            challenge,
            scope: q
                .get("scope")
                .cloned()
                .unwrap_or_else(|| "api refresh_token".into()),
            expires_at: Instant::now() + Duration::from_secs(15 * 60),
        },
    );
    send(with_state(vec![("code", code)]))
}

fn client_auth(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> (Option<String>, Option<String>) {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        && let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(basic.trim())
        && let Ok(text) = String::from_utf8(raw)
        && let Some((id, secret)) = text.split_once(':')
    {
        return (Some(id.to_owned()), Some(secret.to_owned()));
    }
    (
        form.get("client_id").cloned(),
        form.get("client_secret").cloned(),
    )
}

/// Issues an access token (and optionally a refresh token) and builds the real body.
fn token_body(
    s: &Shared,
    org: &Org,
    app: &ConnectedApp,
    scope: &str,
    refresh_token: Option<String>,
) -> Value {
    let access = format!("{}!AQ{}", &org.meta.org_id[..15], random_token(96));
    lock(&s.tokens).insert(
        access.clone(),
        AccessToken {
            org: org.meta.name.clone(),
            client_id: app.client_id.clone(),
            expires_at: Instant::now() + org.session_lifetime(),
        },
    );
    let id = format!("{}/id/{}/{}", s.base_url, org.meta.org_id, org.user_id);
    let issued_at = chrono::Utc::now().timestamp_millis().to_string();
    let signature = Hmac::<Sha256>::new_from_slice(app.client_secret.as_bytes())
        .map(|mut m| {
            m.update(id.as_bytes());
            m.update(issued_at.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
        })
        .unwrap_or_default();
    let mut body = serde_json::Map::new();
    body.insert("access_token".into(), Value::String(access));
    if let Some(r) = refresh_token {
        body.insert("refresh_token".into(), Value::String(r));
    }
    body.insert("signature".into(), Value::String(signature));
    body.insert("scope".into(), Value::String(scope.to_owned()));
    body.insert("instance_url".into(), Value::String(s.base_url.clone()));
    body.insert("id".into(), Value::String(id));
    body.insert("token_type".into(), Value::String("Bearer".into()));
    body.insert("issued_at".into(), Value::String(issued_at));
    Value::Object(body)
}

fn new_refresh_token(s: &Shared, org: &Org, app: &ConnectedApp, scope: &str) -> String {
    let token = format!("5Aep861{}", random_token(80));
    lock(&s.refresh_tokens).insert(
        token.clone(),
        RefreshToken {
            org: org.meta.name.clone(),
            client_id: app.client_id.clone(),
            scope: scope.to_owned(),
        },
    );
    token
}

fn ok_json(v: Value) -> Response {
    let mut r = Json(v).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache,must-revalidate,max-age=0,no-store,private"),
    );
    r
}

/// `POST /services/oauth2/token` (form-encoded).
pub async fn token(State(s): AppState, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let (client_id, client_secret) = client_auth(&headers, &form);
    let fail = |org: Option<&Org>, e: &str, d: &str| {
        if let Some(o) = org {
            o.stats.bump(StatKind::FailedGrant);
        }
        oauth_error(e, d)
    };
    let grant_type = form.get("grant_type").map(String::as_str).unwrap_or("");
    if !matches!(grant_type, "authorization_code" | "refresh_token") {
        return fail(None, "unsupported_grant_type", "grant type not supported");
    }
    let app = client_id.as_deref().and_then(|id| {
        s.apps
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    });
    let Some(app) = app else {
        return fail(None, "invalid_client_id", "client identifier invalid");
    };
    if client_secret
        .as_deref()
        .is_some_and(|sec| sec != app.client_secret)
    {
        return fail(None, "invalid_client", "invalid client credentials");
    }
    if grant_type == "authorization_code" {
        let code = form.get("code").map(String::as_str).unwrap_or("");
        let Some(ac) = lock(&s.codes).remove(code) else {
            return fail(None, "invalid_grant", "invalid authorization code");
        };
        let org = s.org(&ac.org);
        let org_ref = org.as_deref();
        if ac.client_id != app.client_id {
            return fail(org_ref, "invalid_grant", "invalid authorization code");
        }
        if Instant::now() >= ac.expires_at {
            return fail(org_ref, "invalid_grant", "expired authorization code");
        }
        if form.get("redirect_uri").map(String::as_str).unwrap_or("") != ac.redirect_uri {
            return fail(
                org_ref,
                "redirect_uri_mismatch",
                "redirect_uri must match configuration",
            );
        }
        match (&ac.challenge, form.get("code_verifier")) {
            (Some((challenge, method)), Some(verifier)) => {
                let computed = if method.eq_ignore_ascii_case("S256") {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(Sha256::digest(verifier.as_bytes()))
                } else {
                    verifier.clone()
                };
                if &computed != challenge {
                    return fail(org_ref, "invalid_grant", "invalid code verifier");
                }
            }
            (Some(_), None) => return fail(org_ref, "invalid_grant", "invalid code verifier"),
            (None, _) if client_secret.is_none() => {
                return fail(org_ref, "invalid_client", "invalid client credentials");
            }
            (None, _) => {}
        }
        let Some(org) = org else {
            return fail(None, "invalid_grant", "invalid authorization code");
        };
        let scope = ac.scope.clone();
        let refresh = scope
            .split_whitespace()
            .any(|x| x == "refresh_token" || x == "offline_access" || x == "full")
            .then(|| new_refresh_token(&s, &org, &app, &scope));
        org.stats.bump(StatKind::CodeGrant);
        return ok_json(token_body(&s, &org, &app, &scope, refresh));
    }
    // refresh_token grant
    let presented = form.get("refresh_token").map(String::as_str).unwrap_or("");
    let rt = lock(&s.refresh_tokens).get(presented).cloned();
    let Some(rt) = rt else {
        return fail(None, "invalid_grant", "expired access/refresh token");
    };
    let org = s.org(&rt.org);
    if rt.client_id != app.client_id {
        return fail(
            org.as_deref(),
            "invalid_grant",
            "expired access/refresh token",
        );
    }
    let Some(org) = org else {
        return fail(None, "invalid_grant", "expired access/refresh token");
    };
    let rotated = if app.rotate_refresh_tokens {
        lock(&s.refresh_tokens).remove(presented);
        Some(new_refresh_token(&s, &org, &app, &rt.scope))
    } else {
        None
    };
    org.stats.bump(StatKind::RefreshGrant);
    ok_json(token_body(&s, &org, &app, &rt.scope, rotated))
}

/// Form or query of `/services/oauth2/revoke`.
#[derive(Debug, Deserialize)]
pub struct RevokeParams {
    token: Option<String>,
}

/// `POST|GET /services/oauth2/revoke`: revokes an access or refresh token.
pub async fn revoke(
    State(s): AppState,
    Query(q): Query<RevokeParams>,
    body: axum::body::Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let Some(token) = form.get("token").cloned().or(q.token) else {
        return oauth_error("unsupported_token_type", "this token type is not supported");
    };
    let access = lock(&s.tokens).remove(&token);
    let refresh = lock(&s.refresh_tokens).remove(&token);
    let org = access
        .map(|a| a.org)
        .or_else(|| refresh.as_ref().map(|r| r.org.clone()));
    match org.and_then(|o| s.org(&o)) {
        Some(org) => {
            if refresh.is_some() {
                // Revoking a refresh token also ends the sessions it produced.
                s.expire_sessions(&org.meta.name);
            }
            org.stats.bump(StatKind::Revocation);
            StatusCode::OK.into_response()
        }
        None => oauth_error("invalid_token", "invalid token"),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("OAuth "))
        .map(str::trim)
}

/// `GET /services/oauth2/userinfo` and `GET /id/{org}/{user}`: the identity of the token.
pub async fn userinfo(State(s): AppState, headers: HeaderMap) -> Response {
    let Some(org) = bearer(&headers).and_then(|t| s.org_for_token(t)) else {
        let mut r = (StatusCode::FORBIDDEN, "Bad_OAuth_Token").into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        return r;
    };
    let id = format!("{}/id/{}/{}", s.base_url, org.meta.org_id, org.user_id);
    ok_json(json!({
        "sub": id,
        "user_id": org.user_id,
        "organization_id": org.meta.org_id,
        "preferred_username": format!("integration@{}.sandbox", org.meta.name),
        "nickname": "integration",
        "name": "Integration User",
        "email": format!("integration@{}.sandbox", org.meta.name),
        "email_verified": true,
        "zoneinfo": "America/Los_Angeles",
        "locale": "en_US",
        "active": true,
        "user_type": "STANDARD",
        "urls": {
            "rest": format!("{}/services/data/v{{version}}/", s.base_url),
            "sobjects": format!("{}/services/data/v{{version}}/sobjects/", s.base_url),
            "query": format!("{}/services/data/v{{version}}/query/", s.base_url),
        },
    }))
}
