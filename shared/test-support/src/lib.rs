//! Helpers for tests: receive OTLP traces in process, mint tokens, find PostgreSQL,
//! connect a sandbox CRM through the gateway.

#![allow(clippy::expect_used)]

pub mod crm;
pub mod otlp;
pub mod postgres;
pub mod storage;
pub mod tokens;
