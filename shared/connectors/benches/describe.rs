//! Full describe of a Salesforce org: `cargo bench -p syncline-connectors --bench describe`.
//!
//! 1. The Salesforce sandbox's `demo` org with every object padded to 100 fields through the
//!    admin `add_field` API (the sandbox cannot create objects: it has 7).
//! 2. An org of 500 custom objects of 100 fields: the sandbox cannot be configured with extra
//!    objects, so a loopback stub serves the global describe and `/composite` describes,
//!    each object's body being one of the padded sandbox describes from step 1 under a new
//!    name (`Bench_NNN__c`), so the wire format is the sandbox's own.
//!
//! Prints the median wall time of several full describes (global describe, composite batches
//! of 25 with 4 in flight, parse and conversion to the neutral types).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};
use secrecy::SecretString;
use serde_json::{Value, json};
use syncline_connectors::{Connector, Credentials, Provider};
use syncline_crm_sandbox::salesforce::{NewField, SalesforceConfig, SalesforceSandbox};

const OBJECTS: usize = 500;
const FIELDS: usize = 100;
const TYPES: &[&str] = &[
    "string",
    "double",
    "picklist",
    "date",
    "boolean",
    "email",
    "datetime",
    "currency",
    "textarea",
    "int",
    "percent",
    "phone",
    "url",
    "multipicklist",
    "reference",
];

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn time_describes(
    connector: &Connector,
    credentials: &Credentials,
    runs: usize,
    expect_objects: usize,
) -> (Duration, Vec<Duration>, usize) {
    let mut samples = Vec::with_capacity(runs);
    let mut fields = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let described = connector
            .describe_all(credentials, &[])
            .await
            .expect("describe");
        samples.push(started.elapsed());
        assert_eq!(described.len(), expect_objects);
        fields = described.iter().map(|o| o.fields.len()).sum();
    }
    (median(samples.clone()), samples, fields)
}

struct Stub {
    listing: Value,
    /// Each object's describe, serialised once so the stub spends little per request.
    bodies: Vec<String>,
}

async fn global(State(stub): State<Arc<Stub>>) -> Json<Value> {
    Json(stub.listing.clone())
}

async fn composite(
    State(stub): State<Arc<Stub>>,
    Json(request): Json<Value>,
) -> axum::response::Response {
    let mut out = String::from(r#"{"compositeResponse":["#);
    for (i, sub) in request["compositeRequest"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let url = sub["url"].as_str().unwrap();
        let name = url.split('/').rev().nth(1).unwrap();
        let index: usize = name
            .trim_start_matches("Bench_")
            .trim_end_matches("__c")
            .parse()
            .unwrap();
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"body":"#);
        out.push_str(&stub.bodies[index]);
        out.push_str(r#","httpHeaders":{},"httpStatusCode":200,"referenceId":"#);
        out.push_str(&sub["referenceId"].to_string());
        out.push('}');
    }
    out.push_str("]}");
    axum::response::Response::builder()
        .header("content-type", "application/json")
        .body(axum::body::Body::from(out))
        .unwrap()
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("DESCRIBE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let http = syncline_service_kit::crm_http::client(&syncline_config::CrmHttpConfig {
        timeout_ms: 300_000,
        ..syncline_config::CrmHttpConfig::default()
    })
    .unwrap();
    let connector = Connector::for_provider(Provider::Salesforce, http.clone());

    // 1. The sandbox org, every object padded to 100 fields.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sf = SalesforceSandbox::start(SalesforceConfig::default(), listener)
        .await
        .unwrap();
    let admin = sf.admin();
    let tokens = admin.issue_tokens("demo", None).unwrap();
    let credentials = Credentials {
        instance_url: tokens.instance_url.clone(),
        access_token: SecretString::from(tokens.access_token.clone()),
    };
    let objects = connector.describe_all(&credentials, &[]).await.unwrap();
    for object in &objects {
        for i in object.fields.len()..FIELDS {
            let ftype = TYPES[i % TYPES.len()];
            admin
                .add_field(
                    "demo",
                    &object.object.name,
                    NewField {
                        name: format!("Bench_Field_{i:03}__c"),
                        label: None,
                        ftype: ftype.to_owned(),
                        picklist: if ftype.contains("picklist") {
                            vec!["Alpha".into(), "Beta".into(), "Gamma".into()]
                        } else {
                            Vec::new()
                        },
                        reference_to: (ftype == "reference").then(|| "Account".to_owned()),
                    },
                )
                .unwrap();
        }
    }
    let sandbox_objects = objects.len();
    let (sandbox_median, sandbox_samples, sandbox_fields) =
        time_describes(&connector, &credentials, runs, sandbox_objects).await;
    println!(
        "sandbox org: {sandbox_objects} objects, {sandbox_fields} fields: median {:.1} ms over {runs} runs ({:?})",
        sandbox_median.as_secs_f64() * 1000.0,
        sandbox_samples
            .iter()
            .map(|d| d.as_millis())
            .collect::<Vec<_>>()
    );

    // 2. 500 objects of 100 fields, bodies rendered by the sandbox.
    let mut templates = Vec::new();
    for object in &objects {
        let url = format!(
            "{}/services/data/v62.0/sobjects/{}/describe",
            tokens.instance_url, object.object.name
        );
        let body: Value = http
            .get(url)
            .bearer_auth(&tokens.access_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["fields"].as_array().unwrap().len(), FIELDS);
        templates.push(body);
    }
    let names: Vec<String> = (0..OBJECTS).map(|i| format!("Bench_{i:03}__c")).collect();
    let bodies: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut body = templates[i % templates.len()].clone();
            body["name"] = json!(name);
            body["label"] = json!(name.trim_end_matches("__c").replace('_', " "));
            body["custom"] = json!(true);
            body.to_string()
        })
        .collect();
    // The connector's own share: parsing and converting every body, no HTTP.
    let mut parse_samples = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut fields = 0;
        for body in &bodies {
            let wire: syncline_connectors::salesforce::SObjectDescribe =
                serde_json::from_str(body).unwrap();
            let described = syncline_connectors::ObjectDescription::try_from(wire).unwrap();
            fields += described.fields.len();
        }
        assert_eq!(fields, OBJECTS * FIELDS);
        parse_samples.push(started.elapsed());
    }
    let bytes: usize = bodies.iter().map(String::len).sum();
    println!(
        "500-object org, parse + convert only: median {:.1} ms over {runs} runs ({:.0} MB of describe JSON)",
        median(parse_samples).as_secs_f64() * 1000.0,
        bytes as f64 / 1e6
    );
    let listing = json!({
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": names.iter().map(|n| json!({
            "name": n, "label": n, "labelPlural": n, "custom": true, "queryable": true,
            "createable": true, "updateable": true, "deletable": true,
        })).collect::<Vec<_>>(),
    });
    let stub = Arc::new(Stub { listing, bodies });
    let app = axum::Router::new()
        .route("/services/data/v62.0/sobjects/", get(global))
        .route("/services/data/v62.0/composite", post(composite))
        .with_state(stub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let stub_credentials = Credentials {
        instance_url: format!("http://{addr}"),
        access_token: SecretString::from("bench".to_owned()),
    };
    let (median_500, samples_500, fields_500) =
        time_describes(&connector, &stub_credentials, runs, OBJECTS).await;
    println!(
        "500-object org: {OBJECTS} objects, {fields_500} fields: median {:.1} ms over {runs} runs ({:?}); {:.0} fields/s",
        median_500.as_secs_f64() * 1000.0,
        samples_500
            .iter()
            .map(|d| d.as_millis())
            .collect::<Vec<_>>(),
        fields_500 as f64 / median_500.as_secs_f64()
    );
    sf.shutdown().await;
}
