//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed with the base64-decoded part of the
//! endpoint's `whsec_…` secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of signing secrets.
pub const SECRET_PREFIX: &str = "whsec_";

/// A signing secret that is not `whsec_` + base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signing secret is not whsec_ followed by base64")]
pub struct InvalidSecret;

/// The HMAC key inside a `whsec_…` secret (a bare base64 key is accepted too).
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, InvalidSecret> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    match STANDARD.decode(encoded) {
        Ok(key) if !key.is_empty() => Ok(key),
        _ => Err(InvalidSecret),
    }
}

/// HMAC takes keys of every length, so this fails only for an empty key (refused by
/// [`decode_secret`] anyway).
fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Result<Hmac<Sha256>, InvalidSecret> {
    if key.is_empty() {
        return Err(InvalidSecret);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| InvalidSecret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// The `webhook-signature` header value for one attempt.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Result<String, InvalidSecret> {
    let mac = mac(key, id, timestamp, body)?;
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Whether `header` (space-separated `v1,<sig>` entries) holds a valid signature of this
/// message under `key`, and `timestamp` is within `tolerance_secs` of `now_secs`. Compares
/// in constant time.
pub fn verify(
    key: &[u8],
    id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
    now_secs: i64,
    tolerance_secs: i64,
) -> bool {
    if (now_secs - timestamp).abs() > tolerance_secs {
        return false;
    }
    header.split(' ').any(|entry| {
        entry
            .strip_prefix("v1,")
            .and_then(|sig| STANDARD.decode(sig).ok())
            .zip(mac(key, id, timestamp, body).ok())
            .is_some_and(|(sig, mac)| mac.verify_slice(&sig).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        let key = decode_secret(SECRET).unwrap();
        assert_eq!(
            sign(&key, ID, TIMESTAMP, BODY).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn verifies_the_vector_and_refuses_tampering_and_stale_timestamps() {
        let key = decode_secret(SECRET).unwrap();
        let header = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert!(verify(
            &key,
            ID,
            TIMESTAMP,
            BODY,
            header,
            TIMESTAMP + 10,
            300
        ));
        let rotated = format!("v1,AAAA {header}");
        assert!(verify(&key, ID, TIMESTAMP, BODY, &rotated, TIMESTAMP, 300));
        assert!(!verify(&key, ID, TIMESTAMP, b"{}", header, TIMESTAMP, 300));
        assert!(!verify(
            &key,
            "msg_other",
            TIMESTAMP,
            BODY,
            header,
            TIMESTAMP,
            300
        ));
        assert!(!verify(
            &key,
            ID,
            TIMESTAMP,
            BODY,
            header,
            TIMESTAMP + 301,
            300
        ));
        assert!(!verify(&key, ID, TIMESTAMP, BODY, "v2,abc", TIMESTAMP, 300));
    }

    #[test]
    fn secrets_must_be_base64() {
        assert!(decode_secret("whsec_not base64!").is_err());
        assert!(decode_secret("whsec_").is_err());
        assert_eq!(decode_secret(SECRET), decode_secret(&SECRET[6..]));
    }
}
