//! Backfill throughput and peak memory of a sync run, end to end, against a raw baseline.
//!
//! The parent process starts the Salesforce sandbox and, for each size, creates an org of
//! `Project__c` records (~1 KB of JSON each with the mapped fields), then runs one child
//! process (this binary with `--child`) per measurement so that the child's peak resident
//! memory (`VmHWM`) is the suite's alone: the sandbox, which holds the open query of all
//! records, stays in the parent. The child starts the whole suite in-process (as
//! `syncline_integration_tests::spawn_suite` does, but without the test span receiver,
//! which keeps every span in memory), connects the org through OAuth, deploys a manifest
//! mapping 36 fields, saves the field mappings, starts a BACKFILL run and consumes
//! `StreamChanges` through the gateway concurrently until every record arrived. Then, in
//! the same process and the same database (the sync-engine's SQLite file or PostgreSQL
//! schema, opened as the service opens it), the baseline: the same records, read again from
//! the sandbox (untimed) and upserted in batches of the engine's page size, one multi-row
//! `INSERT … ON CONFLICT DO UPDATE` per transaction (timed); on SQLite twice, into two
//! tables, with anonymous `?` and with numbered `$n` placeholders (which sync-engine uses,
//! and which sqlx binds in time quadratic in the parameters of a statement).
//!
//! Besides the rates it prints each thread group's CPU during the backfill (with a local
//! PostgreSQL, its server processes' too) and the cores they kept busy, and replays the
//! whole log through `StreamChanges` alone afterwards (the stream path with the engine idle:
//! an upper bound for the end-to-end rate).
//!
//! Run: `cargo bench -p syncline-integration-tests --bench backfill`
//! Flags: `--records N` (default 1,000,000; env `BENCH_RECORDS`), `--small N` (the size the
//! peak memory is compared with, default 100,000), `--quick` (20,000 and 2,000),
//! `--runs R` (measurements of the big size, default 1), `--postgres` (or
//! `BENCH_POSTGRES=1`; URL from `BENCH_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). `BENCH_PAGE_SIZE` sets
//! `sync_engine.runs.page_size` (default 500), which the baseline's batches follow;
//! `BENCH_KEEP_PROVIDER_RECORDS=0` turns `sync_engine.runs.keep_provider_records` off.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use syncline_config::{ServiceName, SynclineConfig};
use syncline_crm_sandbox::salesforce::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, OrgConfig, SalesforceConfig, SalesforceSandbox,
};
use syncline_proto::authvault::v1::auth_vault_service_client::AuthVaultServiceClient;
use syncline_proto::authvault::v1::{
    CreateProviderAppRequest, ProviderApp, StartAuthorizationRequest,
};
use syncline_proto::common::v1::Provider;
use syncline_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use syncline_proto::mapping::v1::{
    DeployManifestRequest, FieldMapping, MappingDirection, ObjectMapping, SaveFieldMappingsRequest,
};
use syncline_proto::sync::v1::sync_service_client::SyncServiceClient;
use syncline_proto::sync::v1::{
    GetSyncRunRequest, StartSyncRunRequest, StreamChangesRequest, SyncMode, SyncRun, SyncRunState,
};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, BoxError>;

/// The sandbox object read.
const OBJECT: &str = "Project__c";

/// (model field, `Project__c` field, manifest type): 36 of the object's 46 fields (long
/// texts, most of the site address, one phone, one date-time and the legacy code left out), about 1 KB of JSON per record.
const FIELDS: &[(&str, &str, &str)] = &[
    ("name", "Name", "string"),
    ("account", "Account__c", "string"),
    ("primary_contact", "Primary_Contact__c", "string"),
    ("project_code", "Project_Code__c", "string"),
    ("status", "Status__c", "string"),
    ("priority", "Priority__c", "string"),
    ("phase", "Phase__c", "string"),
    ("region", "Region__c", "string"),
    ("delivery_model", "Delivery_Model__c", "string"),
    ("health", "Health__c", "string"),
    ("budget", "Budget__c", "currency"),
    ("actual_cost", "Actual_Cost__c", "currency"),
    ("forecast_revenue", "Forecast_Revenue__c", "currency"),
    ("margin", "Margin__c", "percent"),
    ("completion", "Completion__c", "percent"),
    ("deal_risk_score", "Deal_Risk_Score__c", "decimal"),
    ("hours_estimated", "Hours_Estimated__c", "decimal"),
    ("hours_logged", "Hours_Logged__c", "decimal"),
    ("team_size", "Team_Size__c", "integer"),
    ("milestones", "Milestones__c", "integer"),
    ("open_issues", "Open_Issues__c", "integer"),
    ("satisfaction", "Satisfaction__c", "decimal"),
    ("start_date", "Start_Date__c", "date"),
    ("end_date", "End_Date__c", "date"),
    ("go_live_date", "Go_Live_Date__c", "date"),
    ("last_review", "Last_Review__c", "datetime"),
    ("is_billable", "Is_Billable__c", "boolean"),
    ("is_strategic", "Is_Strategic__c", "boolean"),
    ("requires_travel", "Requires_Travel__c", "boolean"),
    ("has_subcontractors", "Has_Subcontractors__c", "boolean"),
    ("sponsor_name", "Sponsor_Name__c", "string"),
    ("sponsor_email", "Sponsor_Email__c", "email"),
    ("sponsor_title", "Sponsor_Title__c", "string"),
    ("client_company", "Client_Company__c", "string"),
    ("site_city", "Site_City__c", "string"),
    ("site_country", "Site_Country__c", "string"),
];

fn manifest() -> String {
    let mut m = String::from(
        "format: 1\nname: backfill-bench\nobjects:\n  project:\n    access: [read]\n    \
         providers:\n      salesforce: Project__c\n    fields:\n",
    );
    for (model, _, kind) in FIELDS {
        m.push_str(&format!("      {model}:\n        type: {kind}\n"));
    }
    m
}

/// What the command line asks for.
#[derive(Debug, Clone)]
struct Args {
    records: u64,
    small: u64,
    runs: u32,
    postgres: Option<String>,
    child: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        records: std::env::var("BENCH_RECORDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000),
        small: 100_000,
        runs: 1,
        postgres: None,
        child: false,
    };
    let mut postgres = std::env::var("BENCH_POSTGRES").is_ok_and(|v| v == "1");
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64> {
            it.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .ok_or_else(|| format!("{name} needs a number").into())
        };
        match arg.as_str() {
            "--records" => a.records = number("--records")?,
            "--small" => a.small = number("--small")?,
            "--runs" => a.runs = u32::try_from(number("--runs")?)?.max(1),
            "--quick" => {
                a.records = 20_000;
                a.small = 2_000;
            }
            "--postgres" => postgres = true,
            "--child" => a.child = true,
            _ => {} // `cargo bench` adds `--bench`.
        }
    }
    if postgres {
        a.postgres = Some(
            std::env::var("BENCH_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
        );
    }
    Ok(a)
}

fn main() -> Result<()> {
    let args = args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.child {
        rt.block_on(child::run(args.postgres))
    } else {
        rt.block_on(parent(args))
    }
}

/// One child's figures (`key=value` on its last stdout line).
type Figures = BTreeMap<String, f64>;

async fn parent(args: Args) -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sf = SalesforceSandbox::start(SalesforceConfig::default(), listener).await?;
    let storage = if args.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    eprintln!(
        "backfill bench on {storage}: {} records (x{}), memory compared with {}; load average {}",
        args.records,
        args.runs,
        args.small,
        load_average()
    );
    let mut measured: Vec<(u64, Figures)> = Vec::new();
    let sizes =
        std::iter::once(args.small).chain(std::iter::repeat_n(args.records, args.runs as usize));
    for (i, records) in sizes.enumerate() {
        let org = format!("bench{i}-{}", std::process::id());
        sf.admin().create_org(OrgConfig {
            name: org.clone(),
            counts: vec![(OBJECT.into(), records)],
            daily_api_limit: u64::MAX / 2,
            ..OrgConfig::default()
        })?;
        let token = sf.admin().issue_tokens(&org, None)?.access_token;
        let exe = std::env::current_exe()?;
        let mut command = tokio::process::Command::new(exe);
        command
            .arg("--child")
            .env("BENCH_CHILD_BASE_URL", sf.base_url())
            .env("BENCH_CHILD_ORG", &org)
            .env("BENCH_CHILD_RECORDS", records.to_string())
            .env("BENCH_CHILD_TOKEN", token);
        if args.postgres.is_some() {
            command.arg("--postgres");
        }
        let output = command.output().await?;
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!("child for {records} records failed: {stdout}").into());
        }
        let figures: Figures = stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("RESULT "))
            .ok_or("child printed no RESULT line")?
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
            .collect();
        eprintln!("load average after it: {}", load_average());
        measured.push((records, figures));
    }
    sf.shutdown().await;
    print_table(storage, &measured);
    Ok(())
}

fn get(f: &Figures, key: &str) -> f64 {
    f.get(key).copied().unwrap_or(f64::NAN)
}

fn print_table(storage: &str, measured: &[(u64, Figures)]) {
    println!();
    println!(
        "| records | page size | end to end (records/s) | run start→end (records/s) | baseline upserts, `?` placeholders (records/s) | baseline upserts, `$n` placeholders (records/s) | ratio e2e / best baseline | stream replay alone (records/s) | peak RSS after backfill (MiB) | bytes/record |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (records, f) in measured {
        let rate = |key: &str| *records as f64 / get(f, key);
        let e2e = rate("e2e_secs");
        let anonymous = rate("baseline_anonymous_secs");
        let numbered = rate("baseline_numbered_secs");
        let best = if anonymous.is_nan() {
            numbered
        } else {
            anonymous.max(numbered)
        };
        let show = |v: f64| {
            if v.is_nan() {
                "—".to_owned()
            } else {
                format!("{v:.0}")
            }
        };
        println!(
            "| {records} | {} | {e2e:.0} | {:.0} | {} | {} | {:.2} | {:.0} | {:.0} | {:.0} |",
            get(f, "page_size"),
            rate("run_secs"),
            show(anonymous),
            show(numbered),
            e2e / best,
            rate("replay_secs"),
            get(f, "hwm_kb") / 1024.0,
            get(f, "bytes_per_record"),
        );
    }
    println!(
        "(storage: {storage}; each row is one child process; baselines measured in that same process and database)"
    );
    if let (Some((small_n, small)), Some((big_n, big))) = (measured.first(), measured.get(1)) {
        println!(
            "peak memory: {:.0} MiB at {small_n} records, {:.0} MiB at {big_n} records",
            get(small, "hwm_kb") / 1024.0,
            get(big, "hwm_kb") / 1024.0,
        );
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU seconds (user + system) this process's threads have used so far, by thread name
/// (several threads share a name: tokio's workers, sqlx's SQLite connection threads); the
/// main thread, which runs the bench's consumer, is named `main (consumer)`.
fn cpu_by_thread() -> BTreeMap<String, f64> {
    let main = std::process::id().to_string();
    let mut cpu = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return cpu;
    };
    for task in tasks.flatten() {
        let Some((name, used)) = cpu_of(&task.path()) else {
            continue;
        };
        let name = if task.file_name().to_string_lossy() == main {
            "main (consumer)".to_owned()
        } else {
            name
        };
        *cpu.entry(name).or_insert(0.0) += used;
    }
    cpu
}

/// CPU seconds (user + system) used so far by the processes of this host named `postgres`:
/// the PostgreSQL server's backends and helpers when the bench's database is local (its
/// default). `None` without `/proc`.
fn postgres_server_cpu() -> Option<f64> {
    let mut used = 0.0;
    for process in std::fs::read_dir("/proc").ok()?.flatten() {
        if !process
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if let Some((name, secs)) = cpu_of(&process.path())
            && name == "postgres"
        {
            used += secs;
        }
    }
    Some(used)
}

/// The name and CPU seconds (user + system) so far of the process or thread at `dir`
/// (`/proc/PID` or `/proc/self/task/TID`), from its `stat`.
fn cpu_of(dir: &std::path::Path) -> Option<(String, f64)> {
    let ticks = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let used = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Some((
        stat[open + 1..close].to_owned(),
        (used(11) + used(12)) / ticks,
    ))
}

/// `VmHWM` and `VmRSS` of this process, in KiB.
fn memory_kb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

mod child {
    //! One measurement: the suite, one backfill and its consumer, then the baseline.

    use super::*;

    fn env(name: &str) -> Result<String> {
        std::env::var(name).map_err(|_| format!("{name} is not set").into())
    }

    /// The suite of one measurement, like `spawn_suite` without test telemetry.
    struct Bench {
        suite: syncline::Suite,
        shutdown: CancellationToken,
        data_dir: std::path::PathBuf,
        schema_prefix: String,
        postgres: Option<String>,
        jwt_secret: String,
        project: String,
        tenant: String,
    }

    fn unique() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    impl Bench {
        async fn start(postgres: Option<String>) -> Result<Self> {
            let id = unique();
            let data_dir = std::env::temp_dir().join(format!("syncline-bench-{id}"));
            let schema_prefix = format!("bench{}_", &id[..12]);
            let jwt_secret = format!("{}{}", unique(), unique());
            let mut config = SynclineConfig {
                data_dir: data_dir.clone(),
                ..SynclineConfig::default()
            };
            for service in ServiceName::ALL {
                config.set_listen_addr(service, "127.0.0.1:0".parse()?);
            }
            config.sandbox.enabled = false;
            if let Some(size) = std::env::var("BENCH_PAGE_SIZE")
                .ok()
                .and_then(|v| v.parse().ok())
            {
                config.sync_engine.runs.page_size = size;
            }
            if std::env::var("BENCH_KEEP_PROVIDER_RECORDS").is_ok_and(|v| v == "0") {
                config.sync_engine.runs.keep_provider_records = false;
            }
            config.gateway.jwt.hs256_secret = Some(SecretString::from(jwt_secret.clone()));
            if let Some(url) = &postgres {
                config.storage.database_url = Some(SecretString::from(url.clone()));
                config.storage.schema_prefix = schema_prefix.clone();
            }
            config.validate()?;
            let shutdown = CancellationToken::new();
            let suite = syncline::start_suite(config, shutdown.clone()).await?;
            Ok(Self {
                suite,
                shutdown,
                data_dir,
                schema_prefix,
                postgres,
                jwt_secret,
                project: format!("proj-{}", &unique()[..12]),
                tenant: format!("tenant-{}", &unique()[..12]),
            })
        }

        fn gateway(&self) -> Result<Channel> {
            Ok(Channel::from_shared(self.suite.gateway_url())?.connect_lazy())
        }

        fn request<T>(&self, message: T) -> Result<tonic::Request<T>> {
            let token = syncline_test_support::tokens::sign(
                &syncline_test_support::tokens::claims(&self.project, &self.tenant),
                &self.jwt_secret,
            );
            let mut request = tonic::Request::new(message);
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse()?);
            Ok(request)
        }

        async fn stop(self) -> Result<()> {
            self.shutdown.cancel();
            let failures = self.suite.stopped().await;
            if !failures.is_empty() {
                return Err(format!("services failed: {failures:?}").into());
            }
            let _ = std::fs::remove_dir_all(&self.data_dir);
            if let Some(url) = &self.postgres {
                syncline_storage::drop_schemas(url, &self.schema_prefix).await?;
            }
            Ok(())
        }

        /// Connects the sandbox org through OAuth, deploys the manifest and maps every field.
        async fn connect(&self, base_url: &str, org: &str) -> Result<String> {
            let app = AuthVaultServiceClient::new(self.gateway()?)
                .create_provider_app(self.request(CreateProviderAppRequest {
                    provider_app: Some(ProviderApp {
                        provider: Provider::Salesforce as i32,
                        display_name: "Salesforce".into(),
                        client_id: DEMO_CLIENT_ID.into(),
                        client_secret: DEMO_CLIENT_SECRET.into(),
                        scopes: vec!["api".into(), "refresh_token".into()],
                        authorize_url: base_url.into(),
                        token_url: base_url.into(),
                        ..ProviderApp::default()
                    }),
                })?)
                .await?
                .into_inner()
                .provider_app
                .ok_or("no provider app")?;
            let started = AuthVaultServiceClient::new(self.gateway()?)
                .start_authorization(self.request(StartAuthorizationRequest {
                    provider_app_id: app.id,
                    display_name: "CRM".into(),
                    ..Default::default()
                })?)
                .await?
                .into_inner();
            let browser = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?;
            let url = format!("{}&org={org}", started.authorization_url);
            let response = browser.get(&url).send().await?;
            let callback = response
                .headers()
                .get("location")
                .ok_or("the sandbox did not redirect")?
                .to_str()?
                .to_owned();
            browser.get(&callback).send().await?.error_for_status()?;
            let mut mapping = MappingServiceClient::new(self.gateway()?);
            mapping
                .deploy_manifest(self.request(DeployManifestRequest {
                    content: manifest(),
                    description: String::new(),
                })?)
                .await?;
            let fields = FIELDS
                .iter()
                .map(|(model, provider, _)| FieldMapping {
                    model_fields: vec![(*model).into()],
                    provider_fields: vec![(*provider).into()],
                    direction: MappingDirection::Inbound as i32,
                    ..FieldMapping::default()
                })
                .collect();
            mapping
                .save_field_mappings(self.request(SaveFieldMappingsRequest {
                    connection_id: started.connection_id.clone(),
                    objects: vec![ObjectMapping {
                        object: "project".into(),
                        provider_object: OBJECT.into(),
                        fields,
                    }],
                })?)
                .await?;
            Ok(started.connection_id)
        }

        async fn get_run(&self, id: &str) -> Result<SyncRun> {
            Ok(SyncServiceClient::new(self.gateway()?)
                .get_sync_run(self.request(GetSyncRunRequest {
                    sync_run_id: id.into(),
                })?)
                .await?
                .into_inner()
                .sync_run
                .ok_or("no run")?)
        }
    }

    /// What the consumer saw.
    struct Consumed {
        /// When each tenth of the records had arrived, from the consumer's start.
        tenths: Vec<Duration>,
        total: Duration,
    }

    /// Reads the tenant's changes through the gateway until `count` arrived, reconnecting
    /// after the last sequence when the gateway's deadline ends a stream.
    async fn consume(bench: &Bench, count: u64, started: Instant) -> Result<Consumed> {
        let mut seen = 0_u64;
        let mut after = 0_u64;
        let mut tenths = Vec::new();
        while seen < count {
            let mut request = bench.request(StreamChangesRequest {
                after_sequence: after,
                max_batch_size: 1000,
                ..StreamChangesRequest::default()
            })?;
            request.set_timeout(Duration::from_secs(300));
            let mut stream = SyncServiceClient::new(bench.gateway()?)
                .max_decoding_message_size(64 << 20)
                .stream_changes(request)
                .await?
                .into_inner();
            loop {
                match stream.next().await {
                    Some(Ok(message)) => {
                        for change in &message.changes {
                            if change.sequence <= after {
                                return Err("a change arrived out of order".into());
                            }
                            after = change.sequence;
                        }
                        seen += message.changes.len() as u64;
                        while (tenths.len() as u64 + 1) * count / 10 <= seen && tenths.len() < 10 {
                            tenths.push(started.elapsed());
                        }
                        if seen >= count {
                            break;
                        }
                    }
                    Some(Err(status)) if status.code() == tonic::Code::DeadlineExceeded => break,
                    Some(Err(status)) => return Err(status.into()),
                    None => break,
                }
            }
        }
        if seen != count {
            return Err(format!("{seen} changes for {count} records").into());
        }
        Ok(Consumed {
            tenths,
            total: started.elapsed(),
        })
    }

    fn secs(t: Option<&prost_types::Timestamp>) -> f64 {
        t.map_or(f64::NAN, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
    }

    pub(super) async fn run(postgres: Option<String>) -> Result<()> {
        let base_url = env("BENCH_CHILD_BASE_URL")?;
        let org = env("BENCH_CHILD_ORG")?;
        let records: u64 = env("BENCH_CHILD_RECORDS")?.parse()?;
        let token = env("BENCH_CHILD_TOKEN")?;
        // Only a server on this host can be watched through /proc.
        let local_server = postgres
            .as_deref()
            .is_some_and(|url| url.contains("@127.0.0.1") || url.contains("@localhost"));
        let bench = Bench::start(postgres).await?;
        let connection = bench.connect(&base_url, &org).await?;
        let (hwm_before, _) = memory_kb();

        let cpu_before = cpu_by_thread();
        let server_before = local_server.then(postgres_server_cpu).flatten();
        let started = Instant::now();
        let consumer = consume(&bench, records, started);
        let start_run = async {
            let run = SyncServiceClient::new(bench.gateway()?)
                .start_sync_run(bench.request(StartSyncRunRequest {
                    connection_id: connection.clone(),
                    mode: SyncMode::Backfill as i32,
                    objects: Vec::new(),
                })?)
                .await?
                .into_inner()
                .sync_run
                .ok_or("no run")?;
            Ok::<_, BoxError>(run)
        };
        let (consumed, run) = tokio::join!(consumer, start_run);
        let (consumed, run) = (consumed?, run?);
        let wall = started.elapsed().as_secs_f64();
        let mut total = 0.0;
        let mut cpu: Vec<String> = cpu_by_thread()
            .into_iter()
            .map(|(name, after)| {
                let used = after - cpu_before.get(&name).copied().unwrap_or(0.0);
                total += used;
                format!(
                    "{name} {used:.1} s ({:.0} µs/record)",
                    used * 1e6 / records as f64
                )
            })
            .collect();
        if let (Some(before), Some(after)) = (server_before, postgres_server_cpu()) {
            let used = after - before;
            total += used;
            cpu.push(format!(
                "PostgreSQL server processes {used:.1} s ({:.0} µs/record)",
                used * 1e6 / records as f64
            ));
        }
        // The sandbox (the parent process) is not counted.
        eprintln!(
            "child: CPU from StartSyncRun to the last change, by thread: {}; {:.2} of the \
             host's cores busy on average",
            cpu.join(", "),
            total / wall
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        let run = loop {
            let current = bench.get_run(&run.id).await?;
            if current.state == SyncRunState::Succeeded as i32 {
                break current;
            }
            if Instant::now() > deadline {
                return Err(format!("run did not succeed: {current:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (hwm, rss) = memory_kb();
        let stats = run.stats.unwrap_or_default();
        // Every seeded value fits its mapping: a failing record would time the dead-letter
        // path instead of the one measured here.
        if stats.records_read != records as i64
            || stats.changes_published != records as i64
            || stats.records_failed != 0
        {
            return Err(format!("run stats {stats:?} for {records} records").into());
        }
        let run_secs = secs(run.end_time.as_ref()) - secs(run.start_time.as_ref());
        let e2e = consumed.total.as_secs_f64();
        let tenths: Vec<String> = consumed
            .tenths
            .iter()
            .scan(Duration::ZERO, |last, t| {
                let part = *t - *last;
                *last = *t;
                // Tenths that arrived in one message (a small run) have no rate of their own.
                Some(if part < Duration::from_millis(1) {
                    "-".to_owned()
                } else {
                    format!("{:.0}", records as f64 / 10.0 / part.as_secs_f64())
                })
            })
            .collect();
        eprintln!(
            "child: {records} records: end to end {e2e:.2}s ({:.0}/s), run {run_secs:.2}s, \
             {} provider calls; records/s per tenth: {}; VmHWM {:.0} MiB (before the run {:.0}), VmRSS {:.0} MiB",
            records as f64 / e2e,
            stats.provider_calls,
            tenths.join(" "),
            hwm / 1024.0,
            hwm_before / 1024.0,
            rss / 1024.0
        );

        // The stream path alone, nothing else running: every change again from sequence 0
        // (the log read, decode and encode in sync-engine, the gateway, the consumer's
        // decode) — the most the end-to-end rate could be with a free engine.
        let replayed = consume(&bench, records, Instant::now()).await?.total;
        eprintln!(
            "child: replay of the {records} changes through StreamChanges alone: {:.2}s ({:.0}/s)",
            replayed.as_secs_f64(),
            records as f64 / replayed.as_secs_f64()
        );

        let page_size = bench.suite.config().sync_engine.runs.page_size;
        let (timed, bytes) = baseline::run(&bench, &base_url, &token, records, page_size).await?;
        let mut result = format!(
            "RESULT e2e_secs={e2e} run_secs={run_secs} hwm_kb={hwm} rss_kb={rss} \
             hwm_before_kb={hwm_before} bytes_per_record={bytes} page_size={page_size} \
             replay_secs={}",
            replayed.as_secs_f64()
        );
        for (variant, secs) in &timed {
            let style = if variant.numbered {
                "numbered"
            } else {
                "anonymous"
            };
            eprintln!(
                "child: baseline {records} upserts in batches of {page_size} ({style} placeholders): {secs:.2}s ({:.0}/s), {bytes:.0} bytes/row",
                records as f64 / secs
            );
            result.push_str(&format!(" baseline_{style}_secs={secs}"));
        }
        bench.stop().await?;
        println!("{result}");
        Ok(())
    }

    mod baseline {
        //! The raw baseline: the same records upserted into the same database.

        use super::*;
        use sqlx::Acquire;
        use syncline_storage::Backend;

        /// One way of writing the rows: its table and whether placeholders are numbered
        /// (`$1`, as sync-engine writes them on both engines) or anonymous (`?`, SQLite only).
        pub(super) struct Variant {
            pub(super) table: &'static str,
            pub(super) numbered: bool,
        }

        /// The variants measured: on SQLite both placeholder styles (sqlx looks up the
        /// name of every parameter, which SQLite finds by a linear scan when they are
        /// numbered), on PostgreSQL its only one.
        pub(super) fn variants(backend: Backend) -> Vec<Variant> {
            match backend {
                Backend::Postgres => vec![Variant {
                    table: "bench_baseline_rows",
                    numbered: true,
                }],
                _ => vec![
                    Variant {
                        table: "bench_baseline_rows",
                        numbered: false,
                    },
                    Variant {
                        table: "bench_baseline_numbered",
                        numbered: true,
                    },
                ],
            }
        }

        /// Reads every record of the org again (untimed) and upserts them in batches of
        /// `page_size`, each batch one statement in one transaction (timed), once per
        /// variant into its own table. Returns the seconds spent in the database per variant
        /// and the mean row size.
        pub(super) async fn run(
            bench: &Bench,
            base_url: &str,
            token: &str,
            records: u64,
            page_size: u32,
        ) -> Result<(Vec<(Variant, f64)>, f64)> {
            let config = bench.suite.config();
            let database = syncline_storage::Database::open(
                &config.storage,
                &config.data_dir,
                ServiceName::SyncEngine,
                syncline_sync_engine::MIGRATIONS,
            )
            .await?;
            let pool = database.pool();
            let variants = variants(database.backend());
            for variant in &variants {
                let create = format!(
                    "CREATE TABLE {} (id TEXT NOT NULL PRIMARY KEY, \
                     body TEXT NOT NULL, modified_ms BIGINT NOT NULL)",
                    variant.table
                );
                sqlx::raw_sql(sqlx::AssertSqlSafe(create))
                    .execute(pool)
                    .await?;
            }
            let page_size = page_size as usize;
            let http = reqwest::Client::new();
            let select: Vec<&str> = ["Id", "SystemModstamp", "IsDeleted"]
                .into_iter()
                .chain(FIELDS.iter().map(|f| f.1))
                .collect();
            let soql = format!(
                "SELECT {} FROM {OBJECT} ORDER BY SystemModstamp ASC, Id ASC",
                select.join(", ")
            );
            let mut next: Option<String> = None;
            let mut pending: Vec<(String, String)> = Vec::new();
            let mut in_db = vec![Duration::ZERO; variants.len()];
            let mut written = 0_u64;
            let mut bytes = 0_u64;
            let mut conn = pool.acquire().await?;
            loop {
                let req = match &next {
                    None => http
                        .get(format!("{base_url}/services/data/v59.0/queryAll"))
                        .query(&[("q", soql.as_str())]),
                    Some(u) => http.get(format!("{base_url}{u}")),
                };
                let page: serde_json::Value = req
                    .bearer_auth(token)
                    .header("Sforce-Query-Options", "batchSize=2000")
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                for record in page["records"].as_array().into_iter().flatten() {
                    let mut record = record.clone();
                    if let Some(o) = record.as_object_mut() {
                        o.remove("attributes");
                    }
                    let id = record["Id"].as_str().ok_or("record without Id")?.to_owned();
                    let body = record.to_string();
                    bytes += body.len() as u64;
                    pending.push((id, body));
                }
                next = page["nextRecordsUrl"].as_str().map(str::to_owned);
                while pending.len() >= page_size || (next.is_none() && !pending.is_empty()) {
                    let batch: Vec<_> = pending.drain(..pending.len().min(page_size)).collect();
                    for (variant, spent) in variants.iter().zip(in_db.iter_mut()) {
                        let statement = upsert(variant, batch.len());
                        let started = Instant::now();
                        let now = syncline_storage::now_ms();
                        let mut tx = conn.begin().await?;
                        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
                        for (id, body) in batch.iter() {
                            query = query.bind(id.as_str()).bind(body.as_str()).bind(now);
                        }
                        query.execute(&mut *tx).await?;
                        tx.commit().await?;
                        *spent += started.elapsed();
                    }
                    written += batch.len() as u64;
                }
                if next.is_none() {
                    break;
                }
            }
            drop(conn);
            for variant in &variants {
                let count = format!("SELECT COUNT(*) FROM {}", variant.table);
                let (count,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(count))
                    .fetch_one(pool)
                    .await?;
                if written != records || count != records as i64 {
                    return Err(format!(
                        "baseline wrote {written} ({count} rows in {}) of {records}",
                        variant.table
                    )
                    .into());
                }
            }
            database.close().await;
            let timed = variants
                .into_iter()
                .zip(in_db)
                .map(|(v, d)| (v, d.as_secs_f64()))
                .collect();
            Ok((timed, bytes as f64 / written as f64))
        }

        /// `INSERT … VALUES (…), … ON CONFLICT (id) DO UPDATE` for `rows` rows.
        fn upsert(variant: &Variant, rows: usize) -> String {
            let mut sql = format!(
                "INSERT INTO {} (id, body, modified_ms) VALUES ",
                variant.table
            );
            for row in 0..rows {
                if row > 0 {
                    sql.push_str(", ");
                }
                if variant.numbered {
                    let n = row * 3;
                    sql.push_str(&format!("(${}, ${}, ${})", n + 1, n + 2, n + 3));
                } else {
                    sql.push_str("(?, ?, ?)");
                }
            }
            sql.push_str(
                " ON CONFLICT (id) DO UPDATE SET body = excluded.body, modified_ms = excluded.modified_ms",
            );
            sql
        }
    }
}
