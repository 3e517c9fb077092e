-- The proactive refresher reads the tokens expiring soonest, in expiry order.
CREATE INDEX credentials_by_expiry ON credentials (expires_at_ms, connection_id);
