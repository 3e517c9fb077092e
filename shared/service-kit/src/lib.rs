//! What every Syncline gRPC service shares.
//!
//! - [`internal_auth`]: the signed context the gateway forwards and services exchange;
//!   backends accept tenant scope from nowhere else.
//! - [`layer`]: the per-RPC tower layer — one server span named `<package.Service>/<Method>`
//!   continuing the caller's trace, authentication of the internal context, `tenant.id`.
//! - [`server`]: serving a tonic router on an already-bound listener with health,
//!   reflection and a bounded graceful shutdown.
//! - [`client`]: channels to other services that carry trace context and credentials.

pub mod client;
pub mod crm_http;
pub mod deadline;
pub mod internal_auth;
pub mod layer;
pub mod pagination;
pub mod server;
pub mod standalone;
pub mod time;

mod boot;
pub use boot::{ServiceBoot, boot};

pub use internal_auth::{CallerOrigin, InternalAuth};

/// Every process that links the services allocates with mimalloc. A sync page builds and
/// drops many small strings and maps per record (JSON fields, proto values, mapped
/// records); with glibc's allocator `malloc`/`free` took about a quarter of a backfill's
/// CPU (perf over the backfill bench, docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
pub use layer::{ContextLayer, caller, tenant};
pub use server::{RunningService, ServiceError};
