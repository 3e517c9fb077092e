-- Stored snapshots of a connection's schema; immutable once written.
CREATE TABLE schema_versions (
    project_id    TEXT    NOT NULL,
    tenant_id     TEXT    NOT NULL,
    connection_id TEXT    NOT NULL,
    version       BIGINT  NOT NULL, -- 1, 2, … per connection
    object_count  INTEGER NOT NULL,
    content_hash  TEXT    NOT NULL, -- hex SHA-256 of the canonical catalog
    fetched_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (project_id, tenant_id, connection_id, version)
);

-- The objects of each schema version, with their fields.
CREATE TABLE schema_objects (
    project_id    TEXT    NOT NULL,
    tenant_id     TEXT    NOT NULL,
    connection_id TEXT    NOT NULL,
    version       BIGINT  NOT NULL,
    object_name   TEXT    NOT NULL,
    -- object_name's UTF-8 bytes: lists order by it, because bytes compare the same on SQLite
    -- and PostgreSQL while TEXT follows PostgreSQL's locale collation.
    name_key      BYTEA   NOT NULL,
    custom        INTEGER NOT NULL, -- 1 for custom objects, 0 for standard ones
    object        BYTEA   NOT NULL, -- encoded syncline.schema.v1.ObjectSchema, with fields
    PRIMARY KEY (project_id, tenant_id, connection_id, version, object_name)
);
CREATE INDEX schema_objects_by_name ON schema_objects (project_id, tenant_id, connection_id, version, name_key);
