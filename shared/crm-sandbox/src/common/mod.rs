//! Pieces both sandboxes share: fault injection, deterministic data, TLS, serving.
//!
//! Everything here is provider-neutral. The Salesforce and HubSpot sandboxes build their
//! wire formats on top of it; tests of both use [`compare`] to check the sandboxes'
//! responses against the recorded real ones.

pub mod compare;
pub mod datagen;
pub mod error;
pub mod faults;
pub mod rng;
pub mod serve;
pub mod stats;
pub mod tls;

pub use compare::{ShapeMismatch, ShapeOptions, compare_shape};
pub use error::SandboxError;
pub use faults::{FaultConfig, FaultDecision, FaultInjector, FaultOutcome};
pub use rng::{SeededRng, derive_seed};
pub use serve::{ServerHandle, serve};
pub use stats::{OrgStats, StatKind, StatsSnapshot};
pub use tls::generate_local_tls;
pub use tls::{LocalCa, TlsMaterial};
