//! The embedded self-serve mapping page end to end: a scoped token minted through the
//! gateway, then headless Chromium (Debian's `chromium`, driven by `playwright-core`), with
//! the page framed by a product page on another origin that the allow-list names.
//! - Salesforce: sees a sign-in refused at the CRM reported, connects the sandbox, picks
//!   objects, maps a custom field and a picklist and saves; an origin off the list cannot
//!   frame the page.
//! - HubSpot: connects the sandbox through the sign-in window, maps a custom property and
//!   enumeration values on contacts and on the portal's custom `2-…` object, and saves.
//! - Drift, on each CRM: after a saved mapping the sandbox removes one mapped field and
//!   retypes another and the schema is refreshed; the page still opens, shows each broken
//!   mapping next to its object and field, and the admin repairs and saves it: READY again.
//!
//! Each saved plan is read back over gRPC. Also: what the scoped token opens (the page's API
//! only, one tenant, one connection when it names one) and what it does not.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret;
use syncline_crm_sandbox::hubspot::{DEMO_PORTAL_ID, SchemaChange};
use syncline_crm_sandbox::salesforce::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, NewField};
use syncline_integration_tests::{
    Sandboxes, Storage, TestSuite, spawn_suite, spawn_suite_with, unique_tenant,
};
use syncline_proto::authvault::v1::auth_vault_service_client::AuthVaultServiceClient;
use syncline_proto::authvault::v1::{
    CreateProviderAppRequest, ListConnectionsRequest, ProviderApp, StartAuthorizationRequest,
};
use syncline_proto::common::v1::{ConnectionStatus, Provider};
use syncline_proto::embed::v1::CreateEmbedTokenRequest;
use syncline_proto::embed::v1::embed_service_client::EmbedServiceClient;
use syncline_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use syncline_proto::mapping::v1::transform::Kind;
use syncline_proto::mapping::v1::{
    DeployManifestRequest, GetInstallationRequest, GetMappingPlanRequest, Installation,
    InstallationState, MappingPlan,
};
use syncline_proto::schema::v1::RefreshSchemaRequest;
use syncline_proto::schema::v1::schema_service_client::SchemaServiceClient;
use tonic::Code;

/// A manifest with customer-chosen text, date and picklist fields, for either CRM; the
/// project object is off by default and defaults to a standard object, so an admin who
/// syncs it points it at the CRM's custom object on the page.
const MANIFEST: &str = r#"
format: 1
name: embed-e2e
objects:
  contact:
    label: Contact
    access: [read, write]
    providers: { salesforce: Contact, hubspot: contacts }
    fields:
      email: { type: email, label: Email, required: true, map: { salesforce: Email, hubspot: email } }
      last_name: { type: string, label: Last name, required: true, map: { salesforce: LastName, hubspot: lastname } }
      full_name:
        type: string
        label: Full name
        write: never
        map:
          salesforce:
            fields: [FirstName, LastName]
            inbound: [ { concatenate: { separator: " ", skip_empty: true } } ]
          hubspot:
            fields: [firstname, lastname]
            inbound: [ { concatenate: { separator: " ", skip_empty: true } } ]
      segment: { type: string, label: Segment, customer_choice: true }
      signup_date: { type: date, label: Signup date, customer_choice: true }
      tier: { type: picklist, label: Tier, values: [gold, silver, bronze], customer_choice: true }
  deal:
    label: Deal
    access: [read]
    enabled_by_default: false
    providers: { salesforce: Opportunity, hubspot: deals }
    fields:
      name: { type: string, label: Name, required: true, map: { salesforce: Name, hubspot: dealname } }
  project:
    label: Project
    access: [read, write]
    enabled_by_default: false
    providers: { salesforce: Project__c, hubspot: companies }
    fields:
      name: { type: string, label: Name, required: true, customer_choice: true }
      status: { type: picklist, label: Status, values: [planned, active, done], customer_choice: true }
"#;

/// What the HubSpot app asks for: contacts and the schemas the page lists.
const HUBSPOT_SCOPES: &[&str] = &[
    "oauth",
    "crm.objects.contacts.read",
    "crm.schemas.contacts.read",
    "crm.schemas.companies.read",
    "crm.schemas.deals.read",
    "crm.schemas.custom.read",
];

/// The repository root (two levels above this crate).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate has a parent")
        .to_path_buf()
}

/// The browser and driver, or why they are missing. Outside CI a missing piece skips the
/// browser test with the reason printed; with CI=true it fails.
fn browser_or_skip(test: &str) -> Option<PathBuf> {
    let chromium = std::env::var_os("SYNCLINE_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let driver = repo_root().join("node_modules/playwright-core/package.json");
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = if !chromium.exists() {
        Some(format!(
            "{} is missing (apt-get install chromium)",
            chromium.display()
        ))
    } else if !node {
        Some("node is not on PATH".to_owned())
    } else if !driver.exists() {
        Some("node_modules/playwright-core is missing (npm ci)".to_owned())
    } else {
        None
    };
    match missing {
        None => Some(chromium),
        Some(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: {reason}, and CI=true requires the browser test")
        }
        Some(reason) => {
            eprintln!("skipping {test}: {reason}");
            None
        }
    }
}

async fn salesforce_app(suite: &TestSuite, project: &str, tenant: &str, base_url: &str) -> String {
    provider_app(suite, project, tenant, Provider::Salesforce, base_url).await
}

/// Registers the sandbox's demo app of `provider` for the tenant; returns its id.
async fn provider_app(
    suite: &TestSuite,
    project: &str,
    tenant: &str,
    provider: Provider,
    base_url: &str,
) -> String {
    let (display_name, client_id, client_secret, scopes): (&str, &str, &str, &[&str]) =
        match provider {
            Provider::Hubspot => (
                "HubSpot",
                syncline_crm_sandbox::hubspot::DEMO_CLIENT_ID,
                syncline_crm_sandbox::hubspot::DEMO_CLIENT_SECRET,
                HUBSPOT_SCOPES,
            ),
            Provider::Salesforce | Provider::Unspecified => (
                "Salesforce",
                DEMO_CLIENT_ID,
                DEMO_CLIENT_SECRET,
                &["api", "refresh_token"],
            ),
        };
    AuthVaultServiceClient::new(suite.gateway())
        .create_provider_app(suite.as_tenant(
            project,
            tenant,
            CreateProviderAppRequest {
                provider_app: Some(ProviderApp {
                    provider: provider as i32,
                    display_name: display_name.into(),
                    client_id: client_id.into(),
                    client_secret: client_secret.into(),
                    scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                    authorize_url: base_url.into(),
                    token_url: base_url.into(),
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

async fn deploy(suite: &TestSuite, project: &str, tenant: &str) {
    MappingServiceClient::new(suite.gateway())
        .deploy_manifest(suite.as_tenant(
            project,
            tenant,
            DeployManifestRequest {
                content: MANIFEST.into(),
                description: "embed e2e".into(),
            },
        ))
        .await
        .unwrap();
}

async fn mint(
    suite: &TestSuite,
    project: &str,
    tenant: &str,
    connection_id: &str,
    ttl: Option<prost_types::Duration>,
) -> Result<syncline_proto::embed::v1::CreateEmbedTokenResponse, tonic::Status> {
    EmbedServiceClient::new(suite.gateway())
        .create_embed_token(suite.as_tenant(
            project,
            tenant,
            CreateEmbedTokenRequest {
                connection_id: connection_id.into(),
                ttl,
                subject: "admin@customer".into(),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// The product's page framing ours at `/host` (`page_url` carries the `#token=…`).
fn host_router(page_url: &str) -> axum::Router {
    let host_page = format!(
        "<!doctype html><html lang=\"en\"><head><title>Acme settings</title></head><body>\
         <h1>Acme settings</h1><iframe title=\"CRM setup\" src=\"{}\" width=\"1040\" \
         height=\"880\" style=\"border:0\"></iframe></body></html>",
        page_url.replace('&', "&amp;").replace('"', "&quot;")
    );
    axum::Router::new().route(
        "/host",
        axum::routing::get(move || async move { axum::response::Html(host_page) }),
    )
}

/// Runs `integration-tests/e2e/<script>` with node and the given environment; returns the
/// JSON of its last stdout line, or fails with everything it printed.
async fn run_browser(script: &str, chromium: &Path, env: &[(&str, String)]) -> serde_json::Value {
    let started = std::time::Instant::now();
    let mut command = tokio::process::Command::new("node");
    command
        .arg(repo_root().join("integration-tests/e2e").join(script))
        .current_dir(repo_root())
        .env("CHROMIUM", chromium)
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(240), command.output())
        .await
        .expect("the browser run finishes within 4 minutes")
        .expect("node starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser run {script} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    eprintln!("{script}: browser run took {:?}", started.elapsed());
    serde_json::from_str(stdout.lines().last().expect("the script reports")).unwrap()
}

async fn the_mapping_page_connects_maps_a_custom_field_and_picklist_and_saves_in_chromium(
    storage: Storage,
) {
    let test = "the_mapping_page_connects_maps_a_custom_field_and_picklist_and_saves_in_chromium";
    let Some(chromium) = browser_or_skip(test) else {
        return;
    };
    // The product's page that frames ours, on an origin of its own that the allow-list
    // names; the same page on another port is an origin the list does not name.
    let host = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host_port = host.local_addr().unwrap().port();
    let denied = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let denied_port = denied.local_addr().unwrap().port();
    let sandboxes = Sandboxes::start().await;
    let suite = framed_suite(storage, host_port).await;
    let project = unique_tenant("proj");
    let tenant = unique_tenant("acme");
    salesforce_app(&suite, &project, &tenant, sandboxes.salesforce.base_url()).await;
    deploy(&suite, &project, &tenant).await;
    let minted = mint(&suite, &project, &tenant, "", None).await.unwrap();
    assert!(
        minted
            .page_url
            .starts_with(&format!("{}/embed/#token=", suite.gateway_url()))
    );

    let host_app = host_router(&minted.page_url);
    let denied_task = tokio::spawn(axum::serve(denied, host_app.clone()).into_future());
    let host_task = tokio::spawn(axum::serve(host, host_app).into_future());

    let shot = std::env::temp_dir().join(format!("embed-{}.png", uuid::Uuid::new_v4().simple()));
    let reported = run_browser(
        "mapping_page.mjs",
        &chromium,
        &[
            ("HOST_URL", format!("http://127.0.0.1:{host_port}/host")),
            (
                "DENIED_HOST_URL",
                format!("http://127.0.0.1:{denied_port}/host"),
            ),
            ("SCREENSHOT", shot.display().to_string()),
        ],
    )
    .await;
    let connection_id = reported["connection_id"].as_str().unwrap().to_owned();

    // The connection the browser made is the tenant's, and active.
    let connections = AuthVaultServiceClient::new(suite.gateway())
        .list_connections(suite.as_tenant(&project, &tenant, ListConnectionsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .connections;
    let connection = connections
        .iter()
        .find(|c| c.id == connection_id)
        .expect("the page's connection belongs to the tenant");
    assert_eq!(connection.status, ConnectionStatus::Active as i32);

    // The saved plan: the custom field and the picklist, both ways where allowed.
    let mut mapping = MappingServiceClient::new(suite.gateway());
    let installation = mapping
        .get_installation(suite.as_tenant(
            &project,
            &tenant,
            GetInstallationRequest {
                connection_id: connection_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .installation
        .unwrap();
    assert_eq!(installation.state(), InstallationState::Ready);
    let deal = installation.objects.iter().find(|o| o.object == "deal");
    assert!(deal.is_some_and(|d| !d.enabled), "{installation:?}");
    let plan = mapping
        .get_mapping_plan(suite.as_tenant(
            &project,
            &tenant,
            GetMappingPlanRequest {
                connection_id: connection_id.clone(),
                ..GetMappingPlanRequest::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    assert_eq!(plan.plan_version, installation.plan_version);
    let contact = plan
        .objects
        .iter()
        .find(|o| o.object == "contact")
        .expect("contact is planned");
    assert_eq!(contact.provider_object, "Contact");
    assert!(
        !plan.objects.iter().any(|o| o.object == "deal"),
        "deal was left off"
    );
    let inbound = |target: &str| {
        contact
            .inbound
            .iter()
            .find(|r| r.target_field == target)
            .unwrap_or_else(|| panic!("inbound rule for {target}: {contact:?}"))
    };
    assert_eq!(inbound("segment").source_fields, ["Languages__c"]);
    assert_eq!(inbound("signup_date").source_fields, ["Birthdate"]);
    assert_eq!(inbound("email").source_fields, ["Email"]);
    assert_eq!(
        inbound("full_name").source_fields,
        ["FirstName", "LastName"]
    );
    let tier_in = inbound("tier");
    assert_eq!(tier_in.source_fields, ["Level__c"]);
    let Some(Kind::PicklistMap(map)) = &tier_in.transforms[0].kind else {
        panic!("tier maps picklist values inbound: {tier_in:?}");
    };
    assert_eq!(map.values["Primary"], "gold");
    assert_eq!(map.values["Secondary"], "silver");
    assert_eq!(map.values["Tertiary"], "bronze");
    let tier_out = contact
        .outbound
        .iter()
        .find(|r| r.target_field == "Level__c")
        .expect("tier is written back");
    let Some(Kind::PicklistMap(map)) = &tier_out.transforms[0].kind else {
        panic!("tier maps picklist values outbound: {tier_out:?}");
    };
    assert_eq!(map.values["gold"], "Primary");

    // The mapping screen, for the docs.
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG"), "a png");
    std::fs::write(repo_root().join("docs/embed-mapping-page.png"), &png).unwrap();
    let _ = std::fs::remove_file(&shot);

    host_task.abort();
    denied_task.abort();
    suite.stop().await;
    sandboxes.stop().await;
}

/// An embed token signed like the gateway's, with chosen claims (to forge an expired one).
fn embed_token(suite: &TestSuite, claims: &serde_json::Value) -> String {
    let secret = suite
        .config()
        .internal_auth
        .secret
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
    syncline_test_support::tokens::sign(claims, &format!("syncline-embed-token-v1:{secret}"))
}

async fn page_api(
    suite: &TestSuite,
    token: &str,
    path: &str,
) -> (reqwest::StatusCode, serde_json::Value) {
    let response = reqwest::Client::new()
        .get(format!("{}/embed/api{path}", suite.gateway_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

async fn embed_tokens_open_only_the_page_api_of_one_tenant(storage: Storage) {
    let suite = spawn_suite(storage).await;
    let project = unique_tenant("proj");
    let (acme, globex) = (unique_tenant("acme"), unique_tenant("globex"));
    let app = salesforce_app(&suite, &project, &acme, "https://login.example.test").await;
    let start = |tenant: String| {
        let suite = &suite;
        let app = app.clone();
        let project = project.clone();
        async move {
            AuthVaultServiceClient::new(suite.gateway())
                .start_authorization(suite.as_tenant(
                    &project,
                    &tenant,
                    StartAuthorizationRequest {
                        provider_app_id: app,
                        ..StartAuthorizationRequest::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .connection_id
        }
    };
    let acme_first = start(acme.clone()).await;
    let acme_second = start(acme.clone()).await;

    // Minted for acme and its first connection: the page's API answers for it only.
    let minted = mint(&suite, &project, &acme, &acme_first, None)
        .await
        .unwrap();
    let token = minted.token.clone();
    let (status, session) = page_api(&suite, &token, "/session").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{session}");
    assert_eq!(session["tenant_id"], acme.as_str());
    assert_eq!(session["connection_id"], acme_first.as_str());
    let (status, connection) =
        page_api(&suite, &token, &format!("/connections/{acme_first}")).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{connection}");
    assert_eq!(connection["status"], "PENDING_AUTHORIZATION");
    // Another connection of the same tenant is out of the token's scope: like a missing one.
    let (status, body) = page_api(&suite, &token, &format!("/connections/{acme_second}")).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{body}");
    let (missing, _) = page_api(&suite, &token, "/connections/conn_missing").await;
    assert_eq!(missing, reqwest::StatusCode::NOT_FOUND);
    let reconnect = |connection_id: &str| {
        reqwest::Client::new()
            .post(format!("{}/embed/api/connect", suite.gateway_url()))
            .bearer_auth(&token)
            .json(&serde_json::json!({"provider_app_id": app, "connection_id": connection_id}))
            .send()
    };
    assert_eq!(
        reconnect(&acme_second).await.unwrap().status(),
        reqwest::StatusCode::NOT_FOUND,
        "re-authorizing a connection outside the token's scope"
    );
    let restarted: serde_json::Value = reconnect(&acme_first).await.unwrap().json().await.unwrap();
    assert_eq!(
        restarted["connection_id"],
        acme_first.as_str(),
        "{restarted}"
    );

    // The default lifetime is the configured one; asking for more is capped.
    let now = i64::try_from(jsonwebtoken_now()).unwrap();
    let expire = minted.expire_time.unwrap().seconds;
    let default_ttl = i64::try_from(suite.config().gateway.embed.token_ttl_secs).unwrap();
    assert!((expire - now - default_ttl).abs() <= 5, "{expire} vs {now}");
    let long = mint(
        &suite,
        &project,
        &acme,
        "",
        Some(prost_types::Duration {
            seconds: 30 * 86_400,
            nanos: 0,
        }),
    )
    .await
    .unwrap();
    let cap = i64::try_from(suite.config().gateway.embed.max_token_ttl_secs).unwrap();
    assert!(long.expire_time.unwrap().seconds <= now + cap + 5);
    let refused = mint(
        &suite,
        &project,
        &acme,
        "",
        Some(prost_types::Duration {
            seconds: -1,
            nanos: 0,
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);

    // Another tenant cannot mint a token for acme's connection, nor read it with its own.
    let foreign = mint(&suite, &project, &globex, &acme_first, None)
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    let globex_token = mint(&suite, &project, &globex, "", None)
        .await
        .unwrap()
        .token;
    let (status, _) = page_api(&suite, &globex_token, &format!("/connections/{acme_first}")).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    let (status, session) = page_api(&suite, &globex_token, "/session").await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(
        session["connections"].as_array().map(Vec::len),
        Some(0),
        "{session}"
    );

    // The embed token is no gRPC credential.
    let grpc = AuthVaultServiceClient::new(suite.gateway())
        .list_connections(suite.authed(&token, ListConnectionsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(grpc.code(), Code::Unauthenticated);
    let grpc = EmbedServiceClient::new(suite.gateway())
        .create_embed_token(suite.authed(&token, CreateEmbedTokenRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(
        grpc.code(),
        Code::Unauthenticated,
        "an embed token cannot mint another"
    );

    // The product's normal JWT is no page credential; nor is an expired or altered token.
    let (status, body) = page_api(&suite, &suite.token(&project, &acme), "/session").await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
    let now = jsonwebtoken_now();
    let expired = embed_token(
        &suite,
        &serde_json::json!({"iss": "syncline-gateway", "aud": "syncline-embed", "sub": "x",
            "exp": now - 10, "iat": now - 70, "jti": "j", "scope": "embed",
            "project_id": project, "tenant_id": acme}),
    );
    let (status, body) = page_api(&suite, &expired, "/session").await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    let mut altered = token.clone();
    altered.push('x');
    let (status, _) = page_api(&suite, &altered, "/session").await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);

    let (status, body) = page_api(&suite, &token, "/no-such-thing").await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "NOT_FOUND");

    // The page itself: strict CSP, framing only by the allow-list, no inline script.
    let page = reqwest::get(format!("{}/embed/", suite.gateway_url()))
        .await
        .unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.contains("<script src=\"/embed/app.js\" defer></script>"));
    assert_eq!(html.matches("<script").count(), 1, "no inline script");

    suite.stop().await;
}

fn jsonwebtoken_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A suite whose page the product page on `host_port` may frame.
async fn framed_suite(storage: Storage, host_port: u16) -> TestSuite {
    spawn_suite_with(storage, |config| {
        config.gateway.embed.frame_ancestors =
            vec!["'self'".into(), format!("http://127.0.0.1:{host_port}")];
    })
    .await
}

async fn installation_of(
    suite: &TestSuite,
    project: &str,
    tenant: &str,
    connection_id: &str,
) -> Installation {
    MappingServiceClient::new(suite.gateway())
        .get_installation(suite.as_tenant(
            project,
            tenant,
            GetInstallationRequest {
                connection_id: connection_id.to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .installation
        .unwrap()
}

/// The latest plan as a worker reads it (refused while drift breaks it).
async fn plan_of(
    suite: &TestSuite,
    project: &str,
    tenant: &str,
    connection_id: &str,
) -> Result<MappingPlan, tonic::Status> {
    MappingServiceClient::new(suite.gateway())
        .get_mapping_plan(suite.as_tenant(
            project,
            tenant,
            GetMappingPlanRequest {
                connection_id: connection_id.to_owned(),
                plan_version: 0,
                include_broken: false,
            },
        ))
        .await
        .map(|r| r.into_inner().plan.unwrap())
}

/// The value map of a rule's picklist transform.
fn picklist_values(
    rule: &syncline_proto::mapping::v1::CompiledFieldRule,
) -> &std::collections::HashMap<String, String> {
    match rule.transforms.iter().find_map(|t| t.kind.as_ref()) {
        Some(Kind::PicklistMap(map)) => &map.values,
        other => panic!("a picklist map on {rule:?}, not {other:?}"),
    }
}

async fn the_mapping_page_connects_hubspot_maps_a_custom_object_and_enumerations_and_saves_in_chromium(
    storage: Storage,
) {
    let test = "the_mapping_page_connects_hubspot_maps_a_custom_object_and_enumerations_and_saves_in_chromium";
    let Some(chromium) = browser_or_skip(test) else {
        return;
    };
    let host = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host_port = host.local_addr().unwrap().port();
    let sandboxes = Sandboxes::start().await;
    let suite = framed_suite(storage, host_port).await;
    let project = unique_tenant("proj");
    let tenant = unique_tenant("acme");
    provider_app(
        &suite,
        &project,
        &tenant,
        Provider::Hubspot,
        sandboxes.hubspot.base_url(),
    )
    .await;
    deploy(&suite, &project, &tenant).await;
    let minted = mint(&suite, &project, &tenant, "", None).await.unwrap();
    let host_task = tokio::spawn(axum::serve(host, host_router(&minted.page_url)).into_future());

    let reported = run_browser(
        "hubspot_page.mjs",
        &chromium,
        &[("HOST_URL", format!("http://127.0.0.1:{host_port}/host"))],
    )
    .await;
    let connection_id = reported["connection_id"].as_str().unwrap().to_owned();
    let projects = reported["project_object"].as_str().unwrap().to_owned();
    assert!(projects.starts_with("2-"), "{projects}");

    // The connection the browser made is the tenant's HubSpot one, and active.
    let connections = AuthVaultServiceClient::new(suite.gateway())
        .list_connections(suite.as_tenant(&project, &tenant, ListConnectionsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .connections;
    let connection = connections
        .iter()
        .find(|c| c.id == connection_id)
        .expect("the page's connection belongs to the tenant");
    assert_eq!(connection.status, ConnectionStatus::Active as i32);
    assert_eq!(connection.provider, Provider::Hubspot as i32);

    // The installation: contacts and the custom object on, deals off; ready.
    let installation = installation_of(&suite, &project, &tenant, &connection_id).await;
    assert_eq!(
        installation.state(),
        InstallationState::Ready,
        "{installation:?}"
    );
    let selection = |key: &str| {
        installation
            .objects
            .iter()
            .find(|o| o.object == key)
            .unwrap_or_else(|| panic!("{key} in {installation:?}"))
    };
    assert!(!selection("deal").enabled);
    assert!(selection("project").enabled);
    assert_eq!(selection("project").provider_object, projects);

    // The saved plan: custom property and enumeration values on contacts, the custom
    // object's primary property and enumeration on projects.
    let plan = plan_of(&suite, &project, &tenant, &connection_id)
        .await
        .unwrap();
    assert_eq!(plan.plan_version, installation.plan_version);
    let object = |key: &str| {
        plan.objects
            .iter()
            .find(|o| o.object == key)
            .unwrap_or_else(|| panic!("{key} is planned: {plan:?}"))
    };
    let inbound = |key: &str, target: &str| {
        object(key)
            .inbound
            .iter()
            .find(|r| r.target_field == target)
            .unwrap_or_else(|| panic!("inbound rule for {key}.{target}: {plan:?}"))
            .clone()
    };
    let outbound = |key: &str, target: &str| {
        object(key)
            .outbound
            .iter()
            .find(|r| r.target_field == target)
            .unwrap_or_else(|| panic!("outbound rule for {key} -> {target}: {plan:?}"))
            .clone()
    };
    assert_eq!(object("contact").provider_object, "contacts");
    assert_eq!(
        inbound("contact", "segment").source_fields,
        ["external_crm_id"]
    );
    assert_eq!(inbound("contact", "email").source_fields, ["email"]);
    assert_eq!(
        inbound("contact", "full_name").source_fields,
        ["firstname", "lastname"]
    );
    let tier_in = inbound("contact", "tier");
    assert_eq!(tier_in.source_fields, ["customer_tier"]);
    let values = picklist_values(&tier_in);
    assert_eq!(
        (
            values["gold"].as_str(),
            values["silver"].as_str(),
            values["bronze"].as_str()
        ),
        ("gold", "silver", "bronze")
    );
    assert_eq!(
        picklist_values(&outbound("contact", "customer_tier"))["gold"],
        "gold"
    );
    assert_eq!(object("project").provider_object, projects);
    assert_eq!(inbound("project", "name").source_fields, ["project_name"]);
    let status_in = inbound("project", "status");
    assert_eq!(status_in.source_fields, ["status"]);
    assert_eq!(picklist_values(&status_in)["completed"], "done");
    assert_eq!(picklist_values(&status_in)["planned"], "planned");
    assert_eq!(
        picklist_values(&outbound("project", "status"))["done"],
        "completed"
    );
    assert!(!plan.objects.iter().any(|o| o.object == "deal"));

    host_task.abort();
    suite.stop().await;
    sandboxes.stop().await;
}

/// One CRM's drift scenario: the mapping saved first, how the sandbox changes under it,
/// and the broken fields with their repair.
struct Drift {
    provider: Provider,
    /// The contact's CRM object.
    crm_object: &'static str,
    /// `(model field, CRM field)` saved before the drift.
    saved: &'static [(&'static str, &'static str)],
    /// `(model field, label, CRM field drift breaks, CRM field chosen instead or "")`.
    broken: &'static [(&'static str, &'static str, &'static str, &'static str)],
}

const SALESFORCE_DRIFT: Drift = Drift {
    provider: Provider::Salesforce,
    crm_object: "Contact",
    saved: &[
        ("email", "Email"),
        ("last_name", "LastName"),
        ("segment", "Languages__c"),
        ("signup_date", "Signed_Up__c"),
    ],
    broken: &[
        ("segment", "Segment", "Languages__c", "Department"),
        ("signup_date", "Signup date", "Signed_Up__c", ""),
    ],
};

const HUBSPOT_DRIFT: Drift = Drift {
    provider: Provider::Hubspot,
    crm_object: "contacts",
    saved: &[
        ("email", "email"),
        ("last_name", "lastname"),
        ("segment", "external_crm_id"),
        ("signup_date", "renewal_date"),
    ],
    broken: &[
        ("segment", "Segment", "external_crm_id", "jobtitle"),
        ("signup_date", "Signup date", "renewal_date", ""),
    ],
};

/// The customer's own fields the drift scenario maps (the Salesforce sandbox retypes
/// custom fields only, and Contact has no custom date field of its own).
fn prepare_schema(case: &Drift, sandboxes: &Sandboxes) {
    if case.provider == Provider::Salesforce {
        sandboxes
            .salesforce
            .admin()
            .add_field(
                "demo",
                case.crm_object,
                NewField {
                    name: "Signed_Up__c".into(),
                    label: Some("Signed up on".into()),
                    ftype: "date".into(),
                    picklist: Vec::new(),
                    reference_to: None,
                },
            )
            .unwrap();
    }
}

/// Removes the first broken field and retypes the second to text, in the sandbox.
fn drift_schema(case: &Drift, sandboxes: &Sandboxes) {
    let (removed, retyped) = (case.broken[0].2, case.broken[1].2);
    match case.provider {
        Provider::Hubspot => {
            let admin = sandboxes.hubspot.admin();
            admin
                .change_schema(
                    DEMO_PORTAL_ID,
                    case.crm_object,
                    &SchemaChange::Remove {
                        name: removed.into(),
                    },
                )
                .unwrap();
            admin
                .change_schema(
                    DEMO_PORTAL_ID,
                    case.crm_object,
                    &SchemaChange::Retype {
                        name: retyped.into(),
                        ptype: "string".into(),
                    },
                )
                .unwrap();
        }
        Provider::Salesforce | Provider::Unspecified => {
            let admin = sandboxes.salesforce.admin();
            admin
                .remove_field("demo", case.crm_object, removed)
                .unwrap();
            admin
                .retype_field("demo", case.crm_object, retyped, "string")
                .unwrap();
        }
    }
}

/// A saved mapping, then drift under it and a schema refresh; the page flags and repairs it.
async fn drift_flagged_and_repaired_on_the_page(storage: Storage, case: &Drift, test: &str) {
    let Some(chromium) = browser_or_skip(test) else {
        return;
    };
    let host = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host_port = host.local_addr().unwrap().port();
    let sandboxes = Sandboxes::start().await;
    let suite = framed_suite(storage, host_port).await;
    let project = unique_tenant("proj");
    let tenant = unique_tenant("acme");
    let base_url = match case.provider {
        Provider::Hubspot => sandboxes.hubspot.base_url(),
        Provider::Salesforce | Provider::Unspecified => sandboxes.salesforce.base_url(),
    };
    let (client_id, client_secret, scopes): (&str, &str, &[&str]) = match case.provider {
        Provider::Hubspot => (
            syncline_crm_sandbox::hubspot::DEMO_CLIENT_ID,
            syncline_crm_sandbox::hubspot::DEMO_CLIENT_SECRET,
            HUBSPOT_SCOPES,
        ),
        Provider::Salesforce | Provider::Unspecified => (
            DEMO_CLIENT_ID,
            DEMO_CLIENT_SECRET,
            &["api", "refresh_token"],
        ),
    };
    prepare_schema(case, &sandboxes);
    let connection_id = crate::mapping_schema::connect(
        &suite,
        &project,
        &tenant,
        case.provider,
        base_url,
        (client_id, client_secret),
        scopes,
    )
    .await;
    deploy(&suite, &project, &tenant).await;
    let minted = mint(&suite, &project, &tenant, &connection_id, None)
        .await
        .unwrap();

    // The mapping as the page saves it.
    let fields: Vec<serde_json::Value> = case
        .saved
        .iter()
        .map(|(model, crm)| serde_json::json!({"model_field": model, "provider_field": crm}))
        .collect();
    let saved = reqwest::Client::new()
        .post(format!(
            "{}/embed/api/connections/{connection_id}/mappings",
            suite.gateway_url()
        ))
        .bearer_auth(&minted.token)
        .json(&serde_json::json!({"objects": [
            {"object": "contact", "provider_object": case.crm_object, "fields": fields}
        ]}))
        .send()
        .await
        .unwrap();
    let status = saved.status();
    let body: serde_json::Value = saved.json().await.unwrap();
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["installation_state"], "READY", "{body}");

    // Drift: one mapped field goes away, another becomes text; then the schema is refreshed.
    drift_schema(case, &sandboxes);
    SchemaServiceClient::new(suite.gateway())
        .refresh_schema(suite.as_tenant(
            &project,
            &tenant,
            RefreshSchemaRequest {
                connection_id: connection_id.clone(),
                object_names: Vec::new(),
            },
        ))
        .await
        .unwrap();
    let installation = installation_of(&suite, &project, &tenant, &connection_id).await;
    assert_eq!(
        installation.state(),
        InstallationState::NeedsAttention,
        "{installation:?}"
    );
    let issue = &installation
        .objects
        .iter()
        .find(|o| o.object == "contact")
        .unwrap()
        .issue;
    for (_, _, crm_field, _) in case.broken {
        assert!(issue.contains(crm_field), "{issue}");
    }
    let refused = plan_of(&suite, &project, &tenant, &connection_id)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);

    // The page: flagged next to the object and the fields, repaired, saved.
    let host_task = tokio::spawn(axum::serve(host, host_router(&minted.page_url)).into_future());
    let broken: Vec<serde_json::Value> = case
        .broken
        .iter()
        .map(|(key, label, crm_field, repair)| {
            serde_json::json!({"key": key, "label": label, "crm_field": crm_field, "repair": repair})
        })
        .collect();
    let reported = run_browser(
        "drift_page.mjs",
        &chromium,
        &[
            ("HOST_URL", format!("http://127.0.0.1:{host_port}/host")),
            (
                "CASE",
                serde_json::json!({"object": "contact", "object_label": "Contact", "broken": broken})
                    .to_string(),
            ),
        ],
    )
    .await;
    assert_eq!(reported["repaired"], case.broken.len());

    // Over gRPC: ready again, the plan readable by workers and made of the repair.
    let installation = installation_of(&suite, &project, &tenant, &connection_id).await;
    assert_eq!(
        installation.state(),
        InstallationState::Ready,
        "{installation:?}"
    );
    assert!(
        installation.objects.iter().all(|o| o.issue.is_empty()),
        "{installation:?}"
    );
    let plan = plan_of(&suite, &project, &tenant, &connection_id)
        .await
        .expect("the repaired plan is not broken");
    assert!(plan.drift_violations.is_empty());
    let contact = plan.objects.iter().find(|o| o.object == "contact").unwrap();
    for (model, _, crm_field, repair) in case.broken {
        let rule = contact.inbound.iter().find(|r| r.target_field == *model);
        if repair.is_empty() {
            assert!(rule.is_none(), "{model} is no longer synced: {rule:?}");
        } else {
            assert_eq!(rule.unwrap().source_fields, [*repair], "{model}");
        }
        assert!(
            !contact
                .inbound
                .iter()
                .any(|r| r.source_fields.iter().any(|f| f == crm_field)),
            "{crm_field} is no longer read"
        );
    }

    host_task.abort();
    suite.stop().await;
    sandboxes.stop().await;
}

async fn the_mapping_page_flags_salesforce_drift_and_the_admin_repairs_it_in_chromium(
    storage: Storage,
) {
    drift_flagged_and_repaired_on_the_page(
        storage,
        &SALESFORCE_DRIFT,
        "the_mapping_page_flags_salesforce_drift_and_the_admin_repairs_it_in_chromium",
    )
    .await;
}

async fn the_mapping_page_flags_hubspot_drift_and_the_admin_repairs_it_in_chromium(
    storage: Storage,
) {
    drift_flagged_and_repaired_on_the_page(
        storage,
        &HUBSPOT_DRIFT,
        "the_mapping_page_flags_hubspot_drift_and_the_admin_repairs_it_in_chromium",
    )
    .await;
}

crate::both_storages!(
    the_mapping_page_connects_maps_a_custom_field_and_picklist_and_saves_in_chromium,
    the_mapping_page_connects_hubspot_maps_a_custom_object_and_enumerations_and_saves_in_chromium,
    the_mapping_page_flags_salesforce_drift_and_the_admin_repairs_it_in_chromium,
    the_mapping_page_flags_hubspot_drift_and_the_admin_repairs_it_in_chromium,
    embed_tokens_open_only_the_page_api_of_one_tenant,
);
