//! The error type of the sandbox crate's start-up and admin paths.

/// What can go wrong while starting or administering a sandbox.
///
/// Request-level failures are never reported through this type: they become the provider's
/// own error bodies on the wire.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Binding, accepting or reading the listener failed.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    /// Generating the local CA or a server certificate failed.
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    /// Building the rustls server configuration failed.
    #[error("tls configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    /// An admin call named something that does not exist or asked for an invalid change.
    #[error("invalid admin request: {0}")]
    InvalidRequest(String),
    /// An admin call named an org, portal or object that does not exist.
    #[error("not found: {0}")]
    NotFound(String),
}
