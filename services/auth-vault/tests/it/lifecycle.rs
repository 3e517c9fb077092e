//! Lifecycle events: a revoked refresh token moves only its connection to NEEDS_REAUTH and
//! publishes CONNECTION_NEEDS_REAUTH for its tenant; authorizations publish
//! CONNECTION_AUTHORIZED and a re-authorization CONNECTION_RECOVERED. While sync-engine
//! answers UNIMPLEMENTED the events wait in the outbox; nothing is lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use secrecy::SecretString;
use syncline_crm_sandbox::salesforce::OrgConfig;
use syncline_proto::authvault::v1::{
    AuditAction, Credentials, GetConnectionRequest, ImportCredentialsRequest,
    ListAuditEventsRequest, ReportUnauthorizedRequest,
};
use syncline_proto::common::v1::{ConnectionStatus, ErrorReason, Event, EventType};
use syncline_proto::sync::v1::intake_service_server::{IntakeService, IntakeServiceServer};
use syncline_proto::sync::v1::{PublishLifecycleEventRequest, PublishLifecycleEventResponse};
use syncline_service_kit::InternalAuth;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

use crate::support::{Harness, quiet_logs};

const SECRET: &str = "0123456789abcdef0123456789abcdef-it";

/// sync-engine's intake as auth-vault sees it: refuses with UNIMPLEMENTED until told to
/// accept, then records each event by id with the tenant its credential names.
#[derive(Clone)]
struct Intake {
    accept: Arc<AtomicBool>,
    seen: Arc<Mutex<HashMap<String, (String, Event)>>>,
    arrived: Arc<Notify>,
    auth: Arc<InternalAuth>,
}

#[tonic::async_trait]
impl IntakeService for Intake {
    async fn publish_lifecycle_event(
        &self,
        request: Request<PublishLifecycleEventRequest>,
    ) -> Result<Response<PublishLifecycleEventResponse>, Status> {
        let token = request
            .metadata()
            .get(syncline_service_kit::internal_auth::HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Status::unauthenticated("no credential"))?;
        let caller = self
            .auth
            .verify(token)
            .map_err(|_| Status::unauthenticated("bad credential"))?;
        if !self.accept.load(Ordering::SeqCst) {
            return Err(Status::unimplemented("not built yet"));
        }
        let event = request.into_inner().event.unwrap();
        self.seen.lock().unwrap().insert(
            event.id.clone(),
            (caller.context.tenant_id.to_string(), event.clone()),
        );
        self.arrived.notify_waiters();
        Ok(Response::new(PublishLifecycleEventResponse {
            event: Some(event),
        }))
    }
}

impl Intake {
    /// Waits until `n` distinct events arrived (woken by each arrival, never by a timer).
    async fn wait_for(&self, n: usize) -> Vec<(String, Event)> {
        loop {
            let arrived = self.arrived.notified();
            {
                let seen = self.seen.lock().unwrap();
                if seen.len() >= n {
                    let mut all: Vec<_> = seen.values().cloned().collect();
                    all.sort_by(|a, b| a.1.id.cmp(&b.1.id));
                    return all;
                }
            }
            arrived.await;
        }
    }
}

fn import(
    app: &str,
    connection_id: &str,
    tokens: &syncline_crm_sandbox::salesforce::TokenPair,
) -> ImportCredentialsRequest {
    ImportCredentialsRequest {
        provider_app_id: app.into(),
        connection_id: connection_id.into(),
        display_name: "crm".into(),
        credentials: Some(Credentials {
            access_token: tokens.access_token.clone(),
            refresh_token: tokens.refresh_token.clone(),
            instance_url: tokens.instance_url.clone(),
            ..Default::default()
        }),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn revocation_is_isolated_and_lifecycle_events_survive_an_absent_intake() {
    let _logs = quiet_logs();
    let intake = Intake {
        accept: Arc::new(AtomicBool::new(false)),
        seen: Arc::default(),
        arrived: Arc::default(),
        auth: Arc::new(InternalAuth::new(&SecretString::from(SECRET.to_owned()))),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let intake_url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IntakeServiceServer::new(intake.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let h = Harness::start(|config| config.gateway.backends.sync_engine = intake_url).await;
    h.sf.admin()
        .create_org(OrgConfig {
            name: "globex".into(),
            ..OrgConfig::default()
        })
        .unwrap();
    let acme_app = h.salesforce_app("acme").await;
    let globex_app = h.salesforce_app("globex").await;
    let import_as = |tenant: &'static str, request| {
        let mut client = h.apps();
        let request = h.request(tenant, request);
        async move {
            client
                .import_credentials(request)
                .await
                .unwrap()
                .into_inner()
                .connection
                .unwrap()
        }
    };
    let a_tokens = h.sf.admin().issue_tokens("demo", None).unwrap();
    let a = import_as("acme", import(&acme_app, "", &a_tokens)).await;
    let b_tokens = h.sf.admin().issue_tokens("globex", None).unwrap();
    let b = import_as("globex", import(&globex_app, "", &b_tokens)).await;

    // acme's customer revokes access at Salesforce; the vault learns it on a 401.
    h.sf.admin().revoke_refresh_tokens("demo").unwrap();
    let report = |tenant: &'static str, id: String, version| {
        let mut client = h.tokens();
        let request = h.request(
            tenant,
            ReportUnauthorizedRequest {
                connection_id: id,
                token_version: version,
                provider_error: "INVALID_SESSION_ID".into(),
            },
        );
        async move { client.report_unauthorized(request).await }
    };
    let status = report("acme", a.id.clone(), 1).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(status.message().contains("authorized again"), "{status:?}");
    // globex, on the same provider app kind and the same sandbox, is untouched.
    let refreshed = report("globex", b.id.clone(), 1).await.unwrap();
    assert_eq!(refreshed.into_inner().token.unwrap().version, 2);
    let status_of = |tenant: &'static str, id: String| {
        let mut client = h.apps();
        let request = h.request(tenant, GetConnectionRequest { connection_id: id });
        async move {
            client
                .get_connection(request)
                .await
                .unwrap()
                .into_inner()
                .connection
                .unwrap()
        }
    };
    assert_eq!(
        status_of("acme", a.id.clone()).await.status,
        ConnectionStatus::NeedsReauth as i32
    );
    assert_eq!(
        status_of("globex", b.id.clone()).await.status,
        ConnectionStatus::Active as i32
    );

    // sync-engine does not take lifecycle events yet: they wait in the outbox.
    let far = syncline_storage::now_ms() + 3_600_000;
    let pass = h.vault.publish_lifecycle_events(far).await.unwrap();
    assert_eq!(pass.published, 0);
    assert_eq!(h.vault.pending_lifecycle_events().await.unwrap(), 3);
    assert!(intake.seen.lock().unwrap().is_empty());

    // Once it does, every event arrives, each to its own tenant.
    intake.accept.store(true, Ordering::SeqCst);
    h.vault
        .publish_lifecycle_events(far + 3_600_000)
        .await
        .unwrap();
    let events = intake.wait_for(3).await;
    let kinds: Vec<(String, i32, String)> = events
        .iter()
        .map(|(tenant, e)| (tenant.clone(), e.r#type, e.connection_id.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "acme".to_owned(),
                EventType::ConnectionAuthorized as i32,
                a.id.clone()
            ),
            (
                "globex".to_owned(),
                EventType::ConnectionAuthorized as i32,
                b.id.clone()
            ),
            (
                "acme".to_owned(),
                EventType::ConnectionNeedsReauth as i32,
                a.id.clone()
            ),
        ]
    );
    assert_eq!(events[2].1.reason, ErrorReason::NeedsReauth as i32);

    // Re-authorizing (here: importing fresh tokens into the same connection) restores it
    // with its id and configuration, and publishes CONNECTION_RECOVERED.
    let fresh = h.sf.admin().issue_tokens("demo", None).unwrap();
    let restored = import_as("acme", import(&acme_app, &a.id, &fresh)).await;
    assert_eq!(restored.id, a.id);
    assert_eq!(restored.display_name, a.display_name);
    assert_eq!(restored.status, ConnectionStatus::Active as i32);
    assert!(h.token("acme", &a.id).await.is_ok());
    h.vault
        .publish_lifecycle_events(far + 7_200_000)
        .await
        .unwrap();
    let events = intake.wait_for(4).await;
    assert_eq!(events[3].1.r#type, EventType::ConnectionRecovered as i32);
    assert_eq!(events[3].0, "acme");

    // The trail records the revocation for acme only.
    let revoked = |tenant: &'static str| {
        let mut client = h.apps();
        let request = h.request(
            tenant,
            ListAuditEventsRequest {
                actions: vec![AuditAction::TokenRevoked as i32],
                ..Default::default()
            },
        );
        async move {
            client
                .list_audit_events(request)
                .await
                .unwrap()
                .into_inner()
                .audit_events
        }
    };
    let acme_revoked = revoked("acme").await;
    assert_eq!(acme_revoked.len(), 1);
    assert_eq!(acme_revoked[0].connection_id, a.id);
    assert_eq!(
        acme_revoked[0].failure_reason,
        ErrorReason::NeedsReauth as i32
    );
    assert!(revoked("globex").await.is_empty());

    h.stop().await;
    server.abort();
}
