//! The sandbox's shared state: portals, registered apps, OAuth grants and tokens.

use super::errors::ApiError;
use super::rate_limit::{RateLimiter, RateLimits};
use super::store::{ChangeRecord, PortalData, RecordCounts};
use super::webhooks::{WebhookEngine, WebhookSettings};
use crate::common::{FaultConfig, FaultInjector, OrgStats};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Access-token lifetime, as HubSpot: 30 minutes.
pub const ACCESS_TOKEN_SECONDS: i64 = 1800;

/// Locks a mutex, recovering the data of a poisoned one (a panicking handler must not take
/// the whole sandbox down with it).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Read-locks, recovering from poisoning.
pub fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Write-locks, recovering from poisoning.
pub fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How to create a portal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PortalConfig {
    /// Hub id; must be unique in the sandbox.
    pub portal_id: u64,
    /// Seed of the portal's data (with the portal id).
    pub seed: u64,
    /// Seeded record counts.
    pub counts: RecordCounts,
    /// Rate limits.
    pub limits: RateLimits,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            portal_id: 0,
            seed: 1,
            counts: RecordCounts::default(),
            limits: RateLimits::default(),
        }
    }
}

/// One portal (HubSpot account) of the sandbox.
#[derive(Debug)]
pub struct Portal {
    /// Hub id.
    pub id: u64,
    /// Seed.
    pub seed: u64,
    /// Records, schemas and change log.
    pub data: RwLock<PortalData>,
    /// Rate-limit counters.
    pub limiter: Mutex<RateLimiter>,
    /// Seeded fault decisions.
    pub faults: FaultInjector,
    /// Counters for tests.
    pub stats: OrgStats,
    /// The portal's private-app token (daily-limit headers are sent for it).
    pub private_app_token: String,
}

impl Portal {
    fn new(config: &PortalConfig) -> Self {
        let token_seed = crate::common::derive_seed(
            config.seed,
            &["private-app", &config.portal_id.to_string()],
        );
        Self {
            id: config.portal_id,
            seed: config.seed,
            data: RwLock::new(PortalData::seeded(
                config.seed,
                config.portal_id,
                &config.counts,
            )),
            limiter: Mutex::new(RateLimiter::new(config.limits)),
            faults: FaultInjector::new(FaultConfig {
                seed: config.seed,
                ..FaultConfig::default()
            }),
            stats: OrgStats::default(),
            private_app_token: format!(
                "pat-na1-{}",
                uuid::Uuid::from_u64_pair(token_seed, config.portal_id)
            ),
        }
    }
}

/// A registered OAuth app.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AppConfig {
    /// App id (`appId` in webhook events).
    pub app_id: u64,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret (also signs webhooks).
    pub client_secret: String,
    /// Allowed redirect URIs (exact match); empty allows any.
    pub redirect_uris: Vec<String>,
    /// Scopes granted to tokens.
    pub scopes: Vec<String>,
    /// Webhook target and subscriptions.
    pub webhooks: Option<WebhookSettings>,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            app_id: 0,
            client_id: String::new(),
            client_secret: String::new(),
            redirect_uris: Vec::new(),
            scopes: default_scopes(),
            webhooks: None,
        }
    }
}

/// The scopes the demo app has.
#[must_use]
pub fn default_scopes() -> Vec<String> {
    [
        "oauth",
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.objects.companies.read",
        "crm.objects.companies.write",
        "crm.objects.deals.read",
        "crm.objects.deals.write",
        "crm.objects.custom.read",
        "crm.objects.custom.write",
        "crm.schemas.contacts.read",
        "crm.schemas.companies.read",
        "crm.schemas.deals.read",
        "crm.schemas.custom.read",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// An issued authorization code.
#[derive(Debug, Clone)]
pub struct CodeGrant {
    /// App.
    pub client_id: String,
    /// Portal.
    pub portal_id: u64,
    /// Redirect URI it was issued for.
    pub redirect_uri: String,
    /// Expiry, epoch ms.
    pub expires_ms: i64,
}

/// An issued access token.
#[derive(Debug, Clone)]
pub struct AccessGrant {
    /// App.
    pub client_id: String,
    /// App id.
    pub app_id: u64,
    /// Portal.
    pub portal_id: u64,
    /// Expiry, epoch ms.
    pub expires_ms: i64,
    /// Scopes.
    pub scopes: Vec<String>,
}

/// An issued refresh token.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    /// App.
    pub client_id: String,
    /// Portal.
    pub portal_id: u64,
    /// Revoked by the user, the app or a fault.
    pub revoked: bool,
}

/// OAuth state.
#[derive(Debug, Default)]
pub struct AuthState {
    /// Outstanding authorization codes.
    pub codes: HashMap<String, CodeGrant>,
    /// Access tokens.
    pub access: HashMap<String, AccessGrant>,
    /// Refresh tokens.
    pub refresh: HashMap<String, RefreshGrant>,
    /// (app id, portal id) pairs where the app is installed.
    pub installs: HashSet<(u64, u64)>,
}

/// Who is calling, resolved from the bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The portal the token belongs to.
    pub portal: Arc<Portal>,
    /// Rate-limit key (app client id, or `private-app`).
    pub app_key: String,
    /// OAuth (true) or private-app token.
    pub oauth: bool,
    /// Scopes of the token.
    pub scopes: Vec<String>,
}

/// The whole sandbox.
#[derive(Debug)]
pub struct Shared {
    /// Portals by id.
    pub portals: RwLock<HashMap<u64, Arc<Portal>>>,
    /// The portal authorize uses without a `portal` parameter.
    pub default_portal: u64,
    /// Apps by client id.
    pub apps: RwLock<HashMap<String, AppConfig>>,
    /// OAuth state.
    pub auth: Mutex<AuthState>,
    /// Webhook delivery.
    pub webhooks: WebhookEngine,
    /// Public base URL (for `paging.next.link` and record `url`s are not sent).
    pub base_url: RwLock<String>,
}

impl Shared {
    /// The portal with this id.
    pub fn portal(&self, id: u64) -> Option<Arc<Portal>> {
        read(&self.portals).get(&id).cloned()
    }

    /// Adds a portal; fails when the id is taken.
    pub fn add_portal(&self, config: &PortalConfig) -> Result<Arc<Portal>, String> {
        let mut portals = write(&self.portals);
        if portals.contains_key(&config.portal_id) {
            return Err(format!("portal {} already exists", config.portal_id));
        }
        let portal = Arc::new(Portal::new(config));
        portals.insert(config.portal_id, Arc::clone(&portal));
        Ok(portal)
    }

    /// Registers or replaces an app.
    pub fn put_app(&self, app: AppConfig) {
        write(&self.apps).insert(app.client_id.clone(), app);
    }

    /// Marks `app_id` as installed on `portal_id` (webhooks flow from then on).
    pub fn install(&self, app_id: u64, portal_id: u64) {
        lock(&self.auth).installs.insert((app_id, portal_id));
    }

    /// Resolves a bearer token into a caller, or the 401 HubSpot would send.
    pub fn authenticate(&self, token: Option<&str>, now_ms: i64) -> Result<Caller, ApiError> {
        let token = token.ok_or_else(ApiError::missing_authentication)?;
        if token.starts_with("pat-") {
            let portal = read(&self.portals)
                .values()
                .find(|p| p.private_app_token == token)
                .cloned()
                .ok_or_else(ApiError::missing_authentication)?;
            return Ok(Caller {
                portal,
                app_key: "private-app".to_owned(),
                oauth: false,
                scopes: default_scopes(),
            });
        }
        let grant = lock(&self.auth)
            .access
            .get(token)
            .cloned()
            .ok_or_else(ApiError::missing_authentication)?;
        if grant.expires_ms <= now_ms {
            return Err(ApiError::expired_authentication(
                now_ms - grant.expires_ms,
                &super::catalog::iso_ms(grant.expires_ms),
            ));
        }
        let portal = self
            .portal(grant.portal_id)
            .ok_or_else(ApiError::missing_authentication)?;
        Ok(Caller {
            portal,
            app_key: grant.client_id,
            oauth: true,
            scopes: grant.scopes,
        })
    }

    /// Records a change and hands it to webhook delivery.
    pub fn publish(&self, portal_id: u64, change: ChangeRecord) {
        let targets: Vec<AppConfig> = {
            let installs = lock(&self.auth).installs.clone();
            read(&self.apps)
                .values()
                .filter(|a| a.webhooks.is_some() && installs.contains(&(a.app_id, portal_id)))
                .cloned()
                .collect()
        };
        for app in targets {
            self.webhooks.enqueue(&app, portal_id, &change);
        }
    }
}
