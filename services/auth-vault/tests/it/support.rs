//! One vault started in-process against both CRM sandboxes, called with service
//! credentials as a tenant of one project.

use std::sync::Arc;

use secrecy::SecretString;
use syncline_config::SynclineConfig;
use syncline_crm_sandbox::hubspot::{HubSpotConfig, HubSpotSandbox, RunningHubSpot};
use syncline_crm_sandbox::salesforce::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, RunningSalesforce, SalesforceConfig, SalesforceSandbox,
};
use syncline_domain::{ProjectId, TenantContext, TenantId};
use syncline_proto::authvault::v1::auth_vault_service_client::AuthVaultServiceClient;
use syncline_proto::authvault::v1::token_service_client::TokenServiceClient;
use syncline_proto::authvault::v1::{
    AccessToken, CreateProviderAppRequest, GetAccessTokenRequest, ProviderApp,
};
use syncline_proto::common::v1::Provider;
use syncline_service_kit::InternalAuth;
use syncline_service_kit::client::ServiceCaller;
use tokio_util::sync::CancellationToken;

pub const PROJECT: &str = "p-it";

pub struct Harness {
    pub sf: RunningSalesforce,
    pub hs: RunningHubSpot,
    pub vault: syncline_auth_vault::VaultHandle,
    running: syncline_service_kit::RunningService,
    shutdown: CancellationToken,
    caller: ServiceCaller,
    channel: tonic::transport::Channel,
    dir: std::path::PathBuf,
}

impl Harness {
    /// Starts both sandboxes and a vault; `configure` may change its configuration.
    pub async fn start(configure: impl FnOnce(&mut SynclineConfig)) -> Self {
        let sf = SalesforceSandbox::start(
            SalesforceConfig::default(),
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        )
        .await
        .unwrap();
        let hs = HubSpotSandbox::start(
            HubSpotConfig::default(),
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        )
        .await
        .unwrap();
        let dir = std::env::temp_dir().join(format!("auth-vault-it-{}", uuid::Uuid::new_v4()));
        let secret = SecretString::from("0123456789abcdef0123456789abcdef-it".to_owned());
        let mut config = SynclineConfig {
            data_dir: dir.clone(),
            ..SynclineConfig::default()
        };
        config.internal_auth.secret = Some(secret.clone());
        config.auth_vault.listen_addr = "127.0.0.1:0".parse().unwrap();
        configure(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = CancellationToken::new();
        let (running, vault) =
            syncline_auth_vault::start_with_handle(&config, listener, shutdown.clone())
                .await
                .unwrap();
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{}", running.local_addr()))
                .unwrap()
                .connect_lazy();
        Self {
            sf,
            hs,
            vault,
            running,
            shutdown,
            caller: ServiceCaller::new(Arc::new(InternalAuth::new(&secret)), "sync-engine"),
            channel,
            dir,
        }
    }

    pub fn context(tenant: &str) -> TenantContext {
        TenantContext {
            project_id: ProjectId::parse(PROJECT).unwrap(),
            tenant_id: TenantId::parse(tenant).unwrap(),
            subject: format!("admin-of-{tenant}"),
        }
    }

    pub fn request<T>(&self, tenant: &str, message: T) -> tonic::Request<T> {
        self.caller
            .request(&Self::context(tenant), message)
            .unwrap()
    }

    pub fn apps(&self) -> AuthVaultServiceClient<tonic::transport::Channel> {
        AuthVaultServiceClient::new(self.channel.clone())
    }

    pub fn tokens(&self) -> TokenServiceClient<tonic::transport::Channel> {
        TokenServiceClient::new(self.channel.clone())
    }

    /// A Salesforce app on the sandbox (the demo connected app).
    pub async fn salesforce_app(&self, tenant: &str) -> String {
        let base = self.sf.base_url().to_owned();
        self.create_app(
            tenant,
            Provider::Salesforce,
            &base,
            DEMO_CLIENT_ID,
            DEMO_CLIENT_SECRET,
        )
        .await
    }

    /// A HubSpot app on the sandbox (the demo app).
    pub async fn hubspot_app(&self, tenant: &str) -> String {
        let base = self.hs.base_url().to_owned();
        self.create_app(
            tenant,
            Provider::Hubspot,
            &base,
            syncline_crm_sandbox::hubspot::DEMO_CLIENT_ID,
            syncline_crm_sandbox::hubspot::DEMO_CLIENT_SECRET,
        )
        .await
    }

    pub async fn create_app(
        &self,
        tenant: &str,
        provider: Provider,
        base: &str,
        id: &str,
        secret: &str,
    ) -> String {
        self.apps()
            .create_provider_app(self.request(
                tenant,
                CreateProviderAppRequest {
                    provider_app: Some(ProviderApp {
                        provider: provider as i32,
                        client_id: id.into(),
                        client_secret: secret.into(),
                        scopes: vec!["api".into(), "refresh_token".into()],
                        authorize_url: base.into(),
                        token_url: base.into(),
                        ..ProviderApp::default()
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .provider_app
            .unwrap()
            .id
    }

    pub async fn token(&self, tenant: &str, id: &str) -> Result<AccessToken, tonic::Status> {
        self.tokens()
            .get_access_token(self.request(
                tenant,
                GetAccessTokenRequest {
                    connection_id: id.into(),
                    min_validity: None,
                },
            ))
            .await
            .map(|r| r.into_inner().token.unwrap())
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.running.stopped().await.unwrap();
        self.sf.shutdown().await;
        self.hs.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A subscriber for this thread that takes every event and drops it. Tests in this binary
/// run on current-thread runtimes under it, so that tracing's per-callsite interest, shared
/// by every thread, is the same whichever test reaches a log line first (the log-capturing
/// test needs every callsite enabled).
pub fn quiet_logs() -> tracing::subscriber::DefaultGuard {
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::set_default(subscriber)
}

/// The field of every violation of an INVALID_ARGUMENT status.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}
