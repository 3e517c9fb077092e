-- A tenant's conflict policy (one row per tenant, absent until first changed).
CREATE TABLE policies (
    project_id    TEXT   NOT NULL,
    tenant_id     TEXT   NOT NULL,
    policy        BYTEA  NOT NULL, -- encoded syncline.conflict.v1.Policy
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (project_id, tenant_id)
);

-- The review queue and the record of decided conflicts.
CREATE TABLE conflicts (
    id            TEXT    NOT NULL PRIMARY KEY,
    project_id    TEXT    NOT NULL,
    tenant_id     TEXT    NOT NULL,
    connection_id TEXT    NOT NULL,
    object        TEXT    NOT NULL,
    state         INTEGER NOT NULL,
    conflict      BYTEA   NOT NULL, -- encoded syncline.conflict.v1.Conflict
    created_at_ms BIGINT  NOT NULL
);
CREATE INDEX conflicts_by_tenant ON conflicts (project_id, tenant_id, id);
