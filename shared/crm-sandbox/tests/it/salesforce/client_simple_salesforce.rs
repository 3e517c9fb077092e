//! Drives the sandbox with the real simple-salesforce client (see tests/clients/).
