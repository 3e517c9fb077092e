//! Layered configuration: defaults, then a file, then SYNCLINE_* environment, then validation
