//! auth-vault end to end: provider apps through the gateway, the OAuth connect flow against
//! the CRM sandboxes through the gateway's HTTP callback, state tampering and replay,
//! re-authorization, tenant isolation, tokens at rest, and single-flight refresh.

use std::collections::HashSet;

use syncline_config::ServiceName;
use syncline_crm_sandbox::hubspot::DEMO_PORTAL_ID;
use syncline_crm_sandbox::salesforce::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, OrgConfig};
use syncline_integration_tests::{Sandboxes, Storage, TestSuite, spawn_suite, unique_tenant};
use syncline_proto::authvault::v1::auth_vault_service_client::AuthVaultServiceClient;
use syncline_proto::authvault::v1::token_service_client::TokenServiceClient;
use syncline_proto::authvault::v1::{
    AccessToken, Connection, CreateProviderAppRequest, GetAccessTokenRequest, GetConnectionRequest,
    GetProviderAppRequest, ListConnectionsRequest, ProviderApp, ReportUnauthorizedRequest,
    RotateKeyEncryptionKeyRequest, StartAuthorizationRequest, StartAuthorizationResponse,
};
use syncline_proto::common::v1::{ConnectionStatus, Provider};
use syncline_test_support::crm::{SandboxApp, browser};
use tonic::Code;

const PROJECT: &str = "proj-connect";

/// Registers `app` for `tenant` as `<provider> app`; checks its secret went in and does not
/// come back.
async fn create_app(suite: &TestSuite, tenant: &str, app: &SandboxApp) -> ProviderApp {
    let app = app.provider_app();
    let app = ProviderApp {
        display_name: format!("{} app", app.display_name),
        ..app
    };
    let created = AuthVaultServiceClient::new(suite.gateway())
        .create_provider_app(suite.as_tenant(
            PROJECT,
            tenant,
            CreateProviderAppRequest {
                provider_app: Some(app),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .provider_app
        .unwrap();
    assert!(created.client_secret.is_empty(), "a secret came back");
    assert!(created.client_secret_set);
    created
}

async fn start(
    suite: &TestSuite,
    tenant: &str,
    app_id: &str,
    connection_id: &str,
) -> StartAuthorizationResponse {
    AuthVaultServiceClient::new(suite.gateway())
        .start_authorization(suite.as_tenant(
            PROJECT,
            tenant,
            StartAuthorizationRequest {
                provider_app_id: app_id.into(),
                connection_id: connection_id.into(),
                display_name: "CRM".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// Follows the authorization URL (the sandboxes approve at once) and returns the gateway
/// callback URL the provider redirected to.
async fn authorize(suite: &TestSuite, authorization_url: &str) -> String {
    let response = browser().get(authorization_url).send().await.unwrap();
    assert!(
        response.status().is_redirection(),
        "authorize answered {}",
        response.status()
    );
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/oauth/callback?", suite.gateway_url())),
        "{location}"
    );
    location
}

/// Opens the callback like the browser would; returns the status and page.
async fn callback(url: &str) -> (reqwest::StatusCode, String) {
    let response = browser().get(url).send().await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

async fn connection(
    suite: &TestSuite,
    tenant: &str,
    id: &str,
) -> Result<Connection, tonic::Status> {
    AuthVaultServiceClient::new(suite.gateway())
        .get_connection(suite.as_tenant(
            PROJECT,
            tenant,
            GetConnectionRequest {
                connection_id: id.into(),
            },
        ))
        .await
        .map(|r| r.into_inner().connection.unwrap())
}

async fn connections(suite: &TestSuite, tenant: &str) -> Vec<Connection> {
    AuthVaultServiceClient::new(suite.gateway())
        .list_connections(suite.as_tenant(PROJECT, tenant, ListConnectionsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .connections
}

async fn token(suite: &TestSuite, tenant: &str, id: &str) -> Result<AccessToken, tonic::Status> {
    TokenServiceClient::new(suite.channel(ServiceName::AuthVault))
        .get_access_token(suite.as_service(
            "sync-engine",
            PROJECT,
            tenant,
            GetAccessTokenRequest {
                connection_id: id.into(),
                min_validity: None,
            },
        ))
        .await
        .map(|r| r.into_inner().token.unwrap())
}

/// Rows of the vault's tables, for counting.
async fn count(suite: &TestSuite, table: &str) -> i64 {
    use sqlx::Row;
    let db = suite
        .service_database(ServiceName::AuthVault, syncline_auth_vault::MIGRATIONS)
        .await;
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let n = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get::<i64, _>(0)
        .unwrap();
    db.close().await;
    n
}

/// Everything the vault stores, as bytes: every row of every table (bytes columns as they
/// are, hex-decoded on PostgreSQL), plus the SQLite files themselves.
async fn dump(suite: &TestSuite) -> Vec<u8> {
    use sqlx::Row;
    let db = suite
        .service_database(ServiceName::AuthVault, syncline_auth_vault::MIGRATIONS)
        .await;
    let mut out = Vec::new();
    for (_, bytes) in suite.sqlite_files(ServiceName::AuthVault) {
        out.extend(bytes);
    }
    let tables = [
        ("provider_apps", "id, project_id, app, client_secret"),
        ("connections", "id, tenant_id, connection"),
        (
            "credentials",
            "connection_id, access_token, refresh_token, token_url",
        ),
        ("data_keys", "project_id, tenant_id, kek_id, wrapped_key"),
        (
            "oauth_states",
            "nonce, redirect_uri, return_url, code_verifier",
        ),
        ("vault_settings", "name, value"),
    ];
    for (table, columns) in tables {
        let sql = format!("SELECT {columns} FROM {table}");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(db.pool())
            .await
            .unwrap();
        for row in rows {
            for i in 0..row.len() {
                if let Ok(Some(text)) = row.try_get::<Option<String>, _>(i) {
                    out.extend(text.into_bytes());
                } else if let Ok(Some(bytes)) = row.try_get::<Option<Vec<u8>>, _>(i) {
                    out.extend(bytes);
                }
                out.push(b'\n');
            }
        }
    }
    db.close().await;
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn connect_flow_end_to_end(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = spawn_suite(storage).await;
    let sf = &sandboxes.salesforce;
    let hs = &sandboxes.hubspot;
    let acme = unique_tenant("acme");

    // Provider apps through the gateway; secrets go in and never come out.
    let sf_app = create_app(&suite, &acme, &SandboxApp::salesforce(sf.base_url())).await;
    let hs_app = create_app(
        &suite,
        &acme,
        &SandboxApp::hubspot(hs.base_url(), &["crm.objects.contacts.read", "oauth"]),
    )
    .await;

    // Salesforce: start, follow the provider, land on the gateway's callback.
    let started = start(&suite, &acme, &sf_app.id, "").await;
    let pending = connection(&suite, &acme, &started.connection_id)
        .await
        .unwrap();
    assert_eq!(
        pending.status,
        ConnectionStatus::PendingAuthorization as i32
    );
    let auth_url = url::Url::parse(&started.authorization_url).unwrap();
    let query: std::collections::HashMap<_, _> = auth_url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query["redirect_uri"].starts_with(&suite.gateway_url()));
    let callback_url = authorize(&suite, &started.authorization_url).await;
    let (status, page) = callback(&callback_url).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    assert!(page.contains("Connected"), "{page}");
    let sf_connection = connection(&suite, &acme, &started.connection_id)
        .await
        .unwrap();
    assert_eq!(sf_connection.status, ConnectionStatus::Active as i32);
    let org = sf
        .admin()
        .orgs()
        .into_iter()
        .find(|o| o.name == "demo")
        .unwrap();
    assert_eq!(sf_connection.external_account_id, org.org_id);
    assert_eq!(sf_connection.instance_url, sf.base_url());
    assert!(sf_connection.authorize_time.is_some());
    assert_eq!(sf.admin().stats("demo").unwrap().stats.code_grants, 1);

    // The same callback again (a replay), or with an altered state: refused, nothing stored.
    let rows_before = (
        count(&suite, "connections").await,
        count(&suite, "credentials").await,
    );
    let (status, page) = callback(&callback_url).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert!(page.contains("already used"), "{page}");
    let tampered = {
        let mut url = url::Url::parse(&callback_url).unwrap();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "state" {
                    // Push the expiry a day further: the signature no longer matches.
                    let (payload, sig) = v.rsplit_once('.').unwrap();
                    let (nonce, exp) = payload.split_once('.').unwrap();
                    let exp: i64 = exp.parse().unwrap();
                    format!("{nonce}.{}.{sig}", exp + 86_400_000)
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        url.to_string()
    };
    let (status, page) = callback(&tampered).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert!(page.contains("not valid"), "{page}");
    let (status, _) = callback(&format!("{}/oauth/callback?code=x", suite.gateway_url())).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    // A fresh state for a pending authorization, completed with a forged code: the
    // exchange fails and the connection is not activated.
    let other = start(&suite, &acme, &sf_app.id, "").await;
    let forged = authorize(&suite, &other.authorization_url).await;
    let forged = forged.replacen("code=", "code=forged", 1);
    let (status, page) = callback(&forged).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("refused"), "{page}");
    let still_pending = connection(&suite, &acme, &other.connection_id)
        .await
        .unwrap();
    assert_eq!(
        still_pending.status,
        ConnectionStatus::PendingAuthorization as i32
    );
    assert_eq!(count(&suite, "credentials").await, rows_before.1);
    assert_eq!(count(&suite, "connections").await, rows_before.0 + 1);
    assert_eq!(sf.admin().stats("demo").unwrap().stats.code_grants, 1);

    // The end user declines at the provider: a clear page, nothing activated.
    let declined = start(&suite, &acme, &sf_app.id, "").await;
    let url = format!("{}&deny=true", declined.authorization_url);
    let (status, page) = callback(&authorize(&suite, &url).await).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert!(page.contains("access_denied"), "{page}");
    let declined = connection(&suite, &acme, &declined.connection_id)
        .await
        .unwrap();
    assert_eq!(
        declined.status,
        ConnectionStatus::PendingAuthorization as i32
    );

    // Re-authorizing keeps the id and configuration; connecting the same org again through
    // the same app reuses the connection instead of duplicating it.
    let again = start(&suite, &acme, &sf_app.id, &sf_connection.id).await;
    assert_eq!(again.connection_id, sf_connection.id);
    let (status, _) = callback(&authorize(&suite, &again.authorization_url).await).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let fresh = start(&suite, &acme, &sf_app.id, "").await;
    let (status, _) = callback(&authorize(&suite, &fresh.authorization_url).await).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let salesforce: Vec<Connection> = connections(&suite, &acme)
        .await
        .into_iter()
        .filter(|c| c.status == ConnectionStatus::Active as i32)
        .collect();
    assert_eq!(salesforce.len(), 1, "{salesforce:?}");
    assert_eq!(salesforce[0].id, sf_connection.id);
    assert_eq!(salesforce[0].display_name, sf_connection.display_name);
    assert!(
        connection(&suite, &acme, &fresh.connection_id)
            .await
            .is_err()
    );
    assert_eq!(sf.admin().stats("demo").unwrap().stats.code_grants, 3);

    // HubSpot: portal id from the token info endpoint.
    let started = start(&suite, &acme, &hs_app.id, "").await;
    let (status, page) = callback(&authorize(&suite, &started.authorization_url).await).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    let hs_connection = connection(&suite, &acme, &started.connection_id)
        .await
        .unwrap();
    assert_eq!(hs_connection.status, ConnectionStatus::Active as i32);
    assert_eq!(
        hs_connection.external_account_id,
        DEMO_PORTAL_ID.to_string()
    );
    assert_eq!(hs_connection.instance_url, hs.base_url());

    // Usable tokens for both (internal call, as a service would make it).
    let sf_token = token(&suite, &acme, &sf_connection.id).await.unwrap();
    let hs_token = token(&suite, &acme, &hs_connection.id).await.unwrap();
    assert_eq!(sf_token.instance_url, sf.base_url());
    assert!(sf_token.expire_time.is_some() && hs_token.expire_time.is_some());
    let response = browser()
        .get(format!("{}/services/data/v59.0/limits", sf.base_url()))
        .bearer_auth(&sf_token.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);

    // Another tenant, or another project, sees none of it.
    let globex = unique_tenant("globex");
    assert_eq!(
        connection(&suite, &globex, &sf_connection.id)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let status = AuthVaultServiceClient::new(suite.gateway())
        .start_authorization(suite.as_tenant(
            PROJECT,
            &globex,
            StartAuthorizationRequest {
                provider_app_id: sf_app.id.clone(),
                connection_id: sf_connection.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = AuthVaultServiceClient::new(suite.gateway())
        .get_provider_app(suite.as_tenant(
            "proj-other",
            &acme,
            GetProviderAppRequest {
                provider_app_id: sf_app.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = token(&suite, &globex, &sf_connection.id).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // The gateway never forwards TokenService.
    let status = TokenServiceClient::new(suite.gateway())
        .get_access_token(suite.as_tenant(
            PROJECT,
            &acme,
            GetAccessTokenRequest {
                connection_id: sf_connection.id.clone(),
                min_validity: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);

    // At rest: no token, refresh token or client secret in plaintext anywhere.
    let stored = dump(&suite).await;
    assert!(stored.len() > 1000);
    for secret in [
        DEMO_CLIENT_SECRET,
        syncline_crm_sandbox::hubspot::DEMO_CLIENT_SECRET,
        sf_token.access_token.as_str(),
        hs_token.access_token.as_str(),
        "5Aep861", // every Salesforce sandbox refresh token starts so
        "!AQ",     // and every Salesforce access token carries this
    ] {
        assert!(
            !contains(&stored, secret),
            "plaintext secret `{secret}` stored"
        );
    }
    // HubSpot sandbox refresh tokens are dashed UUIDs; Syncline's own ids never are.
    assert!(
        !has_dashed_uuid(&stored),
        "a hubspot refresh token is stored in plaintext"
    );

    // Rotating the key-encryption key re-wraps data keys; tokens still open after it.
    let kek = TokenServiceClient::new(suite.channel(ServiceName::AuthVault))
        .rotate_key_encryption_key(suite.as_service(
            "operator",
            PROJECT,
            &acme,
            RotateKeyEncryptionKeyRequest {
                new_key_id: "not-in-the-ring".into(),
                dry_run: false,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(kek.code(), Code::FailedPrecondition);
    assert_eq!(
        token(&suite, &acme, &sf_connection.id)
            .await
            .unwrap()
            .access_token,
        sf_token.access_token
    );

    suite.stop().await;
    sandboxes.stop().await;
}

fn has_dashed_uuid(bytes: &[u8]) -> bool {
    let hex = |b: u8| b.is_ascii_hexdigit();
    bytes.windows(36).any(|w| {
        w.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => hex(b),
        })
    })
}

/// Connects `tenant` to the Salesforce sandbox org `org`; returns the connection id.
async fn connect_salesforce(
    suite: &TestSuite,
    sandboxes: &Sandboxes,
    tenant: &str,
    app_id: &str,
    org: &str,
) -> String {
    let started = start(suite, tenant, app_id, "").await;
    let url = format!("{}&org={org}", started.authorization_url);
    let (status, page) = callback(&authorize(suite, &url).await).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    let _ = sandboxes;
    started.connection_id
}

/// Makes a connection's access token a two-hour token with one minute left.
async fn expire_soon(suite: &TestSuite, connection_id: &str) {
    set_expiry(suite, connection_id, 60_000).await;
}

/// Makes a connection's access token a two-hour token expiring `left_ms` from now.
async fn set_expiry(suite: &TestSuite, connection_id: &str, left_ms: i64) {
    let db = suite
        .service_database(ServiceName::AuthVault, syncline_auth_vault::MIGRATIONS)
        .await;
    let now = syncline_storage::now_ms();
    let done = sqlx::query(
        "UPDATE credentials SET expires_at_ms = $1, obtained_at_ms = $2 WHERE connection_id = $3",
    )
    .bind(now + left_ms)
    .bind(now + left_ms - 7_200_000)
    .bind(connection_id)
    .execute(db.pool())
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1);
    db.close().await;
}

async fn concurrent_token_requests_refresh_once(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = spawn_suite(storage).await;
    let sf = &sandboxes.salesforce;
    let tenant = unique_tenant("acme");
    let app = create_app(&suite, &tenant, &SandboxApp::salesforce(sf.base_url())).await;
    let id = connect_salesforce(&suite, &sandboxes, &tenant, &app.id, "demo").await;
    let before = token(&suite, &tenant, &id).await.unwrap();
    assert_eq!(sf.admin().stats("demo").unwrap().stats.refresh_grants, 0);

    // 1,000 concurrent requests for a token that expires within the margin.
    expire_soon(&suite, &id).await;
    let client = TokenServiceClient::new(suite.channel(ServiceName::AuthVault));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let mut client = client.clone();
        let request = suite.as_service(
            "sync-engine",
            PROJECT,
            &tenant,
            GetAccessTokenRequest {
                connection_id: id.clone(),
                min_validity: None,
            },
        );
        tasks.push(tokio::spawn(async move {
            client
                .get_access_token(request)
                .await
                .map(|r| r.into_inner().token.unwrap())
        }));
    }
    let mut tokens = HashSet::new();
    let mut versions = HashSet::new();
    for task in tasks {
        let token = task.await.unwrap().unwrap();
        versions.insert(token.version);
        tokens.insert(token.access_token);
    }
    assert_eq!(sf.admin().stats("demo").unwrap().stats.refresh_grants, 1);
    assert_eq!(tokens.len(), 1, "every caller got the one refreshed token");
    assert_eq!(versions, HashSet::from([before.version + 1]));
    assert!(!tokens.contains(&before.access_token));

    // 1,000 concurrent reports that this version was rejected: one refresh, and everyone
    // gets the token that replaced it.
    let current = token(&suite, &tenant, &id).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let mut client = client.clone();
        let request = suite.as_service(
            "sync-engine",
            PROJECT,
            &tenant,
            ReportUnauthorizedRequest {
                connection_id: id.clone(),
                token_version: current.version,
                provider_error: "INVALID_SESSION_ID".into(),
            },
        );
        tasks.push(tokio::spawn(async move {
            client
                .report_unauthorized(request)
                .await
                .map(|r| r.into_inner().token.unwrap())
        }));
    }
    let mut versions = HashSet::new();
    for task in tasks {
        versions.insert(task.await.unwrap().unwrap().version);
    }
    assert_eq!(versions, HashSet::from([current.version + 1]));
    assert_eq!(sf.admin().stats("demo").unwrap().stats.refresh_grants, 2);
    // The refreshed token works at the sandbox.
    let fresh = token(&suite, &tenant, &id).await.unwrap();
    let response = browser()
        .get(format!("{}/services/data/v59.0/limits", sf.base_url()))
        .bearer_auth(&fresh.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);

    suite.stop().await;
    sandboxes.stop().await;
}

async fn a_revoked_refresh_token_affects_only_its_connection(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = spawn_suite(storage).await;
    let sf = &sandboxes.salesforce;
    sf.admin()
        .create_org(OrgConfig {
            name: "globex".into(),
            ..OrgConfig::default()
        })
        .unwrap();
    let acme = unique_tenant("acme");
    let globex = unique_tenant("globex");
    let app_a = create_app(&suite, &acme, &SandboxApp::salesforce(sf.base_url())).await;
    let a = connect_salesforce(&suite, &sandboxes, &acme, &app_a.id, "demo").await;
    let b = connect_salesforce(&suite, &sandboxes, &globex, &app_a.id, "globex").await;

    // The customer of acme revokes access at Salesforce.
    assert!(sf.admin().revoke_refresh_tokens("demo").unwrap() >= 1);
    expire_soon(&suite, &a).await;
    expire_soon(&suite, &b).await;
    let status = token(&suite, &acme, &a).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(crate::reason(&status), "NEEDS_REAUTH");
    let broken = connection(&suite, &acme, &a).await.unwrap();
    assert_eq!(broken.status, ConnectionStatus::NeedsReauth as i32);
    // Asking again does not hit the provider again.
    let failed = sf.admin().stats("demo").unwrap().stats.failed_grants;
    assert_eq!(
        crate::reason(&token(&suite, &acme, &a).await.unwrap_err()),
        "NEEDS_REAUTH"
    );
    assert_eq!(
        sf.admin().stats("demo").unwrap().stats.failed_grants,
        failed
    );

    // globex is untouched: its token refreshes and its connection stays ACTIVE.
    let refreshed = token(&suite, &globex, &b).await.unwrap();
    assert_eq!(refreshed.version, 2);
    assert_eq!(
        connection(&suite, &globex, &b).await.unwrap().status,
        ConnectionStatus::Active as i32
    );

    // acme's HubSpot connection is another connection: untouched until HubSpot revokes it.
    let hs = &sandboxes.hubspot;
    let hs_app = create_app(
        &suite,
        &acme,
        &SandboxApp::hubspot(hs.base_url(), &["oauth"]),
    )
    .await;
    let started = start(&suite, &acme, &hs_app.id, "").await;
    let (status, _) = callback(&authorize(&suite, &started.authorization_url).await).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let h = started.connection_id;
    expire_soon(&suite, &h).await;
    assert_eq!(token(&suite, &acme, &h).await.unwrap().version, 2);
    hs.admin().revoke_refresh_tokens(DEMO_PORTAL_ID).unwrap();
    set_expiry(&suite, &h, -1000).await;
    let status = token(&suite, &acme, &h).await.unwrap_err();
    assert_eq!(crate::reason(&status), "NEEDS_REAUTH");
    assert_eq!(
        connection(&suite, &globex, &b).await.unwrap().status,
        ConnectionStatus::Active as i32
    );

    // Re-authorizing with another Salesforce org is refused: the connection stays as it was.
    let wrong = start(&suite, &acme, &app_a.id, &a).await;
    let url = format!("{}&org=globex", wrong.authorization_url);
    let (status, page) = callback(&authorize(&suite, &url).await).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert!(page.contains("another CRM account"), "{page}");
    let kept = connection(&suite, &acme, &a).await.unwrap();
    assert_eq!(kept.status, ConnectionStatus::NeedsReauth as i32);
    assert_eq!(kept.external_account_id, broken.external_account_id);

    // Re-authorizing brings acme back on the same connection.
    let again = start(&suite, &acme, &app_a.id, &a).await;
    let (status, _) = callback(&authorize(&suite, &again.authorization_url).await).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(
        connection(&suite, &acme, &a).await.unwrap().status,
        ConnectionStatus::Active as i32
    );
    assert!(token(&suite, &acme, &a).await.is_ok());

    suite.stop().await;
    sandboxes.stop().await;
}

async fn two_vault_processes_share_one_refresh(storage: Storage) {
    use syncline_crm_sandbox::salesforce::ConnectedApp;
    let sandboxes = Sandboxes::start().await;
    let suite = spawn_suite(storage).await;
    let sf = &sandboxes.salesforce;
    // A connected app that rotates refresh tokens: each one works once.
    sf.admin().register_app(ConnectedApp {
        client_id: "rotating-app".into(),
        client_secret: "rotating-secret".into(),
        redirect_uris: vec![format!("{}/oauth/callback", suite.gateway_url())],
        rotate_refresh_tokens: true,
    });
    let tenant = unique_tenant("acme");
    let app = create_app(
        &suite,
        &tenant,
        &SandboxApp::new(
            Provider::Salesforce,
            sf.base_url(),
            ("rotating-app", "rotating-secret"),
            &["api", "refresh_token"],
        ),
    )
    .await;
    let id = connect_salesforce(&suite, &sandboxes, &tenant, &app.id, "demo").await;

    // A second vault process on the same database.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stop_second = tokio_util::sync::CancellationToken::new();
    let second = syncline_auth_vault::start(suite.config(), listener, stop_second.clone())
        .await
        .unwrap();
    let channels = [
        suite.channel(ServiceName::AuthVault),
        tonic::transport::Channel::from_shared(format!("http://{}", second.local_addr()))
            .unwrap()
            .connect_lazy(),
    ];

    let before = token(&suite, &tenant, &id).await.unwrap();
    expire_soon(&suite, &id).await;
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let mut client = TokenServiceClient::new(channels[i % 2].clone());
        let request = suite.as_service(
            "sync-engine",
            PROJECT,
            &tenant,
            GetAccessTokenRequest {
                connection_id: id.clone(),
                min_validity: None,
            },
        );
        tasks.push(tokio::spawn(async move {
            client
                .get_access_token(request)
                .await
                .map(|r| r.into_inner().token.unwrap())
        }));
    }
    let mut versions = HashSet::new();
    for task in tasks {
        versions.insert(task.await.unwrap().unwrap().version);
    }
    let stats = sf.admin().stats("demo").unwrap().stats;
    assert_eq!(stats.refresh_grants, 1, "{stats:?}");
    assert_eq!(stats.failed_grants, 0, "{stats:?}");
    assert!(
        versions.is_subset(&HashSet::from([before.version, before.version + 1])),
        "{versions:?}"
    );

    // Both processes told the token was rejected, several times over: still one refresh
    // per version, and the rotated refresh token is never spent twice nor lost.
    for round in 0..3 {
        let current = token(&suite, &tenant, &id).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let mut client = TokenServiceClient::new(channels[i % 2].clone());
            let request = suite.as_service(
                "sync-engine",
                PROJECT,
                &tenant,
                ReportUnauthorizedRequest {
                    connection_id: id.clone(),
                    token_version: current.version,
                    provider_error: "INVALID_SESSION_ID".into(),
                },
            );
            tasks.push(tokio::spawn(async move {
                client
                    .report_unauthorized(request)
                    .await
                    .map(|r| r.into_inner().token.unwrap())
            }));
        }
        let mut versions = HashSet::new();
        for task in tasks {
            versions.insert(task.await.unwrap().unwrap().version);
        }
        assert_eq!(
            versions,
            HashSet::from([current.version + 1]),
            "round {round}"
        );
        let stats = sf.admin().stats("demo").unwrap().stats;
        assert_eq!(stats.refresh_grants, 2 + round, "{stats:?}");
        assert_eq!(stats.failed_grants, 0, "{stats:?}");
    }
    assert_eq!(
        connection(&suite, &tenant, &id).await.unwrap().status,
        ConnectionStatus::Active as i32
    );

    stop_second.cancel();
    second.stopped().await.unwrap();
    suite.stop().await;
    sandboxes.stop().await;
}

async fn provider_apps_are_validated_updated_and_deleted(storage: Storage) {
    use prost_types::FieldMask;
    use syncline_proto::authvault::v1::{DeleteProviderAppRequest, UpdateProviderAppRequest};
    use tonic_types::StatusExt;
    let sandboxes = Sandboxes::start().await;
    let suite = spawn_suite(storage).await;
    let sf = &sandboxes.salesforce;
    let tenant = unique_tenant("acme");
    let mut apps = AuthVaultServiceClient::new(suite.gateway());

    // Every invalid field is named.
    let status = apps
        .create_provider_app(suite.as_tenant(
            PROJECT,
            &tenant,
            CreateProviderAppRequest {
                provider_app: Some(ProviderApp {
                    redirect_url: "not a url".into(),
                    ..ProviderApp::default()
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(
        fields,
        [
            "provider_app.provider",
            "provider_app.client_id",
            "provider_app.client_secret",
            "provider_app.redirect_url"
        ]
    );

    let app = create_app(&suite, &tenant, &SandboxApp::salesforce(sf.base_url())).await;
    let update = |app: ProviderApp, paths: &[&str]| {
        suite.as_tenant(
            PROJECT,
            &tenant,
            UpdateProviderAppRequest {
                provider_app: Some(app),
                update_mask: Some(FieldMask {
                    paths: paths.iter().map(|p| (*p).to_owned()).collect(),
                }),
            },
        )
    };
    // A masked update changes only the named field.
    let renamed = apps
        .update_provider_app(update(
            ProviderApp {
                id: app.id.clone(),
                display_name: "Renamed".into(),
                client_id: "ignored".into(),
                ..ProviderApp::default()
            },
            &["display_name"],
        ))
        .await
        .unwrap()
        .into_inner()
        .provider_app
        .unwrap();
    assert_eq!(renamed.display_name, "Renamed");
    assert_eq!(renamed.client_id, DEMO_CLIENT_ID);
    assert!(renamed.client_secret_set && renamed.client_secret.is_empty());
    let status = apps
        .update_provider_app(update(app.clone(), &["provider"]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // After connecting, with a return URL: the callback sends the browser back there.
    let started = AuthVaultServiceClient::new(suite.gateway())
        .start_authorization(suite.as_tenant(
            PROJECT,
            &tenant,
            StartAuthorizationRequest {
                provider_app_id: app.id.clone(),
                return_url: "https://app.example.com/integrations?tab=crm".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let response = browser()
        .get(authorize(&suite, &started.authorization_url).await)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://app.example.com/integrations?tab=crm&connection_id="),
        "{location}"
    );
    let id = started.connection_id;

    // A wrong client secret is the project's mistake: the refresh fails, but the connection
    // does not need re-authorization; the right secret makes it work again.
    apps.update_provider_app(update(
        ProviderApp {
            id: app.id.clone(),
            client_secret: "wrong".into(),
            ..ProviderApp::default()
        },
        &["client_secret"],
    ))
    .await
    .unwrap();
    set_expiry(&suite, &id, -1000).await;
    let status = token(&suite, &tenant, &id).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(crate::reason(&status), "FAILED_PRECONDITION");
    assert_eq!(
        connection(&suite, &tenant, &id).await.unwrap().status,
        ConnectionStatus::Active as i32
    );
    apps.update_provider_app(update(
        ProviderApp {
            id: app.id.clone(),
            client_secret: DEMO_CLIENT_SECRET.into(),
            ..ProviderApp::default()
        },
        &["client_secret"],
    ))
    .await
    .unwrap();
    assert!(token(&suite, &tenant, &id).await.is_ok());

    // Deleting an app in use needs `force`, which deletes its connections too.
    let delete = |force| {
        suite.as_tenant(
            PROJECT,
            &tenant,
            DeleteProviderAppRequest {
                provider_app_id: app.id.clone(),
                force,
            },
        )
    };
    let status = apps.delete_provider_app(delete(false)).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    apps.delete_provider_app(delete(true)).await.unwrap();
    assert_eq!(
        connection(&suite, &tenant, &id).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(count(&suite, "credentials").await, 0);

    suite.stop().await;
    sandboxes.stop().await;
}

const K1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const K2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

async fn key_encryption_keys_rotate_online(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = syncline_integration_tests::spawn_suite_with(storage, |config| {
        config.auth_vault.keys = Some(format!("k1={K1},k2={K2}").into());
        config.auth_vault.active_kek_id = Some("k1".into());
    })
    .await;
    let sf = &sandboxes.salesforce;
    let tenant = unique_tenant("acme");
    let app = create_app(&suite, &tenant, &SandboxApp::salesforce(sf.base_url())).await;
    let id = connect_salesforce(&suite, &sandboxes, &tenant, &app.id, "demo").await;
    let before = token(&suite, &tenant, &id).await.unwrap();

    let rotate = |new_key_id: &str, dry_run| {
        suite.as_service(
            "operator",
            PROJECT,
            &tenant,
            RotateKeyEncryptionKeyRequest {
                new_key_id: new_key_id.into(),
                dry_run,
            },
        )
    };
    let mut vault = TokenServiceClient::new(suite.channel(ServiceName::AuthVault));
    // The project's key (app secret), the tenant's (tokens), the system's (state signing).
    let dry = vault
        .rotate_key_encryption_key(rotate("k2", true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dry.active_key_id, "k1");
    assert_eq!(
        (dry.rewrapped_data_keys, dry.already_current_data_keys),
        (3, 0)
    );
    let done = vault
        .rotate_key_encryption_key(rotate("k2", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.active_key_id, "k2");
    assert_eq!(
        (done.rewrapped_data_keys, done.already_current_data_keys),
        (3, 0)
    );
    let again = vault
        .rotate_key_encryption_key(rotate("k2", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.rewrapped_data_keys, again.already_current_data_keys),
        (0, 3)
    );
    // Online: the running vault keeps serving the same token.
    assert_eq!(
        token(&suite, &tenant, &id).await.unwrap().access_token,
        before.access_token
    );

    // A vault process that holds only the new key reads everything.
    let mut config = suite.config().clone();
    config.auth_vault.keys = Some(format!("k2={K2}").into());
    config.auth_vault.active_kek_id = None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let only_new = syncline_auth_vault::start(&config, listener, stop.clone())
        .await
        .unwrap();
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", only_new.local_addr()))
            .unwrap()
            .connect_lazy();
    let report = TokenServiceClient::new(channel)
        .report_unauthorized(suite.as_service(
            "sync-engine",
            PROJECT,
            &tenant,
            ReportUnauthorizedRequest {
                connection_id: id.clone(),
                token_version: before.version,
                provider_error: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(report.version, before.version + 1);
    assert_eq!(sf.admin().stats("demo").unwrap().stats.refresh_grants, 1);
    stop.cancel();
    only_new.stopped().await.unwrap();

    suite.stop().await;
    sandboxes.stop().await;
}

/// Imported credentials through the gateway, the audit trail it leaves, exports refused
/// without a key or to another tenant, and one proactive refresh sweep (from a second vault
/// process on the same database) refreshing exactly the connection about to expire.
async fn imports_are_audited_and_refreshed_ahead_of_expiry(storage: Storage) {
    use syncline_proto::authvault::v1::{
        AuditAction, Credentials, ExportCredentialsRequest, ImportCredentialsRequest,
        ListAuditEventsRequest,
    };
    let sandboxes = Sandboxes::start().await;
    let suite = syncline_integration_tests::spawn_suite_with(storage, |config| {
        config.auth_vault.refresher.interval_secs = 0;
    })
    .await;
    let sf = &sandboxes.salesforce;
    let tenant = unique_tenant("acme");
    let app = create_app(&suite, &tenant, &SandboxApp::salesforce(sf.base_url())).await;
    let mut vault = AuthVaultServiceClient::new(suite.gateway());
    let now = syncline_storage::now_ms();
    let mut imported = Vec::new();
    // One expiring within the refresher's look-ahead (10 min) but not the on-demand margin (5).
    for expires in [now + 8 * 60_000, now + 2 * 3_600_000] {
        let issued = sf.admin().issue_tokens("demo", None).unwrap();
        let connection = vault
            .import_credentials(suite.as_tenant(
                PROJECT,
                &tenant,
                ImportCredentialsRequest {
                    provider_app_id: app.id.clone(),
                    display_name: "migrated".into(),
                    credentials: Some(Credentials {
                        access_token: issued.access_token.clone(),
                        refresh_token: issued.refresh_token,
                        instance_url: issued.instance_url,
                        access_token_expire_time: Some(prost_types::Timestamp {
                            seconds: expires / 1000,
                            nanos: 0,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .connection
            .unwrap();
        assert_eq!(connection.status, ConnectionStatus::Active as i32);
        let served = token(&suite, &tenant, &connection.id).await.unwrap();
        assert_eq!(served.access_token, issued.access_token);
        imported.push(connection.id);
    }
    assert_eq!(sf.admin().stats("demo").unwrap().stats.code_grants, 0);

    // Exports: no key and no plaintext flag is refused; another tenant finds nothing.
    let export = |tenant: &str, allow_plaintext| {
        suite.as_tenant(
            PROJECT,
            tenant,
            ExportCredentialsRequest {
                connection_ids: vec![imported[0].clone()],
                allow_plaintext,
                ..Default::default()
            },
        )
    };
    let status = vault
        .export_credentials(export(&tenant, false))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let globex = unique_tenant("globex");
    let status = vault
        .export_credentials(export(&globex, true))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // The trail, newest first, one page at a time, filtered by action.
    let list = |page_token: String, actions: Vec<i32>| {
        suite.as_tenant(
            PROJECT,
            &tenant,
            ListAuditEventsRequest {
                page_size: 1,
                page_token,
                actions,
                ..Default::default()
            },
        )
    };
    let imports = vec![AuditAction::CredentialsImported as i32];
    let first = vault
        .list_audit_events(list(String::new(), imports.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.audit_events[0].connection_id, imported[1]);
    let second = vault
        .list_audit_events(list(first.next_page_token, imports))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.audit_events[0].connection_id, imported[0]);
    assert!(second.next_page_token.is_empty(), "{second:?}");
    let others = vault
        .list_audit_events(suite.as_tenant(PROJECT, &globex, ListAuditEventsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(others.audit_events.is_empty());

    // One sweep of a second vault process refreshes only the token about to expire.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let (second_vault, handle) =
        syncline_auth_vault::start_with_handle(suite.config(), listener, stop.clone())
            .await
            .unwrap();
    let report = handle
        .refresh_sweep(syncline_storage::now_ms())
        .await
        .unwrap();
    assert_eq!((report.refreshed, report.failed), (1, 0), "{report:?}");
    assert_eq!(sf.admin().stats("demo").unwrap().stats.refresh_grants, 1);
    assert_eq!(
        token(&suite, &tenant, &imported[0]).await.unwrap().version,
        2
    );
    assert_eq!(
        token(&suite, &tenant, &imported[1]).await.unwrap().version,
        1
    );
    stop.cancel();
    second_vault.stopped().await.unwrap();

    suite.stop().await;
    sandboxes.stop().await;
}

crate::both_storages!(
    connect_flow_end_to_end,
    key_encryption_keys_rotate_online,
    provider_apps_are_validated_updated_and_deleted,
    concurrent_token_requests_refresh_once,
    a_revoked_refresh_token_affects_only_its_connection,
    two_vault_processes_share_one_refresh,
    imports_are_audited_and_refreshed_ahead_of_expiry,
);
