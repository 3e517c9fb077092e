//! Minting JWTs for tests, valid or deliberately broken.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// Claims the default gateway configuration accepts for `project`/`tenant`, valid for an hour.
pub fn claims(project: &str, tenant: &str) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    json!({
        "sub": format!("user-of-{tenant}"),
        "aud": "syncline",
        "iss": "syncline-dev",
        "iat": now,
        "exp": now + 3600,
        "project_id": project,
        "tenant_id": tenant,
    })
}

/// Signs `claims` with HS256 and `secret`.
pub fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("hs256 signing cannot fail")
}
