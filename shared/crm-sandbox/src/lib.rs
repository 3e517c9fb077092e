//! Faithful local Salesforce and HubSpot API sandboxes with fault injection
