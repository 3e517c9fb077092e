//! The HubSpot CRM v3 API sandbox.
//!
//! A local server that answers like `api.hubapi.com` closely enough that real client
//! libraries (e.g. `hubspot-api-client` with `host=` pointed here) work unchanged: OAuth,
//! objects (list/get/create/update/archive), search, batch, properties, schemas, rate limits
//! with HubSpot's headers and 429 bodies, error envelopes, and webhooks with v1/v3
//! signatures and HubSpot's retry rules. Several independent portals, each seeded lazily
//! from a seed number, plus an admin surface (in-process [`HubSpotAdmin`] and HTTP under
//! `/__admin/`) for record changes, schema changes and faults.
//!
//! ```ignore
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let hs = HubSpotSandbox::start(HubSpotConfig::default(), listener).await?;
//! let tokens = hs.admin().issue_tokens(DEMO_CLIENT_ID, DEMO_PORTAL_ID)?;
//! // GET {hs.base_url()}/crm/v3/objects/contacts with `Authorization: Bearer {access_token}`
//! hs.shutdown().await;
//! ```

pub mod admin;
pub mod batch;
pub mod catalog;
pub mod errors;
pub mod oauth;
pub mod objects;
pub mod properties;
pub mod rate_limit;
pub mod search;
pub mod server;
pub mod state;
pub mod store;
pub mod webhooks;

pub use admin::{HubSpotAdmin, PortalStats, QuotaPolicy, SchemaChange};
pub use oauth::TokenPair;
pub use rate_limit::RateLimits;
pub use state::{AppConfig, PortalConfig};
pub use store::{ChangeKind, ChangeRecord, ChangeSource, RecordCounts};
pub use webhooks::{
    DeliveryOutcome, DeliveryReport, RetryPolicy, Subscription, WebhookEvent, WebhookSettings,
};

use crate::common::{SandboxError, ServerHandle, TlsMaterial, serve};
use state::Shared;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use webhooks::WebhookEngine;

/// Hub id of the default demo portal.
pub const DEMO_PORTAL_ID: u64 = 44_237_313;
/// App id of the default demo app.
pub const DEMO_APP_ID: u64 = 4_210_286;
/// OAuth client id of the default demo app.
pub const DEMO_CLIENT_ID: &str = "syncline-demo-client";
/// OAuth client secret of the default demo app (also its webhook signing secret).
pub const DEMO_CLIENT_SECRET: &str = "syncline-demo-secret";

/// How to start a HubSpot sandbox.
#[derive(Debug, Clone)]
pub struct HubSpotConfig {
    /// Portals to create at start; the first is the default for `/oauth/authorize`.
    pub portals: Vec<PortalConfig>,
    /// Apps to register at start (the demo app is always registered unless replaced).
    pub apps: Vec<AppConfig>,
    /// Serve HTTPS with a fresh local CA (from `common::tls`).
    pub tls: bool,
}

impl Default for HubSpotConfig {
    fn default() -> Self {
        Self {
            portals: vec![PortalConfig {
                portal_id: DEMO_PORTAL_ID,
                ..PortalConfig::default()
            }],
            apps: Vec::new(),
            tls: false,
        }
    }
}

/// The demo app: any redirect URI, every CRM scope, no webhook target until one is set.
#[must_use]
pub fn demo_app() -> AppConfig {
    AppConfig {
        app_id: DEMO_APP_ID,
        client_id: DEMO_CLIENT_ID.to_owned(),
        client_secret: DEMO_CLIENT_SECRET.to_owned(),
        ..AppConfig::default()
    }
}

/// Entry point.
#[derive(Debug)]
pub struct HubSpotSandbox;

/// A running sandbox.
#[derive(Debug)]
pub struct RunningHubSpot {
    server: ServerHandle,
    shared: Arc<Shared>,
    base_url: String,
    tls: Option<TlsMaterial>,
}

impl HubSpotSandbox {
    /// Starts serving on `listener` (bind `127.0.0.1:0` in tests).
    pub async fn start(
        config: HubSpotConfig,
        listener: TcpListener,
    ) -> Result<RunningHubSpot, SandboxError> {
        let addr = listener.local_addr()?;
        let tls = if config.tls {
            Some(crate::common::tls::generate_local_tls()?)
        } else {
            None
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://{addr}");
        let shutdown = CancellationToken::new();
        let default_portal = config
            .portals
            .first()
            .map_or(DEMO_PORTAL_ID, |p| p.portal_id);
        let shared = Arc::new(Shared {
            portals: RwLock::new(HashMap::new()),
            default_portal,
            apps: RwLock::new(HashMap::new()),
            auth: Mutex::new(state::AuthState::default()),
            webhooks: WebhookEngine::new(shutdown.child_token()),
            base_url: RwLock::new(base_url.clone()),
        });
        for p in &config.portals {
            shared.add_portal(p).map_err(SandboxError::InvalidRequest)?;
        }
        shared.put_app(demo_app());
        for a in config.apps {
            shared.put_app(a);
        }
        if shared.portal(DEMO_PORTAL_ID).is_some() {
            shared.install(DEMO_APP_ID, DEMO_PORTAL_ID);
        }
        let router = server::router(Arc::clone(&shared));
        let server = serve(
            router,
            listener,
            tls.as_ref().map(|t| Arc::clone(&t.server_config)),
            shutdown,
        )?;
        tracing::info!(%base_url, "hubspot sandbox listening");
        Ok(RunningHubSpot {
            server,
            shared,
            base_url,
            tls,
        })
    }
}

impl RunningHubSpot {
    /// `http://127.0.0.1:PORT` (or `https://…` with TLS): use it as the client's host.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The local CA certificate (PEM) when serving HTTPS.
    #[must_use]
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// The in-process admin handle.
    #[must_use]
    pub fn admin(&self) -> HubSpotAdmin {
        HubSpotAdmin {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stops serving, stops webhook delivery, and waits for both.
    pub async fn shutdown(self) {
        self.shared.webhooks.close().await;
        self.server.stop().await;
    }
}
