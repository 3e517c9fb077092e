//! The page's JSON API (`/embed/api/...`), authenticated by an embed token only.
//!
//! Every handler verifies the bearer embed token, records the tenant on its span, checks
//! that a connection named in the path is one the token allows (others are NOT_FOUND, like
//! missing ones), and turns its work into gRPC calls to the backends as that tenant.
//! Errors are `{"error": {"code", "message", "violations": [...]}}` with the HTTP status of
//! the error code; backend messages are passed on as the backends wrote them (internal
//! causes never leave a backend), tokens are never logged.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use syncline_mapping::manifest::ManifestDoc;
use syncline_proto::authvault::v1::auth_vault_service_client::AuthVaultServiceClient;
use syncline_proto::authvault::v1::{
    Connection, GetConnectionRequest, ListConnectionsRequest, ListProviderAppsRequest,
    StartAuthorizationRequest,
};
use syncline_proto::common::v1::{ConnectionStatus, Provider};
use syncline_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use syncline_proto::mapping::v1::{
    FieldMappingViolation, GetInstallationRequest, GetManifestRequest, GetMappingPlanRequest,
    Installation, ObjectSelection, SaveFieldMappingsRequest, UpdateInstallationRequest,
    ValidateFieldMappingsRequest, ViolationKind,
};
use syncline_proto::schema::v1::schema_service_client::SchemaServiceClient;
use syncline_proto::schema::v1::{
    FieldType, GetObjectRequest, ListObjectsRequest, ObjectSchema, ObjectView,
};
use tonic_types::StatusExt;
use tracing::Instrument;

use super::backend::{channel, request};
use super::token::{EmbedScope, TokenError};
use super::view::{self, DraftObject, ModelObject};
use crate::Gateway;

const AUTH_VAULT: &str = "syncline.authvault.v1.AuthVaultService";
const MAPPING: &str = "syncline.mapping.v1.MappingService";
const SCHEMA: &str = "syncline.schema.v1.SchemaService";
/// The most CRM objects the page lists.
const MAX_CRM_OBJECTS: usize = 5_000;

/// A field-level problem, placed next to its field by the page.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct FieldProblem {
    /// The model object (empty for request-level problems).
    pub object: String,
    /// The model field, when there is one.
    pub model_field: String,
    /// The request field path, for violations not tied to a model field.
    pub field: String,
    /// Stable reason (`TYPE_INCOMPATIBLE`, `REQUIRED_UNMAPPED`, `REQUIRED`, ...).
    pub kind: String,
    pub message: String,
}

/// A failed page request.
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
    problems: Vec<FieldProblem>,
}

impl Failure {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            problems: Vec::new(),
        }
    }

    fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "this connection does not exist or is not available here",
        )
    }

    fn invalid(message: &str, problems: Vec<FieldProblem>) -> Self {
        Self {
            problems,
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_MAPPING", message)
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {
            "code": self.code,
            "message": self.message,
            "violations": self.problems,
        }});
        let mut response = (self.status, Json(body)).into_response();
        super::no_store(response.headers_mut());
        response
    }
}

/// The HTTP status and code of a backend's answer.
fn http_of(code: tonic::Code) -> (StatusCode, &'static str) {
    use tonic::Code as C;
    match code {
        C::InvalidArgument | C::OutOfRange => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        C::Unauthenticated => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        C::PermissionDenied => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
        C::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        C::AlreadyExists | C::Aborted => (StatusCode::CONFLICT, "CONFLICT"),
        C::FailedPrecondition => (StatusCode::PRECONDITION_FAILED, "FAILED_PRECONDITION"),
        C::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
        C::Unavailable => (StatusCode::BAD_GATEWAY, "UNAVAILABLE"),
        C::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED"),
        C::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "UNIMPLEMENTED"),
        C::Ok | C::Cancelled | C::Unknown | C::Internal | C::DataLoss => {
            (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL")
        }
    }
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        let (http, code) = http_of(status.code());
        let problems = status
            .get_error_details()
            .bad_request()
            .map(|b| {
                b.field_violations
                    .iter()
                    .map(|v| FieldProblem {
                        object: String::new(),
                        model_field: String::new(),
                        field: v.field.clone(),
                        kind: v.reason.clone(),
                        message: v.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let message = if http == StatusCode::INTERNAL_SERVER_ERROR {
            "something went wrong; please try again".to_owned()
        } else {
            status.message().to_owned()
        };
        Self {
            status: http,
            code,
            message,
            problems,
        }
    }
}

type Answer<T> = Result<Json<T>, Failure>;

/// Verifies the bearer embed token; only embed tokens are accepted here.
fn scope(gateway: &Gateway, headers: &HeaderMap) -> Result<EmbedScope, Failure> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Failure::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "this page needs a link from the application",
            )
        })?;
    gateway.embed_tokens.verify(token).map_err(|e| {
        tracing::info!(reason = %e, "refused an embed api call");
        let message = match e {
            TokenError::Expired => "this link has expired: reopen the page from the application",
            TokenError::Invalid => "this link is not valid: reopen the page from the application",
        };
        Failure::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    })
}

/// Runs one handler body in a span carrying the tenant.
async fn traced<T, F>(
    gateway: Arc<Gateway>,
    headers: &HeaderMap,
    route: &'static str,
    body: impl FnOnce(EmbedScope) -> F,
) -> Answer<T>
where
    F: Future<Output = Result<T, Failure>>,
{
    let span = tracing::info_span!(
        "embed.api",
        http.route = route,
        tenant.id = tracing::field::Empty,
        project.id = tracing::field::Empty,
    );
    async {
        let scope = scope(&gateway, headers)?;
        tracing::Span::current().record("tenant.id", scope.context.tenant_id.as_str());
        tracing::Span::current().record("project.id", scope.context.project_id.as_str());
        // The page's calls count against the tenant's rate limit like its gRPC calls.
        let key = format!("{}/{}", scope.context.project_id, scope.context.tenant_id);
        if gateway.limiter.check(&key).is_err() {
            return Err(Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "too many requests: wait a moment and try again",
            ));
        }
        body(scope).await.map(Json)
    }
    .instrument(span)
    .await
}

fn provider_key(provider: i32) -> &'static str {
    match Provider::try_from(provider) {
        Ok(Provider::Salesforce) => "salesforce",
        Ok(Provider::Hubspot) => "hubspot",
        Ok(Provider::Unspecified) | Err(_) => "unknown",
    }
}

fn status_key(status: i32) -> String {
    ConnectionStatus::try_from(status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("CONNECTION_STATUS_")
                .to_owned()
        })
        .unwrap_or_else(|_| "UNKNOWN".into())
}

/// A connection as the page shows it.
#[derive(Debug, Serialize)]
pub(crate) struct ConnectionView {
    id: String,
    provider: &'static str,
    provider_app_id: String,
    display_name: String,
    status: String,
    status_message: String,
    account: String,
    /// The installation's state (`READY`, `NEEDS_ATTENTION`, ...) for an active connection
    /// in the session's list; empty where it was not looked up or could not be.
    installation_state: String,
}

impl From<&Connection> for ConnectionView {
    fn from(c: &Connection) -> Self {
        Self {
            id: c.id.clone(),
            provider: provider_key(c.provider),
            provider_app_id: c.provider_app_id.clone(),
            display_name: c.display_name.clone(),
            status: status_key(c.status),
            status_message: c.status_message.clone(),
            account: c.external_account_id.clone(),
            installation_state: String::new(),
        }
    }
}

/// The most active connections whose installation state the session looks up (each is a
/// GetInstallation, which re-checks the plan against the current schema).
const MAX_STATE_LOOKUPS: usize = 10;

/// Fills the installation state of the first active connections, so the page can say on its
/// first screen that a saved mapping needs attention. A failed look-up leaves it empty: the
/// connect step must open even when the mapping service cannot answer.
async fn with_installation_states(
    gateway: &Gateway,
    scope: &EmbedScope,
    mut views: Vec<ConnectionView>,
) -> Vec<ConnectionView> {
    let lookups = views
        .iter_mut()
        .filter(|v| v.status == "ACTIVE")
        .take(MAX_STATE_LOOKUPS)
        .map(|view| async move {
            match installation(gateway, scope, &view.id).await {
                Ok(found) => view.installation_state = state_key(&found),
                Err(failure) => {
                    tracing::info!(code = failure.code, "no installation state for the session");
                }
            }
        });
    futures::future::join_all(lookups).await;
    views
}

/// A provider app the admin may connect with.
#[derive(Debug, Serialize)]
pub(crate) struct AppView {
    id: String,
    provider: &'static str,
    display_name: String,
}

/// `GET /embed/api/session`.
#[derive(Debug, Serialize)]
pub(crate) struct Session {
    tenant_id: String,
    connection_id: String,
    expires_at: u64,
    apps: Vec<AppView>,
    connections: Vec<ConnectionView>,
}

pub(crate) async fn session(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Answer<Session> {
    traced(
        gateway.clone(),
        &headers,
        "/embed/api/session",
        |scope| async move {
            let ctx = &scope.context;
            let mut vault = AuthVaultServiceClient::new(channel(&gateway, AUTH_VAULT)?);
            let apps = vault
                .list_provider_apps(request(
                    &gateway,
                    ctx,
                    ListProviderAppsRequest {
                        page_size: 100,
                        ..ListProviderAppsRequest::default()
                    },
                )?)
                .await?
                .into_inner()
                .provider_apps;
            let connections = vault
                .list_connections(request(
                    &gateway,
                    ctx,
                    ListConnectionsRequest {
                        page_size: 100,
                        ..ListConnectionsRequest::default()
                    },
                )?)
                .await?
                .into_inner()
                .connections;
            let views = connections
                .iter()
                .filter(|c| scope.allows(&c.id))
                .filter(|c| {
                    c.status != ConnectionStatus::PendingAuthorization as i32
                        || scope.connection_id.is_some()
                })
                .map(ConnectionView::from)
                .collect();
            Ok(Session {
                tenant_id: ctx.tenant_id.to_string(),
                connection_id: scope.connection_id.clone().unwrap_or_default(),
                expires_at: scope.expires_at,
                apps: apps
                    .iter()
                    .map(|a| AppView {
                        id: a.id.clone(),
                        provider: provider_key(a.provider),
                        display_name: a.display_name.clone(),
                    })
                    .collect(),
                connections: with_installation_states(&gateway, &scope, views).await,
            })
        },
    )
    .await
}

async fn get_connection(
    gateway: &Gateway,
    scope: &EmbedScope,
    id: &str,
) -> Result<Connection, Failure> {
    if !scope.allows(id) {
        return Err(Failure::not_found());
    }
    AuthVaultServiceClient::new(channel(gateway, AUTH_VAULT)?)
        .get_connection(request(
            gateway,
            &scope.context,
            GetConnectionRequest {
                connection_id: id.to_owned(),
            },
        )?)
        .await
        .map_err(|status| match status.code() {
            tonic::Code::NotFound => Failure::not_found(),
            _ => Failure::from(status),
        })?
        .into_inner()
        .connection
        .ok_or_else(Failure::not_found)
}

/// `GET /embed/api/connections/{id}`.
pub(crate) async fn connection(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer<ConnectionView> {
    traced(
        gateway.clone(),
        &headers,
        "/embed/api/connections/{id}",
        |scope| async move {
            get_connection(&gateway, &scope, &id)
                .await
                .map(|c| ConnectionView::from(&c))
        },
    )
    .await
}

/// Body of `POST /embed/api/connect`.
#[derive(Debug, Deserialize)]
pub(crate) struct ConnectBody {
    provider_app_id: String,
    /// Re-authorize this connection (one needing it) instead of creating one.
    #[serde(default)]
    connection_id: String,
}

/// Answer of `POST /embed/api/connect`.
#[derive(Debug, Serialize)]
pub(crate) struct Connecting {
    authorization_url: String,
    connection_id: String,
}

pub(crate) async fn connect(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    Json(body): Json<ConnectBody>,
) -> Answer<Connecting> {
    traced(
        gateway.clone(),
        &headers,
        "/embed/api/connect",
        |scope| async move {
            if body.provider_app_id.is_empty() {
                return Err(Failure::invalid(
                    "choose a CRM to connect",
                    vec![FieldProblem {
                        object: String::new(),
                        model_field: String::new(),
                        field: "provider_app_id".into(),
                        kind: "REQUIRED".into(),
                        message: "choose a CRM to connect".into(),
                    }],
                ));
            }
            let connection_id = match (&scope.connection_id, body.connection_id.as_str()) {
                (Some(only), "") => only.clone(),
                (_, id) if !scope.allows(id) => return Err(Failure::not_found()),
                (_, id) => id.to_owned(),
            };
            let started = AuthVaultServiceClient::new(channel(&gateway, AUTH_VAULT)?)
                .start_authorization(request(
                    &gateway,
                    &scope.context,
                    StartAuthorizationRequest {
                        provider_app_id: body.provider_app_id,
                        connection_id,
                        display_name: String::new(),
                        return_url: format!("{}/embed/connected", gateway.embed.base_url),
                        authorize_url: String::new(),
                    },
                )?)
                .await?
                .into_inner();
            Ok(Connecting {
                authorization_url: started.authorization_url,
                connection_id: started.connection_id,
            })
        },
    )
    .await
}

/// A CRM object in the picker.
#[derive(Debug, Serialize)]
pub(crate) struct CrmObject {
    name: String,
    label: String,
    custom: bool,
}

/// `GET /embed/api/connections/{id}/setup`.
#[derive(Debug, Serialize)]
pub(crate) struct Setup {
    connection: ConnectionView,
    manifest_version: i64,
    installation_state: String,
    plan_version: i64,
    objects: Vec<ModelObject>,
    crm_objects: Vec<CrmObject>,
    /// What drift in the CRM's current schema broke in the saved plan, per model field (the
    /// page shows each next to its field until the mappings are saved again).
    drift: Vec<FieldProblem>,
}

/// The latest manifest (or `version`), parsed.
async fn manifest(
    gateway: &Gateway,
    scope: &EmbedScope,
    version: i64,
) -> Result<(i64, ManifestDoc), Failure> {
    let manifest = MappingServiceClient::new(channel(gateway, MAPPING)?)
        .get_manifest(request(
            gateway,
            &scope.context,
            GetManifestRequest { version },
        )?)
        .await
        .map_err(|status| match status.code() {
            tonic::Code::NotFound => Failure::new(
                StatusCode::PRECONDITION_FAILED,
                "FAILED_PRECONDITION",
                "the application has not published its integration yet",
            ),
            _ => Failure::from(status),
        })?
        .into_inner()
        .manifest
        .ok_or_else(|| Failure::from(tonic::Status::internal("no manifest")))?;
    let doc = syncline_mapping::manifest::validate(&manifest.content)
        .doc
        .ok_or_else(|| Failure::from(tonic::Status::internal("stored manifest does not parse")))?;
    Ok((manifest.version, doc))
}

async fn installation(
    gateway: &Gateway,
    scope: &EmbedScope,
    id: &str,
) -> Result<Installation, Failure> {
    MappingServiceClient::new(channel(gateway, MAPPING)?)
        .get_installation(request(
            gateway,
            &scope.context,
            GetInstallationRequest {
                connection_id: id.to_owned(),
            },
        )?)
        .await?
        .into_inner()
        .installation
        .ok_or_else(|| Failure::from(tonic::Status::internal("no installation")))
}

/// `READY`, `NEEDS_ATTENTION`, `NOT_CONFIGURED`: the page's name of an installation state.
fn state_key(installation: &Installation) -> String {
    installation
        .state()
        .as_str_name()
        .trim_start_matches("INSTALLATION_STATE_")
        .to_owned()
}

fn require_active(
    connection: &Connection,
) -> Result<syncline_mapping::manifest::ProviderName, Failure> {
    if connection.status != ConnectionStatus::Active as i32 {
        return Err(Failure::new(
            StatusCode::PRECONDITION_FAILED,
            "FAILED_PRECONDITION",
            "connect the CRM first: this connection is not active",
        ));
    }
    view::provider_name(connection.provider)
        .ok_or_else(|| Failure::from(tonic::Status::internal("connection without a provider")))
}

pub(crate) async fn setup(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer<Setup> {
    traced(
        gateway.clone(),
        &headers,
        "/embed/api/connections/{id}/setup",
        |scope| async move {
            let connection = get_connection(&gateway, &scope, &id).await?;
            let provider = require_active(&connection)?;
            let installation = installation(&gateway, &scope, &id).await?;
            let (manifest_version, doc) =
                manifest(&gateway, &scope, installation.manifest_version).await?;
            let plan = if installation.plan_version > 0 {
                MappingServiceClient::new(channel(&gateway, MAPPING)?)
                    .get_mapping_plan(request(
                        &gateway,
                        &scope.context,
                        GetMappingPlanRequest {
                            connection_id: id.clone(),
                            plan_version: 0,
                            // The page is where a tenant repairs mappings that drift broke,
                            // so it must see such a plan rather than be refused.
                            include_broken: true,
                        },
                    )?)
                    .await?
                    .into_inner()
                    .plan
            } else {
                None
            };
            let mut crm_objects = Vec::new();
            let mut schema = SchemaServiceClient::new(channel(&gateway, SCHEMA)?);
            let mut page_token = String::new();
            loop {
                let page = schema
                    .list_objects(request(
                        &gateway,
                        &scope.context,
                        ListObjectsRequest {
                            connection_id: id.clone(),
                            page_size: 1000,
                            page_token: page_token.clone(),
                            ..ListObjectsRequest::default()
                        },
                    )?)
                    .await?
                    .into_inner();
                crm_objects.extend(page.objects.into_iter().map(|o: ObjectSchema| CrmObject {
                    name: o.name,
                    label: o.label,
                    custom: o.custom,
                }));
                if page.next_page_token.is_empty() || crm_objects.len() >= MAX_CRM_OBJECTS {
                    break;
                }
                page_token = page.next_page_token;
            }
            crm_objects.sort_by_cached_key(|o| o.label.to_lowercase());
            let drift = plan
                .as_ref()
                .map(|p| p.drift_violations.iter().map(drift_problem).collect())
                .unwrap_or_default();
            Ok(Setup {
                connection: ConnectionView::from(&connection),
                manifest_version,
                installation_state: state_key(&installation),
                plan_version: installation.plan_version,
                objects: view::model_objects(&doc, provider, Some(&installation), plan.as_ref()),
                crm_objects,
                drift,
            })
        },
    )
    .await
}

/// A drift violation of the saved plan as the page places it: next to its model field.
fn drift_problem(v: &FieldMappingViolation) -> FieldProblem {
    FieldProblem {
        object: v.object.clone(),
        model_field: v.model_field.clone(),
        field: v.provider_field.clone(),
        kind: kind_key(v.kind),
        message: v.message.clone(),
    }
}

/// A CRM field in the field pickers.
#[derive(Debug, Serialize)]
pub(crate) struct CrmField {
    name: String,
    label: String,
    #[serde(rename = "type")]
    ty: String,
    native_type: String,
    custom: bool,
    writable: bool,
    required: bool,
    picklist_values: Vec<String>,
}

/// `GET /embed/api/connections/{id}/crm-objects/{name}`.
#[derive(Debug, Serialize)]
pub(crate) struct CrmObjectDetail {
    name: String,
    label: String,
    custom: bool,
    fields: Vec<CrmField>,
}

fn type_key(ty: i32) -> String {
    FieldType::try_from(ty)
        .map(|t| {
            t.as_str_name()
                .trim_start_matches("FIELD_TYPE_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| "other".into())
}

async fn crm_object(
    gateway: &Gateway,
    scope: &EmbedScope,
    id: &str,
    name: &str,
) -> Result<ObjectSchema, Failure> {
    SchemaServiceClient::new(channel(gateway, SCHEMA)?)
        .get_object(request(
            gateway,
            &scope.context,
            GetObjectRequest {
                connection_id: id.to_owned(),
                object_name: name.to_owned(),
                schema_version: 0,
                view: ObjectView::Full as i32,
            },
        )?)
        .await?
        .into_inner()
        .object
        .ok_or_else(|| Failure::from(tonic::Status::not_found("object")))
}

pub(crate) async fn crm_object_detail(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
) -> Answer<CrmObjectDetail> {
    traced(
        gateway.clone(),
        &headers,
        "/embed/api/connections/{id}/crm-objects/{name}",
        |scope| async move {
            get_connection(&gateway, &scope, &id).await?;
            let object = crm_object(&gateway, &scope, &id, &name).await?;
            let mut fields: Vec<CrmField> = object
                .fields
                .iter()
                .map(|f| CrmField {
                    name: f.name.clone(),
                    label: f.label.clone(),
                    ty: type_key(f.r#type),
                    native_type: f.native_type.clone(),
                    custom: f.custom,
                    writable: f.createable || f.updateable,
                    required: !f.nillable && f.default_value.is_none() && f.createable,
                    picklist_values: f
                        .picklist_values
                        .iter()
                        .filter(|v| v.active)
                        .map(|v| v.value.clone())
                        .collect(),
                })
                .collect();
            fields.sort_by_cached_key(|f| f.label.to_lowercase());
            Ok(CrmObjectDetail {
                name: object.name,
                label: object.label,
                custom: object.custom,
                fields,
            })
        },
    )
    .await
}

/// Body of `PUT /embed/api/connections/{id}/objects`.
#[derive(Debug, Deserialize)]
pub(crate) struct ObjectsBody {
    objects: Vec<ObjectChoice>,
}

/// The admin's choice for one model object.
#[derive(Debug, Deserialize)]
pub(crate) struct ObjectChoice {
    object: String,
    enabled: bool,
    provider_object: String,
}

/// Answer of the objects step.
#[derive(Debug, Serialize)]
pub(crate) struct ObjectsSaved {
    installation_state: String,
}

pub(crate) async fn save_objects(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<ObjectsBody>,
) -> Answer<ObjectsSaved> {
    traced(
        gateway.clone(),
        &headers,
        "/embed/api/connections/{id}/objects",
        |scope| async move {
            let connection = get_connection(&gateway, &scope, &id).await?;
            let provider = require_active(&connection)?;
            let current = installation(&gateway, &scope, &id).await?;
            let (_, doc) = manifest(&gateway, &scope, current.manifest_version).await?;
            if !body.objects.iter().any(|o| o.enabled) {
                return Err(Failure::invalid(
                    "choose at least one object to sync",
                    vec![FieldProblem {
                        object: String::new(),
                        model_field: String::new(),
                        field: "objects".into(),
                        kind: "REQUIRED".into(),
                        message: "choose at least one object to sync".into(),
                    }],
                ));
            }
            let mut objects = Vec::new();
            for choice in &body.objects {
                let Some(spec) = doc.objects.get(&choice.object) else {
                    return Err(Failure::invalid(
                        "unknown object",
                        vec![FieldProblem {
                            object: choice.object.clone(),
                            model_field: String::new(),
                            field: "objects".into(),
                            kind: "UNKNOWN".into(),
                            message: "this object is not in the integration".into(),
                        }],
                    ));
                };
                let default = spec.providers.get(&provider).cloned().unwrap_or_default();
                let previous = current.objects.iter().find(|s| s.object == choice.object);
                objects.push(ObjectSelection {
                    object: choice.object.clone(),
                    enabled: choice.enabled,
                    provider_object: if choice.provider_object == default {
                        String::new()
                    } else {
                        choice.provider_object.clone()
                    },
                    // Every optional field stays on: an unmapped one simply does not sync.
                    optional_fields: spec
                        .fields
                        .iter()
                        .filter(|(_, f)| !f.required)
                        .map(|(k, _)| k.clone())
                        .collect(),
                    direction: previous.map_or(0, |p| p.direction),
                    issue: String::new(),
                });
            }
            let updated = MappingServiceClient::new(channel(&gateway, MAPPING)?)
                .update_installation(request(
                    &gateway,
                    &scope.context,
                    UpdateInstallationRequest {
                        installation: Some(Installation {
                            connection_id: id.clone(),
                            objects,
                            ..Installation::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["objects".into()],
                        }),
                    },
                )?)
                .await?
                .into_inner()
                .installation
                .unwrap_or_default();
            Ok(ObjectsSaved {
                installation_state: state_key(&updated),
            })
        },
    )
    .await
}

/// Body of the validate and save calls.
#[derive(Debug, Deserialize)]
pub(crate) struct MappingsBody {
    objects: Vec<DraftObject>,
}

/// Answer of `POST .../validate`.
#[derive(Debug, Serialize)]
pub(crate) struct Checked {
    valid: bool,
    violations: Vec<FieldProblem>,
}

/// Answer of `POST .../mappings`.
#[derive(Debug, Serialize)]
pub(crate) struct Saved {
    plan_version: i64,
    /// The installation's state after the save (`READY` once every enabled object maps).
    installation_state: String,
}

fn kind_key(kind: i32) -> String {
    ViolationKind::try_from(kind)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("VIOLATION_KIND_")
                .to_owned()
        })
        .unwrap_or_else(|_| "INVALID".into())
}

/// Builds the draft's mappings and has the mapping service check them.
async fn check(
    gateway: &Gateway,
    scope: &EmbedScope,
    id: &str,
    body: &MappingsBody,
) -> Result<(Vec<FieldProblem>, view::Built), Failure> {
    let connection = get_connection(gateway, scope, id).await?;
    let provider = require_active(&connection)?;
    let current = installation(gateway, scope, id).await?;
    let (_, doc) = manifest(gateway, scope, current.manifest_version).await?;
    let mut crm_fields = HashMap::new();
    for draft in &body.objects {
        if !draft.provider_object.is_empty() && !crm_fields.contains_key(&draft.provider_object) {
            let fields = match crm_object(gateway, scope, id, &draft.provider_object).await {
                Ok(object) => object.fields,
                Err(failure) if failure.status == StatusCode::NOT_FOUND => Vec::new(),
                Err(failure) => return Err(failure),
            };
            crm_fields.insert(draft.provider_object.clone(), fields);
        }
    }
    let built = view::build(&doc, provider, &body.objects, &crm_fields).map_err(|problems| {
        Failure::invalid(
            "some fields need attention",
            problems
                .into_iter()
                .map(|p| FieldProblem {
                    object: p.object,
                    model_field: p.model_field,
                    field: String::new(),
                    kind: "INVALID".into(),
                    message: p.message,
                })
                .collect(),
        )
    })?;
    let checked = MappingServiceClient::new(channel(gateway, MAPPING)?)
        .validate_field_mappings(request(
            gateway,
            &scope.context,
            ValidateFieldMappingsRequest {
                connection_id: id.to_owned(),
                objects: built.objects.clone(),
            },
        )?)
        .await?
        .into_inner();
    let problems = checked
        .violations
        .iter()
        .map(|v| {
            let index = built
                .objects
                .iter()
                .position(|o| o.object == v.object)
                .and_then(|i| built.model_fields.get(i));
            let model_field = if v.model_field.is_empty() {
                usize::try_from(v.mapping_index)
                    .ok()
                    .and_then(|j| index.and_then(|names| names.get(j)).cloned())
                    .unwrap_or_default()
            } else {
                v.model_field.clone()
            };
            FieldProblem {
                object: v.object.clone(),
                model_field,
                field: v.provider_field.clone(),
                kind: kind_key(v.kind),
                message: v.message.clone(),
            }
        })
        .collect();
    Ok((problems, built))
}

pub(crate) async fn validate(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<MappingsBody>,
) -> Answer<Checked> {
    traced(
        gateway.clone(),
        &headers,
        "/embed/api/connections/{id}/validate",
        |scope| async move {
            let (violations, _) = check(&gateway, &scope, &id, &body).await?;
            Ok(Checked {
                valid: violations.is_empty(),
                violations,
            })
        },
    )
    .await
}

pub(crate) async fn save(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<MappingsBody>,
) -> Answer<Saved> {
    traced(
        gateway.clone(),
        &headers,
        "/embed/api/connections/{id}/mappings",
        |scope| async move {
            let (violations, built) = check(&gateway, &scope, &id, &body).await?;
            if !violations.is_empty() {
                return Err(Failure::invalid("some fields need attention", violations));
            }
            let saved = MappingServiceClient::new(channel(&gateway, MAPPING)?)
                .save_field_mappings(request(
                    &gateway,
                    &scope.context,
                    SaveFieldMappingsRequest {
                        connection_id: id.clone(),
                        objects: built.objects.clone(),
                    },
                )?)
                .await
                .map_err(|status| {
                    let mut failure = Failure::from(status);
                    // `objects[i].fields[j]` back to the model field the page shows.
                    for problem in &mut failure.problems {
                        if let Some((object, field)) = locate(&problem.field, &built) {
                            problem.object = object;
                            problem.model_field = field;
                        }
                    }
                    failure
                })?
                .into_inner();
            tracing::info!(
                connection.id = %id,
                plan_version = saved.plan_version,
                "mappings saved from the embedded page"
            );
            let after = installation(&gateway, &scope, &id).await?;
            Ok(Saved {
                plan_version: saved.plan_version,
                installation_state: state_key(&after),
            })
        },
    )
    .await
}

/// The model object and field behind a `objects[i].fields[j]` violation path.
fn locate(path: &str, built: &view::Built) -> Option<(String, String)> {
    let rest = path.strip_prefix("objects[")?;
    let (i, rest) = rest.split_once(']')?;
    let i: usize = i.parse().ok()?;
    let object = built.objects.get(i)?.object.clone();
    let field = rest
        .strip_prefix(".fields[")
        .and_then(|r| r.split_once(']'))
        .and_then(|(j, _)| j.parse::<usize>().ok())
        .and_then(|j| built.model_fields.get(i)?.get(j).cloned())
        .unwrap_or_default();
    Some((object, field))
}

/// Any other `/embed/api/...` path: a JSON 404 rather than the gRPC proxy's answer.
pub(crate) async fn unknown() -> Failure {
    Failure::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such page api")
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncline_proto::mapping::v1::{FieldMapping, ObjectMapping};

    #[test]
    fn violation_paths_point_back_at_model_fields() {
        let built = view::Built {
            objects: vec![ObjectMapping {
                object: "contact".into(),
                provider_object: "Contact".into(),
                fields: vec![FieldMapping::default(), FieldMapping::default()],
            }],
            model_fields: vec![vec!["email".into(), "tier".into()]],
        };
        assert_eq!(
            locate("objects[0].fields[1]", &built),
            Some(("contact".into(), "tier".into()))
        );
        assert_eq!(
            locate("objects[0].provider_object", &built),
            Some(("contact".into(), String::new()))
        );
        assert_eq!(locate("objects[3].fields[0]", &built), None);
        assert_eq!(locate("connection_id", &built), None);
    }

    #[test]
    fn drift_violations_are_placed_at_their_model_field() {
        let problem = drift_problem(&FieldMappingViolation {
            object: "contact".into(),
            mapping_index: -1,
            model_field: "segment".into(),
            provider_field: "Languages__c".into(),
            kind: ViolationKind::ProviderFieldUnknown as i32,
            message: "inbound: `Languages__c` is not a field of `Contact`".into(),
        });
        assert_eq!(
            (
                problem.object.as_str(),
                problem.model_field.as_str(),
                problem.field.as_str(),
                problem.kind.as_str()
            ),
            (
                "contact",
                "segment",
                "Languages__c",
                "PROVIDER_FIELD_UNKNOWN"
            )
        );
    }

    #[test]
    fn backend_errors_keep_violations_and_hide_internal_messages() {
        let mut details = tonic_types::ErrorDetails::new();
        let mut violation = tonic_types::FieldViolation::new("objects[0].fields[1]", "bad type");
        violation.reason = "TYPE_INCOMPATIBLE".into();
        details.set_bad_request(vec![violation]);
        let status =
            tonic::Status::with_error_details(tonic::Code::InvalidArgument, "invalid", details);
        let failure = Failure::from(status);
        assert_eq!(failure.status, StatusCode::BAD_REQUEST);
        assert_eq!(failure.problems.len(), 1);
        assert_eq!(failure.problems[0].kind, "TYPE_INCOMPATIBLE");
        assert_eq!(failure.problems[0].field, "objects[0].fields[1]");

        let internal = Failure::from(tonic::Status::internal("db password wrong at 10.0.0.3"));
        assert_eq!(internal.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!internal.message.contains("password"));
        assert_eq!(
            Failure::from(tonic::Status::not_found("connection")).status,
            StatusCode::NOT_FOUND
        );
    }
}
