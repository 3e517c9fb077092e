//! A row written for one tenant is invisible to every other tenant, and errors say nothing
//! about whether another tenant's resource exists.

use syncline_integration_tests::{Storage, spawn_suite, unique_tenant};
use syncline_proto::conflict::v1::conflict_service_client::ConflictServiceClient;
use syncline_proto::conflict::v1::{
    GetConflictRequest, GetPolicyRequest, Policy, Strategy, UpdatePolicyRequest,
};
use syncline_proto::sync::v1::sync_service_client::SyncServiceClient;
use syncline_proto::sync::v1::{
    CreateWebhookEndpointRequest, DeleteWebhookEndpointRequest, GetWebhookEndpointRequest,
    ListWebhookEndpointsRequest, WebhookEndpoint, WebhookTopic,
};
use tonic::Code;

async fn a_row_written_for_tenant_a_is_invisible_to_tenant_b(storage: Storage) {
    let suite = spawn_suite(storage).await;
    let (a, b) = (unique_tenant("a"), unique_tenant("b"));
    let mut sync = SyncServiceClient::new(suite.gateway());

    let created = sync
        .create_webhook_endpoint(suite.as_tenant(
            "p1",
            &a,
            CreateWebhookEndpointRequest {
                webhook_endpoint: Some(WebhookEndpoint {
                    url: "https://product.example/hooks".into(),
                    topics: vec![WebhookTopic::Changes as i32],
                    ..Default::default()
                }),
            },
        ))
        .await
        .expect("tenant a creates an endpoint")
        .into_inner();
    let id = created.webhook_endpoint.unwrap().id;

    let reader = sync.clone();
    let get = |tenant: String| {
        let mut sync = reader.clone();
        let request = suite.as_tenant(
            "p1",
            &tenant,
            GetWebhookEndpointRequest {
                webhook_endpoint_id: id.clone(),
            },
        );
        async move { sync.get_webhook_endpoint(request).await }
    };
    assert!(
        get(a.clone()).await.is_ok(),
        "tenant a sees its own endpoint"
    );

    let foreign = get(b.clone()).await.unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    let missing = sync
        .get_webhook_endpoint(suite.as_tenant(
            "p1",
            &b,
            GetWebhookEndpointRequest {
                webhook_endpoint_id: "whk_does_not_exist".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(
        strip_trace(foreign.message()),
        strip_trace(missing.message()),
        "a foreign id must look exactly like a missing one"
    );

    let listed = sync
        .list_webhook_endpoints(suite.as_tenant("p1", &b, ListWebhookEndpointsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.webhook_endpoints.is_empty());

    let delete = sync
        .delete_webhook_endpoint(suite.as_tenant(
            "p1",
            &b,
            DeleteWebhookEndpointRequest {
                webhook_endpoint_id: id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(delete.code(), Code::NotFound);
    assert!(
        get(a.clone()).await.is_ok(),
        "b's delete must not touch a's row"
    );

    // The same tenant id in another project is another tenant.
    let other_project = sync
        .get_webhook_endpoint(suite.as_tenant(
            "p2",
            &a,
            GetWebhookEndpointRequest {
                webhook_endpoint_id: id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(other_project.code(), Code::NotFound);

    // Policies too.
    let mut conflicts = ConflictServiceClient::new(suite.gateway());
    conflicts
        .update_policy(suite.as_tenant(
            "p1",
            &a,
            UpdatePolicyRequest {
                policy: Some(Policy {
                    default_strategy: Strategy::ManualReview as i32,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["default_strategy".into()],
                }),
            },
        ))
        .await
        .unwrap();
    let b_policy = conflicts
        .get_policy(suite.as_tenant("p1", &b, GetPolicyRequest {}))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(b_policy.default_strategy, Strategy::LastWriteWins as i32);
    let status = conflicts
        .get_conflict(suite.as_tenant(
            "p1",
            &b,
            GetConflictRequest {
                conflict_id: "cfl_unknown".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    suite.stop().await;
}

async fn invalid_requests_get_field_violations(storage: Storage) {
    use tonic_types::StatusExt;
    let suite = spawn_suite(storage).await;
    let status = ConflictServiceClient::new(suite.gateway())
        .update_policy(suite.as_tenant(
            "p1",
            &unique_tenant("v"),
            UpdatePolicyRequest {
                policy: Some(Policy {
                    default_strategy: Strategy::SystemOfRecord as i32,
                    ..Default::default()
                }),
                update_mask: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let violations = &details
        .bad_request()
        .expect("field violations")
        .field_violations;
    assert_eq!(violations[0].field, "policy.default_system_of_record");
    let trace_id = details
        .error_info()
        .and_then(|info| info.metadata.get("trace_id"))
        .expect("errors carry the trace id");
    assert_eq!(trace_id.len(), 32);
    suite.stop().await;
}

fn strip_trace(message: &str) -> &str {
    message.split(" (trace ").next().unwrap_or(message)
}

crate::both_storages!(
    a_row_written_for_tenant_a_is_invisible_to_tenant_b,
    invalid_requests_get_field_violations,
);
