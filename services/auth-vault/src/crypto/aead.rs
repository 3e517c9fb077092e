//! AES-256-GCM sealing with aws-lc-rs: `version ‖ nonce ‖ ciphertext ‖ tag`.
//!
//! Every sealed value is bound to where it lives by its additional authenticated data
//! (`conn:<id>:refresh_token`, …), so a ciphertext copied into another row or column fails
//! to open instead of decrypting as someone else's secret.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Format version of sealed values (the first byte).
const VERSION: u8 = 1;

/// Key length of AES-256.
pub const KEY_LEN: usize = 32;

/// Sealing or opening failed. Deliberately without detail: a wrong key, a tampered value
/// and a value moved to another place look the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("failed to open or seal an encrypted value")]
pub struct CryptoError;

/// An AES-256-GCM key. Its bytes never leave aws-lc-rs, and `Debug` prints nothing.
pub struct AeadKey(LessSafeKey);

impl std::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AeadKey(..)")
    }
}

impl AeadKey {
    /// A key from 32 bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != KEY_LEN {
            return Err(CryptoError);
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| CryptoError)?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// Seals `plaintext`, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| CryptoError)?;
        let mut in_out = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| CryptoError)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    /// Opens what [`seal`](Self::seal) produced with the same key and `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (&version, rest) = sealed.split_first().ok_or(CryptoError)?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return Err(CryptoError);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError)?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| CryptoError)?;
        Ok(plaintext.to_vec())
    }
}

/// `n` random bytes from the system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CryptoError)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AeadKey {
        AeadKey::new(&random_bytes::<KEY_LEN>().unwrap()).unwrap()
    }

    #[test]
    fn sealed_values_round_trip_and_hide_the_plaintext() {
        let key = key();
        let sealed = key
            .seal(b"conn:1:access_token", b"00Dxx!secret-token")
            .unwrap();
        assert!(
            !sealed
                .windows(b"secret-token".len())
                .any(|w| w == b"secret-token")
        );
        assert_eq!(
            key.open(b"conn:1:access_token", &sealed).unwrap(),
            b"00Dxx!secret-token"
        );
        // A fresh nonce every time: the same plaintext never seals the same way twice.
        assert_ne!(
            sealed,
            key.seal(b"conn:1:access_token", b"00Dxx!secret-token")
                .unwrap()
        );
    }

    #[test]
    fn tampering_moving_or_a_wrong_key_is_detected() {
        let key = key();
        let sealed = key.seal(b"conn:1:refresh_token", b"refresh").unwrap();
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            assert_eq!(
                key.open(b"conn:1:refresh_token", &tampered),
                Err(CryptoError)
            );
        }
        assert_eq!(key.open(b"conn:2:refresh_token", &sealed), Err(CryptoError));
        assert_eq!(
            self::key().open(b"conn:1:refresh_token", &sealed),
            Err(CryptoError)
        );
        assert_eq!(
            key.open(b"conn:1:refresh_token", &sealed[..10]),
            Err(CryptoError)
        );
        assert_eq!(key.open(b"conn:1:refresh_token", &[]), Err(CryptoError));
    }

    #[test]
    fn keys_must_be_32_bytes_and_debug_shows_nothing() {
        assert!(AeadKey::new(&[0u8; 16]).is_err());
        assert_eq!(format!("{:?}", key()), "AeadKey(..)");
    }
}
