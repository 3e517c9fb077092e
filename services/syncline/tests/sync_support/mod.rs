//! What the sync tests of the command share: the suite in this process (its sync-engine
//! serving the API with or without workers) on SQLite or PostgreSQL, a Salesforce sandbox,
//! and a tenant connected through OAuth to an org of its own with contacts mapped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use syncline_config::{ServiceName, SynclineConfig};
use syncline_crm_sandbox::salesforce::{
    OrgConfig, RunningSalesforce, SalesforceConfig, SalesforceSandbox,
};
use syncline_proto::sync::v1::sync_service_client::SyncServiceClient;
use syncline_proto::sync::v1::{
    Change, GetSyncRunRequest, StartSyncRunRequest, StreamChangesRequest, SyncMode, SyncRun,
};
use syncline_test_support::crm::{self, GatewayCaller, SandboxApp};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

const MANIFEST: &str = r#"
format: 1
name: contacts
objects:
  contact:
    access: [read]
    providers:
      salesforce: Contact
    fields:
      email:
        type: email
      last_name:
        type: string
      score:
        type: decimal
"#;

pub const INTERNAL_SECRET: &str = "sync-cli-test-internal-secret-0123456789abcdef";
const JWT_SECRET: &str = "sync-cli-test-jwt-secret-0123456789abcdef";

/// The suite in this process and the sandbox.
pub struct Harness {
    pub suite: syncline::Suite,
    pub salesforce: RunningSalesforce,
    pub data_dir: PathBuf,
    pub postgres: Option<(String, String)>,
    shutdown: CancellationToken,
}

impl Harness {
    /// Starts the sandbox and the suite (`postgres`: URL of a server to use, else SQLite
    /// files), its sync-engine running `workers` workers.
    pub async fn start(postgres: Option<String>, workers: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let salesforce = SalesforceSandbox::start(SalesforceConfig::default(), listener)
            .await
            .unwrap();
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let data_dir = std::env::temp_dir().join(format!("syncline-sync-{unique}"));
        let prefix = format!("sy{}_", &unique[..12]);
        let mut config = SynclineConfig {
            data_dir: data_dir.clone(),
            ..SynclineConfig::default()
        };
        for service in ServiceName::ALL {
            config.set_listen_addr(service, "127.0.0.1:0".parse().unwrap());
        }
        config.sandbox.enabled = false;
        config.gateway.jwt.hs256_secret = Some(SecretString::from(JWT_SECRET));
        config.internal_auth.secret = Some(SecretString::from(INTERNAL_SECRET));
        config.auth_vault.refresher.interval_secs = 0;
        config.storage.max_connections = 4;
        config.sync_engine.runs.workers = workers;
        config.sync_engine.runs.page_size = 200;
        config.sync_engine.runs.max_backoff_secs = 1;
        config.sync_engine.runs.breaker_cool_down_secs = 1;
        config.sync_engine.runs.poll_interval_ms = 50;
        if let Some(url) = &postgres {
            config.storage.database_url = Some(SecretString::from(url.clone()));
            config.storage.schema_prefix = prefix.clone();
        }
        config.validate().unwrap();
        let shutdown = CancellationToken::new();
        let suite = syncline::start_suite(config, shutdown.clone())
            .await
            .expect("the suite starts");
        Self {
            suite,
            salesforce,
            data_dir,
            postgres: postgres.map(|url| (url, prefix)),
            shutdown,
        }
    }

    /// The gateway's gRPC URL.
    pub fn gateway(&self) -> String {
        format!("http://{}", self.suite.addr(ServiceName::Gateway).unwrap())
    }

    fn channel(&self) -> Channel {
        Channel::from_shared(self.gateway()).unwrap().connect_lazy()
    }

    /// A token for `tenant` of `project`.
    pub fn token(project: &str, tenant: &str) -> String {
        syncline_test_support::tokens::sign(
            &syncline_test_support::tokens::claims(project, tenant),
            JWT_SECRET,
        )
    }

    /// Stops the suite and the sandbox and removes the databases.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let failures = self.suite.stopped().await;
        assert!(failures.is_empty(), "services failed: {failures:?}");
        self.salesforce.shutdown().await;
        if let Some((url, prefix)) = &self.postgres {
            syncline_storage::drop_schemas(url, prefix).await.unwrap();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A tenant connected to an org of its own, contacts mapped.
pub struct Tenant {
    pub org: String,
    pub connection: String,
    pub token: String,
    caller: GatewayCaller,
}

impl Tenant {
    /// Creates an org with `contacts` contacts, connects it for a new tenant through OAuth,
    /// deploys the manifest and maps contact email and last name.
    pub async fn connect(harness: &Harness, contacts: u64) -> Self {
        let unique = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let (project, tenant, org) = (
            format!("proj-{unique}"),
            format!("tenant-{unique}"),
            format!("org-{unique}"),
        );
        harness
            .salesforce
            .admin()
            .create_org(OrgConfig {
                name: org.clone(),
                counts: vec![("Contact".into(), contacts)],
                ..OrgConfig::default()
            })
            .unwrap();
        let token = Harness::token(&project, &tenant);
        let caller = GatewayCaller::new(harness.channel(), token.clone());
        let app = SandboxApp::salesforce(harness.salesforce.base_url());
        let connection = crm::connect(&caller, &app, &format!("&org={org}")).await;
        crm::deploy_manifest(&caller, MANIFEST).await;
        let tenant = Self {
            org,
            connection,
            token,
            caller,
        };
        tenant
            .map_contacts(&[("email", "Email"), ("last_name", "LastName")])
            .await;
        tenant
    }

    /// Saves the connection's inbound contact mappings: (model field, `Contact` field) pairs.
    async fn map_contacts(&self, pairs: &[(&str, &str)]) {
        crm::save_inbound_mappings(&self.caller, &self.connection, "contact", "Contact", pairs)
            .await;
    }

    /// Maps a new custom field `Score__c` of the org's contacts and then removes it from the
    /// org, before anything describes the org again: the next read of contacts is refused by
    /// the CRM (INVALID_FIELD), and the run leaves the field out and says so.
    pub async fn map_a_field_the_crm_then_drops(&self, harness: &Harness) {
        let admin = harness.salesforce.admin();
        admin
            .add_field(
                &self.org,
                "Contact",
                syncline_crm_sandbox::salesforce::NewField {
                    name: "Score__c".into(),
                    label: None,
                    ftype: "double".into(),
                    picklist: vec![],
                    reference_to: None,
                },
            )
            .unwrap();
        crm::refresh_schema(&self.caller, &self.connection).await;
        self.map_contacts(&[("last_name", "LastName"), ("score", "Score__c")])
            .await;
        admin
            .remove_field(&self.org, "Contact", "Score__c")
            .unwrap();
    }

    /// Starts (or joins) a BACKFILL of the connection through the gateway.
    pub async fn start_backfill(&self) -> SyncRun {
        self.sync()
            .start_sync_run(self.request(StartSyncRunRequest {
                connection_id: self.connection.clone(),
                mode: SyncMode::Backfill as i32,
                objects: vec![],
            }))
            .await
            .unwrap()
            .into_inner()
            .sync_run
            .unwrap()
    }

    pub fn sync(&self) -> SyncServiceClient<Channel> {
        SyncServiceClient::new(self.caller.channel())
    }

    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        self.caller.request(message)
    }

    pub async fn get(&self, id: &str) -> SyncRun {
        self.sync()
            .get_sync_run(self.request(GetSyncRunRequest {
                sync_run_id: id.into(),
            }))
            .await
            .unwrap()
            .into_inner()
            .sync_run
            .unwrap()
    }

    /// Polls GetSyncRun until `done` holds (at most `within`).
    pub async fn wait(
        &self,
        id: &str,
        within: Duration,
        what: &str,
        done: impl Fn(&SyncRun) -> bool,
    ) -> SyncRun {
        let deadline = Instant::now() + within;
        loop {
            let run = self.get(id).await;
            if done(&run) {
                return run;
            }
            assert!(Instant::now() < deadline, "the run never {what}: {run:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every change of the tenant from StreamChanges, once `count` arrived; checks the head
    /// is the last of them.
    pub async fn changes(&self, count: usize) -> Vec<Change> {
        let mut stream = self
            .sync()
            .stream_changes(self.request(StreamChangesRequest {
                max_batch_size: 500,
                ..StreamChangesRequest::default()
            }))
            .await
            .unwrap()
            .into_inner();
        let mut changes = Vec::new();
        let mut head = 0;
        while changes.len() < count {
            let message = tokio::time::timeout(Duration::from_secs(30), stream.message())
                .await
                .expect("changes arrive")
                .unwrap()
                .expect("the stream stays open");
            head = message.head_sequence;
            changes.extend(message.changes);
        }
        assert_eq!(changes.len(), count, "more changes than records");
        assert_eq!(head, changes.last().map_or(0, |c| c.sequence));
        changes
    }

    /// The ids of the org's contacts `0..count`.
    pub fn contact_ids(&self, harness: &Harness, count: u64) -> Vec<String> {
        (0..count)
            .map(|i| {
                harness
                    .salesforce
                    .admin()
                    .record_id(&self.org, "Contact", i)
                    .unwrap()
            })
            .collect()
    }
}
