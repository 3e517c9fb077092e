//! The gateway authenticates every call and forwards only public methods; backends accept
//! tenant scope only from a verified internal credential.

use syncline_config::ServiceName;
use syncline_integration_tests::{Storage, spawn_suite};
use syncline_proto::authvault::v1::GetAccessTokenRequest;
use syncline_proto::authvault::v1::token_service_client::TokenServiceClient;
use syncline_proto::conflict::v1::GetPolicyRequest;
use syncline_proto::conflict::v1::conflict_service_client::ConflictServiceClient;
use syncline_service_kit::internal_auth::{CallerOrigin, HEADER, InternalAuth};
use tonic::Code;

/// Valid claims with `edit` applied.
fn json_claims(
    project: &str,
    tenant: &str,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> serde_json::Value {
    let mut claims = syncline_test_support::tokens::claims(project, tenant);
    edit(claims.as_object_mut().unwrap());
    claims
}

async fn policy_call(
    suite: &syncline_integration_tests::TestSuite,
    authorization: Option<String>,
) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(GetPolicyRequest {});
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    ConflictServiceClient::new(suite.gateway())
        .get_policy(request)
        .await
        .map(|_| ())
}

async fn tokens_are_checked_at_the_gateway(storage: Storage) {
    let suite = spawn_suite(storage).await;
    let sign = |claims: &serde_json::Value, secret: &str| {
        format!(
            "Bearer {}",
            syncline_test_support::tokens::sign(claims, secret)
        )
    };
    let valid = json_claims("p1", "t1", |_| {});
    assert!(
        policy_call(&suite, Some(sign(&valid, &suite.jwt_secret)))
            .await
            .is_ok()
    );

    let cases = [
        ("missing", None),
        ("not a jwt", Some("Bearer not.a.jwt".to_owned())),
        (
            "forged",
            Some(sign(&valid, "a-different-secret-of-enough-length!!")),
        ),
        (
            "expired",
            Some(sign(
                &json_claims("p1", "t1", |c| {
                    c.insert("exp".into(), 1_000_000.into());
                }),
                &suite.jwt_secret,
            )),
        ),
        (
            "wrong audience",
            Some(sign(
                &json_claims("p1", "t1", |c| {
                    c.insert("aud".into(), "another-api".into());
                }),
                &suite.jwt_secret,
            )),
        ),
        (
            "wrong issuer",
            Some(sign(
                &json_claims("p1", "t1", |c| {
                    c.insert("iss".into(), "evil".into());
                }),
                &suite.jwt_secret,
            )),
        ),
        (
            "no tenant claim",
            Some(sign(
                &json_claims("p1", "t1", |c| {
                    c.remove("tenant_id");
                }),
                &suite.jwt_secret,
            )),
        ),
    ];
    for (case, header) in cases {
        let status = policy_call(&suite, header).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{case}: {status:?}");
        assert_eq!(crate::reason(&status), "UNAUTHENTICATED", "{case}");
    }
    suite.stop().await;
}

async fn internal_methods_are_refused(storage: Storage) {
    let suite = spawn_suite(storage).await;
    let request = || GetAccessTokenRequest {
        connection_id: "conn_x".into(),
        ..Default::default()
    };

    // Through the gateway: not on the allow-list, whoever asks.
    let status = TokenServiceClient::new(suite.gateway())
        .get_access_token(suite.as_tenant("p1", "t1", request()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

    // Straight to the backend without a credential, or with a forged one.
    let direct = suite.channel(ServiceName::AuthVault);
    let status = TokenServiceClient::new(direct.clone())
        .get_access_token(request())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let forged = InternalAuth::new(&"x".repeat(40).into());
    let context = context("p1", "t1");
    let mut req = tonic::Request::new(request());
    req.metadata_mut().insert(
        HEADER,
        forged
            .sign(
                &context,
                &CallerOrigin::Service("sync-engine".into()),
                std::time::Duration::from_secs(30),
            )
            .unwrap()
            .parse()
            .unwrap(),
    );
    let status = TokenServiceClient::new(direct.clone())
        .get_access_token(req)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // A genuine credential forwarded by the gateway cannot reach an internal service.
    let genuine = InternalAuth::new(&suite.internal_secret.clone().into());
    let mut req = tonic::Request::new(request());
    req.metadata_mut().insert(
        HEADER,
        genuine
            .sign(
                &context,
                &CallerOrigin::Gateway,
                std::time::Duration::from_secs(30),
            )
            .unwrap()
            .parse()
            .unwrap(),
    );
    let status = TokenServiceClient::new(direct)
        .get_access_token(req)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    suite.stop().await;
}

async fn a_caller_cannot_smuggle_an_internal_credential_through_the_gateway(storage: Storage) {
    let suite = spawn_suite(storage).await;
    let genuine = InternalAuth::new(&suite.internal_secret.clone().into());
    // Even holding a valid internal credential for tenant B, a caller authenticated as A
    // acts as A: the gateway replaces the header.
    let victim = context("p1", "victim");
    let mut request = suite.as_tenant(
        "p1",
        "attacker",
        syncline_proto::conflict::v1::UpdatePolicyRequest {
            policy: Some(syncline_proto::conflict::v1::Policy {
                default_strategy: syncline_proto::conflict::v1::Strategy::ManualReview as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["default_strategy".into()],
            }),
        },
    );
    request.metadata_mut().insert(
        HEADER,
        genuine
            .sign(
                &victim,
                &CallerOrigin::Gateway,
                std::time::Duration::from_secs(30),
            )
            .unwrap()
            .parse()
            .unwrap(),
    );
    ConflictServiceClient::new(suite.gateway())
        .update_policy(request)
        .await
        .unwrap();
    let victim_policy = ConflictServiceClient::new(suite.gateway())
        .get_policy(suite.as_tenant("p1", "victim", GetPolicyRequest {}))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(
        victim_policy.default_strategy,
        syncline_proto::conflict::v1::Strategy::LastWriteWins as i32,
        "the victim's policy must be untouched"
    );
    suite.stop().await;
}

fn context(project: &str, tenant: &str) -> syncline_domain::TenantContext {
    syncline_domain::TenantContext {
        project_id: syncline_domain::ProjectId::parse(project).unwrap(),
        tenant_id: syncline_domain::TenantId::parse(tenant).unwrap(),
        subject: "test".into(),
    }
}

crate::both_storages!(
    tokens_are_checked_at_the_gateway,
    internal_methods_are_refused,
    a_caller_cannot_smuggle_an_internal_credential_through_the_gateway,
);
