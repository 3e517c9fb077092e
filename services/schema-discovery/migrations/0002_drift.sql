-- Drift found by a refresh between a connection's previous and new schema version: one row
-- per changed field (field_name '' for an object added or removed, or whose own attributes
-- changed). The mapping service reads the breaking rows (removed, retyped) to flag the
-- mappings they break.
CREATE TABLE schema_drift (
    project_id     TEXT    NOT NULL,
    tenant_id      TEXT    NOT NULL,
    connection_id  TEXT    NOT NULL,
    from_version   BIGINT  NOT NULL,
    to_version     BIGINT  NOT NULL,
    object_name    TEXT    NOT NULL,
    field_name     TEXT    NOT NULL,
    -- comma-separated, in this order: added, removed, retyped, picklist_changed,
    -- attributes_changed
    kinds          TEXT    NOT NULL,
    -- 1 when a mapping using the object or field may break: removed or retyped
    breaking       INTEGER NOT NULL,
    before_type    TEXT    NOT NULL, -- native type in from_version ('' if none)
    after_type     TEXT    NOT NULL, -- native type in to_version ('' if none)
    detected_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (project_id, tenant_id, connection_id, to_version, object_name, field_name)
);
CREATE INDEX schema_drift_breaking ON schema_drift (project_id, tenant_id, connection_id, breaking, to_version);

-- One row per refresh that found drift: whether SCHEMA_DRIFT_DETECTED reached sync-engine's
-- event log (0 while its intake answers UNIMPLEMENTED or fails; the rows above hold the drift
-- either way).
CREATE TABLE schema_drift_events (
    project_id     TEXT    NOT NULL,
    tenant_id      TEXT    NOT NULL,
    connection_id  TEXT    NOT NULL,
    from_version   BIGINT  NOT NULL,
    to_version     BIGINT  NOT NULL,
    changed_objects INTEGER NOT NULL,
    breaking_fields INTEGER NOT NULL,
    published      INTEGER NOT NULL,
    detected_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (project_id, tenant_id, connection_id, to_version)
);
