//! The auth-vault service
