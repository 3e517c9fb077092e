//! Development credentials for the embedded suite: a persistent HS256 secret in the data
//! directory and tokens minted with it, so `syncline up` works with nothing configured.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use syncline_config::SynclineConfig;

/// The file holding the development JWT secret.
pub fn secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join("dev-jwt-secret")
}

/// Reads the development secret, creating it (mode 0600) on first use.
pub fn load_or_create_secret(data_dir: &Path) -> std::io::Result<SecretString> {
    let path = secret_path(data_dir);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= 32 {
            return Ok(SecretString::from(existing));
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let secret = crate::random_secret(48);
    write_private(&path, secret.expose_secret())?;
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Fills in the development JWT secret when no key source is configured.
pub fn ensure_dev_jwt(config: &mut SynclineConfig) -> std::io::Result<bool> {
    let jwt = &config.gateway.jwt;
    if jwt.hs256_secret.is_some() || jwt.jwks_file.is_some() || jwt.jwks_url.is_some() {
        return Ok(false);
    }
    config.gateway.jwt.hs256_secret = Some(load_or_create_secret(&config.data_dir)?);
    Ok(true)
}

/// Mints an HS256 token the gateway accepts for `project`/`tenant`.
pub fn mint_token(
    config: &SynclineConfig,
    project: &str,
    tenant: &str,
    subject: &str,
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let jwt = &config.gateway.jwt;
    let secret = jwt
        .hs256_secret
        .as_ref()
        .map(|s| s.expose_secret().to_owned())
        .unwrap_or_default();
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), subject.into());
    claims.insert("aud".into(), jwt.audience.clone().into());
    claims.insert(
        "iss".into(),
        jwt.issuers.first().cloned().unwrap_or_default().into(),
    );
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + ttl.as_secs()).into());
    claims.insert(jwt.project_claim.clone(), project.into());
    claims.insert(jwt.tenant_claim.clone(), tenant.into());
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}
