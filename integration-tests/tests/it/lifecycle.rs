//! Lifecycle events end to end: a Salesforce customer revokes tenant A's access, A's token
//! refresh fails in auth-vault, auth-vault's outbox publishes CONNECTION_NEEDS_REAUTH to
//! sync-engine's intake, and the product hears it on A's `StreamLifecycleEvents` through the
//! gateway and as a signed LIFECYCLE_EVENTS webhook — tenant B hears nothing of it.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use syncline_config::ServiceName;
use syncline_crm_sandbox::salesforce::OrgConfig;
use syncline_integration_tests::{Sandboxes, Storage, TestSuite, spawn_suite, unique_tenant};
use syncline_proto::authvault::v1::token_service_client::TokenServiceClient;
use syncline_proto::authvault::v1::{GetAccessTokenRequest, ReportUnauthorizedRequest};
use syncline_proto::common::v1::{ErrorReason, Event, EventType, Provider};
use syncline_proto::sync::v1::intake_service_client::IntakeServiceClient;
use syncline_proto::sync::v1::sync_service_client::SyncServiceClient;
use syncline_proto::sync::v1::{
    CreateWebhookEndpointRequest, PublishLifecycleEventRequest, StreamLifecycleEventsRequest,
    StreamLifecycleEventsResponse, WebhookEndpoint, WebhookTopic,
};
use syncline_sync_engine::delivery::signature;
use syncline_test_support::crm;
use tokio::sync::mpsc;
use tonic::{Code, Streaming};

crate::both_storages!(a_revoked_connection_reaches_its_tenant_as_stream_and_webhook_only,);

const PROJECT: &str = "proj-lifecycle";

async fn open(suite: &TestSuite, tenant: &str) -> Streaming<StreamLifecycleEventsResponse> {
    SyncServiceClient::new(suite.gateway())
        .stream_lifecycle_events(suite.as_tenant(
            PROJECT,
            tenant,
            StreamLifecycleEventsRequest::default(),
        ))
        .await
        .expect("the stream opens")
        .into_inner()
}

/// The next event on the stream (heartbeats skipped).
async fn next_event(stream: &mut Streaming<StreamLifecycleEventsResponse>) -> Event {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("a message within 30 s")
            .expect("the stream is healthy")
            .expect("the stream is open");
        if let Some(event) = message.event {
            return event;
        }
    }
}

struct Received {
    id: String,
    timestamp: i64,
    signature: String,
    body: Vec<u8>,
}

/// A local webhook receiver that answers 204 and hands every request to the test.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = |State(tx): State<mpsc::UnboundedSender<Received>>,
                   headers: HeaderMap,
                   body: Bytes| async move {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let _ = tx.send(Received {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp").parse().unwrap_or(0),
            signature: header("webhook-signature"),
            body: body.to_vec(),
        });
        StatusCode::NO_CONTENT
    };
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(handler))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

async fn a_revoked_connection_reaches_its_tenant_as_stream_and_webhook_only(storage: Storage) {
    let sandboxes = Sandboxes::start().await;
    let suite = spawn_suite(storage).await;
    let sf = &sandboxes.salesforce;
    sf.admin()
        .create_org(OrgConfig {
            name: "globex".into(),
            ..OrgConfig::default()
        })
        .unwrap();
    let (acme, globex) = (unique_tenant("acme"), unique_tenant("globex"));

    // acme's product listens on the stream and on a webhook for NEEDS_REAUTH.
    let (url, mut hooks) = receiver().await;
    let created = SyncServiceClient::new(suite.gateway())
        .create_webhook_endpoint(suite.as_tenant(
            PROJECT,
            &acme,
            CreateWebhookEndpointRequest {
                webhook_endpoint: Some(WebhookEndpoint {
                    url,
                    topics: vec![WebhookTopic::LifecycleEvents as i32],
                    event_types: vec![EventType::ConnectionNeedsReauth as i32],
                    ..WebhookEndpoint::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let key = signature::decode_secret(&created.signing_secret).unwrap();
    let mut acme_stream = open(&suite, &acme).await;
    let mut globex_stream = open(&suite, &globex).await;

    let app = crm::SandboxApp::salesforce(sf.base_url());
    let a = crm::connect(&suite.caller(PROJECT, &acme), &app, "&org=demo").await;
    let b = crm::connect(&suite.caller(PROJECT, &globex), &app, "&org=globex").await;

    // Each tenant first hears of its own authorization, live.
    let authorized = next_event(&mut acme_stream).await;
    assert_eq!(authorized.r#type, EventType::ConnectionAuthorized as i32);
    assert_eq!(authorized.connection_id, a);
    assert_eq!(authorized.sequence, 1);
    let theirs = next_event(&mut globex_stream).await;
    assert_eq!(theirs.r#type, EventType::ConnectionAuthorized as i32);
    assert_eq!(theirs.connection_id, b);
    assert_eq!(theirs.sequence, 1);

    // acme's customer revokes access at Salesforce; the next call with acme's token is
    // refused, sync-engine reports it, and the refresh fails.
    let mut tokens = TokenServiceClient::new(suite.channel(ServiceName::AuthVault));
    let current = tokens
        .get_access_token(suite.as_service(
            "sync-engine",
            PROJECT,
            &acme,
            GetAccessTokenRequest {
                connection_id: a.clone(),
                min_validity: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert!(sf.admin().revoke_refresh_tokens("demo").unwrap() >= 1);
    let status = tokens
        .report_unauthorized(suite.as_service(
            "sync-engine",
            PROJECT,
            &acme,
            ReportUnauthorizedRequest {
                connection_id: a.clone(),
                token_version: current.version,
                provider_error: "INVALID_SESSION_ID".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(crate::reason(&status), "NEEDS_REAUTH");

    // The product hears it on acme's stream...
    let reauth = next_event(&mut acme_stream).await;
    assert_eq!(reauth.r#type, EventType::ConnectionNeedsReauth as i32);
    assert_eq!(reauth.connection_id, a);
    assert_eq!(reauth.provider, Provider::Salesforce as i32);
    assert_eq!(reauth.reason, ErrorReason::NeedsReauth as i32);
    assert_eq!(reauth.sequence, 2);
    assert!(!reauth.id.is_empty());

    // ...and as a signed webhook, in the Standard Webhooks envelope.
    let hook = tokio::time::timeout(Duration::from_secs(30), hooks.recv())
        .await
        .expect("a webhook within 30 s")
        .expect("the receiver runs");
    assert!(hook.id.starts_with("msg_"), "{}", hook.id);
    let now = syncline_storage::now_ms() / 1000;
    assert!(signature::verify(
        &key,
        &hook.id,
        hook.timestamp,
        &hook.body,
        &hook.signature,
        now,
        300
    ));
    let body: serde_json::Value = serde_json::from_slice(&hook.body).unwrap();
    assert_eq!(body["type"], "connection.needs_reauth");
    assert_eq!(body["data"]["id"], reauth.id.as_str());
    assert_eq!(body["data"]["sequence"], "2");
    assert_eq!(body["data"]["connectionId"], a.as_str());
    assert_eq!(body["data"]["type"], "EVENT_TYPE_CONNECTION_NEEDS_REAUTH");
    assert_eq!(body["data"]["reason"], "ERROR_REASON_NEEDS_REAUTH");
    // The endpoint filters on NEEDS_REAUTH: the authorization was not sent to it.
    assert!(hooks.try_recv().is_err());

    // globex heard nothing of it: a marker published for globex after acme's event is the
    // next thing on globex's stream.
    let mut intake = IntakeServiceClient::new(suite.channel(ServiceName::SyncEngine));
    let marker = Event {
        id: "evt_marker".into(),
        r#type: EventType::ConnectionDegraded as i32,
        connection_id: b.clone(),
        message: "marker".into(),
        ..Event::default()
    };
    let published = intake
        .publish_lifecycle_event(suite.as_service(
            "schema-discovery",
            PROJECT,
            &globex,
            PublishLifecycleEventRequest {
                event: Some(marker.clone()),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .event
        .unwrap();
    assert_eq!(published.sequence, 2);
    // A retried publish is the same event, not a second one.
    let retried = intake
        .publish_lifecycle_event(suite.as_service(
            "schema-discovery",
            PROJECT,
            &globex,
            PublishLifecycleEventRequest {
                event: Some(marker),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .event
        .unwrap();
    assert_eq!(retried, published);
    let next = next_event(&mut globex_stream).await;
    assert_eq!(next, published, "nothing of acme's came before it");
    assert_ne!(next.connection_id, a);

    // The intake is internal: the gateway does not let a tenant publish.
    let refused = IntakeServiceClient::new(suite.gateway())
        .publish_lifecycle_event(suite.as_tenant(
            PROJECT,
            &globex,
            PublishLifecycleEventRequest {
                event: Some(Event {
                    r#type: EventType::ConnectionDeleted as i32,
                    ..Event::default()
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unimplemented, "{refused:?}");

    // A stream resumed after acme's authorization starts with the NEEDS_REAUTH event.
    let mut resumed = SyncServiceClient::new(suite.gateway())
        .stream_lifecycle_events(suite.as_tenant(
            PROJECT,
            &acme,
            StreamLifecycleEventsRequest {
                after_sequence: 1,
                ..StreamLifecycleEventsRequest::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_event(&mut resumed).await, reauth);

    drop((acme_stream, globex_stream, resumed));
    suite.stop().await;
    sandboxes.stop().await;
}
