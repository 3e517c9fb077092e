//! HubSpot sandbox tests: API behaviour, conformance with recorded responses, webhooks, and
//! the real `hubspot-api-client` Python package.

mod api;
mod conformance;
mod python_client;
mod webhooks;

use reqwest::header::HeaderMap;
use serde_json::Value;
use syncline_crm_sandbox::hubspot::{
    DEMO_CLIENT_ID, DEMO_PORTAL_ID, HubSpotConfig, HubSpotSandbox, PortalConfig, RecordCounts,
    RunningHubSpot,
};

/// A running sandbox with a token for the demo portal.
pub struct Env {
    pub hs: RunningHubSpot,
    pub token: String,
    pub refresh_token: String,
    pub http: reqwest::Client,
}

/// A response: status, headers, JSON body (`Null` when empty).
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn small_counts() -> RecordCounts {
    RecordCounts {
        contacts: 250,
        companies: 40,
        deals: 60,
        custom: 30,
    }
}

/// Starts a sandbox whose demo portal has `counts` records.
pub async fn spawn_with(counts: RecordCounts) -> Env {
    let config = HubSpotConfig {
        portals: vec![PortalConfig {
            portal_id: DEMO_PORTAL_ID,
            seed: 7,
            counts,
            ..PortalConfig::default()
        }],
        ..HubSpotConfig::default()
    };
    spawn_config(config).await
}

pub async fn spawn_config(config: HubSpotConfig) -> Env {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hs = HubSpotSandbox::start(config, listener).await.unwrap();
    let pair = hs
        .admin()
        .issue_tokens(DEMO_CLIENT_ID, DEMO_PORTAL_ID)
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Env {
        hs,
        token: pair.access_token,
        refresh_token: pair.refresh_token,
        http,
    }
}

pub async fn spawn() -> Env {
    spawn_with(small_counts()).await
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.hs.base_url())
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get_as(&self, token: &str, path: &str) -> Resp {
        self.send(self.http.get(self.url(path)).bearer_auth(token))
            .await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.get_as(&self.token, path).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(
            self.http
                .post(self.url(path))
                .bearer_auth(&self.token)
                .json(body),
        )
        .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.send(
            self.http
                .patch(self.url(path))
                .bearer_auth(&self.token)
                .json(body),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.http.delete(self.url(path)).bearer_auth(&self.token))
            .await
    }

    pub async fn form(&self, path: &str, fields: &[(&str, &str)]) -> Resp {
        self.send(self.http.post(self.url(path)).form(fields)).await
    }
}

/// The recorded HubSpot fixture `name` from `../shared/crm-reference/hubspot/`.
pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../../shared/crm-reference/hubspot/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&raw).unwrap()
}
