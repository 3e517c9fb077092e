-- Deployed integration manifests: one row per version of a project's manifest.
CREATE TABLE manifests (
    project_id     TEXT   NOT NULL,
    version        BIGINT NOT NULL, -- 1, 2, … per project
    content        TEXT   NOT NULL, -- the YAML as deployed
    manifest       BYTEA  NOT NULL, -- encoded syncline.mapping.v1.Manifest, without content or times
    deployed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (project_id, version)
);

-- A tenant's set-up of the manifest on one connection (one installation each).
CREATE TABLE installations (
    project_id    TEXT   NOT NULL,
    tenant_id     TEXT   NOT NULL,
    connection_id TEXT   NOT NULL,
    installation  BYTEA  NOT NULL, -- encoded syncline.mapping.v1.Installation, without update_time
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (project_id, tenant_id, connection_id)
);
