//! The gateway service
