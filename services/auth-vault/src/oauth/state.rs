//! The OAuth `state` parameter and PKCE.
//!
//! A state is `<nonce>.<expiry ms>.<HMAC-SHA256 of both>` (base64url). The signature makes
//! a forged or altered state fail before the database is touched; the expiry bounds how
//! long it may be used; the nonce names a row in `oauth_states` that completing deletes,
//! so each state works once.

use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto::CryptoError;
use crate::crypto::aead::random_bytes;

/// Why a state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Malformed or not signed by this vault (tampered).
    #[error("the authorization state is invalid")]
    Invalid,
    /// Signed by this vault but past its expiry.
    #[error("the authorization state has expired")]
    Expired,
}

/// Signs and verifies states with the vault's state key.
pub struct StateSigner {
    key: hmac::Key,
}

impl std::fmt::Debug for StateSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateSigner(..)")
    }
}

/// A verified state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedState {
    /// The nonce naming the stored authorization.
    pub nonce: String,
    /// When it expires (epoch ms).
    pub expires_at_ms: i64,
}

impl StateSigner {
    /// Uses `secret` (32 bytes from the vault's system data key).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A fresh random nonce.
    pub fn nonce() -> Result<String, CryptoError> {
        Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
    }

    /// The state for `nonce`, valid until `expires_at_ms`.
    pub fn sign(&self, nonce: &str, expires_at_ms: i64) -> String {
        let payload = format!("{nonce}.{expires_at_ms}");
        let tag = hmac::sign(&self.key, payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Checks the signature (in constant time), then the expiry.
    pub fn verify(&self, state: &str, now_ms: i64) -> Result<VerifiedState, StateError> {
        if state.len() > 512 {
            return Err(StateError::Invalid);
        }
        let (payload, signature) = state.rsplit_once('.').ok_or(StateError::Invalid)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| StateError::Invalid)?;
        hmac::verify(&self.key, payload.as_bytes(), &signature).map_err(|_| StateError::Invalid)?;
        let (nonce, expiry) = payload.split_once('.').ok_or(StateError::Invalid)?;
        let expires_at_ms: i64 = expiry.parse().map_err(|_| StateError::Invalid)?;
        if nonce.is_empty() {
            return Err(StateError::Invalid);
        }
        if now_ms >= expires_at_ms {
            return Err(StateError::Expired);
        }
        Ok(VerifiedState {
            nonce: nonce.to_owned(),
            expires_at_ms,
        })
    }
}

/// A PKCE pair (RFC 7636, S256).
pub struct Pkce {
    /// Kept sealed server-side until the code exchange.
    pub verifier: String,
    /// Sent with the authorization request.
    pub challenge: String,
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce")
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

impl Pkce {
    /// A fresh verifier (43 characters of base64url) and its S256 challenge.
    pub fn generate() -> Result<Self, CryptoError> {
        let verifier = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
        let challenge = challenge(&verifier);
        Ok(Self {
            verifier,
            challenge,
        })
    }
}

/// `BASE64URL(SHA256(verifier))`.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> StateSigner {
        StateSigner::new(&[9u8; 32])
    }

    #[test]
    fn a_signed_state_verifies_until_it_expires() {
        let signer = signer();
        let nonce = StateSigner::nonce().unwrap();
        let state = signer.sign(&nonce, 10_000);
        let verified = signer.verify(&state, 9_999).unwrap();
        assert_eq!(verified.nonce, nonce);
        assert_eq!(signer.verify(&state, 10_000), Err(StateError::Expired));
    }

    #[test]
    fn tampered_or_foreign_states_are_invalid() {
        let signer = signer();
        let state = signer.sign("abc", 10_000);
        // Extending the expiry breaks the signature.
        let extended = state.replacen("10000", "99999", 1);
        assert_eq!(signer.verify(&extended, 1), Err(StateError::Invalid));
        // Another nonce under the same signature.
        let swapped = state.replacen("abc", "abd", 1);
        assert_eq!(signer.verify(&swapped, 1), Err(StateError::Invalid));
        // Signed by another vault.
        let foreign = StateSigner::new(&[8u8; 32]).sign("abc", 10_000);
        assert_eq!(signer.verify(&foreign, 1), Err(StateError::Invalid));
        for garbage in ["", ".", "a.b", "a.b.c", "abc.10000.", &"x".repeat(600)] {
            assert_eq!(
                signer.verify(garbage, 1),
                Err(StateError::Invalid),
                "{garbage}"
            );
        }
        // Flipping any character of the signature is caught.
        let mut chars: Vec<char> = state.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let flipped: String = chars.into_iter().collect();
        assert_eq!(signer.verify(&flipped, 1), Err(StateError::Invalid));
    }

    #[test]
    fn pkce_matches_the_rfc_7636_example() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let pkce = Pkce::generate().unwrap();
        assert_eq!(pkce.verifier.len(), 43);
        assert_eq!(challenge(&pkce.verifier), pkce.challenge);
        assert!(!format!("{pkce:?}").contains(&pkce.verifier));
    }
}
