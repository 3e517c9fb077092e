//! Layered configuration for the whole suite.
//!
//! Values come from the defaults compiled in, then a TOML file, then the environment
//! (`SYNCLINE_<SECTION>__<KEY>`, e.g. `SYNCLINE_GATEWAY__JWT__AUDIENCE`), and are then
//! validated. An unknown key fails start-up and names the key. Tests pass their own
//! environment to [`load`] instead of touching the process's.

mod env;
mod model;

pub use model::*;

use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Toml};

/// The prefix of every environment variable Syncline reads.
pub const ENV_PREFIX: &str = "SYNCLINE_";

/// Configuration that could not be loaded or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key is unknown, has the wrong type, or a file could not be read.
    #[error("invalid configuration: {0}")]
    Load(String),
    /// A value is well-formed but not acceptable.
    #[error("invalid configuration: `{key}` {reason}")]
    Invalid {
        /// Dotted key, e.g. `gateway.jwt.audience`.
        key: String,
        /// Why it is refused.
        reason: String,
    },
}

/// Loads the configuration: defaults, then `file` (if any), then the `SYNCLINE_*` entries
/// of `env`, then [`SynclineConfig::validate`].
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<SynclineConfig, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::Load(format!(
                "config file {} does not exist",
                path.display()
            )));
        }
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(env::EnvProvider(env::nested(env, ENV_PREFIX)));
    let config: SynclineConfig = figment
        .extract()
        .map_err(|e| ConfigError::Load(describe(e)))?;
    config.validate()?;
    Ok(config)
}

/// Loads from the process environment; for `main` only.
pub fn load_from_process(file: Option<&Path>) -> Result<SynclineConfig, ConfigError> {
    load(file, std::env::vars())
}

fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e
                .path
                .iter()
                .filter(|p| p.as_str() != "default")
                .cloned()
                .collect::<Vec<_>>()
                .join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{source}", e.kind)
            } else {
                format!("`{key}`: {}{source}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
