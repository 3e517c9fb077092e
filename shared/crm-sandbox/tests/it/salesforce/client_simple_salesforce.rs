//! Drives the sandbox with the real simple-salesforce client (1.12.10, see
//! `tests/clients/salesforce_client.py`) over TLS with the sandbox's local CA.
//!
//! Outside CI (`CI` unset) the test skips, saying so, when the package is missing; in CI a
//! missing package fails it (CI installs `tests/clients/requirements.txt`).

use super::{TestResult, spawn_with};
use std::collections::HashMap;
use std::process::Command;
use syncline_crm_sandbox::salesforce::{OrgConfig, SalesforceConfig};

fn client_available() -> bool {
    Command::new("python3")
        .args(["-c", "import simple_salesforce, requests"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_works_against_the_sandbox() -> TestResult {
    if !client_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "simple-salesforce is not installed; CI must pip install tests/clients/requirements.txt"
        );
        println!(
            "skipped: python3 with simple-salesforce is not available (pip install -r shared/crm-sandbox/tests/clients/requirements.txt)"
        );
        return Ok(());
    }
    let config = SalesforceConfig {
        tls: true,
        orgs: vec![OrgConfig {
            counts: vec![("Project__c".into(), 2500), ("Contact".into(), 50)],
            ..OrgConfig::default()
        }],
        ..SalesforceConfig::default()
    };
    let sf = spawn_with(config).await?;
    assert!(sf.sf.base_url().starts_with("https://"));
    let ca_path = std::env::temp_dir().join(format!(
        "sf-sandbox-ca-{}-{}.pem",
        std::process::id(),
        sf.sf.local_addr().port()
    ));
    std::fs::write(&ca_path, sf.sf.ca_pem().unwrap_or_default())?;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/salesforce_client.py");
    let args = vec![
        script.display().to_string(),
        sf.sf.base_url().to_owned(),
        sf.token.clone(),
        ca_path.display().to_string(),
    ];
    // requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override `session.verify`, so point
    // them at the sandbox CA for the child process too.
    let ca = ca_path.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(&args)
            .env("REQUESTS_CA_BUNDLE", &ca)
            .env("CURL_CA_BUNDLE", &ca)
            .output()
    })
    .await??;
    let _ = std::fs::remove_file(&ca_path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let kv: HashMap<&str, &str> = stdout.lines().filter_map(|l| l.split_once('=')).collect();
    let expect = |k: &str, v: &str| assert_eq!(kv.get(k).copied(), Some(v), "{k} in:\n{stdout}");
    expect("global_describe_max_batch", "200");
    expect("global_describe_has_project", "True");
    assert!(
        kv.get("project_custom_fields")
            .and_then(|v| v.parse::<u32>().ok())
            .is_some_and(|n| n >= 40)
    );
    expect("query_total", "2500");
    expect("query_done", "False");
    expect("query_first_page", "2000");
    expect("query_all_records", "2500");
    expect("query_all_unique", "2500");
    expect("create_success", "True");
    expect("update_status", "204");
    expect("get_title", "CTO");
    expect("get_type", "Contact");
    expect("upsert_status", "201");
    expect("get_by_custom_id", "Upserted");
    expect("delete_status", "204");
    expect("updated_has_upserted", "True");
    assert_eq!(
        kv.get("deleted_ids"),
        kv.get("deleted_expected"),
        "{stdout}"
    );
    expect("collection_success", "True");
    expect("api_usage_parsed", "True");
    expect("limits_daily_max", "100000");
    expect("malformed", "MALFORMED_QUERY");
    expect("not_found", "NOT_FOUND");
    expect("expired", "INVALID_SESSION_ID");
    Ok(())
}
