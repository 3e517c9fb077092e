//! Always a valid token: GetAccessToken and ReportUnauthorized.
//!
//! A token expiring within the margin is refreshed first. Refreshes of one connection are
//! single-flight in this process (an async mutex per connection: waiters find the token
//! replaced and use it) and across processes (a lease in the `credentials` row: only its
//! holder spends the refresh token, the others wait for the new version, or keep using the
//! current token while it is still valid). Writes compare-and-set on `token_version`, the
//! fencing token: a holder whose lease ran out cannot overwrite a newer token, and a rotated
//! refresh token is stored in the same statement as the access token, so it is never lost.
//! `invalid_grant` moves only that connection to NEEDS_REAUTH, and only if nobody replaced
//! its token meanwhile.

use secrecy::{ExposeSecret, SecretString};
use syncline_domain::{ApiError, ErrorCode, TenantContext};
use syncline_proto::authvault::v1::{AccessToken, AuditAction, Connection};
use syncline_proto::common::v1::{ConnectionStatus, ErrorReason, EventType};
use syncline_service_kit::time;
use syncline_storage::now_ms;

use crate::audit::{self, Entry};
use crate::credentials::{self, NewTokens, StoredCredentials};
use crate::lifecycle;
use crate::oauth::{ClientCredentials, ProviderError, ProviderKind};
use crate::vault::Vault;

/// The longest `min_validity` a caller may ask for.
pub const MAX_MIN_VALIDITY_MS: i64 = 24 * 3600 * 1000;

async fn usable_connection(
    vault: &Vault,
    tenant: &TenantContext,
    id: &str,
) -> Result<Connection, ApiError> {
    let connection = vault
        .store
        .connection(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    if connection.disabled || connection.status == ConnectionStatus::Disabled as i32 {
        return Err(ApiError::new(
            ErrorCode::FailedPrecondition,
            "the connection is disabled",
        ));
    }
    match ConnectionStatus::try_from(connection.status) {
        Ok(ConnectionStatus::NeedsReauth) => Err(needs_reauth()),
        Ok(ConnectionStatus::Active | ConnectionStatus::Degraded) => Ok(connection),
        Ok(ConnectionStatus::Disabled) => Err(ApiError::new(
            ErrorCode::FailedPrecondition,
            "the connection is disabled",
        )),
        Ok(ConnectionStatus::PendingAuthorization | ConnectionStatus::Unspecified) | Err(_) => {
            Err(ApiError::new(
                ErrorCode::FailedPrecondition,
                "the connection is not authorized yet",
            ))
        }
    }
}

fn needs_reauth() -> ApiError {
    ApiError::new(
        ErrorCode::NeedsReauth,
        "the connection must be authorized again",
    )
}

async fn credentials_of(
    vault: &Vault,
    tenant: &TenantContext,
    id: &str,
) -> Result<StoredCredentials, ApiError> {
    credentials::load(vault.store.db(), tenant, id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::FailedPrecondition,
                "the connection has no credentials",
            )
        })
}

/// Whether the token is good for `margin_ms` more. The margin is capped at half the
/// token's lifetime: a fresh token always counts as fresh, so a margin longer than the
/// provider's lifetime cannot cause a refresh per call.
fn fresh_enough(credentials: &StoredCredentials, margin_ms: i64, now: i64) -> bool {
    if credentials.expires_at_ms == 0 {
        return true;
    }
    let lifetime = (credentials.expires_at_ms - credentials.obtained_at_ms).max(0);
    let margin = margin_ms.min(lifetime / 2);
    credentials.expires_at_ms - now > margin
}

async fn access_token(
    vault: &Vault,
    tenant: &TenantContext,
    connection: &Connection,
    credentials: &StoredCredentials,
) -> Result<AccessToken, ApiError> {
    let token = credentials
        .access_token(&vault.keys, tenant, &connection.id)
        .await?;
    Ok(AccessToken {
        access_token: token.expose_secret().to_owned(),
        token_type: "Bearer".into(),
        instance_url: connection.instance_url.clone(),
        expire_time: (credentials.expires_at_ms > 0)
            .then(|| time::timestamp(credentials.expires_at_ms)),
        version: credentials.version,
        provider: connection.provider,
    })
}

/// A usable access token, refreshed first when it expires within `min_validity_ms`
/// (the configured margin when `None`).
pub async fn get_access_token(
    vault: &Vault,
    tenant: &TenantContext,
    connection_id: &str,
    min_validity_ms: Option<i64>,
) -> Result<AccessToken, ApiError> {
    let margin = min_validity_ms.unwrap_or(vault.settings.refresh_margin_ms);
    let connection = usable_connection(vault, tenant, connection_id).await?;
    let seen = credentials_of(vault, tenant, connection_id).await?;
    if fresh_enough(&seen, margin, now_ms()) {
        return access_token(vault, tenant, &connection, &seen).await;
    }
    let lock = vault.locks.of(connection_id);
    let _flight = lock.lock().await;
    let current = credentials_of(vault, tenant, connection_id).await?;
    if current.version != seen.version || fresh_enough(&current, margin, now_ms()) {
        // Refreshed while we waited: the one refresh serves every waiter.
        let connection = usable_connection(vault, tenant, connection_id).await?;
        return access_token(vault, tenant, &connection, &current).await;
    }
    let must_replace = current.expires_at_ms <= now_ms();
    refresh(vault, tenant, connection, current, must_replace).await
}

/// The provider rejected token `version`: refresh once per version, else return the
/// token that already replaced it.
pub async fn report_unauthorized(
    vault: &Vault,
    tenant: &TenantContext,
    connection_id: &str,
    version: i64,
    provider_error: &str,
) -> Result<AccessToken, ApiError> {
    let connection = usable_connection(vault, tenant, connection_id).await?;
    let seen = credentials_of(vault, tenant, connection_id).await?;
    if seen.version != version {
        return access_token(vault, tenant, &connection, &seen).await;
    }
    let lock = vault.locks.of(connection_id);
    let _flight = lock.lock().await;
    let current = credentials_of(vault, tenant, connection_id).await?;
    if current.version != version {
        let connection = usable_connection(vault, tenant, connection_id).await?;
        return access_token(vault, tenant, &connection, &current).await;
    }
    let reported: String = provider_error
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ' ' | '-'))
        .take(64)
        .collect();
    tracing::info!(
        connection.id = connection_id,
        token.version = version,
        provider_error = %reported,
        "token reported unauthorized; refreshing"
    );
    refresh(vault, tenant, connection, current, true).await
}

/// How often a process waiting for another's refresh looks again.
const LEASE_POLL: std::time::Duration = std::time::Duration::from_millis(25);

/// Takes the connection's refresh lease for `current`'s version. `Ok(Err(token))` when
/// there is no need any more: another process replaced the token, or (unless
/// `must_replace`) holds the lease while the current token is still valid.
async fn take_lease(
    vault: &Vault,
    tenant: &TenantContext,
    connection: &Connection,
    mut current: StoredCredentials,
    must_replace: bool,
) -> Result<Result<StoredCredentials, AccessToken>, ApiError> {
    let db = vault.store.db();
    let give_up = now_ms() + 2 * vault.settings.lease_ms;
    loop {
        if credentials::acquire_lease(
            db,
            tenant,
            &connection.id,
            current.version,
            &vault.instance_id,
            vault.settings.lease_ms,
        )
        .await?
        {
            return Ok(Ok(current));
        }
        let latest = credentials_of(vault, tenant, &connection.id).await?;
        if latest.version != current.version {
            return Ok(Err(access_token(vault, tenant, connection, &latest).await?));
        }
        if !must_replace && latest.expires_at_ms > now_ms() {
            return Ok(Err(access_token(vault, tenant, connection, &latest).await?));
        }
        if now_ms() > give_up {
            return Err(ApiError::new(
                ErrorCode::ProviderUnavailable,
                "another process is refreshing the token; retry later",
            ));
        }
        current = latest;
        tokio::time::sleep(LEASE_POLL).await;
    }
}

/// Refreshes `current` (the caller holds the connection's in-process lock).
async fn refresh(
    vault: &Vault,
    tenant: &TenantContext,
    connection: Connection,
    current: StoredCredentials,
    must_replace: bool,
) -> Result<AccessToken, ApiError> {
    let current = match take_lease(vault, tenant, &connection, current, must_replace).await? {
        Ok(current) => current,
        Err(token) => return Ok(token),
    };
    let id = connection.id.clone();
    let result = refresh_leased(vault, tenant, connection, current).await;
    // A successful write released the lease with the new version; anything else gives it
    // back so another process need not wait for it to run out.
    credentials::release_lease(vault.store.db(), tenant, &id, &vault.instance_id).await?;
    result
}

/// Refreshes `current` while holding the lease.
async fn refresh_leased(
    vault: &Vault,
    tenant: &TenantContext,
    mut connection: Connection,
    current: StoredCredentials,
) -> Result<AccessToken, ApiError> {
    let Some(refresh_token) = current
        .refresh_token(&vault.keys, tenant, &connection.id)
        .await?
    else {
        if current.expires_at_ms > now_ms() {
            return access_token(vault, tenant, &connection, &current).await;
        }
        mark_needs_reauth(
            vault,
            tenant,
            &mut connection,
            current.version,
            "no refresh token",
        )
        .await?;
        return Err(needs_reauth());
    };
    let kind = ProviderKind::from_proto(connection.provider)
        .ok_or_else(|| ApiError::internal("stored connection has no provider"))?;
    let project = tenant.project_id.as_str();
    let app = vault
        .store
        .provider_app(tenant, &connection.provider_app_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::FailedPrecondition,
                "the connection's provider app was deleted",
            )
        })?;
    let secret: SecretString = vault.client_secret(project, &app.id).await?;
    let token_url = url::Url::parse(&current.token_url).map_err(ApiError::internal)?;
    let result = vault
        .oauth
        .refresh(
            kind,
            &token_url,
            &ClientCredentials {
                client_id: &app.client_id,
                client_secret: &secret,
            },
            &refresh_token,
        )
        .await;
    let grant = match result {
        Ok(grant) => grant,
        Err(ProviderError::InvalidGrant(reason)) => {
            // Another process may have refreshed (and rotated) meanwhile: its token wins.
            let latest = credentials_of(vault, tenant, &connection.id).await?;
            if latest.version != current.version {
                return access_token(vault, tenant, &connection, &latest).await;
            }
            if mark_needs_reauth(vault, tenant, &mut connection, current.version, &reason).await? {
                return Err(needs_reauth());
            }
            let latest = credentials_of(vault, tenant, &connection.id).await?;
            return access_token(vault, tenant, &connection, &latest).await;
        }
        Err(error) => {
            tracing::warn!(connection.id = %connection.id, %error, "token refresh failed");
            let reason = match &error {
                ProviderError::Unavailable(_) => ErrorReason::ProviderUnavailable,
                ProviderError::Rejected(_) | ProviderError::InvalidGrant(_) => {
                    ErrorReason::ProviderRejected
                }
            };
            audit::record_or_log(
                vault.store.db(),
                tenant,
                Entry::new(AuditAction::TokenRefreshFailed)
                    .connection(&connection.id)
                    .app(&connection.provider_app_id)
                    .failed(reason)
                    .detail("provider_error", error.to_string()),
            )
            .await;
            if current.expires_at_ms > now_ms() {
                // Still valid for a while: better than nothing; the next call retries.
                return access_token(vault, tenant, &connection, &current).await;
            }
            return Err(match error {
                ProviderError::Unavailable(_) => ApiError::new(
                    ErrorCode::ProviderUnavailable,
                    "the provider could not refresh the token; retry later",
                ),
                ProviderError::Rejected(_) | ProviderError::InvalidGrant(_) => ApiError::new(
                    ErrorCode::FailedPrecondition,
                    format!("the provider refused the refresh ({error})"),
                ),
            });
        }
    };
    let now = now_ms();
    let expires_at = match (kind, grant.expires_in) {
        (_, Some(secs)) if secs > 0 => now + secs * 1000,
        (ProviderKind::Salesforce, _) => now + vault.settings.salesforce_lifetime_ms,
        _ => 0,
    };
    let replaced = credentials::replace_if_current(
        vault.store.db(),
        &vault.keys,
        tenant,
        &connection.id,
        &current,
        &NewTokens {
            access_token: &grant.access_token,
            refresh_token: grant.refresh_token.as_ref(),
            expires_at_ms: expires_at,
            obtained_at_ms: now,
            token_url: current.token_url.as_str(),
        },
    )
    .await?;
    let latest = credentials_of(vault, tenant, &connection.id).await?;
    if replaced.is_none() {
        tracing::info!(connection.id = %connection.id, "another process refreshed first");
        return access_token(vault, tenant, &connection, &latest).await;
    }
    tracing::info!(
        connection.id = %connection.id,
        token.version = latest.version,
        "access token refreshed"
    );
    if !grant.instance_url.is_empty() {
        connection.instance_url = grant.instance_url.clone();
    }
    connection.refresh_time = Some(time::timestamp(now));
    if connection.status == ConnectionStatus::Degraded as i32 {
        connection.status = ConnectionStatus::Active as i32;
        connection.status_reason = 0;
        connection.status_message.clear();
    }
    vault
        .store
        .save_connection(tenant, &connection, now)
        .await?;
    access_token(vault, tenant, &connection, &latest).await
}

/// Moves the connection to NEEDS_REAUTH if its token is still at `version` (nobody
/// replaced the refused token meanwhile). `true` when it did.
async fn mark_needs_reauth(
    vault: &Vault,
    tenant: &TenantContext,
    connection: &mut Connection,
    version: i64,
    reason: &str,
) -> Result<bool, ApiError> {
    connection.status = ConnectionStatus::NeedsReauth as i32;
    connection.status_reason = ErrorReason::NeedsReauth as i32;
    connection.status_message = format!("the provider refused the refresh token ({reason})");
    let event = lifecycle::event(
        EventType::ConnectionNeedsReauth,
        connection,
        ErrorReason::NeedsReauth,
        &connection.status_message,
    );
    if !vault
        .store
        .save_connection_if_version(tenant, connection, version, now_ms(), Some(&event))
        .await?
    {
        return Ok(false);
    }
    vault.outbox_wake.notify_one();
    tracing::warn!(
        tenant.id = %tenant.tenant_id,
        connection.id = %connection.id,
        "connection needs re-authorization"
    );
    audit::record_or_log(
        vault.store.db(),
        tenant,
        Entry::new(AuditAction::TokenRevoked)
            .connection(&connection.id)
            .app(&connection.provider_app_id)
            .failed(ErrorReason::NeedsReauth)
            .detail("provider_error", reason),
    )
    .await;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_capped_at_half_the_lifetime() {
        let creds = |obtained, expires| StoredCredentials::for_test(obtained, expires);
        // 2 h token, 5 min margin: fresh until 5 min before expiry.
        let c = creds(0, 7_200_000);
        assert!(fresh_enough(&c, 300_000, 6_899_999));
        assert!(!fresh_enough(&c, 300_000, 6_900_000));
        // A 3 h margin on a 2 h token: refresh only after half its life.
        assert!(fresh_enough(&c, 3 * 3_600_000, 3_599_999));
        assert!(!fresh_enough(&c, 3 * 3_600_000, 3_600_000));
        // Unknown expiry: used as is.
        assert!(fresh_enough(&creds(0, 0), 300_000, i64::MAX / 2));
    }
}
