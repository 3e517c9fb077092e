//! The `credentials` table: a connection's sealed tokens and their version.
//!
//! Tokens are sealed under the tenant's data key, bound to `conn:<id>:<which>`. Writers
//! after a refresh compare-and-set on `token_version`, so a process that lost a race never
//! overwrites a newer token with an older one.

use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use syncline_domain::{ApiError, TenantContext};
use syncline_storage::Database;

use crate::crypto::Keys;

/// A connection's credentials as stored (sealed).
#[derive(Clone)]
pub struct StoredCredentials {
    /// Increases with every replacement.
    pub version: i64,
    access_token: Vec<u8>,
    refresh_token: Vec<u8>,
    /// 0 when unknown.
    pub expires_at_ms: i64,
    /// When the access token was obtained.
    pub obtained_at_ms: i64,
    /// Where the connection refreshes.
    pub token_url: String,
}

impl std::fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredentials")
            .field("version", &self.version)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// Plaintext tokens to store.
pub struct NewTokens<'a> {
    /// The access token.
    pub access_token: &'a SecretString,
    /// The refresh token; `None` keeps the stored one (no rotation).
    pub refresh_token: Option<&'a SecretString>,
    /// 0 when unknown.
    pub expires_at_ms: i64,
    /// When they were obtained.
    pub obtained_at_ms: i64,
    /// Where the connection refreshes.
    pub token_url: &'a str,
}

fn aad(connection_id: &str, which: &str) -> String {
    format!("conn:{connection_id}:{which}")
}

impl StoredCredentials {
    /// The decrypted access token.
    pub async fn access_token(
        &self,
        keys: &Keys,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<SecretString, ApiError> {
        open(
            keys,
            tenant,
            connection_id,
            "access_token",
            &self.access_token,
        )
        .await
    }

    /// The decrypted refresh token, if there is one.
    pub async fn refresh_token(
        &self,
        keys: &Keys,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<Option<SecretString>, ApiError> {
        if self.refresh_token.is_empty() {
            return Ok(None);
        }
        open(
            keys,
            tenant,
            connection_id,
            "refresh_token",
            &self.refresh_token,
        )
        .await
        .map(Some)
    }
}

async fn open(
    keys: &Keys,
    tenant: &TenantContext,
    connection_id: &str,
    which: &str,
    sealed: &[u8],
) -> Result<SecretString, ApiError> {
    let plain = keys
        .open(
            tenant.project_id.as_str(),
            tenant.tenant_id.as_str(),
            &aad(connection_id, which),
            sealed,
        )
        .await?;
    String::from_utf8(plain)
        .map(SecretString::from)
        .map_err(|_| ApiError::internal("token is not utf-8"))
}

async fn seal(
    keys: &Keys,
    tenant: &TenantContext,
    connection_id: &str,
    which: &str,
    secret: &SecretString,
) -> Result<Vec<u8>, ApiError> {
    keys.seal(
        tenant.project_id.as_str(),
        tenant.tenant_id.as_str(),
        &aad(connection_id, which),
        secret.expose_secret().as_bytes(),
    )
    .await
}

/// The credentials of a connection of the tenant.
pub async fn load(
    db: &Database,
    tenant: &TenantContext,
    connection_id: &str,
) -> Result<Option<StoredCredentials>, ApiError> {
    let row = sqlx::query(
        "SELECT token_version, access_token, refresh_token, expires_at_ms, obtained_at_ms,
                token_url
         FROM credentials WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3",
    )
    .bind(tenant.project_id.as_str())
    .bind(tenant.tenant_id.as_str())
    .bind(connection_id)
    .fetch_optional(db.pool())
    .await
    .map_err(ApiError::internal)?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(StoredCredentials {
        version: row.try_get("token_version").map_err(ApiError::internal)?,
        access_token: row.try_get("access_token").map_err(ApiError::internal)?,
        refresh_token: row.try_get("refresh_token").map_err(ApiError::internal)?,
        expires_at_ms: row.try_get("expires_at_ms").map_err(ApiError::internal)?,
        obtained_at_ms: row.try_get("obtained_at_ms").map_err(ApiError::internal)?,
        token_url: row.try_get("token_url").map_err(ApiError::internal)?,
    }))
}

/// Stores the tokens of a completed authorization, replacing any earlier ones (the version
/// still increases, so holders of the old token learn it was replaced).
pub async fn store_authorized(
    db: &Database,
    keys: &Keys,
    tenant: &TenantContext,
    connection_id: &str,
    tokens: &NewTokens<'_>,
) -> Result<i64, ApiError> {
    let access = seal(
        keys,
        tenant,
        connection_id,
        "access_token",
        tokens.access_token,
    )
    .await?;
    let refresh = match tokens.refresh_token {
        Some(token) => seal(keys, tenant, connection_id, "refresh_token", token).await?,
        None => Vec::new(),
    };
    let row = sqlx::query(
        "INSERT INTO credentials
             (connection_id, project_id, tenant_id, token_version, access_token, refresh_token,
              expires_at_ms, obtained_at_ms, token_url, updated_at_ms)
         VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $7)
         ON CONFLICT (connection_id) DO UPDATE SET
             token_version = credentials.token_version + 1,
             access_token = excluded.access_token,
             refresh_token = excluded.refresh_token,
             expires_at_ms = excluded.expires_at_ms,
             obtained_at_ms = excluded.obtained_at_ms,
             token_url = excluded.token_url,
             updated_at_ms = excluded.updated_at_ms,
             lease_owner = '',
             lease_until_ms = 0
         RETURNING token_version",
    )
    .bind(connection_id)
    .bind(tenant.project_id.as_str())
    .bind(tenant.tenant_id.as_str())
    .bind(access)
    .bind(refresh)
    .bind(tokens.expires_at_ms)
    .bind(tokens.obtained_at_ms)
    .bind(tokens.token_url)
    .fetch_one(db.pool())
    .await
    .map_err(ApiError::internal)?;
    row.try_get("token_version").map_err(ApiError::internal)
}

/// Replaces the tokens of version `expected` with refreshed ones. `Ok(None)` when another
/// writer replaced them first (nothing is written); else the new version.
pub async fn replace_if_current(
    db: &Database,
    keys: &Keys,
    tenant: &TenantContext,
    connection_id: &str,
    current: &StoredCredentials,
    tokens: &NewTokens<'_>,
) -> Result<Option<i64>, ApiError> {
    let access = seal(
        keys,
        tenant,
        connection_id,
        "access_token",
        tokens.access_token,
    )
    .await?;
    let refresh = match tokens.refresh_token {
        Some(token) => seal(keys, tenant, connection_id, "refresh_token", token).await?,
        None => current.refresh_token.clone(),
    };
    let done = sqlx::query(
        "UPDATE credentials SET
             token_version = token_version + 1, access_token = $4, refresh_token = $5,
             expires_at_ms = $6, obtained_at_ms = $7, updated_at_ms = $7,
             lease_owner = '', lease_until_ms = 0
         WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3
           AND token_version = $8",
    )
    .bind(tenant.project_id.as_str())
    .bind(tenant.tenant_id.as_str())
    .bind(connection_id)
    .bind(access)
    .bind(refresh)
    .bind(tokens.expires_at_ms)
    .bind(tokens.obtained_at_ms)
    .bind(current.version)
    .execute(db.pool())
    .await
    .map_err(ApiError::internal)?;
    Ok((done.rows_affected() == 1).then_some(current.version + 1))
}

/// Takes the refresh lease of a connection whose token is still at `version`, for
/// `lease_ms`, unless another process holds an unexpired one. `true` when taken.
pub async fn acquire_lease(
    db: &Database,
    tenant: &TenantContext,
    connection_id: &str,
    version: i64,
    owner: &str,
    lease_ms: i64,
) -> Result<bool, ApiError> {
    let now = syncline_storage::now_ms();
    let done = sqlx::query(
        "UPDATE credentials SET lease_owner = $5, lease_until_ms = $6
         WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3
           AND token_version = $4 AND (lease_until_ms < $7 OR lease_owner = $5)",
    )
    .bind(tenant.project_id.as_str())
    .bind(tenant.tenant_id.as_str())
    .bind(connection_id)
    .bind(version)
    .bind(owner)
    .bind(now + lease_ms)
    .bind(now)
    .execute(db.pool())
    .await
    .map_err(ApiError::internal)?;
    Ok(done.rows_affected() == 1)
}

/// Gives the lease back after a refresh that wrote nothing.
pub async fn release_lease(
    db: &Database,
    tenant: &TenantContext,
    connection_id: &str,
    owner: &str,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE credentials SET lease_owner = '', lease_until_ms = 0
         WHERE project_id = $1 AND tenant_id = $2 AND connection_id = $3 AND lease_owner = $4",
    )
    .bind(tenant.project_id.as_str())
    .bind(tenant.tenant_id.as_str())
    .bind(connection_id)
    .bind(owner)
    .execute(db.pool())
    .await
    .map_err(ApiError::internal)?;
    Ok(())
}

#[cfg(test)]
impl StoredCredentials {
    /// Credentials with only times set.
    pub fn for_test(obtained_at_ms: i64, expires_at_ms: i64) -> Self {
        Self {
            version: 1,
            access_token: Vec::new(),
            refresh_token: Vec::new(),
            expires_at_ms,
            obtained_at_ms,
            token_url: String::new(),
        }
    }
}
