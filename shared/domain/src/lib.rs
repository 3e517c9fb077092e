//! Domain types shared by every service: ids, the caller's tenant context, and the one
//! table of error codes that every service and the gateway map to gRPC and HTTP.

pub mod context;
pub mod error;
pub mod ids;

pub use context::TenantContext;
pub use error::{ApiError, ErrorCode, Violation};
pub use ids::{IdError, ProjectId, TenantId};
