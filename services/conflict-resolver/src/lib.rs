//! The conflict-resolver service
