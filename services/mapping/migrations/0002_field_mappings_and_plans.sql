-- A tenant's saved field mappings: one row per connection and model object.
CREATE TABLE field_mappings (
    project_id    TEXT   NOT NULL,
    tenant_id     TEXT   NOT NULL,
    connection_id TEXT   NOT NULL,
    object        TEXT   NOT NULL, -- model object key
    mapping       BYTEA  NOT NULL, -- encoded syncline.mapping.v1.ObjectMapping
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (project_id, tenant_id, connection_id, object)
);

-- Compiled mapping plans: immutable, versions 1, 2, … per connection.
CREATE TABLE mapping_plans (
    project_id    TEXT   NOT NULL,
    tenant_id     TEXT   NOT NULL,
    connection_id TEXT   NOT NULL,
    plan_version  BIGINT NOT NULL,
    plan          BYTEA  NOT NULL, -- encoded syncline.mapping.v1.MappingPlan, without create_time
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (project_id, tenant_id, connection_id, plan_version)
);
