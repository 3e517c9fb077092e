-- Record state looked up by one key column. With a five-column key PostgreSQL, planning with
-- stale statistics (autovacuum off, or before the first analyze), matched only the first four
-- columns in the index and filtered the record ids, reading every state row of the object
-- for each page; a single key makes `key IN (…)` an index lookup per record whatever the
-- statistics say.
CREATE TABLE sync_record_hashes (
    record_key TEXT NOT NULL PRIMARY KEY, -- project/tenant/connection/object/record id
    project_id TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
INSERT INTO sync_record_hashes (record_key, project_id, tenant_id, hash)
SELECT project_id || '/' || tenant_id || '/' || connection_id || '/' || object || '/' || record_id,
       project_id, tenant_id, hash
FROM sync_record_state;
DROP TABLE sync_record_state;
