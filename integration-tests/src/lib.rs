//! Standing up the whole suite for end-to-end tests.
//!
//! [`spawn_suite`] starts all six services in the test process on `127.0.0.1:0`, with a
//! fresh database (a temporary SQLite directory, or fresh PostgreSQL schemas) and fresh
//! secrets. Each test then uses unique tenant ids, so tests never see each other's rows.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;

use secrecy::SecretString;
use syncline_config::{ServiceName, SynclineConfig};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Which storage the suite runs on.
#[derive(Debug, Clone)]
pub enum Storage {
    /// SQLite files in a fresh temporary directory.
    Sqlite,
    /// Fresh schemas in the PostgreSQL at this URL.
    Postgres(String),
}

/// A running suite and what tests need to talk to it.
pub struct TestSuite {
    suite: syncline::Suite,
    shutdown: CancellationToken,
    data_dir: PathBuf,
    schema_prefix: String,
    storage: Storage,
    /// The HS256 secret the gateway accepts.
    pub jwt_secret: String,
    /// The internal secret backends accept.
    pub internal_secret: String,
}

fn random(len: usize) -> String {
    let mut s = String::new();
    while s.len() < len {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(len);
    s
}

/// Starts the suite on `storage`.
pub async fn spawn_suite(storage: Storage) -> TestSuite {
    spawn_suite_with(storage, |_| {}).await
}

/// Starts the suite on `storage`, letting `configure` change the configuration first.
pub async fn spawn_suite_with(
    storage: Storage,
    configure: impl FnOnce(&mut SynclineConfig),
) -> TestSuite {
    let _ = syncline_test_support::otlp::telemetry();
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let data_dir = std::env::temp_dir().join(format!("syncline-it-{unique}"));
    let schema_prefix = format!("it{}_", &unique[..12]);
    let jwt_secret = random(48);
    let internal_secret = random(48);
    let mut config = SynclineConfig {
        data_dir: data_dir.clone(),
        ..SynclineConfig::default()
    };
    for service in ServiceName::ALL {
        config.set_listen_addr(service, "127.0.0.1:0".parse().unwrap());
    }
    config.sandbox.enabled = false;
    config.gateway.jwt.hs256_secret = Some(SecretString::from(jwt_secret.clone()));
    config.internal_auth.secret = Some(SecretString::from(internal_secret.clone()));
    config.storage.max_connections = 4;
    // Background work runs only when a test asks for it (they drive sweeps themselves), so
    // nothing refreshes tokens behind a test that counts refreshes.
    config.auth_vault.refresher.interval_secs = 0;
    if let Storage::Postgres(url) = &storage {
        config.storage.database_url = Some(SecretString::from(url.clone()));
        config.storage.schema_prefix = schema_prefix.clone();
    }
    configure(&mut config);
    config.validate().expect("test configuration is valid");
    let shutdown = CancellationToken::new();
    let suite = syncline::start_suite(config, shutdown.clone())
        .await
        .expect("suite starts");
    TestSuite {
        suite,
        shutdown,
        data_dir,
        schema_prefix,
        storage,
        jwt_secret,
        internal_secret,
    }
}

impl TestSuite {
    /// A channel to the gateway.
    pub fn gateway(&self) -> Channel {
        self.channel(ServiceName::Gateway)
    }

    /// Where one service listens.
    pub fn addr(&self, service: ServiceName) -> Option<std::net::SocketAddr> {
        self.suite.addr(service)
    }

    /// A channel straight to one service (bypassing the gateway).
    pub fn channel(&self, service: ServiceName) -> Channel {
        let addr = self.suite.addr(service).expect("service is running");
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy()
    }

    /// A valid token for `tenant` in project `project`.
    pub fn token(&self, project: &str, tenant: &str) -> String {
        syncline_test_support::tokens::sign(
            &syncline_test_support::tokens::claims(project, tenant),
            &self.jwt_secret,
        )
    }

    /// `message` with `authorization: Bearer <token>`.
    pub fn authed<T>(&self, token: &str, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    }

    /// `message` from `tenant` of `project`.
    pub fn as_tenant<T>(&self, project: &str, tenant: &str, message: T) -> tonic::Request<T> {
        self.authed(&self.token(project, tenant), message)
    }

    /// `tenant` of `project` calling the gateway, for the sandbox CRM fixture
    /// ([`syncline_test_support::crm`]).
    pub fn caller(&self, project: &str, tenant: &str) -> syncline_test_support::crm::GatewayCaller {
        syncline_test_support::crm::GatewayCaller::new(self.gateway(), self.token(project, tenant))
    }

    /// The gateway's base URL (`http://127.0.0.1:port`), for HTTP routes.
    pub fn gateway_url(&self) -> String {
        self.suite.gateway_url()
    }

    /// The effective configuration.
    pub fn config(&self) -> &SynclineConfig {
        self.suite.config()
    }

    /// The storage the suite runs on.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Opens `service`'s own database (its SQLite file or PostgreSQL schema), as the
    /// service does, to inspect what it stores. `migrations` are the service's (already
    /// applied, so nothing runs).
    pub async fn service_database(
        &self,
        service: ServiceName,
        migrations: &[syncline_storage::EmbeddedMigration],
    ) -> syncline_storage::Database {
        syncline_storage::Database::open(
            &self.suite.config().storage,
            &self.data_dir,
            service,
            migrations,
        )
        .await
        .expect("open the service's database")
    }

    /// Every file of `service`'s SQLite database (main file, WAL, shared memory), as bytes;
    /// empty on PostgreSQL.
    pub fn sqlite_files(&self, service: ServiceName) -> Vec<(String, Vec<u8>)> {
        if !matches!(self.storage, Storage::Sqlite) {
            return Vec::new();
        }
        let base = self.data_dir.join(format!("{}.db", service.ident()));
        ["", "-wal", "-shm", "-journal"]
            .iter()
            .filter_map(|suffix| {
                let path = PathBuf::from(format!("{}{suffix}", base.display()));
                std::fs::read(&path)
                    .ok()
                    .map(|bytes| (path.display().to_string(), bytes))
            })
            .collect()
    }

    /// `message` signed as a call from the Syncline service `service` on behalf of
    /// `tenant` of `project`, for calling internal services directly.
    pub fn as_service<T>(
        &self,
        service: &str,
        project: &str,
        tenant: &str,
        message: T,
    ) -> tonic::Request<T> {
        let auth = syncline_service_kit::InternalAuth::new(&SecretString::from(
            self.internal_secret.clone(),
        ));
        let caller =
            syncline_service_kit::client::ServiceCaller::new(std::sync::Arc::new(auth), service);
        let context = syncline_domain::TenantContext {
            project_id: syncline_domain::ProjectId::parse(project).unwrap(),
            tenant_id: syncline_domain::TenantId::parse(tenant).unwrap(),
            subject: format!("service:{service}"),
        };
        caller.request(&context, message).unwrap()
    }

    /// The sync-engine's delivery engine running in this suite: its change log (to append
    /// changes as the CRM readers will) and its webhook dispatcher.
    pub fn sync_engine(&self) -> syncline_sync_engine::Engine {
        let addr = self
            .suite
            .addr(ServiceName::SyncEngine)
            .expect("the suite runs sync-engine");
        syncline_sync_engine::running(addr).expect("sync-engine registered its engine")
    }

    /// Stops every service and removes the test's database.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let failures = self.suite.stopped().await;
        assert!(failures.is_empty(), "services failed: {failures:?}");
        match &self.storage {
            Storage::Sqlite => {
                let _ = std::fs::remove_dir_all(&self.data_dir);
            }
            Storage::Postgres(url) => {
                syncline_storage::drop_schemas(url, &self.schema_prefix)
                    .await
                    .expect("drop test schemas");
            }
        }
    }
}

/// A fresh tenant id, unique to this call.
pub fn unique_tenant(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Both CRM sandboxes, started on `127.0.0.1:0` for one test.
pub struct Sandboxes {
    /// The Salesforce sandbox (org `demo`, the demo connected app).
    pub salesforce: syncline_crm_sandbox::salesforce::RunningSalesforce,
    /// The HubSpot sandbox (the demo portal and app).
    pub hubspot: syncline_crm_sandbox::hubspot::RunningHubSpot,
}

impl Sandboxes {
    /// Starts both with their defaults.
    pub async fn start() -> Self {
        use syncline_crm_sandbox::hubspot::{HubSpotConfig, HubSpotSandbox};
        use syncline_crm_sandbox::salesforce::{SalesforceConfig, SalesforceSandbox};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let salesforce = SalesforceSandbox::start(SalesforceConfig::default(), listener)
            .await
            .expect("salesforce sandbox starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hubspot = HubSpotSandbox::start(HubSpotConfig::default(), listener)
            .await
            .expect("hubspot sandbox starts");
        Self {
            salesforce,
            hubspot,
        }
    }

    /// Stops both.
    pub async fn stop(self) {
        self.salesforce.shutdown().await;
        self.hubspot.shutdown().await;
    }
}
