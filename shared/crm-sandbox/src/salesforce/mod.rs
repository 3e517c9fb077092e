//! The Salesforce REST API sandbox.

pub mod errors;
pub mod ids;
pub mod query;
pub mod schema;
pub mod soql;
pub mod store;
pub mod value;
pub mod write;
