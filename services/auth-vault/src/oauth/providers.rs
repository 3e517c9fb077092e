//! What differs between providers' OAuth: endpoints, parameters, token responses, errors.
//!
//! Salesforce: `/services/oauth2/authorize` and form POST `/services/oauth2/token` on the
//! login host (or a My Domain / sandbox host); the answer has no `expires_in` (the session
//! lifetime is configured), names the `instance_url`, and its `id` URL carries the org id;
//! refreshing may rotate the refresh token. HubSpot: `app.hubspot.com/oauth/authorize` and
//! `api.hubapi.com/oauth/v1/token` with `expires_in`; the portal id comes from
//! `/oauth/v1/access-tokens/{token}`. Both take PKCE (S256).
//!
//! Nothing here logs or returns a secret: provider errors keep only the OAuth error code
//! and description, and transport errors are stripped of their URL.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use syncline_proto::common::v1::Provider;

/// The providers the vault can authorize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Salesforce.
    Salesforce,
    /// HubSpot.
    HubSpot,
}

impl ProviderKind {
    /// From the proto enum; `None` for UNSPECIFIED or unknown values.
    pub fn from_proto(value: i32) -> Option<Self> {
        match Provider::try_from(value) {
            Ok(Provider::Salesforce) => Some(Self::Salesforce),
            Ok(Provider::Hubspot) => Some(Self::HubSpot),
            Ok(Provider::Unspecified) | Err(_) => None,
        }
    }

    /// The provider's default authorize endpoint.
    pub fn default_authorize_url(self) -> &'static str {
        match self {
            Self::Salesforce => "https://login.salesforce.com/services/oauth2/authorize",
            Self::HubSpot => "https://app.hubspot.com/oauth/authorize",
        }
    }

    /// The provider's default token endpoint.
    pub fn default_token_url(self) -> &'static str {
        match self {
            Self::Salesforce => "https://login.salesforce.com/services/oauth2/token",
            Self::HubSpot => "https://api.hubapi.com/oauth/v1/token",
        }
    }

    fn authorize_path(self) -> &'static str {
        match self {
            Self::Salesforce => "/services/oauth2/authorize",
            Self::HubSpot => "/oauth/authorize",
        }
    }

    fn token_path(self) -> &'static str {
        match self {
            Self::Salesforce => "/services/oauth2/token",
            Self::HubSpot => "/oauth/v1/token",
        }
    }

    /// Whether the provider takes PKCE on the authorization-code flow.
    pub fn supports_pkce(self) -> bool {
        match self {
            Self::Salesforce | Self::HubSpot => true,
        }
    }

    /// An endpoint from an override: a bare host (`https://test.salesforce.com`) gets the
    /// provider's path; a URL with a path is used as given. Empty: the default.
    pub fn resolve(self, override_url: &str, authorize: bool) -> Result<url::Url, String> {
        let (default, path) = if authorize {
            (self.default_authorize_url(), self.authorize_path())
        } else {
            (self.default_token_url(), self.token_path())
        };
        if override_url.is_empty() {
            return url::Url::parse(default).map_err(|e| e.to_string());
        }
        let mut url = parse_http_url(override_url)?;
        if url.path().is_empty() || url.path() == "/" {
            url.set_path(path);
        }
        Ok(url)
    }
}

/// An absolute `http(s)` URL without credentials or fragment.
pub fn parse_http_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|_| "is not an absolute url".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http or https url".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    Ok(url)
}

/// What an authorization request needs.
#[derive(Debug)]
pub struct AuthorizeRequest<'a> {
    /// The endpoint (default or override).
    pub endpoint: url::Url,
    /// OAuth client id.
    pub client_id: &'a str,
    /// Scopes, in the provider's syntax.
    pub scopes: &'a [String],
    /// Where the provider sends the browser back (the gateway's callback).
    pub redirect_uri: &'a str,
    /// The signed state.
    pub state: &'a str,
    /// The PKCE S256 challenge, if used.
    pub code_challenge: Option<&'a str>,
}

/// The URL to send the end user's browser to.
pub fn authorize_url(kind: ProviderKind, request: AuthorizeRequest<'_>) -> String {
    let mut url = request.endpoint;
    {
        let mut query = url.query_pairs_mut();
        if kind == ProviderKind::Salesforce {
            query.append_pair("response_type", "code");
        }
        query.append_pair("client_id", request.client_id);
        query.append_pair("redirect_uri", request.redirect_uri);
        if !request.scopes.is_empty() {
            query.append_pair("scope", &request.scopes.join(" "));
        }
        query.append_pair("state", request.state);
        if let Some(challenge) = request.code_challenge {
            query.append_pair("code_challenge", challenge);
            query.append_pair("code_challenge_method", "S256");
        }
    }
    url.into()
}

/// Tokens from a code exchange or a refresh.
pub struct TokenGrant {
    /// The access token.
    pub access_token: SecretString,
    /// A refresh token, when the grant issued one (Salesforce: on rotation only).
    pub refresh_token: Option<SecretString>,
    /// Seconds until expiry, when the provider says (HubSpot).
    pub expires_in: Option<i64>,
    /// The CRM instance's API base URL.
    pub instance_url: String,
    /// Salesforce org id / HubSpot portal id, when known.
    pub external_account_id: String,
    /// Granted scopes, when the provider says.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field("expires_in", &self.expires_in)
            .field("instance_url", &self.instance_url)
            .field("external_account_id", &self.external_account_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// A provider call failed. Messages never carry a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The refresh token or code is invalid, expired or revoked: the user must authorize
    /// again.
    #[error("the provider refused the grant: {0}")]
    InvalidGrant(String),
    /// The provider refused the request for another reason (client credentials,
    /// redirect URI, …).
    #[error("the provider refused the request: {0}")]
    Rejected(String),
    /// The provider could not be reached or failed (timeout, 5xx, malformed answer).
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
}

/// The client credentials of a provider app.
pub struct ClientCredentials<'a> {
    /// OAuth client id.
    pub client_id: &'a str,
    /// OAuth client secret.
    pub client_secret: &'a SecretString,
}

/// Calls providers' token endpoints.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct RawToken {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    instance_url: Option<String>,
    id: Option<String>,
    scope: Option<String>,
    hub_id: Option<u64>,
    issued_at: Option<String>,
    signature: Option<String>,
}

#[derive(Deserialize)]
struct RawError {
    error: Option<String>,
    error_description: Option<String>,
    status: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct HubSpotTokenInfo {
    hub_id: Option<u64>,
    #[serde(default)]
    scopes: Vec<String>,
}

/// Only the short, non-secret parts of a provider's error text.
fn clip(text: &str) -> String {
    text.chars().take(200).collect()
}

fn transport(e: reqwest::Error) -> ProviderError {
    // The URL may carry a token (HubSpot's token-info path): never keep it.
    ProviderError::Unavailable(clip(&e.without_url().to_string()))
}

impl OAuthClient {
    /// Calls providers with `http` (the suite's CRM client: timeouts, extra root CAs).
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    /// Exchanges an authorization code.
    pub async fn exchange_code(
        &self,
        kind: ProviderKind,
        token_url: &url::Url,
        client: &ClientCredentials<'_>,
        code: &str,
        redirect_uri: &str,
        code_verifier: Option<&str>,
    ) -> Result<TokenGrant, ProviderError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", client.client_id),
            ("client_secret", client.client_secret.expose_secret()),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(verifier) = code_verifier {
            form.push(("code_verifier", verifier));
        }
        self.token(kind, token_url, client.client_secret, &form, false)
            .await
    }

    /// Refreshes with a refresh token.
    pub async fn refresh(
        &self,
        kind: ProviderKind,
        token_url: &url::Url,
        client: &ClientCredentials<'_>,
        refresh_token: &SecretString,
    ) -> Result<TokenGrant, ProviderError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("client_id", client.client_id),
            ("client_secret", client.client_secret.expose_secret()),
        ];
        self.token(kind, token_url, client.client_secret, &form, true)
            .await
    }

    async fn token(
        &self,
        kind: ProviderKind,
        token_url: &url::Url,
        client_secret: &SecretString,
        form: &[(&str, &str)],
        refreshing: bool,
    ) -> Result<TokenGrant, ProviderError> {
        let response = self
            .http
            .post(token_url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(classify_error(status, &body));
        }
        let raw: RawToken = serde_json::from_slice(&body).map_err(|_| {
            ProviderError::Unavailable("the token endpoint answered malformed json".into())
        })?;
        let access_token = raw
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ProviderError::Unavailable("the answer has no access_token".into()))?;
        let scopes: Vec<String> = raw
            .scope
            .as_deref()
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let mut grant = TokenGrant {
            access_token: SecretString::from(access_token),
            refresh_token: raw
                .refresh_token
                .filter(|t| !t.is_empty())
                .map(SecretString::from),
            expires_in: raw.expires_in,
            instance_url: String::new(),
            external_account_id: String::new(),
            scopes,
        };
        match kind {
            ProviderKind::Salesforce => {
                if let (Some(id), Some(issued_at), Some(signature)) =
                    (&raw.id, &raw.issued_at, &raw.signature)
                    && !salesforce_signature_valid(client_secret, id, issued_at, signature)
                {
                    return Err(ProviderError::Unavailable(
                        "the token answer's signature does not match".into(),
                    ));
                }
                grant.expires_in = None;
                grant.instance_url = raw.instance_url.unwrap_or_default();
                grant.external_account_id =
                    raw.id.as_deref().map(salesforce_org_id).unwrap_or_default();
                if grant.instance_url.is_empty() {
                    return Err(ProviderError::Unavailable(
                        "the answer has no instance_url".into(),
                    ));
                }
            }
            ProviderKind::HubSpot => {
                grant.instance_url = origin(token_url);
                if let Some(hub) = raw.hub_id {
                    grant.external_account_id = hub.to_string();
                }
                if !refreshing {
                    self.hubspot_token_info(token_url, &mut grant).await;
                }
            }
        }
        Ok(grant)
    }

    /// Best effort: the portal id and scopes of a fresh HubSpot token.
    async fn hubspot_token_info(&self, token_url: &url::Url, grant: &mut TokenGrant) {
        let mut url = token_url.clone();
        url.set_query(None);
        let Ok(mut segments) = url.path_segments_mut() else {
            return;
        };
        segments.clear().extend([
            "oauth",
            "v1",
            "access-tokens",
            grant.access_token.expose_secret(),
        ]);
        drop(segments);
        let info = async {
            let response = self.http.get(url).send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            response.json::<HubSpotTokenInfo>().await.ok()
        }
        .await;
        match info {
            Some(info) => {
                if let Some(hub) = info.hub_id {
                    grant.external_account_id = hub.to_string();
                }
                if grant.scopes.is_empty() {
                    grant.scopes = info.scopes;
                }
            }
            None => tracing::warn!("hubspot token info unavailable; portal id unknown"),
        }
    }
}

/// What a provider says about an access token it accepts.
#[derive(Debug, Clone, Default)]
pub struct TokenInfo {
    /// Salesforce org id / HubSpot portal id.
    pub external_account_id: String,
    /// Scopes, when the provider says (HubSpot).
    pub scopes: Vec<String>,
    /// Seconds until expiry, when the provider says (HubSpot).
    pub expires_in: Option<i64>,
}

#[derive(Deserialize)]
struct SalesforceUserInfo {
    organization_id: Option<String>,
}

#[derive(Deserialize)]
struct HubSpotAccessTokenInfo {
    hub_id: Option<u64>,
    #[serde(default)]
    scopes: Vec<String>,
    expires_in: Option<i64>,
}

impl OAuthClient {
    /// Asks the provider whether it accepts `access_token` (Salesforce `userinfo` on the
    /// instance, HubSpot's access-token info next to the token endpoint). A refusal is
    /// `InvalidGrant`.
    pub async fn inspect_access_token(
        &self,
        kind: ProviderKind,
        token_url: &url::Url,
        instance_url: &str,
        access_token: &SecretString,
    ) -> Result<TokenInfo, ProviderError> {
        let request = match kind {
            ProviderKind::Salesforce => {
                let mut url = url::Url::parse(instance_url)
                    .map_err(|_| ProviderError::Rejected("the instance url is not a url".into()))?;
                url.set_path("/services/oauth2/userinfo");
                url.set_query(None);
                self.http.get(url).bearer_auth(access_token.expose_secret())
            }
            ProviderKind::HubSpot => {
                let mut url = token_url.clone();
                url.set_query(None);
                url.path_segments_mut()
                    .map_err(|()| ProviderError::Rejected("the token url has no path".into()))?
                    .clear()
                    .extend(["oauth", "v1", "access-tokens", access_token.expose_secret()]);
                self.http.get(url)
            }
        };
        let response = request
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if matches!(status.as_u16(), 401 | 403 | 404) {
            return Err(ProviderError::InvalidGrant(format!(
                "the access token was refused (http {})",
                status.as_u16()
            )));
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(ProviderError::Unavailable(format!(
                "http {}",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Err(ProviderError::Rejected(format!("http {}", status.as_u16())));
        }
        let body = response.bytes().await.map_err(transport)?;
        let malformed =
            |_| ProviderError::Unavailable("the token information is malformed json".into());
        match kind {
            ProviderKind::Salesforce => {
                let info: SalesforceUserInfo = serde_json::from_slice(&body).map_err(malformed)?;
                Ok(TokenInfo {
                    external_account_id: info.organization_id.unwrap_or_default(),
                    ..TokenInfo::default()
                })
            }
            ProviderKind::HubSpot => {
                let info: HubSpotAccessTokenInfo =
                    serde_json::from_slice(&body).map_err(malformed)?;
                Ok(TokenInfo {
                    external_account_id: info.hub_id.map(|h| h.to_string()).unwrap_or_default(),
                    scopes: info.scopes,
                    expires_in: info.expires_in,
                })
            }
        }
    }
}

fn classify_error(status: reqwest::StatusCode, body: &[u8]) -> ProviderError {
    let raw: Option<RawError> = serde_json::from_slice(body).ok();
    let (code, description) = match &raw {
        Some(e) => (
            e.error
                .clone()
                .or_else(|| e.status.clone())
                .unwrap_or_default(),
            e.error_description
                .clone()
                .or_else(|| e.message.clone())
                .unwrap_or_default(),
        ),
        None => (String::new(), String::new()),
    };
    let text = clip(&format!("{code}: {description}"));
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return ProviderError::Unavailable(format!("http {}", status.as_u16()));
    }
    let invalid_grant = matches!(
        code.as_str(),
        "invalid_grant" | "BAD_REFRESH_TOKEN" | "BAD_AUTH_CODE" | "EXPIRED_AUTH_CODE"
    );
    // Only the provider's explicit word moves a connection to NEEDS_REAUTH: a bare 401 or
    // 403 may come from a proxy or a misconfigured app, which the customer cannot fix.
    if invalid_grant {
        ProviderError::InvalidGrant(text)
    } else if code.is_empty() {
        ProviderError::Rejected(format!("http {}", status.as_u16()))
    } else {
        ProviderError::Rejected(text)
    }
}

/// Salesforce signs `id ‖ issued_at` with the consumer secret (HMAC-SHA256, base64): a
/// token answer that does not verify did not come from the org our app talks to.
fn salesforce_signature_valid(
    client_secret: &SecretString,
    id: &str,
    issued_at: &str,
    signature: &str,
) -> bool {
    use aws_lc_rs::hmac;
    use base64::Engine as _;
    let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(signature) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, client_secret.expose_secret().as_bytes());
    let message = format!("{id}{issued_at}");
    hmac::verify(&key, message.as_bytes(), &tag).is_ok()
}

/// `https://login.salesforce.com/id/00D…/005…` → `00D…`.
fn salesforce_org_id(identity_url: &str) -> String {
    let segments: Vec<&str> = identity_url
        .trim_end_matches('/')
        .rsplit('/')
        .take(3)
        .collect();
    match segments.as_slice() {
        [_user, org, "id"] => (*org).to_owned(),
        _ => String::new(),
    }
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_accept_a_bare_host_or_a_full_endpoint() {
        let sf = ProviderKind::Salesforce;
        assert_eq!(
            sf.resolve("", true).unwrap().as_str(),
            "https://login.salesforce.com/services/oauth2/authorize"
        );
        assert_eq!(
            sf.resolve("https://test.salesforce.com", false)
                .unwrap()
                .as_str(),
            "https://test.salesforce.com/services/oauth2/token"
        );
        assert_eq!(
            ProviderKind::HubSpot
                .resolve("http://127.0.0.1:9/custom/token", false)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/custom/token"
        );
        assert!(sf.resolve("ftp://x", true).is_err());
        assert!(sf.resolve("https://user:pw@x", true).is_err());
        assert!(sf.resolve("not a url", true).is_err());
    }

    #[test]
    fn authorize_urls_carry_state_pkce_and_scopes() {
        let endpoint = ProviderKind::Salesforce.resolve("", true).unwrap();
        let url = authorize_url(
            ProviderKind::Salesforce,
            AuthorizeRequest {
                endpoint,
                client_id: "cid",
                scopes: &["api".into(), "refresh_token".into()],
                redirect_uri: "http://127.0.0.1:7400/oauth/callback",
                state: "n.1.sig",
                code_challenge: Some("chal"),
            },
        );
        let parsed = url::Url::parse(&url).unwrap();
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["scope"], "api refresh_token");
        assert_eq!(q["state"], "n.1.sig");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:7400/oauth/callback");
    }

    #[test]
    fn org_ids_come_from_the_identity_url() {
        assert_eq!(
            salesforce_org_id(
                "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA"
            ),
            "00D000000000001AAA"
        );
        assert_eq!(salesforce_org_id("garbage"), "");
    }

    #[test]
    fn salesforce_signatures_are_checked_with_the_consumer_secret() {
        use aws_lc_rs::hmac;
        use base64::Engine as _;
        let secret = SecretString::from("consumer-secret".to_owned());
        let id = "https://login.salesforce.com/id/00Dx/005x";
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"consumer-secret");
        let tag = hmac::sign(&key, format!("{id}1700000000000").as_bytes());
        let signature = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
        assert!(salesforce_signature_valid(
            &secret,
            id,
            "1700000000000",
            &signature
        ));
        assert!(!salesforce_signature_valid(
            &secret,
            id,
            "1700000000001",
            &signature
        ));
        let other = SecretString::from("other".to_owned());
        assert!(!salesforce_signature_valid(
            &other,
            id,
            "1700000000000",
            &signature
        ));
        assert!(!salesforce_signature_valid(
            &secret,
            id,
            "1700000000000",
            "%%%"
        ));
    }

    #[test]
    fn errors_are_classified_without_secrets() {
        use reqwest::StatusCode as S;
        let sf = br#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#;
        assert!(matches!(
            classify_error(S::BAD_REQUEST, sf),
            ProviderError::InvalidGrant(_)
        ));
        let hs = br#"{"status":"BAD_REFRESH_TOKEN","message":"missing or invalid refresh token"}"#;
        assert!(matches!(
            classify_error(S::BAD_REQUEST, hs),
            ProviderError::InvalidGrant(_)
        ));
        let client =
            br#"{"error":"invalid_client","error_description":"invalid client credentials"}"#;
        assert!(matches!(
            classify_error(S::BAD_REQUEST, client),
            ProviderError::Rejected(_)
        ));
        assert!(matches!(
            classify_error(S::UNAUTHORIZED, b"<html>"),
            ProviderError::Rejected(_)
        ));
        assert!(matches!(
            classify_error(S::BAD_GATEWAY, b"<html>"),
            ProviderError::Unavailable(_)
        ));
    }
}
