//! HubSpot sandbox tests.
