//! Every service answers through the gateway, and health and reflection answer everywhere.

use syncline_config::ServiceName;
use syncline_integration_tests::{Storage, spawn_suite, unique_tenant};
use syncline_proto::authvault::v1::ListConnectionsRequest;
use syncline_proto::authvault::v1::auth_vault_service_client::AuthVaultServiceClient;
use syncline_proto::conflict::v1::GetPolicyRequest;
use syncline_proto::conflict::v1::conflict_service_client::ConflictServiceClient;
use syncline_proto::mapping::v1::ListManifestVersionsRequest;
use syncline_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use syncline_proto::schema::v1::ListObjectsRequest;
use syncline_proto::schema::v1::schema_service_client::SchemaServiceClient;
use syncline_proto::sync::v1::ListWebhookEndpointsRequest;
use syncline_proto::sync::v1::sync_service_client::SyncServiceClient;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn every_service_answers_through_the_gateway(storage: Storage) {
    let suite = spawn_suite(storage).await;
    let tenant = unique_tenant("reach");
    let gw = suite.gateway();

    let connections = AuthVaultServiceClient::new(gw.clone())
        .list_connections(suite.as_tenant("p1", &tenant, ListConnectionsRequest::default()))
        .await
        .expect("auth-vault answers")
        .into_inner();
    assert!(connections.connections.is_empty());

    // schema-discovery reads its own tables: an unknown connection is NOT_FOUND from there.
    let status = SchemaServiceClient::new(gw.clone())
        .list_objects(suite.as_tenant(
            "p1",
            &tenant,
            ListObjectsRequest {
                connection_id: "conn_unknown".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(crate::reason(&status), "NOT_FOUND");

    let versions = MappingServiceClient::new(gw.clone())
        .list_manifest_versions(suite.as_tenant(
            "p1",
            &tenant,
            ListManifestVersionsRequest::default(),
        ))
        .await
        .expect("mapping answers")
        .into_inner();
    assert!(versions.manifests.is_empty());

    let endpoints = SyncServiceClient::new(gw.clone())
        .list_webhook_endpoints(suite.as_tenant(
            "p1",
            &tenant,
            ListWebhookEndpointsRequest::default(),
        ))
        .await
        .expect("sync-engine answers")
        .into_inner();
    assert!(endpoints.webhook_endpoints.is_empty());

    let policy = ConflictServiceClient::new(gw)
        .get_policy(suite.as_tenant("p1", &tenant, GetPolicyRequest {}))
        .await
        .expect("conflict-resolver answers")
        .into_inner();
    assert!(policy.policy.is_some());
    suite.stop().await;
}

async fn services_list(channel: tonic::transport::Channel) -> Vec<String> {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = responses
        .next()
        .await
        .expect("one response")
        .expect("reflection ok");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection response {other:?}"),
    }
}

async fn health_and_reflection_answer_on_every_service(storage: Storage) {
    let suite = spawn_suite(storage).await;
    for service in ServiceName::ALL {
        let channel = suite.channel(service);
        let health = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("{service} health: {e:?}"))
            .into_inner();
        assert_eq!(health.status, ServingStatus::Serving as i32, "{service}");
        let services = services_list(channel).await;
        assert!(
            services.iter().any(|s| s == "grpc.health.v1.Health"),
            "{service}: {services:?}"
        );
    }
    let public = services_list(suite.gateway()).await;
    for expected in [
        "syncline.authvault.v1.AuthVaultService",
        "syncline.schema.v1.SchemaService",
        "syncline.mapping.v1.MappingService",
        "syncline.sync.v1.SyncService",
        "syncline.conflict.v1.ConflictService",
    ] {
        assert!(
            public.iter().any(|s| s == expected),
            "{expected} in {public:?}"
        );
    }
    for internal in [
        "syncline.authvault.v1.TokenService",
        "syncline.sync.v1.IntakeService",
    ] {
        assert!(
            !public.iter().any(|s| s == internal),
            "{internal} leaked: {public:?}"
        );
    }
    let backend = services_list(suite.channel(ServiceName::AuthVault)).await;
    assert!(
        backend
            .iter()
            .any(|s| s == "syncline.authvault.v1.TokenService")
    );
    suite.stop().await;
}

crate::both_storages!(
    every_service_answers_through_the_gateway,
    health_and_reflection_answer_on_every_service,
);
