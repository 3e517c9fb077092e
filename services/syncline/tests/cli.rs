//! The `syncline` command as a new user runs it: `up` with nothing configured, `--help`,
//! and start-up errors that name what is wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn syncline() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_syncline"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs `syncline up` on free ports in a fresh data directory, reads what it prints until
/// it is ready, checks every printed endpoint answers, then stops it with SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_starts_the_suite_and_the_sandboxes_and_stops_on_sigterm() {
    let data_dir = std::env::temp_dir().join(format!("syncline-cli-{}", std::process::id()));
    let mut command = syncline();
    command.arg("up").env("SYNCLINE_DATA_DIR", &data_dir);
    for key in [
        "GATEWAY",
        "AUTH_VAULT",
        "SCHEMA_DISCOVERY",
        "MAPPING",
        "SYNC_ENGINE",
        "CONFLICT_RESOLVER",
    ] {
        command.env(format!("SYNCLINE_{key}__LISTEN_ADDR"), "127.0.0.1:0");
    }
    command
        .env("SYNCLINE_SANDBOX__SALESFORCE_PORT", "0")
        .env("SYNCLINE_SANDBOX__HUBSPOT_PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("stop with Ctrl-C");
            printed.push(line);
            if done {
                return;
            }
        }
        panic!("syncline up exited early");
    })
    .await;
    assert!(
        ready.is_ok(),
        "syncline up did not become ready: {printed:#?}"
    );

    let url_after = |label: &str| -> String {
        let line = printed
            .iter()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no `{label}` line in {printed:#?}"));
        line.split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("grpc://"))
            .unwrap()
            .replace("grpc://", "http://")
    };
    for service in [
        "auth-vault",
        "schema-discovery",
        "mapping",
        "sync-engine",
        "conflict-resolver",
        "gateway ",
    ] {
        assert!(url_after(service).starts_with("http://127.0.0.1:"));
    }
    let client = reqwest::Client::new();
    let health = client.get(url_after("gateway http")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let versions = client
        .get(format!(
            "{}/services/data/",
            url_after("salesforce sandbox")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(versions.status(), 200);
    let unauthorized = client
        .get(format!(
            "{}/crm/v3/objects/contacts",
            url_after("hubspot sandbox")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        unauthorized.status(),
        401,
        "the hubspot sandbox wants a token"
    );
    let token = printed
        .iter()
        .find(|l| l.starts_with("eyJ"))
        .expect("a development token is printed");
    assert_eq!(token.split('.').count(), 3);

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("syncline up stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn help_lists_the_commands() {
    let output = syncline().arg("--help").output().await.unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    for command in ["up", "serve", "token", "manifest", "sync"] {
        assert!(text.contains(command), "{text}");
    }
}

#[tokio::test]
async fn a_bad_configuration_key_fails_start_up_and_is_named() {
    let output = syncline()
        .arg("up")
        .env("SYNCLINE_GATEWAY__JWT__AUDEINCE", "typo")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(
        text.contains("gateway.jwt") && text.contains("audeince"),
        "{text}"
    );
}

#[tokio::test]
async fn serve_names_an_unknown_service_and_requires_the_internal_secret() {
    let output = syncline()
        .args(["serve", "billing"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(text.contains("unknown service `billing`"), "{text}");

    let output = syncline()
        .args(["serve", "mapping"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(text.contains("internal_auth.secret"), "{text}");
}

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The distributed mode: six `syncline serve` processes sharing one PostgreSQL database and
/// one internal secret; a call through the gateway process reaches a backend process, and
/// a tenant's write is read back through another connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_serve_processes_on_postgres_work_as_one_suite() {
    use syncline_proto::conflict::v1::conflict_service_client::ConflictServiceClient;
    use syncline_proto::conflict::v1::{GetPolicyRequest, Policy, Strategy, UpdatePolicyRequest};

    let Some(url) = syncline_test_support::postgres::url_or_skip("distributed suite").await else {
        return;
    };
    let prefix = format!("cli{}_", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let jwt_secret = "distributed-test-jwt-secret-0123456789abcdef";
    let services = [
        ("auth-vault", "AUTH_VAULT"),
        ("schema-discovery", "SCHEMA_DISCOVERY"),
        ("mapping", "MAPPING"),
        ("sync-engine", "SYNC_ENGINE"),
        ("conflict-resolver", "CONFLICT_RESOLVER"),
        ("gateway", "GATEWAY"),
    ];
    let ports: Vec<u16> = services.iter().map(|_| free_port()).collect();
    let data_dir = std::env::temp_dir().join(format!("syncline-serve-{prefix}"));
    let mut children = Vec::new();
    for (name, _) in services {
        let mut command = syncline();
        command
            .args(["serve", name])
            .env("SYNCLINE_DATA_DIR", &data_dir)
            .env("SYNCLINE_STORAGE__DATABASE_URL", &url)
            .env("SYNCLINE_STORAGE__SCHEMA_PREFIX", &prefix)
            .env(
                "SYNCLINE_INTERNAL_AUTH__SECRET",
                "distributed-test-internal-secret-0123456789",
            )
            .env("SYNCLINE_GATEWAY__JWT__HS256_SECRET", jwt_secret)
            .env("SYNCLINE_TELEMETRY__LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for ((_, key), port) in services.iter().zip(&ports) {
            command.env(
                format!("SYNCLINE_{key}__LISTEN_ADDR"),
                format!("127.0.0.1:{port}"),
            );
            if *key != "GATEWAY" {
                command.env(
                    format!("SYNCLINE_GATEWAY__BACKENDS__{key}"),
                    format!("http://127.0.0.1:{port}"),
                );
            }
        }
        children.push(command.spawn().unwrap());
    }
    let gateway = format!("http://127.0.0.1:{}", ports[5]);

    // Each process logs `listening` once it has migrated its schema and serves.
    for (child, (name, _)) in children.iter_mut().zip(services) {
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("\"listening\"") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ready, Ok(true), "{name} did not come up");
        // Keep draining so the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    }

    let token = |tenant: &str| {
        syncline_test_support::tokens::sign(
            &syncline_test_support::tokens::claims("p1", tenant),
            jwt_secret,
        )
    };
    fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    }
    let channel = tonic::transport::Channel::from_shared(gateway)
        .unwrap()
        .connect_lazy();
    let mut client = ConflictServiceClient::new(channel);
    client
        .update_policy(authed(
            &token("acme"),
            UpdatePolicyRequest {
                policy: Some(Policy {
                    default_strategy: Strategy::FieldLevelMerge as i32,
                    ..Default::default()
                }),
                update_mask: None,
            },
        ))
        .await
        .expect("write through the gateway process");
    let read = |tenant: &'static str| {
        let mut client = client.clone();
        let message = authed(&token(tenant), GetPolicyRequest {});
        async move {
            client
                .get_policy(message)
                .await
                .unwrap()
                .into_inner()
                .policy
                .unwrap()
                .default_strategy
        }
    };
    assert_eq!(read("acme").await, Strategy::FieldLevelMerge as i32);
    assert_eq!(read("globex").await, Strategy::LastWriteWins as i32);

    for child in &children {
        let pid = child.id().unwrap().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
    }
    for mut child in children {
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("serve stops after SIGTERM")
            .unwrap();
        assert!(status.success(), "exit status {status}");
    }
    syncline_storage::drop_schemas(&url, &prefix).await.unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// `syncline manifest validate`: the documented example is valid; a broken copy prints
/// `FILE:line:column: …` per error and exits with 1.
#[tokio::test]
async fn manifest_validate_reports_errors_with_file_line_and_column() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/examples/manifest.yaml"
    );
    let output = syncline()
        .args(["manifest", "validate", example])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert!(String::from_utf8(output.stdout).unwrap().contains("valid"));

    let source = std::fs::read_to_string(example).unwrap();
    let broken = source
        .replace("type: phone", "type: fone")
        .replace("schedule: 1h", "schedule: often");
    let file = std::env::temp_dir().join(format!("syncline-manifest-{}.yaml", std::process::id()));
    std::fs::write(&file, &broken).unwrap();
    let line_of = |needle: &str| broken.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let output = syncline()
        .args(["manifest", "validate"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let name = file.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{name}:{}:9: error: objects.contact.fields.phone.type: `fone` is not a field type",
            line_of("type: fone")
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{name}:{}:5: error: objects.deal.schedule:",
            line_of("schedule: often")
        )),
        "{stderr}"
    );
}

/// `syncline manifest deploy` against a running `syncline up`: the token comes from
/// `SYNCLINE_TOKEN`, a first deployment creates version 1, the same file again changes
/// nothing, an invalid file is refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_deploy_installs_versions_through_the_gateway() {
    let data_dir = std::env::temp_dir().join(format!("syncline-cli-deploy-{}", std::process::id()));
    let mut command = syncline();
    command
        .arg("up")
        .env("SYNCLINE_DATA_DIR", &data_dir)
        .env("SYNCLINE_SANDBOX__ENABLED", "false");
    for key in [
        "GATEWAY",
        "AUTH_VAULT",
        "SCHEMA_DISCOVERY",
        "MAPPING",
        "SYNC_ENGINE",
        "CONFLICT_RESOLVER",
    ] {
        command.env(format!("SYNCLINE_{key}__LISTEN_ADDR"), "127.0.0.1:0");
    }
    command.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("stop with Ctrl-C");
            printed.push(line);
            if done {
                return;
            }
        }
        panic!("syncline up exited early");
    })
    .await
    .expect("syncline up becomes ready");
    let gateway = printed
        .iter()
        .find(|l| l.trim_start().starts_with("gateway "))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("grpc://")))
        .unwrap()
        .replace("grpc://", "http://");
    let token = printed
        .iter()
        .find(|l| l.starts_with("eyJ"))
        .unwrap()
        .clone();
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/examples/manifest.yaml"
    );
    let deploy = |file: &str| {
        let mut command = syncline();
        command
            .args(["manifest", "deploy", file, "--gateway", &gateway])
            .env("SYNCLINE_TOKEN", &token);
        command
    };

    let first = deploy(example).output().await.unwrap();
    let stdout = String::from_utf8(first.stdout).unwrap();
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.contains("deployed manifest version 1"), "{stdout}");
    let again = deploy(example).output().await.unwrap();
    assert!(again.status.success());
    assert!(
        String::from_utf8(again.stdout)
            .unwrap()
            .contains("unchanged: version 1"),
    );

    let broken = data_dir.join("broken.yaml");
    std::fs::write(&broken, "format: 1\nname: x\nobjects: {}\n").unwrap();
    let refused = deploy(broken.to_str().unwrap()).output().await.unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8(refused.stderr)
            .unwrap()
            .contains(":3:1: error: objects")
    );

    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("syncline up stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(&data_dir);
}

mod sync_support;

use sync_support::{Harness, INTERNAL_SECRET, Tenant};
use syncline_proto::sync::v1::{SyncRun, SyncRunState};

fn read_count(run: &SyncRun) -> i64 {
    run.stats.map_or(0, |s| s.records_read)
}

/// `syncline sync CONNECTION`: starts a backfill through the gateway, draws a bar per
/// object on stderr up to the CRM's total and exits 0 when the run succeeds (also when
/// schema drift made it leave a mapped field out: the issue is printed under the object's
/// bar); a connection whose grant was revoked pauses the run for re-authorization, which the
/// command reports and exits with 2; a run the CRM refuses for good fails, exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_draws_progress_and_exits_by_the_run_state() {
    let harness = Harness::start(None, 2).await;
    let acme = Tenant::connect(&harness, 900).await;
    let sync = |mode: &str| {
        let mut command = syncline();
        command
            .args(["sync", &acme.connection, "--mode", mode])
            .args(["--gateway", &harness.gateway(), "--poll-ms", "50"])
            .env("SYNCLINE_TOKEN", &acme.token);
        command
    };
    let output = sync("backfill").output().await.unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("started sync run run_"), "{stderr}");
    assert!(
        stderr.contains(&format!("[{}] 900/900 contact done", "#".repeat(30))),
        "{stderr}"
    );
    assert!(
        stderr.contains("succeeded: 900 read, 900 changes published, 0 unchanged"),
        "{stderr}"
    );

    let admin = harness.salesforce.admin();
    admin.expire_sessions(&acme.org).unwrap();
    admin.revoke_refresh_tokens(&acme.org).unwrap();
    let output = sync("incremental").output().await.unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("paused:"), "{stderr}");
    assert!(stderr.contains("NEEDS_REAUTH: "), "{stderr}");

    // A mapped field the CRM dropped is left out: the run succeeds, exit 0, and the issue is
    // printed under the object's bar.
    let globex = Tenant::connect(&harness, 20).await;
    globex.map_a_field_the_crm_then_drops(&harness).await;
    let sync_globex = || {
        let mut command = syncline();
        command
            .args(["sync", &globex.connection, "--mode", "backfill"])
            .args(["--gateway", &harness.gateway(), "--poll-ms", "50"])
            .env("SYNCLINE_TOKEN", &globex.token);
        command
    };
    let output = sync_globex().output().await.unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "[{}] 20/20 contact done\n    schema drift: Contact.Score__c no longer exists in the CRM; not read until the mapping is saved again",
            "#".repeat(30)
        )),
        "{stderr}"
    );
    assert!(stderr.contains("succeeded: 20 read"), "{stderr}");

    // A run the CRM refuses for good (the user may no longer see contacts) fails: exit 1
    // with the reason.
    harness
        .salesforce
        .admin()
        .force_faults(
            &globex.org,
            syncline_crm_sandbox::common::FaultOutcome::Refused,
            1,
        )
        .unwrap();
    let output = sync_globex().output().await.unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed: 0 read"), "{stderr}");
    assert!(stderr.contains("PROVIDER_REJECTED: "), "{stderr}");
    assert!(stderr.contains("INVALID_TYPE"), "{stderr}");
    harness.stop().await;
}

/// A backfill worked by a `syncline serve sync-engine` child process (the API answered by
/// the suite in this process, on the same database) that is killed with SIGKILL again and
/// again, at points chosen by the progress observed, and restarted: the run finishes, and
/// every contact of the org is in the change log exactly once.
async fn killed_sync_engine_resumes_and_delivers_every_record_once(postgres: Option<String>) {
    const CONTACTS: u64 = 3000;
    let harness = Harness::start(postgres, 0).await;
    let acme = Tenant::connect(&harness, CONTACTS).await;
    // Each CRM call takes 100 ms, as a real one does, so the run's 15 pages cannot all be
    // committed between an observed page and the kill that follows it (20 ms polls): every
    // kill lands mid-run however fast the engine maps and commits.
    harness
        .salesforce
        .admin()
        .set_faults(
            &acme.org,
            syncline_crm_sandbox::common::FaultConfig {
                latency_ms: 100,
                ..Default::default()
            },
        )
        .unwrap();
    let port = free_port();
    let addr = |service| format!("http://{}", harness.suite.addr(service).unwrap());
    let spawn = || {
        let mut command = syncline();
        command
            .args(["serve", "sync-engine"])
            .env("SYNCLINE_DATA_DIR", &harness.data_dir)
            .env("SYNCLINE_INTERNAL_AUTH__SECRET", INTERNAL_SECRET)
            .env(
                "SYNCLINE_SYNC_ENGINE__LISTEN_ADDR",
                format!("127.0.0.1:{port}"),
            )
            .env(
                "SYNCLINE_GATEWAY__BACKENDS__AUTH_VAULT",
                addr(syncline_config::ServiceName::AuthVault),
            )
            .env(
                "SYNCLINE_GATEWAY__BACKENDS__MAPPING",
                addr(syncline_config::ServiceName::Mapping),
            )
            .env(
                "SYNCLINE_GATEWAY__BACKENDS__SCHEMA_DISCOVERY",
                addr(syncline_config::ServiceName::SchemaDiscovery),
            )
            .env("SYNCLINE_SYNC_ENGINE__RUNS__WORKERS", "2")
            .env("SYNCLINE_SYNC_ENGINE__RUNS__LEASE_SECS", "1")
            .env("SYNCLINE_SYNC_ENGINE__RUNS__PAGE_SIZE", "200")
            .env("SYNCLINE_SYNC_ENGINE__RUNS__MAX_BACKOFF_SECS", "1")
            .env("SYNCLINE_SYNC_ENGINE__RUNS__POLL_INTERVAL_MS", "50")
            .env("SYNCLINE_TELEMETRY__LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some((url, prefix)) = &harness.postgres {
            command
                .env("SYNCLINE_STORAGE__DATABASE_URL", url)
                .env("SYNCLINE_STORAGE__SCHEMA_PREFIX", prefix);
        }
        command
    };
    async fn ready(child: &mut tokio::process::Child) {
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let up = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("\"listening\"") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(up, Ok(true), "sync-engine did not come up");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    }
    async fn kill_9(mut child: tokio::process::Child) {
        let pid = child.id().unwrap().to_string();
        assert!(
            Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .await
                .unwrap()
                .success()
        );
        let status = child.wait().await.unwrap();
        assert!(!status.success(), "killed, not exited: {status}");
    }

    // The suite's own sync-engine has no workers: the run waits for the child.
    let run = acme.start_backfill().await;
    let mut kills = 0;
    let mut seen = 0;
    for round in 0..6 {
        let mut child = spawn().spawn().unwrap();
        ready(&mut child).await;
        if round % 3 != 2 {
            // Killed as soon as a page more was committed: mid-way through the next one.
            let progressed = acme
                .wait(&run.id, Duration::from_secs(60), "made progress", |r| {
                    read_count(r) > seen || r.state() == SyncRunState::Succeeded
                })
                .await;
            assert_ne!(
                progressed.state(),
                SyncRunState::Succeeded,
                "finished before it was killed"
            );
            seen = read_count(&progressed);
        }
        // Otherwise killed as soon as it serves: while it claims or reads its first page.
        kill_9(child).await;
        kills += 1;
    }
    let mut child = spawn().spawn().unwrap();
    ready(&mut child).await;
    let done = acme
        .wait(&run.id, Duration::from_secs(120), "succeeded", |r| {
            r.state() == SyncRunState::Succeeded
        })
        .await;
    kill_9(child).await;
    assert_eq!(kills, 6);
    let stats = done.stats.unwrap();
    assert_eq!(
        (
            stats.records_read,
            stats.changes_published,
            stats.records_unchanged
        ),
        (3000, 3000, 0),
        "every committed page counted once: {done:?}"
    );
    let changes = acme.changes(3000).await;
    let mut ids: Vec<String> = changes
        .iter()
        .map(|c| c.record.as_ref().unwrap().id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3000, "no record twice");
    let mut expected = acme.contact_ids(&harness, CONTACTS);
    expected.sort();
    assert_eq!(ids, expected, "every record");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_sync_engine_resumes_on_sqlite() {
    killed_sync_engine_resumes_and_delivers_every_record_once(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_sync_engine_resumes_on_postgres() {
    if let Some(url) = syncline_test_support::postgres::url_or_skip("kill -9 sync").await {
        killed_sync_engine_resumes_and_delivers_every_record_once(Some(url)).await;
    }
}

/// Two `syncline serve sync-engine` children (one worker each) on one PostgreSQL schema
/// share one queue of four backfills (4 tenants × 2,000 contacts, pages of 200): every run
/// succeeds with each contact delivered exactly once, and each process committed pages of
/// its own. Both are serving before the runs start, and one worker holds one slice at a
/// time, so while the runs last three slices are always free for the other process: which
/// process works which page varies, that both work does not. Each process's own debug log
/// lines "sync page committed" (with the records published) show its share; the shares add
/// up to every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sync_engine_processes_share_one_queue_on_postgres() {
    const TENANTS: usize = 4;
    const CONTACTS: u64 = 2000;
    let Some(url) = syncline_test_support::postgres::url_or_skip("two sync-engines").await else {
        return;
    };
    let harness = Harness::start(Some(url), 0).await;
    let mut tenants = Vec::new();
    for _ in 0..TENANTS {
        tenants.push(Tenant::connect(&harness, CONTACTS).await);
    }
    let addr = |service| format!("http://{}", harness.suite.addr(service).unwrap());
    let (url, prefix) = harness.postgres.clone().unwrap();
    let spawn = || {
        let mut command = syncline();
        command
            .args(["serve", "sync-engine"])
            .env("SYNCLINE_DATA_DIR", &harness.data_dir)
            .env("SYNCLINE_INTERNAL_AUTH__SECRET", INTERNAL_SECRET)
            .env(
                "SYNCLINE_SYNC_ENGINE__LISTEN_ADDR",
                format!("127.0.0.1:{}", free_port()),
            )
            .env(
                "SYNCLINE_GATEWAY__BACKENDS__AUTH_VAULT",
                addr(syncline_config::ServiceName::AuthVault),
            )
            .env(
                "SYNCLINE_GATEWAY__BACKENDS__MAPPING",
                addr(syncline_config::ServiceName::Mapping),
            )
            .env(
                "SYNCLINE_GATEWAY__BACKENDS__SCHEMA_DISCOVERY",
                addr(syncline_config::ServiceName::SchemaDiscovery),
            )
            .env("SYNCLINE_STORAGE__DATABASE_URL", &url)
            .env("SYNCLINE_STORAGE__SCHEMA_PREFIX", &prefix)
            .env("SYNCLINE_STORAGE__MAX_CONNECTIONS", "4")
            .env("SYNCLINE_SYNC_ENGINE__RUNS__WORKERS", "1")
            .env("SYNCLINE_SYNC_ENGINE__RUNS__PAGE_SIZE", "200")
            .env("SYNCLINE_SYNC_ENGINE__RUNS__MAX_BACKOFF_SECS", "1")
            .env("SYNCLINE_SYNC_ENGINE__RUNS__POLL_INTERVAL_MS", "50")
            .env("SYNCLINE_TELEMETRY__LOG_FORMAT", "json")
            .env(
                "SYNCLINE_TELEMETRY__LOG_FILTER",
                "info,syncline_sync_engine::runs::worker=debug",
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        command.spawn().unwrap()
    };
    /// Waits until the child serves, then sums the records it published, from its "sync page
    /// committed" lines, into `published`.
    async fn serving(
        child: &mut tokio::process::Child,
        published: std::sync::Arc<std::sync::Mutex<i64>>,
    ) {
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let up = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("\"listening\"") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(up, Ok(true), "sync-engine did not come up");
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if json["fields"]["message"] != "sync page committed" {
                    continue;
                }
                let records = json["fields"]["published"].as_i64().unwrap();
                *published.lock().unwrap() += records;
            }
        });
    }
    let shares: [std::sync::Arc<std::sync::Mutex<i64>>; 2] = Default::default();
    let mut first = spawn();
    serving(&mut first, shares[0].clone()).await;
    let mut second = spawn();
    serving(&mut second, shares[1].clone()).await;

    let mut runs = Vec::new();
    for tenant in &tenants {
        runs.push(tenant.start_backfill().await.id);
    }
    for (tenant, run) in tenants.iter().zip(&runs) {
        let done = tenant
            .wait(run, Duration::from_secs(180), "succeeded", |r| {
                r.state() == SyncRunState::Succeeded
            })
            .await;
        let stats = done.stats.unwrap();
        assert_eq!(
            (
                stats.records_read,
                stats.changes_published,
                stats.records_unchanged
            ),
            (2000, 2000, 0),
            "every page counted once: {done:?}"
        );
    }
    for tenant in &tenants {
        let changes = tenant.changes(2000).await;
        let mut ids: Vec<String> = changes
            .iter()
            .map(|c| c.record.as_ref().unwrap().id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 2000, "no record twice");
        let mut expected = tenant.contact_ids(&harness, CONTACTS);
        expected.sort();
        assert_eq!(ids, expected, "every record");
    }

    // A page's log line follows its commit: wait until both processes' lines account for
    // every record.
    let total = |share: &std::sync::Mutex<i64>| *share.lock().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while total(&shares[0]) + total(&shares[1]) < 8000 {
        assert!(
            std::time::Instant::now() < deadline,
            "committed pages logged: {} {}",
            total(&shares[0]),
            total(&shares[1])
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (first_share, second_share) = (total(&shares[0]), total(&shares[1]));
    assert_eq!(
        first_share + second_share,
        8000,
        "each record published once"
    );
    assert!(
        first_share > 0 && second_share > 0,
        "both processes worked: {first_share} {second_share}"
    );
    eprintln!("records published by each process: {first_share} {second_share}");
    first.kill().await.unwrap();
    second.kill().await.unwrap();
    harness.stop().await;
}
