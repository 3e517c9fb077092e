//! The whole Syncline suite in one process, and the `syncline` command around it.
//!
//! [`start_suite`] binds every service (each on its own port), points the gateway at the
//! backends' real addresses and starts them, so `syncline up` and the end-to-end tests run
//! the very same code as a distributed deployment, only in one process.

pub mod dev_auth;
pub mod sandboxes;

use std::net::SocketAddr;

use secrecy::SecretString;
use syncline_config::{ServiceName, SynclineConfig};
use syncline_service_kit::{RunningService, ServiceError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Errors starting the suite.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// A listener could not be bound.
    #[error("failed to bind {service} on {addr}: {source}")]
    Bind {
        /// Which service.
        service: ServiceName,
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A service failed to start.
    #[error("{service} failed to start: {source}")]
    Service {
        /// Which service.
        service: ServiceName,
        /// Why.
        source: ServiceError,
    },
}

/// The running suite.
#[derive(Debug)]
pub struct Suite {
    services: Vec<(ServiceName, RunningService)>,
    config: SynclineConfig,
}

impl Suite {
    /// Where `service` listens.
    pub fn addr(&self, service: ServiceName) -> Option<SocketAddr> {
        self.services
            .iter()
            .find(|(name, _)| *name == service)
            .map(|(_, running)| running.local_addr())
    }

    /// The gateway's URL.
    pub fn gateway_url(&self) -> String {
        self.addr(ServiceName::Gateway)
            .map(|a| format!("http://{a}"))
            .unwrap_or_default()
    }

    /// The effective configuration (with generated secrets and bound addresses).
    pub fn config(&self) -> &SynclineConfig {
        &self.config
    }

    /// Every service and its address, in start order.
    pub fn listening(&self) -> impl Iterator<Item = (ServiceName, SocketAddr)> + '_ {
        self.services.iter().map(|(n, r)| (*n, r.local_addr()))
    }

    /// Waits until every service has stopped (after the shutdown token fired).
    pub async fn stopped(self) -> Vec<(ServiceName, ServiceError)> {
        let mut failures = Vec::new();
        for (name, running) in self.services {
            if let Err(error) = running.stopped().await {
                failures.push((name, error));
            }
        }
        failures
    }
}

/// A random secret of `len` URL-safe characters.
pub fn random_secret(len: usize) -> SecretString {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    let secret: String = (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    SecretString::from(secret)
}

/// Starts all six services in this process. Missing internal secret: generated for this run.
pub async fn start_suite(
    mut config: SynclineConfig,
    shutdown: CancellationToken,
) -> Result<Suite, SuiteError> {
    if config.internal_auth.secret.is_none() {
        config.internal_auth.secret = Some(random_secret(48));
    }
    let mut listeners = Vec::new();
    for service in ServiceName::ALL {
        let addr = config.listen_addr(service);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SuiteError::Bind {
                service,
                addr,
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| SuiteError::Bind {
            service,
            addr,
            source,
        })?;
        config.set_listen_addr(service, bound);
        if service != ServiceName::Gateway {
            config
                .gateway
                .backends
                .set_url(service, format!("http://{bound}"));
        }
        listeners.push((service, listener));
    }
    let mut services = Vec::new();
    for (service, listener) in listeners {
        let started = start_one(service, &config, listener, shutdown.child_token()).await;
        match started {
            Ok(running) => services.push((service, running)),
            Err(source) => {
                shutdown.cancel();
                return Err(SuiteError::Service { service, source });
            }
        }
    }
    Ok(Suite { services, config })
}

/// Starts one service on `listener`.
pub async fn start_one(
    service: ServiceName,
    config: &SynclineConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunningService, ServiceError> {
    match service {
        ServiceName::Gateway => syncline_gateway::start(config, listener, shutdown).await,
        ServiceName::AuthVault => syncline_auth_vault::start(config, listener, shutdown).await,
        ServiceName::SchemaDiscovery => {
            syncline_schema_discovery::start(config, listener, shutdown).await
        }
        ServiceName::Mapping => syncline_mapping::start(config, listener, shutdown).await,
        ServiceName::SyncEngine => syncline_sync_engine::start(config, listener, shutdown).await,
        ServiceName::ConflictResolver => {
            syncline_conflict_resolver::start(config, listener, shutdown).await
        }
    }
}
