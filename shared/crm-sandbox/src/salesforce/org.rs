//! Orgs, connected apps and tokens: the sandbox's shared state.

use super::query::Cursors;
use super::schema::{Schema, default_counts, default_schema};
use super::store::{OrgData, OrgMeta};
use crate::common::faults::{FaultInjector, lock};
use crate::common::rng::derive_seed;
use crate::common::stats::OrgStats;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Name of the org every sandbox starts with.
pub const DEMO_ORG: &str = "demo";
/// Client id of the connected app every sandbox starts with.
pub const DEMO_CLIENT_ID: &str = "3MVG9sandboxDemoClientId";
/// Client secret of the demo connected app.
pub const DEMO_CLIENT_SECRET: &str = "sandbox-demo-secret";
/// Redirect URI registered for the demo app (any `http://127.0.0.1` / `localhost` URI is
/// accepted for it too).
pub const DEMO_REDIRECT_URI: &str = "http://localhost:8080/oauth/callback";

/// How one org is set up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrgConfig {
    /// Org name (tenant slug): used by the authorize endpoint's `org` parameter and admin routes.
    pub name: String,
    /// Data seed; `None` derives one from the sandbox seed and the org name.
    pub seed: Option<u64>,
    /// Record counts per object (objects not listed keep their defaults).
    pub counts: Vec<(String, u64)>,
    /// Access-token lifetime (Salesforce's session timeout; not announced to clients).
    pub session_lifetime_secs: u64,
    /// Daily API request allowance (`DailyApiRequests.Max`).
    pub daily_api_limit: u64,
}

impl Default for OrgConfig {
    fn default() -> Self {
        Self {
            name: DEMO_ORG.to_owned(),
            seed: None,
            counts: Vec::new(),
            session_lifetime_secs: 2 * 3600,
            daily_api_limit: 100_000,
        }
    }
}

/// A connected app (OAuth client).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectedApp {
    /// Consumer key.
    pub client_id: String,
    /// Consumer secret.
    pub client_secret: String,
    /// Allowed callback URLs.
    pub redirect_uris: Vec<String>,
    /// Issue a new refresh token on every refresh and invalidate the old one.
    #[serde(default)]
    pub rotate_refresh_tokens: bool,
}

/// The daily API request counter.
#[derive(Debug)]
pub struct Quota {
    used: AtomicU64,
    max: AtomicU64,
    day: AtomicU64,
}

impl Quota {
    fn new(max: u64) -> Self {
        Self {
            used: AtomicU64::new(0),
            max: AtomicU64::new(max),
            day: AtomicU64::new(today()),
        }
    }

    fn roll(&self) {
        let d = today();
        if self.day.swap(d, Ordering::SeqCst) != d {
            self.used.store(0, Ordering::SeqCst);
        }
    }

    /// Counts one request; `Err` with the usage when the allowance is spent.
    pub fn take(&self) -> Result<(u64, u64), (u64, u64)> {
        self.roll();
        let max = self.max.load(Ordering::SeqCst);
        let used = self.used.load(Ordering::SeqCst);
        if used >= max {
            return Err((used, max));
        }
        let used = self.used.fetch_add(1, Ordering::SeqCst) + 1;
        Ok((used, max))
    }

    /// Current `(used, max)`.
    #[must_use]
    pub fn usage(&self) -> (u64, u64) {
        self.roll();
        (
            self.used.load(Ordering::SeqCst),
            self.max.load(Ordering::SeqCst),
        )
    }

    /// Sets usage and/or allowance (admin).
    pub fn set(&self, used: Option<u64>, max: Option<u64>) {
        if let Some(m) = max {
            self.max.store(m, Ordering::SeqCst);
        }
        if let Some(u) = used {
            self.used.store(u, Ordering::SeqCst);
        }
    }
}

fn today() -> u64 {
    (chrono::Utc::now().timestamp() / 86_400).max(0) as u64
}

/// One org: its data, cursors, faults, counters and quota.
#[derive(Debug)]
pub struct Org {
    /// Static facts.
    pub meta: OrgMeta,
    /// Records, schema and change log.
    pub data: RwLock<OrgData>,
    /// Open query cursors.
    pub cursors: Mutex<Cursors>,
    /// Fault injection.
    pub faults: FaultInjector,
    /// Counters.
    pub stats: OrgStats,
    /// Daily API quota.
    pub quota: Quota,
    /// The org's integration user (owner of API writes).
    pub user_id: String,
    session_lifetime: Mutex<Duration>,
}

impl Org {
    /// Builds an org from its configuration (records are generated lazily).
    #[must_use]
    pub fn new(config: &OrgConfig, sandbox_seed: u64, ordinal: u64, anchor: i64) -> Self {
        let code = org_code(ordinal);
        let meta = OrgMeta {
            name: config.name.clone(),
            org_id: super::ids::make_id("00D", &code, 1),
            code: code.clone(),
            seed: config
                .seed
                .unwrap_or_else(|| derive_seed(sandbox_seed, &[&config.name])),
            anchor,
            span: 730 * 86_400,
        };
        let mut counts = default_counts();
        for (k, v) in &config.counts {
            match counts.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(k)) {
                Some(slot) => slot.1 = *v,
                None => counts.push((k.clone(), *v)),
            }
        }
        let schema: Schema = default_schema();
        let data = OrgData::new(&meta, schema, &counts);
        Self {
            user_id: super::ids::make_id("005", &code, 0),
            meta,
            data: RwLock::new(data),
            cursors: Mutex::new(Cursors::default()),
            faults: FaultInjector::default(),
            stats: OrgStats::default(),
            quota: Quota::new(config.daily_api_limit),
            session_lifetime: Mutex::new(Duration::from_secs(config.session_lifetime_secs)),
        }
    }

    /// Current session lifetime.
    #[must_use]
    pub fn session_lifetime(&self) -> Duration {
        *lock(&self.session_lifetime)
    }

    /// Changes the session lifetime for tokens issued from now on.
    pub fn set_session_lifetime(&self, d: Duration) {
        *lock(&self.session_lifetime) = d;
    }

    /// Read access to the data (poison-tolerant).
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, OrgData> {
        self.data
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Write access to the data (poison-tolerant).
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, OrgData> {
        self.data
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn org_code(ordinal: u64) -> String {
    const L: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    let n = ordinal + 10;
    let a = L[((n / 26) % 26) as usize] as char;
    let b = L[(n % 26) as usize] as char;
    format!("{a}{b}")
}

/// An issued access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// Org name.
    pub org: String,
    /// Client that obtained it.
    pub client_id: String,
    /// When it stops working.
    pub expires_at: Instant,
}

/// An issued refresh token.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    /// Org name.
    pub org: String,
    /// Client it was issued to.
    pub client_id: String,
    /// Granted scope.
    pub scope: String,
}

/// A pending authorization code.
#[derive(Debug, Clone)]
pub struct AuthCode {
    /// Org name.
    pub org: String,
    /// Client.
    pub client_id: String,
    /// Redirect URI used at the authorize step.
    pub redirect_uri: String,
    /// PKCE challenge and method.
    pub challenge: Option<(String, String)>,
    /// Granted scope.
    pub scope: String,
    /// Codes are valid for 15 minutes.
    pub expires_at: Instant,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct Shared {
    /// Sandbox seed.
    pub seed: u64,
    /// Data anchor (seconds).
    pub anchor: i64,
    /// Base URL (`http://127.0.0.1:PORT`), also the `instance_url`.
    pub base_url: String,
    orgs: RwLock<Vec<Arc<Org>>>,
    /// Connected apps by client id.
    pub apps: RwLock<HashMap<String, ConnectedApp>>,
    /// Access tokens.
    pub tokens: Mutex<HashMap<String, AccessToken>>,
    /// Refresh tokens.
    pub refresh_tokens: Mutex<HashMap<String, RefreshToken>>,
    /// Authorization codes.
    pub codes: Mutex<HashMap<String, AuthCode>>,
    /// The data API router, for `/composite` subrequests (set once at start).
    pub data_router: std::sync::OnceLock<axum::Router>,
}

impl Shared {
    /// New shared state with the given orgs and the demo app.
    #[must_use]
    pub fn new(seed: u64, anchor: i64, base_url: String, orgs: &[OrgConfig]) -> Self {
        let orgs = orgs
            .iter()
            .enumerate()
            .map(|(i, c)| Arc::new(Org::new(c, seed, i as u64, anchor)))
            .collect();
        let mut apps = HashMap::new();
        apps.insert(
            DEMO_CLIENT_ID.to_owned(),
            ConnectedApp {
                client_id: DEMO_CLIENT_ID.to_owned(),
                client_secret: DEMO_CLIENT_SECRET.to_owned(),
                redirect_uris: vec![DEMO_REDIRECT_URI.to_owned()],
                rotate_refresh_tokens: false,
            },
        );
        Self {
            seed,
            anchor,
            base_url,
            orgs: RwLock::new(orgs),
            apps: RwLock::new(apps),
            tokens: Mutex::new(HashMap::new()),
            refresh_tokens: Mutex::new(HashMap::new()),
            codes: Mutex::new(HashMap::new()),
            data_router: std::sync::OnceLock::new(),
        }
    }

    /// An org by name.
    #[must_use]
    pub fn org(&self, name: &str) -> Option<Arc<Org>> {
        self.orgs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|o| o.meta.name == name)
            .cloned()
    }

    /// All orgs.
    #[must_use]
    pub fn orgs(&self) -> Vec<Arc<Org>> {
        self.orgs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Adds an org; `false` if the name is taken.
    pub fn add_org(&self, config: &OrgConfig) -> Option<Arc<Org>> {
        let mut orgs = self
            .orgs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if orgs.iter().any(|o| o.meta.name == config.name) {
            return None;
        }
        let org = Arc::new(Org::new(config, self.seed, orgs.len() as u64, self.anchor));
        orgs.push(org.clone());
        Some(org)
    }

    /// The org an access token belongs to, if the token is valid now.
    #[must_use]
    pub fn org_for_token(&self, token: &str) -> Option<Arc<Org>> {
        let t = lock(&self.tokens).get(token).cloned()?;
        if Instant::now() >= t.expires_at {
            return None;
        }
        self.org(&t.org)
    }

    /// Invalidates every access token of an org (forced session expiry).
    pub fn expire_sessions(&self, org: &str) -> usize {
        let mut tokens = lock(&self.tokens);
        let before = tokens.len();
        tokens.retain(|_, t| t.org != org);
        before - tokens.len()
    }

    /// Revokes every refresh token of an org.
    pub fn revoke_refresh_tokens(&self, org: &str) -> usize {
        let mut tokens = lock(&self.refresh_tokens);
        let before = tokens.len();
        tokens.retain(|_, t| t.org != org);
        before - tokens.len()
    }
}
