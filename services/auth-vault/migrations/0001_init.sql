-- A project's OAuth client registrations, one or more per provider.
-- No secret is stored here yet: the client secret arrives with CreateProviderApp, which
-- stores it envelope-encrypted (a data key wrapped by a key-encryption key) in
-- columns of its own; the encoded message never carries it.
CREATE TABLE provider_apps (
    id            TEXT    NOT NULL PRIMARY KEY,
    project_id    TEXT    NOT NULL,
    provider      INTEGER NOT NULL,
    app           BYTEA   NOT NULL, -- encoded syncline.authvault.v1.ProviderApp, without secret or times
    created_at_ms BIGINT  NOT NULL,
    updated_at_ms BIGINT  NOT NULL
);
CREATE INDEX provider_apps_by_project ON provider_apps (project_id, id);

-- A tenant's links to CRM instances. Credentials live elsewhere (envelope-encrypted, in
-- a later migration); this table holds no secret.
CREATE TABLE connections (
    id              TEXT    NOT NULL PRIMARY KEY,
    project_id      TEXT    NOT NULL,
    tenant_id       TEXT    NOT NULL,
    provider_app_id TEXT    NOT NULL,
    provider        INTEGER NOT NULL,
    status          INTEGER NOT NULL,
    connection      BYTEA   NOT NULL, -- encoded syncline.authvault.v1.Connection, without create/update times
    created_at_ms   BIGINT  NOT NULL,
    updated_at_ms   BIGINT  NOT NULL
);
CREATE INDEX connections_by_tenant ON connections (project_id, tenant_id, id);
CREATE INDEX connections_by_app ON connections (project_id, provider_app_id);
