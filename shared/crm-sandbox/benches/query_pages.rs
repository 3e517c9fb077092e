//! Query-page throughput of the Salesforce sandbox.
//!
//! Starts an in-process sandbox with `Project__c` records (~1 KB each with all fields
//! selected), then walks `query` + `nextRecordsUrl` pages of 2,000 records with reqwest
//! over loopback, like a sync would, and prints records/s (median of several runs).
//!
//! Run: `cargo bench -p syncline-crm-sandbox --bench query_pages`
//! Knobs (env): `BENCH_RECORDS` (records per run, default 200000), `BENCH_RUNS` (default 5).

use std::time::Instant;
use syncline_crm_sandbox::salesforce::{OrgConfig, SalesforceConfig, SalesforceSandbox};

#[derive(serde::Deserialize)]
struct Page {
    #[serde(rename = "nextRecordsUrl")]
    next_records_url: Option<String>,
    records: Vec<serde::de::IgnoredAny>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run() -> Result<(), BoxError> {
    let records = env_u64("BENCH_RECORDS", 200_000);
    let runs = env_u64("BENCH_RUNS", 5).max(1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let config = SalesforceConfig {
        orgs: vec![OrgConfig {
            counts: vec![("Project__c".into(), records)],
            daily_api_limit: u64::MAX / 2,
            ..OrgConfig::default()
        }],
        ..SalesforceConfig::default()
    };
    let sf = SalesforceSandbox::start(config, listener).await?;
    let token = sf.admin().issue_tokens("demo", None)?.access_token;
    let http = reqwest::Client::new();
    let base = sf.base_url().to_owned();

    let describe: serde_json::Value = http
        .get(format!(
            "{base}/services/data/v59.0/sobjects/Project__c/describe"
        ))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    // The first FIELDS fields of Project__c: ids, stamps, references, picklists, money,
    // numbers, dates, booleans, names and e-mails; about 1 KB of JSON per record.
    let take = env_u64("BENCH_FIELDS", 34) as usize;
    let fields: Vec<String> = describe["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["name"].as_str().map(str::to_owned))
        .take(take)
        .collect();
    let soql = format!(
        "SELECT {} FROM Project__c ORDER BY SystemModstamp ASC",
        fields.join(", ")
    );

    let mut rates = Vec::new();
    let mut bytes_per_record = 0.0;
    for run in 0..=runs {
        let start = Instant::now();
        let mut seen = 0u64;
        let mut bytes = 0u64;
        let mut next: Option<String> = None;
        loop {
            let req = match &next {
                None => http
                    .get(format!("{base}/services/data/v59.0/query"))
                    .query(&[("q", soql.as_str())]),
                Some(u) => http.get(format!("{base}{u}")),
            };
            let body = req
                .bearer_auth(&token)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            bytes += body.len() as u64;
            // A client decoding the page envelope and walking every record (the JSON is fully
            // validated; record contents are skipped rather than mapped to a model).
            let page: Page = serde_json::from_slice(&body)?;
            seen += page.records.len() as u64;
            match page.next_records_url {
                Some(u) => next = Some(u),
                None => break,
            }
        }
        let secs = start.elapsed().as_secs_f64();
        if seen != records {
            return Err(format!("run {run}: read {seen} records, expected {records}").into());
        }
        bytes_per_record = bytes as f64 / seen as f64;
        if run == 0 {
            println!("warm-up: {seen} records in {secs:.2}s");
            continue;
        }
        let rate = seen as f64 / secs;
        println!("run {run}: {seen} records in {secs:.2}s = {rate:.0} records/s");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "fields per record: {}, bytes per record: {bytes_per_record:.0}, page size: 2000",
        fields.len()
    );
    println!(
        "median: {median:.0} records/s ({runs} runs of {records} records, every page decoded with serde_json)"
    );
    sf.shutdown().await;
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}
