//! The admin control surface: an in-process [`HubSpotAdmin`] handle and the same operations
//! over HTTP under `/__admin/` (JSON in and out, no authentication: the sandbox is a test
//! double). Record changes made here are logged and sent to webhooks with
//! `changeSource: "CRM"`, as if a user had made them in the HubSpot UI.
//!
//! HTTP routes (prefix `/__admin`):
//!
//! | method and path | body / answer |
//! |---|---|
//! | `GET /portals`, `POST /portals` | ids; `PortalConfig` (`portalId`, `seed`, `counts`, `limits`) |
//! | `POST /apps` | `AppConfig` (`appId`, `clientId`, `clientSecret`, `redirectUris`, `scopes`, `webhooks`) |
//! | `PUT /apps/{clientId}/webhooks` | `WebhookSettings` (`targetUrl`, `subscriptions`, `retry`, …) |
//! | `POST /portals/{id}/tokens` | `{clientId?}` → token pair without the OAuth dance |
//! | `GET /portals/{id}/private-app-token` | `{token}` |
//! | `PUT /portals/{id}/faults` | `FaultConfig` (`latency_ms`, `error_5xx_rate`, `rate_limit_rate`, `seed`, …) |
//! | `POST /portals/{id}/faults/expire-tokens` | expires every access token now |
//! | `POST /portals/{id}/faults/revoke-refresh-tokens` | revokes every refresh token |
//! | `POST /portals/{id}/faults/exhaust-quota` | `{policy: "DAILY" \| "TEN_SECONDLY"}` |
//! | `PUT /portals/{id}/rate-limits` | `RateLimits` (`tenSecondMax`, `dailyMax`, `searchPerSecond`, …) |
//! | `POST /portals/{id}/reset` | clears counters, faults and stats |
//! | `POST /portals/{id}/schema/{objectType}` | `{action: "add"\|"remove"\|"retype", name, type?}` |
//! | `POST /portals/{id}/objects/{objectType}` | `{properties}` → `{id}` |
//! | `PATCH`, `DELETE /portals/{id}/objects/{objectType}/{recordId}` | `{properties, modifiedAt?}` → `{changed}` (`modifiedAt`, epoch ms: a write the search index shows late); archive |
//! | `GET /portals/{id}/changes?since=N` | change log entries after sequence N |
//! | `GET /portals/{id}/stats` | grants, refreshes, failed grants, revocations, API calls, faults, changes |
//! | `GET /deliveries` | webhook delivery attempts |

use super::catalog::iso_ms;
use super::errors::json_of;
use super::oauth::{TokenPair, issue};
use super::objects::{archive_record, create_record, publish, update_record};
use super::properties::{PropertyInput, add_property, remove_property, update_property};
use super::rate_limit::RateLimits;
use super::state::{AppConfig, PortalConfig, Shared, lock, read, write};
use super::store::{ChangeRecord, ChangeSource, now_ms, validate_values};
use super::webhooks::{DeliveryReport, WebhookSettings};
use crate::common::{FaultConfig, FaultOutcome, SandboxError, StatsSnapshot};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Which quota a quota-exhaustion fault uses up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QuotaPolicy {
    /// The daily quota (429 `DAILY` until midnight portal time or a reset).
    Daily,
    /// The rolling 10-second window (429 `TEN_SECONDLY_ROLLING` for up to 10 s).
    TenSecondly,
}

/// A schema change fault.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum SchemaChange {
    /// Add a property (`type`: string, number, date, datetime, enumeration, bool).
    Add {
        /// Name.
        name: String,
        /// Type.
        #[serde(rename = "type")]
        ptype: String,
        /// Label.
        #[serde(default)]
        label: Option<String>,
    },
    /// Remove a property.
    Remove {
        /// Name.
        name: String,
    },
    /// Change a property's type.
    Retype {
        /// Name.
        name: String,
        /// New type.
        #[serde(rename = "type")]
        ptype: String,
    },
}

/// Counters of one portal: common counters plus webhook deliveries.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortalStats {
    /// Grants, refreshes, API calls, injected faults.
    #[serde(flatten)]
    pub counters: StatsSnapshot,
    /// Records in the change log.
    pub changes: u64,
}

/// In-process admin handle of a running sandbox; cheap to clone.
#[derive(Debug, Clone)]
pub struct HubSpotAdmin {
    pub(crate) shared: Arc<Shared>,
}

fn err(e: super::errors::ApiError) -> SandboxError {
    let msg = e
        .body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("invalid request")
        .to_owned();
    if e.status == StatusCode::NOT_FOUND {
        SandboxError::NotFound(msg)
    } else {
        SandboxError::InvalidRequest(msg)
    }
}

impl HubSpotAdmin {
    fn portal(&self, id: u64) -> Result<Arc<super::state::Portal>, SandboxError> {
        self.shared
            .portal(id)
            .ok_or_else(|| SandboxError::NotFound(format!("portal {id}")))
    }

    /// Creates a portal; its data is seeded lazily from `config.seed` and its id.
    pub fn create_portal(&self, config: &PortalConfig) -> Result<u64, SandboxError> {
        if config.portal_id == 0 {
            return Err(SandboxError::InvalidRequest("portalId must be set".into()));
        }
        self.shared
            .add_portal(config)
            .map(|p| p.id)
            .map_err(SandboxError::InvalidRequest)
    }

    /// Ids of all portals.
    #[must_use]
    pub fn portals(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = read(&self.shared.portals).keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Registers (or replaces) an app.
    pub fn register_app(&self, app: AppConfig) -> Result<(), SandboxError> {
        if app.client_id.is_empty() || app.client_secret.is_empty() {
            return Err(SandboxError::InvalidRequest(
                "clientId and clientSecret are required".into(),
            ));
        }
        self.shared.put_app(app);
        Ok(())
    }

    /// Sets an app's webhook target and subscriptions.
    pub fn set_webhooks(
        &self,
        client_id: &str,
        settings: WebhookSettings,
    ) -> Result<(), SandboxError> {
        let mut apps = write(&self.shared.apps);
        let app = apps
            .get_mut(client_id)
            .ok_or_else(|| SandboxError::NotFound(format!("app {client_id}")))?;
        app.webhooks = Some(settings);
        Ok(())
    }

    /// Installs an app on a portal without the OAuth dance (webhooks flow from then on).
    pub fn install_app(&self, client_id: &str, portal_id: u64) -> Result<(), SandboxError> {
        self.portal(portal_id)?;
        let app_id = read(&self.shared.apps)
            .get(client_id)
            .map(|a| a.app_id)
            .ok_or_else(|| SandboxError::NotFound(format!("app {client_id}")))?;
        self.shared.install(app_id, portal_id);
        Ok(())
    }

    /// Issues tokens for an app on a portal without the OAuth dance (installs the app; not
    /// counted as a grant in the stats).
    pub fn issue_tokens(&self, client_id: &str, portal_id: u64) -> Result<TokenPair, SandboxError> {
        self.portal(portal_id)?;
        let app = read(&self.shared.apps)
            .get(client_id)
            .cloned()
            .ok_or_else(|| SandboxError::NotFound(format!("app {client_id}")))?;
        self.shared.install(app.app_id, portal_id);
        Ok(issue(
            &self.shared,
            &app.client_id,
            app.app_id,
            portal_id,
            &app.scopes,
            None,
        ))
    }

    /// The portal's private-app token (its responses carry the daily-limit headers).
    pub fn private_app_token(&self, portal_id: u64) -> Result<String, SandboxError> {
        Ok(self.portal(portal_id)?.private_app_token.clone())
    }

    /// Replaces the portal's fault configuration (latency, 5xx and 429 rates, seed).
    pub fn set_faults(&self, portal_id: u64, config: FaultConfig) -> Result<(), SandboxError> {
        self.portal(portal_id)?.faults.configure(config);
        Ok(())
    }

    /// Makes the portal's next `count` API calls answer `outcome`.
    pub fn force_faults(
        &self,
        portal_id: u64,
        outcome: FaultOutcome,
        count: usize,
    ) -> Result<(), SandboxError> {
        self.portal(portal_id)?.faults.force_next(outcome, count);
        Ok(())
    }

    /// Expires every access token of the portal now (calls get 401 `EXPIRED_AUTHENTICATION`).
    pub fn expire_access_tokens(&self, portal_id: u64) -> Result<usize, SandboxError> {
        self.portal(portal_id)?;
        let now = now_ms();
        let mut auth = lock(&self.shared.auth);
        let mut n = 0;
        for g in auth
            .access
            .values_mut()
            .filter(|g| g.portal_id == portal_id && g.expires_ms > now)
        {
            g.expires_ms = now;
            n += 1;
        }
        Ok(n)
    }

    /// Revokes every refresh token of the portal (refreshes get 400 `BAD_REFRESH_TOKEN`).
    pub fn revoke_refresh_tokens(&self, portal_id: u64) -> Result<usize, SandboxError> {
        let portal = self.portal(portal_id)?;
        let mut auth = lock(&self.shared.auth);
        let mut n = 0;
        for g in auth
            .refresh
            .values_mut()
            .filter(|g| g.portal_id == portal_id && !g.revoked)
        {
            g.revoked = true;
            n += 1;
            portal
                .stats
                .bump(crate::common::stats::StatKind::Revocation);
        }
        Ok(n)
    }

    /// Uses up a quota of the portal.
    pub fn exhaust_quota(&self, portal_id: u64, policy: QuotaPolicy) -> Result<(), SandboxError> {
        let portal = self.portal(portal_id)?;
        let mut limiter = lock(&portal.limiter);
        match policy {
            QuotaPolicy::Daily => limiter.exhaust_daily(),
            QuotaPolicy::TenSecondly => {
                for client in read(&self.shared.apps).keys() {
                    limiter.exhaust_burst(client);
                }
                limiter.exhaust_burst("private-app");
            }
        }
        Ok(())
    }

    /// Sets the portal's rate limits.
    pub fn set_rate_limits(&self, portal_id: u64, limits: RateLimits) -> Result<(), SandboxError> {
        lock(&self.portal(portal_id)?.limiter).set_limits(limits);
        Ok(())
    }

    /// Clears rate-limit counters, fault configuration and statistics of the portal.
    pub fn reset(&self, portal_id: u64) -> Result<(), SandboxError> {
        let portal = self.portal(portal_id)?;
        lock(&portal.limiter).reset();
        portal.faults.configure(FaultConfig {
            seed: portal.seed,
            ..FaultConfig::default()
        });
        portal.stats.reset();
        Ok(())
    }

    /// Applies a schema change to an object type of the portal.
    pub fn change_schema(
        &self,
        portal_id: u64,
        object_type: &str,
        change: &SchemaChange,
    ) -> Result<(), SandboxError> {
        let portal = self.portal(portal_id)?;
        let mut data = write(&portal.data);
        let idx = data
            .type_index(object_type)
            .ok_or_else(|| SandboxError::NotFound(format!("object type {object_type}")))?;
        let store = &mut data.objects[idx];
        let now = now_ms();
        match change {
            SchemaChange::Add { name, ptype, label } => {
                let input = PropertyInput {
                    name: Some(name.clone()),
                    ptype: Some(ptype.clone()),
                    label: label.clone(),
                    ..PropertyInput::default()
                };
                add_property(store, &input, now).map(|_| ()).map_err(err)
            }
            SchemaChange::Remove { name } => remove_property(store, name, now).map_err(err),
            SchemaChange::Retype { name, ptype } => {
                let input = PropertyInput {
                    ptype: Some(ptype.clone()),
                    ..PropertyInput::default()
                };
                update_property(store, name, &input, now)
                    .map(|_| ())
                    .map_err(err)
            }
        }
    }

    fn write_records(
        &self,
        portal_id: u64,
        f: impl FnOnce(
            &mut super::store::PortalData,
        ) -> Result<(Value, Vec<ChangeRecord>), SandboxError>,
    ) -> Result<Value, SandboxError> {
        let portal = self.portal(portal_id)?;
        let (out, changes) = {
            let mut data = write(&portal.data);
            f(&mut data)?
        };
        publish(&self.shared, portal_id, changes);
        Ok(out)
    }

    /// Creates a record as a UI user would; returns its id.
    pub fn create_record(
        &self,
        portal_id: u64,
        object_type: &str,
        properties: &Map<String, Value>,
    ) -> Result<u64, SandboxError> {
        let v = self.write_records(portal_id, |data| {
            let idx = data
                .type_index(object_type)
                .ok_or_else(|| SandboxError::NotFound(format!("object type {object_type}")))?;
            let values = validate_values(&data.objects[idx].def, properties)
                .map_err(|e| err(super::store::invalid_values_error(&e)))?;
            let (id, change) =
                create_record(data, idx, values, ChangeSource::Crm, now_ms()).map_err(err)?;
            Ok((json!(id), vec![change]))
        })?;
        Ok(v.as_u64().unwrap_or_default())
    }

    /// Updates a record as a UI user would; returns whether any value changed.
    pub fn update_record(
        &self,
        portal_id: u64,
        object_type: &str,
        id: u64,
        properties: &Map<String, Value>,
    ) -> Result<bool, SandboxError> {
        let v = self.write_records(portal_id, |data| {
            let idx = data
                .type_index(object_type)
                .ok_or_else(|| SandboxError::NotFound(format!("object type {object_type}")))?;
            let values = validate_values(&data.objects[idx].def, properties)
                .map_err(|e| err(super::store::invalid_values_error(&e)))?;
            let change =
                update_record(data, idx, id, values, ChangeSource::Crm, now_ms()).map_err(err)?;
            Ok((json!(change.is_some()), change.into_iter().collect()))
        })?;
        Ok(v.as_bool().unwrap_or_default())
    }

    /// Updates a record as a write that reaches the search index late: its modified time is
    /// `modified_ms` (in the past, though not before the record's current one), as HubSpot
    /// reports a write that became searchable after records modified later than it.
    pub fn update_record_at(
        &self,
        portal_id: u64,
        object_type: &str,
        id: u64,
        properties: &Map<String, Value>,
        modified_ms: i64,
    ) -> Result<bool, SandboxError> {
        let v = self.write_records(portal_id, |data| {
            let idx = data
                .type_index(object_type)
                .ok_or_else(|| SandboxError::NotFound(format!("object type {object_type}")))?;
            let values = validate_values(&data.objects[idx].def, properties)
                .map_err(|e| err(super::store::invalid_values_error(&e)))?;
            let change = update_record(data, idx, id, values, ChangeSource::Crm, modified_ms)
                .map_err(err)?;
            Ok((json!(change.is_some()), change.into_iter().collect()))
        })?;
        Ok(v.as_bool().unwrap_or_default())
    }

    /// Archives (deletes) a record as a UI user would.
    pub fn archive_record(
        &self,
        portal_id: u64,
        object_type: &str,
        id: u64,
    ) -> Result<(), SandboxError> {
        self.write_records(portal_id, |data| {
            let idx = data
                .type_index(object_type)
                .ok_or_else(|| SandboxError::NotFound(format!("object type {object_type}")))?;
            let change = archive_record(data, idx, id, ChangeSource::Crm, now_ms())
                .ok_or_else(|| SandboxError::NotFound(format!("record {id}")))?;
            Ok((Value::Null, vec![change]))
        })
        .map(|_| ())
    }

    /// The portal's change log after sequence number `since` (0 for all).
    pub fn changes(&self, portal_id: u64, since: u64) -> Result<Vec<ChangeRecord>, SandboxError> {
        let portal = self.portal(portal_id)?;
        let data = read(&portal.data);
        Ok(data
            .changes
            .iter()
            .filter(|c| c.seq > since)
            .cloned()
            .collect())
    }

    /// The portal's counters.
    pub fn stats(&self, portal_id: u64) -> Result<PortalStats, SandboxError> {
        let portal = self.portal(portal_id)?;
        let changes = read(&portal.data).changes.len() as u64;
        Ok(PortalStats {
            counters: portal.stats.snapshot(),
            changes,
        })
    }

    /// Reports of every webhook delivery attempt from now on.
    #[must_use]
    pub fn subscribe_deliveries(&self) -> broadcast::Receiver<DeliveryReport> {
        self.shared.webhooks.subscribe()
    }

    /// Reports of delivery attempts so far.
    #[must_use]
    pub fn deliveries(&self) -> Vec<DeliveryReport> {
        self.shared.webhooks.history()
    }
}

// ---- HTTP ----

fn reply<T: Serialize>(r: Result<T, SandboxError>) -> Response {
    match r {
        Ok(v) => json_of(StatusCode::OK, &v),
        Err(e) => {
            let status = match e {
                SandboxError::NotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            json_of(status, &json!({"error": e.to_string()}))
        }
    }
}

fn admin(shared: &Arc<Shared>) -> HubSpotAdmin {
    HubSpotAdmin {
        shared: Arc::clone(shared),
    }
}

type S = State<Arc<Shared>>;
type Body = axum::Json<Value>;

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, SandboxError> {
    serde_json::from_value(v).map_err(|e| SandboxError::InvalidRequest(e.to_string()))
}

/// Routes under `/__admin`.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/portals",
            get(|State(s): S| async move { reply(Ok::<_, SandboxError>(admin(&s).portals())) })
                .post(|State(s): S, axum::Json(b): Body| async move {
                    reply(parse::<PortalConfig>(b).and_then(|c| admin(&s).create_portal(&c)).map(|id| json!({"portalId": id})))
                }),
        )
        .route(
            "/apps",
            post(|State(s): S, axum::Json(b): Body| async move { reply(parse::<AppConfig>(b).and_then(|a| admin(&s).register_app(a))) }),
        )
        .route(
            "/apps/{client_id}/webhooks",
            axum::routing::put(|State(s): S, Path(c): Path<String>, axum::Json(b): Body| async move {
                reply(parse::<WebhookSettings>(b).and_then(|w| admin(&s).set_webhooks(&c, w)))
            }),
        )
        .route(
            "/portals/{portal}/tokens",
            post(|State(s): S, Path(p): Path<u64>, axum::Json(b): Body| async move {
                let client = b.get("clientId").and_then(Value::as_str).unwrap_or(super::DEMO_CLIENT_ID).to_owned();
                reply(admin(&s).issue_tokens(&client, p))
            }),
        )
        .route(
            "/portals/{portal}/private-app-token",
            get(|State(s): S, Path(p): Path<u64>| async move { reply(admin(&s).private_app_token(p).map(|t| json!({"token": t}))) }),
        )
        .route(
            "/portals/{portal}/faults",
            axum::routing::put(|State(s): S, Path(p): Path<u64>, axum::Json(b): Body| async move {
                reply(parse::<FaultConfig>(b).and_then(|c| admin(&s).set_faults(p, c)))
            }),
        )
        .route(
            "/portals/{portal}/faults/expire-tokens",
            post(|State(s): S, Path(p): Path<u64>| async move { reply(admin(&s).expire_access_tokens(p).map(|n| json!({"expired": n}))) }),
        )
        .route(
            "/portals/{portal}/faults/revoke-refresh-tokens",
            post(|State(s): S, Path(p): Path<u64>| async move { reply(admin(&s).revoke_refresh_tokens(p).map(|n| json!({"revoked": n}))) }),
        )
        .route(
            "/portals/{portal}/faults/exhaust-quota",
            post(|State(s): S, Path(p): Path<u64>, axum::Json(b): Body| async move {
                reply(parse::<QuotaRequest>(b).and_then(|q| admin(&s).exhaust_quota(p, q.policy)))
            }),
        )
        .route(
            "/portals/{portal}/rate-limits",
            axum::routing::put(|State(s): S, Path(p): Path<u64>, axum::Json(b): Body| async move {
                reply(parse::<RateLimits>(b).and_then(|l| admin(&s).set_rate_limits(p, l)))
            }),
        )
        .route("/portals/{portal}/reset", post(|State(s): S, Path(p): Path<u64>| async move { reply(admin(&s).reset(p)) }))
        .route(
            "/portals/{portal}/schema/{object_type}",
            post(|State(s): S, Path((p, t)): Path<(u64, String)>, axum::Json(b): Body| async move {
                reply(parse::<SchemaChange>(b).and_then(|c| admin(&s).change_schema(p, &t, &c)))
            }),
        )
        .route(
            "/portals/{portal}/objects/{object_type}",
            post(|State(s): S, Path((p, t)): Path<(u64, String)>, axum::Json(b): Body| async move {
                reply(props(&b).and_then(|m| admin(&s).create_record(p, &t, &m)).map(|id| json!({"id": id.to_string()})))
            }),
        )
        .route(
            "/portals/{portal}/objects/{object_type}/{id}",
            axum::routing::patch(|State(s): S, Path((p, t, id)): Path<(u64, String, u64)>, axum::Json(b): Body| async move {
                reply(
                    props(&b)
                        .and_then(|m| match b.get("modifiedAt").and_then(Value::as_i64) {
                            Some(at) => admin(&s).update_record_at(p, &t, id, &m, at),
                            None => admin(&s).update_record(p, &t, id, &m),
                        })
                        .map(|c| json!({"changed": c})),
                )
            })
            .delete(|State(s): S, Path((p, t, id)): Path<(u64, String, u64)>| async move { reply(admin(&s).archive_record(p, &t, id)) }),
        )
        .route(
            "/portals/{portal}/changes",
            get(|State(s): S, Path(p): Path<u64>, Query(q): Query<SinceQuery>| async move { reply(admin(&s).changes(p, q.since)) }),
        )
        .route("/portals/{portal}/stats", get(|State(s): S, Path(p): Path<u64>| async move { reply(admin(&s).stats(p)) }))
        .route("/deliveries", get(|State(s): S| async move { reply(Ok::<_, SandboxError>(admin(&s).deliveries())) }))
        .route("/clock", get(|| async { reply(Ok::<_, SandboxError>(json!({"now": iso_ms(now_ms())}))) }))
}

fn props(b: &Value) -> Result<Map<String, Value>, SandboxError> {
    b.get("properties")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| SandboxError::InvalidRequest("body must be {\"properties\": {...}}".into()))
}

#[derive(Debug, Deserialize)]
struct QuotaRequest {
    policy: QuotaPolicy,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SinceQuery {
    since: u64,
}
