//! Describing a connection at its CRM and storing what changed: token from auth-vault,
//! describe through the provider's connector, compare, store a new version with its drift,
//! publish SCHEMA_DRIFT_DETECTED; and the scheduler that does it for every known connection.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::SecretString;
use syncline_connectors::{Connector, ConnectorError, Credentials, Provider};
use syncline_domain::{ApiError, ErrorCode, ProjectId, TenantContext, TenantId};
use syncline_proto::common::v1::{Event, EventType};
use syncline_proto::schema::v1::{DriftKind, ObjectSchema, RefreshSchemaResponse};
use syncline_proto::sync::v1::PublishLifecycleEventRequest;

use crate::store::DriftEvent;
use syncline_proto::sync::v1::intake_service_client::IntakeServiceClient;
use syncline_service_kit::client::{ServiceCaller, VaultTokens};
use syncline_service_kit::time;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::transport::Channel;
use tracing::Instrument;

use crate::convert;
use crate::drift;
use crate::store::{DriftRow, Store};

/// Describes connections and stores their schema versions.
#[derive(Debug, Clone)]
pub struct Discoverer {
    store: Store,
    http: reqwest::Client,
    caller: ServiceCaller,
    tokens: VaultTokens,
    sync_engine: Channel,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// The status for a connector failure.
fn connector_status(error: &ConnectorError) -> Status {
    let api = match error {
        ConnectorError::RateLimited { .. } => ApiError::new(
            ErrorCode::RateLimited,
            "the crm rate-limited the describe; retry later",
        ),
        ConnectorError::QuotaExhausted => ApiError::new(
            ErrorCode::QuotaExhausted,
            "the crm api quota of this connection is used up",
        ),
        ConnectorError::Unavailable { .. } | ConnectorError::Transport(_) => ApiError::new(
            ErrorCode::ProviderUnavailable,
            "the crm did not answer the describe; retry later",
        ),
        ConnectorError::Unauthorized { .. } => ApiError::new(
            ErrorCode::NeedsReauth,
            "the crm refused the connection's credentials",
        ),
        ConnectorError::Refused { status, code, .. } => ApiError::new(
            ErrorCode::FailedPrecondition,
            format!("the crm refused the describe (http {status} {code})"),
        ),
        ConnectorError::Unsupported { .. } | ConnectorError::InvalidResponse { .. } => {
            ApiError::internal(error.to_string())
        }
    };
    api.into_status()
}

impl Discoverer {
    pub fn new(
        store: Store,
        http: reqwest::Client,
        caller: ServiceCaller,
        auth_vault: Channel,
        sync_engine: Channel,
    ) -> Self {
        Self {
            store,
            http,
            tokens: VaultTokens::new(caller.clone(), auth_vault),
            caller,
            sync_engine,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Describes the connection's objects (all, or those in `only`), as stored messages.
    async fn describe(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        only: &[String],
    ) -> Result<(Provider, Vec<ObjectSchema>), Status> {
        let mut token = self.tokens.access_token(tenant, connection_id).await?;
        let provider = Provider::from_proto(token.provider).ok_or_else(|| {
            Status::failed_precondition("the connection's provider has no connector")
        })?;
        let connector = Connector::for_provider(provider, self.http.clone());
        let mut reported = false;
        loop {
            let credentials = Credentials {
                instance_url: token.instance_url.clone(),
                access_token: SecretString::from(std::mem::take(&mut token.access_token)),
            };
            match connector.describe_all(&credentials, only).await {
                Ok(objects) => {
                    return Ok((provider, objects.into_iter().map(convert::object).collect()));
                }
                Err(ConnectorError::Unauthorized { provider_error }) if !reported => {
                    tracing::info!(
                        connection.id = connection_id,
                        provider = provider.as_str(),
                        "crm refused the access token; reporting it once and retrying"
                    );
                    reported = true;
                    token = self
                        .tokens
                        .report_unauthorized(tenant, connection_id, token.version, provider_error)
                        .await?;
                }
                Err(error) => {
                    tracing::warn!(
                        connection.id = connection_id,
                        provider = provider.as_str(),
                        error = %error,
                        "describe failed"
                    );
                    return Err(connector_status(&error));
                }
            }
        }
    }

    /// Describes the connection again; stores a new version when anything changed, with
    /// its drift, and publishes SCHEMA_DRIFT_DETECTED.
    pub async fn refresh(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        only: &[String],
    ) -> Result<RefreshSchemaResponse, Status> {
        let (provider, described) = self.describe(tenant, connection_id, only).await?;
        let latest = self.store.latest(tenant, connection_id).await?;
        let previous = match &latest {
            Some((version, _)) => {
                self.store
                    .all_objects(tenant, connection_id, *version)
                    .await?
            }
            None => Vec::new(),
        };
        let objects = if only.is_empty() {
            described
        } else {
            // Carry the other objects over; a named object the CRM no longer has is gone.
            let mut merged: Vec<ObjectSchema> = previous
                .iter()
                .filter(|o| !only.contains(&o.name))
                .cloned()
                .collect();
            merged.extend(described);
            merged.sort_by(|a, b| a.name.cmp(&b.name));
            merged
        };
        let hash = convert::content_hash(&objects);
        let previous_version = latest.as_ref().map_or(0, |(v, _)| *v);
        if latest.as_ref().is_some_and(|(_, h)| *h == hash) {
            return Ok(RefreshSchemaResponse {
                schema_version: previous_version,
                changed: false,
                previous_schema_version: previous_version,
            });
        }
        let version = previous_version + 1;
        let changes = if latest.is_some() {
            drift::compare(&previous, &objects)
        } else {
            Vec::new()
        };
        let rows = drift_rows(&changes);
        let now = now_ms();
        self.store
            .insert_version(tenant, connection_id, version, &hash, &objects, &rows, now)
            .await?;
        tracing::info!(
            connection.id = connection_id,
            provider = provider.as_str(),
            schema.version = version,
            objects = objects.len(),
            "stored a new schema version"
        );
        if !changes.is_empty() {
            let event = DriftEvent {
                project_id: tenant.project_id.to_string(),
                tenant_id: tenant.tenant_id.to_string(),
                connection_id: connection_id.to_owned(),
                from_version: previous_version,
                to_version: version,
                changed_objects: i32::try_from(changes.len()).unwrap_or(i32::MAX),
                breaking_fields: i32::try_from(rows.iter().filter(|r| r.breaking).count())
                    .unwrap_or(i32::MAX),
                provider: provider.to_proto() as i32,
            };
            // Recorded first, published after: an event that cannot be published now is
            // kept and re-sent by the scheduler under the same id, never lost or doubled.
            self.store
                .record_drift_event(
                    tenant,
                    connection_id,
                    previous_version,
                    version,
                    changes.len(),
                    usize::try_from(event.breaking_fields).unwrap_or(0),
                    event.provider,
                    false,
                    now,
                )
                .await?;
            self.publish_drift(&event).await;
        }
        Ok(RefreshSchemaResponse {
            schema_version: version,
            changed: true,
            previous_schema_version: previous_version,
        })
    }

    /// Publishes SCHEMA_DRIFT_DETECTED through sync-engine's intake under an id stable per
    /// (connection, version), so the intake dedupes re-sends; marks it published on success.
    /// On failure it logs and leaves the event for the scheduler's next round.
    pub(crate) async fn publish_drift(&self, drift: &DriftEvent) {
        let (Ok(project_id), Ok(tenant_id)) = (
            ProjectId::parse(&drift.project_id),
            TenantId::parse(&drift.tenant_id),
        ) else {
            return;
        };
        let tenant = TenantContext {
            project_id,
            tenant_id,
            subject: "service:schema-discovery".into(),
        };
        let event = Event {
            id: drift_event_id(&drift.connection_id, drift.to_version),
            r#type: EventType::SchemaDriftDetected as i32,
            occur_time: Some(time::timestamp(now_ms())),
            connection_id: drift.connection_id.clone(),
            provider: drift.provider,
            message: format!(
                "schema drift: {} objects changed, {} fields removed or retyped",
                drift.changed_objects, drift.breaking_fields
            ),
            attributes: [
                ("from_version".to_owned(), drift.from_version.to_string()),
                ("to_version".to_owned(), drift.to_version.to_string()),
                (
                    "breaking_fields".to_owned(),
                    drift.breaking_fields.to_string(),
                ),
            ]
            .into_iter()
            .collect(),
            ..Event::default()
        };
        let Ok(mut request) = self
            .caller
            .request(&tenant, PublishLifecycleEventRequest { event: Some(event) })
        else {
            return;
        };
        request.set_timeout(Duration::from_secs(10));
        match IntakeServiceClient::new(self.sync_engine.clone())
            .publish_lifecycle_event(request)
            .await
        {
            Ok(_) => {
                if let Err(error) = self.store.mark_drift_published(drift).await {
                    tracing::warn!(error = %error.message(), "failed to mark a drift event published");
                }
            }
            Err(status) => tracing::warn!(
                tenant.id = %drift.tenant_id,
                connection.id = %drift.connection_id,
                schema.to_version = drift.to_version,
                code = ?status.code(),
                "schema drift recorded; its lifecycle event will be published again later"
            ),
        }
    }

    /// Publishes the drift events an earlier attempt could not.
    pub(crate) async fn publish_pending_drift(&self) {
        match self.store.unpublished_drift_events(100).await {
            Ok(events) => {
                for event in &events {
                    self.publish_drift(event).await;
                }
            }
            Err(error) => {
                tracing::warn!(error = %error.message(), "failed to list unpublished drift events");
            }
        }
    }
}

/// The lifecycle event id of the drift to `version` of a connection: letters, digits, `_`
/// and `-` only, at most 128 bytes, the same on every attempt.
fn drift_event_id(connection_id: &str, version: i64) -> String {
    let safe: String = connection_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(96)
        .collect();
    format!("drift_{safe}_v{version}")
}

/// The drift table's rows for `changes`.
fn drift_rows(changes: &[syncline_proto::schema::v1::ObjectDrift]) -> Vec<DriftRow> {
    let mut rows = Vec::new();
    for object in changes {
        let kind = [object.kind];
        if object.kind != DriftKind::AttributesChanged as i32 || object.fields.is_empty() {
            rows.push(DriftRow {
                object_name: object.object_name.clone(),
                field_name: String::new(),
                kinds: drift::kinds_text(&kind),
                breaking: drift::is_breaking(&kind),
                before_type: String::new(),
                after_type: String::new(),
            });
        }
        for field in &object.fields {
            rows.push(DriftRow {
                object_name: object.object_name.clone(),
                field_name: field.field_name.clone(),
                kinds: drift::kinds_text(&field.kinds),
                breaking: drift::is_breaking(&field.kinds),
                before_type: field
                    .before
                    .as_ref()
                    .map(|f| f.native_type.clone())
                    .unwrap_or_default(),
                after_type: field
                    .after
                    .as_ref()
                    .map(|f| f.native_type.clone())
                    .unwrap_or_default(),
            });
        }
    }
    rows
}

/// Refreshes every known connection every `interval` plus up to 10% jitter, until
/// `shutdown`, counting finished rounds in `sweeps` (see [`crate::completed_sweeps`]). Failures are logged and retried next round; shutdown does not wait for a
/// round in progress beyond its current describe.
pub async fn run_scheduler(
    discoverer: Discoverer,
    interval: Duration,
    shutdown: CancellationToken,
    sweeps: tokio::sync::watch::Sender<u64>,
) {
    loop {
        let jitter_ms = u64::try_from(interval.as_millis() / 10).unwrap_or(u64::MAX);
        let jitter = Duration::from_millis(rand::random_range(0..=jitter_ms));
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval + jitter) => {}
        }
        discoverer.publish_pending_drift().await;
        let connections = match discoverer.store.known_connections().await {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(error = %error.message(), "failed to list connections to refresh");
                continue;
            }
        };
        for known in connections {
            if shutdown.is_cancelled() {
                return;
            }
            let (Ok(project_id), Ok(tenant_id)) = (
                ProjectId::parse(&known.project_id),
                TenantId::parse(&known.tenant_id),
            ) else {
                continue;
            };
            let tenant = TenantContext {
                project_id,
                tenant_id,
                subject: "service:schema-discovery".into(),
            };
            let span = tracing::info_span!(
                "scheduled schema refresh",
                tenant.id = %known.tenant_id,
                connection.id = %known.connection_id
            );
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                r = discoverer.refresh(&tenant, &known.connection_id, &[]).instrument(span) => r,
            };
            match result {
                Ok(done) => tracing::debug!(
                    tenant.id = %known.tenant_id,
                    connection.id = %known.connection_id,
                    changed = done.changed,
                    "scheduled schema refresh done"
                ),
                Err(status) => tracing::warn!(
                    tenant.id = %known.tenant_id,
                    connection.id = %known.connection_id,
                    code = ?status.code(),
                    "scheduled schema refresh failed"
                ),
            }
        }
        sweeps.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::drift_event_id;

    #[test]
    fn drift_event_ids_are_stable_and_intake_safe() {
        assert_eq!(drift_event_id("conn_01ab", 3), "drift_conn_01ab_v3");
        assert_eq!(
            drift_event_id("conn_01ab", 3),
            drift_event_id("conn_01ab", 3)
        );
        let odd = drift_event_id(&"é/x".repeat(100), i64::MAX);
        assert!(odd.len() <= 128);
        assert!(
            odd.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        );
    }
}
