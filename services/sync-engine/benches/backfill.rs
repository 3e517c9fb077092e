//! Backfill throughput and memory of the sync engine's page path, against a raw batched
//! upsert of the same rows.
//!
//! A Salesforce sandbox runs in a child process (this binary again, `BENCH_ROLE=sandbox`), so
//! its lazily generated org does not count in this process's memory. Two orgs of
//! `Project__c` records (~1 KB of JSON each with the 34 fields read): `BENCH_SMALL` (100,000)
//! and `BENCH_RECORDS` (1,000,000). For each, the engine path backfills the object: the
//! connector's `RecordReader` (queryAll pages of 2,000), the compiled mapping plan (34 rules),
//! the content hash, and one transaction per page committing record state, changes (with the
//! provider record) and cursor, exactly as a worker does; a consumer follows the tenant's log
//! through the `StreamChanges` pump (in-process, without gRPC) until it has every change. The
//! baseline reads the same pages with the same reader and upserts each provider record
//! (encoded) into one table with multi-row `INSERT … ON CONFLICT` of 1,000 rows, nothing else.
//! Peak RSS (`VmHWM`) is read after each engine run: flat from 100k to 1M means memory is
//! bounded by the page, not the backfill.
//!
//! Run: `cargo bench -p syncline-sync-engine --bench backfill` (SQLite in a temp directory;
//! `BENCH_DATABASE_URL=postgres://…` for PostgreSQL).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use prost::Message;
use secrecy::SecretString;
use syncline_config::{ServiceName, StorageConfig};
use syncline_connectors::{
    Connector, Credentials, ObjectSummary, Provider, ReadCursor, ReadRequest, RecordReader,
    SchemaDescriber,
};
use syncline_domain::{ProjectId, TenantContext, TenantId};
use syncline_mapping_plan::CompiledPlan;
use syncline_proto::mapping::v1::{CompiledFieldRule, MappingPlan, ObjectPlan};
use syncline_proto::sync::v1::{StreamChangesRequest, SyncMode, SyncRun};
use syncline_storage::Database;
use syncline_sync_engine::changelog::prepared::PreparedChange;
use syncline_sync_engine::changelog::stream::{self, StreamOptions};
use syncline_sync_engine::changelog::{ChangeLog, Notifier};
use syncline_sync_engine::runs::store::{
    Committed, NewRun, NewSlice, PageCommit, PageRecord, RunStore,
};
use syncline_sync_engine::runs::worker::content_hash;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_stream::StreamExt;

const FIELDS: usize = 34;
const PAGE: u32 = 2000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The child: serves both orgs until its stdin closes.
async fn sandbox(small: u64, large: u64) {
    use syncline_crm_sandbox::salesforce::{OrgConfig, SalesforceConfig, SalesforceSandbox};
    let org = |name: &str, count: u64| OrgConfig {
        name: name.into(),
        counts: vec![("Project__c".into(), count)],
        daily_api_limit: u64::MAX / 2,
        ..OrgConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = SalesforceConfig {
        orgs: vec![org("small", small), org("large", large)],
        ..SalesforceConfig::default()
    };
    let sf = SalesforceSandbox::start(config, listener).await.unwrap();
    for name in ["small", "large"] {
        let pair = sf.admin().issue_tokens(name, None).unwrap();
        println!("{name} {} {}", pair.instance_url, pair.access_token);
    }
    println!("ready");
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
    })
    .await
    .unwrap();
}

struct Source {
    credentials: Credentials,
    connector: Connector,
    fields: Vec<String>,
}

impl Source {
    /// The page of `Project__c` at `cursor`, as a worker reads it.
    async fn page(&self, cursor: &ReadCursor) -> syncline_connectors::RecordPage {
        self.connector
            .read_page(
                &self.credentials,
                ReadRequest {
                    object: "Project__c",
                    fields: &self.fields,
                    cursor,
                    page_size: PAGE,
                },
            )
            .await
            .unwrap()
    }
}

fn tenant(name: &str) -> TenantContext {
    TenantContext {
        project_id: ProjectId::parse("bench").unwrap(),
        tenant_id: TenantId::parse(name).unwrap(),
        subject: "bench".into(),
    }
}

fn plan(fields: &[String]) -> CompiledPlan {
    let inbound = fields
        .iter()
        .map(|f| CompiledFieldRule {
            source_fields: vec![f.clone()],
            target_field: f.to_lowercase(),
            ..CompiledFieldRule::default()
        })
        .collect();
    CompiledPlan::compile(&MappingPlan {
        connection_id: "conn".into(),
        plan_version: 1,
        objects: vec![ObjectPlan {
            object: "project".into(),
            provider_object: "Project__c".into(),
            inbound,
            ..ObjectPlan::default()
        }],
        ..MappingPlan::default()
    })
    .unwrap()
}

/// The engine's page path for one org; returns (records, seconds until the consumer had
/// every change).
async fn engine(db: &Database, source: &Source, name: &str, expected: u64) -> (u64, f64) {
    let store = RunStore::new(db.clone());
    let log = ChangeLog::new(
        db.clone(),
        Arc::new(Notifier::default()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let who = tenant(name);
    let compiled = plan(&source.fields);
    let object = compiled.object("project").unwrap();
    let run = SyncRun {
        id: format!("run_{name}"),
        connection_id: "conn".into(),
        mode: SyncMode::Backfill as i32,
        ..SyncRun::default()
    };
    store
        .insert_run(
            &who,
            &NewRun {
                run,
                slices: vec![NewSlice {
                    object: "project".into(),
                    provider_object: "Project__c".into(),
                    cursor: String::new(),
                }],
                trace_parent: String::new(),
                created_at_ms: 0,
            },
        )
        .await
        .unwrap();
    let consumer = {
        let log = log.clone();
        let who = who.clone();
        tokio::spawn(async move {
            let mut changes = stream::open(
                log,
                who,
                StreamChangesRequest {
                    max_batch_size: 1000,
                    ..StreamChangesRequest::default()
                },
                StreamOptions::default(),
            )
            .await
            .unwrap();
            let mut seen = 0_u64;
            let mut bytes = 0_usize;
            while seen < expected {
                let message = changes.next().await.unwrap().unwrap();
                seen += message.changes.len() as u64;
                bytes += message
                    .changes
                    .iter()
                    .map(Message::encoded_len)
                    .sum::<usize>();
            }
            (seen, bytes)
        })
    };
    let started = Instant::now();
    let mut read = 0_u64;
    let (mut reading, mut mapping, mut committing) = (0.0, 0.0, 0.0);
    loop {
        let t0 = Instant::now();
        let now = syncline_storage::now_ms();
        let claim = store
            .claim("bench", now, 600_000, 1)
            .await
            .unwrap()
            .unwrap();
        let page = source.page(&ReadCursor(claim.cursor.clone())).await;
        read += page.records.len() as u64;
        let t1 = Instant::now();
        reading += (t1 - t0).as_secs_f64();
        let records = page
            .records
            .into_iter()
            .map(|provider_record| {
                let mapped = object.apply_inbound(&provider_record);
                let hash = content_hash(&mapped);
                let id = mapped.id.clone();
                PageRecord {
                    id,
                    hash,
                    change: PreparedChange::mapped(
                        "conn",
                        "project",
                        &claim.run_id,
                        &mapped.record_parts(),
                        Some(&provider_record),
                    ),
                }
            })
            .collect();
        let t2 = Instant::now();
        mapping += (t2 - t1).as_secs_f64();
        let committed = store
            .commit_page(
                &log,
                &claim,
                "bench",
                PageCommit {
                    records,
                    cursor: page.cursor.0.clone(),
                    caught_up: page.caught_up,
                    estimated_total: page.estimated_total,
                    provider_calls: i64::from(page.provider_calls),
                    records_failed: 0,
                    now_ms: now,
                    not_before_ms: 0,
                    keep_lease_until_ms: 0,
                    dead_letters: Vec::new(),
                    skipped: None,
                },
            )
            .await
            .unwrap();
        committing += t2.elapsed().as_secs_f64();
        match committed {
            Committed::Stored {
                run_finished: true, ..
            } => break,
            Committed::Stored { .. } => {}
            Committed::Discarded => panic!("page discarded"),
        }
    }
    let (seen, bytes) = consumer.await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(seen, expected, "the consumer got every change");
    assert_eq!(read, expected);
    eprintln!(
        "  {name}: {read} records, {:.0} bytes per change on the stream; claim+read {reading:.1} s, map+hash {mapping:.1} s, commit {committing:.1} s",
        bytes as f64 / seen.max(1) as f64
    );
    (read, seconds)
}

/// The baseline: the same pages, each provider record upserted as encoded bytes in
/// multi-row statements of 1,000.
async fn raw(db: &Database, source: &Source) -> (u64, f64) {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_raw (id TEXT NOT NULL PRIMARY KEY, body BYTEA NOT NULL)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let started = Instant::now();
    let mut cursor = ReadCursor::start();
    let mut read = 0_u64;
    loop {
        let page = source.page(&cursor).await;
        read += page.records.len() as u64;
        for chunk in page.records.chunks(1000) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                .collect();
            let statement = format!(
                "INSERT INTO bench_raw (id, body) VALUES {}
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                rows.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
            for record in chunk {
                query = query.bind(record.id.clone()).bind(record.encode_to_vec());
            }
            query.execute(db.pool()).await.unwrap();
        }
        cursor = page.cursor;
        if page.caught_up {
            break;
        }
    }
    (read, started.elapsed().as_secs_f64())
}

async fn parent(small: u64, large: u64) {
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env("BENCH_ROLE", "sandbox")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut orgs = std::collections::HashMap::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line == "ready" {
            break;
        }
        let parts: Vec<&str> = line.split(' ').collect();
        orgs.insert(
            parts[0].to_owned(),
            (parts[1].to_owned(), parts[2].to_owned()),
        );
    }
    let http = reqwest::Client::new();
    let connector = Connector::for_provider(Provider::Salesforce, http);
    let source = |org: &str, fields: Vec<String>| {
        let (url, token) = orgs[org].clone();
        Source {
            credentials: Credentials {
                instance_url: url,
                access_token: SecretString::from(token),
            },
            connector: connector.clone(),
            fields,
        }
    };
    let described = connector
        .describe_object(
            &source("small", vec![]).credentials,
            &ObjectSummary {
                name: "Project__c".into(),
                ..ObjectSummary::default()
            },
        )
        .await
        .unwrap();
    let fields: Vec<String> = described
        .fields
        .iter()
        .map(|f| f.name.clone())
        .filter(|n| n != "Id" && n != "SystemModstamp")
        .take(FIELDS)
        .collect();

    let dir = std::env::temp_dir().join(format!("syncline-bench-{}", std::process::id()));
    let storage = StorageConfig {
        database_url: std::env::var("BENCH_DATABASE_URL")
            .ok()
            .map(SecretString::from),
        schema_prefix: format!("bench{}_", std::process::id()),
        max_connections: 4,
    };
    let db = Database::open(
        &storage,
        &dir,
        ServiceName::SyncEngine,
        syncline_sync_engine::MIGRATIONS,
    )
    .await
    .unwrap();
    let backend = format!("{:?}", db.backend());
    println!(
        "backfill bench: {backend}, Project__c with {} fields read, pages of {PAGE}",
        fields.len()
    );
    let before = vm_hwm_kb();
    let (n_small, s_small) = engine(&db, &source("small", fields.clone()), "small", small).await;
    let hwm_small = vm_hwm_kb();
    let (n_large, s_large) = engine(&db, &source("large", fields.clone()), "large", large).await;
    let hwm_large = vm_hwm_kb();
    let (n_raw, s_raw) = raw(&db, &source("large", fields.clone())).await;
    println!("| case | records | seconds | records/s |");
    println!("|---|---|---|---|");
    for (case, n, s) in [
        (
            "engine: read, map, dedupe, commit changes + state + cursor, stream",
            n_small,
            s_small,
        ),
        ("engine: same", n_large, s_large),
        (
            "raw: read, multi-row upsert of the provider records",
            n_raw,
            s_raw,
        ),
    ] {
        println!("| {case} | {n} | {s:.1} | {:.0} |", n as f64 / s);
    }
    println!(
        "peak RSS (VmHWM): {} MiB before, {} MiB after {n_small}, {} MiB after {n_large}",
        before / 1024,
        hwm_small / 1024,
        hwm_large / 1024
    );
    drop(child.stdin.take());
    let _ = child.wait().await;
    db.close().await;
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        let _ = syncline_storage::drop_schemas(&url, &storage.schema_prefix).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let small = env_u64("BENCH_SMALL", 100_000);
    let large = env_u64("BENCH_RECORDS", 1_000_000);
    if std::env::var("BENCH_ROLE").as_deref() == Ok("sandbox") {
        runtime.block_on(sandbox(small, large));
    } else {
        runtime.block_on(parent(small, large));
    }
}
