//! The credential audit trail (`audit_events`): connect and re-authorize, refresh failures
//! and revocations, imports, exports, provider app changes and key rotations, each with the
//! tenant, the actor (the caller's subject, or `system` for background work), the outcome
//! and the trace. Never a secret: details are names, counts and enum values only.
//!
//! Successful refreshes are not recorded: they are routine, counted by the refresher and
//! visible on the connection (`refresh_time`); a trail of them would grow with every token
//! lifetime of every connection.

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;
use syncline_domain::{ApiError, TenantContext, Violation};
use syncline_proto::authvault::v1::{AuditAction, AuditEvent, ListAuditEventsRequest};
use syncline_proto::common::v1::ErrorReason;
use syncline_service_kit::pagination::PageRequest;
use syncline_service_kit::time;
use syncline_storage::{Database, now_ms};

/// The actor of background work.
pub const SYSTEM_ACTOR: &str = "system";

/// One entry to record.
#[derive(Debug, Clone)]
pub struct Entry {
    action: AuditAction,
    connection_id: String,
    provider_app_id: String,
    failure: ErrorReason,
    details: BTreeMap<String, String>,
}

impl Entry {
    /// A successful `action`.
    pub fn new(action: AuditAction) -> Self {
        Self {
            action,
            connection_id: String::new(),
            provider_app_id: String::new(),
            failure: ErrorReason::Unspecified,
            details: BTreeMap::new(),
        }
    }

    /// About this connection.
    pub fn connection(mut self, id: &str) -> Self {
        id.clone_into(&mut self.connection_id);
        self
    }

    /// About this provider app.
    pub fn app(mut self, id: &str) -> Self {
        id.clone_into(&mut self.provider_app_id);
        self
    }

    /// The action failed for `reason`.
    pub fn failed(mut self, reason: ErrorReason) -> Self {
        self.failure = reason;
        self
    }

    /// Adds a detail; never a secret.
    pub fn detail(mut self, key: &str, value: impl Into<String>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

/// The `ErrorReason` of an error's code, for `failure_reason`.
pub fn reason_of(error: &ApiError) -> ErrorReason {
    ErrorReason::from_str_name(&format!("ERROR_REASON_{}", error.code().reason()))
        .unwrap_or(ErrorReason::Unspecified)
}

/// Records `entry` for `tenant`, acting as `tenant.subject`.
pub async fn record(db: &Database, tenant: &TenantContext, entry: Entry) -> Result<(), ApiError> {
    let actor = if tenant.subject.is_empty() {
        SYSTEM_ACTOR
    } else {
        tenant.subject.as_str()
    };
    let details = serde_json::to_string(&entry.details).map_err(ApiError::internal)?;
    sqlx::query(
        "INSERT INTO audit_events
             (id, project_id, tenant_id, connection_id, provider_app_id, actor, action,
              failure_reason, details, trace_id, occurred_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(syncline_domain::ids::new_resource_id("audit"))
    .bind(tenant.project_id.as_str())
    .bind(tenant.tenant_id.as_str())
    .bind(&entry.connection_id)
    .bind(&entry.provider_app_id)
    .bind(actor)
    .bind(entry.action as i32)
    .bind(entry.failure as i32)
    .bind(details)
    .bind(syncline_telemetry::current_trace_id().unwrap_or_default())
    .bind(now_ms())
    .execute(db.pool())
    .await
    .map_err(ApiError::internal)?;
    Ok(())
}

/// Records `entry`, logging instead of failing: for paths whose own outcome matters more
/// than its trail (a refresh failure is reported to the caller either way).
pub async fn record_or_log(db: &Database, tenant: &TenantContext, entry: Entry) {
    let action = entry.action;
    if let Err(error) = record(db, tenant, entry).await {
        tracing::warn!(action = action.as_str_name(), %error, "failed to record an audit event");
    }
}

/// A page of the tenant's audit trail, newest first.
pub async fn list(
    db: &Database,
    tenant: &TenantContext,
    request: &ListAuditEventsRequest,
) -> Result<(Vec<AuditEvent>, String), ApiError> {
    let page = PageRequest::parse(request.page_size, &request.page_token)?;
    let mut violations = Vec::new();
    let mut mask: i64 = 0;
    for (i, action) in request.actions.iter().enumerate() {
        match AuditAction::try_from(*action) {
            Ok(AuditAction::Unspecified) | Err(_) => violations.push(Violation::new(
                format!("actions[{i}]"),
                "INVALID_ENUM",
                "is not an audit action",
            )),
            Ok(action) => mask |= 1_i64 << (action as i32),
        }
    }
    let (from, to) = match &request.time_range {
        Some(range) => (
            range.start_time.as_ref().map_or(0, time::millis),
            range.end_time.as_ref().map_or(i64::MAX, time::millis),
        ),
        None => (0, i64::MAX),
    };
    if from > to {
        violations.push(Violation::new(
            "time_range",
            "INVALID_RANGE",
            "must not end before it starts",
        ));
    }
    if !violations.is_empty() {
        return Err(ApiError::invalid(violations));
    }
    // `~` sorts after every id (`audit_<uuid>`): the first page starts at the newest.
    let before = page.after.clone().unwrap_or_else(|| "~".to_owned());
    let rows = sqlx::query(
        "SELECT id, connection_id, provider_app_id, actor, action, failure_reason, details,
                trace_id, occurred_at_ms
         FROM audit_events
         WHERE project_id = $1 AND tenant_id = $2 AND id < $3
           AND ($4 = '' OR connection_id = $4)
           AND ($5 = 0 OR ($5 & (CAST(1 AS BIGINT) << action)) <> 0)
           AND occurred_at_ms >= $6 AND occurred_at_ms < $7
         ORDER BY id DESC LIMIT $8",
    )
    .bind(tenant.project_id.as_str())
    .bind(tenant.tenant_id.as_str())
    .bind(before)
    .bind(&request.connection_id)
    .bind(mask)
    .bind(from)
    .bind(to)
    .bind(page.fetch_limit())
    .fetch_all(db.pool())
    .await
    .map_err(ApiError::internal)?;
    let mut events = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    let next = page.finish(&mut events, |e| &e.id);
    Ok((events, next))
}

fn decode(row: &sqlx::any::AnyRow) -> Result<AuditEvent, ApiError> {
    let text = |name: &str| row.try_get::<String, _>(name).map_err(ApiError::internal);
    let details: HashMap<String, String> =
        serde_json::from_str(&text("details")?).map_err(ApiError::internal)?;
    Ok(AuditEvent {
        id: text("id")?,
        occur_time: Some(time::timestamp(
            row.try_get("occurred_at_ms").map_err(ApiError::internal)?,
        )),
        action: row.try_get("action").map_err(ApiError::internal)?,
        actor: text("actor")?,
        connection_id: text("connection_id")?,
        provider_app_id: text("provider_app_id")?,
        failure_reason: row.try_get("failure_reason").map_err(ApiError::internal)?,
        details,
        trace_id: text("trace_id")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_db::on_every_backend;
    use syncline_domain::{ProjectId, TenantId};

    fn tenant(name: &str) -> TenantContext {
        TenantContext {
            project_id: ProjectId::parse("p").unwrap(),
            tenant_id: TenantId::parse(name).unwrap(),
            subject: format!("user-of-{name}"),
        }
    }

    #[tokio::test]
    async fn the_trail_pages_newest_first_filters_and_stays_in_its_tenant() {
        on_every_backend("audit_trail_pages_newest_first", |db| async move {
            let acme = tenant("acme");
            for i in 0..5 {
                let action = if i % 2 == 0 {
                    AuditAction::CredentialsExported
                } else {
                    AuditAction::TokenRevoked
                };
                record(
                    &db,
                    &acme,
                    Entry::new(action)
                        .connection(&format!("conn_{}", i % 2))
                        .detail("n", i.to_string()),
                )
                .await
                .unwrap();
            }
            record(
                &db,
                &tenant("globex"),
                Entry::new(AuditAction::CredentialsExported).connection("conn_0"),
            )
            .await
            .unwrap();

            let request = |size, token: &str| ListAuditEventsRequest {
                page_size: size,
                page_token: token.into(),
                ..Default::default()
            };
            let (first, token) = list(&db, &acme, &request(2, "")).await.unwrap();
            let (second, token) = list(&db, &acme, &request(2, &token)).await.unwrap();
            let (third, token) = list(&db, &acme, &request(2, &token)).await.unwrap();
            assert!(token.is_empty());
            let order: Vec<&str> = first
                .iter()
                .chain(&second)
                .chain(&third)
                .map(|e| e.details["n"].as_str())
                .collect();
            assert_eq!(order, ["4", "3", "2", "1", "0"]);
            assert!(first.iter().all(|e| e.actor == "user-of-acme"));

            let only = ListAuditEventsRequest {
                actions: vec![AuditAction::TokenRevoked as i32],
                ..Default::default()
            };
            let (revoked, _) = list(&db, &acme, &only).await.unwrap();
            assert_eq!(revoked.len(), 2);
            let of_conn = ListAuditEventsRequest {
                connection_id: "conn_0".into(),
                ..Default::default()
            };
            let (conn0, _) = list(&db, &acme, &of_conn).await.unwrap();
            assert_eq!(conn0.len(), 3);
            let (globex, _) = list(&db, &tenant("globex"), &request(0, "")).await.unwrap();
            assert_eq!(globex.len(), 1);
            let bad = ListAuditEventsRequest {
                actions: vec![0, 99],
                ..Default::default()
            };
            let error = list(&db, &acme, &bad).await.unwrap_err();
            assert_eq!(error.violations().len(), 2);
        })
        .await;
    }
}
