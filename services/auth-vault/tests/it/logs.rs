//! No secret reaches the logs: the whole credential life cycle (app creation, connect,
//! replayed/forged callbacks, refresh, 401 report, revocation, import, export) runs with
//! every log line of Syncline (TRACE) and its libraries (DEBUG) captured, and none holds a
//! secret.

use std::io::Write;
use std::sync::{Arc, Mutex};

use secrecy::SecretString;
use syncline_config::SynclineConfig;
use syncline_crm_sandbox::hubspot::{HubSpotConfig, HubSpotSandbox};
use syncline_crm_sandbox::salesforce::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SalesforceConfig, SalesforceSandbox,
};
use syncline_domain::{ProjectId, TenantContext, TenantId};
use syncline_proto::authvault::v1::auth_vault_service_client::AuthVaultServiceClient;
use syncline_proto::authvault::v1::token_service_client::TokenServiceClient;
use syncline_proto::authvault::v1::{
    CompleteAuthorizationRequest, CreateProviderAppRequest, Credentials, ExportCredentialsRequest,
    GetAccessTokenRequest, ImportCredentialsRequest, ProviderApp, ReportUnauthorizedRequest,
    StartAuthorizationRequest, exported_credentials,
};
use syncline_proto::common::v1::Provider;
use syncline_service_kit::InternalAuth;
use syncline_service_kit::client::ServiceCaller;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

struct Vault {
    caller: ServiceCaller,
    context: TenantContext,
    channel: tonic::transport::Channel,
}

impl Vault {
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        self.caller.request(&self.context, message).unwrap()
    }

    fn apps(&self) -> AuthVaultServiceClient<tonic::transport::Channel> {
        AuthVaultServiceClient::new(self.channel.clone())
    }

    fn tokens(&self) -> TokenServiceClient<tonic::transport::Channel> {
        TokenServiceClient::new(self.channel.clone())
    }

    async fn create_app(&self, provider: Provider, base: &str, id: &str, secret: &str) -> String {
        self.apps()
            .create_provider_app(self.request(CreateProviderAppRequest {
                provider_app: Some(ProviderApp {
                    provider: provider as i32,
                    client_id: id.into(),
                    client_secret: secret.into(),
                    scopes: vec!["api".into(), "refresh_token".into()],
                    authorize_url: base.into(),
                    token_url: base.into(),
                    ..ProviderApp::default()
                }),
            }))
            .await
            .unwrap()
            .into_inner()
            .provider_app
            .unwrap()
            .id
    }

    /// Starts an authorization and follows the sandbox; returns (connection, code, state).
    async fn authorize(&self, app_id: &str) -> (String, String, String) {
        let started = self
            .apps()
            .start_authorization(self.request(StartAuthorizationRequest {
                provider_app_id: app_id.into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(&started.authorization_url)
            .send()
            .await
            .unwrap();
        let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        let get = |k: &str| {
            location
                .query_pairs()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.into_owned())
                .unwrap()
        };
        (started.connection_id, get("code"), get("state"))
    }

    async fn complete(&self, code: &str, state: &str) -> Result<String, tonic::Status> {
        self.tokens()
            .complete_authorization(self.request(CompleteAuthorizationRequest {
                state: state.into(),
                code: code.into(),
                ..Default::default()
            }))
            .await
            .map(|r| r.into_inner().connection_id)
    }

    async fn token(
        &self,
        id: &str,
    ) -> Result<syncline_proto::authvault::v1::AccessToken, tonic::Status> {
        self.tokens()
            .get_access_token(self.request(GetAccessTokenRequest {
                connection_id: id.into(),
                min_validity: None,
            }))
            .await
            .map(|r| r.into_inner().token.unwrap())
    }

    async fn report(
        &self,
        id: &str,
        version: i64,
    ) -> Result<syncline_proto::authvault::v1::AccessToken, tonic::Status> {
        self.tokens()
            .report_unauthorized(self.request(ReportUnauthorizedRequest {
                connection_id: id.into(),
                token_version: version,
                provider_error: "INVALID_SESSION_ID".into(),
            }))
            .await
            .map(|r| r.into_inner().token.unwrap())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_the_logs() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "debug,syncline_auth_vault=trace,syncline_service_kit=trace,syncline_domain=trace,\
             syncline_storage=trace,syncline_crm_sandbox=off",
        ))
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

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

    let dir = std::env::temp_dir().join(format!("auth-vault-logs-{}", uuid::Uuid::new_v4()));
    let secret = SecretString::from("0123456789abcdef0123456789abcdef-logs".to_owned());
    let mut config = SynclineConfig {
        data_dir: dir.clone(),
        ..SynclineConfig::default()
    };
    config.internal_auth.secret = Some(secret.clone());
    config.auth_vault.listen_addr = "127.0.0.1:0".parse().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let running = syncline_auth_vault::start(&config, listener, shutdown.clone())
        .await
        .unwrap();
    let vault = Vault {
        caller: ServiceCaller::new(Arc::new(InternalAuth::new(&secret)), "sync-engine"),
        context: TenantContext {
            project_id: ProjectId::parse("p-logs").unwrap(),
            tenant_id: TenantId::parse("acme").unwrap(),
            subject: "test".into(),
        },
        channel: tonic::transport::Channel::from_shared(format!("http://{}", running.local_addr()))
            .unwrap()
            .connect_lazy(),
    };

    let mut secrets: Vec<String> = vec![
        DEMO_CLIENT_SECRET.into(),
        syncline_crm_sandbox::hubspot::DEMO_CLIENT_SECRET.into(),
        "5Aep861".into(),
        "!AQ".into(),
    ];

    // Salesforce: connect, replay the callback, forge a code, refresh, report a 401.
    let sf_app = vault
        .create_app(
            Provider::Salesforce,
            sf.base_url(),
            DEMO_CLIENT_ID,
            DEMO_CLIENT_SECRET,
        )
        .await;
    let (_, code, state) = vault.authorize(&sf_app).await;
    secrets.push(code.clone());
    let id = vault.complete(&code, &state).await.unwrap();
    assert!(vault.complete(&code, &state).await.is_err());
    let (_, code, state) = vault.authorize(&sf_app).await;
    secrets.push(code.clone());
    assert!(vault.complete("forged-code", &state).await.is_err());
    let first = vault.token(&id).await.unwrap();
    let second = vault.report(&id, first.version).await.unwrap();
    assert_eq!(second.version, first.version + 1);
    secrets.push(first.access_token.clone());
    secrets.push(second.access_token.clone());
    // Revoked at the provider: NEEDS_REAUTH, logged without the token.
    sf.admin().revoke_refresh_tokens("demo").unwrap();
    assert!(vault.report(&id, second.version).await.is_err());

    // HubSpot: the token-info call puts the access token in a URL path.
    let hs_app = vault
        .create_app(
            Provider::Hubspot,
            hs.base_url(),
            syncline_crm_sandbox::hubspot::DEMO_CLIENT_ID,
            syncline_crm_sandbox::hubspot::DEMO_CLIENT_SECRET,
        )
        .await;
    let (_, code, state) = vault.authorize(&hs_app).await;
    secrets.push(code.clone());
    let hs_id = vault.complete(&code, &state).await.unwrap();
    let hs_first = vault.token(&hs_id).await.unwrap();
    let hs_second = vault.report(&hs_id, hs_first.version).await.unwrap();
    secrets.push(hs_first.access_token.clone());
    secrets.push(hs_second.access_token.clone());

    // Import (a refused access token, then the refresh token) and a plaintext export.
    let issued = hs
        .admin()
        .issue_tokens(
            syncline_crm_sandbox::hubspot::DEMO_CLIENT_ID,
            syncline_crm_sandbox::hubspot::DEMO_PORTAL_ID,
        )
        .unwrap();
    secrets.push(issued.access_token.clone());
    let imported = vault
        .apps()
        .import_credentials(vault.request(ImportCredentialsRequest {
            provider_app_id: hs_app.clone(),
            credentials: Some(Credentials {
                access_token: "refused-access-token-0000".into(),
                refresh_token: issued.refresh_token.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .connection
        .unwrap();
    let exported = vault
        .apps()
        .export_credentials(vault.request(ExportCredentialsRequest {
            connection_ids: vec![imported.id.clone()],
            allow_plaintext: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    if let Some(exported_credentials::Credentials::Plaintext(plain)) =
        &exported.exports[0].credentials
    {
        secrets.push(plain.access_token.clone());
    }
    secrets.push("refused-access-token-0000".into());

    shutdown.cancel();
    running.stopped().await.unwrap();
    sf.shutdown().await;
    hs.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    // The capture works: the life cycle was logged.
    for expected in [
        "authorization completed",
        "access token refreshed",
        "needs re-authorization",
        "credentials imported",
        "credentials exported",
    ] {
        assert!(
            logs.contains(expected),
            "missing `{expected}` in the logs:\n{logs}"
        );
    }
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "`{secret}` leaked into the logs"
        );
    }
    // HubSpot sandbox refresh tokens are dashed UUIDs; nothing else logged here is.
    let dashed_uuid = logs.as_bytes().windows(36).any(|w| {
        w.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
    });
    assert!(!dashed_uuid, "a hubspot refresh token leaked into the logs");
    if std::env::var_os("SHOW_CAPTURED_LOGS").is_some() {
        println!("{logs}");
    }
}
