//! The proactive refresher: one sweep refreshes every connection expiring within the
//! look-ahead exactly once (counted at the sandboxes), paced per provider, leaves the
//! others alone, isolates a revoked connection, and a second sweep has nothing to do.

use syncline_crm_sandbox::hubspot::DEMO_PORTAL_ID;
use syncline_crm_sandbox::salesforce::OrgConfig;
use syncline_proto::authvault::v1::{Credentials, GetConnectionRequest, ImportCredentialsRequest};
use syncline_proto::common::v1::ConnectionStatus;
use syncline_service_kit::time;

use crate::support::{Harness, quiet_logs};

struct Tokens {
    access: String,
    refresh: String,
    instance: String,
}

async fn import(h: &Harness, tenant: &str, app: &str, tokens: Tokens, expire_ms: i64) -> String {
    h.apps()
        .import_credentials(h.request(
            tenant,
            ImportCredentialsRequest {
                provider_app_id: app.into(),
                credentials: Some(Credentials {
                    access_token: tokens.access,
                    refresh_token: tokens.refresh,
                    instance_url: tokens.instance,
                    access_token_expire_time: Some(time::timestamp(expire_ms)),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .connection
        .unwrap()
        .id
}

fn salesforce(h: &Harness, org: &str) -> Tokens {
    let t = h.sf.admin().issue_tokens(org, None).unwrap();
    Tokens {
        access: t.access_token,
        refresh: t.refresh_token,
        instance: t.instance_url,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn one_sweep_refreshes_each_expiring_connection_exactly_once() {
    let _logs = quiet_logs();
    let h = Harness::start(|config| {
        let r = &mut config.auth_vault.refresher;
        r.interval_secs = 0; // sweeps only when the test asks
        r.lookahead_secs = 600;
        r.jitter_secs = 0;
        r.max_concurrency = 4;
        r.salesforce_rps = 50;
        r.hubspot_rps = 50;
    })
    .await;
    h.sf.admin()
        .create_org(OrgConfig {
            name: "globex".into(),
            ..OrgConfig::default()
        })
        .unwrap();
    let now = syncline_storage::now_ms();
    let soon = now + 5 * 60_000;
    let later = now + 2 * 3_600_000;
    let sf_app = h.salesforce_app("acme").await;
    let hs_app = h.hubspot_app("acme").await;
    let globex_app = h.salesforce_app("globex").await;
    let mut expiring = Vec::new();
    for _ in 0..12 {
        expiring.push(import(&h, "acme", &sf_app, salesforce(&h, "demo"), soon).await);
    }
    let mut fresh = Vec::new();
    for _ in 0..3 {
        fresh.push(import(&h, "acme", &sf_app, salesforce(&h, "demo"), later).await);
    }
    for _ in 0..2 {
        let t =
            h.hs.admin()
                .issue_tokens(
                    syncline_crm_sandbox::hubspot::DEMO_CLIENT_ID,
                    DEMO_PORTAL_ID,
                )
                .unwrap();
        let tokens = Tokens {
            access: t.access_token,
            refresh: t.refresh_token,
            instance: String::new(),
        };
        expiring.push(import(&h, "acme", &hs_app, tokens, soon).await);
    }
    let revoked = import(&h, "globex", &globex_app, salesforce(&h, "globex"), soon).await;
    h.sf.admin().revoke_refresh_tokens("globex").unwrap();

    let started = std::time::Instant::now();
    let report = h
        .vault
        .refresh_sweep(syncline_storage::now_ms())
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(report.candidates, 15, "{report:?}");
    assert_eq!(
        (
            report.refreshed,
            report.failed,
            report.skipped,
            report.not_due
        ),
        (14, 1, 0, 0),
        "{report:?}"
    );
    let sf = h.sf.admin().stats("demo").unwrap().stats;
    assert_eq!((sf.refresh_grants, sf.failed_grants), (12, 0));
    let hs = h.hs.admin().stats(DEMO_PORTAL_ID).unwrap().counters;
    assert_eq!(hs.refresh_grants, 2);
    // Paced: 12 Salesforce refreshes at 50 per second take at least 11 spacings of 20 ms.
    assert!(
        elapsed >= std::time::Duration::from_millis(220),
        "{elapsed:?}"
    );

    // Every expiring connection now holds a new token, served without another refresh;
    // the fresh ones kept theirs.
    for id in &expiring {
        assert_eq!(h.token("acme", id).await.unwrap().version, 2);
    }
    for id in &fresh {
        assert_eq!(h.token("acme", id).await.unwrap().version, 1);
    }
    // Only the revoked connection needs re-authorization.
    let status = h
        .apps()
        .get_connection(h.request(
            "globex",
            GetConnectionRequest {
                connection_id: revoked.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .connection
        .unwrap()
        .status;
    assert_eq!(status, ConnectionStatus::NeedsReauth as i32);

    // A second sweep finds nothing to do.
    let again = h
        .vault
        .refresh_sweep(syncline_storage::now_ms())
        .await
        .unwrap();
    assert_eq!(again, syncline_auth_vault::SweepReport::default());
    assert_eq!(h.sf.admin().stats("demo").unwrap().stats.refresh_grants, 12);
    let stats = h.vault.refresher_stats();
    assert_eq!(
        (
            stats.sweeps,
            stats.refreshed,
            stats.failed,
            stats.skipped,
            stats.in_flight
        ),
        (2, 14, 1, 0, 0)
    );

    // The same progress as OpenTelemetry metrics.
    let exporter = opentelemetry_sdk::metrics::InMemoryMetricExporter::default();
    let meters = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_periodic_exporter(exporter.clone())
        .build();
    h.vault
        .register_refresher_metrics(&opentelemetry::metrics::MeterProvider::meter(
            &meters, "test",
        ));
    meters.force_flush().unwrap();
    let mut observed = std::collections::BTreeMap::new();
    for resource in exporter.get_finished_metrics().unwrap() {
        for scope in resource.scope_metrics() {
            for metric in scope.metrics() {
                use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
                let value = match metric.data() {
                    AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                        sum.data_points().map(|p| p.value()).sum::<u64>()
                    }
                    AggregatedMetrics::U64(MetricData::Gauge(gauge)) => {
                        gauge.data_points().map(|p| p.value()).sum::<u64>()
                    }
                    _ => continue,
                };
                observed.insert(metric.name().to_owned(), value);
            }
        }
    }
    let metric = |name: &str| observed[&format!("syncline.auth_vault.refresher.{name}")];
    assert_eq!(
        (
            metric("sweeps"),
            metric("refreshed"),
            metric("failed"),
            metric("skipped"),
            metric("in_flight")
        ),
        (2, 14, 1, 0, 0),
        "{observed:?}"
    );

    h.stop().await;
}
