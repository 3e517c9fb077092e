//! The Salesforce REST API sandbox.
