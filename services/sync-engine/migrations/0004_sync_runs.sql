-- Sync runs worked as a durable queue: one slice per (run, object), leased by a worker for
-- one page at a time; checkpoints per (tenant, connection, object); the state of every
-- record read, so a replayed page publishes nothing twice.

-- The run's changing parts live in columns; `run` keeps what is fixed at its start.
ALTER TABLE sync_runs ADD COLUMN mode INTEGER NOT NULL DEFAULT 0;
-- 1 while PENDING, RUNNING or PAUSED: at most one active run per connection and mode.
ALTER TABLE sync_runs ADD COLUMN active INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_runs ADD COLUMN started_at_ms BIGINT;
ALTER TABLE sync_runs ADD COLUMN ended_at_ms BIGINT;
ALTER TABLE sync_runs ADD COLUMN error_reason INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_runs ADD COLUMN error_message TEXT NOT NULL DEFAULT '';
-- A run paused by the API budget resumes by itself at this time; NULL otherwise.
ALTER TABLE sync_runs ADD COLUMN resume_at_ms BIGINT;
-- W3C `traceparent` of the run's root span: every page's span joins that trace.
ALTER TABLE sync_runs ADD COLUMN trace_parent TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX sync_runs_one_active
    ON sync_runs (project_id, tenant_id, connection_id, mode) WHERE active = 1;
CREATE INDEX sync_runs_to_resume ON sync_runs (state, resume_at_ms);

-- The work queue: one row per (run, object).
CREATE TABLE sync_slices (
    id                TEXT    NOT NULL PRIMARY KEY, -- <run id>/<object>
    run_id            TEXT    NOT NULL,
    project_id        TEXT    NOT NULL,
    tenant_id         TEXT    NOT NULL,
    connection_id     TEXT    NOT NULL,
    position          INTEGER NOT NULL, -- order of the object in the run
    object            TEXT    NOT NULL, -- model object
    provider_object   TEXT    NOT NULL,
    cursor            TEXT    NOT NULL, -- the reader's opaque cursor after the last committed page
    done              INTEGER NOT NULL,
    records_read      BIGINT  NOT NULL,
    changes_published BIGINT  NOT NULL,
    records_unchanged BIGINT  NOT NULL,
    records_failed    BIGINT  NOT NULL,
    provider_calls    BIGINT  NOT NULL,
    estimated_total   BIGINT  NOT NULL,
    not_before_ms     BIGINT  NOT NULL, -- backoff after a retryable failure
    attempts          INTEGER NOT NULL, -- failed attempts in a row
    lease_holder      TEXT    NOT NULL, -- the worker reading a page of it, '' when free
    lease_until_ms    BIGINT  NOT NULL, -- 0 when free; an expired lease is taken over
    last_served_ms    BIGINT  NOT NULL
);
CREATE INDEX sync_slices_by_run ON sync_slices (run_id, position);
CREATE INDEX sync_slices_ready ON sync_slices (done, not_before_ms, lease_until_ms);
CREATE INDEX sync_slices_by_tenant ON sync_slices (project_id, tenant_id, done);

-- When each tenant was last given a slice: the least recently served goes first.
CREATE TABLE sync_tenant_turns (
    project_id     TEXT   NOT NULL,
    tenant_id      TEXT   NOT NULL,
    last_served_ms BIGINT NOT NULL,
    PRIMARY KEY (project_id, tenant_id)
);

-- Where incremental reads of each object continue.
CREATE TABLE sync_checkpoints (
    project_id    TEXT   NOT NULL,
    tenant_id     TEXT   NOT NULL,
    connection_id TEXT   NOT NULL,
    object        TEXT   NOT NULL, -- model object
    cursor        TEXT   NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (project_id, tenant_id, connection_id, object)
);

-- The content hash of each record last published (mapped fields and the deleted flag).
CREATE TABLE sync_record_state (
    project_id    TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    object        TEXT NOT NULL, -- model object
    record_id     TEXT NOT NULL,
    hash          TEXT NOT NULL,
    PRIMARY KEY (project_id, tenant_id, connection_id, object, record_id)
);
