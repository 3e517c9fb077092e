//! The Salesforce REST API sandbox.
//!
//! A local server that real Salesforce clients can be pointed at (its base URL is the
//! `instance_url` of the tokens it issues). Start one with [`SalesforceSandbox::start`]:
//!
//! ```ignore
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let sf = SalesforceSandbox::start(SalesforceConfig::default(), listener).await?;
//! let tokens = sf.admin().issue_tokens("demo", None)?;
//! // GET {sf.base_url()}/services/data/v59.0/query?q=SELECT+Id+FROM+Account
//! sf.shutdown().await;
//! ```
//!
//! What it serves:
//! - OAuth: `GET /services/oauth2/authorize` (approves at once; sandbox-only parameters
//!   `org=<name>` picks the org, default `demo`, and `deny=true` simulates a refusal; PKCE
//!   supported), `POST /services/oauth2/token` (`authorization_code`, `refresh_token`; real
//!   body without `expires_in`, `issued_at` in ms, HMAC `signature`, optional refresh-token
//!   rotation per connected app, real `invalid_grant` errors), `/revoke`, `/userinfo`.
//! - Data under `/services/data/vXX.X/` (v31.0–v62.0): versions, resources, `limits`,
//!   global and sObject describe, `query`/`queryAll` with `nextRecordsUrl` paging and
//!   `Sforce-Query-Options: batchSize`, rows (CRUD), upsert by external id, `/updated`,
//!   `/deleted`, sObject Collections, `/composite` (≤ 25 subrequests with `@{ref.path}`
//!   references, counted as one call). Every data response carries
//!   `Sforce-Limit-Info: api-usage=N/M`.
//! - Admin under `/__admin/` (see [`admin`]), plus the in-process [`SalesforceAdmin`].
//!
//! Defaults: one org `demo` ([`DEMO_ORG`]), the connected app [`DEMO_CLIENT_ID`] /
//! [`DEMO_CLIENT_SECRET`] (redirect [`DEMO_REDIRECT_URI`] or any loopback URI).

pub mod admin;
pub mod api;
pub mod collections;
pub mod composite;
pub mod describe;
pub mod errors;
pub mod ids;
pub mod oauth;
pub mod org;
pub mod query;
pub mod schema;
pub mod sobjects;
pub mod soql;
pub mod store;
pub mod value;
pub mod write;

pub use admin::{NewField, OrgInfo, OrgStatsView, SalesforceAdmin, TokenPair};
pub use org::{
    ConnectedApp, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_ORG, DEMO_REDIRECT_URI, OrgConfig,
};

use crate::common::error::SandboxError;
use crate::common::serve::{ServerHandle, serve};
use crate::common::tls::LocalCa;
use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use org::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How to run a Salesforce sandbox.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// Seed of all generated data (per-org seeds derive from it unless set).
    pub seed: u64,
    /// Orgs to create at start (the first is the default for `authorize` without `org`).
    pub orgs: Vec<OrgConfig>,
    /// Serve HTTPS with a freshly generated local CA (see [`RunningSalesforce::ca_pem`]).
    pub tls: bool,
    /// Host name to put in the base URL (default: the listener's IP, `127.0.0.1` for any).
    pub public_host: Option<String>,
    /// End of the generated data window; records' stamps spread over the two years before.
    pub data_anchor: DateTime<Utc>,
}

impl Default for SalesforceConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            orgs: vec![OrgConfig::default()],
            tls: false,
            public_host: None,
            // Fixed so that a seed gives the same records on every day and machine.
            data_anchor: DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default(),
        }
    }
}

/// Entry point.
#[derive(Debug)]
pub struct SalesforceSandbox;

/// A running sandbox.
#[derive(Debug)]
pub struct RunningSalesforce {
    server: ServerHandle,
    shared: Arc<Shared>,
    ca_pem: Option<String>,
}

impl SalesforceSandbox {
    /// Starts serving on `listener` (bind `127.0.0.1:0` in tests).
    pub async fn start(
        config: SalesforceConfig,
        listener: TcpListener,
    ) -> Result<RunningSalesforce, SandboxError> {
        Self::start_with_shutdown(config, listener, CancellationToken::new()).await
    }

    /// Like [`SalesforceSandbox::start`], stopping when `shutdown` is cancelled.
    pub async fn start_with_shutdown(
        config: SalesforceConfig,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<RunningSalesforce, SandboxError> {
        let addr = listener.local_addr()?;
        let host = config
            .public_host
            .clone()
            .unwrap_or_else(|| match addr.ip() {
                ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            });
        let (tls, ca_pem) = if config.tls {
            let ca = LocalCa::generate("Syncline Salesforce Sandbox CA")?;
            let extra: Vec<String> = config.public_host.iter().cloned().collect();
            let material = ca.server_material(&extra)?;
            (Some(material.server_config), Some(material.ca_pem))
        } else {
            (None, None)
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://{host}:{}", addr.port());
        let mut orgs = config.orgs.clone();
        if orgs.is_empty() {
            orgs.push(OrgConfig::default());
        }
        let shared = Arc::new(Shared::new(
            config.seed,
            config.data_anchor.timestamp(),
            base_url,
            &orgs,
        ));
        let app = router(shared.clone());
        let server = serve(app, listener, tls, shutdown)?;
        tracing::info!(base_url = %shared.base_url, "salesforce sandbox listening");
        Ok(RunningSalesforce {
            server,
            shared,
            ca_pem,
        })
    }
}

impl RunningSalesforce {
    /// `http(s)://host:port`: the `instance_url` and the OAuth base.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The socket address served.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The local CA certificate (PEM) when serving TLS.
    #[must_use]
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// In-process admin handle.
    #[must_use]
    pub fn admin(&self) -> SalesforceAdmin {
        SalesforceAdmin::new(self.shared.clone())
    }

    /// Stops accepting, drains in-flight requests and waits.
    pub async fn shutdown(self) {
        self.server.stop().await;
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let data = Router::new()
        .route("/services/data/{version}", get(api::resources))
        .route("/services/data/{version}/", get(api::resources))
        .route("/services/data/{version}/limits", get(api::limits))
        .route("/services/data/{version}/limits/", get(api::limits))
        .route("/services/data/{version}/query", get(api::query))
        .route("/services/data/{version}/query/", get(api::query))
        .route(
            "/services/data/{version}/query/{locator}",
            get(api::query_more),
        )
        .route("/services/data/{version}/queryAll", get(api::query_all))
        .route("/services/data/{version}/queryAll/", get(api::query_all))
        .route(
            "/services/data/{version}/queryAll/{locator}",
            get(api::query_more),
        )
        .route(
            "/services/data/{version}/sobjects",
            get(describe::global_handler),
        )
        .route(
            "/services/data/{version}/sobjects/",
            get(describe::global_handler),
        )
        .route(
            "/services/data/{version}/sobjects/{object}",
            get(describe::basic_info_handler).post(sobjects::create),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/",
            get(describe::basic_info_handler).post(sobjects::create),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/describe",
            get(describe::describe_handler),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/describe/",
            get(describe::describe_handler),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/updated",
            get(sobjects::updated),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/updated/",
            get(sobjects::updated),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/deleted",
            get(sobjects::deleted),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/deleted/",
            get(sobjects::deleted),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/{id}",
            get(sobjects::get_record)
                .patch(sobjects::update)
                .delete(sobjects::delete),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/{field}/{value}",
            get(sobjects::get_record)
                .patch(sobjects::upsert)
                .delete(sobjects::delete_by_external_id),
        )
        .route(
            "/services/data/{version}/composite/sobjects",
            post(collections::create)
                .patch(collections::update)
                .delete(collections::delete),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{object}",
            get(collections::retrieve),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{object}/{field}",
            axum::routing::patch(collections::upsert),
        )
        .route(
            "/services/data/{version}/composite",
            post(composite::composite),
        )
        .route(
            "/services/data/{version}/composite/",
            post(composite::composite),
        )
        .layer(from_fn_with_state(shared.clone(), api::guard));
    let oauth = Router::new()
        .route("/services/oauth2/authorize", get(oauth::authorize))
        .route("/services/oauth2/token", post(oauth::token))
        .route(
            "/services/oauth2/revoke",
            post(oauth::revoke).get(oauth::revoke),
        )
        .route("/services/oauth2/userinfo", get(oauth::userinfo))
        .route("/id/{org}/{user}", get(oauth::userinfo))
        .route("/services/data", get(api::versions))
        .route("/services/data/", get(api::versions));
    let data = data.with_state(shared.clone());
    let _ = shared.data_router.set(data.clone());
    Router::new()
        .merge(data)
        .merge(oauth.with_state(shared.clone()))
        .merge(admin::router(SalesforceAdmin::new(shared)))
}
