//! The control surface: an in-process handle ([`SalesforceAdmin`]) and the same operations
//! over HTTP under `/__admin/`.
//!
//! | route | what |
//! |---|---|
//! | `GET /__admin/orgs`, `POST /__admin/orgs` | list orgs; create one (`OrgConfig` JSON) |
//! | `GET /__admin/apps`, `POST /__admin/apps` | list / register connected apps (`ConnectedApp`) |
//! | `POST /__admin/orgs/{org}/tokens` | mint an access + refresh token for `{client_id?}` without the OAuth dance |
//! | `GET /__admin/orgs/{org}/stats`, `POST …/stats/reset` | grant/refresh/API counters and quota |
//! | `GET|PUT /__admin/orgs/{org}/faults` | `FaultConfig` (latency, 5xx rate, rate-limit rate, seed) |
//! | `POST /__admin/orgs/{org}/faults/force` | `{outcome: "server_error"|"rate_limited"|"refused", count}` |
//! | `POST /__admin/orgs/{org}/sessions/expire` | invalidate all access tokens |
//! | `POST /__admin/orgs/{org}/refresh-tokens/revoke` | revoke all refresh tokens |
//! | `PUT /__admin/orgs/{org}/session-lifetime` | `{secs}` for tokens issued from now on |
//! | `PUT /__admin/orgs/{org}/quota`, `POST …/quota/exhaust` | `{used?, max?}`; use up the daily quota |
//! | `POST /__admin/orgs/{org}/schema/{object}/fields` | add a field `{name, label?, type, picklist?, reference_to?}` |
//! | `PATCH|DELETE /__admin/orgs/{org}/schema/{object}/fields/{field}` | retype `{type}` / remove |
//! | `POST /__admin/orgs/{org}/records/{object}` | create `{fields…}` |
//! | `GET|PATCH|DELETE /__admin/orgs/{org}/records/{object}/{id}` | read / change / delete |
//! | `POST /__admin/orgs/{org}/records/{object}/{id}/purge` | hard-delete a deleted record |
//! | `POST /__admin/orgs/{org}/records/{object}/{id}/late` | `{stamp, fields}`: change it with an earlier `SystemModstamp` (epoch seconds), as a long transaction commits |
//! | `GET /__admin/orgs/{org}/changes?after=N` | the change log after sequence N |

use super::org::{ConnectedApp, DEMO_CLIENT_ID, Org, OrgConfig, RefreshToken, Shared};
use super::schema::{FieldType, Gen, runtime_field};
use super::store::{ChangeEvent, ChangeOrigin, OrgData, record_json};
use super::write::{Presence, index_of};
use crate::common::error::SandboxError;
use crate::common::faults::{FaultConfig, FaultOutcome, lock};
use crate::common::stats::StatsSnapshot;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// In-process control of a running sandbox. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SalesforceAdmin {
    shared: Arc<Shared>,
}

/// Counters and quota of one org.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrgStatsView {
    /// Grant and call counters.
    #[serde(flatten)]
    pub stats: StatsSnapshot,
    /// Daily API requests used.
    pub api_usage: u64,
    /// Daily API request allowance.
    pub api_limit: u64,
}

/// Summary of an org.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrgInfo {
    /// Org name (tenant slug).
    pub name: String,
    /// Org id (`00D…`).
    pub org_id: String,
    /// Data seed.
    pub seed: u64,
    /// The org's integration user id.
    pub user_id: String,
}

/// A freshly minted token pair.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenPair {
    /// Access token (bearer).
    pub access_token: String,
    /// Refresh token.
    pub refresh_token: String,
    /// Instance URL to call.
    pub instance_url: String,
}

/// A field to add at run time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewField {
    /// API name; must end with `__c`.
    pub name: String,
    /// Label (defaults to the name).
    #[serde(default)]
    pub label: Option<String>,
    /// Describe type (`string`, `double`, `picklist`, …).
    #[serde(rename = "type")]
    pub ftype: String,
    /// Picklist values.
    #[serde(default)]
    pub picklist: Vec<String>,
    /// Referenced object for `reference` fields.
    #[serde(default)]
    pub reference_to: Option<String>,
}

/// A change committed late (`POST …/records/{object}/{id}/late`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LateChange {
    /// `SystemModstamp` to give the change (epoch seconds).
    stamp: i64,
    /// Field values.
    fields: Map<String, Value>,
}

fn info(o: &Org) -> OrgInfo {
    OrgInfo {
        name: o.meta.name.clone(),
        org_id: o.meta.org_id.clone(),
        seed: o.meta.seed,
        user_id: o.user_id.clone(),
    }
}

type Validated = (
    Arc<super::schema::ObjectDef>,
    Vec<(String, super::value::Val)>,
);

impl SalesforceAdmin {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn org(&self, name: &str) -> Result<Arc<Org>, SandboxError> {
        self.shared
            .org(name)
            .ok_or_else(|| SandboxError::NotFound(format!("org {name}")))
    }

    /// Orgs on this sandbox.
    #[must_use]
    pub fn orgs(&self) -> Vec<OrgInfo> {
        self.shared.orgs().iter().map(|o| info(o)).collect()
    }

    /// Creates an org.
    pub fn create_org(&self, config: OrgConfig) -> Result<OrgInfo, SandboxError> {
        if config.name.is_empty() {
            return Err(SandboxError::InvalidRequest(
                "org name must not be empty".into(),
            ));
        }
        self.shared
            .add_org(&config)
            .map(|o| info(&o))
            .ok_or_else(|| {
                SandboxError::InvalidRequest(format!("org {} already exists", config.name))
            })
    }

    /// Registers (or replaces) a connected app.
    pub fn register_app(&self, app: ConnectedApp) {
        self.shared
            .apps
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(app.client_id.clone(), app);
    }

    /// Connected apps.
    #[must_use]
    pub fn apps(&self) -> Vec<ConnectedApp> {
        self.shared
            .apps
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Mints an access token and a refresh token for `org` as if `client_id` had completed
    /// the web-server flow (not counted as a grant).
    pub fn issue_tokens(
        &self,
        org: &str,
        client_id: Option<&str>,
    ) -> Result<TokenPair, SandboxError> {
        let o = self.org(org)?;
        let client_id = client_id.unwrap_or(DEMO_CLIENT_ID).to_owned();
        let access = format!(
            "{}!AQadmin{}",
            &o.meta.org_id[..15],
            uuid::Uuid::new_v4().simple()
        );
        let refresh = format!("5Aep861admin{}", uuid::Uuid::new_v4().simple());
        lock(&self.shared.tokens).insert(
            access.clone(),
            super::org::AccessToken {
                org: org.to_owned(),
                client_id: client_id.clone(),
                expires_at: Instant::now() + o.session_lifetime(),
            },
        );
        lock(&self.shared.refresh_tokens).insert(
            refresh.clone(),
            RefreshToken {
                org: org.to_owned(),
                client_id,
                scope: "api refresh_token".into(),
            },
        );
        Ok(TokenPair {
            access_token: access,
            refresh_token: refresh,
            instance_url: self.shared.base_url.clone(),
        })
    }

    /// Counters and quota of an org.
    pub fn stats(&self, org: &str) -> Result<OrgStatsView, SandboxError> {
        let o = self.org(org)?;
        let (api_usage, api_limit) = o.quota.usage();
        Ok(OrgStatsView {
            stats: o.stats.snapshot(),
            api_usage,
            api_limit,
        })
    }

    /// Resets an org's counters.
    pub fn reset_stats(&self, org: &str) -> Result<(), SandboxError> {
        self.org(org)?.stats.reset();
        Ok(())
    }

    /// Sets an org's fault configuration (restarts its seeded sequence).
    pub fn set_faults(&self, org: &str, config: FaultConfig) -> Result<(), SandboxError> {
        self.org(org)?.faults.configure(config);
        Ok(())
    }

    /// An org's fault configuration.
    pub fn faults(&self, org: &str) -> Result<FaultConfig, SandboxError> {
        Ok(self.org(org)?.faults.config())
    }

    /// Makes the next `count` data API calls of an org fail with `outcome`.
    pub fn force_faults(
        &self,
        org: &str,
        outcome: FaultOutcome,
        count: usize,
    ) -> Result<(), SandboxError> {
        self.org(org)?.faults.force_next(outcome, count);
        Ok(())
    }

    /// Invalidates all access tokens of an org; returns how many.
    pub fn expire_sessions(&self, org: &str) -> Result<usize, SandboxError> {
        self.org(org)?;
        Ok(self.shared.expire_sessions(org))
    }

    /// Revokes all refresh tokens of an org; returns how many.
    pub fn revoke_refresh_tokens(&self, org: &str) -> Result<usize, SandboxError> {
        self.org(org)?;
        Ok(self.shared.revoke_refresh_tokens(org))
    }

    /// Sets the session lifetime for tokens issued from now on.
    pub fn set_session_lifetime(&self, org: &str, lifetime: Duration) -> Result<(), SandboxError> {
        self.org(org)?.set_session_lifetime(lifetime);
        Ok(())
    }

    /// Sets the daily quota's usage and/or allowance.
    pub fn set_quota(
        &self,
        org: &str,
        used: Option<u64>,
        max: Option<u64>,
    ) -> Result<(), SandboxError> {
        self.org(org)?.quota.set(used, max);
        Ok(())
    }

    /// Uses up the daily quota: every data call answers 403 `REQUEST_LIMIT_EXCEEDED`.
    pub fn exhaust_quota(&self, org: &str) -> Result<(), SandboxError> {
        let o = self.org(org)?;
        let (_, max) = o.quota.usage();
        o.quota.set(Some(max), None);
        Ok(())
    }

    fn change_schema(
        &self,
        org: &str,
        object: &str,
        f: impl FnOnce(&mut super::schema::ObjectDef) -> Result<(), SandboxError>,
    ) -> Result<(), SandboxError> {
        let o = self.org(org)?;
        let mut data = o.write();
        let def = data
            .schema
            .object(object)
            .ok_or_else(|| SandboxError::NotFound(format!("object {object}")))?;
        let mut def = (**def).clone();
        f(&mut def)?;
        def.reindex();
        data.schema.replace(def);
        drop(data);
        lock(&o.cursors).clear();
        Ok(())
    }

    /// Adds a custom field; existing records read `null` for it.
    pub fn add_field(&self, org: &str, object: &str, field: NewField) -> Result<(), SandboxError> {
        let ftype = FieldType::parse(&field.ftype).ok_or_else(|| {
            SandboxError::InvalidRequest(format!("unknown field type {}", field.ftype))
        })?;
        if !field.name.ends_with("__c")
            || field.name.len() < 4
            || !field
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(SandboxError::InvalidRequest(
                "custom field names must be alphanumeric and end with __c".into(),
            ));
        }
        let label = field
            .label
            .clone()
            .unwrap_or_else(|| field.name.trim_end_matches("__c").replace('_', " "));
        self.change_schema(org, object, |def| {
            if def.field(&field.name).is_some() {
                return Err(SandboxError::InvalidRequest(format!(
                    "field {} already exists",
                    field.name
                )));
            }
            let f = runtime_field(
                &field.name,
                &label,
                ftype,
                &field.picklist,
                field.reference_to.as_deref(),
            );
            // Keep the audit fields last, as describe lists them.
            let at = def
                .fields
                .iter()
                .position(|x| x.name == "OwnerId")
                .unwrap_or(def.fields.len());
            def.fields.insert(at, f);
            Ok(())
        })
    }

    /// Removes a custom field.
    pub fn remove_field(&self, org: &str, object: &str, field: &str) -> Result<(), SandboxError> {
        self.change_schema(org, object, |def| {
            let pos = def
                .fields
                .iter()
                .position(|f| f.name.eq_ignore_ascii_case(field))
                .ok_or_else(|| SandboxError::NotFound(format!("field {field}")))?;
            if !def.fields[pos].custom {
                return Err(SandboxError::InvalidRequest(
                    "only custom fields can be removed".into(),
                ));
            }
            def.fields.remove(pos);
            Ok(())
        })
    }

    /// Changes a custom field's type; values convert where possible, else read `null`.
    pub fn retype_field(
        &self,
        org: &str,
        object: &str,
        field: &str,
        ftype: &str,
    ) -> Result<(), SandboxError> {
        let t = FieldType::parse(ftype)
            .ok_or_else(|| SandboxError::InvalidRequest(format!("unknown field type {ftype}")))?;
        self.change_schema(org, object, |def| {
            let f = def
                .fields
                .iter_mut()
                .find(|f| f.name.eq_ignore_ascii_case(field))
                .ok_or_else(|| SandboxError::NotFound(format!("field {field}")))?;
            if !f.custom {
                return Err(SandboxError::InvalidRequest(
                    "only custom fields can be retyped".into(),
                ));
            }
            let keep = f.generator.clone();
            let mut nf = super::schema::FieldDef::new(&f.name, &f.label, t, keep);
            nf.picklist = f.picklist.clone();
            nf.null_rate = f.null_rate;
            if t != FieldType::Reference {
                nf.generator = match f.generator {
                    Gen::Reference => Gen::Null,
                    ref g => g.clone(),
                };
            }
            *f = nf;
            Ok(())
        })
    }

    fn validate(
        o: &Org,
        object: &str,
        fields: &Map<String, Value>,
        creating: bool,
    ) -> Result<Validated, SandboxError> {
        let data = o.read();
        let obj = data
            .schema
            .object(object)
            .cloned()
            .ok_or_else(|| SandboxError::NotFound(format!("object {object}")))?;
        let values = OrgData::validate(&data.schema, &obj, fields, creating).map_err(|e| {
            SandboxError::InvalidRequest(format!("{}: {}", e.status_code, e.message))
        })?;
        Ok((obj, values))
    }

    /// Creates a record as an org user would (change log origin `admin`); returns its id.
    pub fn create_record(
        &self,
        org: &str,
        object: &str,
        fields: Map<String, Value>,
    ) -> Result<String, SandboxError> {
        let o = self.org(org)?;
        let (obj, values) = Self::validate(&o, object, &fields, true)?;
        let mut data = o.write();
        Ok(data.create(&o.meta, &obj, values, ChangeOrigin::Admin, &o.user_id))
    }

    /// Changes a record (stamps `LastModifiedDate`/`SystemModstamp`).
    pub fn update_record(
        &self,
        org: &str,
        object: &str,
        id: &str,
        fields: Map<String, Value>,
    ) -> Result<(), SandboxError> {
        let o = self.org(org)?;
        let (obj, values) = Self::validate(&o, object, &fields, false)?;
        let index = index_of(&o.meta, &obj, id)
            .ok_or_else(|| SandboxError::NotFound(format!("record {id}")))?;
        let mut data = o.write();
        data.update(
            &o.meta,
            &obj,
            index,
            values,
            ChangeOrigin::Admin,
            &o.user_id,
        )
        .map_err(|e| SandboxError::NotFound(e.message))
    }

    /// Changes a record as a long transaction would: the change becomes visible now but
    /// carries `stamp` (epoch seconds) as `SystemModstamp` and `LastModifiedDate`, possibly
    /// earlier than records already visible (Salesforce stamps a record when the
    /// transaction writes it, not when it commits).
    pub fn update_record_at(
        &self,
        org: &str,
        object: &str,
        id: &str,
        fields: Map<String, Value>,
        stamp: i64,
    ) -> Result<(), SandboxError> {
        let o = self.org(org)?;
        let (obj, values) = Self::validate(&o, object, &fields, false)?;
        let index = index_of(&o.meta, &obj, id)
            .ok_or_else(|| SandboxError::NotFound(format!("record {id}")))?;
        let mut data = o.write();
        data.update(
            &o.meta,
            &obj,
            index,
            values,
            ChangeOrigin::Admin,
            &o.user_id,
        )
        .map_err(|e| SandboxError::NotFound(e.message))?;
        if let Some(rec) = data
            .objects
            .get_mut(&obj.name)
            .and_then(|s| s.live.get_mut(&index))
        {
            for name in ["SystemModstamp", "LastModifiedDate"] {
                rec.insert(name.into(), super::value::Val::DateTime(stamp));
            }
        }
        Ok(())
    }

    /// Deletes a record.
    pub fn delete_record(&self, org: &str, object: &str, id: &str) -> Result<(), SandboxError> {
        let o = self.org(org)?;
        let mut data = o.write();
        let obj = data
            .schema
            .object(object)
            .cloned()
            .ok_or_else(|| SandboxError::NotFound(format!("object {object}")))?;
        let index = index_of(&o.meta, &obj, id)
            .ok_or_else(|| SandboxError::NotFound(format!("record {id}")))?;
        data.delete(&o.meta, &obj, index, ChangeOrigin::Admin, &o.user_id)
            .map_err(|e| SandboxError::NotFound(e.message))
    }

    /// Hard-deletes a deleted record (empties it from the recycle bin): `queryAll` and reads
    /// no longer return it; `/deleted` still lists it.
    pub fn purge_record(&self, org: &str, object: &str, id: &str) -> Result<(), SandboxError> {
        let o = self.org(org)?;
        let mut data = o.write();
        let obj = data
            .schema
            .object(object)
            .cloned()
            .ok_or_else(|| SandboxError::NotFound(format!("object {object}")))?;
        let index = index_of(&o.meta, &obj, id)
            .ok_or_else(|| SandboxError::NotFound(format!("record {id}")))?;
        let deleted = data
            .objects
            .get_mut(&obj.name)
            .and_then(|s| s.deleted.get_mut(&index))
            .filter(|d| !d.purged)
            .ok_or_else(|| SandboxError::NotFound(format!("deleted record {id}")))?;
        deleted.purged = true;
        Ok(())
    }

    /// A record's fields as JSON (deleted records included, with `IsDeleted: true`).
    pub fn get_record(
        &self,
        org: &str,
        object: &str,
        id: &str,
    ) -> Result<Map<String, Value>, SandboxError> {
        let o = self.org(org)?;
        let data = o.read();
        let obj = data
            .schema
            .object(object)
            .cloned()
            .ok_or_else(|| SandboxError::NotFound(format!("object {object}")))?;
        let index = index_of(&o.meta, &obj, id)
            .ok_or_else(|| SandboxError::NotFound(format!("record {id}")))?;
        if data.presence(&obj, index) == Presence::Missing {
            return Err(SandboxError::NotFound(format!("record {id}")));
        }
        let view = data
            .view(&o.meta, &obj, index)
            .ok_or_else(|| SandboxError::NotFound(format!("record {id}")))?;
        Ok(record_json(&view, &obj))
    }

    /// The id of generated record `index` of `object` (handy for tests).
    pub fn record_id(&self, org: &str, object: &str, index: u64) -> Result<String, SandboxError> {
        let o = self.org(org)?;
        let data = o.read();
        let obj = data
            .schema
            .object(object)
            .ok_or_else(|| SandboxError::NotFound(format!("object {object}")))?;
        Ok(super::ids::make_id(&obj.key_prefix, &o.meta.code, index))
    }

    /// The change log after sequence number `after` (0 for all).
    pub fn changes(&self, org: &str, after: u64) -> Result<Vec<ChangeEvent>, SandboxError> {
        let o = self.org(org)?;
        let data = o.read();
        Ok(data
            .changes
            .iter()
            .filter(|c| c.sequence_number > after)
            .cloned()
            .collect())
    }
}

fn err(e: SandboxError) -> Response {
    let status = match e {
        SandboxError::NotFound(_) => StatusCode::NOT_FOUND,
        SandboxError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Json(json!({"error": e.to_string()}))).into_response()
}

fn reply<T: Serialize>(r: Result<T, SandboxError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => err(e),
    }
}

type A = State<SalesforceAdmin>;
type P = Path<HashMap<String, String>>;

fn p(map: &HashMap<String, String>, k: &str) -> String {
    map.get(k).cloned().unwrap_or_default()
}

#[derive(Deserialize)]
struct ForceBody {
    outcome: FaultOutcome,
    #[serde(default = "one")]
    count: usize,
}

fn one() -> usize {
    1
}

#[derive(Deserialize)]
struct QuotaBody {
    used: Option<u64>,
    max: Option<u64>,
}

#[derive(Deserialize)]
struct LifetimeBody {
    secs: u64,
}

#[derive(Deserialize)]
struct RetypeBody {
    #[serde(rename = "type")]
    ftype: String,
}

#[derive(Deserialize, Default)]
struct TokensBody {
    client_id: Option<String>,
}

/// The admin router (mounted at the server root; all routes start with `/__admin/`).
pub fn router(admin: SalesforceAdmin) -> Router {
    Router::new()
        .route(
            "/__admin/orgs",
            get(|State(a): A| async move { Json(a.orgs()) }).post(
                |State(a): A, Json(c): Json<OrgConfig>| async move {
                    match a.create_org(c) {
                        Ok(i) => (StatusCode::CREATED, Json(i)).into_response(),
                        Err(e) => err(e),
                    }
                },
            ),
        )
        .route(
            "/__admin/apps",
            get(|State(a): A| async move { Json(a.apps()) }).post(
                |State(a): A, Json(app): Json<ConnectedApp>| async move {
                    a.register_app(app);
                    StatusCode::CREATED
                },
            ),
        )
        .route(
            "/__admin/orgs/{org}/tokens",
            post(
                |State(a): A, Path(m): P, body: Option<Json<TokensBody>>| async move {
                    let b = body.map(|Json(b)| b).unwrap_or_default();
                    reply(a.issue_tokens(&p(&m, "org"), b.client_id.as_deref()))
                },
            ),
        )
        .route(
            "/__admin/orgs/{org}/stats",
            get(|State(a): A, Path(m): P| async move { reply(a.stats(&p(&m, "org"))) }),
        )
        .route(
            "/__admin/orgs/{org}/stats/reset",
            post(|State(a): A, Path(m): P| async move { reply(a.reset_stats(&p(&m, "org"))) }),
        )
        .route(
            "/__admin/orgs/{org}/faults",
            get(|State(a): A, Path(m): P| async move { reply(a.faults(&p(&m, "org"))) }).put(
                |State(a): A, Path(m): P, Json(c): Json<FaultConfig>| async move {
                    reply(a.set_faults(&p(&m, "org"), c))
                },
            ),
        )
        .route(
            "/__admin/orgs/{org}/faults/force",
            post(
                |State(a): A, Path(m): P, Json(b): Json<ForceBody>| async move {
                    reply(a.force_faults(&p(&m, "org"), b.outcome, b.count))
                },
            ),
        )
        .route(
            "/__admin/orgs/{org}/sessions/expire",
            post(|State(a): A, Path(m): P| async move {
                reply(
                    a.expire_sessions(&p(&m, "org"))
                        .map(|n| json!({"expired": n})),
                )
            }),
        )
        .route(
            "/__admin/orgs/{org}/refresh-tokens/revoke",
            post(|State(a): A, Path(m): P| async move {
                reply(
                    a.revoke_refresh_tokens(&p(&m, "org"))
                        .map(|n| json!({"revoked": n})),
                )
            }),
        )
        .route(
            "/__admin/orgs/{org}/session-lifetime",
            put(
                |State(a): A, Path(m): P, Json(b): Json<LifetimeBody>| async move {
                    reply(a.set_session_lifetime(&p(&m, "org"), Duration::from_secs(b.secs)))
                },
            ),
        )
        .route(
            "/__admin/orgs/{org}/quota",
            put(
                |State(a): A, Path(m): P, Json(b): Json<QuotaBody>| async move {
                    reply(a.set_quota(&p(&m, "org"), b.used, b.max))
                },
            ),
        )
        .route(
            "/__admin/orgs/{org}/quota/exhaust",
            post(|State(a): A, Path(m): P| async move { reply(a.exhaust_quota(&p(&m, "org"))) }),
        )
        .route(
            "/__admin/orgs/{org}/schema/{object}/fields",
            post(
                |State(a): A, Path(m): P, Json(f): Json<NewField>| async move {
                    reply(a.add_field(&p(&m, "org"), &p(&m, "object"), f))
                },
            ),
        )
        .route(
            "/__admin/orgs/{org}/schema/{object}/fields/{field}",
            axum::routing::patch(
                |State(a): A, Path(m): P, Json(b): Json<RetypeBody>| async move {
                    reply(a.retype_field(
                        &p(&m, "org"),
                        &p(&m, "object"),
                        &p(&m, "field"),
                        &b.ftype,
                    ))
                },
            )
            .delete(|State(a): A, Path(m): P| async move {
                reply(a.remove_field(&p(&m, "org"), &p(&m, "object"), &p(&m, "field")))
            }),
        )
        .route(
            "/__admin/orgs/{org}/records/{object}",
            post(
                |State(a): A, Path(m): P, Json(f): Json<Map<String, Value>>| async move {
                    match a.create_record(&p(&m, "org"), &p(&m, "object"), f) {
                        Ok(id) => (StatusCode::CREATED, Json(json!({"id": id}))).into_response(),
                        Err(e) => err(e),
                    }
                },
            ),
        )
        .route(
            "/__admin/orgs/{org}/records/{object}/{id}",
            get(|State(a): A, Path(m): P| async move {
                reply(a.get_record(&p(&m, "org"), &p(&m, "object"), &p(&m, "id")))
            })
            .patch(
                |State(a): A, Path(m): P, Json(f): Json<Map<String, Value>>| async move {
                    reply(a.update_record(&p(&m, "org"), &p(&m, "object"), &p(&m, "id"), f))
                },
            )
            .delete(|State(a): A, Path(m): P| async move {
                reply(a.delete_record(&p(&m, "org"), &p(&m, "object"), &p(&m, "id")))
            }),
        )
        .route(
            "/__admin/orgs/{org}/records/{object}/{id}/late",
            post(
                |State(a): A, Path(m): P, Json(b): Json<LateChange>| async move {
                    reply(a.update_record_at(
                        &p(&m, "org"),
                        &p(&m, "object"),
                        &p(&m, "id"),
                        b.fields,
                        b.stamp,
                    ))
                },
            ),
        )
        .route(
            "/__admin/orgs/{org}/records/{object}/{id}/purge",
            post(|State(a): A, Path(m): P| async move {
                reply(a.purge_record(&p(&m, "org"), &p(&m, "object"), &p(&m, "id")))
            }),
        )
        .route(
            "/__admin/orgs/{org}/changes",
            get(
                |State(a): A, Path(m): P, Query(q): Query<HashMap<String, u64>>| async move {
                    reply(a.changes(&p(&m, "org"), q.get("after").copied().unwrap_or(0)))
                },
            ),
        )
        .with_state(admin)
}
