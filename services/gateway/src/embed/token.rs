//! Scoped tokens for the embedded mapping page.
//!
//! A token names one project and tenant (and optionally one connection), carries the
//! `embed` scope and lives minutes. It is an HS256 JWT under a key derived from the suite's
//! internal secret with its own prefix, audience and issuer, so it can never pass as a
//! caller JWT (other key, other audience) or as an internal credential (other key): the
//! gateway accepts it only on `/embed/api/...`.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use syncline_domain::{ProjectId, TenantContext, TenantId};

/// `iss` of every embed token.
const ISSUER: &str = "syncline-gateway";
/// `aud` of every embed token: the page's API only.
const AUDIENCE: &str = "syncline-embed";
/// The only scope there is.
const SCOPE: &str = "embed";
/// Separates the embed key from every other use of the internal secret.
const KEY_PREFIX: &str = "syncline-embed-token-v1:";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    exp: u64,
    iat: u64,
    jti: String,
    scope: String,
    project_id: String,
    tenant_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    connection_id: String,
}

/// What a valid embed token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedScope {
    /// The tenant every call acts for.
    pub context: TenantContext,
    /// The only connection the page may touch, when the token names one.
    pub connection_id: Option<String>,
    /// Seconds since the epoch after which the token is refused.
    pub expires_at: u64,
}

impl EmbedScope {
    /// Whether the page may work on `connection_id`.
    pub fn allows(&self, connection_id: &str) -> bool {
        self.connection_id
            .as_deref()
            .is_none_or(|only| only == connection_id)
    }
}

/// Why a token was refused (the page only learns which of the two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past its `exp`.
    #[error("the link has expired")]
    Expired,
    /// Bad signature, audience, issuer, scope or claims; or not an embed token at all.
    #[error("the link is not valid")]
    Invalid,
}

/// Mints and verifies embed tokens.
pub struct EmbedTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for EmbedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedTokens").finish_non_exhaustive()
    }
}

impl EmbedTokens {
    /// Keys derived from the suite's internal secret.
    pub fn new(internal_secret: &SecretString) -> Self {
        let key = format!("{KEY_PREFIX}{}", internal_secret.expose_secret());
        Self {
            encoding: EncodingKey::from_secret(key.as_bytes()),
            decoding: DecodingKey::from_secret(key.as_bytes()),
        }
    }

    /// A token for `context` (and `connection_id` when not empty) valid for `ttl`; returns
    /// it with its expiry in seconds since the epoch.
    pub fn mint(
        &self,
        context: &TenantContext,
        connection_id: &str,
        ttl: Duration,
    ) -> Result<(String, u64), TokenError> {
        let now = jsonwebtoken::get_current_timestamp();
        let exp = now + ttl.as_secs().max(1);
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: context.subject.clone(),
            exp,
            iat: now,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            scope: SCOPE.into(),
            project_id: context.project_id.to_string(),
            tenant_id: context.tenant_id.to_string(),
            connection_id: connection_id.to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| TokenError::Invalid)?;
        Ok((token, exp))
    }

    /// Verifies a token from the page.
    pub fn verify(&self, token: &str) -> Result<EmbedScope, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?
            .claims;
        if claims.scope != SCOPE {
            return Err(TokenError::Invalid);
        }
        Ok(EmbedScope {
            context: TenantContext {
                project_id: ProjectId::parse(&claims.project_id)
                    .map_err(|_| TokenError::Invalid)?,
                tenant_id: TenantId::parse(&claims.tenant_id).map_err(|_| TokenError::Invalid)?,
                subject: format!("embed:{}", claims.sub),
            },
            connection_id: (!claims.connection_id.is_empty()).then_some(claims.connection_id),
            expires_at: claims.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(tenant: &str) -> TenantContext {
        TenantContext {
            project_id: ProjectId::parse("p1").unwrap(),
            tenant_id: TenantId::parse(tenant).unwrap(),
            subject: "admin-7".into(),
        }
    }

    fn tokens(secret: &str) -> EmbedTokens {
        EmbedTokens::new(&SecretString::from(secret.to_owned()))
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_minted_token_verifies_to_its_tenant_and_connection() {
        let t = tokens(SECRET);
        let (token, exp) = t
            .mint(&context("t1"), "conn_9", Duration::from_secs(60))
            .unwrap();
        let scope = t.verify(&token).unwrap();
        assert_eq!(scope.context.tenant_id.as_str(), "t1");
        assert_eq!(scope.context.subject, "embed:admin-7");
        assert_eq!(scope.connection_id.as_deref(), Some("conn_9"));
        assert_eq!(scope.expires_at, exp);
        assert!(scope.allows("conn_9"));
        assert!(!scope.allows("conn_8"));
        let (open, _) = t.mint(&context("t1"), "", Duration::from_secs(60)).unwrap();
        assert!(t.verify(&open).unwrap().allows("anything"));
    }

    #[test]
    fn expired_forged_and_foreign_tokens_are_refused() {
        let t = tokens(SECRET);
        let now = jsonwebtoken::get_current_timestamp();
        let expired = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "x".into(),
            exp: now - 5,
            iat: now - 65,
            jti: "j".into(),
            scope: SCOPE.into(),
            project_id: "p1".into(),
            tenant_id: "t1".into(),
            connection_id: String::new(),
        };
        let sign = |claims: &Claims, t: &EmbedTokens| {
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &t.encoding).unwrap()
        };
        assert_eq!(t.verify(&sign(&expired, &t)), Err(TokenError::Expired));
        let other_key = tokens("ffffffffffffffffffffffffffffffff");
        let (forged, _) = other_key
            .mint(&context("t1"), "", Duration::from_secs(60))
            .unwrap();
        assert_eq!(t.verify(&forged), Err(TokenError::Invalid));
        let mut wrong_scope = expired;
        wrong_scope.exp = now + 60;
        wrong_scope.scope = "admin".into();
        assert_eq!(t.verify(&sign(&wrong_scope, &t)), Err(TokenError::Invalid));
        wrong_scope.scope = SCOPE.into();
        wrong_scope.aud = "syncline".into();
        assert_eq!(t.verify(&sign(&wrong_scope, &t)), Err(TokenError::Invalid));
        assert_eq!(t.verify("not-a-token"), Err(TokenError::Invalid));
    }

    #[test]
    fn the_embed_key_is_not_the_internal_secret() {
        // A token signed with the raw internal secret (an internal credential's key) is
        // not an embed token.
        let t = tokens(SECRET);
        let raw = EncodingKey::from_secret(SECRET.as_bytes());
        let now = jsonwebtoken::get_current_timestamp();
        let claims = serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 60,
            "iat": now, "jti": "j", "scope": SCOPE, "project_id": "p1", "tenant_id": "t1"});
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &raw).unwrap();
        assert_eq!(t.verify(&token), Err(TokenError::Invalid));
    }
}
