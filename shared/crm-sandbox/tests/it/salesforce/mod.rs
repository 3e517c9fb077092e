//! Salesforce sandbox tests.
