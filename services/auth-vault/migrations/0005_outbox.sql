-- Lifecycle events waiting to be published to sync-engine, written in the same transaction
-- as the status change they report. A row is deleted once sync-engine accepted it; until
-- then it is retried with back-off. The id is the event id, so retries dedupe downstream.
CREATE TABLE outbox (
    id                 TEXT    NOT NULL PRIMARY KEY,
    project_id         TEXT    NOT NULL,
    tenant_id          TEXT    NOT NULL,
    connection_id      TEXT    NOT NULL,
    event              BYTEA   NOT NULL, -- encoded syncline.common.v1.Event
    attempts           INTEGER NOT NULL,
    next_attempt_at_ms BIGINT  NOT NULL,
    lease_owner        TEXT    NOT NULL,
    lease_until_ms     BIGINT  NOT NULL,
    last_error         TEXT    NOT NULL, -- the gRPC code of the last refusal, never a body
    created_at_ms      BIGINT  NOT NULL
);
CREATE INDEX outbox_by_due_time ON outbox (next_attempt_at_ms, id);
CREATE INDEX outbox_by_tenant ON outbox (project_id, tenant_id, id);
