-- Scheduled incremental runs: one row per (tenant, connection, model object) whose mapping
-- plan carries a schedule (the manifest's `schedule`), rewritten from the plan whenever a
-- run of the connection starts or ends, removed with the connection.
CREATE TABLE sync_schedules (
    project_id    TEXT    NOT NULL,
    tenant_id     TEXT    NOT NULL,
    connection_id TEXT    NOT NULL,
    object        TEXT    NOT NULL, -- model object
    interval_ms   BIGINT  NOT NULL, -- the plan's schedule_seconds, in milliseconds
    -- When the next run is due. A claim moves it past the claim's lease, so processes that
    -- poll together never both take it, and a process killed after claiming loses it only
    -- until the lease ends.
    next_due_ms   BIGINT  NOT NULL,
    -- 1 while the connection needs re-authorization: no runs until it is authorized again.
    suspended     INTEGER NOT NULL DEFAULT 0,
    -- Starts that failed in a row (backoff).
    failures      INTEGER NOT NULL DEFAULT 0,
    updated_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (project_id, tenant_id, connection_id, object)
);
CREATE INDEX sync_schedules_due ON sync_schedules (suspended, next_due_ms);
