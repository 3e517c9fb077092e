//! Serving an axum router over plain HTTP or TLS, with graceful shutdown.
//!
//! One accept loop for both modes: each connection is served by hyper-util's auto builder
//! (HTTP/1.1 and HTTP/2), optionally behind a tokio-rustls handshake. Cancelling the
//! shutdown token stops accepting, lets in-flight requests finish (bounded by
//! [`GRACE_PERIOD`]) and then ends the task.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How long in-flight connections may keep running after shutdown starts.
pub const GRACE_PERIOD: Duration = Duration::from_secs(5);

/// A running server: its address, and the means to stop it and wait for it.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// The address the server listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The token that stops the server when cancelled.
    #[must_use]
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, drains in-flight connections (at most [`GRACE_PERIOD`]) and waits.
    pub async fn stop(self) {
        self.shutdown.cancel();
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "sandbox server task ended abnormally");
        }
    }

    /// Waits until the server stops (after its token is cancelled elsewhere).
    pub async fn wait(self) {
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "sandbox server task ended abnormally");
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled; TLS when `tls` is given.
///
/// Returns at once with a handle; the accept loop runs on a spawned task.
pub fn serve(
    router: Router,
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    shutdown: CancellationToken,
) -> std::io::Result<ServerHandle> {
    let local_addr = listener.local_addr()?;
    let token = shutdown.clone();
    let task = tokio::spawn(accept_loop(
        router,
        listener,
        tls.map(TlsAcceptor::from),
        token,
    ));
    Ok(ServerHandle {
        local_addr,
        shutdown,
        task,
    })
}

async fn accept_loop(
    router: Router,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Typically EMFILE or a reset during accept: keep serving.
                tracing::warn!(%error, "accept failed");
                continue;
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "set_nodelay failed");
        }
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let builder = Builder::new(TokioExecutor::new());
            let result = match tls {
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls_stream) => {
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(tls_stream), service);
                        watcher.watch(conn.into_owned()).await
                    }
                    Err(error) => {
                        tracing::debug!(%error, %peer, "tls handshake failed");
                        return;
                    }
                },
            };
            if let Err(error) = result {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(GRACE_PERIOD, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period elapsed with connections still open");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    #[tokio::test]
    async fn serves_plain_and_tls_and_stops() -> Result<(), Box<dyn std::error::Error>> {
        let router = Router::new().route("/ping", get(|| async { "pong" }));
        let plain = serve(
            router.clone(),
            TcpListener::bind("127.0.0.1:0").await?,
            None,
            CancellationToken::new(),
        )?;
        let body = reqwest::get(format!("http://{}/ping", plain.local_addr()))
            .await?
            .text()
            .await?;
        assert_eq!(body, "pong");
        plain.stop().await;

        let tls = crate::common::tls::generate_local_tls()?;
        let secure = serve(
            router,
            TcpListener::bind("127.0.0.1:0").await?,
            Some(tls.server_config.clone()),
            CancellationToken::new(),
        )?;
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(tls.ca_pem.as_bytes())?])
            .build()?;
        let body = client
            .get(format!(
                "https://localhost:{}/ping",
                secure.local_addr().port()
            ))
            .send()
            .await?
            .text()
            .await?;
        assert_eq!(body, "pong");
        secure.stop().await;
        Ok(())
    }
}
