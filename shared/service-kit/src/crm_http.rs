//! The HTTP client for calling CRM APIs, built once per service from [`CrmHttpConfig`].
//!
//! Real Salesforce and HubSpot are HTTPS only; the sandboxes can be too, with a locally
//! generated CA that this client trusts when `crm_http.extra_root_ca_file` names it.

use std::time::Duration;

use syncline_config::CrmHttpConfig;

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CrmHttpError {
    /// The extra root CA file could not be read or holds no certificate.
    #[error("invalid configuration: `crm_http.extra_root_ca_file` {path}: {reason}")]
    RootCa {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// reqwest refused the settings.
    #[error("failed to build the crm http client: {0}")]
    Build(#[from] reqwest::Error),
}

/// Builds the client: timeouts, a Syncline user agent, and any extra root CAs.
pub fn client(config: &CrmHttpConfig) -> Result<reqwest::Client, CrmHttpError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("syncline/", env!("CARGO_PKG_VERSION")))
        .timeout(Duration::from_millis(config.timeout_ms))
        .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
        .pool_idle_timeout(Duration::from_secs(90));
    if let Some(path) = &config.extra_root_ca_file {
        let error = |reason: String| CrmHttpError::RootCa {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
        let certificates =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| error(e.to_string()))?;
        if certificates.is_empty() {
            return Err(error("holds no certificate".into()));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    Ok(builder.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncline_crm_sandbox::salesforce::{SalesforceConfig, SalesforceSandbox};

    #[tokio::test]
    async fn the_sandbox_ca_is_trusted_only_when_configured() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sandbox = SalesforceSandbox::start(
            SalesforceConfig {
                tls: true,
                ..SalesforceConfig::default()
            },
            listener,
        )
        .await
        .unwrap();
        let url = format!("{}/services/data/", sandbox.base_url());
        assert!(url.starts_with("https://"));

        let plain = client(&CrmHttpConfig::default()).unwrap();
        assert!(
            plain.get(&url).send().await.is_err(),
            "an unknown CA must not be trusted"
        );

        let ca = std::env::temp_dir().join(format!("sandbox-ca-{}.pem", std::process::id()));
        std::fs::write(&ca, sandbox.ca_pem().unwrap()).unwrap();
        let trusting = client(&CrmHttpConfig {
            extra_root_ca_file: Some(ca.clone()),
            ..CrmHttpConfig::default()
        })
        .unwrap();
        let response = trusting.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        std::fs::remove_file(ca).unwrap();
        sandbox.shutdown().await;
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_named_configuration_error() {
        let error = client(&CrmHttpConfig {
            extra_root_ca_file: Some("/nonexistent/ca.pem".into()),
            ..CrmHttpConfig::default()
        })
        .unwrap_err();
        assert!(error.to_string().contains("crm_http.extra_root_ca_file"));
    }
}
