//! The local CRM sandboxes `syncline up` runs beside the suite, so a new user can connect a
//! "Salesforce org" and a "HubSpot portal" with nothing else installed.

use std::net::SocketAddr;

use syncline_config::SandboxConfig;
use syncline_crm_sandbox::hubspot::{self, HubSpotConfig, HubSpotSandbox, RunningHubSpot};
use syncline_crm_sandbox::salesforce::{
    self, RunningSalesforce, SalesforceConfig, SalesforceSandbox,
};
use tokio::net::TcpListener;

/// Both running sandboxes.
#[derive(Debug)]
pub struct Sandboxes {
    /// The Salesforce sandbox (org `demo`).
    pub salesforce: RunningSalesforce,
    /// The HubSpot sandbox (the demo portal).
    pub hubspot: RunningHubSpot,
}

/// Errors starting the sandboxes.
#[derive(Debug, thiserror::Error)]
pub enum SandboxStartError {
    /// A port could not be bound.
    #[error("failed to bind the {which} sandbox on {addr}: {source}")]
    Bind {
        /// Which sandbox.
        which: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A sandbox failed to start.
    #[error("failed to start the {which} sandbox: {reason}")]
    Start {
        /// Which sandbox.
        which: &'static str,
        /// Why.
        reason: String,
    },
}

async fn bind(which: &'static str, port: u16) -> Result<TcpListener, SandboxStartError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpListener::bind(addr)
        .await
        .map_err(|source| SandboxStartError::Bind {
            which,
            addr,
            source,
        })
}

/// Starts both sandboxes with the demo org and portal seeded from `config.seed`.
pub async fn start(config: &SandboxConfig) -> Result<Sandboxes, SandboxStartError> {
    let salesforce = SalesforceSandbox::start(
        SalesforceConfig {
            seed: config.seed,
            ..SalesforceConfig::default()
        },
        bind("salesforce", config.salesforce_port).await?,
    )
    .await
    .map_err(|e| SandboxStartError::Start {
        which: "salesforce",
        reason: e.to_string(),
    })?;
    let mut hubspot_config = HubSpotConfig::default();
    for portal in &mut hubspot_config.portals {
        portal.seed = config.seed;
    }
    let hubspot =
        HubSpotSandbox::start(hubspot_config, bind("hubspot", config.hubspot_port).await?)
            .await
            .map_err(|e| SandboxStartError::Start {
                which: "hubspot",
                reason: e.to_string(),
            })?;
    Ok(Sandboxes {
        salesforce,
        hubspot,
    })
}

impl Sandboxes {
    /// Lines describing where the sandboxes listen and their demo credentials.
    pub fn describe(&self) -> Vec<String> {
        vec![
            format!(
                "  {:<18} {}  (org `{}`, demo app client id {} / secret {})",
                "salesforce sandbox",
                self.salesforce.base_url(),
                salesforce::DEMO_ORG,
                salesforce::DEMO_CLIENT_ID,
                salesforce::DEMO_CLIENT_SECRET,
            ),
            format!(
                "  {:<18} {}  (portal {}, demo app client id {} / secret {})",
                "hubspot sandbox",
                self.hubspot.base_url(),
                hubspot::DEMO_PORTAL_ID,
                hubspot::DEMO_CLIENT_ID,
                hubspot::DEMO_CLIENT_SECRET,
            ),
        ]
    }

    /// Stops both.
    pub async fn shutdown(self) {
        self.salesforce.shutdown().await;
        self.hubspot.shutdown().await;
    }
}
