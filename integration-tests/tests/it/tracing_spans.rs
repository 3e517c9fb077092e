//! One request through the gateway leaves one trace whose spans, in the gateway and in the
//! backend, all carry the caller's tenant.

use std::time::Duration;

use syncline_integration_tests::{Storage, spawn_suite, unique_tenant};
use syncline_proto::conflict::v1::GetPolicyRequest;
use syncline_proto::conflict::v1::conflict_service_client::ConflictServiceClient;

const METHOD: &str = "syncline.conflict.v1.ConflictService/GetPolicy";

async fn one_request_leaves_one_trace_with_the_tenant_on_every_span(storage: Storage) {
    let telemetry = syncline_test_support::otlp::telemetry();
    let suite = spawn_suite(storage).await;
    let tenant = unique_tenant("traced");
    ConflictServiceClient::new(suite.gateway())
        .get_policy(suite.as_tenant("p1", &tenant, GetPolicyRequest {}))
        .await
        .unwrap();
    telemetry.flush().await;
    let ours = |spans: &[syncline_test_support::otlp::ReceivedSpan]| {
        spans
            .iter()
            .filter(|s| s.attributes.get("tenant.id") == Some(&tenant))
            .cloned()
            .collect::<Vec<_>>()
    };
    // The gateway span and the backend span, both named after the method.
    let spans = telemetry
        .wait_for(Duration::from_secs(20), |spans| {
            ours(spans).iter().filter(|s| s.name == METHOD).count() >= 2
        })
        .await;
    let ours = ours(&spans);
    let trace_ids: std::collections::HashSet<_> = ours.iter().map(|s| &s.trace_id).collect();
    assert_eq!(trace_ids.len(), 1, "one trace: {ours:#?}");
    let trace_id = trace_ids.into_iter().next().unwrap();
    let in_trace: Vec<_> = spans.iter().filter(|s| &s.trace_id == trace_id).collect();
    let server_spans: Vec<_> = in_trace.iter().filter(|s| s.name == METHOD).collect();
    assert_eq!(server_spans.len(), 2, "gateway and backend: {in_trace:#?}");
    for span in &in_trace {
        assert_eq!(span.attributes.get("tenant.id"), Some(&tenant), "{span:#?}");
    }
    for span in &server_spans {
        assert_eq!(
            span.attributes.get("rpc.system").map(String::as_str),
            Some("grpc")
        );
    }
    let root = server_spans
        .iter()
        .find(|s| !in_trace.iter().any(|p| p.span_id == s.parent_span_id))
        .expect("the gateway span is the root");
    let child = server_spans
        .iter()
        .find(|s| s.span_id != root.span_id)
        .expect("the backend span");
    assert_eq!(
        child.parent_span_id, root.span_id,
        "backend span continues the gateway's"
    );
    suite.stop().await;
}

/// The deadline each server span of a request's trace saw, gateway first.
async fn deadlines_seen(
    suite: &syncline_integration_tests::TestSuite,
    timeout: Option<Duration>,
) -> (i64, i64) {
    let telemetry = syncline_test_support::otlp::telemetry();
    let tenant = unique_tenant("deadline");
    let mut request = suite.as_tenant("p1", &tenant, GetPolicyRequest {});
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    ConflictServiceClient::new(suite.gateway())
        .get_policy(request)
        .await
        .unwrap();
    telemetry.flush().await;
    let spans = telemetry
        .wait_for(Duration::from_secs(20), |spans| {
            spans
                .iter()
                .filter(|s| s.name == METHOD && s.attributes.get("tenant.id") == Some(&tenant))
                .count()
                >= 2
        })
        .await;
    let ours: Vec<_> = spans
        .iter()
        .filter(|s| s.name == METHOD && s.attributes.get("tenant.id") == Some(&tenant))
        .collect();
    let deadline = |s: &&syncline_test_support::otlp::ReceivedSpan| -> i64 {
        s.attributes["rpc.grpc.deadline_ms"].parse().unwrap()
    };
    let gateway = ours
        .iter()
        .find(|s| !ours.iter().any(|p| p.span_id == s.parent_span_id))
        .unwrap();
    let backend = ours.iter().find(|s| s.span_id != gateway.span_id).unwrap();
    (deadline(gateway), deadline(backend))
}

async fn deadlines_propagate_to_the_backend(storage: Storage) {
    let suite = spawn_suite(storage).await;
    // The caller's deadline reaches the backend (less what the gateway already spent).
    let (gateway, backend) = deadlines_seen(&suite, Some(Duration::from_secs(5))).await;
    assert!(
        gateway <= 5000 && gateway > 4000,
        "gateway saw {gateway} ms"
    );
    assert!(
        backend <= gateway && backend > 0,
        "backend saw {backend} ms"
    );
    // No deadline: the gateway applies its default (30 s) and the backend sees it.
    let (gateway, backend) = deadlines_seen(&suite, None).await;
    assert_eq!(gateway, 30_000);
    assert!(
        backend <= 30_000 && backend > 25_000,
        "backend saw {backend} ms"
    );
    // Longer than allowed: capped at the maximum (300 s).
    let (gateway, _) = deadlines_seen(&suite, Some(Duration::from_secs(3600))).await;
    assert_eq!(gateway, 300_000);
    suite.stop().await;
}

crate::both_storages!(
    one_request_leaves_one_trace_with_the_tenant_on_every_span,
    deadlines_propagate_to_the_backend,
);
