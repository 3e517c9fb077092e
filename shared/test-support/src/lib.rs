//! Helpers for tests: receive OTLP traces in process, mint tokens, find PostgreSQL.

#![allow(clippy::expect_used)]

pub mod otlp;
pub mod postgres;
pub mod storage;
pub mod tokens;
