//! Conformance: the sandbox's responses have the keys, types, nesting and status codes of
//! the recorded real HubSpot responses in `../shared/crm-reference/hubspot/`.

use super::{Env, Resp, fixture, spawn, spawn_config};
use serde_json::{Value, json};
use syncline_crm_sandbox::common::ShapeOptions;
use syncline_crm_sandbox::common::compare::assert_same_shape;
use syncline_crm_sandbox::hubspot::{AppConfig, DEMO_PORTAL_ID, HubSpotConfig};

fn strict() -> ShapeOptions {
    ShapeOptions::strict()
}

/// Property maps hold whatever properties were asked for; their values must be strings or
/// null, which [`property_values_are_strings`] checks.
fn ignoring_properties(paths: &[&str]) -> ShapeOptions {
    ShapeOptions {
        ignore_paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        ..ShapeOptions::default()
    }
}

fn property_values_are_strings(records: &Value) {
    for r in records.as_array().unwrap() {
        for (k, v) in r["properties"].as_object().unwrap() {
            assert!(v.is_string() || v.is_null(), "property {k} is {v}");
        }
    }
}

fn assert_json_headers(r: &Resp) {
    assert_eq!(
        r.header("content-type"),
        Some("application/json;charset=utf-8")
    );
}

#[tokio::test]
async fn list_page_matches_recording() {
    let env = spawn().await;
    let r = env
        .get("/crm/v3/objects/contacts?limit=3&properties=email")
        .await;
    assert_eq!(r.status, 200);
    assert_json_headers(&r);
    assert_same_shape(
        &fixture("objects-contacts-page.json"),
        &r.body,
        &ignoring_properties(&["$.results[].properties"]),
        "list page",
    );
    property_values_are_strings(&r.body["results"]);
    env.hs.shutdown().await;
}

#[tokio::test]
async fn search_pages_match_recordings() {
    let env = spawn().await;
    let props = json!([
        "company",
        "email",
        "firstname",
        "lastname",
        "phone",
        "website"
    ]);
    let first = env
        .post(
            "/crm/v3/objects/contacts/search",
            &json!({"limit": 1, "properties": props}),
        )
        .await;
    assert_eq!(first.status, 200);
    // The property set is exactly the recorded one, so compare it too.
    assert_same_shape(
        &fixture("search-response-page1.json"),
        &first.body,
        &strict(),
        "search page 1",
    );
    let total = first.body["total"].as_u64().unwrap();
    let last = env
        .post(
            "/crm/v3/objects/contacts/search",
            &json!({"limit": 1, "after": (total - 1).to_string(), "properties": props}),
        )
        .await;
    assert_same_shape(
        &fixture("search-response-page2-last.json"),
        &last.body,
        &strict(),
        "search last page",
    );
    env.hs.shutdown().await;
}

#[tokio::test]
async fn batch_responses_match_recordings() {
    let env = spawn().await;
    let read = env.post("/crm/v3/objects/contacts/batch/read", &json!({"inputs": [{"id": "1"}, {"id": "2"}], "properties": ["email", "firstname", "lastname"]})).await;
    assert_eq!(read.status, 200);
    assert_same_shape(
        &fixture("batch-read-contacts.json"),
        &read.body,
        &strict(),
        "batch read",
    );

    let created = env
        .post("/crm/v3/objects/contacts/batch/create", &json!({"inputs": [
            {"properties": {"email": "lily@example.com", "firstname": "Lily", "lastname": "Skinner"}},
            {"properties": {"email": "marley@example.com", "firstname": "Marley", "lastname": "Fleming"}}
        ]}))
        .await;
    assert_eq!(created.status, 201);
    let ignore_props = ignoring_properties(&["$.results[].properties"]);
    assert_same_shape(
        &fixture("batch-create-contacts-success.json"),
        &created.body,
        &ignore_props,
        "batch create",
    );
    property_values_are_strings(&created.body["results"]);

    let partial = env
        .post("/crm/v3/objects/contacts/batch/create", &json!({"inputs": [
            {"properties": {"email": "siena@example.com", "firstname": "Siena", "lastname": "Dyer"}},
            {"properties": {"email": "lily@example.com"}}
        ]}))
        .await;
    assert_eq!(partial.status, 207);
    assert_same_shape(
        &fixture("batch-create-contacts-multistatus-partial.json"),
        &partial.body,
        &ignore_props,
        "batch create 207",
    );

    let id = created.body["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id2 = created.body["results"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let updated = env
        .post(
            "/crm/v3/objects/contacts/batch/update",
            &json!({"inputs": [
                {"id": id, "properties": {"firstname": "Lily (updated)"}},
                {"id": id2, "properties": {"firstname": "Marley (updated)"}}
            ]}),
        )
        .await;
    assert_eq!(updated.status, 200);
    assert_same_shape(
        &fixture("batch-update-contacts-success.json"),
        &updated.body,
        &ignore_props,
        "batch update",
    );
    let missing = env
        .post(
            "/crm/v3/objects/contacts/batch/update",
            &json!({"inputs": [
                {"id": id, "properties": {"firstname": "Again"}},
                {"id": "unknownIdentifier888", "properties": {"firstname": "x"}}
            ]}),
        )
        .await;
    assert_eq!(missing.status, 207);
    assert_same_shape(
        &fixture("batch-update-contacts-multistatus-partial.json"),
        &missing.body,
        &ignore_props,
        "batch update 207",
    );
    assert_eq!(
        missing.body["errors"][0]["message"],
        fixture("batch-update-contacts-multistatus-partial.json")["errors"][0]["message"]
    );
    env.hs.shutdown().await;
}

#[tokio::test]
async fn error_bodies_match_recordings() {
    let env = spawn().await;
    let dup = env.post("/crm/v3/objects/contacts/batch/update", &json!({"inputs": [{"id": "123456", "properties": {}}, {"id": "123456", "properties": {}}]})).await;
    assert_eq!(dup.status, 400);
    assert_json_headers(&dup);
    assert_same_shape(
        &fixture("error-400-duplicate-ids.json"),
        &dup.body,
        &strict(),
        "duplicate ids",
    );
    assert_eq!(
        dup.body["message"],
        fixture("error-400-duplicate-ids.json")["message"]
    );

    let invalid = env
        .post(
            "/crm/v3/objects/contacts/batch/create",
            &json!({"inputs": [
                {"properties": {"first000name": "a", "last000name": "b"}},
                {"properties": {"first000name": "c", "last000name": "d"}}
            ]}),
        )
        .await;
    assert_eq!(invalid.status, 400);
    assert_same_shape(
        &fixture("error-400-validation-invalid-properties.json"),
        &invalid.body,
        &strict(),
        "invalid properties",
    );
    assert!(
        invalid.body["message"]
            .as_str()
            .unwrap()
            .starts_with("Property values were not valid: [{\"isValid\":false")
    );

    let email = env.get("/crm/v3/objects/contacts/3").await.body["properties"]["email"].clone();
    let conflict = env
        .post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"email": email}}),
        )
        .await;
    assert_eq!(conflict.status, 409);
    assert_same_shape(
        &fixture("error-409-conflict.json"),
        &conflict.body,
        &strict(),
        "conflict",
    );

    let unknown = env
        .post("/crm/v3/objects/butterflies/search", &json!({}))
        .await;
    assert_eq!(unknown.status, 400);
    assert_same_shape(
        &fixture("error-invalid-object-type.json"),
        &unknown.body,
        &strict(),
        "invalid object type",
    );
    assert_eq!(
        unknown.body["message"],
        fixture("error-invalid-object-type.json")["message"]
    );
    env.hs.shutdown().await;
}

#[tokio::test]
async fn missing_scopes_body_matches_recording() {
    let app = AppConfig {
        app_id: 9,
        client_id: "noschema".into(),
        client_secret: "s".into(),
        scopes: vec![],
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
        .issue_tokens("noschema", DEMO_PORTAL_ID)
        .unwrap()
        .access_token;
    let r = env.get_as(&token, "/crm-object-schemas/v3/schemas").await;
    assert_eq!(r.status, 403);
    assert_same_shape(
        &fixture("error-403-missing-scopes.json"),
        &r.body,
        &strict(),
        "missing scopes",
    );
    assert_eq!(
        r.body["context"]["requiredGranularScopes"],
        json!(["crm.schemas.custom.read"])
    );
    env.hs.shutdown().await;
}

#[tokio::test]
async fn properties_schemas_and_account_match_recordings() {
    let env: Env = spawn().await;
    let props = env.get("/crm/v3/properties/contacts").await;
    assert_eq!(props.status, 200);
    // Custom properties carry the creating user's ids in the recording; ours have no users.
    let opts = ShapeOptions {
        optional_keys: vec!["createdUserId".into(), "updatedUserId".into()],
        ..ShapeOptions::default()
    };
    assert_same_shape(
        &fixture("properties-contacts-sampled.json"),
        &props.body,
        &opts,
        "contact properties",
    );
    let deals = env.get("/crm/v3/properties/deals").await;
    assert_same_shape(
        &fixture("properties-deals-sampled.json"),
        &json!({"results": deals.body["results"].as_array().unwrap().iter().filter(|p| p["hubspotDefined"] == true).cloned().collect::<Vec<_>>()}),
        &opts,
        "deal properties",
    );

    let schema = env.get("/crm-object-schemas/v3/schemas/contacts").await;
    assert_eq!(schema.status, 200);
    assert_same_shape(
        &fixture("schemas-contacts-object-schema.json"),
        &schema.body,
        &strict(),
        "contacts schema",
    );
    assert_eq!(schema.body["objectTypeId"], "0-1");

    let account = env.get("/account-info/v3/details").await;
    assert_same_shape(
        &fixture("account-info-details.json"),
        &account.body,
        &strict(),
        "account details",
    );
    assert_eq!(account.body["portalId"], DEMO_PORTAL_ID);
    env.hs.shutdown().await;
}

/// A forced permanent refusal answers like HubSpot refusing a token without the scope the
/// call needs (403 `MISSING_SCOPES`, the recorded body's shape), naming the object's read
/// scope; the next call is served again.
#[tokio::test]
async fn a_forced_refusal_answers_like_missing_scopes() {
    let env: Env = spawn().await;
    env.hs
        .admin()
        .force_faults(
            DEMO_PORTAL_ID,
            syncline_crm_sandbox::common::FaultOutcome::Refused,
            1,
        )
        .unwrap();
    let r = env.get("/crm/v3/objects/contacts?limit=1").await;
    assert_eq!(r.status, 403);
    assert_same_shape(
        &fixture("error-403-missing-scopes.json"),
        &r.body,
        &strict(),
        "forced refusal",
    );
    assert_eq!(
        r.body["context"]["requiredGranularScopes"],
        json!(["crm.objects.contacts.read"])
    );
    assert_eq!(
        env.get("/crm/v3/objects/contacts?limit=1").await.status,
        200
    );
    env.hs.shutdown().await;
}
