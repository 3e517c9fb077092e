//! auth-vault's integration tests: the service started in-process against the CRM
//! sandboxes, called directly with service credentials.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod lifecycle;
mod logs;
mod refresher;
mod support;
mod transfer;
