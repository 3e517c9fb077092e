//! The schema-discovery service
