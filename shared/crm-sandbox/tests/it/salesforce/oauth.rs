//! OAuth flows: authorize → code → token, refresh (with and without rotation), revocation,
//! forced session expiry, and the grant counters auth-vault tests rely on.

use super::{Sf, TestResult, spawn};
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use syncline_crm_sandbox::salesforce::{ConnectedApp, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};

const REDIRECT: &str = "http://127.0.0.1:9/callback";

async fn authorize(
    sf: &Sf,
    client_id: &str,
    extra: &[(&str, &str)],
) -> Result<url::Url, Box<dyn std::error::Error + Send + Sync>> {
    let mut q = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("state", "xyz 1"),
        ("scope", "api refresh_token"),
    ];
    q.extend_from_slice(extra);
    let resp = sf
        .http
        .get(sf.url("/services/oauth2/authorize"))
        .query(&q)
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let loc = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok(url::Url::parse(&loc)?)
}

fn param(u: &url::Url, k: &str) -> Option<String> {
    u.query_pairs()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.into_owned())
}

async fn token(
    sf: &Sf,
    form: &[(&str, &str)],
) -> Result<(StatusCode, Value), Box<dyn std::error::Error + Send + Sync>> {
    let resp = sf
        .http
        .post(sf.url("/services/oauth2/token"))
        .form(form)
        .send()
        .await?;
    Ok((resp.status(), resp.json().await?))
}

#[tokio::test]
async fn authorization_code_with_pkce_then_refresh() -> TestResult {
    let sf = spawn().await?;
    let verifier = "a-very-long-code-verifier-for-the-sandbox-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let cb = authorize(
        &sf,
        DEMO_CLIENT_ID,
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await?;
    assert_eq!(param(&cb, "state").as_deref(), Some("xyz 1"));
    let code = param(&cb, "code").unwrap_or_default();
    let (status, body) = token(
        &sf,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("expires_in").is_none());
    assert_eq!(body["instance_url"], sf.sf.base_url());
    assert_eq!(body["token_type"], "Bearer");
    let issued = body["issued_at"]
        .as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0);
    assert!(
        (issued - chrono::Utc::now().timestamp_millis()).abs() < 60_000,
        "issued_at is epoch ms"
    );
    // signature = base64(HMAC-SHA256(secret, id + issued_at))
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<Sha256>::new_from_slice(DEMO_CLIENT_SECRET.as_bytes())?;
    mac.update(
        format!(
            "{}{}",
            body["id"].as_str().unwrap_or_default(),
            body["issued_at"].as_str().unwrap_or_default()
        )
        .as_bytes(),
    );
    assert_eq!(
        body["signature"],
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let access = body["access_token"].as_str().unwrap_or_default().to_owned();
    let refresh = body["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let ok = sf
        .send(
            sf.http
                .get(sf.url("/services/data/v59.0/limits"))
                .bearer_auth(&access),
        )
        .await?;
    assert_eq!(ok.status, StatusCode::OK);

    // The code is single-use.
    let (status, body) = token(
        &sf,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    let (status, body) = token(
        &sf,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
        ],
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.get("refresh_token").is_none(),
        "no rotation by default"
    );
    assert_ne!(body["access_token"].as_str(), Some(access.as_str()));
    let stats = sf.sf.admin().stats("demo")?;
    assert_eq!(
        (
            stats.stats.code_grants,
            stats.stats.refresh_grants,
            stats.stats.failed_grants
        ),
        (1, 1, 0)
    );

    // Revoked refresh tokens fail with the real error.
    assert_eq!(sf.sf.admin().revoke_refresh_tokens("demo")?, 2);
    let (status, body) = token(
        &sf,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
        ],
    )
    .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        serde_json::json!({"error": "invalid_grant", "error_description": "expired access/refresh token"})
    );
    Ok(())
}

#[tokio::test]
async fn rotation_org_parameter_and_bad_requests() -> TestResult {
    let sf = spawn().await?;
    let admin = sf.sf.admin();
    admin.register_app(ConnectedApp {
        client_id: "rot".into(),
        client_secret: "s3".into(),
        redirect_uris: vec![REDIRECT.into()],
        rotate_refresh_tokens: true,
    });
    admin.create_org(syncline_crm_sandbox::salesforce::OrgConfig {
        name: "tenant-b".into(),
        ..Default::default()
    })?;
    let cb = authorize(&sf, "rot", &[("org", "tenant-b")]).await?;
    let code = param(&cb, "code").unwrap_or_default();
    let (_, body) = token(
        &sf,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "rot"),
            ("client_secret", "s3"),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await?;
    let org_b = admin
        .orgs()
        .into_iter()
        .find(|o| o.name == "tenant-b")
        .map(|o| o.org_id)
        .unwrap_or_default();
    assert!(body["id"].as_str().is_some_and(|id| id.contains(&org_b)));
    let r1 = body["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_, body) = token(
        &sf,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r1),
            ("client_id", "rot"),
            ("client_secret", "s3"),
        ],
    )
    .await?;
    let r2 = body["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!r2.is_empty() && r2 != r1, "rotated");
    let (status, _) = token(
        &sf,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r1),
            ("client_id", "rot"),
            ("client_secret", "s3"),
        ],
    )
    .await?;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "old refresh token is single-use"
    );
    assert_eq!(admin.stats("tenant-b")?.stats.refresh_grants, 1);
    assert_eq!(admin.stats("demo")?.stats.refresh_grants, 0);

    let (_, body) = token(
        &sf,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r2),
            ("client_id", "rot"),
            ("client_secret", "wrong"),
        ],
    )
    .await?;
    assert_eq!(body["error"], "invalid_client");
    let (_, body) = token(&sf, &[("grant_type", "password")]).await?;
    assert_eq!(body["error"], "unsupported_grant_type");
    let denied = authorize(&sf, DEMO_CLIENT_ID, &[("deny", "true")]).await?;
    assert_eq!(param(&denied, "error").as_deref(), Some("access_denied"));
    let bad_redirect = sf
        .http
        .get(sf.url("/services/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "rot"),
            ("redirect_uri", "https://evil.example/cb"),
        ])
        .send()
        .await?;
    assert_eq!(bad_redirect.status(), StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test]
async fn expired_sessions_answer_invalid_session_id() -> TestResult {
    let sf = spawn().await?;
    assert_eq!(
        sf.get("/services/data/v59.0/sobjects").await?.status,
        StatusCode::OK
    );
    assert_eq!(sf.sf.admin().expire_sessions("demo")?, 1);
    let r = sf.get("/services/data/v59.0/sobjects").await?;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers["www-authenticate"], "Token");
    assert_eq!(
        r.body,
        serde_json::json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    // A zero session lifetime makes new tokens expire at once.
    sf.sf
        .admin()
        .set_session_lifetime("demo", std::time::Duration::ZERO)?;
    let t = sf.sf.admin().issue_tokens("demo", None)?;
    let r = sf
        .send(
            sf.http
                .get(sf.url("/services/data/v59.0/sobjects"))
                .bearer_auth(&t.access_token),
        )
        .await?;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let _ = &sf.refresh;
    Ok(())
}
