//! Serving one service: a tonic router on an already-bound listener, with health,
//! reflection (v1 and v1alpha) and a graceful shutdown bounded in time.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long in-flight calls may run on after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why a service stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The gRPC server failed.
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The configuration cannot run this service.
    #[error("{0}")]
    Config(String),
    /// Storage could not be opened or migrated.
    #[error(transparent)]
    Storage(#[from] Box<dyn std::error::Error + Send + Sync>),
    /// Reflection could not be built from the descriptor set.
    #[error("failed to build reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The listener has no local address.
    #[error("failed to read the listener address: {0}")]
    Io(#[from] std::io::Error),
    /// The server task panicked or was aborted.
    #[error("service task ended abnormally: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// A started service: where it listens, and the task that ends when it has drained.
#[derive(Debug)]
pub struct RunningService {
    name: &'static str,
    local_addr: SocketAddr,
    task: JoinHandle<Result<(), ServiceError>>,
}

impl RunningService {
    /// Wraps a started server task.
    pub fn new(
        name: &'static str,
        local_addr: SocketAddr,
        task: JoinHandle<Result<(), ServiceError>>,
    ) -> Self {
        Self {
            name,
            local_addr,
            task,
        }
    }

    /// The service's name, e.g. `auth-vault`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<addr>`, for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Waits until the service has stopped (after its shutdown token fired).
    pub async fn stopped(self) -> Result<(), ServiceError> {
        self.task.await?
    }
}

/// Reflection services (v1 and v1alpha, for older grpcurl) over `descriptor_sets`.
pub fn reflection(
    descriptor_sets: &[&'static [u8]],
) -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    ServiceError,
> {
    let builder = |sets: &[&'static [u8]]| {
        sets.iter().fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
            |b, set| b.register_encoded_file_descriptor_set(set),
        )
    };
    Ok((
        builder(descriptor_sets).build_v1()?,
        builder(descriptor_sets).build_v1alpha()?,
    ))
}

/// Serves `router` on `listener` until `shutdown` fires, then drains for at most
/// [`SHUTDOWN_GRACE`] and marks the service NOT_SERVING first.
pub async fn serve<L>(
    router: tonic::transport::server::Router<L>,
    listener: TcpListener,
    health: tonic_health::server::HealthReporter,
    shutdown: CancellationToken,
) -> Result<(), ServiceError>
where
    L: tower::Layer<tonic::service::Routes> + Clone,
    L::Service: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        > + Clone
        + Send
        + 'static,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Future: Send + 'static,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let drain_signal = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
        }
    };
    let server = router.serve_with_incoming_shutdown(incoming, drain_signal);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => Ok(result?),
        () = async { shutdown.cancelled().await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
            tracing::warn!("shutdown grace period elapsed; dropping in-flight calls");
            Ok(())
        }
    }
}
