//! The configuration model. Every struct has defaults that run the embedded suite.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
pub use syncline_telemetry::{LogFormat, TelemetryConfig};

use crate::ConfigError;

/// The six services of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceName {
    /// The only public door.
    Gateway,
    /// Provider apps, connections and credentials.
    AuthVault,
    /// Per-connection schema catalog.
    SchemaDiscovery,
    /// Manifests, installations and field mappings.
    Mapping,
    /// Jobs, cursors, change log and deliveries.
    SyncEngine,
    /// Conflict policies and the review queue.
    ConflictResolver,
}

impl ServiceName {
    /// Every service, gateway last (it needs the others' addresses).
    pub const ALL: [ServiceName; 6] = [
        Self::AuthVault,
        Self::SchemaDiscovery,
        Self::Mapping,
        Self::SyncEngine,
        Self::ConflictResolver,
        Self::Gateway,
    ];

    /// The name on the command line and in logs, e.g. `auth-vault`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::AuthVault => "auth-vault",
            Self::SchemaDiscovery => "schema-discovery",
            Self::Mapping => "mapping",
            Self::SyncEngine => "sync-engine",
            Self::ConflictResolver => "conflict-resolver",
        }
    }

    /// The identifier used for database files and PostgreSQL schemas, e.g. `auth_vault`.
    pub fn ident(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::AuthVault => "auth_vault",
            Self::SchemaDiscovery => "schema_discovery",
            Self::Mapping => "mapping",
            Self::SyncEngine => "sync_engine",
            Self::ConflictResolver => "conflict_resolver",
        }
    }

    /// Parses the command-line name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for ServiceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The whole suite's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynclineConfig {
    /// Where the embedded default keeps its SQLite files and generated keys.
    pub data_dir: PathBuf,
    /// Where each service keeps its state.
    pub storage: StorageConfig,
    /// How backends recognise calls forwarded by the gateway or made by other services.
    pub internal_auth: InternalAuthConfig,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
    /// The public door.
    pub gateway: GatewayConfig,
    /// auth-vault: listen address, key-encryption keys and token refresh.
    pub auth_vault: AuthVaultConfig,
    /// schema-discovery: listen address and the scheduled schema refresh.
    pub schema_discovery: SchemaDiscoveryConfig,
    /// mapping.
    pub mapping: ServiceConfig,
    /// sync-engine.
    pub sync_engine: SyncEngineConfig,
    /// conflict-resolver.
    pub conflict_resolver: ServiceConfig,
    /// The local CRM sandboxes `syncline up` starts for the demo.
    pub sandbox: SandboxConfig,
    /// How Syncline's services call CRM APIs.
    pub crm_http: CrmHttpConfig,
}

impl Default for SynclineConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".syncline"),
            storage: StorageConfig::default(),
            internal_auth: InternalAuthConfig::default(),
            telemetry: TelemetryConfig::default(),
            gateway: GatewayConfig::default(),
            auth_vault: AuthVaultConfig::default(),
            schema_discovery: SchemaDiscoveryConfig::default(),
            mapping: ServiceConfig::on_port(7403),
            sync_engine: SyncEngineConfig::default(),
            conflict_resolver: ServiceConfig::on_port(7405),
            sandbox: SandboxConfig::default(),
            crm_http: CrmHttpConfig::default(),
        }
    }
}

impl SynclineConfig {
    /// The address a service binds.
    pub fn listen_addr(&self, name: ServiceName) -> SocketAddr {
        match name {
            ServiceName::AuthVault => self.auth_vault.listen_addr,
            ServiceName::SchemaDiscovery => self.schema_discovery.listen_addr,
            ServiceName::Mapping => self.mapping.listen_addr,
            ServiceName::SyncEngine => self.sync_engine.listen_addr,
            ServiceName::ConflictResolver => self.conflict_resolver.listen_addr,
            ServiceName::Gateway => self.gateway.listen_addr,
        }
    }

    /// Changes the address a service binds.
    pub fn set_listen_addr(&mut self, name: ServiceName, addr: SocketAddr) {
        match name {
            ServiceName::AuthVault => self.auth_vault.listen_addr = addr,
            ServiceName::SchemaDiscovery => self.schema_discovery.listen_addr = addr,
            ServiceName::Mapping => self.mapping.listen_addr = addr,
            ServiceName::SyncEngine => self.sync_engine.listen_addr = addr,
            ServiceName::ConflictResolver => self.conflict_resolver.listen_addr = addr,
            ServiceName::Gateway => self.gateway.listen_addr = addr,
        }
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.storage.database_url {
            let url = url.expose_secret();
            if !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
            {
                return Err(ConfigError::Invalid {
                    key: "storage.database_url".into(),
                    reason: "must be a postgres:// or sqlite: url".into(),
                });
            }
        }
        if !self
            .storage
            .schema_prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(ConfigError::Invalid {
                key: "storage.schema_prefix".into(),
                reason: "may contain only lowercase letters, digits and '_'".into(),
            });
        }
        if self.storage.max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "storage.max_connections".into(),
                reason: "must be at least 1".into(),
            });
        }
        if let Some(secret) = &self.internal_auth.secret
            && secret.expose_secret().len() < 32
        {
            return Err(ConfigError::Invalid {
                key: "internal_auth.secret".into(),
                reason: "must be at least 32 characters".into(),
            });
        }
        self.auth_vault.validate()?;
        self.sync_engine.validate()?;
        self.gateway.validate()
    }
}

/// auth-vault: where it listens, where its key-encryption keys come from, and how it keeps
/// access tokens fresh.
///
/// Key-encryption keys (KEKs) wrap every tenant's data key. They come from `keys` (for
/// example `SYNCLINE_AUTH_VAULT__KEYS=kek-2026=<base64 of 32 bytes>,kek-2027=<…>`), else from
/// `kek_file` (one `<id> <base64 of 32 bytes>` per line); with neither, the embedded default
/// generates `<data_dir>/auth-vault.keys` (mode 0600) on first start. Every vault process
/// sharing a database must see the same key ring.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthVaultConfig {
    /// Address the gRPC server binds; port 0 picks a free one.
    pub listen_addr: SocketAddr,
    /// The key ring inline: `id=base64,id=base64` (32-byte keys). Wins over `kek_file`.
    pub keys: Option<SecretString>,
    /// A key-ring file: one `<id> <base64 of 32 bytes>` per line, `#` comments.
    pub kek_file: Option<PathBuf>,
    /// The KEK that wraps new data keys when the database names none yet (first start);
    /// default: the last key of the ring. Afterwards RotateKeyEncryptionKey decides.
    pub active_kek_id: Option<String>,
    /// Access tokens expiring within this many seconds are refreshed before use (the
    /// default `min_validity` of GetAccessToken).
    pub refresh_margin_secs: u64,
    /// Lifetime assumed for Salesforce access tokens, which come without `expires_in`
    /// (the org's session timeout; Salesforce's default is 2 hours).
    pub salesforce_session_lifetime_secs: u64,
    /// How long an authorization started with StartAuthorization may take to complete.
    pub authorization_ttl_secs: u64,
    /// The background refresher: tokens are refreshed before they expire, not on demand.
    pub refresher: RefresherConfig,
}

/// auth-vault's proactive refresher: every `interval_secs` it refreshes the tokens that
/// expire within `lookahead_secs`, each at a point spread over `jitter_secs` (stable per
/// connection), at most `max_concurrency` at once and at most the provider's requests per
/// second (per vault process: divide by the number of processes).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RefresherConfig {
    /// Seconds between sweeps; 0 turns the refresher off (tokens refresh on demand only).
    pub interval_secs: u64,
    /// Tokens expiring within this many seconds are refreshed by a sweep.
    pub lookahead_secs: u64,
    /// Spreads the refreshes of tokens expiring together over this many seconds (at most
    /// half the look-ahead).
    pub jitter_secs: u64,
    /// Refreshes in flight at once.
    pub max_concurrency: u32,
    /// Token requests per second to Salesforce.
    pub salesforce_rps: u32,
    /// Token requests per second to HubSpot (its burst limit is 100 per 10 seconds).
    pub hubspot_rps: u32,
}

impl Default for RefresherConfig {
    fn default() -> Self {
        Self {
            interval_secs: 30,
            lookahead_secs: 600,
            jitter_secs: 120,
            max_concurrency: 8,
            salesforce_rps: 20,
            hubspot_rps: 8,
        }
    }
}

impl Default for AuthVaultConfig {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 7401)),
            keys: None,
            kek_file: None,
            active_kek_id: None,
            refresh_margin_secs: 300,
            salesforce_session_lifetime_secs: 2 * 3600,
            authorization_ttl_secs: 600,
            refresher: RefresherConfig::default(),
        }
    }
}

impl std::fmt::Debug for AuthVaultConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthVaultConfig")
            .field("listen_addr", &self.listen_addr)
            .field("keys", &self.keys.as_ref().map(|_| "[REDACTED]"))
            .field("kek_file", &self.kek_file)
            .field("active_kek_id", &self.active_kek_id)
            .field("refresh_margin_secs", &self.refresh_margin_secs)
            .field(
                "salesforce_session_lifetime_secs",
                &self.salesforce_session_lifetime_secs,
            )
            .field("authorization_ttl_secs", &self.authorization_ttl_secs)
            .field("refresher", &self.refresher)
            .finish()
    }
}

impl AuthVaultConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            key: format!("auth_vault.{key}"),
            reason: reason.into(),
        };
        if self.salesforce_session_lifetime_secs < 60 {
            return Err(invalid(
                "salesforce_session_lifetime_secs",
                "must be at least 60",
            ));
        }
        if self.authorization_ttl_secs == 0 || self.authorization_ttl_secs > 3600 {
            return Err(invalid(
                "authorization_ttl_secs",
                "must be between 1 and 3600",
            ));
        }
        if let Some(id) = &self.active_kek_id
            && id.is_empty()
        {
            return Err(invalid("active_kek_id", "must not be empty"));
        }
        let refresher = &self.refresher;
        if refresher.lookahead_secs < 60 || refresher.lookahead_secs > 24 * 3600 {
            return Err(invalid(
                "refresher.lookahead_secs",
                "must be between 60 and 86400",
            ));
        }
        if refresher.jitter_secs > refresher.lookahead_secs / 2 {
            return Err(invalid(
                "refresher.jitter_secs",
                "must be at most half of refresher.lookahead_secs",
            ));
        }
        if refresher.max_concurrency == 0 || refresher.max_concurrency > 1024 {
            return Err(invalid(
                "refresher.max_concurrency",
                "must be between 1 and 1024",
            ));
        }
        if refresher.salesforce_rps == 0 {
            return Err(invalid("refresher.salesforce_rps", "must be at least 1"));
        }
        if refresher.hubspot_rps == 0 {
            return Err(invalid("refresher.hubspot_rps", "must be at least 1"));
        }
        Ok(())
    }
}

/// schema-discovery: where it listens and how often it describes each known connection again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaDiscoveryConfig {
    /// Address the gRPC server binds; port 0 picks a free one.
    pub listen_addr: SocketAddr,
    /// Every connection with a stored schema is described again about this often (each
    /// round waits this long plus up to 10% random jitter); 0 turns the schedule off.
    pub refresh_interval_secs: u64,
}

impl Default for SchemaDiscoveryConfig {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 7402)),
            refresh_interval_secs: 6 * 3600,
        }
    }
}

/// Listen settings of one service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Address the gRPC server binds; port 0 picks a free one.
    pub listen_addr: SocketAddr,
}

impl ServiceConfig {
    /// Listens on 127.0.0.1:`port`.
    pub fn on_port(port: u16) -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

/// Where services keep their state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `postgres://…` to use PostgreSQL (one schema per service); unset for SQLite files in
    /// `data_dir` (one file per service).
    pub database_url: Option<SecretString>,
    /// Prefix of each service's PostgreSQL schema, e.g. `syncline_` → `syncline_auth_vault`.
    pub schema_prefix: String,
    /// Pool size per service.
    pub max_connections: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            database_url: None,
            schema_prefix: "syncline_".into(),
            max_connections: 8,
        }
    }
}

/// The shared secret that signs calls between services (the gateway's forwarded context
/// and service-to-service calls). `syncline up` generates one per run when unset;
/// `syncline serve` requires it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InternalAuthConfig {
    /// At least 32 characters.
    pub secret: Option<SecretString>,
}

/// The gateway: public gRPC, HTTP pages and webhooks on one port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address the gateway binds for gRPC and HTTP; port 0 picks a free one.
    pub listen_addr: SocketAddr,
    /// The URL callers and browsers reach the gateway at (OAuth redirects are built on it).
    pub public_url: Option<String>,
    /// How callers authenticate.
    pub jwt: JwtConfig,
    /// Where the backends listen; `syncline up` fills these in.
    pub backends: BackendsConfig,
    /// Per-tenant request rate limit.
    pub rate_limit: RateLimitConfig,
    /// Deadline applied when a caller sets none, in milliseconds.
    pub default_deadline_ms: u64,
    /// The longest deadline a caller may ask for, in milliseconds.
    pub max_deadline_ms: u64,
    /// The embedded self-serve mapping page.
    pub embed: EmbedConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 7400)),
            public_url: None,
            jwt: JwtConfig::default(),
            backends: BackendsConfig::default(),
            rate_limit: RateLimitConfig::default(),
            default_deadline_ms: 30_000,
            max_deadline_ms: 300_000,
            embed: EmbedConfig::default(),
        }
    }
}

impl GatewayConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let jwt = &self.jwt;
        let sources = [
            jwt.hs256_secret.is_some(),
            jwt.jwks_file.is_some(),
            jwt.jwks_url.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(ConfigError::Invalid {
                key: "gateway.jwt".into(),
                reason: "set only one of hs256_secret, jwks_file and jwks_url".into(),
            });
        }
        if let Some(secret) = &jwt.hs256_secret
            && secret.expose_secret().len() < 32
        {
            return Err(ConfigError::Invalid {
                key: "gateway.jwt.hs256_secret".into(),
                reason: "must be at least 32 characters".into(),
            });
        }
        if jwt.audience.is_empty() {
            return Err(ConfigError::Invalid {
                key: "gateway.jwt.audience".into(),
                reason: "must not be empty".into(),
            });
        }
        if jwt.issuers.is_empty() {
            return Err(ConfigError::Invalid {
                key: "gateway.jwt.issuers".into(),
                reason: "must name at least one issuer".into(),
            });
        }
        if self.default_deadline_ms == 0 || self.default_deadline_ms > self.max_deadline_ms {
            return Err(ConfigError::Invalid {
                key: "gateway.default_deadline_ms".into(),
                reason: "must be between 1 and gateway.max_deadline_ms".into(),
            });
        }
        if self.rate_limit.per_second == 0 || self.rate_limit.burst == 0 {
            return Err(ConfigError::Invalid {
                key: "gateway.rate_limit".into(),
                reason: "per_second and burst must be at least 1".into(),
            });
        }
        self.embed.validate()
    }
}

/// The embedded self-serve mapping page (`/embed/`) and its scoped tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedConfig {
    /// Who may frame the page: CSP `frame-ancestors` sources (`'self'`,
    /// `https://app.example.com`). Default: `'self'` only; add the product's origin.
    pub frame_ancestors: Vec<String>,
    /// Lifetime of a scoped token when the caller asks for none, in seconds.
    pub token_ttl_secs: u64,
    /// The longest lifetime a caller may ask for, in seconds.
    pub max_token_ttl_secs: u64,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        Self {
            frame_ancestors: vec!["'self'".into()],
            token_ttl_secs: 900,
            max_token_ttl_secs: 3600,
        }
    }
}

impl EmbedConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.token_ttl_secs == 0 || self.token_ttl_secs > self.max_token_ttl_secs {
            return Err(ConfigError::Invalid {
                key: "gateway.embed.token_ttl_secs".into(),
                reason: "must be between 1 and gateway.embed.max_token_ttl_secs".into(),
            });
        }
        if self.max_token_ttl_secs > 86_400 {
            return Err(ConfigError::Invalid {
                key: "gateway.embed.max_token_ttl_secs".into(),
                reason: "must be at most 86400 (a day)".into(),
            });
        }
        for source in &self.frame_ancestors {
            let keyword = matches!(source.as_str(), "'self'" | "'none'");
            let origin = (source.starts_with("https://") || source.starts_with("http://"))
                && !source.contains([';', ',', ' ', '\'', '"']);
            if !keyword && !origin {
                return Err(ConfigError::Invalid {
                    key: "gateway.embed.frame_ancestors".into(),
                    reason: format!("`{source}` is not 'self', 'none' or an http(s) origin"),
                });
            }
        }
        Ok(())
    }
}

/// Caller authentication with JWTs. Exactly one key source: an HS256 secret (development),
/// a JWKS file, or a JWKS URL (RS256/EdDSA, production).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Shared HS256 secret, at least 32 characters. `syncline up` generates one when no key
    /// source is configured.
    pub hs256_secret: Option<SecretString>,
    /// A JWKS document on disk.
    pub jwks_file: Option<PathBuf>,
    /// A JWKS document to fetch (and refresh).
    pub jwks_url: Option<String>,
    /// Required `aud`.
    pub audience: String,
    /// Accepted `iss` values.
    pub issuers: Vec<String>,
    /// Claim that names the project.
    pub project_claim: String,
    /// Claim that names the tenant.
    pub tenant_claim: String,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds.
    pub leeway_secs: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            hs256_secret: None,
            jwks_file: None,
            jwks_url: None,
            audience: "syncline".into(),
            issuers: vec!["syncline-dev".into()],
            project_claim: "project_id".into(),
            tenant_claim: "tenant_id".into(),
            leeway_secs: 30,
        }
    }
}

/// Backend addresses, as `http://host:port` URLs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendsConfig {
    /// auth-vault.
    pub auth_vault: String,
    /// schema-discovery.
    pub schema_discovery: String,
    /// mapping.
    pub mapping: String,
    /// sync-engine.
    pub sync_engine: String,
    /// conflict-resolver.
    pub conflict_resolver: String,
}

impl Default for BackendsConfig {
    fn default() -> Self {
        Self {
            auth_vault: "http://127.0.0.1:7401".into(),
            schema_discovery: "http://127.0.0.1:7402".into(),
            mapping: "http://127.0.0.1:7403".into(),
            sync_engine: "http://127.0.0.1:7404".into(),
            conflict_resolver: "http://127.0.0.1:7405".into(),
        }
    }
}

impl BackendsConfig {
    /// The URL of one backend.
    pub fn url(&self, name: ServiceName) -> Option<&str> {
        match name {
            ServiceName::AuthVault => Some(&self.auth_vault),
            ServiceName::SchemaDiscovery => Some(&self.schema_discovery),
            ServiceName::Mapping => Some(&self.mapping),
            ServiceName::SyncEngine => Some(&self.sync_engine),
            ServiceName::ConflictResolver => Some(&self.conflict_resolver),
            ServiceName::Gateway => None,
        }
    }

    /// Points one backend at `url`.
    pub fn set_url(&mut self, name: ServiceName, url: String) {
        match name {
            ServiceName::AuthVault => self.auth_vault = url,
            ServiceName::SchemaDiscovery => self.schema_discovery = url,
            ServiceName::Mapping => self.mapping = url,
            ServiceName::SyncEngine => self.sync_engine = url,
            ServiceName::ConflictResolver => self.conflict_resolver = url,
            ServiceName::Gateway => {}
        }
    }
}

/// A token bucket per tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Sustained requests per second per tenant.
    pub per_second: u32,
    /// Requests a tenant may burst above the sustained rate.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_second: 200,
            burst: 400,
        }
    }
}

/// The CRM sandboxes that `syncline up` runs for the demo.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Start them with `syncline up`.
    pub enabled: bool,
    /// Salesforce sandbox port (0 picks a free one).
    pub salesforce_port: u16,
    /// HubSpot sandbox port (0 picks a free one).
    pub hubspot_port: u16,
    /// Seed of the demo data.
    pub seed: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            salesforce_port: 7410,
            hubspot_port: 7411,
            seed: 42,
        }
    }
}

/// The HTTP client every service uses to call CRM APIs (OAuth, data, webhooks).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrmHttpConfig {
    /// A PEM file of extra root certificates to trust besides the system's, e.g. the local
    /// CA of the CRM sandboxes served over HTTPS, or a corporate proxy's CA.
    pub extra_root_ca_file: Option<PathBuf>,
    /// Per-request timeout, in milliseconds.
    pub timeout_ms: u64,
    /// Connect timeout, in milliseconds.
    pub connect_timeout_ms: u64,
}

impl Default for CrmHttpConfig {
    fn default() -> Self {
        Self {
            extra_root_ca_file: None,
            timeout_ms: 30_000,
            connect_timeout_ms: 5_000,
        }
    }
}

/// sync-engine: where it listens, how long it keeps the change log, how it delivers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncEngineConfig {
    /// Address the gRPC server binds; port 0 picks a free one.
    pub listen_addr: SocketAddr,
    /// Changes and lifecycle events older than this many days are removed; streams resuming
    /// before them get CURSOR_EXPIRED.
    pub retention_days: u64,
    /// Outbound webhooks to the product.
    pub delivery: DeliveryConfig,
    /// Sync runs: workers, fairness, leases and the API budget.
    pub runs: SyncRunsConfig,
}

impl Default for SyncEngineConfig {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 7404)),
            retention_days: 7,
            delivery: DeliveryConfig::default(),
            runs: SyncRunsConfig::default(),
        }
    }
}

/// How sync runs are worked: each worker claims one (run, object) slice at a time, reads one
/// page and releases it, so tenants take turns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncRunsConfig {
    /// Workers in this process; 0 runs none (the process only serves the API).
    pub workers: usize,
    /// Slices of one tenant read at once, across every process sharing the database.
    pub per_tenant_concurrency: u32,
    /// Records asked for per page.
    pub page_size: u32,
    /// How long a claimed slice stays with its worker; a killed process's slices are taken
    /// over after this.
    pub lease_secs: u64,
    /// How often an idle worker looks for work, in milliseconds.
    pub poll_interval_ms: u64,
    /// The share (percent) of a connection's daily API quota syncs may use; above it a run
    /// pauses with QUOTA_EXHAUSTED and resumes by itself when the provider's quota has
    /// recovered enough (Salesforce: rolling 24 hours; HubSpot: the portal's midnight).
    pub daily_quota_share_percent: u32,
    /// The shortest pause of a run over its quota budget.
    pub quota_pause_secs: u64,
    /// Longest wait between retries of a failing provider call.
    pub max_backoff_secs: u64,
    /// How long a connection's circuit breaker stays open after five failures in a row
    /// (doubling while its probes fail, up to 15 minutes).
    pub breaker_cool_down_secs: u64,
    /// How long a worker keeps one slice before giving the others their turn, in
    /// milliseconds. Within a turn it reads the next page while the previous one commits;
    /// 0 gives up the slice after every page.
    pub turn_ms: u64,
    /// How often each process looks for connections whose manifest `schedule` makes an
    /// incremental run due, in seconds.
    pub schedule_poll_secs: u64,
    /// Divides every schedule's interval (tests and demos: 60 makes `schedule: 1m` one
    /// second); 1 in production.
    pub schedule_speedup: u64,
    /// How often, at most, a worker asks mapping again about a (connection, plan version)
    /// it has cached, so drift found by others (the scheduled schema refresh, a
    /// RefreshSchema call) leaves the broken rules out mid-run; in seconds, 0 checks before
    /// every page.
    pub plan_check_secs: u64,
    /// Whether each change keeps the provider record as read beside the mapped record, for
    /// `StreamChanges` readers that ask for it (`include_provider_record`). Off, a change
    /// holds only the mapped record: about half the bytes written per record, and no CRM
    /// values are kept beyond what the mapping made of them; `include_provider_record` then
    /// has nothing to send. Dead letters keep the provider record either way.
    pub keep_provider_records: bool,
}

impl Default for SyncRunsConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            per_tenant_concurrency: 2,
            page_size: 500,
            lease_secs: 60,
            poll_interval_ms: 250,
            daily_quota_share_percent: 50,
            quota_pause_secs: 300,
            max_backoff_secs: 300,
            breaker_cool_down_secs: 30,
            turn_ms: 2_000,
            schedule_poll_secs: 15,
            schedule_speedup: 1,
            keep_provider_records: true,
            plan_check_secs: 60,
        }
    }
}

impl SyncEngineConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.retention_days == 0 {
            return Err(ConfigError::Invalid {
                key: "sync_engine.retention_days".into(),
                reason: "must be at least 1".into(),
            });
        }
        let delivery = &self.delivery;
        if delivery.request_timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                key: "sync_engine.delivery.request_timeout_ms".into(),
                reason: "must be at least 1".into(),
            });
        }
        if delivery.disable_after_dead_messages == 0 || delivery.disable_after_failing_days == 0 {
            return Err(ConfigError::Invalid {
                key: "sync_engine.delivery".into(),
                reason:
                    "disable_after_dead_messages and disable_after_failing_days must be at least 1"
                        .into(),
            });
        }
        if delivery.concurrency == 0 {
            return Err(ConfigError::Invalid {
                key: "sync_engine.delivery.concurrency".into(),
                reason: "must be at least 1".into(),
            });
        }
        let runs = &self.runs;
        for (key, value) in [
            (
                "per_tenant_concurrency",
                u64::from(runs.per_tenant_concurrency),
            ),
            ("page_size", u64::from(runs.page_size)),
            ("lease_secs", runs.lease_secs),
            ("poll_interval_ms", runs.poll_interval_ms),
            (
                "daily_quota_share_percent",
                u64::from(runs.daily_quota_share_percent),
            ),
            ("quota_pause_secs", runs.quota_pause_secs),
            ("max_backoff_secs", runs.max_backoff_secs),
            ("breaker_cool_down_secs", runs.breaker_cool_down_secs),
            ("schedule_poll_secs", runs.schedule_poll_secs),
            ("schedule_speedup", runs.schedule_speedup),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key: format!("sync_engine.runs.{key}"),
                    reason: "must be at least 1".into(),
                });
            }
        }
        if runs.daily_quota_share_percent > 100 {
            return Err(ConfigError::Invalid {
                key: "sync_engine.runs.daily_quota_share_percent".into(),
                reason: "must be at most 100".into(),
            });
        }
        Ok(())
    }
}

/// Outbound webhook delivery (Standard Webhooks), see docs/delivery.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Seconds to wait before each retry after the immediate first attempt; when used up
    /// the message is dead-lettered. Default: Svix's schedule.
    pub retry_schedule_secs: Vec<u64>,
    /// Timeout of one attempt, in milliseconds.
    pub request_timeout_ms: u64,
    /// Disable an endpoint after this many messages in a row were dead-lettered.
    pub disable_after_dead_messages: u32,
    /// Disable an endpoint that failed without a success for this many days.
    pub disable_after_failing_days: u64,
    /// Endpoints attempted at once.
    pub concurrency: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            retry_schedule_secs: vec![5, 300, 1800, 7200, 18_000, 36_000, 36_000],
            request_timeout_ms: 15_000,
            disable_after_dead_messages: 5,
            disable_after_failing_days: 5,
            concurrency: 16,
        }
    }
}
