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
    for command in ["up", "serve", "token"] {
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
