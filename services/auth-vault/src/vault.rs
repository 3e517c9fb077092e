//! What every handler shares: the store, the data keys, the OAuth client and settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use secrecy::SecretString;
use syncline_config::{ServiceName, SynclineConfig};
use syncline_domain::{ApiError, ErrorCode};

use crate::crypto::{Keys, SYSTEM_PROJECT};
use crate::oauth::{OAuthClient, StateSigner};
use crate::store::Store;

/// Timing and addressing settings, from `auth_vault` and `gateway` configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Default `min_validity` of GetAccessToken.
    pub refresh_margin_ms: i64,
    /// Assumed lifetime of Salesforce access tokens.
    pub salesforce_lifetime_ms: i64,
    /// How long a started authorization may take.
    pub authorization_ttl_ms: i64,
    /// The gateway's OAuth callback, the default redirect URL of provider apps.
    pub callback_url: String,
    /// How long a refresh lease lasts: longer than any provider call may take.
    pub lease_ms: i64,
}

impl Settings {
    /// From the suite's configuration: the callback is on `gateway.public_url`, else on the
    /// gateway's listen address (loopback when it binds every interface).
    pub fn from_config(config: &SynclineConfig) -> Self {
        let base = match &config.gateway.public_url {
            Some(url) if !url.is_empty() => url.trim_end_matches('/').to_owned(),
            _ => {
                let mut addr = config.listen_addr(ServiceName::Gateway);
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
        };
        let vault = &config.auth_vault;
        let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        Self {
            refresh_margin_ms: ms(vault.refresh_margin_secs),
            salesforce_lifetime_ms: ms(vault.salesforce_session_lifetime_secs),
            authorization_ttl_ms: ms(vault.authorization_ttl_secs),
            callback_url: format!("{base}/oauth/callback"),
            lease_ms: i64::try_from(config.crm_http.timeout_ms)
                .unwrap_or(i64::MAX / 2)
                .saturating_add(15_000),
        }
    }
}

/// One async mutex per connection id: refreshes of a connection run one at a time in this
/// process; waiters then find the token already replaced.
#[derive(Debug, Default)]
pub struct RefreshLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl RefreshLocks {
    /// The lock of `connection_id`.
    pub fn of(&self, connection_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget locks nobody holds or waits for, so the map stays as small as the set of
        // connections being refreshed right now.
        if locks.len() > 1024 {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(connection_id.to_owned()).or_default().clone()
    }
}

/// The shared state of auth-vault's handlers.
#[derive(Debug)]
pub struct Vault {
    /// Provider apps and connections.
    pub store: Store,
    /// Data keys and sealing.
    pub keys: Keys,
    /// Calls providers' OAuth endpoints.
    pub oauth: OAuthClient,
    /// Signs `state`.
    pub signer: StateSigner,
    /// Timing and addressing.
    pub settings: Settings,
    /// Per-connection refresh locks.
    pub locks: RefreshLocks,
    /// This process, as the owner of refresh leases.
    pub instance_id: String,
    /// Wakes the lifecycle publisher when an event is written to the outbox.
    pub outbox_wake: Arc<tokio::sync::Notify>,
}

impl Vault {
    /// Builds the vault; the state-signing key is a system data key, shared by every vault
    /// process on the same database.
    pub async fn new(
        store: Store,
        keys: Keys,
        oauth: OAuthClient,
        settings: Settings,
    ) -> Result<Self, ApiError> {
        let secret = keys.data_key(SYSTEM_PROJECT, "oauth-state").await?;
        Ok(Self {
            store,
            keys,
            oauth,
            signer: StateSigner::new(&secret),
            settings,
            locks: RefreshLocks::default(),
            instance_id: format!("vault-{}", uuid::Uuid::new_v4().simple()),
            outbox_wake: Arc::default(),
        })
    }

    /// The decrypted client secret of a provider app of `project`.
    pub async fn client_secret(
        &self,
        project: &str,
        app_id: &str,
    ) -> Result<SecretString, ApiError> {
        let sealed = self
            .store
            .provider_app_secret(project, app_id)
            .await?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::FailedPrecondition,
                    "the provider app has no client secret",
                )
            })?;
        let plain = self
            .keys
            .open(project, "", &app_secret_aad(app_id), &sealed)
            .await?;
        let text =
            String::from_utf8(plain).map_err(|_| ApiError::internal("secret is not utf-8"))?;
        Ok(SecretString::from(text))
    }
}

/// Where a provider app's client secret is bound.
pub fn app_secret_aad(app_id: &str) -> String {
    format!("app:{app_id}:client_secret")
}
