//! The sync-engine service
