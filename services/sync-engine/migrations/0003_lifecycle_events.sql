-- The lifecycle event log: per-tenant sequences of its own, the events, and lifecycle
-- deliveries in the webhook outbox.

-- One counter row per tenant, like `tenant_sequences` for changes: a publish bumps it in the
-- same transaction as its insert, so concurrent publishers on PostgreSQL serialise on the row.
CREATE TABLE tenant_event_sequences (
    project_id     TEXT   NOT NULL,
    tenant_id      TEXT   NOT NULL,
    last_sequence  BIGINT NOT NULL,
    -- The highest sequence removed by retention; resuming below it is CURSOR_EXPIRED.
    pruned_through BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, tenant_id)
);

CREATE TABLE lifecycle_events (
    project_id      TEXT    NOT NULL,
    tenant_id       TEXT    NOT NULL,
    sequence        BIGINT  NOT NULL,
    id              TEXT    NOT NULL, -- the event id: a publish that repeats it is a retry
    event_type      INTEGER NOT NULL,
    connection_id   TEXT    NOT NULL,
    published_at_ms BIGINT  NOT NULL,
    event           BYTEA   NOT NULL, -- encoded syncline.common.v1.Event, with id and sequence
    PRIMARY KEY (project_id, tenant_id, sequence)
);
CREATE UNIQUE INDEX lifecycle_events_by_id ON lifecycle_events (project_id, tenant_id, id);
CREATE INDEX lifecycle_events_by_publish_time ON lifecycle_events (published_at_ms);

-- What a delivery carries: 1 a change (its `change` column holds the encoded Change), 2 a
-- lifecycle event (the column holds the encoded Event). `sequence` is in that kind's log, and
-- an endpoint's order holds per kind.
ALTER TABLE deliveries ADD COLUMN kind INTEGER NOT NULL DEFAULT 1;
DROP INDEX deliveries_by_endpoint;
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, kind, state, sequence);
