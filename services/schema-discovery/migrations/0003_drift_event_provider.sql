-- The provider of a drift event, so an event kept for a later attempt is re-published whole.
ALTER TABLE schema_drift_events ADD COLUMN provider INTEGER NOT NULL DEFAULT 0;
