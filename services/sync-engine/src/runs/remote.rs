//! What workers need from the other services: access tokens from auth-vault (one per
//! connection, reused until near expiry; a 401 reported once) and compiled mapping plans
//! (fetched once per plan version and cached).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use syncline_domain::TenantContext;
use syncline_mapping_plan::CompiledPlan;
use syncline_proto::authvault::v1::AccessToken;
use syncline_proto::common::v1::ErrorReason;
use syncline_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use syncline_proto::mapping::v1::{GetMappingPlanRequest, MappingPlan};
use syncline_service_kit::client::{ServiceCaller, VaultTokens};
use syncline_service_kit::time;
use syncline_storage::now_ms;
use tonic::Status;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use super::worker::is_transient;

/// A token is reused while it has at least this long left.
const TOKEN_MARGIN_MS: i64 = 60_000;

/// Why a call to another service failed, as the worker acts on it.
#[derive(Debug)]
pub enum RemoteError {
    /// The connection needs its user to re-authorize.
    NeedsReauth(String),
    /// A retry will not help (missing connection or plan, a plan broken by drift).
    Permanent(ErrorReason, String),
    /// Try again later.
    Transient(Status),
}

/// A compiled plan with the provider fields each object's inbound rules read.
#[derive(Debug)]
pub struct Plan {
    pub compiled: CompiledPlan,
    pub proto: MappingPlan,
}

impl Plan {
    /// The CRM fields the inbound rules of `object` read, deduplicated, in rule order.
    pub fn inbound_fields(&self, object: &str) -> Vec<String> {
        let mut fields: Vec<String> = Vec::new();
        for plan in self.proto.objects.iter().filter(|o| o.object == object) {
            for rule in &plan.inbound {
                for field in &rule.source_fields {
                    if !fields.contains(field) {
                        fields.push(field.clone());
                    }
                }
            }
        }
        fields
    }
}

type TenantKey = (String, String, String);

fn key(tenant: &TenantContext, connection: &str) -> TenantKey {
    (
        tenant.project_id.as_str().to_owned(),
        tenant.tenant_id.as_str().to_owned(),
        connection.to_owned(),
    )
}

/// Clients of auth-vault's TokenService and mapping, with the token and plan caches.
#[derive(Debug)]
pub struct Remote {
    caller: ServiceCaller,
    vault: VaultTokens,
    mapping: Channel,
    tokens: Mutex<HashMap<TenantKey, AccessToken>>,
    plans: Mutex<HashMap<(TenantKey, i64), Arc<Plan>>>,
}

/// Classifies a status from auth-vault or mapping.
pub fn classify(status: Status, what: &str) -> RemoteError {
    let reason = status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default();
    if reason == "NEEDS_REAUTH" {
        return RemoteError::NeedsReauth(format!(
            "the connection needs to be re-authorized: {}",
            status.message()
        ));
    }
    match status.code() {
        tonic::Code::NotFound => RemoteError::Permanent(
            ErrorReason::NotFound,
            format!("{what}: {}", status.message()),
        ),
        tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument => RemoteError::Permanent(
            ErrorReason::FailedPrecondition,
            format!("{what}: {}", status.message()),
        ),
        _ if is_transient(&status) => RemoteError::Transient(status),
        _ => RemoteError::Permanent(
            ErrorReason::FailedPrecondition,
            format!("{what}: {}", status.message()),
        ),
    }
}

impl Remote {
    pub fn new(caller: ServiceCaller, auth_vault: Channel, mapping: Channel) -> Self {
        Self {
            vault: VaultTokens::new(caller.clone(), auth_vault),
            caller,
            mapping,
            tokens: Mutex::new(HashMap::new()),
            plans: Mutex::new(HashMap::new()),
        }
    }

    /// A usable access token of the connection (cached while it has a minute left).
    pub async fn token(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<AccessToken, RemoteError> {
        let key = key(tenant, connection_id);
        if let Some(token) = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|t| {
                t.expire_time
                    .as_ref()
                    .is_some_and(|e| time::millis(e) - now_ms() > TOKEN_MARGIN_MS)
            })
            .cloned()
        {
            return Ok(token);
        }
        let token = self
            .fetch_token(tenant, connection_id)
            .await
            .map_err(|s| classify(s, "access token"))?;
        self.remember(key, &token);
        Ok(token)
    }

    /// The connection's token for a direct call (no cache): checks the connection exists,
    /// is the tenant's and is usable.
    pub async fn fetch_token(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<AccessToken, Status> {
        self.vault.access_token(tenant, connection_id).await
    }

    /// Drops the cached access token of the connection (it was authorized again: the next
    /// page asks auth-vault for the new one).
    pub fn forget_token(&self, tenant: &TenantContext, connection_id: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key(tenant, connection_id));
    }

    fn remember(&self, key: TenantKey, token: &AccessToken) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, token.clone());
    }

    /// Tells auth-vault the CRM refused token `version`; returns the replacement.
    pub async fn report_unauthorized(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        version: i64,
        provider_error: String,
    ) -> Result<AccessToken, RemoteError> {
        let key = key(tenant, connection_id);
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        let token = self
            .vault
            .report_unauthorized(tenant, connection_id, version, provider_error)
            .await
            .map_err(|s| classify(s, "access token"))?;
        self.remember(key, &token);
        Ok(token)
    }

    /// The connection's mapping plan `version` (0: the latest), as stored by mapping.
    pub async fn fetch_plan(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        version: i64,
    ) -> Result<MappingPlan, Status> {
        let mut request = self.caller.request(
            tenant,
            GetMappingPlanRequest {
                connection_id: connection_id.to_owned(),
                plan_version: version,
                include_broken: false,
            },
        )?;
        request.set_timeout(Duration::from_secs(30));
        MappingServiceClient::new(self.mapping.clone())
            .get_mapping_plan(request)
            .await?
            .into_inner()
            .plan
            .ok_or_else(|| Status::internal("mapping answered without a plan"))
    }

    /// Plan `version` of the connection, compiled once and cached.
    pub async fn plan(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        version: i64,
    ) -> Result<Arc<Plan>, RemoteError> {
        let cache_key = (key(tenant, connection_id), version);
        if let Some(plan) = self
            .plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cache_key)
        {
            return Ok(plan.clone());
        }
        let proto = self
            .fetch_plan(tenant, connection_id, version)
            .await
            .map_err(|s| classify(s, "mapping plan"))?;
        let compiled = CompiledPlan::compile(&proto).map_err(|e| {
            RemoteError::Permanent(
                ErrorReason::FailedPrecondition,
                format!("the mapping plan does not compile: {e}"),
            )
        })?;
        let plan = Arc::new(Plan { compiled, proto });
        self.plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cache_key, plan.clone());
        Ok(plan)
    }
}
