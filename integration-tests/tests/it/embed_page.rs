//! The embedded self-serve mapping page end to end: a scoped token minted through the
//! gateway, then headless Chromium (Debian's `chromium`, driven by `playwright-core`), with
//! the page framed by a product page on another origin that the allow-list names, sees a
//! sign-in refused at the CRM reported, connects the Salesforce sandbox, picks objects, maps a custom field and a picklist and saves; the
//! saved plan is then read back over gRPC, and an origin off the list cannot frame it. Also: what the scoped token opens
//! (the page's API only, one tenant, one connection when it names one) and what it does not.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret;
use syncline_crm_sandbox::salesforce::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
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
    DeployManifestRequest, GetInstallationRequest, GetMappingPlanRequest, InstallationState,
};
use tonic::Code;

/// A manifest with customer-chosen text, date and picklist fields.
const MANIFEST: &str = r#"
format: 1
name: embed-e2e
objects:
  contact:
    label: Contact
    access: [read, write]
    providers: { salesforce: Contact }
    fields:
      email: { type: email, label: Email, required: true, map: { salesforce: Email } }
      last_name: { type: string, label: Last name, required: true, map: { salesforce: LastName } }
      full_name:
        type: string
        label: Full name
        write: never
        map:
          salesforce:
            fields: [FirstName, LastName]
            inbound: [ { concatenate: { separator: " ", skip_empty: true } } ]
      segment: { type: string, label: Segment, customer_choice: true }
      signup_date: { type: date, label: Signup date, customer_choice: true }
      tier: { type: picklist, label: Tier, values: [gold, silver, bronze], customer_choice: true }
  deal:
    label: Deal
    access: [read]
    enabled_by_default: false
    providers: { salesforce: Opportunity }
    fields:
      name: { type: string, label: Name, required: true, map: { salesforce: Name } }
"#;

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
    AuthVaultServiceClient::new(suite.gateway())
        .create_provider_app(suite.as_tenant(
            project,
            tenant,
            CreateProviderAppRequest {
                provider_app: Some(ProviderApp {
                    provider: Provider::Salesforce as i32,
                    display_name: "Salesforce".into(),
                    client_id: DEMO_CLIENT_ID.into(),
                    client_secret: DEMO_CLIENT_SECRET.into(),
                    scopes: vec!["api".into(), "refresh_token".into()],
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
    let suite = spawn_suite_with(storage, |config| {
        config.gateway.embed.frame_ancestors =
            vec!["'self'".into(), format!("http://127.0.0.1:{host_port}")];
    })
    .await;
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

    let host_page = format!(
        "<!doctype html><html lang=\"en\"><head><title>Acme settings</title></head><body>\
         <h1>Acme settings</h1><iframe title=\"CRM setup\" src=\"{}\" width=\"1040\" \
         height=\"880\" style=\"border:0\"></iframe></body></html>",
        minted.page_url.replace('&', "&amp;").replace('"', "&quot;")
    );
    let host_app = axum::Router::new().route(
        "/host",
        axum::routing::get(move || async move { axum::response::Html(host_page) }),
    );
    let denied_task = tokio::spawn(axum::serve(denied, host_app.clone()).into_future());
    let host_task = tokio::spawn(axum::serve(host, host_app).into_future());

    let shot = std::env::temp_dir().join(format!("embed-{}.png", uuid::Uuid::new_v4().simple()));
    let script = repo_root().join("integration-tests/e2e/mapping_page.mjs");
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .current_dir(repo_root())
        .env("HOST_URL", format!("http://127.0.0.1:{host_port}/host"))
        .env(
            "DENIED_HOST_URL",
            format!("http://127.0.0.1:{denied_port}/host"),
        )
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOT", &shot)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser run finishes within 4 minutes")
        .expect("node starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser run failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let reported: serde_json::Value = serde_json::from_str(
        stdout
            .lines()
            .last()
            .expect("the script reports the connection"),
    )
    .unwrap();
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

crate::both_storages!(
    the_mapping_page_connects_maps_a_custom_field_and_picklist_and_saves_in_chromium,
    embed_tokens_open_only_the_page_api_of_one_tenant,
);
