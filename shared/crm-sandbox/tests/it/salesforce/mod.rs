//! Salesforce sandbox tests.

mod client_simple_salesforce;
mod conformance;
mod data;
mod faults;
mod oauth;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use syncline_crm_sandbox::salesforce::{
    OrgConfig, RunningSalesforce, SalesforceConfig, SalesforceSandbox,
};

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A running sandbox, a client and a token for the demo org.
pub struct Sf {
    pub sf: RunningSalesforce,
    pub http: reqwest::Client,
    pub token: String,
    pub refresh: String,
}

pub async fn spawn_with(
    config: SalesforceConfig,
) -> Result<Sf, Box<dyn std::error::Error + Send + Sync>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sf = SalesforceSandbox::start(config, listener).await?;
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = sf.ca_pem() {
        builder = builder.tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes())?]);
    }
    let http = builder.build()?;
    let tokens = sf.admin().issue_tokens("demo", None)?;
    Ok(Sf {
        sf,
        http,
        token: tokens.access_token,
        refresh: tokens.refresh_token,
    })
}

pub async fn spawn() -> Result<Sf, Box<dyn std::error::Error + Send + Sync>> {
    spawn_with(SalesforceConfig::default()).await
}

/// A config with a single small org for fast tests.
pub fn small(counts: &[(&str, u64)]) -> SalesforceConfig {
    SalesforceConfig {
        orgs: vec![OrgConfig {
            counts: counts.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            ..OrgConfig::default()
        }],
        ..SalesforceConfig::default()
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Sf {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.sf.base_url(), path)
    }

    pub async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
        let resp = req.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
        self.send(self.http.get(self.url(path)).bearer_auth(&self.token))
            .await
    }

    pub async fn query(
        &self,
        soql: &str,
    ) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
        self.send(
            self.http
                .get(self.url("/services/data/v59.0/query"))
                .query(&[("q", soql)])
                .bearer_auth(&self.token),
        )
        .await
    }

    pub async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
        self.send(
            self.http
                .request(method, self.url(path))
                .bearer_auth(&self.token)
                .json(body),
        )
        .await
    }
}

/// Reads a recorded real response from `../shared/crm-reference/salesforce/`.
pub fn fixture(name: &str) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/crm-reference/salesforce")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read fixture {}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}
