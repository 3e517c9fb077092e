-- Sync runs: one read of a connection's enabled objects.
CREATE TABLE sync_runs (
    id            TEXT    NOT NULL PRIMARY KEY,
    project_id    TEXT    NOT NULL,
    tenant_id     TEXT    NOT NULL,
    connection_id TEXT    NOT NULL,
    state         INTEGER NOT NULL,
    run           BYTEA   NOT NULL, -- encoded syncline.sync.v1.SyncRun
    created_at_ms BIGINT  NOT NULL
);
CREATE INDEX sync_runs_by_tenant ON sync_runs (project_id, tenant_id, id);

-- Outbound webhook endpoints of a tenant.
CREATE TABLE webhook_endpoints (
    id             TEXT   NOT NULL PRIMARY KEY,
    project_id     TEXT   NOT NULL,
    tenant_id      TEXT   NOT NULL,
    endpoint       BYTEA  NOT NULL, -- encoded syncline.sync.v1.WebhookEndpoint, without times
    -- The HMAC key signing deliveries (`whsec_…`). Stored in plaintext FOR NOW: a later
    -- issue envelope-encrypts it like the vault's tokens (per-tenant data key wrapped by a
    -- key-encryption key) and replaces this column. Never returned after creation.
    signing_secret TEXT   NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (project_id, tenant_id, id);
