//! API behaviour: OAuth, paging, writes and modified dates, search, batch, limits, faults,
//! schema changes, portals, TLS.

use super::{fixture, small_counts, spawn, spawn_config, spawn_with};
use serde_json::{Value, json};
use syncline_crm_sandbox::common::{FaultConfig, FaultOutcome};
use syncline_crm_sandbox::hubspot::catalog::GENESIS_MS;
use syncline_crm_sandbox::hubspot::{
    AppConfig, ChangeKind, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PORTAL_ID, HubSpotConfig,
    PortalConfig, QuotaPolicy, RateLimits, RecordCounts, SchemaChange,
};

fn query_param(url: &str, key: &str) -> Option<String> {
    let u = url::Url::parse(url).unwrap();
    u.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn oauth_code_flow_refresh_and_revocation() {
    let env = spawn().await;
    let redirect = "http://localhost:9999/callback";
    let r = env
        .send(env.http.get(env.url(&format!(
            "/oauth/authorize?client_id={DEMO_CLIENT_ID}&redirect_uri={redirect}&scope=crm.objects.contacts.read&state=xyz"
        ))))
        .await;
    assert_eq!(r.status, 302);
    let location = r.header("location").unwrap().to_owned();
    assert!(location.starts_with(redirect));
    assert_eq!(query_param(&location, "state").as_deref(), Some("xyz"));
    let code = query_param(&location, "code").unwrap();

    let fields = [
        ("grant_type", "authorization_code"),
        ("client_id", DEMO_CLIENT_ID),
        ("client_secret", DEMO_CLIENT_SECRET),
        ("redirect_uri", redirect),
        ("code", code.as_str()),
    ];
    let t = env.form("/oauth/v1/token", &fields).await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(t.body["expires_in"], 1800);
    assert_eq!(t.body["token_type"], "bearer");
    let access = t.body["access_token"].as_str().unwrap().to_owned();
    let refresh = t.body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        env.get_as(&access, "/crm/v3/objects/contacts?limit=1")
            .await
            .status,
        200
    );
    // A code is single-use.
    let again = env.form("/oauth/v1/token", &fields).await;
    assert_eq!(
        (again.status, again.body["status"].as_str()),
        (400, Some("BAD_AUTH_CODE"))
    );

    let refresh_fields = [
        ("grant_type", "refresh_token"),
        ("client_id", DEMO_CLIENT_ID),
        ("client_secret", DEMO_CLIENT_SECRET),
        ("refresh_token", refresh.as_str()),
    ];
    let r = env.form("/oauth/v3/token", &refresh_fields).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["expires_in"], 1800);
    assert_eq!(
        r.body["refresh_token"],
        refresh.as_str(),
        "HubSpot refresh tokens do not rotate"
    );
    assert_eq!(r.body["hub_id"], DEMO_PORTAL_ID);
    assert_ne!(r.body["access_token"], access.as_str());

    let stats = env.hs.admin().stats(DEMO_PORTAL_ID).unwrap();
    assert_eq!(
        (stats.counters.code_grants, stats.counters.refresh_grants),
        (1, 1)
    );

    env.hs
        .admin()
        .revoke_refresh_tokens(DEMO_PORTAL_ID)
        .unwrap();
    let bad = env.form("/oauth/v1/token", &refresh_fields).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["status"], "BAD_REFRESH_TOKEN");
    assert_eq!(bad.body["message"], "missing or invalid refresh token");
    assert!(bad.body["correlationId"].is_string());
    let unknown = env
        .form(
            "/oauth/v1/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", DEMO_CLIENT_ID),
                ("client_secret", DEMO_CLIENT_SECRET),
                ("refresh_token", "nope"),
            ],
        )
        .await;
    assert_eq!(unknown.body["status"], "BAD_REFRESH_TOKEN");
    let stats = env.hs.admin().stats(DEMO_PORTAL_ID).unwrap();
    assert_eq!(
        stats.counters.refresh_grants, 1,
        "failed refreshes are not counted as refreshes"
    );
    assert!(stats.counters.failed_grants >= 1);
    env.hs.shutdown().await;
}

#[tokio::test]
async fn expired_and_missing_tokens_get_hubspots_401s() {
    let env = spawn().await;
    let missing = env
        .send(env.http.get(env.url("/crm/v3/objects/contacts")))
        .await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.body["category"], "INVALID_AUTHENTICATION");
    assert_eq!(
        env.hs.admin().expire_access_tokens(DEMO_PORTAL_ID).unwrap(),
        1
    );
    let expired = env.get("/crm/v3/objects/contacts").await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.body["category"], "EXPIRED_AUTHENTICATION");
    let msg = expired.body["message"].as_str().unwrap();
    assert!(
        msg.starts_with("The OAuth token used to make this call expired ")
            && msg.ends_with(" ago."),
        "{msg}"
    );
    assert!(expired.body["context"]["expire time"][0].is_string());
    env.hs.shutdown().await;
}

#[tokio::test]
async fn list_pages_with_after_until_the_last_page_and_sends_rate_headers() {
    let env = spawn_with(RecordCounts {
        contacts: 25,
        ..small_counts()
    })
    .await;
    let mut after: Option<String> = None;
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => {
                format!("/crm/v3/objects/contacts?limit=10&properties=email,firstname&after={a}")
            }
            None => {
                "/crm/v3/objects/contacts?limit=10&properties=email&properties=firstname".to_owned()
            }
        };
        let r = env.get(&path).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("application/json;charset=utf-8")
        );
        assert_eq!(
            r.header("x-hubspot-ratelimit-interval-milliseconds"),
            Some("10000")
        );
        assert_eq!(r.header("x-hubspot-ratelimit-max"), Some("100"));
        assert!(r.header("x-hubspot-ratelimit-remaining").is_some());
        assert!(
            r.header("x-hubspot-ratelimit-daily").is_none(),
            "no daily headers on OAuth calls"
        );
        pages += 1;
        for rec in r.body["results"].as_array().unwrap() {
            ids.push(rec["id"].as_str().unwrap().parse::<u64>().unwrap());
            let props = rec["properties"].as_object().unwrap();
            let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                [
                    "createdate",
                    "email",
                    "firstname",
                    "hs_object_id",
                    "lastmodifieddate"
                ]
            );
            assert!(props.values().all(Value::is_string));
            assert_eq!(rec["updatedAt"], props["lastmodifieddate"]);
        }
        match r.body.get("paging") {
            Some(p) => {
                assert!(
                    p["next"]["link"]
                        .as_str()
                        .unwrap()
                        .starts_with(env.hs.base_url())
                );
                after = Some(p["next"]["after"].as_str().unwrap().to_owned());
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids, (1..=25).collect::<Vec<u64>>());
    assert_eq!(
        env.get("/crm/v3/objects/contacts?limit=101").await.status,
        400
    );
    // A private-app token gets the daily headers too.
    let pat = env.hs.admin().private_app_token(DEMO_PORTAL_ID).unwrap();
    let r = env.get_as(&pat, "/crm/v3/objects/companies?limit=1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-hubspot-ratelimit-daily"), Some("250000"));
    assert!(r.header("x-hubspot-ratelimit-daily-remaining").is_some());
    env.hs.shutdown().await;
}

#[tokio::test]
async fn writes_set_modified_dates_and_fill_the_change_log() {
    let env = spawn().await;
    let created = env
        .post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"email": "ada@example.com", "firstname": "Ada"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.body["properties"]["lastmodifieddate"],
        created.body["updatedAt"]
    );
    assert_eq!(
        created.body["properties"]["createdate"],
        created.body["createdAt"]
    );
    let created_at = created.body["updatedAt"].as_str().unwrap().to_owned();

    // Same value: nothing changes, not even the modified date.
    let same = env
        .patch(
            &format!("/crm/v3/objects/contacts/{id}"),
            &json!({"properties": {"firstname": "Ada"}}),
        )
        .await;
    assert_eq!(same.body["updatedAt"], created_at.as_str());
    // Wait until the clock moves so the new modified date is observably later.
    let start = std::time::Instant::now();
    while syncline_crm_sandbox::hubspot::catalog::iso_ms(chrono::Utc::now().timestamp_millis())
        <= created_at
    {
        assert!(start.elapsed().as_secs() < 2);
        tokio::task::yield_now().await;
    }
    let updated = env
        .patch(
            &format!("/crm/v3/objects/contacts/{id}"),
            &json!({"properties": {"firstname": "Augusta"}}),
        )
        .await;
    assert_eq!(updated.status, 200);
    let new_modified = updated.body["properties"]["lastmodifieddate"]
        .as_str()
        .unwrap();
    assert!(new_modified > created_at.as_str());
    assert_eq!(updated.body["updatedAt"], new_modified);

    // Deals use hs_lastmodifieddate; updating a seeded deal bumps it past the seeded one.
    let before = env.get("/crm/v3/objects/deals/5").await;
    let seeded_modified = before.body["properties"]["hs_lastmodifieddate"]
        .as_str()
        .unwrap()
        .to_owned();
    let after = env
        .patch(
            "/crm/v3/objects/deals/5",
            &json!({"properties": {"amount": "123400"}}),
        )
        .await;
    assert!(
        after.body["properties"]["hs_lastmodifieddate"]
            .as_str()
            .unwrap()
            > seeded_modified.as_str()
    );
    assert!(after.body["properties"].get("lastmodifieddate").is_none());

    // Conflict on a taken e-mail.
    let dup = env
        .post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"email": "ADA@example.com"}}),
        )
        .await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.body["category"], "CONFLICT");
    assert_eq!(
        dup.body["message"],
        format!("Contact already exists. Existing ID: {id}")
    );

    assert_eq!(
        env.delete(&format!("/crm/v3/objects/contacts/{id}"))
            .await
            .status,
        204
    );
    assert_eq!(
        env.get(&format!("/crm/v3/objects/contacts/{id}"))
            .await
            .status,
        404
    );
    let archived = env
        .get(&format!("/crm/v3/objects/contacts/{id}?archived=true"))
        .await;
    assert_eq!(archived.body["archived"], true);
    assert!(archived.body["archivedAt"].is_string());
    let listed = env.get("/crm/v3/objects/contacts?archived=true").await;
    assert_eq!(listed.body["results"].as_array().unwrap().len(), 1);

    let changes = env.hs.admin().changes(DEMO_PORTAL_ID, 0).unwrap();
    let kinds: Vec<ChangeKind> = changes.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::Created,
            ChangeKind::Updated,
            ChangeKind::Updated,
            ChangeKind::Archived
        ]
    );
    assert_eq!(
        changes[1].properties,
        vec![("firstname".to_owned(), Some("Augusta".to_owned()))]
    );
    env.hs.shutdown().await;
}

#[tokio::test]
async fn search_filters_sorts_pages_and_caps() {
    let env = spawn_with(RecordCounts {
        contacts: 10_500,
        ..small_counts()
    })
    .await;
    // Search has its own per-second limit (tested below); this test searches faster.
    env.hs
        .admin()
        .set_rate_limits(
            DEMO_PORTAL_ID,
            RateLimits {
                search_per_second: 1_000,
                ..RateLimits::default()
            },
        )
        .unwrap();
    let made = env
        .post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"email": "zed@example.com", "lifecyclestage": "customer"}}),
        )
        .await;
    let made_id = made.body["id"].as_str().unwrap().to_owned();

    // The recorded incremental request (limit sent as a string) finds records changed since.
    let mut req = fixture("search-request-since.json");
    req["filterGroups"][0]["filters"][0]["value"] = json!(GENESIS_MS.to_string());
    let r = env.post("/crm/v3/objects/contacts/search", &req).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["total"], 1);
    assert_eq!(r.body["results"][0]["id"], made_id.as_str());

    // Sorted walk with numeric offsets.
    let body = json!({
        "filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "LTE", "value": "450"}]}],
        "sorts": [{"propertyName": "hs_object_id", "direction": "DESCENDING"}],
        "properties": ["email"], "limit": 200
    });
    let p1 = env.post("/crm/v3/objects/contacts/search", &body).await;
    assert_eq!(p1.body["total"], 450);
    assert_eq!(p1.body["results"][0]["id"], "450");
    assert_eq!(p1.body["paging"]["next"]["after"], "200");
    let mut body2 = body.clone();
    body2["after"] = json!("400");
    let p3 = env.post("/crm/v3/objects/contacts/search", &body2).await;
    assert_eq!(p3.body["results"].as_array().unwrap().len(), 50);
    assert!(p3.body.get("paging").is_none());

    // OR of groups, IN and CONTAINS_TOKEN.
    let either = json!({"filterGroups": [
        {"filters": [{"propertyName": "email", "operator": "EQ", "value": "ZED@example.com"}]},
        {"filters": [{"propertyName": "hs_object_id", "operator": "IN", "values": ["3", "4"]}]}
    ]});
    assert_eq!(
        env.post("/crm/v3/objects/contacts/search", &either)
            .await
            .body["total"],
        3
    );

    // Limits: page size ≤ 200, no paging at or past 10,000.
    assert_eq!(
        env.post("/crm/v3/objects/contacts/search", &json!({"limit": 201}))
            .await
            .status,
        400
    );
    let all = env
        .post(
            "/crm/v3/objects/contacts/search",
            &json!({"limit": 200, "after": "9800"}),
        )
        .await;
    assert_eq!(all.status, 200);
    assert_eq!(all.body["total"], 10_501);
    assert_eq!(all.body["paging"]["next"]["after"], "10000");
    let past = env
        .post(
            "/crm/v3/objects/contacts/search",
            &json!({"limit": 10, "after": "10000"}),
        )
        .await;
    assert_eq!(past.status, 400);
    assert_eq!(past.body["category"], "VALIDATION_ERROR");

    // Archived records are not searchable.
    env.delete(&format!("/crm/v3/objects/contacts/{made_id}"))
        .await;
    assert_eq!(
        env.post("/crm/v3/objects/contacts/search", &req).await.body["total"],
        0
    );
    let by_email = json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "zed@example.com"}]}]});
    assert_eq!(
        env.post("/crm/v3/objects/contacts/search", &by_email)
            .await
            .body["total"],
        0
    );
    env.hs.shutdown().await;
}

#[tokio::test]
async fn batch_endpoints_answer_207_400_201_and_upsert_flags() {
    let env = spawn().await;
    let read = env
        .post(
            "/crm/v3/objects/contacts/batch/read",
            &json!({"inputs": [{"id": "1"}, {"id": "99999"}], "properties": ["email"]}),
        )
        .await;
    assert_eq!(read.status, 207);
    assert_eq!(read.body["numErrors"], 1);
    assert_eq!(read.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(read.body["errors"][0]["context"]["ids"], json!(["99999"]));

    let taken = env.get("/crm/v3/objects/contacts/2").await.body["properties"]["email"].clone();
    let create = env
        .post(
            "/crm/v3/objects/contacts/batch/create",
            &json!({"inputs": [
                {"properties": {"email": "new1@example.com"}},
                {"properties": {"email": taken}, "objectWriteTraceId": "t2"}
            ]}),
        )
        .await;
    assert_eq!(create.status, 207, "{}", create.body);
    assert_eq!(create.body["errors"][0]["category"], "CONFLICT");
    assert_eq!(
        create.body["errors"][0]["context"]["existingId"],
        json!(["2"])
    );
    assert_eq!(
        create.body["errors"][0]["context"]["objectWriteTraceId"],
        json!(["t2"])
    );
    let ok = env
        .post(
            "/crm/v3/objects/contacts/batch/create",
            &json!({"inputs": [{"properties": {"email": "new2@example.com"}}]}),
        )
        .await;
    assert_eq!(ok.status, 201);
    assert_eq!(ok.body["status"], "COMPLETE");

    let dup = env
        .post(
            "/crm/v3/objects/contacts/batch/update",
            &json!({"inputs": [{"id": "1", "properties": {}}, {"id": "1", "properties": {}}]}),
        )
        .await;
    assert_eq!(dup.status, 400);
    assert_eq!(
        dup.body["message"],
        "Duplicate IDs found in batch input: [1]. IDs must be unique"
    );
    let bad = env
        .post(
            "/crm/v3/objects/contacts/batch/create",
            &json!({"inputs": [{"properties": {"first000name": "x"}}]}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["errors"][0]["code"], "PROPERTY_DOESNT_EXIST");

    let upsert = env
        .post("/crm/v3/objects/contacts/batch/upsert", &json!({"inputs": [
            {"id": "new2@example.com", "idProperty": "email", "properties": {"firstname": "Again"}},
            {"id": "fresh@example.com", "idProperty": "email", "properties": {"firstname": "Fresh"}}
        ]}))
        .await;
    assert_eq!(upsert.status, 200, "{}", upsert.body);
    let news: Vec<bool> = upsert.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["new"].as_bool().unwrap())
        .collect();
    assert_eq!(news, [false, true]);

    let too_many: Vec<Value> = (1..=101).map(|i| json!({"id": i.to_string()})).collect();
    assert_eq!(
        env.post(
            "/crm/v3/objects/contacts/batch/read",
            &json!({"inputs": too_many})
        )
        .await
        .status,
        400
    );
    assert_eq!(
        env.post(
            "/crm/v3/objects/contacts/batch/archive",
            &json!({"inputs": [{"id": "1"}]})
        )
        .await
        .status,
        204
    );
    assert_eq!(env.get("/crm/v3/objects/contacts/1").await.status, 404);
    env.hs.shutdown().await;
}

#[tokio::test]
async fn rate_limits_refuse_with_hubspots_429_body() {
    let env = spawn().await;
    let admin = env.hs.admin();
    admin
        .set_rate_limits(
            DEMO_PORTAL_ID,
            RateLimits {
                ten_second_max: 3,
                ..RateLimits::default()
            },
        )
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(env.get("/crm/v3/objects/contacts?limit=1").await);
    }
    assert_eq!(
        statuses.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200, 200, 429]
    );
    assert_eq!(
        statuses[2].header("x-hubspot-ratelimit-remaining"),
        Some("0")
    );
    let refused = &statuses[3];
    assert_eq!(refused.body["errorType"], "RATE_LIMIT");
    assert_eq!(refused.body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(refused.body["status"], "error");
    assert!(refused.body["correlationId"].is_string());
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry));

    admin.reset(DEMO_PORTAL_ID).unwrap();
    admin
        .set_rate_limits(DEMO_PORTAL_ID, RateLimits::default())
        .unwrap();
    admin
        .exhaust_quota(DEMO_PORTAL_ID, QuotaPolicy::Daily)
        .unwrap();
    let daily = env.get("/crm/v3/objects/contacts?limit=1").await;
    assert_eq!(
        (daily.status, daily.body["policyName"].as_str()),
        (429, Some("DAILY"))
    );
    assert_eq!(daily.body["message"], "You have reached your daily limit.");
    env.hs.shutdown().await;
}

#[tokio::test]
async fn faults_are_seeded_and_deterministic() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let env = spawn().await;
        let cfg = FaultConfig {
            error_5xx_rate: 0.3,
            rate_limit_rate: 0.2,
            seed,
            ..FaultConfig::default()
        };
        env.hs.admin().set_faults(DEMO_PORTAL_ID, cfg).unwrap();
        let mut out = Vec::new();
        for _ in 0..20 {
            out.push(env.get("/crm/v3/objects/contacts?limit=1").await.status);
        }
        env.hs.shutdown().await;
        out
    }
    let a = statuses(11).await;
    assert_eq!(a, statuses(11).await);
    assert!(
        a.contains(&502) && a.contains(&429) && a.contains(&200),
        "{a:?}"
    );

    let env = spawn().await;
    env.hs
        .admin()
        .force_faults(DEMO_PORTAL_ID, FaultOutcome::ServerError, 1)
        .unwrap();
    assert_eq!(env.get("/crm/v3/objects/contacts").await.status, 502);
    assert_eq!(env.get("/crm/v3/objects/contacts").await.status, 200);
    assert_eq!(
        env.hs
            .admin()
            .stats(DEMO_PORTAL_ID)
            .unwrap()
            .counters
            .injected_faults,
        1
    );
    env.hs.shutdown().await;
}

#[tokio::test]
async fn schema_changes_show_in_properties_and_writes() {
    let env = spawn().await;
    let admin = env.hs.admin();
    admin
        .change_schema(
            DEMO_PORTAL_ID,
            "contacts",
            &SchemaChange::Add {
                name: "loyalty_points".into(),
                ptype: "number".into(),
                label: None,
            },
        )
        .unwrap();
    let p = env.get("/crm/v3/properties/contacts/loyalty_points").await;
    assert_eq!((p.status, p.body["type"].as_str()), (200, Some("number")));
    let seeded = env
        .get("/crm/v3/objects/contacts/1?properties=loyalty_points")
        .await;
    assert_eq!(seeded.body["properties"]["loyalty_points"], Value::Null);
    assert_eq!(
        env.patch(
            "/crm/v3/objects/contacts/1",
            &json!({"properties": {"loyalty_points": "abc"}})
        )
        .await
        .status,
        400
    );
    assert_eq!(
        env.patch(
            "/crm/v3/objects/contacts/1",
            &json!({"properties": {"loyalty_points": "12"}})
        )
        .await
        .status,
        200
    );

    admin
        .change_schema(
            DEMO_PORTAL_ID,
            "contacts",
            &SchemaChange::Retype {
                name: "loyalty_points".into(),
                ptype: "string".into(),
            },
        )
        .unwrap();
    assert_eq!(
        env.get("/crm/v3/properties/contacts/loyalty_points")
            .await
            .body["type"],
        "string"
    );
    admin
        .change_schema(
            DEMO_PORTAL_ID,
            "contacts",
            &SchemaChange::Remove {
                name: "loyalty_points".into(),
            },
        )
        .unwrap();
    let gone = env
        .patch(
            "/crm/v3/objects/contacts/1",
            &json!({"properties": {"loyalty_points": "1"}}),
        )
        .await;
    assert_eq!(gone.status, 400);
    assert_eq!(gone.body["errors"][0]["code"], "PROPERTY_DOESNT_EXIST");
    // Unknown properties are silently ignored on reads.
    let read = env
        .get("/crm/v3/objects/contacts/1?properties=loyalty_points,email")
        .await;
    assert!(read.body["properties"].get("loyalty_points").is_none());

    // Custom objects: 2-… ids, 40+ custom properties, records under every spelling.
    let schemas = env.get("/crm-object-schemas/v3/schemas").await;
    let custom = schemas.body["results"].as_array().unwrap();
    assert_eq!(custom.len(), 2);
    let type_id = custom[0]["objectTypeId"].as_str().unwrap().to_owned();
    assert!(type_id.starts_with("2-"));
    assert!(custom[0]["properties"].as_array().unwrap().len() >= 40);
    let name = custom[0]["name"].as_str().unwrap().to_owned();
    let fqn = custom[0]["fullyQualifiedName"].as_str().unwrap().to_owned();
    assert_eq!(fqn, format!("p{DEMO_PORTAL_ID}_{name}"));
    for t in [type_id.clone(), format!("p_{name}"), fqn] {
        let page = env
            .get(&format!(
                "/crm/v3/objects/{t}?limit=2&properties=external_id,contract_value,is_active"
            ))
            .await;
        assert_eq!(page.status, 200, "{t}");
        assert_eq!(
            page.body["results"][0]["properties"]["external_id"],
            "EXT-000000"
        );
    }
    let unknown = env.get("/crm/v3/objects/butterflies").await;
    assert_eq!(
        unknown.body["message"],
        "Unable to infer object type from: butterflies"
    );
    env.hs.shutdown().await;
}

#[tokio::test]
async fn portals_are_independent_and_deterministic() {
    let portals = vec![
        PortalConfig {
            portal_id: DEMO_PORTAL_ID,
            seed: 7,
            counts: small_counts(),
            ..PortalConfig::default()
        },
        PortalConfig {
            portal_id: 555,
            seed: 7,
            counts: small_counts(),
            ..PortalConfig::default()
        },
    ];
    let env = spawn_config(HubSpotConfig {
        portals: portals.clone(),
        ..HubSpotConfig::default()
    })
    .await;
    let other = env
        .hs
        .admin()
        .issue_tokens(DEMO_CLIENT_ID, 555)
        .unwrap()
        .access_token;
    let a = env.get("/crm/v3/objects/contacts?limit=5").await.body;
    let b = env
        .get_as(&other, "/crm/v3/objects/contacts?limit=5")
        .await
        .body;
    assert_ne!(a, b, "portals differ");
    env.patch(
        "/crm/v3/objects/contacts/1",
        &json!({"properties": {"firstname": "Only here"}}),
    )
    .await;
    assert_ne!(
        env.get_as(&other, "/crm/v3/objects/contacts/1?properties=firstname")
            .await
            .body["properties"]["firstname"],
        "Only here"
    );

    // Same seed, same data in a fresh sandbox.
    let again = spawn_config(HubSpotConfig {
        portals,
        ..HubSpotConfig::default()
    })
    .await;
    assert_eq!(
        again.get("/crm/v3/objects/contacts?limit=5").await.body["results"],
        a["results"]
    );
    again.hs.shutdown().await;
    env.hs.shutdown().await;
}

#[tokio::test]
async fn missing_scopes_give_403() {
    let app = AppConfig {
        app_id: 77,
        client_id: "narrow".into(),
        client_secret: "s".into(),
        scopes: vec!["crm.objects.contacts.read".into()],
        ..AppConfig::default()
    };
    let env = spawn_config(HubSpotConfig {
        apps: vec![app],
        ..HubSpotConfig::default()
    })
    .await;
    let token = env
        .hs
        .admin()
        .issue_tokens("narrow", DEMO_PORTAL_ID)
        .unwrap()
        .access_token;
    let r = env.get_as(&token, "/crm-object-schemas/v3/schemas").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["category"], "MISSING_SCOPES");
    assert_eq!(
        env.get_as(&token, "/crm/v3/objects/contacts?limit=1")
            .await
            .status,
        200
    );
    env.hs.shutdown().await;
}

#[tokio::test]
async fn serves_https_with_the_local_ca() {
    let env = spawn_config(HubSpotConfig {
        tls: true,
        ..HubSpotConfig::default()
    })
    .await;
    assert!(env.hs.base_url().starts_with("https://"));
    let ca = reqwest::Certificate::from_pem(env.hs.ca_pem().unwrap().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let r = client
        .get(env.url("/crm/v3/objects/contacts?limit=1"))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    env.hs.shutdown().await;
}

#[tokio::test]
async fn admin_http_surface_changes_records() {
    let env = spawn().await;
    let base = env.url("/__admin");
    let created: Value = env
        .http
        .post(format!("{base}/portals/{DEMO_PORTAL_ID}/objects/companies"))
        .json(&json!({"properties": {"name": "Admin Co", "domain": "admin.example"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let rec = env
        .get(&format!("/crm/v3/objects/companies/{id}?properties=name"))
        .await;
    assert_eq!(rec.body["properties"]["name"], "Admin Co");
    let changes: Value = env
        .http
        .get(format!("{base}/portals/{DEMO_PORTAL_ID}/changes?since=0"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(changes[0]["source"], "CRM");
    let r = env
        .http
        .post(format!("{base}/portals"))
        .json(&json!({"portalId": 9001, "seed": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stats: Value = env
        .http
        .get(format!("{base}/portals/9001/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["refresh_grants"], 0);
    env.hs.shutdown().await;
}

#[tokio::test]
async fn admin_late_write_carries_the_given_modified_time() {
    let env = spawn().await;
    let base = env.url("/__admin");
    let at = chrono::Utc::now().timestamp_millis() - 60_000;
    let r: Value = env
        .http
        .patch(format!(
            "{base}/portals/{DEMO_PORTAL_ID}/objects/contacts/1"
        ))
        .json(&json!({"properties": {"firstname": "Late"}, "modifiedAt": at}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["changed"], true);
    let rec = env
        .get("/crm/v3/objects/contacts/1?properties=firstname,lastmodifieddate")
        .await;
    assert_eq!(rec.body["properties"]["firstname"], "Late");
    let modified = chrono::DateTime::parse_from_rfc3339(
        rec.body["properties"]["lastmodifieddate"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(modified.timestamp_millis(), at);
    env.hs.shutdown().await;
}
