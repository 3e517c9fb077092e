//! Provider limits seen through the readers: quota refusals typed, and a sync that pauses
//! on the tenant's budget and resumes from its cursor instead of failing.

use std::collections::BTreeSet;

use chrono::Utc;
use secrecy::SecretString;
use serde_json::{Map, json};
use syncline_connectors::{
    Connector, ConnectorError, Credentials, Provider, QuotaBudget, QuotaDecision, ReadCursor,
    ReadRequest, RecordReader,
};
use syncline_crm_sandbox::hubspot::{
    DEMO_CLIENT_ID, DEMO_PORTAL_ID, HubSpotConfig, HubSpotSandbox, QuotaPolicy,
};
use syncline_crm_sandbox::salesforce::{OrgConfig, SalesforceConfig, SalesforceSandbox};

#[tokio::test]
async fn salesforce_sync_pauses_on_the_daily_budget_and_resumes_from_its_cursor() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox = SalesforceSandbox::start(
        SalesforceConfig {
            orgs: vec![OrgConfig {
                name: "budget".into(),
                counts: vec![("Account".into(), 0)],
                daily_api_limit: 1000,
                ..OrgConfig::default()
            }],
            ..SalesforceConfig::default()
        },
        listener,
    )
    .await
    .unwrap();
    let admin = sandbox.admin();
    let mut ids = BTreeSet::new();
    for i in 0..2000 {
        let mut fields = Map::new();
        fields.insert("Name".into(), json!(format!("b {i}")));
        ids.insert(admin.create_record("budget", "Account", fields).unwrap());
    }
    let tokens = admin.issue_tokens("budget", None).unwrap();
    let credentials = Credentials {
        instance_url: tokens.instance_url,
        access_token: SecretString::from(tokens.access_token),
    };
    let connector = Connector::for_provider(Provider::Salesforce, crate::http());
    // Other integrations have used 495 of the 1,000 calls; the tenant may go to half.
    admin.set_quota("budget", Some(495), None).unwrap();
    let budget = QuotaBudget::default();
    let fields = vec!["Name".to_owned()];
    let mut cursor = ReadCursor::start();
    let mut read = BTreeSet::new();
    let mut pauses = 0;
    loop {
        let page = connector
            .read_page(
                &credentials,
                ReadRequest {
                    object: "Account",
                    fields: &fields,
                    cursor: &cursor,
                    page_size: 200,
                },
            )
            .await
            .unwrap();
        read.extend(page.records.iter().map(|r| r.id.clone()));
        cursor = page.cursor.clone();
        if page.caught_up {
            break;
        }
        let now = Utc::now();
        if let QuotaDecision::Pause { until } =
            budget.decide(Provider::Salesforce, &page.usage, now, None)
        {
            assert!(until > now);
            assert!(page.usage.daily_used.unwrap() >= 500);
            pauses += 1;
            // The quota recovers (a day later, here at once); the sync resumes from the
            // cursor it saved.
            admin.set_quota("budget", Some(0), None).unwrap();
        }
    }
    assert_eq!(pauses, 1);
    assert_eq!(read, ids);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn quota_refusals_are_typed_for_both_providers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sf = SalesforceSandbox::start(SalesforceConfig::default(), listener)
        .await
        .unwrap();
    let tokens = sf.admin().issue_tokens("demo", None).unwrap();
    let credentials = Credentials {
        instance_url: tokens.instance_url,
        access_token: SecretString::from(tokens.access_token),
    };
    sf.admin().exhaust_quota("demo").unwrap();
    let connector = Connector::for_provider(Provider::Salesforce, crate::http());
    let request = ReadRequest {
        object: "Account",
        fields: &[],
        cursor: &ReadCursor::start(),
        page_size: 200,
    };
    let error = connector
        .read_page(&credentials, request)
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::QuotaExhausted), "{error:?}");
    sf.shutdown().await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hs = HubSpotSandbox::start(HubSpotConfig::default(), listener)
        .await
        .unwrap();
    let tokens = hs
        .admin()
        .issue_tokens(DEMO_CLIENT_ID, DEMO_PORTAL_ID)
        .unwrap();
    let credentials = Credentials {
        instance_url: hs.base_url().to_owned(),
        access_token: SecretString::from(tokens.access_token),
    };
    let connector = Connector::for_provider(Provider::HubSpot, crate::http());
    let request = ReadRequest {
        object: "contacts",
        fields: &[],
        cursor: &ReadCursor::start(),
        page_size: 100,
    };
    hs.admin()
        .exhaust_quota(DEMO_PORTAL_ID, QuotaPolicy::TenSecondly)
        .unwrap();
    let error = connector
        .read_page(&credentials, request)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ConnectorError::RateLimited {
                retry_after: Some(_)
            }
        ),
        "{error:?}"
    );
    hs.admin().reset(DEMO_PORTAL_ID).unwrap();
    hs.admin()
        .exhaust_quota(DEMO_PORTAL_ID, QuotaPolicy::Daily)
        .unwrap();
    let error = connector
        .read_page(&credentials, request)
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::QuotaExhausted), "{error:?}");
    hs.shutdown().await;
}
