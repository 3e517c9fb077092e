//! The gRPC surface of sync-engine.

use syncline_domain::{ApiError, Violation, ids};
use syncline_proto::common::v1::EventType;
use syncline_proto::sync::v1::intake_service_server::IntakeService;
use syncline_proto::sync::v1::sync_service_server::SyncService;
use syncline_proto::sync::v1::{
    CancelSyncRunRequest, CancelSyncRunResponse, CreateWebhookEndpointRequest,
    CreateWebhookEndpointResponse, DeadLetterStage, DeleteWebhookEndpointRequest,
    DeleteWebhookEndpointResponse, GetSyncRunRequest, GetSyncRunResponse,
    GetWebhookEndpointRequest, GetWebhookEndpointResponse, ListDeadLettersRequest,
    ListDeadLettersResponse, ListSyncRunsRequest, ListSyncRunsResponse,
    ListWebhookEndpointsRequest, ListWebhookEndpointsResponse, PauseSyncRunRequest,
    PauseSyncRunResponse, PublishLifecycleEventRequest, PublishLifecycleEventResponse,
    ReplayDeadLettersRequest, ReplayDeadLettersResponse, ResumeSyncRunRequest,
    ResumeSyncRunResponse, StartSyncRunRequest, StartSyncRunResponse, StreamChangesRequest,
    StreamChangesResponse, StreamLifecycleEventsRequest, StreamLifecycleEventsResponse,
    SyncRunState, UpdateWebhookEndpointRequest, UpdateWebhookEndpointResponse,
};
use syncline_service_kit::pagination::PageRequest;
use syncline_service_kit::{tenant, time};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use std::sync::Arc;

use crate::changelog::stream;
use crate::delivery::outbox::{self, DeadLetterFilter};
use crate::engine::Engine;
use crate::lifecycle::{EventFilter, Events};
use crate::runs::Runner;
use crate::store::Store;
use crate::webhook;

/// Implements `syncline.sync.v1.SyncService`.
#[derive(Debug, Clone)]
pub struct SyncApi {
    store: Store,
    engine: Engine,
    runs: Arc<Runner>,
}

impl SyncApi {
    pub fn new(store: Store, engine: Engine, runs: Arc<Runner>) -> Self {
        Self {
            store,
            engine,
            runs,
        }
    }

    /// `StreamChanges` for the calling tenant: changes as stored, after the request's checks.
    pub async fn open_change_stream(
        &self,
        request: Request<StreamChangesRequest>,
    ) -> Result<stream::ChangeStream, Status> {
        let tenant = tenant(&request)?.clone();
        stream::open(
            self.engine.change_log().clone(),
            tenant,
            request.into_inner(),
            self.engine.stream_options().clone(),
        )
        .await
    }
}

/// The dead-letter filters shared by List and Replay, checked; `time_range` bounds are
/// half-open and optional.
fn dead_letter_filter(
    connection_id: &str,
    object: &str,
    stage: i32,
    time_range: Option<&syncline_proto::common::v1::TimeRange>,
    range_field: &str,
) -> Result<DeadLetterFilter, ApiError> {
    let mut violations = Vec::new();
    let stage = match DeadLetterStage::try_from(stage) {
        Ok(DeadLetterStage::Unspecified) => None,
        Ok(_) => Some(stage),
        Err(_) => {
            violations.push(Violation::new(
                "stage",
                "INVALID_ENUM",
                "must be a dead letter stage",
            ));
            None
        }
    };
    let from_ms = time_range
        .and_then(|r| r.start_time.as_ref())
        .map_or(i64::MIN, time::millis);
    let until_ms = time_range
        .and_then(|r| r.end_time.as_ref())
        .map_or(i64::MAX, time::millis);
    if from_ms >= until_ms {
        violations.push(Violation::new(
            format!("{range_field}.end_time"),
            "EMPTY_RANGE",
            "must be after start_time",
        ));
    }
    if !violations.is_empty() {
        return Err(ApiError::invalid(violations));
    }
    Ok(DeadLetterFilter {
        connection_id: (!connection_id.is_empty()).then(|| connection_id.to_owned()),
        object: (!object.is_empty()).then(|| object.to_owned()),
        stage,
        from_ms,
        until_ms,
    })
}

/// Implements the internal `syncline.sync.v1.IntakeService`: `PublishLifecycleEvent`;
/// `IngestProviderEvents` answers UNIMPLEMENTED until the intake issue builds it. Only
/// service credentials reach it (the context layer refuses gateway-forwarded calls on
/// internal services).
#[derive(Debug, Clone)]
pub struct IntakeApi {
    engine: Engine,
    runs: Arc<Runner>,
}

impl IntakeApi {
    pub fn new(engine: Engine, runs: Arc<Runner>) -> Self {
        Self { engine, runs }
    }
}

#[tonic::async_trait]
impl IntakeService for IntakeApi {
    async fn publish_lifecycle_event(
        &self,
        request: Request<PublishLifecycleEventRequest>,
    ) -> Result<Response<PublishLifecycleEventResponse>, Status> {
        let tenant = tenant(&request)?.clone();
        let event = request
            .into_inner()
            .event
            .ok_or_else(|| ApiError::invalid(vec![Violation::required("event")]))?;
        let published = self.engine.publish_event(&tenant, event).await?;
        if !published.duplicate {
            tracing::info!(
                event.id = %published.event.id,
                event.sequence = published.event.sequence,
                deliveries = published.deliveries,
                "lifecycle event published"
            );
            // A re-authorized connection's paused runs resume; never fails the publish.
            self.runs
                .on_lifecycle_event(&tenant, &published.event)
                .await;
        }
        Ok(Response::new(PublishLifecycleEventResponse {
            event: Some(published.event),
        }))
    }
}

fn required_id(value: &str, field: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        Err(ApiError::invalid(vec![Violation::required(field)]))
    } else {
        Ok(())
    }
}

#[tonic::async_trait]
impl SyncService for SyncApi {
    /// Served by `change_route::SyncRoutes` from the stored encodings; this decoded form
    /// answers only when the generated server is used on its own.
    async fn stream_changes(
        &self,
        request: Request<StreamChangesRequest>,
    ) -> Result<Response<BoxStream<StreamChangesResponse>>, Status> {
        use tokio_stream::StreamExt;
        let stream = self.open_change_stream(request).await?.map(|message| {
            message.and_then(|m| m.to_response().map_err(|e| Status::internal(e.to_string())))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn stream_lifecycle_events(
        &self,
        request: Request<StreamLifecycleEventsRequest>,
    ) -> Result<Response<BoxStream<StreamLifecycleEventsResponse>>, Status> {
        let tenant = tenant(&request)?.clone();
        let message = request.into_inner();
        let mut violations: Vec<Violation> = message
            .connection_ids
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_empty())
            .map(|(i, _)| {
                Violation::new(format!("connection_ids[{i}]"), "EMPTY", "must not be empty")
            })
            .collect();
        for (i, kind) in message.event_types.iter().enumerate() {
            if matches!(
                EventType::try_from(*kind),
                Ok(EventType::Unspecified) | Err(_)
            ) {
                violations.push(Violation::new(
                    format!("event_types[{i}]"),
                    "INVALID_ENUM",
                    "must be an event type other than EVENT_TYPE_UNSPECIFIED",
                ));
            }
        }
        if !violations.is_empty() {
            return Err(ApiError::invalid(violations).into());
        }
        let source = Events {
            log: self.engine.event_log().clone(),
            filter: EventFilter {
                event_types: message.event_types,
                connection_ids: message.connection_ids,
            },
        };
        let stream = stream::start(
            source,
            tenant,
            message.after_sequence,
            stream::DEFAULT_BATCH,
            self.engine.stream_options().clone(),
        )
        .await?;
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        let page = PageRequest::parse(message.page_size, &message.page_token)?;
        let filter = dead_letter_filter(
            &message.connection_id,
            &message.object,
            message.stage,
            message.time_range.as_ref(),
            "time_range",
        )?;
        let mut dead_letters =
            outbox::dead_letters(self.store.database(), tenant, &filter, &page).await?;
        let next_page_token = page.finish(&mut dead_letters, |d| &d.id);
        Ok(Response::new(ListDeadLettersResponse {
            dead_letters,
            next_page_token,
        }))
    }

    async fn replay_dead_letters(
        &self,
        request: Request<ReplayDeadLettersRequest>,
    ) -> Result<Response<ReplayDeadLettersResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        let Some(range) = message.time_range.as_ref() else {
            return Err(ApiError::invalid(vec![Violation::required("time_range")]).into());
        };
        let filter = dead_letter_filter(
            &message.connection_id,
            &message.object,
            message.stage,
            Some(range),
            "time_range",
        )?;
        let replayed_count = outbox::replay(
            self.store.database(),
            tenant,
            &filter,
            message.dry_run,
            self.engine.dispatcher().now_ms(),
        )
        .await?;
        if replayed_count > 0 && !message.dry_run {
            self.engine.wake_dispatcher();
        }
        Ok(Response::new(ReplayDeadLettersResponse {
            replayed_count,
            sync_run_id: String::new(),
        }))
    }

    async fn start_sync_run(
        &self,
        request: Request<StartSyncRunRequest>,
    ) -> Result<Response<StartSyncRunResponse>, Status> {
        let tenant = tenant(&request)?.clone();
        let (sync_run, created) = self.runs.start(&tenant, request.into_inner()).await?;
        Ok(Response::new(StartSyncRunResponse {
            sync_run: Some(sync_run),
            created,
        }))
    }

    async fn pause_sync_run(
        &self,
        request: Request<PauseSyncRunRequest>,
    ) -> Result<Response<PauseSyncRunResponse>, Status> {
        let tenant = tenant(&request)?;
        let sync_run = self
            .runs
            .pause(tenant, &request.get_ref().sync_run_id)
            .await?;
        Ok(Response::new(PauseSyncRunResponse {
            sync_run: Some(sync_run),
        }))
    }

    async fn resume_sync_run(
        &self,
        request: Request<ResumeSyncRunRequest>,
    ) -> Result<Response<ResumeSyncRunResponse>, Status> {
        let tenant = tenant(&request)?;
        let sync_run = self
            .runs
            .resume(tenant, &request.get_ref().sync_run_id)
            .await?;
        Ok(Response::new(ResumeSyncRunResponse {
            sync_run: Some(sync_run),
        }))
    }

    async fn cancel_sync_run(
        &self,
        request: Request<CancelSyncRunRequest>,
    ) -> Result<Response<CancelSyncRunResponse>, Status> {
        let tenant = tenant(&request)?;
        let sync_run = self
            .runs
            .cancel(tenant, &request.get_ref().sync_run_id)
            .await?;
        Ok(Response::new(CancelSyncRunResponse {
            sync_run: Some(sync_run),
        }))
    }

    async fn get_sync_run(
        &self,
        request: Request<GetSyncRunRequest>,
    ) -> Result<Response<GetSyncRunResponse>, Status> {
        let tenant = tenant(&request)?;
        let id = &request.get_ref().sync_run_id;
        required_id(id, "sync_run_id")?;
        let sync_run = self
            .store
            .sync_run(tenant, id)
            .await?
            .ok_or_else(|| ApiError::not_found("sync run"))?;
        Ok(Response::new(GetSyncRunResponse {
            sync_run: Some(sync_run),
        }))
    }

    async fn list_sync_runs(
        &self,
        request: Request<ListSyncRunsRequest>,
    ) -> Result<Response<ListSyncRunsResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        let page = PageRequest::parse(message.page_size, &message.page_token)?;
        let invalid: Vec<Violation> = message
            .states
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                matches!(
                    SyncRunState::try_from(**s),
                    Ok(SyncRunState::Unspecified) | Err(_)
                )
            })
            .map(|(i, _)| {
                Violation::new(
                    format!("states[{i}]"),
                    "INVALID_ENUM",
                    "must be a sync run state other than SYNC_RUN_STATE_UNSPECIFIED",
                )
            })
            .collect();
        if !invalid.is_empty() {
            return Err(ApiError::invalid(invalid).into());
        }
        let connection =
            (!message.connection_id.is_empty()).then_some(message.connection_id.as_str());
        let mut sync_runs = self
            .store
            .sync_runs(tenant, &page, connection, &message.states)
            .await?;
        let next_page_token = page.finish(&mut sync_runs, |r| &r.id);
        Ok(Response::new(ListSyncRunsResponse {
            sync_runs,
            next_page_token,
        }))
    }

    async fn create_webhook_endpoint(
        &self,
        request: Request<CreateWebhookEndpointRequest>,
    ) -> Result<Response<CreateWebhookEndpointResponse>, Status> {
        let tenant = tenant(&request)?.clone();
        let input = request
            .into_inner()
            .webhook_endpoint
            .ok_or_else(|| ApiError::invalid(vec![Violation::required("webhook_endpoint")]))?;
        let mut endpoint = webhook::for_create(ids::new_resource_id("whk"), input)?;
        let signing_secret = webhook::new_signing_secret();
        let created = self
            .store
            .insert_webhook_endpoint(&tenant, &endpoint, &signing_secret)
            .await?;
        endpoint.create_time = Some(time::timestamp(created));
        endpoint.update_time = Some(time::timestamp(created));
        Ok(Response::new(CreateWebhookEndpointResponse {
            webhook_endpoint: Some(endpoint),
            signing_secret,
        }))
    }

    async fn get_webhook_endpoint(
        &self,
        request: Request<GetWebhookEndpointRequest>,
    ) -> Result<Response<GetWebhookEndpointResponse>, Status> {
        let tenant = tenant(&request)?;
        let id = &request.get_ref().webhook_endpoint_id;
        required_id(id, "webhook_endpoint_id")?;
        let endpoint = self
            .store
            .webhook_endpoint(tenant, id)
            .await?
            .ok_or_else(|| ApiError::not_found("webhook endpoint"))?;
        Ok(Response::new(GetWebhookEndpointResponse {
            webhook_endpoint: Some(endpoint),
        }))
    }

    async fn list_webhook_endpoints(
        &self,
        request: Request<ListWebhookEndpointsRequest>,
    ) -> Result<Response<ListWebhookEndpointsResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        let page = PageRequest::parse(message.page_size, &message.page_token)?;
        let mut webhook_endpoints = self.store.webhook_endpoints(tenant, &page).await?;
        let next_page_token = page.finish(&mut webhook_endpoints, |e| &e.id);
        Ok(Response::new(ListWebhookEndpointsResponse {
            webhook_endpoints,
            next_page_token,
        }))
    }

    async fn update_webhook_endpoint(
        &self,
        request: Request<UpdateWebhookEndpointRequest>,
    ) -> Result<Response<UpdateWebhookEndpointResponse>, Status> {
        let tenant = tenant(&request)?.clone();
        let message = request.into_inner();
        let update = message
            .webhook_endpoint
            .ok_or_else(|| ApiError::invalid(vec![Violation::required("webhook_endpoint")]))?;
        required_id(&update.id, "webhook_endpoint.id")?;
        let mask = message.update_mask.map(|m| m.paths).unwrap_or_default();
        let not_found = || ApiError::not_found("webhook endpoint");
        let current = self
            .store
            .webhook_endpoint(&tenant, &update.id)
            .await?
            .ok_or_else(not_found)?;
        let created = current.create_time;
        let mut endpoint = webhook::apply_update(current, update, &mask)?;
        let updated = self
            .store
            .update_webhook_endpoint(&tenant, &endpoint)
            .await?
            .ok_or_else(not_found)?;
        endpoint.create_time = created;
        endpoint.update_time = Some(time::timestamp(updated));
        Ok(Response::new(UpdateWebhookEndpointResponse {
            webhook_endpoint: Some(endpoint),
        }))
    }

    async fn delete_webhook_endpoint(
        &self,
        request: Request<DeleteWebhookEndpointRequest>,
    ) -> Result<Response<DeleteWebhookEndpointResponse>, Status> {
        let tenant = tenant(&request)?;
        let id = &request.get_ref().webhook_endpoint_id;
        required_id(id, "webhook_endpoint_id")?;
        if !self.store.delete_webhook_endpoint(tenant, id).await? {
            return Err(ApiError::not_found("webhook endpoint").into());
        }
        Ok(Response::new(DeleteWebhookEndpointResponse {}))
    }
}
