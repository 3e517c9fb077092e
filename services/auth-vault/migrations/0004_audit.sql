-- The credential audit trail: who did what to which connection or provider app, when, and
-- whether it failed. Never a secret: `details` holds only names, counts and enum values.
-- Ids are time-ordered (UUIDv7), so newest-first pages are one index range scan.
CREATE TABLE audit_events (
    id              TEXT    NOT NULL PRIMARY KEY,
    project_id      TEXT    NOT NULL,
    tenant_id       TEXT    NOT NULL,
    connection_id   TEXT    NOT NULL, -- '' when none
    provider_app_id TEXT    NOT NULL, -- '' when none
    actor           TEXT    NOT NULL, -- the caller's subject, or `system`
    action          INTEGER NOT NULL, -- syncline.authvault.v1.AuditAction
    failure_reason  INTEGER NOT NULL, -- syncline.common.v1.ErrorReason; 0 when it succeeded
    details         TEXT    NOT NULL, -- JSON object of strings
    trace_id        TEXT    NOT NULL,
    occurred_at_ms  BIGINT  NOT NULL
);
CREATE INDEX audit_events_by_tenant ON audit_events (project_id, tenant_id, id);
CREATE INDEX audit_events_by_connection ON audit_events (project_id, tenant_id, connection_id, id);
