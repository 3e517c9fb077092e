//! The embedded self-serve mapping page.
//!
//! The product's backend mints a short-lived token scoped to one tenant
//! (`syncline.embed.v1.EmbedService/CreateEmbedToken`, [`service`]); the customer's admin
//! opens `/embed/#token=…` (in an iframe or a window) and, in four steps, connects their
//! CRM, picks objects, maps fields from *their* discovered schema (custom fields included,
//! problems from the mapping service's validation shown next to each field) with picklist
//! value maps, and saves. The page is static HTML/CSS/JS compiled into the binary; it talks
//! to a JSON API under `/embed/api/` ([`api`]) that accepts the embed token and nothing
//! else, and that the gateway turns into gRPC calls as the token's tenant.
//!
//! Headers: a strict CSP (scripts and styles from the gateway only, no inline script,
//! `connect-src 'self'`), `frame-ancestors` from `gateway.embed.frame_ancestors`,
//! `no-referrer`, `no-store`.

pub(crate) mod api;
pub(crate) mod backend;
pub(crate) mod service;
pub mod token;
pub(crate) mod view;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use syncline_config::EmbedConfig;

use crate::Gateway;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const CONNECTED_HTML: &str = include_str!("assets/connected.html");
const CONNECTED_JS: &str = include_str!("assets/connected.js");

/// The page's settings, from `gateway.embed` and the gateway's public URL.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Where browsers reach the gateway (`https://sync.example.com`), no trailing slash.
    pub base_url: String,
    pub default_ttl: Duration,
    pub max_ttl: Duration,
    /// The full `Content-Security-Policy` of the page's documents.
    pub csp: HeaderValue,
}

impl Settings {
    /// From the configuration; `base_url` is `gateway.public_url`, else the bound address.
    pub(crate) fn new(config: &EmbedConfig, base_url: String) -> Self {
        let ancestors = if config.frame_ancestors.is_empty() {
            "'none'".to_owned()
        } else {
            config.frame_ancestors.join(" ")
        };
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'none'; base-uri 'none'; \
             frame-ancestors {ancestors}"
        );
        Self {
            base_url,
            default_ttl: Duration::from_secs(config.token_ttl_secs),
            max_ttl: Duration::from_secs(config.max_token_ttl_secs),
            csp: HeaderValue::from_str(&csp).unwrap_or_else(|_| {
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")
            }),
        }
    }
}

/// Headers every page response carries.
pub(crate) fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

fn asset(gateway: &Gateway, content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, gateway.embed.csp.clone());
    no_store(headers);
    response
}

/// The page's routes, to merge into the gateway's router.
pub(crate) fn routes() -> Router<Arc<Gateway>> {
    use axum::extract::State;
    Router::new()
        .route(
            "/embed/",
            get(|State(g): State<Arc<Gateway>>| async move {
                asset(&g, "text/html; charset=utf-8", INDEX_HTML)
            }),
        )
        .route(
            "/embed",
            get(|| async {
                let mut response = axum::http::StatusCode::PERMANENT_REDIRECT.into_response();
                response
                    .headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_static("/embed/"));
                response
            }),
        )
        .route(
            "/embed/app.js",
            get(|State(g): State<Arc<Gateway>>| async move {
                asset(&g, "text/javascript; charset=utf-8", APP_JS)
            }),
        )
        .route(
            "/embed/app.css",
            get(|State(g): State<Arc<Gateway>>| async move {
                asset(&g, "text/css; charset=utf-8", APP_CSS)
            }),
        )
        .route(
            "/embed/connected",
            get(|State(g): State<Arc<Gateway>>| async move {
                asset(&g, "text/html; charset=utf-8", CONNECTED_HTML)
            }),
        )
        .route(
            "/embed/connected.js",
            get(|State(g): State<Arc<Gateway>>| async move {
                asset(&g, "text/javascript; charset=utf-8", CONNECTED_JS)
            }),
        )
        .route("/embed/api/session", get(api::session))
        .route("/embed/api/connect", post(api::connect))
        .route("/embed/api/connections/{id}", get(api::connection))
        .route("/embed/api/connections/{id}/setup", get(api::setup))
        .route(
            "/embed/api/connections/{id}/objects",
            put(api::save_objects),
        )
        .route(
            "/embed/api/connections/{id}/crm-objects/{name}",
            get(api::crm_object_detail),
        )
        .route("/embed/api/connections/{id}/validate", post(api::validate))
        .route("/embed/api/connections/{id}/mappings", post(api::save))
        .route("/embed/api/{*rest}", axum::routing::any(api::unknown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_no_inline_script_and_frames_only_the_allow_list() {
        let config = EmbedConfig {
            frame_ancestors: vec!["'self'".into(), "https://app.example.com".into()],
            ..EmbedConfig::default()
        };
        let settings = Settings::new(&config, "https://sync.example.com".into());
        let csp = settings.csp.to_str().unwrap();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(
            csp.ends_with("frame-ancestors 'self' https://app.example.com"),
            "{csp}"
        );
        let nobody = Settings::new(
            &EmbedConfig {
                frame_ancestors: Vec::new(),
                ..EmbedConfig::default()
            },
            String::new(),
        );
        assert!(
            nobody
                .csp
                .to_str()
                .unwrap()
                .ends_with("frame-ancestors 'none'")
        );
    }

    #[test]
    fn the_pages_load_their_code_from_files_only() {
        for html in [INDEX_HTML, CONNECTED_HTML] {
            assert_eq!(html.matches("<script").count(), 1, "{html}");
            let handler = html.match_indices(" on").any(|(at, _)| {
                let rest = &html[at + 3..];
                let name = rest.len() - rest.trim_start_matches(char::is_alphabetic).len();
                name > 0 && rest[name..].starts_with('=')
            });
            assert!(!handler, "no inline event handlers");
            assert!(!html.contains("style="), "no inline styles");
        }
        assert!(
            !APP_JS.contains("innerHTML"),
            "the page builds DOM from text only"
        );
    }
}
