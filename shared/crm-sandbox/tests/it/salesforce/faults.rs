//! Fault injection, quota and schema changes.
