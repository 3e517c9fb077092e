//! Authenticating callers with JWTs.
//!
//! Development: HS256 with a shared secret. Production: RS256 / ES256 / EdDSA keys from a
//! JWKS file or URL (the URL is re-fetched periodically and when an unknown `kid` appears).
//! `exp`, `aud` and `iss` are always required. The project and tenant claims become the
//! request's [`TenantContext`]. Failures say little on purpose: the caller learns that the
//! token was refused, and (for honest clients) whether it had expired.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use syncline_config::JwtConfig;
use syncline_domain::{ProjectId, TenantContext, TenantId};
use tokio_util::sync::CancellationToken;

/// How often a JWKS URL is re-fetched.
const JWKS_REFRESH: Duration = Duration::from_secs(600);
/// The least time between two fetches triggered by unknown key ids.
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(30);

/// Why a caller was not authenticated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `authorization: Bearer …` header.
    #[error("missing bearer token")]
    Missing,
    /// The token is past its `exp`.
    #[error("token expired")]
    Expired,
    /// Anything else: bad signature, audience, issuer, algorithm, claims.
    #[error("invalid token")]
    Invalid,
}

/// Errors loading keys at start-up.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No key source configured.
    #[error("invalid configuration: `gateway.jwt` needs one of hs256_secret, jwks_file, jwks_url")]
    NoKeys,
    /// The JWKS could not be read or parsed.
    #[error("failed to load jwks from {source_name}: {reason}")]
    Jwks {
        /// File or URL.
        source_name: String,
        /// Why.
        reason: String,
    },
}

enum Keys {
    Hs256(DecodingKey),
    Jwks(Arc<JwksKeys>),
}

struct JwksKeys {
    set: RwLock<JwkSet>,
    url: Option<String>,
    last_fetch: RwLock<Instant>,
}

/// Verifies bearer tokens and extracts the tenant scope.
pub struct Authenticator {
    keys: Keys,
    audience: String,
    issuers: Vec<String>,
    project_claim: String,
    tenant_claim: String,
    leeway: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("audience", &self.audience)
            .field("issuers", &self.issuers)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Loads the configured keys; a JWKS URL is fetched now and refreshed until `shutdown`.
    pub async fn from_config(
        config: &JwtConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, KeyError> {
        let keys = if let Some(secret) = &config.hs256_secret {
            Keys::Hs256(DecodingKey::from_secret(secret.expose_secret().as_bytes()))
        } else if let Some(path) = &config.jwks_file {
            Keys::Jwks(Arc::new(JwksKeys {
                set: RwLock::new(read_jwks_file(path)?),
                url: None,
                last_fetch: RwLock::new(Instant::now()),
            }))
        } else if let Some(url) = &config.jwks_url {
            let set = fetch_jwks(url).await?;
            let keys = Arc::new(JwksKeys {
                set: RwLock::new(set),
                url: Some(url.clone()),
                last_fetch: RwLock::new(Instant::now()),
            });
            spawn_refresher(keys.clone(), shutdown);
            Keys::Jwks(keys)
        } else {
            return Err(KeyError::NoKeys);
        };
        Ok(Self {
            keys,
            audience: config.audience.clone(),
            issuers: config.issuers.clone(),
            project_claim: config.project_claim.clone(),
            tenant_claim: config.tenant_claim.clone(),
            leeway: config.leeway_secs,
        })
    }

    /// Authenticates the `authorization` header of a request.
    pub fn authenticate(&self, headers: &http::HeaderMap) -> Result<TenantContext, AuthError> {
        let token = bearer(headers).ok_or(AuthError::Missing)?;
        self.verify(token)
    }

    /// Verifies one token.
    pub fn verify(&self, token: &str) -> Result<TenantContext, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        let key = match &self.keys {
            Keys::Hs256(key) => {
                if header.alg != Algorithm::HS256 {
                    return Err(AuthError::Invalid);
                }
                key.clone()
            }
            Keys::Jwks(keys) => {
                if !matches!(
                    header.alg,
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::ES256
                        | Algorithm::ES384
                        | Algorithm::EdDSA
                ) {
                    return Err(AuthError::Invalid);
                }
                keys.key_for(header.kid.as_deref())?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&self.issuers);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.leeway = self.leeway;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid,
        })?;
        let claims = data.claims;
        let text = |name: &str| claims.get(name).and_then(|v| v.as_str());
        let project = text(&self.project_claim).ok_or(AuthError::Invalid)?;
        let tenant = text(&self.tenant_claim).ok_or(AuthError::Invalid)?;
        Ok(TenantContext {
            project_id: ProjectId::parse(project).map_err(|_| AuthError::Invalid)?,
            tenant_id: TenantId::parse(tenant).map_err(|_| AuthError::Invalid)?,
            subject: text("sub").unwrap_or("").to_owned(),
        })
    }
}

impl JwksKeys {
    fn key_for(self: &Arc<Self>, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        let found = {
            let set = self
                .set
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match kid {
                Some(kid) => set.find(kid).cloned(),
                None if set.keys.len() == 1 => set.keys.first().cloned(),
                None => None,
            }
        };
        match found {
            Some(jwk) => DecodingKey::from_jwk(&jwk).map_err(|_| AuthError::Invalid),
            None => {
                self.refetch_soon();
                Err(AuthError::Invalid)
            }
        }
    }

    /// An unknown key id may mean the issuer rotated keys: fetch again, at most every
    /// [`JWKS_MIN_REFETCH`].
    fn refetch_soon(self: &Arc<Self>) {
        let Some(url) = self.url.clone() else { return };
        {
            let mut last = self
                .last_fetch
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.elapsed() < JWKS_MIN_REFETCH {
                return;
            }
            *last = Instant::now();
        }
        let keys = self.clone();
        tokio::spawn(async move { keys.replace_from(&url).await });
    }

    async fn replace_from(&self, url: &str) {
        match fetch_jwks(url).await {
            Ok(set) => {
                *self
                    .set
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = set;
            }
            Err(error) => tracing::warn!(%error, "failed to refresh jwks"),
        }
    }
}

fn spawn_refresher(keys: Arc<JwksKeys>, shutdown: CancellationToken) {
    let Some(url) = keys.url.clone() else { return };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(JWKS_REFRESH) => keys.replace_from(&url).await,
            }
        }
    });
}

fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

fn read_jwks_file(path: &Path) -> Result<JwkSet, KeyError> {
    let error = |reason: String| KeyError::Jwks {
        source_name: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| error(e.to_string()))
}

async fn fetch_jwks(url: &str) -> Result<JwkSet, KeyError> {
    let error = |reason: String| KeyError::Jwks {
        source_name: url.to_owned(),
        reason,
    };
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| error(e.to_string()))?;
    response.json().await.map_err(|e| error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    async fn authenticator() -> Authenticator {
        let config = JwtConfig {
            hs256_secret: Some(SECRET.to_owned().into()),
            ..JwtConfig::default()
        };
        Authenticator::from_config(&config, CancellationToken::new())
            .await
            .unwrap()
    }

    fn token(claims: serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn claims(exp_offset: i64) -> serde_json::Value {
        let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap();
        json!({"sub": "u1", "aud": "syncline", "iss": "syncline-dev", "exp": now + exp_offset,
               "project_id": "p1", "tenant_id": "t1"})
    }

    #[tokio::test]
    async fn a_valid_token_yields_its_tenant() {
        let ctx = authenticator()
            .await
            .verify(&token(claims(60), SECRET))
            .unwrap();
        assert_eq!(ctx.tenant_id.as_str(), "t1");
        assert_eq!(ctx.project_id.as_str(), "p1");
        assert_eq!(ctx.subject, "u1");
    }

    #[tokio::test]
    async fn expired_forged_and_misaddressed_tokens_are_refused() {
        let auth = authenticator().await;
        assert_eq!(
            auth.verify(&token(claims(-120), SECRET)),
            Err(AuthError::Expired)
        );
        assert_eq!(
            auth.verify(&token(claims(60), "ffffffffffffffffffffffffffffffff")),
            Err(AuthError::Invalid)
        );
        let mut wrong_aud = claims(60);
        wrong_aud["aud"] = json!("someone-else");
        assert_eq!(
            auth.verify(&token(wrong_aud, SECRET)),
            Err(AuthError::Invalid)
        );
        let mut wrong_iss = claims(60);
        wrong_iss["iss"] = json!("evil");
        assert_eq!(
            auth.verify(&token(wrong_iss, SECRET)),
            Err(AuthError::Invalid)
        );
        let mut no_tenant = claims(60);
        no_tenant.as_object_mut().unwrap().remove("tenant_id");
        assert_eq!(
            auth.verify(&token(no_tenant, SECRET)),
            Err(AuthError::Invalid)
        );
    }

    #[tokio::test]
    async fn the_bearer_scheme_is_required() {
        let auth = authenticator().await;
        let mut headers = http::HeaderMap::new();
        assert_eq!(auth.authenticate(&headers), Err(AuthError::Missing));
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(auth.authenticate(&headers), Err(AuthError::Missing));
        headers.insert(
            "authorization",
            format!("bearer {}", token(claims(60), SECRET))
                .parse()
                .unwrap(),
        );
        assert!(auth.authenticate(&headers).is_ok());
    }

    /// An Ed25519 key pair: the signing key and its public JWK.
    fn ed25519(kid: &str) -> (EncodingKey, serde_json::Value) {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        use base64::Engine;
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        (
            EncodingKey::from_ed_der(pkcs8.as_ref()),
            json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}),
        )
    }

    #[tokio::test]
    async fn eddsa_tokens_verify_against_a_jwks_file_by_key_id() {
        let (key1, jwk1) = ed25519("k1");
        let (key2, jwk2) = ed25519("k2");
        let (stranger, _) = ed25519("k1");
        let path = std::env::temp_dir().join(format!("jwks-{}.json", std::process::id()));
        std::fs::write(&path, json!({"keys": [jwk1, jwk2]}).to_string()).unwrap();
        let config = JwtConfig {
            jwks_file: Some(path.clone()),
            ..JwtConfig::default()
        };
        let auth = Authenticator::from_config(&config, CancellationToken::new())
            .await
            .unwrap();
        let sign = |key: &EncodingKey, kid: &str| {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some(kid.to_owned());
            jsonwebtoken::encode(&header, &claims(60), key).unwrap()
        };
        assert_eq!(
            auth.verify(&sign(&key1, "k1")).unwrap().tenant_id.as_str(),
            "t1"
        );
        assert!(auth.verify(&sign(&key2, "k2")).is_ok());
        // Signed by a key the issuer never published, under a published key id.
        assert_eq!(auth.verify(&sign(&stranger, "k1")), Err(AuthError::Invalid));
        // A published key under another key's id.
        assert_eq!(auth.verify(&sign(&key1, "k2")), Err(AuthError::Invalid));
        // An unknown key id.
        assert_eq!(auth.verify(&sign(&key1, "k9")), Err(AuthError::Invalid));
        // HS256 signed with the public key bytes (algorithm confusion) is refused.
        assert_eq!(
            auth.verify(&token(claims(60), SECRET)),
            Err(AuthError::Invalid)
        );
        std::fs::remove_file(path).unwrap();
    }
}
