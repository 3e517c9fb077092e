//! Provider apps: validation, creation with a sealed client secret, field-mask updates,
//! deletion. Apps belong to the caller's project; every tenant of it sees them.

use syncline_domain::{ApiError, ErrorCode, TenantContext, Violation};
use syncline_proto::authvault::v1::ProviderApp;
use syncline_storage::now_ms;

use crate::audit::{self, Entry};
use crate::oauth::ProviderKind;
use crate::oauth::providers::parse_http_url;
use crate::vault::{Vault, app_secret_aad};
use syncline_proto::authvault::v1::AuditAction;

const UPDATABLE: [&str; 7] = [
    "display_name",
    "client_id",
    "client_secret",
    "scopes",
    "redirect_url",
    "authorize_url",
    "token_url",
];

fn check_len(value: &str, max: usize, field: &str, violations: &mut Vec<Violation>) {
    if value.chars().count() > max {
        violations.push(Violation::new(
            field,
            "TOO_LONG",
            format!("must be at most {max} characters"),
        ));
    }
}

/// Checks every field of an app (after an update is applied, or before creation).
fn validate(app: &ProviderApp, secret_required: bool) -> Result<ProviderKind, ApiError> {
    let mut violations = Vec::new();
    let kind = ProviderKind::from_proto(app.provider);
    if kind.is_none() {
        violations.push(Violation::new(
            "provider_app.provider",
            "INVALID_ENUM",
            "must be a supported provider",
        ));
    }
    check_len(
        &app.display_name,
        200,
        "provider_app.display_name",
        &mut violations,
    );
    if app.client_id.trim().is_empty() {
        violations.push(Violation::required("provider_app.client_id"));
    }
    check_len(
        &app.client_id,
        256,
        "provider_app.client_id",
        &mut violations,
    );
    if secret_required && app.client_secret.is_empty() {
        violations.push(Violation::required("provider_app.client_secret"));
    }
    check_len(
        &app.client_secret,
        1024,
        "provider_app.client_secret",
        &mut violations,
    );
    for (i, scope) in app.scopes.iter().enumerate() {
        if scope.is_empty() || scope.chars().any(char::is_whitespace) || scope.len() > 200 {
            violations.push(Violation::new(
                format!("provider_app.scopes[{i}]"),
                "INVALID_SCOPE",
                "must be one non-empty scope without spaces",
            ));
        }
    }
    for (field, value) in [
        ("provider_app.redirect_url", &app.redirect_url),
        ("provider_app.authorize_url", &app.authorize_url),
        ("provider_app.token_url", &app.token_url),
    ] {
        if !value.is_empty()
            && let Err(reason) = parse_http_url(value)
        {
            violations.push(Violation::new(field, "INVALID_URL", reason));
        }
    }
    match (kind, violations.is_empty()) {
        (Some(kind), true) => Ok(kind),
        _ => Err(ApiError::invalid(violations)),
    }
}

/// Creates a provider app of the caller's project; the client secret is sealed under the
/// project's data key and never returned.
pub async fn create(
    vault: &Vault,
    tenant: &TenantContext,
    mut app: ProviderApp,
) -> Result<ProviderApp, ApiError> {
    validate(&app, true)?;
    app.id = syncline_domain::ids::new_resource_id("app");
    let project = tenant.project_id.as_str();
    let sealed = vault
        .keys
        .seal(
            project,
            "",
            &app_secret_aad(&app.id),
            app.client_secret.as_bytes(),
        )
        .await?;
    let now = now_ms();
    vault
        .store
        .insert_provider_app(project, &app, &sealed, now)
        .await?;
    tracing::info!(provider_app.id = %app.id, "provider app created");
    audit::record(
        vault.store.db(),
        tenant,
        Entry::new(AuditAction::ProviderAppCreated).app(&app.id),
    )
    .await?;
    fetch(vault, tenant, &app.id).await
}

/// One app of the caller's project, as returned (no secret).
pub async fn fetch(
    vault: &Vault,
    tenant: &TenantContext,
    id: &str,
) -> Result<ProviderApp, ApiError> {
    vault
        .store
        .provider_app(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("provider app"))
}

/// Applies the fields named by `mask` (all updatable fields when empty; an empty
/// `client_secret` then keeps the stored one).
pub async fn update(
    vault: &Vault,
    tenant: &TenantContext,
    update: ProviderApp,
    mask: &[String],
) -> Result<ProviderApp, ApiError> {
    if update.id.is_empty() {
        return Err(ApiError::invalid(vec![Violation::required(
            "provider_app.id",
        )]));
    }
    let explicit = !mask.is_empty();
    let paths: Vec<&str> = if explicit {
        mask.iter().map(String::as_str).collect()
    } else {
        UPDATABLE.to_vec()
    };
    let refused: Vec<Violation> = paths
        .iter()
        .filter(|p| !UPDATABLE.contains(p))
        .map(|p| {
            let reason = if *p == "provider" {
                "IMMUTABLE"
            } else {
                "UNKNOWN_FIELD"
            };
            Violation::new(
                "update_mask",
                reason,
                format!("`{p}` is not an updatable field of provider_app"),
            )
        })
        .collect();
    if !refused.is_empty() {
        return Err(ApiError::invalid(refused));
    }
    let mut current = fetch(vault, tenant, &update.id).await?;
    let mut new_secret = None;
    let changed = paths.join(",");
    for path in paths {
        match path {
            "display_name" => current.display_name.clone_from(&update.display_name),
            "client_id" => current.client_id.clone_from(&update.client_id),
            "client_secret" => {
                if !update.client_secret.is_empty() {
                    new_secret = Some(update.client_secret.clone());
                } else if explicit {
                    return Err(ApiError::invalid(vec![Violation::required(
                        "provider_app.client_secret",
                    )]));
                }
            }
            "scopes" => current.scopes.clone_from(&update.scopes),
            "redirect_url" => current.redirect_url.clone_from(&update.redirect_url),
            "authorize_url" => current.authorize_url.clone_from(&update.authorize_url),
            _ => current.token_url.clone_from(&update.token_url),
        }
    }
    let mut checked = current.clone();
    checked.client_secret = new_secret.clone().unwrap_or_default();
    validate(&checked, false)?;
    let project = tenant.project_id.as_str();
    let sealed = match &new_secret {
        Some(secret) => Some(
            vault
                .keys
                .seal(project, "", &app_secret_aad(&current.id), secret.as_bytes())
                .await?,
        ),
        None => None,
    };
    if !vault
        .store
        .update_provider_app(project, &current, sealed.as_deref(), now_ms())
        .await?
    {
        return Err(ApiError::not_found("provider app"));
    }
    audit::record(
        vault.store.db(),
        tenant,
        Entry::new(AuditAction::ProviderAppUpdated)
            .app(&current.id)
            .detail("fields", changed),
    )
    .await?;
    fetch(vault, tenant, &current.id).await
}

/// Deletes an app; FAILED_PRECONDITION while connections use it unless `force`.
pub async fn delete(
    vault: &Vault,
    tenant: &TenantContext,
    id: &str,
    force: bool,
) -> Result<(), ApiError> {
    if id.is_empty() {
        return Err(ApiError::invalid(vec![Violation::required(
            "provider_app_id",
        )]));
    }
    let project = tenant.project_id.as_str();
    fetch(vault, tenant, id).await?;
    let in_use = vault.store.connections_of_app(project, id).await?;
    if in_use > 0 && !force {
        return Err(ApiError::new(
            ErrorCode::FailedPrecondition,
            format!("{in_use} connections use this provider app; delete them or pass force"),
        ));
    }
    if !vault.store.delete_provider_app(project, id).await? {
        return Err(ApiError::not_found("provider app"));
    }
    audit::record(
        vault.store.db(),
        tenant,
        Entry::new(AuditAction::ProviderAppDeleted)
            .app(id)
            .detail("deleted_connections", in_use.to_string()),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncline_proto::common::v1::Provider;

    fn app() -> ProviderApp {
        ProviderApp {
            provider: Provider::Salesforce as i32,
            client_id: "cid".into(),
            client_secret: "s3cret".into(),
            scopes: vec!["api".into(), "refresh_token".into()],
            ..ProviderApp::default()
        }
    }

    fn fields(error: &ApiError) -> Vec<&str> {
        error
            .violations()
            .iter()
            .map(|v| v.field.as_str())
            .collect()
    }

    #[test]
    fn a_complete_app_is_valid() {
        assert_eq!(validate(&app(), true).unwrap(), ProviderKind::Salesforce);
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = ProviderApp {
            provider: 0,
            client_id: String::new(),
            client_secret: String::new(),
            scopes: vec!["api refresh".into()],
            redirect_url: "javascript:alert(1)".into(),
            token_url: "https://user:pw@host".into(),
            ..ProviderApp::default()
        };
        let error = validate(&bad, true).unwrap_err();
        assert_eq!(
            fields(&error),
            [
                "provider_app.provider",
                "provider_app.client_id",
                "provider_app.client_secret",
                "provider_app.scopes[0]",
                "provider_app.redirect_url",
                "provider_app.token_url",
            ]
        );
    }
}
