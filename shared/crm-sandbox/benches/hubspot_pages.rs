//! List-page throughput of the HubSpot sandbox over loopback (the Salesforce twin is
//! `query_pages`). Run: `cargo bench -p syncline-crm-sandbox --bench hubspot_pages [SECONDS]`.
//! The sandbox must never be a benchmark's bottleneck: list pages of 100 records should
//! serve well over 100k records/s on 2 cores.
//!
//! Prints one line `case: N records in S s = R records/s`.

#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};
use syncline_crm_sandbox::hubspot::{
    DEMO_CLIENT_ID, DEMO_PORTAL_ID, HubSpotConfig, HubSpotSandbox, PortalConfig, RateLimits,
    RecordCounts,
};

/// HubSpot: `GET /crm/v3/objects/contacts?limit=100` walked by `after` cursor, from 8
/// concurrent readers each starting in a different part of a 1,000,000-contact portal.
async fn hubspot_list_pages(duration: Duration) -> (u64, Duration) {
    let portal = PortalConfig {
        portal_id: DEMO_PORTAL_ID,
        counts: RecordCounts {
            contacts: 1_000_000,
            ..RecordCounts::default()
        },
        limits: RateLimits {
            ten_second_max: u64::MAX / 2,
            daily_max: u64::MAX / 2,
            ..RateLimits::default()
        },
        ..PortalConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hs = HubSpotSandbox::start(
        HubSpotConfig {
            portals: vec![portal],
            ..HubSpotConfig::default()
        },
        listener,
    )
    .await
    .expect("start");
    let token = hs
        .admin()
        .issue_tokens(DEMO_CLIENT_ID, DEMO_PORTAL_ID)
        .expect("token")
        .access_token;
    let base = hs.base_url().to_owned();
    let client = reqwest::Client::new();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for reader in 0..8u64 {
        let (client, token, base) = (client.clone(), token.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut after = 1 + reader * 120_000;
            let mut records = 0u64;
            while start.elapsed() < duration {
                let url = format!("{base}/crm/v3/objects/contacts?limit=100&after={after}");
                let page: serde_json::Value = client
                    .get(url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("send")
                    .json()
                    .await
                    .expect("json");
                let results = page["results"].as_array().map_or(0, Vec::len) as u64;
                records += results;
                after = page["paging"]["next"]["after"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(1);
            }
            records
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("reader");
    }
    let elapsed = start.elapsed();
    hs.shutdown().await;
    (total, elapsed)
}

fn report(case: &str, records: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{case}: {records} records in {secs:.2} s = {:.0} records/s",
        records as f64 / secs
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let seconds = std::env::args()
        .filter_map(|a| a.parse::<u64>().ok())
        .next()
        .unwrap_or(5);
    let (records, elapsed) = runtime.block_on(hubspot_list_pages(Duration::from_secs(seconds)));
    report(
        "hubspot list contacts, pages of 100, 8 readers",
        records,
        elapsed,
    );
}
