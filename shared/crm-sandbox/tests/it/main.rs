//! One integration-test binary for the CRM sandboxes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hubspot;
mod salesforce;
