//! The mapping service
