//! Structural comparison of sandbox responses with recorded real responses.
