//! Who is calling: the project and tenant every request is scoped to.

use crate::ids::{ProjectId, TenantId};

/// The authenticated scope of one request. Every query and every resource check uses it;
/// no request body can widen it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantContext {
    /// The SaaS product the caller belongs to.
    pub project_id: ProjectId,
    /// The customer the call acts for.
    pub tenant_id: TenantId,
    /// The authenticated principal (a user, or a service of the product), for audit.
    pub subject: String,
}
