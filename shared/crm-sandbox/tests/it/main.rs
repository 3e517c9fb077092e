//! One integration-test binary for the CRM sandboxes.

mod hubspot;
mod salesforce;
