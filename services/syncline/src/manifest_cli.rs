//! `syncline manifest validate|deploy FILE`: integration manifests from the product's git
//! repository.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use syncline_mapping::manifest;
use syncline_proto::mapping::v1::DeployManifestRequest;
use syncline_proto::mapping::v1::mapping_service_client::MappingServiceClient;

/// What to do with a manifest file.
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Check a manifest offline; prints `FILE:line:column: message` per problem and exits
    /// with 1 when it is invalid.
    Validate {
        /// The manifest YAML.
        file: PathBuf,
    },
    /// Validate, then install the manifest as the project's next version through the
    /// gateway (an identical manifest keeps the current version).
    Deploy {
        /// The manifest YAML.
        file: PathBuf,
        /// The gateway's gRPC address.
        #[arg(long, default_value = "http://127.0.0.1:7400")]
        gateway: String,
        /// A JWT for the project (see `syncline token`).
        #[arg(long, env = "SYNCLINE_TOKEN", hide_env_values = true)]
        token: String,
        /// Stored with the version: a git commit, a release name.
        #[arg(long, default_value = "")]
        description: String,
    },
}

/// Runs the command; `Ok(false)` when the manifest is invalid (exit status 1).
pub async fn run(command: ManifestCommand) -> anyhow::Result<bool> {
    match command {
        ManifestCommand::Validate { file } => {
            let source = read(&file)?;
            let valid = report(&file, &source);
            if valid {
                println!("{}: valid", file.display());
            }
            Ok(valid)
        }
        ManifestCommand::Deploy {
            file,
            gateway,
            token,
            description,
        } => {
            let source = read(&file)?;
            if !report(&file, &source) {
                return Ok(false);
            }
            deploy(&gateway, &token, source, description).await?;
            Ok(true)
        }
    }
}

fn read(file: &Path) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(file).with_context(|| format!("failed to read {}", file.display()))?;
    if bytes.len() > manifest::MAX_BYTES {
        anyhow::bail!(
            "{}: the manifest is {} bytes; the limit is {}",
            file.display(),
            bytes.len(),
            manifest::MAX_BYTES
        );
    }
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", file.display()))
}

/// Prints every error and warning as `FILE:line:column: …` on stderr; true when valid.
fn report(file: &Path, source: &str) -> bool {
    let checked = manifest::validate(source);
    for (kind, issues) in [("error", &checked.errors), ("warning", &checked.warnings)] {
        for issue in issues {
            let position = if issue.line == 0 {
                String::new()
            } else {
                format!("{}:{}:", issue.line, issue.column)
            };
            let path = if issue.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", issue.path)
            };
            eprintln!(
                "{}:{position} {kind}: {path}{} [{}]",
                file.display(),
                issue.message,
                issue.code
            );
        }
    }
    checked.is_valid()
}

async fn deploy(
    gateway: &str,
    token: &str,
    content: String,
    description: String,
) -> anyhow::Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(gateway.to_owned())
        .with_context(|| format!("`{gateway}` is not a gateway url"))?
        .connect()
        .await
        .with_context(|| format!("failed to reach the gateway at {gateway}"))?;
    let mut client = MappingServiceClient::new(channel);
    let mut request = tonic::Request::new(DeployManifestRequest {
        content,
        description,
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .context("the token is not a valid header value")?,
    );
    let response = match client.deploy_manifest(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            use tonic_types::StatusExt;
            let details = status.get_error_details();
            if let Some(bad) = details.bad_request() {
                for v in &bad.field_violations {
                    eprintln!("{}: {}", v.field, v.description);
                }
            }
            anyhow::bail!("deploy failed: {:?}: {}", status.code(), status.message());
        }
    };
    let manifest = response.manifest.unwrap_or_default();
    if response.created {
        println!(
            "deployed manifest version {} (sha256 {})",
            manifest.version, manifest.content_hash
        );
    } else {
        println!(
            "unchanged: version {} has the same content",
            manifest.version
        );
    }
    Ok(())
}
