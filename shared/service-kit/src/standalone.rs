//! Running one service as its own process (`syncline serve <service>` and the per-service
//! binaries): configuration, telemetry, signals, drain.

use std::future::Future;
use std::path::PathBuf;

use anyhow::Context;
use syncline_config::{ServiceName, SynclineConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::{RunningService, ServiceError};

/// Command-line options of a per-service binary.
#[derive(Debug, clap::Parser)]
pub struct ServeArgs {
    /// TOML configuration file (then `SYNCLINE_*` environment variables override it).
    #[arg(long, short, env = "SYNCLINE_CONFIG_FILE")]
    pub config: Option<PathBuf>,
}

/// A cancellation token fired by SIGTERM or Ctrl-C.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(error) => {
                        tracing::error!(%error, "failed to listen for sigterm");
                        let _ = ctrl_c.await;
                        trigger.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        trigger.cancel();
    });
    token
}

/// Runs one service until a signal: loads `config`, starts telemetry, binds the configured
/// address, starts the service with `start`, waits for it to drain.
pub async fn run<F, Fut>(
    service: ServiceName,
    config: SynclineConfig,
    start: F,
) -> anyhow::Result<()>
where
    F: FnOnce(SynclineConfig, TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = Result<RunningService, ServiceError>>,
{
    let _telemetry = syncline_telemetry::init(&config.telemetry, &format!("syncline-{service}"))
        .context("failed to start telemetry")?;
    if config.internal_auth.secret.is_none() {
        anyhow::bail!(
            "invalid configuration: `internal_auth.secret` is required when services run as separate processes"
        );
    }
    let addr = config.listen_addr(service);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to bind {addr}"))?;
    let shutdown = shutdown_on_signal();
    let running = start(config, listener, shutdown).await?;
    tracing::info!(service = %service, addr = %running.local_addr(), "listening");
    running.stopped().await?;
    Ok(())
}

/// Entry point of a per-service binary.
pub async fn main<F, Fut>(service: ServiceName, start: F) -> anyhow::Result<()>
where
    F: FnOnce(SynclineConfig, TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = Result<RunningService, ServiceError>>,
{
    let args = <ServeArgs as clap::Parser>::parse();
    let config = syncline_config::load_from_process(args.config.as_deref())?;
    run(service, config, start).await
}
