//! Connecting a sandbox CRM through the gateway, as a tenant does: register the sandbox's
//! app as a provider app, authorize it through OAuth in a fake browser (the sandboxes
//! consent at once), deploy a manifest and save field mappings.
//!
//! ```ignore
//! let caller = GatewayCaller::new(channel, token);
//! let connection = connect(&caller, &SandboxApp::salesforce(base_url), "&org=acme").await;
//! deploy_manifest(&caller, MANIFEST).await;
//! save_inbound_mappings(&caller, &connection, "contact", "Contact", &[("email", "Email")]).await;
//! ```

use syncline_proto::authvault::v1::auth_vault_service_client::AuthVaultServiceClient;
use syncline_proto::authvault::v1::{
    CreateProviderAppRequest, ProviderApp, StartAuthorizationRequest,
};
use syncline_proto::common::v1::Provider;
use syncline_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use syncline_proto::mapping::v1::{
    DeployManifestRequest, FieldMapping, MappingDirection, ObjectMapping, SaveFieldMappingsRequest,
    SaveFieldMappingsResponse,
};
use tonic::transport::Channel;

/// One tenant calling the gateway: a channel to it and the tenant's bearer token.
#[derive(Debug, Clone)]
pub struct GatewayCaller {
    channel: Channel,
    token: String,
}

impl GatewayCaller {
    /// Calls through `channel` (to the gateway) with `token` (a JWT naming the tenant).
    pub fn new(channel: Channel, token: String) -> Self {
        Self { channel, token }
    }

    /// The channel to the gateway.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// `message` with `authorization: Bearer <token>`.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.token)
                .parse()
                .expect("a token is a valid header value"),
        );
        request
    }
}

/// HubSpot scopes that read contacts and describe every object type, for schema discovery.
pub const HUBSPOT_SCHEMA_SCOPES: &[&str] = &[
    "oauth",
    "crm.objects.contacts.read",
    "crm.schemas.contacts.read",
    "crm.schemas.companies.read",
    "crm.schemas.deals.read",
    "crm.schemas.custom.read",
];

/// A sandbox CRM's OAuth app, as a tenant registers it as its provider app.
#[derive(Debug, Clone)]
pub struct SandboxApp {
    provider: Provider,
    base_url: String,
    client_id: String,
    client_secret: String,
    scopes: Vec<String>,
}

impl SandboxApp {
    /// The Salesforce sandbox at `base_url`: its demo connected app, scopes `api` and
    /// `refresh_token`.
    pub fn salesforce(base_url: &str) -> Self {
        use syncline_crm_sandbox::salesforce::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
        Self::new(
            Provider::Salesforce,
            base_url,
            (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
            &["api", "refresh_token"],
        )
    }

    /// The HubSpot sandbox at `base_url`: its demo app, asking for `scopes`.
    pub fn hubspot(base_url: &str, scopes: &[&str]) -> Self {
        use syncline_crm_sandbox::hubspot::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
        Self::new(
            Provider::Hubspot,
            base_url,
            (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
            scopes,
        )
    }

    /// Any app of `provider` at `base_url` (authorize and token URL alike).
    pub fn new(provider: Provider, base_url: &str, client: (&str, &str), scopes: &[&str]) -> Self {
        Self {
            provider,
            base_url: base_url.to_owned(),
            client_id: client.0.to_owned(),
            client_secret: client.1.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// The provider app to create, named after its provider (`Salesforce`, `Hubspot`).
    pub fn provider_app(&self) -> ProviderApp {
        ProviderApp {
            provider: self.provider as i32,
            display_name: format!("{:?}", self.provider),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            scopes: self.scopes.clone(),
            authorize_url: self.base_url.clone(),
            token_url: self.base_url.clone(),
            ..ProviderApp::default()
        }
    }
}

/// Registers `app` as the caller's provider app, starts an authorization (connection
/// `CRM`) and follows it in a fake browser through the gateway's callback. `choose` is
/// appended to the authorization URL: `&org=…` picks a Salesforce org, `&portal=…` a HubSpot
/// portal, and without it the sandbox's demo account consents. Returns the now active
/// connection's id.
pub async fn connect(caller: &GatewayCaller, app: &SandboxApp, choose: &str) -> String {
    let mut vault = AuthVaultServiceClient::new(caller.channel());
    let app = vault
        .create_provider_app(caller.request(CreateProviderAppRequest {
            provider_app: Some(app.provider_app()),
        }))
        .await
        .expect("the provider app is created")
        .into_inner()
        .provider_app
        .expect("the created provider app comes back");
    let started = vault
        .start_authorization(caller.request(StartAuthorizationRequest {
            provider_app_id: app.id,
            display_name: "CRM".into(),
            ..Default::default()
        }))
        .await
        .expect("the authorization starts")
        .into_inner();
    authorize_in_browser(&format!("{}{choose}", started.authorization_url)).await;
    started.connection_id
}

/// A client that behaves like the user's browser, except that it does not follow
/// redirects (so a test sees where the provider sends the user).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the http client builds")
}

/// Follows an authorization URL as the user's browser does (the sandbox consents at once)
/// through the gateway's callback, and checks the callback page answers OK.
pub async fn authorize_in_browser(url: &str) {
    let response = browser()
        .get(url)
        .send()
        .await
        .expect("the sandbox answers");
    assert!(response.status().is_redirection(), "{}", response.status());
    let callback = response.headers()["location"]
        .to_str()
        .expect("the redirect is text")
        .to_owned();
    let page = browser()
        .get(&callback)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(page.status(), reqwest::StatusCode::OK);
}

/// Deploys `manifest` for the caller's project, without a description.
pub async fn deploy_manifest(caller: &GatewayCaller, manifest: &str) {
    MappingServiceClient::new(caller.channel())
        .deploy_manifest(caller.request(DeployManifestRequest {
            content: manifest.into(),
            description: String::new(),
        }))
        .await
        .expect("the manifest deploys");
}

/// One inbound mapping of model field `model` from provider field `provider`, untransformed.
pub fn inbound_mapping(model: &str, provider: &str) -> FieldMapping {
    FieldMapping {
        model_fields: vec![model.into()],
        provider_fields: vec![provider.into()],
        direction: MappingDirection::Inbound as i32,
        ..FieldMapping::default()
    }
}

/// Saves the connection's mappings of model object `object` to `provider_object`: one
/// inbound mapping per (model field, provider field) pair, nothing else.
pub async fn save_inbound_mappings(
    caller: &GatewayCaller,
    connection: &str,
    object: &str,
    provider_object: &str,
    pairs: &[(&str, &str)],
) -> SaveFieldMappingsResponse {
    let fields = pairs
        .iter()
        .map(|(model, provider)| inbound_mapping(model, provider))
        .collect();
    save_field_mappings(caller, connection, object, provider_object, fields).await
}

/// Saves `fields` as the connection's mappings of model object `object` to `provider_object`.
pub async fn save_field_mappings(
    caller: &GatewayCaller,
    connection: &str,
    object: &str,
    provider_object: &str,
    fields: Vec<FieldMapping>,
) -> SaveFieldMappingsResponse {
    MappingServiceClient::new(caller.channel())
        .save_field_mappings(caller.request(SaveFieldMappingsRequest {
            connection_id: connection.to_owned(),
            objects: vec![ObjectMapping {
                object: object.into(),
                provider_object: provider_object.into(),
                fields,
            }],
        }))
        .await
        .unwrap_or_else(|status| panic!("the {object} mapping saves: {status}"))
        .into_inner()
}

/// Describes the connection's schema again (schema-discovery's RefreshSchema), as the
/// scheduled refresh does; returns the schema version it answers with.
pub async fn refresh_schema(caller: &GatewayCaller, connection: &str) -> i64 {
    use syncline_proto::schema::v1::RefreshSchemaRequest;
    use syncline_proto::schema::v1::schema_service_client::SchemaServiceClient;
    SchemaServiceClient::new(caller.channel())
        .refresh_schema(caller.request(RefreshSchemaRequest {
            connection_id: connection.to_owned(),
            ..Default::default()
        }))
        .await
        .expect("the schema refreshes")
        .into_inner()
        .schema_version
}
