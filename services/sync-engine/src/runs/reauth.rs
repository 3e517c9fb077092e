//! Runs paused because their connection needs re-authorization resume by themselves once it
//! is re-authorized.
//!
//! A worker pauses a run with `error_reason = NEEDS_REAUTH` and no resume time: only a
//! person can fix the connection. auth-vault tells sync-engine when one did, through the
//! lifecycle events CONNECTION_AUTHORIZED and CONNECTION_RECOVERED
//! (`IntakeService.PublishLifecycleEvent`); accepting such an event puts the tenant's runs of
//! that connection that are paused for re-authorization back in the queue, as
//! `ResumeSyncRun` would, and wakes the workers. Runs paused by the user or by the API budget
//! keep waiting for `ResumeSyncRun` or their resume time.

use syncline_domain::{ApiError, TenantContext};
use syncline_proto::common::v1::{ErrorReason, Event, EventType};

use super::Runner;
use super::store::{PAUSED, PENDING, RunStore};

/// Whether `event` says the connection it names works again: its first authorization, or
/// its re-authorization after NEEDS_REAUTH.
fn reauthorizes(event: &Event) -> bool {
    !event.connection_id.is_empty()
        && matches!(
            EventType::try_from(event.r#type),
            Ok(EventType::ConnectionAuthorized | EventType::ConnectionRecovered)
        )
}

impl RunStore {
    /// Puts the tenant's runs of `connection_id` that are PAUSED with `NEEDS_REAUTH` back in
    /// the queue (PENDING, reason and message cleared, like `ResumeSyncRun`); returns how
    /// many. Runs paused for any other reason are left as they are.
    pub async fn resume_reauthorized(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<u64, ApiError> {
        let result = sqlx::query(
            "UPDATE sync_runs SET state = $1, resume_at_ms = NULL, error_reason = 0,
                 error_message = ''
             WHERE project_id = $2 AND tenant_id = $3 AND connection_id = $4
               AND state = $5 AND error_reason = $6",
        )
        .bind(PENDING)
        .bind(tenant.project_id.as_str())
        .bind(tenant.tenant_id.as_str())
        .bind(connection_id)
        .bind(PAUSED)
        .bind(ErrorReason::NeedsReauth as i32)
        .execute(self.database().pool())
        .await
        .map_err(ApiError::internal)?;
        Ok(result.rows_affected())
    }
}

impl Runner {
    /// Acts on a lifecycle event sync-engine accepted (not a duplicate): the connection's
    /// schedules follow it (see [`Runner::on_schedule_event`]), and a
    /// CONNECTION_AUTHORIZED or CONNECTION_RECOVERED event resumes the tenant's runs of its
    /// connection paused for re-authorization (see [`Runner::resume_reauthorized`]).
    ///
    /// Best effort: the event is stored already, so a failure is logged and not returned,
    /// and the runs stay PAUSED with NEEDS_REAUTH, where the user can still resume them by
    /// hand with `ResumeSyncRun`.
    pub async fn on_lifecycle_event(&self, tenant: &TenantContext, event: &Event) {
        self.on_schedule_event(tenant, event).await;
        if !reauthorizes(event) {
            return;
        }
        let connection = event.connection_id.as_str();
        match self.resume_reauthorized(tenant, connection).await {
            Ok(resumed) => tracing::info!(
                tenant.id = %tenant.tenant_id,
                connection.id = %connection,
                event.id = %event.id,
                resumed,
                "connection authorized: resumed its runs paused for re-authorization"
            ),
            Err(error) => tracing::warn!(
                tenant.id = %tenant.tenant_id,
                connection.id = %connection,
                event.id = %event.id,
                %error,
                "failed to resume runs paused for re-authorization; they wait for ResumeSyncRun"
            ),
        }
    }

    /// Resumes the tenant's runs of `connection_id` paused for re-authorization (see
    /// [`RunStore::resume_reauthorized`]) and wakes the workers; returns how many resumed.
    /// The connection's cached access token is dropped first, so the resumed runs read with
    /// the token of the new authorization.
    pub async fn resume_reauthorized(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<u64, ApiError> {
        self.remote.forget_token(tenant, connection_id);
        let resumed = self
            .store
            .resume_reauthorized(tenant, connection_id)
            .await?;
        if resumed > 0 {
            self.wake();
        }
        Ok(resumed)
    }
}

#[cfg(test)]
mod tests;
