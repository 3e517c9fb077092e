//! Webhooks: signatures against HubSpot's published test vectors, and delivery with
//! HubSpot's retry rules to a local receiver. Tests wait on the receiver's channel and on the
//! sandbox's delivery reports, never on time.

use super::{fixture, spawn};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Map, Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use syncline_crm_sandbox::hubspot::webhooks::{signature_v1, signature_v2, signature_v3};
use syncline_crm_sandbox::hubspot::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PORTAL_ID, DeliveryOutcome, RetryPolicy,
    WebhookSettings,
};
use tokio::sync::mpsc;

#[test]
fn signatures_match_hubspots_test_vectors() {
    let v = fixture("webhook-signature-test-vectors.json");
    let secret = v["client_secret"].as_str().unwrap();
    let body = v["request_body"].as_str().unwrap().as_bytes();
    let url = v["url"].as_str().unwrap();
    let method = v["http_method"].as_str().unwrap();
    assert_eq!(
        signature_v1(secret, body),
        v["v1"]["signature"].as_str().unwrap()
    );
    assert_eq!(
        signature_v2(secret, method, url, body),
        v["v2"]["signature"].as_str().unwrap()
    );
    let g = &v["v2_get_empty_body"];
    assert_eq!(
        signature_v2(
            secret,
            g["http_method"].as_str().unwrap(),
            url,
            g["request_body"].as_str().unwrap().as_bytes()
        ),
        g["signature"].as_str().unwrap()
    );
    let ts = v["v3"]["timestamp"].as_str().unwrap();
    assert_eq!(
        signature_v3(secret, method, url, body, ts),
        v["v3"]["signature"].as_str().unwrap()
    );
}

struct Received {
    headers: HeaderMap,
    body: Bytes,
}

/// A local webhook receiver answering with scripted statuses (then 200), reporting every
/// request on a channel.
async fn receiver(
    script: Vec<(u16, Option<&'static str>)>,
) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            let script = Arc::clone(&script);
            async move {
                let _ = tx.send(Received { headers, body });
                let (status, retry_after) =
                    script.lock().unwrap().pop_front().unwrap_or((200, None));
                let mut resp = axum::response::Response::new(axum::body::Body::empty());
                *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                if let Some(ra) = retry_after {
                    resp.headers_mut()
                        .insert("retry-after", ra.parse().unwrap());
                }
                resp
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

fn settings(url: &str, max_attempts: u32) -> WebhookSettings {
    WebhookSettings {
        target_url: url.to_owned(),
        retry: RetryPolicy {
            max_attempts,
            initial_backoff_ms: 5,
            max_backoff_ms: 50,
            timeout_ms: 2_000,
        },
        ..WebhookSettings::default()
    }
}

fn verify(url: &str, r: &Received) -> Vec<Value> {
    let h = |n: &str| r.headers.get(n).unwrap().to_str().unwrap().to_owned();
    assert_eq!(h("content-type"), "application/json");
    assert_eq!(h("x-hubspot-signature-version"), "v1");
    assert_eq!(
        h("x-hubspot-signature"),
        signature_v1(DEMO_CLIENT_SECRET, &r.body)
    );
    let ts = h("x-hubspot-request-timestamp");
    assert_eq!(
        h("x-hubspot-signature-v3"),
        signature_v3(DEMO_CLIENT_SECRET, "POST", url, &r.body, &ts)
    );
    let age = chrono::Utc::now().timestamp_millis() - ts.parse::<i64>().unwrap();
    assert!(
        (0..300_000).contains(&age),
        "timestamp within HubSpot's 5-minute window"
    );
    serde_json::from_slice::<Value>(&r.body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn props(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn changes_are_delivered_signed_and_retried_after_5xx_and_429() {
    let env = spawn().await;
    let (url, mut rx) = receiver(vec![(500, None), (429, Some("0"))]).await;
    let admin = env.hs.admin();
    admin
        .set_webhooks(DEMO_CLIENT_ID, settings(&url, 10))
        .unwrap();
    let id = admin
        .create_record(
            DEMO_PORTAL_ID,
            "contacts",
            &props(json!({"email": "hook@example.com", "firstname": "Hook"})),
        )
        .unwrap();

    let mut attempts = Vec::new();
    for _ in 0..3 {
        let r = rx.recv().await.unwrap();
        attempts.push(verify(&url, &r));
    }
    let numbers: Vec<u64> = attempts
        .iter()
        .map(|b| b[0]["attemptNumber"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [0, 1, 2]);
    let batch = &attempts[2];
    let creation = batch
        .iter()
        .find(|e| e["subscriptionType"] == "contact.creation")
        .unwrap();
    assert_eq!(creation["objectId"], id);
    assert_eq!(creation["portalId"], DEMO_PORTAL_ID);
    assert_eq!(creation["changeFlag"], "NEW");
    assert_eq!(creation["changeSource"], "CRM");
    assert!(
        batch
            .iter()
            .any(|e| e["subscriptionType"] == "contact.propertyChange"
                && e["propertyName"] == "firstname"
                && e["propertyValue"] == "Hook")
    );
    // Same keys and types as HubSpot's recorded events.
    let recorded = fixture("webhook-batch-examples.json");
    let opts = syncline_crm_sandbox::common::ShapeOptions {
        optional_keys: vec![
            "changeFlag".into(),
            "propertyName".into(),
            "propertyValue".into(),
        ],
        ..Default::default()
    };
    syncline_crm_sandbox::common::compare::assert_same_shape(
        &recorded,
        &Value::Array(batch.clone()),
        &opts,
        "webhook batch",
    );

    // An API change is reported as INTEGRATION, and a deletion flags DELETED.
    let r = env
        .patch(
            &format!("/crm/v3/objects/contacts/{id}"),
            &json!({"properties": {"lastname": "Api"}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let update = verify(&url, &rx.recv().await.unwrap());
    assert_eq!(update[0]["changeSource"], "INTEGRATION");
    assert_eq!(update[0]["propertyName"], "lastname");
    admin
        .archive_record(DEMO_PORTAL_ID, "contacts", id)
        .unwrap();
    let deletion = verify(&url, &rx.recv().await.unwrap());
    assert_eq!(deletion[0]["subscriptionType"], "contact.deletion");
    assert_eq!(deletion[0]["changeFlag"], "DELETED");
    env.hs.shutdown().await;
}

#[tokio::test]
async fn no_retry_on_4xx_that_hubspot_gives_up_on() {
    let env = spawn().await;
    let admin = env.hs.admin();
    let mut reports = admin.subscribe_deliveries();
    let (url, mut rx) = receiver(vec![(404, None)]).await;
    admin
        .set_webhooks(DEMO_CLIENT_ID, settings(&url, 10))
        .unwrap();
    admin
        .create_record(DEMO_PORTAL_ID, "deals", &props(json!({"dealname": "Nope"})))
        .unwrap();
    let first = rx.recv().await.unwrap();
    assert_eq!(verify(&url, &first)[0]["attemptNumber"], 0);
    let report = reports.recv().await.unwrap();
    assert_eq!(
        (report.status, report.outcome),
        (Some(404), DeliveryOutcome::GaveUp)
    );
    assert!(rx.try_recv().is_err(), "no second attempt after 404");
    env.hs.shutdown().await;
}

#[tokio::test]
async fn connection_failures_are_retried_until_attempts_run_out() {
    let env = spawn().await;
    let admin = env.hs.admin();
    let mut reports = admin.subscribe_deliveries();
    // A port with nothing listening.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    admin
        .set_webhooks(DEMO_CLIENT_ID, settings(&url, 3))
        .unwrap();
    admin
        .create_record(
            DEMO_PORTAL_ID,
            "companies",
            &props(json!({"name": "Unreachable"})),
        )
        .unwrap();
    let mut outcomes = Vec::new();
    while outcomes.last() != Some(&DeliveryOutcome::GaveUp) {
        let r = reports.recv().await.unwrap();
        assert_eq!(r.status, None);
        outcomes.push(r.outcome);
    }
    assert_eq!(outcomes.len(), 3);
    assert!(matches!(outcomes[0], DeliveryOutcome::Retrying { .. }));
    env.hs.shutdown().await;
}
