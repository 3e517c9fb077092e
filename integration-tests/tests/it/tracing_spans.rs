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

crate::both_storages!(one_request_leaves_one_trace_with_the_tenant_on_every_span);
