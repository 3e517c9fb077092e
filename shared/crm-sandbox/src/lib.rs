//! Faithful local Salesforce and HubSpot API sandboxes with fault injection.
//!
//! Tests, benchmarks and the `syncline up` demo run against these servers instead of the
//! real CRMs. They reproduce the real wire formats recorded in `../shared/crm-reference/`.

pub mod common;
pub mod hubspot;
pub mod salesforce;
