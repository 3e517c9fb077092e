//! OAuth flows.
