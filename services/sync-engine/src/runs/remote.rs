//! What workers need from the other services: access tokens from auth-vault (one per
//! connection, reused until near expiry; a 401 reported once), compiled mapping plans
//! (cached per plan version, two versions per connection, checked with mapping again at most every
//! `sync_engine.runs.plan_check_secs`, applied without the rules schema drift broke) and
//! schema refreshes from schema-discovery (when the CRM refuses a field the plan reads).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use syncline_domain::TenantContext;
use syncline_mapping_plan::{BrokenRule, CompiledPlan, Direction};
use syncline_proto::authvault::v1::AccessToken;
use syncline_proto::common::v1::ErrorReason;
use syncline_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use syncline_proto::mapping::v1::{GetMappingPlanRequest, MappingPlan, ViolationKind};
use syncline_proto::schema::v1::RefreshSchemaRequest;
use syncline_proto::schema::v1::schema_service_client::SchemaServiceClient;
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

/// A compiled plan, without the rules schema drift broke.
#[derive(Debug)]
pub struct Plan {
    pub compiled: CompiledPlan,
    /// The rules left out because drift broke them (mapping's `drift_violations`).
    pub broken: Vec<BrokenRule>,
    /// The schema version mapping checked the plan against (0: not checked).
    pub checked_schema_version: i64,
}

/// What a run leaves out of one object while drift breaks its mappings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The CRM fields no longer read.
    pub fields: Vec<String>,
    /// Why, for people.
    pub issue: String,
}

impl Plan {
    /// Compiles `proto` (read with `include_broken`) without its broken rules.
    pub fn compile(proto: &MappingPlan) -> Result<Self, RemoteError> {
        let (compiled, broken) = CompiledPlan::compile_without_broken(proto).map_err(|e| {
            RemoteError::Permanent(
                ErrorReason::FailedPrecondition,
                format!("the mapping plan does not compile: {e}"),
            )
        })?;
        Ok(Self {
            compiled,
            broken,
            checked_schema_version: proto.checked_schema_version,
        })
    }

    /// The CRM fields the inbound rules of `object` read, deduplicated, in rule order.
    pub fn inbound_fields(&self, object: &str) -> Vec<String> {
        self.compiled
            .object(object)
            .map(|o| o.rules(Direction::Inbound).source_fields().to_vec())
            .unwrap_or_default()
    }

    /// The CRM fields of `object` that broken inbound rules read and no kept rule still
    /// does, with a sentence saying why; `None` when nothing is left out.
    pub fn skipped(&self, object: &str) -> Option<Skipped> {
        let read = self.inbound_fields(object);
        let mut fields: Vec<String> = Vec::new();
        let mut reasons: Vec<String> = Vec::new();
        for rule in self
            .broken
            .iter()
            .filter(|r| r.object == object && r.direction == Direction::Inbound)
        {
            let field = if rule.broken_field.is_empty() {
                rule.provider_fields.join("+")
            } else {
                rule.broken_field.clone()
            };
            if read.contains(&field) || fields.contains(&field) {
                continue;
            }
            let what = match rule.kind {
                ViolationKind::ProviderFieldUnknown if rule.broken_field.is_empty() => {
                    format!("{} no longer exists in the CRM", rule.provider_object)
                }
                ViolationKind::ProviderFieldUnknown => format!(
                    "{}.{field} no longer exists in the CRM",
                    rule.provider_object
                ),
                ViolationKind::TypeIncompatible => format!(
                    "{}.{field} changed type and no longer fits `{}`",
                    rule.provider_object,
                    rule.model_fields.join(", ")
                ),
                ViolationKind::PicklistValueUnknown => format!(
                    "{}.{field} no longer has a picklist value the mapping uses",
                    rule.provider_object
                ),
                _ => format!(
                    "{}.{field}: {}",
                    rule.provider_object,
                    rule.message
                        .trim_start_matches("inbound: ")
                        .trim_start_matches("outbound: ")
                ),
            };
            fields.push(field);
            if !reasons.contains(&what) {
                reasons.push(what);
            }
        }
        if fields.is_empty() {
            return None;
        }
        Some(Skipped {
            issue: format!(
                "schema drift: {}; not read until the mapping is saved again",
                reasons.join("; ")
            ),
            fields,
        })
    }
}

/// A cached plan and when mapping was last asked about it (or a check of it began).
#[derive(Debug)]
struct CachedPlan {
    plan: Arc<Plan>,
    checked: Instant,
}

type TenantKey = (String, String, String);

fn key(tenant: &TenantContext, connection: &str) -> TenantKey {
    (
        tenant.project_id.as_str().to_owned(),
        tenant.tenant_id.as_str().to_owned(),
        connection.to_owned(),
    )
}

/// Plan versions cached per connection: a run keeps the version it started with, and a
/// connection has at most a backfill and an incremental run at once.
const PLAN_VERSIONS_KEPT: usize = 2;

/// Drops the cached plans of `connection` but `kept` and the newest others, at most
/// [`PLAN_VERSIONS_KEPT`] in all, so that every saved mapping does not leave a compiled plan
/// behind for the process's life.
fn keep_newest_versions(
    plans: &mut HashMap<(TenantKey, i64), CachedPlan>,
    (connection, kept): &(TenantKey, i64),
) {
    let mut others: Vec<i64> = plans
        .keys()
        .filter(|(key, version)| key == connection && version != kept)
        .map(|(_, version)| *version)
        .collect();
    others.sort_unstable_by(|a, b| b.cmp(a));
    for old in others.into_iter().skip(PLAN_VERSIONS_KEPT - 1) {
        plans.remove(&(connection.clone(), old));
    }
}

/// The other services a worker calls.
#[derive(Debug, Clone)]
pub struct Channels {
    pub auth_vault: Channel,
    pub mapping: Channel,
    pub schema_discovery: Channel,
}

/// Clients of auth-vault's TokenService, mapping and schema-discovery, with the token and
/// plan caches.
#[derive(Debug)]
pub struct Remote {
    caller: ServiceCaller,
    vault: VaultTokens,
    mapping: Channel,
    schema: Channel,
    tokens: Mutex<HashMap<TenantKey, AccessToken>>,
    plans: Mutex<HashMap<(TenantKey, i64), CachedPlan>>,
    /// How long a cached plan is used before mapping is asked about it again.
    plan_check: Duration,
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
    /// Clients on `channels`; a cached plan is checked with mapping again after
    /// `plan_check`.
    pub fn new(caller: ServiceCaller, channels: Channels, plan_check: Duration) -> Self {
        Self {
            vault: VaultTokens::new(caller.clone(), channels.auth_vault),
            caller,
            mapping: channels.mapping,
            schema: channels.schema_discovery,
            tokens: Mutex::new(HashMap::new()),
            plans: Mutex::new(HashMap::new()),
            plan_check,
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

    /// The connection's mapping plan `version` (0: the latest), as stored by mapping, also
    /// when schema drift broke it: then with its `drift_violations` (what a worker leaves
    /// out).
    pub async fn fetch_plan_including_broken(
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
                include_broken: true,
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

    /// Plan `version` of the connection, compiled without the rules drift broke. Cached:
    /// a plan checked with mapping less than `plan_check` ago is returned at once (no
    /// call); an older one is checked again by the first caller while the others keep
    /// using it until the next interval, as they do when that check fails or is abandoned.
    pub async fn plan(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        version: i64,
    ) -> Result<Arc<Plan>, RemoteError> {
        let cache_key = (key(tenant, connection_id), version);
        let cached = {
            let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
            match plans.get_mut(&cache_key) {
                Some(entry) if entry.checked.elapsed() < self.plan_check => {
                    return Ok(entry.plan.clone());
                }
                Some(entry) => {
                    // This caller checks; the others keep the cached plan until the next
                    // interval (also when this check is abandoned or fails).
                    entry.checked = Instant::now();
                    Some(entry.plan.clone())
                }
                None => None,
            }
        };
        let fetched = self
            .fetch_plan_including_broken(tenant, connection_id, version)
            .await
            .map_err(|s| classify(s, "mapping plan"))
            .and_then(|proto| Plan::compile(&proto));
        let started_from = cached.clone();
        let (plan, changed) = match (fetched, cached) {
            (Ok(fresh), Some(old)) if same_drift(&fresh, &old) => (old, false),
            (Ok(fresh), old) => {
                let fresh = Arc::new(fresh);
                if !fresh.broken.is_empty() || old.is_some() {
                    tracing::warn!(
                        connection.id = connection_id,
                        plan_version = version,
                        schema_version = fresh.checked_schema_version,
                        left_out = fresh.broken.len(),
                        "schema drift changed what the mapping plan can apply; broken rules are left out"
                    );
                }
                (fresh, true)
            }
            (Err(error), Some(old)) => {
                tracing::warn!(?error, "checking a cached mapping plan failed; keeping it");
                return Ok(old);
            }
            (Err(error), None) => return Err(error),
        };
        if changed {
            let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
            match (plans.get_mut(&cache_key), started_from) {
                (Some(entry), Some(old)) if Arc::ptr_eq(&entry.plan, &old) => {
                    entry.plan = plan.clone();
                    entry.checked = Instant::now();
                }
                // Dropped or replaced while this check ran (a refused field made a worker
                // read the plan again): what is there now is at least as new.
                (_, Some(_)) | (Some(_), None) => {}
                (None, None) => {
                    plans.insert(
                        cache_key.clone(),
                        CachedPlan {
                            plan: plan.clone(),
                            checked: Instant::now(),
                        },
                    );
                    keep_newest_versions(&mut plans, &cache_key);
                }
            }
        }
        Ok(plan)
    }

    /// Drops the cached plan `version` of the connection: the next page asks mapping.
    pub fn forget_plan(&self, tenant: &TenantContext, connection_id: &str, version: i64) {
        self.plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(key(tenant, connection_id), version));
    }

    /// Asks schema-discovery to describe `provider_object` of the connection again (a new
    /// schema version when it changed, and SCHEMA_DRIFT_DETECTED), so mapping sees what the
    /// CRM now has. Blocks until described.
    pub async fn refresh_schema(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        provider_object: &str,
    ) -> Result<i64, RemoteError> {
        let mut request = self
            .caller
            .request(
                tenant,
                RefreshSchemaRequest {
                    connection_id: connection_id.to_owned(),
                    object_names: vec![provider_object.to_owned()],
                },
            )
            .map_err(|s| classify(s, "schema refresh"))?;
        request.set_timeout(Duration::from_secs(120));
        let response = SchemaServiceClient::new(self.schema.clone())
            .refresh_schema(request)
            .await
            .map_err(|s| classify(s, "schema refresh"))?
            .into_inner();
        Ok(response.schema_version)
    }
}

/// Whether two compilations of one plan version leave out the same rules.
fn same_drift(a: &Plan, b: &Plan) -> bool {
    a.broken == b.broken
}

#[cfg(test)]
mod tests {
    use syncline_proto::mapping::v1::{CompiledFieldRule, FieldMappingViolation, ObjectPlan};

    use super::*;

    fn rule(source: &str, target: &str) -> CompiledFieldRule {
        CompiledFieldRule {
            source_fields: vec![source.into()],
            target_field: target.into(),
            ..CompiledFieldRule::default()
        }
    }

    fn plan(violations: Vec<FieldMappingViolation>) -> Plan {
        Plan::compile(&MappingPlan {
            objects: vec![ObjectPlan {
                object: "contact".into(),
                provider_object: "Contact".into(),
                inbound: vec![
                    rule("LastName", "last_name"),
                    rule("Score__c", "score"),
                    rule("Rating__c", "rating"),
                    rule("Rating__c", "rating_text"),
                ],
                outbound: vec![rule("email", "Email")],
                ..ObjectPlan::default()
            }],
            drift_violations: violations,
            checked_schema_version: 3,
            ..MappingPlan::default()
        })
        .unwrap()
    }

    fn violation(model: &str, provider: &str, kind: ViolationKind) -> FieldMappingViolation {
        FieldMappingViolation {
            object: "contact".into(),
            mapping_index: -1,
            model_field: model.into(),
            provider_field: provider.into(),
            kind: kind as i32,
            message: format!("inbound: `{provider}` broke"),
        }
    }

    #[test]
    fn a_plan_without_drift_skips_nothing() {
        let plan = plan(Vec::new());
        assert_eq!(plan.skipped("contact"), None);
        assert_eq!(
            plan.inbound_fields("contact"),
            ["LastName", "Score__c", "Rating__c"]
        );
    }

    #[test]
    fn a_removed_field_is_no_longer_read_and_named_with_why() {
        let plan = plan(vec![violation(
            "score",
            "Score__c",
            ViolationKind::ProviderFieldUnknown,
        )]);
        assert_eq!(plan.inbound_fields("contact"), ["LastName", "Rating__c"]);
        assert_eq!(
            plan.skipped("contact"),
            Some(Skipped {
                fields: vec!["Score__c".into()],
                issue: "schema drift: Contact.Score__c no longer exists in the CRM; not read until the mapping is saved again".into(),
            })
        );
        assert_eq!(plan.skipped("account"), None);
    }

    /// A mapping service answering GetMappingPlan with `plan` (its drift as set), counting
    /// the calls.
    #[derive(Clone, Default)]
    struct FakeMapping {
        calls: Arc<std::sync::atomic::AtomicUsize>,
        drift: Arc<Mutex<Vec<FieldMappingViolation>>>,
    }

    #[tonic::async_trait]
    impl syncline_proto::mapping::v1::mapping_service_server::MappingService for FakeMapping {
        async fn get_mapping_plan(
            &self,
            request: tonic::Request<GetMappingPlanRequest>,
        ) -> Result<tonic::Response<syncline_proto::mapping::v1::GetMappingPlanResponse>, Status>
        {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            assert!(
                request.get_ref().include_broken,
                "workers read broken plans too"
            );
            let drift = self.drift.lock().unwrap().clone();
            let mut plan = MappingPlan {
                objects: vec![ObjectPlan {
                    object: "contact".into(),
                    provider_object: "Contact".into(),
                    inbound: vec![rule("LastName", "last_name"), rule("Score__c", "score")],
                    ..ObjectPlan::default()
                }],
                plan_version: 2,
                ..MappingPlan::default()
            };
            plan.drift_violations = drift;
            Ok(tonic::Response::new(
                syncline_proto::mapping::v1::GetMappingPlanResponse { plan: Some(plan) },
            ))
        }
    }

    async fn remote_with(fake: &FakeMapping, plan_check: Duration) -> Remote {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = syncline_proto::mapping::v1::mapping_service_server::MappingServiceServer::new(
            fake.clone(),
        );
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let channel = Channel::from_shared(url).unwrap().connect_lazy();
        let auth = Arc::new(syncline_service_kit::InternalAuth::new(
            &secrecy::SecretString::from("test-internal-secret-0123456789abcdef".to_owned()),
        ));
        Remote::new(
            ServiceCaller::new(auth, "sync-engine"),
            Channels {
                auth_vault: channel.clone(),
                mapping: channel.clone(),
                schema_discovery: channel,
            },
            plan_check,
        )
    }

    fn tenant() -> TenantContext {
        TenantContext {
            project_id: syncline_domain::ProjectId::parse("p1").unwrap(),
            tenant_id: syncline_domain::TenantId::parse("t1").unwrap(),
            subject: "test".into(),
        }
    }

    #[tokio::test]
    async fn a_fresh_plan_costs_no_call_and_a_stale_one_is_checked_again() {
        let fake = FakeMapping::default();
        let calls = || fake.calls.load(std::sync::atomic::Ordering::SeqCst);
        let tenant = tenant();

        // Checked within the interval: one call for any number of pages.
        let patient = remote_with(&fake, Duration::from_secs(3600)).await;
        for _ in 0..5 {
            let plan = patient.plan(&tenant, "conn", 2).await.unwrap();
            assert_eq!(plan.inbound_fields("contact"), ["LastName", "Score__c"]);
        }
        assert_eq!(calls(), 1);
        // Drift found elsewhere is not seen before the interval…
        *fake.drift.lock().unwrap() = vec![violation(
            "score",
            "Score__c",
            ViolationKind::ProviderFieldUnknown,
        )];
        let plan = patient.plan(&tenant, "conn", 2).await.unwrap();
        assert_eq!(plan.inbound_fields("contact"), ["LastName", "Score__c"]);
        assert_eq!(calls(), 1);
        // …unless the plan is dropped (a refused field), which reads it again.
        patient.forget_plan(&tenant, "conn", 2);
        let plan = patient.plan(&tenant, "conn", 2).await.unwrap();
        assert_eq!(plan.inbound_fields("contact"), ["LastName"]);
        assert_eq!(calls(), 2);

        // A zero interval checks before every page and sees the drift at once, and that it
        // went away.
        let eager = remote_with(&fake, Duration::ZERO).await;
        let plan = eager.plan(&tenant, "conn", 2).await.unwrap();
        assert_eq!(plan.inbound_fields("contact"), ["LastName"]);
        fake.drift.lock().unwrap().clear();
        let plan = eager.plan(&tenant, "conn", 2).await.unwrap();
        assert_eq!(plan.inbound_fields("contact"), ["LastName", "Score__c"]);
        assert_eq!(calls(), 4);
    }

    #[tokio::test]
    async fn only_the_two_newest_plan_versions_of_a_connection_stay_cached() {
        let fake = FakeMapping::default();
        let calls = || fake.calls.load(std::sync::atomic::Ordering::SeqCst);
        let tenant = tenant();
        let remote = remote_with(&fake, Duration::from_secs(3600)).await;
        for version in [1, 2, 3] {
            remote.plan(&tenant, "conn", version).await.unwrap();
            remote.plan(&tenant, "other", version).await.unwrap();
        }
        assert_eq!(calls(), 6);
        let mut cached: Vec<(String, i64)> = remote
            .plans
            .lock()
            .unwrap()
            .keys()
            .map(|((_, _, connection), version)| (connection.clone(), *version))
            .collect();
        cached.sort();
        assert_eq!(
            cached,
            [
                ("conn".to_owned(), 2),
                ("conn".to_owned(), 3),
                ("other".to_owned(), 2),
                ("other".to_owned(), 3)
            ]
        );
        // The newest two cost no call; the dropped one is asked for again and stays, beside
        // the newest.
        remote.plan(&tenant, "conn", 3).await.unwrap();
        remote.plan(&tenant, "conn", 2).await.unwrap();
        assert_eq!(calls(), 6);
        remote.plan(&tenant, "conn", 1).await.unwrap();
        remote.plan(&tenant, "conn", 1).await.unwrap();
        remote.plan(&tenant, "conn", 3).await.unwrap();
        assert_eq!(calls(), 7);
        remote.plan(&tenant, "conn", 2).await.unwrap();
        assert_eq!(calls(), 8);
    }

    #[test]
    fn a_field_another_kept_rule_reads_is_still_read() {
        // Retyped: it no longer fits `rating`, but `rating_text` still takes it.
        let plan = plan(vec![violation(
            "rating",
            "Rating__c",
            ViolationKind::TypeIncompatible,
        )]);
        assert_eq!(
            plan.inbound_fields("contact"),
            ["LastName", "Score__c", "Rating__c"]
        );
        assert_eq!(plan.skipped("contact"), None);
        assert_eq!(plan.broken.len(), 1);
    }
}
