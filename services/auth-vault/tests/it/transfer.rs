//! ImportCredentials and ExportCredentials against the sandboxes: imported tokens work
//! without a reconnect, exports open only with the recipient's private key, plaintext
//! needs the explicit flag, another tenant exports nothing, and every access is audited.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey,
};
use base64::Engine as _;
use prost::Message;
use syncline_crm_sandbox::hubspot::DEMO_PORTAL_ID;
use syncline_proto::authvault::v1::exported_credentials::Credentials as Payload;
use syncline_proto::authvault::v1::{
    AuditAction, Credentials, ExportCredentialsRequest, ImportCredentialsRequest,
    ListAuditEventsRequest, ReportUnauthorizedRequest,
};
use syncline_proto::common::v1::ConnectionStatus;
use syncline_service_kit::time;
use tonic::Code;

use crate::support::{Harness, violated_fields};

fn pem(key: &PrivateDecryptingKey) -> String {
    let der = key.public_key().as_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

fn import(app: &str, credentials: Credentials) -> ImportCredentialsRequest {
    ImportCredentialsRequest {
        provider_app_id: app.into(),
        display_name: "migrated".into(),
        credentials: Some(credentials),
        ..Default::default()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn imported_credentials_work_and_exports_are_sealed_to_the_recipient() {
    let _logs = crate::support::quiet_logs();
    let h = Harness::start(|_| {}).await;
    let app = h.salesforce_app("acme").await;
    let issued = h.sf.admin().issue_tokens("demo", None).unwrap();

    // Bad input: every field named, nothing stored.
    let status = h
        .apps()
        .import_credentials(h.request(
            "acme",
            import(
                "",
                Credentials {
                    access_token: "has space".into(),
                    instance_url: "ftp://x".into(),
                    scopes: vec![String::new()],
                    ..Default::default()
                },
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        [
            "provider_app_id",
            "credentials.access_token",
            "credentials.instance_url",
            "credentials.scopes[0]"
        ]
    );
    // A token the provider does not accept, without a refresh token: refused.
    let status = h
        .apps()
        .import_credentials(h.request(
            "acme",
            import(
                &app,
                Credentials {
                    access_token: "00Dforged!AQnope".into(),
                    instance_url: issued.instance_url.clone(),
                    ..Default::default()
                },
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["credentials.access_token"]);
    // Another project's app is not found.
    let status = h
        .apps()
        .import_credentials(tonic::Request::new(import(&app, Credentials::default())))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // Import: ACTIVE at once, with the org id; the imported token is served as is.
    let expire = syncline_storage::now_ms() + 3_600_000;
    let connection = h
        .apps()
        .import_credentials(h.request(
            "acme",
            import(
                &app,
                Credentials {
                    access_token: issued.access_token.clone(),
                    refresh_token: issued.refresh_token.clone(),
                    access_token_expire_time: Some(time::timestamp(expire)),
                    instance_url: issued.instance_url.clone(),
                    ..Default::default()
                },
            ),
        ))
        .await
        .unwrap()
        .into_inner()
        .connection
        .unwrap();
    assert_eq!(connection.status, ConnectionStatus::Active as i32);
    let org =
        h.sf.admin()
            .orgs()
            .into_iter()
            .find(|o| o.name == "demo")
            .unwrap();
    assert_eq!(connection.external_account_id, org.org_id);
    let token = h.token("acme", &connection.id).await.unwrap();
    assert_eq!(token.access_token, issued.access_token);
    // The imported refresh token works: a reported 401 refreshes it, no reconnect.
    let refreshed = h
        .tokens()
        .report_unauthorized(h.request(
            "acme",
            ReportUnauthorizedRequest {
                connection_id: connection.id.clone(),
                token_version: token.version,
                provider_error: "INVALID_SESSION_ID".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_ne!(refreshed.access_token, issued.access_token);
    let stats = h.sf.admin().stats("demo").unwrap().stats;
    assert_eq!((stats.code_grants, stats.refresh_grants), (0, 1));

    // An expired access token with a good refresh token is refreshed on import.
    let other = h.sf.admin().issue_tokens("demo", None).unwrap();
    let second = h
        .apps()
        .import_credentials(h.request(
            "acme",
            import(
                &app,
                Credentials {
                    access_token: "00Dexpired!AQgone".into(),
                    refresh_token: other.refresh_token.clone(),
                    instance_url: other.instance_url.clone(),
                    ..Default::default()
                },
            ),
        ))
        .await
        .unwrap()
        .into_inner()
        .connection
        .unwrap();
    assert_eq!(h.sf.admin().stats("demo").unwrap().stats.refresh_grants, 2);
    assert!(h.token("acme", &second.id).await.is_ok());

    // Export sealed to the recipient's key: only its private key opens it.
    let private = PrivateDecryptingKey::generate(KeySize::Rsa3072).unwrap();
    let exported = h
        .apps()
        .export_credentials(h.request(
            "acme",
            ExportCredentialsRequest {
                connection_ids: vec![connection.id.clone()],
                recipient_public_key_pem: pem(&private),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .exports;
    assert_eq!(exported.len(), 1);
    let Some(Payload::Encrypted(sealed)) = &exported[0].credentials else {
        panic!("not encrypted: {exported:?}");
    };
    let oaep = OaepPrivateDecryptingKey::new(private).unwrap();
    let mut key = vec![0; oaep.min_output_size()];
    let key = oaep
        .decrypt(&OAEP_SHA256_MGF1SHA256, &sealed.wrapped_key, &mut key, None)
        .unwrap()
        .to_vec();
    let opening = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
    let mut data = sealed.ciphertext.clone();
    let plain = opening
        .open_in_place(
            Nonce::try_assume_unique_for_key(&sealed.nonce).unwrap(),
            Aad::from(connection.id.as_bytes()),
            &mut data,
        )
        .unwrap();
    let opened = Credentials::decode(&*plain).unwrap();
    assert_eq!(opened.refresh_token, issued.refresh_token);
    assert_eq!(opened.access_token, refreshed.access_token);
    assert_eq!(opened.instance_url, issued.instance_url);
    // Bound to the connection: another id as additional data does not open it.
    let mut data = sealed.ciphertext.clone();
    assert!(
        opening
            .open_in_place(
                Nonce::try_assume_unique_for_key(&sealed.nonce).unwrap(),
                Aad::from(second.id.as_bytes()),
                &mut data,
            )
            .is_err()
    );

    // Plaintext only with the explicit flag; a small key is refused.
    let export = |pem: String, plaintext| ExportCredentialsRequest {
        connection_ids: vec![connection.id.clone()],
        recipient_public_key_pem: pem,
        allow_plaintext: plaintext,
        ..Default::default()
    };
    let status = h
        .apps()
        .export_credentials(h.request("acme", export(String::new(), false)))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["recipient_public_key_pem"]);
    let small = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
    let status = h
        .apps()
        .export_credentials(h.request("acme", export(pem(&small), false)))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["recipient_public_key_pem"]);
    let plain = h
        .apps()
        .export_credentials(h.request("acme", export(String::new(), true)))
        .await
        .unwrap()
        .into_inner()
        .exports;
    let Some(Payload::Plaintext(plain)) = &plain[0].credentials else {
        panic!("not plaintext");
    };
    assert_eq!(plain.refresh_token, issued.refresh_token);

    // Another tenant exports nothing, and learns nothing.
    let status = h
        .apps()
        .export_credentials(h.request("globex", export(String::new(), true)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // HubSpot: no instance URL needed; the portal comes from the provider.
    let hs_app = h.hubspot_app("acme").await;
    let hs_tokens =
        h.hs.admin()
            .issue_tokens(
                syncline_crm_sandbox::hubspot::DEMO_CLIENT_ID,
                DEMO_PORTAL_ID,
            )
            .unwrap();
    let hs_connection = h
        .apps()
        .import_credentials(h.request(
            "acme",
            import(
                &hs_app,
                Credentials {
                    access_token: hs_tokens.access_token.clone(),
                    refresh_token: hs_tokens.refresh_token.clone(),
                    ..Default::default()
                },
            ),
        ))
        .await
        .unwrap()
        .into_inner()
        .connection
        .unwrap();
    assert_eq!(
        hs_connection.external_account_id,
        DEMO_PORTAL_ID.to_string()
    );
    assert_eq!(hs_connection.instance_url, h.hs.base_url());
    let hs_token = h.token("acme", &hs_connection.id).await.unwrap();
    assert_eq!(hs_token.access_token, hs_tokens.access_token);
    assert!(hs_token.expire_time.is_some());

    // The trail: every import and export of acme, without a secret; nothing for globex.
    let events = h
        .apps()
        .list_audit_events(h.request("acme", ListAuditEventsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .audit_events;
    let count = |action: AuditAction| events.iter().filter(|e| e.action == action as i32).count();
    assert_eq!(count(AuditAction::CredentialsImported), 3);
    assert_eq!(count(AuditAction::CredentialsExported), 2);
    assert_eq!(count(AuditAction::ProviderAppCreated), 2);
    let exported_events: Vec<_> = events
        .iter()
        .filter(|e| e.action == AuditAction::CredentialsExported as i32)
        .collect();
    assert_eq!(exported_events[0].details["export_encryption"], "PLAINTEXT");
    assert_eq!(exported_events[0].actor, "admin-of-acme");
    let printed = format!("{events:?}");
    for secret in [
        &issued.access_token,
        &issued.refresh_token,
        &refreshed.access_token,
        &hs_tokens.refresh_token,
    ] {
        assert!(!printed.contains(secret.as_str()), "a secret in the trail");
    }
    let globex = h
        .apps()
        .list_audit_events(h.request("globex", ListAuditEventsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .audit_events;
    assert!(globex.is_empty(), "{globex:?}");

    h.stop().await;
}
