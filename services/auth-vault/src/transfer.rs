//! ImportCredentials and ExportCredentials: moving connections between Syncline and
//! another system without asking the end users to connect again.
//!
//! Import checks the access token with the provider before storing anything (and, when the
//! provider refuses it, tries the refresh token), seals both under the tenant's data key
//! and makes the connection ACTIVE. Export opens them again and either seals each
//! connection's serialized `Credentials` to the caller's RSA key (a fresh AES-256-GCM key
//! per connection, wrapped with RSA-OAEP-SHA256; the additional data is the connection id)
//! or, only with `allow_plaintext`, returns them as they are. Both are audited per
//! connection.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
use base64::Engine as _;
use prost::Message;
use secrecy::{ExposeSecret, SecretString};
use syncline_domain::{ApiError, ErrorCode, TenantContext, Violation};
use syncline_proto::authvault::v1::exported_credentials::Credentials as ExportedPayload;
use syncline_proto::authvault::v1::{
    AuditAction, Connection, Credentials, EncryptedCredentials, ExportCredentialsRequest,
    ExportEncryption, ExportedCredentials, ImportCredentialsRequest, ProviderApp,
};
use syncline_proto::common::v1::ConnectionStatus;
use syncline_service_kit::time;
use syncline_storage::now_ms;

use crate::audit::{self, Entry};
use crate::credentials::{self, NewTokens};
use crate::crypto::aead::{KEY_LEN, random_bytes};
use crate::oauth::providers::parse_http_url;
use crate::oauth::{ClientCredentials, ProviderError, ProviderKind, TokenInfo};
use crate::vault::Vault;

/// The most connections one export may name.
pub const MAX_EXPORT: usize = 100;
/// The smallest recipient key accepted.
pub const MIN_RSA_BITS: usize = 3072;
/// HubSpot access tokens live 30 minutes.
const HUBSPOT_LIFETIME_MS: i64 = 30 * 60 * 1000;
const MAX_TOKEN_LEN: usize = 8192;

/// Where `app`'s connections refresh: its token URL, else the host its users log in at,
/// else (Salesforce) the instance itself, else the provider's default.
fn token_url_of(
    kind: ProviderKind,
    app: &ProviderApp,
    instance_url: &str,
) -> Result<url::Url, ApiError> {
    let resolved = if !app.token_url.is_empty() {
        kind.resolve(&app.token_url, false)
    } else if !app.authorize_url.is_empty() {
        kind.resolve(&app.authorize_url, true)
            .and_then(|u| kind.resolve(&u.origin().ascii_serialization(), false))
    } else if kind == ProviderKind::Salesforce && !instance_url.is_empty() {
        kind.resolve(instance_url, false)
    } else {
        kind.resolve("", false)
    };
    resolved.map_err(ApiError::internal)
}

fn check_token(value: &str, field: &str, required: bool, violations: &mut Vec<Violation>) {
    if value.is_empty() {
        if required {
            violations.push(Violation::required(field));
        }
    } else if value.len() > MAX_TOKEN_LEN
        || value.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        violations.push(Violation::new(
            field,
            "INVALID_TOKEN",
            format!("must be one token of at most {MAX_TOKEN_LEN} characters without spaces"),
        ));
    }
}

fn refused(field: &str) -> ApiError {
    ApiError::invalid(vec![Violation::new(
        field,
        "REFUSED_BY_PROVIDER",
        "the provider does not accept it",
    )])
}

fn unavailable(error: &ProviderError) -> ApiError {
    ApiError::new(
        ErrorCode::ProviderUnavailable,
        format!("the provider could not check the credentials ({error})"),
    )
}

/// Imports credentials: a new ACTIVE connection, or new credentials for a named one.
pub async fn import(
    vault: &Vault,
    tenant: &TenantContext,
    request: ImportCredentialsRequest,
) -> Result<Connection, ApiError> {
    let mut violations = Vec::new();
    if request.provider_app_id.is_empty() {
        violations.push(Violation::required("provider_app_id"));
    }
    if request.display_name.chars().count() > 200 {
        violations.push(Violation::new(
            "display_name",
            "TOO_LONG",
            "must be at most 200 characters",
        ));
    }
    let Some(imported) = request.credentials.as_ref() else {
        violations.push(Violation::required("credentials"));
        return Err(ApiError::invalid(violations));
    };
    check_token(
        &imported.access_token,
        "credentials.access_token",
        true,
        &mut violations,
    );
    check_token(
        &imported.refresh_token,
        "credentials.refresh_token",
        false,
        &mut violations,
    );
    if !imported.instance_url.is_empty()
        && let Err(reason) = parse_http_url(&imported.instance_url)
    {
        violations.push(Violation::new(
            "credentials.instance_url",
            "INVALID_URL",
            reason,
        ));
    }
    for (i, scope) in imported.scopes.iter().enumerate() {
        if scope.is_empty() || scope.chars().any(char::is_whitespace) || scope.len() > 200 {
            violations.push(Violation::new(
                format!("credentials.scopes[{i}]"),
                "INVALID_SCOPE",
                "must be one non-empty scope without spaces",
            ));
        }
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
    if kind == ProviderKind::Salesforce && imported.instance_url.is_empty() {
        return Err(ApiError::invalid(vec![Violation::required(
            "credentials.instance_url",
        )]));
    }
    let existing = if request.connection_id.is_empty() {
        None
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
        Some(existing)
    };
    let token_url = token_url_of(kind, &app, &imported.instance_url)?;
    let instance_url = match kind {
        ProviderKind::Salesforce => imported.instance_url.trim_end_matches('/').to_owned(),
        ProviderKind::HubSpot if !imported.instance_url.is_empty() => {
            imported.instance_url.trim_end_matches('/').to_owned()
        }
        ProviderKind::HubSpot => token_url.origin().ascii_serialization(),
    };

    // The provider must accept the tokens: the access token, else the refresh token.
    let mut access = SecretString::from(imported.access_token.clone());
    let mut refresh = (!imported.refresh_token.is_empty())
        .then(|| SecretString::from(imported.refresh_token.clone()));
    let now = now_ms();
    let mut expires_at = imported
        .access_token_expire_time
        .as_ref()
        .map_or(0, time::millis);
    let mut refreshed = false;
    let info: TokenInfo = match vault
        .oauth
        .inspect_access_token(kind, &token_url, &instance_url, &access)
        .await
    {
        Ok(info) => info,
        Err(ProviderError::InvalidGrant(_)) => {
            let Some(refresh_token) = refresh.clone() else {
                return Err(refused("credentials.access_token"));
            };
            let secret = vault
                .client_secret(tenant.project_id.as_str(), &app.id)
                .await?;
            let grant = vault
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
                .await
                .map_err(|e| match e {
                    ProviderError::InvalidGrant(_) => refused("credentials.refresh_token"),
                    ProviderError::Rejected(_) => ApiError::new(
                        ErrorCode::FailedPrecondition,
                        format!("the provider refused the refresh ({e})"),
                    ),
                    ProviderError::Unavailable(_) => unavailable(&e),
                })?;
            access = grant.access_token;
            if let Some(rotated) = grant.refresh_token {
                refresh = Some(rotated);
            }
            refreshed = true;
            expires_at = match grant.expires_in {
                Some(secs) if secs > 0 => now + secs * 1000,
                _ => 0,
            };
            vault
                .oauth
                .inspect_access_token(kind, &token_url, &instance_url, &access)
                .await
                .map_err(|e| match e {
                    ProviderError::Unavailable(_) => unavailable(&e),
                    ProviderError::InvalidGrant(_) | ProviderError::Rejected(_) => {
                        refused("credentials.refresh_token")
                    }
                })?
        }
        Err(error @ ProviderError::Unavailable(_)) => return Err(unavailable(&error)),
        Err(error @ ProviderError::Rejected(_)) => {
            return Err(ApiError::new(
                ErrorCode::FailedPrecondition,
                format!("the provider refused to check the access token ({error})"),
            ));
        }
    };
    if let Some(existing) = &existing
        && !existing.external_account_id.is_empty()
        && !info.external_account_id.is_empty()
        && existing.external_account_id != info.external_account_id
    {
        return Err(ApiError::new(
            ErrorCode::FailedPrecondition,
            "the credentials are for another CRM account than the connection's",
        ));
    }
    // When the token expires: as given, else as the provider says, else its usual lifetime.
    let lifetime = match kind {
        ProviderKind::Salesforce => vault.settings.salesforce_lifetime_ms,
        ProviderKind::HubSpot => HUBSPOT_LIFETIME_MS,
    };
    if expires_at == 0 || refreshed {
        expires_at = match info.expires_in {
            Some(secs) if secs > 0 => now + secs * 1000,
            _ if expires_at > 0 => expires_at,
            _ => now + lifetime,
        };
    }
    // Obtained elsewhere at an unknown time: assume the provider's usual lifetime, so the
    // refresh margin (capped at half the lifetime) works as for tokens obtained here.
    let obtained_at = now.min(expires_at - lifetime);

    let mut connection = match existing {
        Some(connection) => connection,
        None => {
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
            connection
        }
    };
    let version = credentials::store_authorized(
        vault.store.db(),
        &vault.keys,
        tenant,
        &connection.id,
        &NewTokens {
            access_token: &access,
            refresh_token: refresh.as_ref(),
            expires_at_ms: expires_at,
            obtained_at_ms: obtained_at,
            token_url: token_url.as_str(),
        },
    )
    .await?;
    let previous = connection.status;
    connection.status = ConnectionStatus::Active as i32;
    connection.status_reason = 0;
    connection.status_message.clear();
    connection.instance_url = instance_url;
    if !info.external_account_id.is_empty() {
        connection.external_account_id = info.external_account_id.clone();
    }
    connection.granted_scopes = if !imported.scopes.is_empty() {
        imported.scopes.clone()
    } else if !info.scopes.is_empty() {
        info.scopes.clone()
    } else {
        app.scopes.clone()
    };
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
        token.version = version,
        "credentials imported"
    );
    audit::record(
        vault.store.db(),
        tenant,
        Entry::new(AuditAction::CredentialsImported)
            .connection(&connection.id)
            .app(&app.id)
            .detail("replaced", (!request.connection_id.is_empty()).to_string())
            .detail("refreshed_on_import", refreshed.to_string())
            .detail("previous_status", status_name(previous)),
    )
    .await?;
    vault
        .store
        .connection(tenant, &connection.id)
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))
}

fn status_name(status: i32) -> String {
    ConnectionStatus::try_from(status)
        .map(|s| s.as_str_name().to_owned())
        .unwrap_or_default()
}

/// A recipient's RSA public key from PEM (SubjectPublicKeyInfo).
fn recipient_key(pem: &str) -> Result<(OaepPublicEncryptingKey, String), ApiError> {
    let invalid = |description: &str| {
        ApiError::invalid(vec![Violation::new(
            "recipient_public_key_pem",
            "INVALID_KEY",
            description,
        )])
    };
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    if !pem.contains("-----BEGIN PUBLIC KEY-----") {
        return Err(invalid(
            "must be a PEM-encoded SubjectPublicKeyInfo (BEGIN PUBLIC KEY)",
        ));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|_| invalid("is not valid PEM"))?;
    let key =
        PublicEncryptingKey::from_der(&der).map_err(|_| invalid("is not an RSA public key"))?;
    if key.key_size_bits() < MIN_RSA_BITS {
        return Err(ApiError::invalid(vec![Violation::new(
            "recipient_public_key_pem",
            "KEY_TOO_SMALL",
            format!("must have at least {MIN_RSA_BITS} bits"),
        )]));
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    let fingerprint: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let key = OaepPublicEncryptingKey::new(key).map_err(|_| invalid("is not usable for OAEP"))?;
    Ok((key, fingerprint))
}

fn seal_to(
    recipient: &OaepPublicEncryptingKey,
    connection_id: &str,
    plaintext: &[u8],
) -> Result<EncryptedCredentials, ApiError> {
    let crypto = |_| ApiError::internal("failed to encrypt an export");
    let key = random_bytes::<KEY_LEN>().map_err(crypto)?;
    let nonce = random_bytes::<NONCE_LEN>().map_err(crypto)?;
    let sealing = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &key)
            .map_err(|_| ApiError::internal("failed to encrypt an export"))?,
    );
    let mut ciphertext = plaintext.to_vec();
    sealing
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(connection_id.as_bytes()),
            &mut ciphertext,
        )
        .map_err(|_| ApiError::internal("failed to encrypt an export"))?;
    let mut wrapped = vec![0u8; recipient.ciphertext_size()];
    let len = recipient
        .encrypt(&OAEP_SHA256_MGF1SHA256, &key, &mut wrapped, None)
        .map_err(|_| ApiError::internal("failed to wrap an export key"))?
        .len();
    wrapped.truncate(len);
    Ok(EncryptedCredentials {
        encryption: ExportEncryption::RsaOaepSha256Aes256Gcm as i32,
        wrapped_key: wrapped,
        nonce: nonce.to_vec(),
        ciphertext,
    })
}

/// Exports credentials of the tenant's connections, sealed to the recipient or (only with
/// `allow_plaintext`) in plaintext.
pub async fn export(
    vault: &Vault,
    tenant: &TenantContext,
    request: &ExportCredentialsRequest,
) -> Result<Vec<ExportedCredentials>, ApiError> {
    let mut violations = Vec::new();
    if request.connection_ids.is_empty() {
        violations.push(Violation::required("connection_ids"));
    }
    if request.connection_ids.len() > MAX_EXPORT {
        violations.push(Violation::new(
            "connection_ids",
            "TOO_MANY",
            format!("at most {MAX_EXPORT} per call"),
        ));
    }
    for (i, id) in request.connection_ids.iter().enumerate() {
        if id.is_empty() {
            violations.push(Violation::required(format!("connection_ids[{i}]")));
        }
    }
    let has_key = !request.recipient_public_key_pem.trim().is_empty();
    match (has_key, request.allow_plaintext) {
        (true, true) => violations.push(Violation::new(
            "allow_plaintext",
            "CONFLICTING_FIELDS",
            "must be false when a recipient key is given",
        )),
        (false, false) => violations.push(Violation::new(
            "recipient_public_key_pem",
            "PLAINTEXT_NOT_ALLOWED",
            "is required unless allow_plaintext is set",
        )),
        (true, false) | (false, true) => {}
    }
    match ExportEncryption::try_from(request.encryption) {
        Ok(ExportEncryption::Unspecified | ExportEncryption::RsaOaepSha256Aes256Gcm) => {}
        Err(_) => violations.push(Violation::new(
            "encryption",
            "INVALID_ENUM",
            "is not an export encryption",
        )),
    }
    if !violations.is_empty() {
        return Err(ApiError::invalid(violations));
    }
    let recipient = if has_key {
        Some(recipient_key(&request.recipient_public_key_pem)?)
    } else {
        None
    };
    let mut ids: Vec<&str> = Vec::new();
    for id in &request.connection_ids {
        if !ids.contains(&id.as_str()) {
            ids.push(id);
        }
    }
    // Every connection must be the tenant's (another tenant's id is NOT_FOUND, like an
    // unknown one) before anything is opened.
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        let connection = vault
            .store
            .connection(tenant, id)
            .await?
            .ok_or_else(|| ApiError::not_found("connection"))?;
        let stored = credentials::load(vault.store.db(), tenant, id)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::FailedPrecondition,
                    format!("connection {id} has no credentials"),
                )
            })?;
        found.push((connection, stored));
    }
    let mut exports = Vec::with_capacity(found.len());
    for (connection, stored) in found {
        let access = stored
            .access_token(&vault.keys, tenant, &connection.id)
            .await?;
        let refresh = stored
            .refresh_token(&vault.keys, tenant, &connection.id)
            .await?;
        let mut extras = std::collections::BTreeMap::new();
        if !connection.external_account_id.is_empty() {
            extras.insert(
                "external_account_id".to_owned(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue(
                        connection.external_account_id.clone(),
                    )),
                },
            );
        }
        let plain = Credentials {
            access_token: access.expose_secret().to_owned(),
            refresh_token: refresh
                .as_ref()
                .map(|r| r.expose_secret().to_owned())
                .unwrap_or_default(),
            access_token_expire_time: (stored.expires_at_ms > 0)
                .then(|| time::timestamp(stored.expires_at_ms)),
            instance_url: connection.instance_url.clone(),
            scopes: connection.granted_scopes.clone(),
            provider_extras: Some(prost_types::Struct {
                fields: extras.into_iter().collect(),
            }),
        };
        let (payload, how) = match &recipient {
            Some((key, _)) => (
                ExportedPayload::Encrypted(seal_to(key, &connection.id, &plain.encode_to_vec())?),
                "RSA_OAEP_SHA256_AES_256_GCM",
            ),
            None => (ExportedPayload::Plaintext(plain), "PLAINTEXT"),
        };
        let mut entry = Entry::new(AuditAction::CredentialsExported)
            .connection(&connection.id)
            .app(&connection.provider_app_id)
            .detail("export_encryption", how)
            .detail("token_version", stored.version.to_string());
        if let Some((_, fingerprint)) = &recipient {
            entry = entry.detail("recipient_key_sha256", fingerprint.clone());
        }
        // No export leaves without its audit record.
        audit::record(vault.store.db(), tenant, entry).await?;
        tracing::info!(
            tenant.id = %tenant.tenant_id,
            connection.id = %connection.id,
            export_encryption = how,
            "credentials exported"
        );
        exports.push(ExportedCredentials {
            connection_id: connection.id.clone(),
            provider: connection.provider,
            provider_app_id: connection.provider_app_id.clone(),
            credentials: Some(payload),
        });
    }
    Ok(exports)
}
