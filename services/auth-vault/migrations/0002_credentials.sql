-- Envelope encryption. Every secret is sealed with AES-256-GCM under a data key: one per
-- tenant for its connections' tokens, one per project (tenant_id '') for its provider apps'
-- client secrets, and system keys under project_id '#system' (not a valid project id).
-- Data keys are stored only wrapped by a key-encryption key (KEK) named by kek_id.
CREATE TABLE data_keys (
    project_id    TEXT   NOT NULL,
    tenant_id     TEXT   NOT NULL,
    kek_id        TEXT   NOT NULL,
    wrapped_key   BYTEA  NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (project_id, tenant_id)
);
CREATE INDEX data_keys_by_kek ON data_keys (kek_id, project_id, tenant_id);

-- Vault-wide settings shared by every vault process, e.g. `active_kek_id`.
CREATE TABLE vault_settings (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

-- The provider app's client secret, sealed under the project's data key.
ALTER TABLE provider_apps ADD COLUMN client_secret BYTEA;

-- A connection's tokens, sealed under the tenant's data key. token_version increases with
-- every replacement; writers compare-and-set on it so a newer token is never overwritten.
CREATE TABLE credentials (
    connection_id  TEXT   NOT NULL PRIMARY KEY,
    project_id     TEXT   NOT NULL,
    tenant_id      TEXT   NOT NULL,
    token_version  BIGINT NOT NULL,
    access_token   BYTEA  NOT NULL,
    refresh_token  BYTEA  NOT NULL, -- empty when the grant gave none
    expires_at_ms  BIGINT NOT NULL, -- 0 when unknown
    obtained_at_ms BIGINT NOT NULL,
    token_url      TEXT   NOT NULL, -- where this connection refreshes (login host, My Domain)
    updated_at_ms  BIGINT NOT NULL
);
CREATE INDEX credentials_by_tenant ON credentials (project_id, tenant_id, connection_id);

-- Authorizations in flight. The `state` sent to the provider is signed and names a nonce
-- here; completing deletes the row, so a state works once. The PKCE verifier is sealed.
CREATE TABLE oauth_states (
    nonce           TEXT   NOT NULL PRIMARY KEY,
    project_id      TEXT   NOT NULL,
    tenant_id       TEXT   NOT NULL,
    subject         TEXT   NOT NULL,
    connection_id   TEXT   NOT NULL,
    provider_app_id TEXT   NOT NULL,
    redirect_uri    TEXT   NOT NULL,
    return_url      TEXT   NOT NULL,
    token_url       TEXT   NOT NULL,
    code_verifier   BYTEA  NOT NULL,
    expires_at_ms   BIGINT NOT NULL,
    created_at_ms   BIGINT NOT NULL
);
CREATE INDEX oauth_states_by_expiry ON oauth_states (expires_at_ms);
