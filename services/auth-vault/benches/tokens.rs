//! Token fetch latency and a refresh storm, against the Salesforce sandbox on loopback.
//!
//! `cargo bench -p syncline-auth-vault --bench tokens` (add `-- --quick` for 1,000
//! connections and calls). The vault runs in this process on SQLite (a WAL file in a
//! temporary directory), called over gRPC with service credentials like sync-engine does.
//!
//! 1. GetAccessToken with a fresh token: p50/p99 over 10,000 calls at concurrency 1 and
//!    at concurrency 16 (each call signs its internal credential, as real callers do).
//! 2. Refresh storm: 10,000 imported connections (100 tenants) whose tokens all expire
//!    within one minute; the background refresher (1 s interval, 90 s look-ahead, 45 s
//!    jitter, 32 in flight, 250 token requests per second to Salesforce) refreshes them.
//!    Reported: wall time until the last refresh, refreshes that came after their token's
//!    expiry, the peak refresh rate the sandbox saw in any one-second window (its counters
//!    sampled every 100 ms) against the budget, and the sandbox's failed grants.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use sqlx::Row;
use syncline_config::{ServiceName, SynclineConfig};
use syncline_crm_sandbox::salesforce::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SalesforceConfig, SalesforceSandbox,
};
use syncline_domain::{ProjectId, TenantContext, TenantId};
use syncline_proto::authvault::v1::auth_vault_service_client::AuthVaultServiceClient;
use syncline_proto::authvault::v1::token_service_client::TokenServiceClient;
use syncline_proto::authvault::v1::{
    CreateProviderAppRequest, Credentials, GetAccessTokenRequest, ImportCredentialsRequest,
    ProviderApp,
};
use syncline_proto::common::v1::Provider;
use syncline_service_kit::InternalAuth;
use syncline_service_kit::client::ServiceCaller;
use tokio_util::sync::CancellationToken;

const TENANTS: usize = 100;

/// sync-engine's intake, accepting every lifecycle event (the imports publish one each).
#[derive(Clone)]
struct Intake;

#[tonic::async_trait]
impl syncline_proto::sync::v1::intake_service_server::IntakeService for Intake {
    async fn publish_lifecycle_event(
        &self,
        request: tonic::Request<syncline_proto::sync::v1::PublishLifecycleEventRequest>,
    ) -> Result<
        tonic::Response<syncline_proto::sync::v1::PublishLifecycleEventResponse>,
        tonic::Status,
    > {
        Ok(tonic::Response::new(
            syncline_proto::sync::v1::PublishLifecycleEventResponse {
                event: request.into_inner().event,
            },
        ))
    }
}
const BUDGET_RPS: u32 = 250;

fn context(tenant: usize) -> TenantContext {
    TenantContext {
        project_id: ProjectId::parse("bench").unwrap(),
        tenant_id: TenantId::parse(format!("tenant-{tenant}")).unwrap(),
        subject: "bench".into(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn fetch_latencies(
    channel: &tonic::transport::Channel,
    caller: &ServiceCaller,
    targets: &[(usize, String)],
    calls: usize,
    concurrency: usize,
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let mut client = TokenServiceClient::new(channel.clone());
        let caller = caller.clone();
        let targets = targets.to_vec();
        let share = calls / concurrency;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            for i in 0..share {
                let (tenant, id) = &targets[(worker * share + i) % targets.len()];
                let t = Instant::now();
                let request = caller
                    .request(
                        &context(*tenant),
                        GetAccessTokenRequest {
                            connection_id: id.clone(),
                            min_validity: None,
                        },
                    )
                    .unwrap();
                let token = client.get_access_token(request).await.unwrap().into_inner();
                latencies.push(t.elapsed());
                assert!(token.token.is_some());
            }
            latencies
        }));
    }
    let mut all = Vec::with_capacity(calls);
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let wall = started.elapsed();
    all.sort();
    (all, wall)
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let connections: usize = if quick { 1_000 } else { 10_000 };
    let calls: usize = if quick { 1_000 } else { 10_000 };

    let sf = SalesforceSandbox::start(
        SalesforceConfig::default(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();
    let intake = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let intake_url = format!("http://{}", intake.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                syncline_proto::sync::v1::intake_service_server::IntakeServiceServer::new(Intake),
            )
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(intake)),
    );
    let dir = std::env::temp_dir().join(format!("auth-vault-bench-{}", uuid::Uuid::new_v4()));
    let secret = SecretString::from("0123456789abcdef0123456789abcdef-bench".to_owned());
    let mut config = SynclineConfig {
        data_dir: dir.clone(),
        ..SynclineConfig::default()
    };
    config.internal_auth.secret = Some(secret.clone());
    config.auth_vault.listen_addr = "127.0.0.1:0".parse().unwrap();
    config.gateway.backends.sync_engine = intake_url;
    // The refresher stays off until the storm.
    config.auth_vault.refresher.interval_secs = 0;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let (running, first) =
        syncline_auth_vault::start_with_handle(&config, listener, shutdown.clone())
            .await
            .unwrap();
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", running.local_addr()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let caller = ServiceCaller::new(Arc::new(InternalAuth::new(&secret)), "sync-engine");

    // One Salesforce app per tenant's project (the project is shared), then the imports.
    let app = AuthVaultServiceClient::new(channel.clone())
        .create_provider_app(
            caller
                .request(
                    &context(0),
                    CreateProviderAppRequest {
                        provider_app: Some(ProviderApp {
                            provider: Provider::Salesforce as i32,
                            client_id: DEMO_CLIENT_ID.into(),
                            client_secret: DEMO_CLIENT_SECRET.into(),
                            authorize_url: sf.base_url().into(),
                            token_url: sf.base_url().into(),
                            ..ProviderApp::default()
                        }),
                    },
                )
                .unwrap(),
        )
        .await
        .unwrap()
        .into_inner()
        .provider_app
        .unwrap()
        .id;
    let import_started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let per_worker = connections / 16 + usize::from(worker < connections % 16);
        let first_index: usize = (0..worker)
            .map(|w| connections / 16 + usize::from(w < connections % 16))
            .sum();
        let mut client = AuthVaultServiceClient::new(channel.clone());
        let caller = caller.clone();
        let admin = sf.admin();
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(per_worker);
            for i in 0..per_worker {
                let tenant = (first_index + i) % TENANTS;
                let issued = admin.issue_tokens("demo", None).unwrap();
                let request = caller
                    .request(
                        &context(tenant),
                        ImportCredentialsRequest {
                            provider_app_id: app.clone(),
                            credentials: Some(Credentials {
                                access_token: issued.access_token,
                                refresh_token: issued.refresh_token,
                                instance_url: issued.instance_url,
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    )
                    .unwrap();
                let connection = client
                    .import_credentials(request)
                    .await
                    .unwrap()
                    .into_inner()
                    .connection
                    .unwrap();
                ids.push((tenant, connection.id));
            }
            ids
        }));
    }
    let mut targets = Vec::with_capacity(connections);
    for task in tasks {
        targets.extend(task.await.unwrap());
    }
    println!(
        "imported {} connections for {TENANTS} tenants in {:.1} s",
        targets.len(),
        import_started.elapsed().as_secs_f64()
    );

    // Their CONNECTION_AUTHORIZED events are published before anything is measured.
    let mut pending = tokio::time::interval(Duration::from_millis(100));
    while first.pending_lifecycle_events().await.unwrap() > 0 {
        pending.tick().await;
    }
    println!(
        "imports and their lifecycle events published after {:.1} s",
        import_started.elapsed().as_secs_f64()
    );

    // 1. Token fetch with a fresh token.
    let _warm = fetch_latencies(&channel, &caller, &targets, 1_000, 4).await;
    for concurrency in [1, 16] {
        let (latencies, wall) =
            fetch_latencies(&channel, &caller, &targets, calls, concurrency).await;
        println!(
            "GetAccessToken (fresh token, gRPC loopback) concurrency {concurrency:>2}: \
             {} calls, p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs, {:.0} calls/s",
            latencies.len(),
            micros(percentile(&latencies, 0.50)),
            micros(percentile(&latencies, 0.99)),
            micros(*latencies.last().unwrap()),
            latencies.len() as f64 / wall.as_secs_f64()
        );
    }
    let refreshes_before = sf.admin().stats("demo").unwrap().stats.refresh_grants;
    assert_eq!(refreshes_before, 0, "fresh tokens were refreshed");

    // 2. Refresh storm: every token expires within the next minute.
    let db = syncline_storage::Database::open(
        &config.storage,
        &dir,
        ServiceName::AuthVault,
        syncline_auth_vault::MIGRATIONS,
    )
    .await
    .unwrap();
    let storm_start_ms = syncline_storage::now_ms() + 5_000;
    let mut expiry = HashMap::with_capacity(targets.len());
    let mut tx = db.pool().begin().await.unwrap();
    for (i, (_, id)) in targets.iter().enumerate() {
        let expires = storm_start_ms + (i as i64 * 60_000) / targets.len() as i64;
        expiry.insert(id.clone(), expires);
        sqlx::query(
            "UPDATE credentials SET expires_at_ms = $1, obtained_at_ms = $2
             WHERE connection_id = $3",
        )
        .bind(expires)
        .bind(expires - 7_200_000)
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    shutdown.cancel();
    running.stopped().await.unwrap();

    // A vault process with the refresher on, on the same database and key ring.
    let mut storm = config.clone();
    storm.auth_vault.refresher.interval_secs = 1;
    storm.auth_vault.refresher.lookahead_secs = 90;
    storm.auth_vault.refresher.jitter_secs = 45;
    storm.auth_vault.refresher.max_concurrency = 32;
    storm.auth_vault.refresher.salesforce_rps = BUDGET_RPS;
    let stop = CancellationToken::new();
    let sampler_stop = CancellationToken::new();
    let admin = sf.admin();
    let sampler_done = sampler_stop.clone();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                () = sampler_done.cancelled() => break,
                _ = tick.tick() => {
                    let stats = admin.stats("demo").unwrap();
                    samples.push((Instant::now(), stats.stats.refresh_grants));
                }
            }
        }
        samples
    });
    let started = Instant::now();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (second, handle) = syncline_auth_vault::start_with_handle(&storm, listener, stop.clone())
        .await
        .unwrap();
    let total = targets.len() as u64;
    let mut watch = tokio::time::interval(Duration::from_millis(50));
    loop {
        watch.tick().await;
        let stats = handle.refresher_stats();
        if stats.refreshed + stats.failed >= total {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the storm did not finish: {stats:?}"
        );
    }
    let wall = started.elapsed();
    sampler_stop.cancel();
    let samples = sampler.await.unwrap();
    let stats = handle.refresher_stats();
    let sandbox = sf.admin().stats("demo").unwrap();

    let mut late = 0;
    let rows = sqlx::query("SELECT connection_id, obtained_at_ms, token_version FROM credentials")
        .fetch_all(db.pool())
        .await
        .unwrap();
    for row in rows {
        let id: String = row.try_get("connection_id").unwrap();
        let obtained: i64 = row.try_get("obtained_at_ms").unwrap();
        let version: i64 = row.try_get("token_version").unwrap();
        if let Some(expires) = expiry.get(&id)
            && (version < 2 || obtained > *expires)
        {
            late += 1;
        }
    }
    // The sandbox's refresh rate over every span of 1 to 1.2 s between two samples.
    let mut peak = 0.0_f64;
    for (i, (at, count)) in samples.iter().enumerate() {
        for (later_at, later) in &samples[i + 1..] {
            let span = later_at.duration_since(*at);
            if span >= Duration::from_millis(1200) {
                break;
            }
            if span >= Duration::from_secs(1) {
                peak = peak.max((later - count) as f64 / span.as_secs_f64());
            }
        }
    }
    println!(
        "refresh storm: {} connections expiring within 60 s, refreshed {} (failed {}, \
         skipped {}) in {:.1} s wall; {late} refreshed after their expiry; sandbox: {} \
         refresh grants, {} failed grants, peak rate {peak:.0} refreshes/s over any 1 s \
         span (budget {BUDGET_RPS}/s), API usage {}/{}",
        total,
        stats.refreshed,
        stats.failed,
        stats.skipped,
        wall.as_secs_f64(),
        sandbox.stats.refresh_grants,
        sandbox.stats.failed_grants,
        sandbox.api_usage,
        sandbox.api_limit,
    );

    stop.cancel();
    second.stopped().await.unwrap();
    db.close().await;
    sf.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
