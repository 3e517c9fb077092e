//! Fault injection, quota and schema changes through the admin surface.

use super::{TestResult, small, spawn_with};
use reqwest::StatusCode;
use serde_json::json;
use syncline_crm_sandbox::common::{FaultConfig, FaultOutcome};
use syncline_crm_sandbox::salesforce::NewField;

#[tokio::test]
async fn seeded_faults_repeat_exactly() -> TestResult {
    let cfg = FaultConfig {
        error_5xx_rate: 0.3,
        rate_limit_rate: 0.2,
        seed: 7,
        ..FaultConfig::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sf = spawn_with(small(&[("Account", 5)])).await?;
        sf.sf.admin().set_faults("demo", cfg.clone())?;
        let mut codes = Vec::new();
        for _ in 0..30 {
            let r = sf.get("/services/data/v59.0/limits").await?;
            if r.status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(r.body[0]["errorCode"], "SERVER_UNAVAILABLE");
            }
            if r.status == StatusCode::FORBIDDEN {
                assert_eq!(r.body[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
                assert_eq!(r.body[0]["message"], "TotalRequests Limit exceeded.");
            }
            assert!(r.headers.contains_key("sforce-limit-info"));
            codes.push(r.status.as_u16());
        }
        assert!(
            codes.contains(&503) && codes.contains(&403) && codes.contains(&200),
            "{codes:?}"
        );
        let stats = sf.sf.admin().stats("demo")?;
        assert_eq!(
            stats.stats.injected_faults as usize,
            codes.iter().filter(|c| **c != 200).count()
        );
        runs.push(codes);
    }
    assert_eq!(runs[0], runs[1]);
    Ok(())
}

#[tokio::test]
async fn forced_faults_latency_and_quota() -> TestResult {
    let sf = spawn_with(small(&[("Account", 5)])).await?;
    let admin = sf.sf.admin();
    admin.force_faults("demo", FaultOutcome::ServerError, 1)?;
    assert_eq!(
        sf.get("/services/data/v59.0/limits").await?.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        sf.get("/services/data/v59.0/limits").await?.status,
        StatusCode::OK
    );

    admin.set_faults(
        "demo",
        FaultConfig {
            latency_ms: 60,
            ..FaultConfig::default()
        },
    )?;
    let t = std::time::Instant::now();
    sf.get("/services/data/v59.0/limits").await?;
    assert!(t.elapsed() >= std::time::Duration::from_millis(60));
    admin.set_faults("demo", FaultConfig::default())?;

    admin.set_quota("demo", Some(0), Some(3))?;
    for i in 1..=3 {
        let r = sf.get("/services/data/v59.0/limits").await?;
        assert_eq!(
            r.headers["sforce-limit-info"],
            format!("api-usage={i}/3").as_str()
        );
    }
    let over = sf.get("/services/data/v59.0/limits").await?;
    assert_eq!(over.status, StatusCode::FORBIDDEN);
    assert_eq!(over.body[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(over.headers["sforce-limit-info"], "api-usage=3/3");
    admin.set_quota("demo", Some(0), Some(100))?;
    let limits = sf.get("/services/data/v59.0/limits").await?;
    assert_eq!(
        limits.body["DailyApiRequests"],
        json!({"Max": 100, "Remaining": 99})
    );
    admin.exhaust_quota("demo")?;
    assert_eq!(
        sf.get("/services/data/v59.0/limits").await?.status,
        StatusCode::FORBIDDEN
    );
    Ok(())
}

#[tokio::test]
async fn schema_changes_show_in_describe_and_query() -> TestResult {
    let sf = spawn_with(small(&[("Account", 5)])).await?;
    let admin = sf.sf.admin();
    admin.add_field(
        "demo",
        "Account",
        NewField {
            name: "Tier__c".into(),
            label: None,
            ftype: "picklist".into(),
            picklist: vec!["A".into(), "B".into()],
            reference_to: None,
        },
    )?;
    let d = sf
        .get("/services/data/v59.0/sobjects/Account/describe")
        .await?;
    assert!(d.body["fields"].as_array().is_some_and(|f| {
        f.iter()
            .any(|f| f["name"] == "Tier__c" && f["type"] == "picklist")
    }));
    let q = sf.query("SELECT Id, Tier__c FROM Account").await?;
    assert!(
        q.body["records"]
            .as_array()
            .is_some_and(|r| r.iter().all(|r| r["Tier__c"].is_null()))
    );
    let id = admin.record_id("demo", "Account", 1)?;
    admin.update_record(
        "demo",
        "Account",
        &id,
        serde_json::from_value(json!({"Tier__c": "B"}))?,
    )?;
    let q = sf
        .query(&format!("SELECT Tier__c FROM Account WHERE Id = '{id}'"))
        .await?;
    assert_eq!(q.body["records"][0]["Tier__c"], "B");

    admin.retype_field("demo", "Account", "NumberofLocations__c", "string")?;
    let q = sf
        .query(
            "SELECT NumberofLocations__c FROM Account WHERE NumberofLocations__c != null LIMIT 1",
        )
        .await?;
    assert!(
        q.body["records"][0]["NumberofLocations__c"].is_string(),
        "{}",
        q.body
    );

    admin.remove_field("demo", "Account", "SLA__c")?;
    let gone = sf.query("SELECT SLA__c FROM Account").await?;
    assert_eq!(gone.body[0]["errorCode"], "INVALID_FIELD");
    let log = admin.changes("demo", 0)?;
    assert_eq!(log.len(), 1);
    Ok(())
}
