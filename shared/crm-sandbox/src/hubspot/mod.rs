//! The HubSpot CRM v3 API sandbox.
