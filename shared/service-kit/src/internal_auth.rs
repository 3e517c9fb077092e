//! Credentials between Syncline processes.
//!
//! The gateway authenticates the outside caller, then forwards the resulting
//! [`TenantContext`] in the `x-syncline-internal` header as a short-lived HS256 token signed
//! with the suite's internal secret. Services calling each other sign the same kind of token
//! naming themselves. A backend trusts a tenant scope only when this signature verifies;
//! anything a caller sends in request bodies or other headers is ignored.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use syncline_domain::{ProjectId, TenantContext, TenantId};

/// The metadata key that carries the internal credential.
pub const HEADER: &str = "x-syncline-internal";

const ISSUER: &str = "syncline";
const AUDIENCE: &str = "syncline-internal";

/// Who signed an internal credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerOrigin {
    /// Forwarded by the gateway on behalf of an outside caller.
    Gateway,
    /// Another Syncline service, by name (e.g. `sync-engine`).
    Service(String),
}

/// A verified internal caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant scope of the call.
    pub context: TenantContext,
    /// Who vouches for it.
    pub origin: CallerOrigin,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    exp: u64,
    sub: String,
    project: String,
    tenant: String,
    /// `gateway` or `service:<name>`.
    via: String,
}

/// Why an internal credential was refused. Deliberately coarse: callers learn nothing more.
#[derive(Debug, thiserror::Error)]
#[error("missing or invalid internal credentials")]
pub struct InternalAuthError;

/// Signs and verifies internal credentials with the suite's shared secret.
#[derive(Clone)]
pub struct InternalAuth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for InternalAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalAuth { .. }")
    }
}

impl InternalAuth {
    /// Uses `secret` (at least 32 bytes, checked by configuration validation).
    pub fn new(secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
        }
    }

    /// A credential for `context`, vouched for by `origin`, valid for `ttl`.
    pub fn sign(
        &self,
        context: &TenantContext,
        origin: &CallerOrigin,
        ttl: Duration,
    ) -> Result<String, InternalAuthError> {
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            exp: jsonwebtoken::get_current_timestamp() + ttl.as_secs().max(1),
            sub: context.subject.clone(),
            project: context.project_id.to_string(),
            tenant: context.tenant_id.to_string(),
            via: match origin {
                CallerOrigin::Gateway => "gateway".into(),
                CallerOrigin::Service(name) => format!("service:{name}"),
            },
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| InternalAuthError)
    }

    /// Verifies a credential and returns who is calling for which tenant.
    pub fn verify(&self, token: &str) -> Result<Caller, InternalAuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| InternalAuthError)?;
        let claims = data.claims;
        let origin = match claims.via.as_str() {
            "gateway" => CallerOrigin::Gateway,
            other => match other.strip_prefix("service:") {
                Some(name) if !name.is_empty() => CallerOrigin::Service(name.to_owned()),
                _ => return Err(InternalAuthError),
            },
        };
        Ok(Caller {
            context: TenantContext {
                project_id: ProjectId::parse(claims.project).map_err(|_| InternalAuthError)?,
                tenant_id: TenantId::parse(claims.tenant).map_err(|_| InternalAuthError)?,
                subject: claims.sub,
            },
            origin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> TenantContext {
        TenantContext {
            project_id: ProjectId::parse("proj").unwrap(),
            tenant_id: TenantId::parse("acme").unwrap(),
            subject: "user-1".into(),
        }
    }

    fn auth(secret: &str) -> InternalAuth {
        InternalAuth::new(&SecretString::from(secret.to_owned()))
    }

    #[test]
    fn a_signed_context_verifies_with_its_origin() {
        let auth = auth("0123456789abcdef0123456789abcdef");
        let origin = CallerOrigin::Service("sync-engine".into());
        let token = auth
            .sign(&context(), &origin, Duration::from_secs(30))
            .unwrap();
        let caller = auth.verify(&token).unwrap();
        assert_eq!(caller.context, context());
        assert_eq!(caller.origin, origin);
    }

    #[test]
    fn a_credential_signed_with_another_secret_is_refused() {
        let token = auth("0123456789abcdef0123456789abcdef")
            .sign(&context(), &CallerOrigin::Gateway, Duration::from_secs(30))
            .unwrap();
        assert!(
            auth("ffffffffffffffffffffffffffffffff")
                .verify(&token)
                .is_err()
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert!(
            auth("0123456789abcdef0123456789abcdef")
                .verify("not-a-token")
                .is_err()
        );
    }
}
