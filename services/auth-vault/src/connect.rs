//! The connect flow: StartAuthorization and CompleteAuthorization.
//!
//! Start records the authorization in `oauth_states` (tenant, connection, PKCE verifier
//! sealed, where to redirect) and returns the provider's authorize URL with a signed
//! `state`. The gateway's `/oauth/callback` calls Complete with what the provider sent back:
//! the state is verified (signature, expiry), then consumed (deleted: a replay finds
//! nothing), the code exchanged with the verifier, tokens sealed and stored, and the
//! connection made ACTIVE. Nothing is stored for a refused state.

use sqlx::Row;
use syncline_domain::{ApiError, ErrorCode, ProjectId, TenantContext, TenantId, Violation};
use syncline_proto::authvault::v1::{
    AuditAction, CompleteAuthorizationRequest, CompleteAuthorizationResponse, Connection,
    StartAuthorizationRequest, StartAuthorizationResponse,
};
use syncline_proto::common::v1::ConnectionStatus;
use syncline_service_kit::time;
use syncline_storage::now_ms;

use crate::audit::{self, Entry};
use crate::credentials::{self, NewTokens};
use crate::oauth::providers::{AuthorizeRequest, authorize_url, parse_http_url};
use crate::oauth::{ClientCredentials, Pkce, ProviderError, ProviderKind, StateError, StateSigner};
use crate::vault::Vault;

/// Violation reasons of `state` the gateway turns into its pages.
pub mod reasons {
    /// Not signed by the vault, or malformed.
    pub const STATE_INVALID: &str = "STATE_INVALID";
    /// Past its expiry.
    pub const STATE_EXPIRED: &str = "STATE_EXPIRED";
    /// Already used (or never issued by this vault's database).
    pub const STATE_USED: &str = "STATE_USED";
}

fn state_violation(reason: &str, description: &str) -> ApiError {
    ApiError::invalid(vec![Violation::new("state", reason, description)])
}

/// Starts an authorization for a new connection, or to re-authorize an existing one.
pub async fn start(
    vault: &Vault,
    tenant: &TenantContext,
    request: StartAuthorizationRequest,
) -> Result<StartAuthorizationResponse, ApiError> {
    let mut violations = Vec::new();
    if request.provider_app_id.is_empty() {
        violations.push(Violation::required("provider_app_id"));
    }
    for (field, value) in [
        ("return_url", &request.return_url),
        ("authorize_url", &request.authorize_url),
    ] {
        if !value.is_empty()
            && let Err(reason) = parse_http_url(value)
        {
            violations.push(Violation::new(field, "INVALID_URL", reason));
        }
    }
    if request.display_name.chars().count() > 200 {
        violations.push(Violation::new(
            "display_name",
            "TOO_LONG",
            "must be at most 200 characters",
        ));
    }
    if !violations.is_empty() {
        return Err(ApiError::invalid(violations));
    }
    let app = vault
        .store
        .provider_app(tenant, &request.provider_app_id)
        .await?
        .ok_or_else(|| ApiError::not_found("provider app"))?;
    let kind = ProviderKind::from_proto(app.provider)
        .ok_or_else(|| ApiError::internal("stored provider app has no provider"))?;
    let authorize_override = if request.authorize_url.is_empty() {
        app.authorize_url.as_str()
    } else {
        request.authorize_url.as_str()
    };
    let endpoint = kind.resolve(authorize_override, true).map_err(|reason| {
        ApiError::invalid(vec![Violation::new("authorize_url", "INVALID_URL", reason)])
    })?;
    // The token endpoint: the app's, else on the host the user logs in at (a Salesforce
    // sandbox's test.salesforce.com or a My Domain), else the provider's default.
    let token_url = if !app.token_url.is_empty() {
        kind.resolve(&app.token_url, false)
    } else if !authorize_override.is_empty() {
        kind.resolve(&endpoint.origin().ascii_serialization(), false)
    } else {
        kind.resolve("", false)
    }
    .map_err(ApiError::internal)?;
    let redirect_uri = if app.redirect_url.is_empty() {
        vault.settings.callback_url.clone()
    } else {
        app.redirect_url.clone()
    };

    let now = now_ms();
    let connection_id = if request.connection_id.is_empty() {
        let connection = Connection {
            id: syncline_domain::ids::new_resource_id("conn"),
            provider: app.provider,
            provider_app_id: app.id.clone(),
            display_name: request.display_name.clone(),
            status: ConnectionStatus::PendingAuthorization as i32,
            ..Connection::default()
        };
        vault
            .store
            .insert_connection(tenant, &connection, now)
            .await?;
        connection.id
    } else {
        let existing = vault
            .store
            .connection(tenant, &request.connection_id)
            .await?
            .ok_or_else(|| ApiError::not_found("connection"))?;
        if existing.provider_app_id != app.id {
            return Err(ApiError::invalid(vec![Violation::new(
                "connection_id",
                "PROVIDER_APP_MISMATCH",
                "was authorized with another provider app",
            )]));
        }
        existing.id
    };

    let nonce = StateSigner::nonce().map_err(ApiError::internal)?;
    let pkce = if kind.supports_pkce() {
        Some(Pkce::generate().map_err(ApiError::internal)?)
    } else {
        None
    };
    let verifier = match &pkce {
        Some(pkce) => {
            vault
                .keys
                .seal(
                    tenant.project_id.as_str(),
                    tenant.tenant_id.as_str(),
                    &verifier_aad(&nonce),
                    pkce.verifier.as_bytes(),
                )
                .await?
        }
        None => Vec::new(),
    };
    let expires_at = now + vault.settings.authorization_ttl_ms;
    sqlx::query(
        "INSERT INTO oauth_states
             (nonce, project_id, tenant_id, subject, connection_id, provider_app_id,
              redirect_uri, return_url, token_url, code_verifier, expires_at_ms, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&nonce)
    .bind(tenant.project_id.as_str())
    .bind(tenant.tenant_id.as_str())
    .bind(&tenant.subject)
    .bind(&connection_id)
    .bind(&app.id)
    .bind(&redirect_uri)
    .bind(&request.return_url)
    .bind(token_url.as_str())
    .bind(verifier)
    .bind(expires_at)
    .bind(now)
    .execute(vault.store.db().pool())
    .await
    .map_err(ApiError::internal)?;
    // Expired authorizations are dropped as new ones start.
    sqlx::query("DELETE FROM oauth_states WHERE expires_at_ms < $1")
        .bind(now - 60_000)
        .execute(vault.store.db().pool())
        .await
        .map_err(ApiError::internal)?;

    let state = vault.signer.sign(&nonce, expires_at);
    let authorization_url = authorize_url(
        kind,
        AuthorizeRequest {
            endpoint,
            client_id: &app.client_id,
            scopes: &app.scopes,
            redirect_uri: &redirect_uri,
            state: &state,
            code_challenge: pkce.as_ref().map(|p| p.challenge.as_str()),
        },
    );
    tracing::info!(connection.id = %connection_id, "authorization started");
    audit::record(
        vault.store.db(),
        tenant,
        Entry::new(AuditAction::AuthorizationStarted)
            .connection(&connection_id)
            .app(&app.id)
            .detail(
                "reauthorize",
                (!request.connection_id.is_empty()).to_string(),
            ),
    )
    .await?;
    Ok(StartAuthorizationResponse {
        authorization_url,
        connection_id,
        expire_time: Some(time::timestamp(expires_at)),
    })
}

fn verifier_aad(nonce: &str) -> String {
    format!("state:{nonce}:code_verifier")
}

/// An authorization in flight, consumed from `oauth_states`.
struct Pending {
    tenant: TenantContext,
    connection_id: String,
    provider_app_id: String,
    redirect_uri: String,
    return_url: String,
    token_url: String,
    code_verifier: Vec<u8>,
}

/// Deletes and returns the authorization `nonce` names: whoever deletes it owns it.
async fn consume(vault: &Vault, nonce: &str) -> Result<Option<Pending>, ApiError> {
    let row = sqlx::query(
        "DELETE FROM oauth_states WHERE nonce = $1
         RETURNING project_id, tenant_id, subject, connection_id, provider_app_id, redirect_uri,
                   return_url, token_url, code_verifier, expires_at_ms",
    )
    .bind(nonce)
    .fetch_optional(vault.store.db().pool())
    .await
    .map_err(ApiError::internal)?;
    let Some(row) = row else { return Ok(None) };
    let text = |name: &str| -> Result<String, ApiError> {
        row.try_get::<String, _>(name).map_err(ApiError::internal)
    };
    let expires_at: i64 = row.try_get("expires_at_ms").map_err(ApiError::internal)?;
    if expires_at <= now_ms() {
        return Ok(None);
    }
    Ok(Some(Pending {
        tenant: TenantContext {
            project_id: ProjectId::parse(text("project_id")?).map_err(ApiError::internal)?,
            tenant_id: TenantId::parse(text("tenant_id")?).map_err(ApiError::internal)?,
            subject: text("subject")?,
        },
        connection_id: text("connection_id")?,
        provider_app_id: text("provider_app_id")?,
        redirect_uri: text("redirect_uri")?,
        return_url: text("return_url")?,
        token_url: text("token_url")?,
        code_verifier: row.try_get("code_verifier").map_err(ApiError::internal)?,
    }))
}

/// Only letters, digits and `_`, at most 64: what a provider's `error` code looks like.
fn safe_code(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

/// Completes an authorization from the gateway's callback.
pub async fn complete(
    vault: &Vault,
    request: CompleteAuthorizationRequest,
) -> Result<CompleteAuthorizationResponse, ApiError> {
    let verified = vault
        .signer
        .verify(&request.state, now_ms())
        .map_err(|e| match e {
            StateError::Invalid => {
                state_violation(reasons::STATE_INVALID, "is not a state this vault issued")
            }
            StateError::Expired => state_violation(
                reasons::STATE_EXPIRED,
                "has expired; start the authorization again",
            ),
        })?;
    let pending = consume(vault, &verified.nonce).await?.ok_or_else(|| {
        state_violation(
            reasons::STATE_USED,
            "was already used; start the authorization again",
        )
    })?;
    let tenant = pending.tenant.clone();
    let connection_id = pending.connection_id.clone();
    let app_id = pending.provider_app_id.clone();
    let result = complete_pending(vault, pending, &verified.nonce, &request).await;
    let db = vault.store.db();
    match &result {
        Ok(done) => {
            audit::record_or_log(
                db,
                &tenant,
                Entry::new(AuditAction::AuthorizationCompleted)
                    .connection(&done.response.connection_id)
                    .app(&app_id)
                    .detail("reauthorized", done.reauthorized.to_string()),
            )
            .await;
        }
        Err(error) => {
            let mut entry = Entry::new(AuditAction::AuthorizationFailed)
                .connection(&connection_id)
                .app(&app_id)
                .failed(audit::reason_of(error));
            if !request.error.is_empty() {
                entry = entry.detail("provider_error", safe_code(&request.error));
            }
            audit::record_or_log(db, &tenant, entry).await;
        }
    }
    result.map(|done| done.response)
}

/// What a completed authorization changed.
struct Completed {
    response: CompleteAuthorizationResponse,
    /// The connection had been authorized before.
    reauthorized: bool,
}

async fn complete_pending(
    vault: &Vault,
    pending: Pending,
    nonce: &str,
    request: &CompleteAuthorizationRequest,
) -> Result<Completed, ApiError> {
    let tenant = &pending.tenant;
    if !request.error.is_empty() {
        let code = safe_code(&request.error);
        tracing::info!(
            connection.id = %pending.connection_id,
            provider_error = %code,
            "the provider refused the authorization"
        );
        return Err(ApiError::new(
            ErrorCode::FailedPrecondition,
            format!("the provider refused the authorization: {code}"),
        ));
    }
    if request.code.is_empty() {
        return Err(ApiError::invalid(vec![Violation::required("code")]));
    }
    let app = vault
        .store
        .provider_app(tenant, &pending.provider_app_id)
        .await?
        .ok_or_else(|| ApiError::not_found("provider app"))?;
    let kind = ProviderKind::from_proto(app.provider)
        .ok_or_else(|| ApiError::internal("stored provider app has no provider"))?;
    let secret = vault
        .client_secret(tenant.project_id.as_str(), &app.id)
        .await?;
    let verifier = if pending.code_verifier.is_empty() {
        None
    } else {
        let plain = vault
            .keys
            .open(
                tenant.project_id.as_str(),
                tenant.tenant_id.as_str(),
                &verifier_aad(nonce),
                &pending.code_verifier,
            )
            .await?;
        Some(String::from_utf8(plain).map_err(ApiError::internal)?)
    };
    let token_url = url::Url::parse(&pending.token_url).map_err(ApiError::internal)?;
    let grant = vault
        .oauth
        .exchange_code(
            kind,
            &token_url,
            &ClientCredentials {
                client_id: &app.client_id,
                client_secret: &secret,
            },
            &request.code,
            &pending.redirect_uri,
            verifier.as_deref(),
        )
        .await
        .map_err(exchange_error)?;

    let mut connection = vault
        .store
        .connection(tenant, &pending.connection_id)
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    // Re-authorizing must not silently move a connection to another CRM account: its
    // schema, mappings and cursors belong to the first one.
    if !connection.external_account_id.is_empty()
        && !grant.external_account_id.is_empty()
        && connection.external_account_id != grant.external_account_id
    {
        tracing::info!(connection.id = %connection.id, "re-authorization for another account refused");
        return Err(ApiError::new(
            ErrorCode::FailedPrecondition,
            "the authorization was for another CRM account than the connection's; sign in \
             to the same account, or create a new connection",
        ));
    }
    // Connecting the same CRM account again through the same app reuses its connection
    // (its id and configuration) instead of creating a duplicate.
    if connection.authorize_time.is_none()
        && !grant.external_account_id.is_empty()
        && let Some(existing) = vault
            .store
            .connection_for_account(tenant, &app.id, &grant.external_account_id, &connection.id)
            .await?
    {
        vault
            .store
            .delete_connection(tenant, &connection.id)
            .await?;
        connection = existing;
    }
    let reauthorized = connection.authorize_time.is_some();
    let previous = connection.status;
    let now = now_ms();
    let expires_at = match (kind, grant.expires_in) {
        (_, Some(secs)) if secs > 0 => now + secs * 1000,
        (ProviderKind::Salesforce, _) => now + vault.settings.salesforce_lifetime_ms,
        _ => 0,
    };
    credentials::store_authorized(
        vault.store.db(),
        &vault.keys,
        tenant,
        &connection.id,
        &NewTokens {
            access_token: &grant.access_token,
            refresh_token: grant.refresh_token.as_ref(),
            expires_at_ms: expires_at,
            obtained_at_ms: now,
            token_url: token_url.as_str(),
        },
    )
    .await?;
    connection.status = ConnectionStatus::Active as i32;
    connection.status_reason = 0;
    connection.status_message.clear();
    connection.instance_url = grant.instance_url.clone();
    if !grant.external_account_id.is_empty() {
        connection.external_account_id = grant.external_account_id.clone();
    }
    connection.granted_scopes = if grant.scopes.is_empty() {
        app.scopes.clone()
    } else {
        grant.scopes.clone()
    };
    connection.authorize_time = Some(time::timestamp(now));
    connection.refresh_time = Some(time::timestamp(now));
    let event = crate::lifecycle::on_activation(&connection, previous);
    if !vault
        .store
        .save_connection_with_event(tenant, &connection, now, event.as_ref())
        .await?
    {
        return Err(ApiError::not_found("connection"));
    }
    if event.is_some() {
        vault.outbox_wake.notify_one();
    }
    tracing::info!(
        tenant.id = %tenant.tenant_id,
        connection.id = %connection.id,
        "authorization completed"
    );
    Ok(Completed {
        response: CompleteAuthorizationResponse {
            connection_id: connection.id,
            status: ConnectionStatus::Active as i32,
            return_url: pending.return_url,
            tenant_id: tenant.tenant_id.to_string(),
        },
        reauthorized,
    })
}

fn exchange_error(error: ProviderError) -> ApiError {
    match error {
        ProviderError::InvalidGrant(_) | ProviderError::Rejected(_) => ApiError::new(
            ErrorCode::FailedPrecondition,
            format!("the provider refused the code exchange ({error})"),
        ),
        ProviderError::Unavailable(_) => ApiError::new(
            ErrorCode::ProviderUnavailable,
            format!("the provider could not complete the code exchange ({error})"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Keys, LocalKms};
    use crate::oauth::OAuthClient;
    use crate::store::Store;
    use crate::test_db::on_every_backend;
    use crate::vault::Settings;
    use std::sync::Arc;

    async fn vault(db: syncline_storage::Database) -> Vault {
        let kms = LocalKms::new(vec![("k1".into(), vec![1; 32])], None).unwrap();
        let keys = Keys::load_ring(db.clone(), Arc::new(kms)).await.unwrap();
        let settings = Settings::from_config(&syncline_config::SynclineConfig::default());
        Vault::new(
            Store::new(db),
            keys,
            OAuthClient::new(reqwest::Client::new()),
            settings,
        )
        .await
        .unwrap()
    }

    fn reason(error: &ApiError) -> &str {
        error.violations()[0].reason.as_str()
    }

    async fn states(vault: &Vault) -> i64 {
        let row = sqlx::query("SELECT COUNT(*) FROM oauth_states")
            .fetch_one(vault.store.db().pool())
            .await
            .unwrap();
        row.try_get::<i64, _>(0).unwrap()
    }

    #[tokio::test]
    async fn forged_expired_and_unknown_states_are_refused_before_anything_changes() {
        on_every_backend("forged_expired_and_unknown_states", |db| async move {
            let vault = vault(db).await;
            let complete = |state: String| CompleteAuthorizationRequest {
                state,
                code: "code".into(),
                ..Default::default()
            };
            let expired = vault.signer.sign("nonce", now_ms() - 1);
            let error = super::complete(&vault, complete(expired))
                .await
                .unwrap_err();
            assert_eq!(reason(&error), reasons::STATE_EXPIRED);
            let forged = StateSigner::new(&[7; 32]).sign("nonce", now_ms() + 60_000);
            let error = super::complete(&vault, complete(forged)).await.unwrap_err();
            assert_eq!(reason(&error), reasons::STATE_INVALID);
            // Correctly signed, but no authorization in flight under that nonce (used).
            let unknown = vault.signer.sign("never-issued", now_ms() + 60_000);
            let error = super::complete(&vault, complete(unknown))
                .await
                .unwrap_err();
            assert_eq!(reason(&error), reasons::STATE_USED);
            assert_eq!(states(&vault).await, 0);
            let connections = sqlx::query("SELECT COUNT(*) FROM connections")
                .fetch_one(vault.store.db().pool())
                .await
                .unwrap()
                .try_get::<i64, _>(0)
                .unwrap();
            assert_eq!(connections, 0);
        })
        .await;
    }

    #[tokio::test]
    async fn a_provider_refusal_consumes_the_state_and_activates_nothing() {
        on_every_backend("a_provider_refusal_consumes_the_state", |db| async move {
            let vault = vault(db).await;
            let tenant = TenantContext {
                project_id: ProjectId::parse("p").unwrap(),
                tenant_id: TenantId::parse("acme").unwrap(),
                subject: "test".into(),
            };
            let app = crate::apps::create(
                &vault,
                &tenant,
                syncline_proto::authvault::v1::ProviderApp {
                    provider: syncline_proto::common::v1::Provider::Hubspot as i32,
                    client_id: "cid".into(),
                    client_secret: "secret".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            let started = start(
                &vault,
                &tenant,
                StartAuthorizationRequest {
                    provider_app_id: app.id,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            assert!(
                started
                    .authorization_url
                    .starts_with("https://app.hubspot.com/oauth/authorize?")
            );
            assert!(started.authorization_url.contains("code_challenge="));
            let url = url::Url::parse(&started.authorization_url).unwrap();
            let state = url
                .query_pairs()
                .find(|(k, _)| k == "state")
                .unwrap()
                .1
                .into_owned();
            assert_eq!(states(&vault).await, 1);
            let refused = CompleteAuthorizationRequest {
                state: state.clone(),
                error: "access_denied<script>".into(),
                ..Default::default()
            };
            let error = super::complete(&vault, refused.clone()).await.unwrap_err();
            assert_eq!(error.code(), ErrorCode::FailedPrecondition);
            assert!(
                error.message().ends_with("access_deniedscript"),
                "{}",
                error.message()
            );
            assert_eq!(states(&vault).await, 0);
            let again = super::complete(&vault, refused).await.unwrap_err();
            assert_eq!(reason(&again), reasons::STATE_USED);
            let pending = vault
                .store
                .connection(&tenant, &started.connection_id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                pending.status,
                ConnectionStatus::PendingAuthorization as i32
            );
        })
        .await;
    }
}
