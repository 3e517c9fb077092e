//! The connectors against the CRM sandboxes: full describes, composite batching, and a 401
//! surfaced as a typed error.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod readers;

use secrecy::SecretString;
use syncline_connectors::schema::FieldType;
use syncline_connectors::{Connector, ConnectorError, Credentials, Provider, SchemaDescriber};
use syncline_crm_sandbox::common::faults::FaultOutcome;
use syncline_crm_sandbox::hubspot::{
    DEMO_CLIENT_ID, DEMO_PORTAL_ID, HubSpotConfig, HubSpotSandbox,
};
use syncline_crm_sandbox::salesforce::{SalesforceConfig, SalesforceSandbox};

pub(crate) fn http() -> reqwest::Client {
    syncline_service_kit::crm_http::client(&syncline_config::CrmHttpConfig::default()).unwrap()
}

#[tokio::test]
async fn salesforce_org_is_described_in_composite_batches() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sf = SalesforceSandbox::start(SalesforceConfig::default(), listener)
        .await
        .unwrap();
    let admin = sf.admin();
    let tokens = admin.issue_tokens("demo", None).unwrap();
    let credentials = Credentials {
        instance_url: tokens.instance_url.clone(),
        access_token: SecretString::from(tokens.access_token),
    };
    let connector = Connector::for_provider(Provider::Salesforce, http());
    let before = admin.stats("demo").unwrap().stats.api_calls;
    let objects = connector.describe_all(&credentials, &[]).await.unwrap();
    let calls = admin.stats("demo").unwrap().stats.api_calls - before;
    let names: Vec<&str> = objects.iter().map(|o| o.object.name.as_str()).collect();
    assert!(
        names.contains(&"Account") && names.contains(&"Invoice__c"),
        "{names:?}"
    );
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    // One global describe plus one composite call per 25 objects.
    assert_eq!(
        calls,
        1 + objects.len().div_ceil(25) as u64,
        "{calls} calls"
    );
    let invoice = objects
        .iter()
        .find(|o| o.object.name == "Invoice__c")
        .unwrap();
    assert!(invoice.object.custom);
    assert!(
        invoice
            .fields
            .iter()
            .any(|f| f.field_type == FieldType::Reference)
    );

    let only = connector
        .describe_all(&credentials, &["Account".to_owned()])
        .await
        .unwrap();
    assert_eq!(only.len(), 1);

    let refused = connector
        .list_objects(&Credentials {
            instance_url: tokens.instance_url,
            access_token: SecretString::from("00Dbogus!token".to_owned()),
        })
        .await
        .unwrap_err();
    match refused {
        ConnectorError::Unauthorized { provider_error } => {
            assert_eq!(provider_error, "INVALID_SESSION_ID");
        }
        other => panic!("{other:?}"),
    }

    // Injected faults come back typed: 5xx retryable, the quota refusal as such.
    admin
        .force_faults("demo", FaultOutcome::ServerError, 1)
        .unwrap();
    let error = connector.list_objects(&credentials).await.unwrap_err();
    assert!(
        matches!(error, ConnectorError::Unavailable { .. }) && error.is_retryable(),
        "{error:?}"
    );
    admin
        .force_faults("demo", FaultOutcome::RateLimited, 1)
        .unwrap();
    let error = connector.list_objects(&credentials).await.unwrap_err();
    assert!(matches!(error, ConnectorError::QuotaExhausted), "{error:?}");
    // A fault inside a composite batch fails the describe too.
    let listed = connector.list_objects(&credentials).await.unwrap();
    admin
        .force_faults("demo", FaultOutcome::ServerError, 1)
        .unwrap();
    let error = connector
        .describe_objects(&credentials, &listed)
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(
        connector
            .describe_objects(&credentials, &listed)
            .await
            .unwrap()
            .len(),
        listed.len()
    );
    sf.shutdown().await;
}

#[tokio::test]
async fn hubspot_portal_is_described_with_custom_objects() {
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
    let connector = Connector::for_provider(Provider::HubSpot, http());
    let objects = connector.describe_all(&credentials, &[]).await.unwrap();
    let names: Vec<&str> = objects.iter().map(|o| o.object.name.as_str()).collect();
    assert!(
        names.contains(&"contacts") && names.contains(&"deals"),
        "{names:?}"
    );
    // The sandbox has no tickets: a standard object the portal lacks is left out.
    assert!(!names.contains(&"tickets"), "{names:?}");
    let custom: Vec<_> = objects.iter().filter(|o| o.object.custom).collect();
    assert!(!custom.is_empty());
    for object in custom {
        assert!(object.object.name.starts_with("2-"));
        assert!(object.fields.len() > 10);
        // The primary display property is required, so not nillable.
        assert!(object.fields.iter().any(|f| !f.nillable));
    }
    let refused = connector
        .list_objects(&Credentials {
            instance_url: hs.base_url().to_owned(),
            access_token: SecretString::from("bogus".to_owned()),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ConnectorError::Unauthorized { .. }),
        "{refused:?}"
    );
    hs.shutdown().await;
}
