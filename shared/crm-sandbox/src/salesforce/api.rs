//! The data API's front door (version check, bearer auth, faults, quota, `Sforce-Limit-Info`)
//! and the small resources: versions, resource list, limits, query.

use super::errors::SfError;
use super::org::{Org, Shared};
use super::query::{Plan, plan, render_page};
use crate::common::faults::{FaultOutcome, lock};
use crate::common::stats::StatKind;
use axum::Extension;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Lowest and highest API versions served (`v31.0` … `v62.0`).
pub const VERSIONS: std::ops::RangeInclusive<u32> = 31..=62;

/// Marks a `/composite` subrequest dispatched in-process (carries the parent's context).
#[derive(Clone)]
pub struct Subrequest;

/// Per-request context set by [`guard`].
#[derive(Clone)]
pub struct Ctx {
    /// The org of the access token.
    pub org: Arc<Org>,
    /// The version segment as requested (`v59.0`).
    pub version: String,
    shared: Arc<Shared>,
}

impl Ctx {
    /// The data router (for in-process subrequests).
    #[must_use]
    pub fn org_router(&self) -> Option<axum::Router> {
        self.shared.data_router.get().cloned()
    }

    /// Major version number.
    #[must_use]
    pub fn major(&self) -> u32 {
        parse_version(&self.version).unwrap_or(*VERSIONS.end())
    }
}

/// `v59.0` → 59 when served.
#[must_use]
pub fn parse_version(v: &str) -> Option<u32> {
    let n = v.strip_prefix('v')?;
    let (major, minor) = n.split_once('.')?;
    if minor != "0" {
        return None;
    }
    let m: u32 = major.parse().ok()?;
    VERSIONS.contains(&m).then_some(m)
}

fn release_label(major: u32) -> String {
    let idx = major - 31;
    let season = ["Summer", "Winter", "Spring"][(idx % 3) as usize];
    format!("{season} '{:02}", 14 + idx.div_ceil(3))
}

/// JSON with the content type the real API sends.
pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r
}

/// `GET /services/data/`: the served versions (no authentication, like the real API).
pub async fn versions() -> Response {
    let list: Vec<Value> = VERSIONS
        .map(|m| json!({"label": release_label(m), "url": format!("/services/data/v{m}.0"), "version": format!("{m}.0")}))
        .collect();
    json_response(StatusCode::OK, Value::Array(list).to_string())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("OAuth "))
        .map(str::trim)
}

fn limit_header(used: u64, max: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("api-usage={used}/{max}"))
        .unwrap_or_else(|_| HeaderValue::from_static("api-usage=0/0"))
}

/// A forced permanent refusal of `req`: a SOQL query's object is not accessible
/// (`INVALID_TYPE`), anything else does not exist for the user (`NOT_FOUND`).
fn refusal(req: &Request) -> SfError {
    let query = url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.into_owned());
    match query {
        Some(q) => super::query::refused(&q),
        None => SfError::not_found(),
    }
}

/// Middleware for everything under `/services/data/{version}/`.
pub async fn guard(State(s): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let version = req
        .uri()
        .path()
        .trim_start_matches("/services/data/")
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned();
    if parse_version(&version).is_none() {
        return SfError::not_found().into_response();
    }
    if req.extensions().get::<Subrequest>().is_some() {
        // A `/composite` subrequest: authenticated, counted and faulted as part of its parent.
        let parent = req.extensions().get::<Ctx>().cloned();
        return match parent {
            Some(mut ctx) => {
                ctx.version = version;
                req.extensions_mut().insert(ctx);
                next.run(req).await
            }
            None => SfError::invalid_session().into_response(),
        };
    }
    let Some(org) = bearer(req.headers()).and_then(|t| s.org_for_token(t)) else {
        return SfError::invalid_session().into_response();
    };
    org.stats.bump(StatKind::ApiCall);
    let decision = org.faults.decide();
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let (used, max) = match decision.outcome {
        FaultOutcome::Pass => match org.quota.take() {
            Ok(u) => u,
            Err((used, max)) => {
                let mut r = SfError::request_limit_exceeded().into_response();
                r.headers_mut()
                    .insert("sforce-limit-info", limit_header(used, max));
                return r;
            }
        },
        outcome @ (FaultOutcome::ServerError
        | FaultOutcome::RateLimited
        | FaultOutcome::Refused) => {
            org.stats.bump(StatKind::InjectedFault);
            let (used, max) = org.quota.usage();
            let mut r = match outcome {
                FaultOutcome::ServerError => SfError::server_unavailable().into_response(),
                FaultOutcome::Refused => refusal(&req).into_response(),
                FaultOutcome::RateLimited | FaultOutcome::Pass => {
                    SfError::request_limit_exceeded().into_response()
                }
            };
            r.headers_mut()
                .insert("sforce-limit-info", limit_header(used, max));
            return r;
        }
    };
    req.extensions_mut().insert(Ctx {
        org,
        version,
        shared: s.clone(),
    });
    let mut resp = next.run(req).await;
    resp.headers_mut()
        .insert("sforce-limit-info", limit_header(used, max));
    resp
}

/// `GET /services/data/vXX.X/`: the resource directory.
pub async fn resources(Extension(ctx): Extension<Ctx>) -> Response {
    let v = &ctx.version;
    let mut m = serde_json::Map::new();
    for r in ["sobjects", "query", "queryAll", "limits", "composite"] {
        m.insert(r.into(), Value::String(format!("/services/data/{v}/{r}")));
    }
    json_response(StatusCode::OK, Value::Object(m).to_string())
}

/// `GET /services/data/vXX.X/limits`.
pub async fn limits(Extension(ctx): Extension<Ctx>) -> Response {
    let (used, max) = ctx.org.quota.usage();
    let mm = |max: u64, rem: u64| json!({"Max": max, "Remaining": rem});
    let body = json!({
        "ConcurrentAsyncGetReportInstances": mm(200, 200),
        "ConcurrentSyncReportRuns": mm(20, 20),
        "DailyApiRequests": mm(max, max.saturating_sub(used)),
        "DailyAsyncApexExecutions": mm(250_000, 250_000),
        "DailyBulkApiRequests": mm(5000, 5000),
        "DailyDurableGenericStreamingApiEvents": mm(10_000, 10_000),
        "DailyDurableStreamingApiEvents": mm(10_000, 10_000),
        "DailyGenericStreamingApiEvents": mm(10_000, 10_000),
        "DailyStreamingApiEvents": mm(10_000, 10_000),
        "DailyWorkflowEmails": mm(390, 390),
        "DataStorageMB": mm(5, 5),
        "DurableStreamingApiConcurrentClients": mm(20, 20),
        "FileStorageMB": mm(20, 20),
        "HourlyAsyncReportRuns": mm(1200, 1200),
        "HourlyDashboardRefreshes": mm(200, 200),
        "HourlyDashboardResults": mm(5000, 5000),
        "HourlyDashboardStatuses": mm(999_999_999, 999_999_999),
        "HourlyODataCallout": mm(10_000, 10_000),
        "HourlySyncReportRuns": mm(500, 500),
        "HourlyTimeBasedWorkflow": mm(50, 50),
        "MassEmail": mm(10, 10),
        "SingleEmail": mm(15, 15),
        "StreamingApiConcurrentClients": mm(20, 20),
    });
    json_response(StatusCode::OK, body.to_string())
}

/// Batch size from `Sforce-Query-Options: batchSize=N` (200–2000, default 2000).
fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',').find_map(|part| {
                let (k, val) = part.split_once('=')?;
                (k.trim().eq_ignore_ascii_case("batchSize"))
                    .then(|| val.trim().parse::<usize>().ok())
                    .flatten()
            })
        })
        .map_or(2000, |n| n.clamp(200, 2000))
}

async fn run_query(
    ctx: Ctx,
    headers: HeaderMap,
    params: HashMap<String, String>,
    all: bool,
) -> Response {
    let Some(q) = params.get("q").cloned() else {
        return SfError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        )
        .into_response();
    };
    let batch = batch_size(&headers);
    let result = tokio::task::spawn_blocking(move || -> Result<String, SfError> {
        let org = &ctx.org;
        let data = org.read();
        let p: Plan = plan(&q, &data.schema)?;
        let indices = p.execute(&data, &org.meta, all);
        if p.count_only {
            return Ok(format!(
                "{{\"totalSize\":{},\"done\":true,\"records\":[]}}",
                indices.len()
            ));
        }
        let plan = Arc::new(p);
        let indices = Arc::new(indices);
        let locator = (indices.len() > batch)
            .then(|| lock(&org.cursors).open(&org.meta.code, plan.clone(), indices.clone(), batch));
        Ok(render_page(
            &plan,
            &data,
            &org.meta,
            &ctx.version,
            &indices,
            0,
            batch,
            locator.as_deref(),
        ))
    })
    .await;
    match result {
        Ok(Ok(body)) => json_response(StatusCode::OK, body),
        Ok(Err(e)) => e.into_response(),
        Err(_) => SfError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred",
        )
        .into_response(),
    }
}

/// `GET /query?q=`.
pub async fn query(
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    run_query(ctx, headers, p, false).await
}

/// `GET /queryAll?q=`: includes deleted records.
pub async fn query_all(
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    run_query(ctx, headers, p, true).await
}

/// `GET /query/{locator}-{offset}` (and `/queryAll/…`): the next page.
pub async fn query_more(
    Extension(ctx): Extension<Ctx>,
    Path(params): Path<HashMap<String, String>>,
) -> Response {
    let raw = params.get("locator").cloned().unwrap_or_default();
    let invalid = || {
        SfError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        )
        .into_response()
    };
    let Some((locator, offset)) = raw.rsplit_once('-') else {
        return invalid();
    };
    let Ok(offset) = offset.parse::<usize>() else {
        return invalid();
    };
    let locator = locator.to_owned();
    let result = tokio::task::spawn_blocking(move || -> Option<String> {
        let org = &ctx.org;
        let (plan, indices, batch) = lock(&org.cursors).get(&locator)?;
        if offset > indices.len() {
            return None;
        }
        let data = org.read();
        Some(render_page(
            &plan,
            &data,
            &org.meta,
            &ctx.version,
            &indices,
            offset,
            batch,
            Some(&locator),
        ))
    })
    .await;
    match result {
        Ok(Some(body)) => json_response(StatusCode::OK, body),
        _ => invalid(),
    }
}
