-- The change log: per-tenant sequences, the changes themselves, the webhook outbox and dead
-- letters.

-- One counter row per tenant. An append updates it in the same transaction as its inserts, so
-- concurrent appenders on PostgreSQL serialise on this row: sequences are never handed out
-- twice, and a tenant's appends commit in sequence order.
CREATE TABLE tenant_sequences (
    project_id     TEXT   NOT NULL,
    tenant_id      TEXT   NOT NULL,
    last_sequence  BIGINT NOT NULL,
    -- The highest sequence removed by retention; resuming below it is CURSOR_EXPIRED.
    pruned_through BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, tenant_id)
);

CREATE TABLE changes (
    project_id      TEXT   NOT NULL,
    tenant_id       TEXT   NOT NULL,
    sequence        BIGINT NOT NULL,
    connection_id   TEXT   NOT NULL,
    object          TEXT   NOT NULL,
    published_at_ms BIGINT NOT NULL,
    change          BYTEA  NOT NULL, -- encoded syncline.sync.v1.Change (with provider record)
    PRIMARY KEY (project_id, tenant_id, sequence)
);
CREATE INDEX changes_by_publish_time ON changes (published_at_ms);

-- Delivery health of an endpoint. `disabled` mirrors the flag inside `endpoint` so the
-- dispatcher can filter in SQL.
ALTER TABLE webhook_endpoints ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
-- First failed attempt since the last success; NULL while healthy.
ALTER TABLE webhook_endpoints ADD COLUMN failing_since_ms BIGINT;
-- Messages dead-lettered in a row since the last success.
ALTER TABLE webhook_endpoints ADD COLUMN consecutive_dead INTEGER NOT NULL DEFAULT 0;

-- The outbox: one row per (change, endpoint), written in the append's transaction.
CREATE TABLE deliveries (
    id                  TEXT    NOT NULL PRIMARY KEY, -- the `webhook-id`, stable across attempts and replays
    project_id          TEXT    NOT NULL,
    tenant_id           TEXT    NOT NULL,
    endpoint_id         TEXT    NOT NULL,
    sequence            BIGINT  NOT NULL, -- the change's sequence: the order per endpoint
    state               INTEGER NOT NULL, -- 1 pending, 2 delivered, 3 dead
    attempt_count       INTEGER NOT NULL, -- attempts in the current round (reset by replay)
    total_attempts      INTEGER NOT NULL,
    next_attempt_at_ms  BIGINT  NOT NULL,
    claimed_until_ms    BIGINT  NOT NULL, -- a dispatcher's lease while it attempts
    claim_token         TEXT    NOT NULL,
    first_failure_at_ms BIGINT,
    last_error          TEXT    NOT NULL,
    created_at_ms       BIGINT  NOT NULL,
    updated_at_ms       BIGINT  NOT NULL,
    change              BYTEA   NOT NULL -- encoded syncline.sync.v1.Change, without provider record
);
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, state, sequence);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at_ms);

-- Records that failed after all retries, at any stage (only DELIVER so far).
CREATE TABLE dead_letters (
    id                 TEXT    NOT NULL PRIMARY KEY,
    project_id         TEXT    NOT NULL,
    tenant_id          TEXT    NOT NULL,
    stage              INTEGER NOT NULL,
    connection_id      TEXT    NOT NULL,
    object             TEXT    NOT NULL,
    last_failure_at_ms BIGINT  NOT NULL,
    delivery_id        TEXT    NOT NULL, -- for DELIVER: the delivery replay re-queues
    letter             BYTEA   NOT NULL  -- encoded syncline.sync.v1.DeadLetter
);
CREATE INDEX dead_letters_by_tenant ON dead_letters (project_id, tenant_id, id);
CREATE INDEX dead_letters_by_delivery ON dead_letters (delivery_id);
