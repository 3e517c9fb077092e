-- SQLite: record state in a table without rowid. With a TEXT primary key on an ordinary
-- table SQLite keeps the key twice — in the table and in the key's own index — and every
-- new record inserts into both b-trees. Clustered on the key it is stored once (~150 bytes
-- less a record, one b-tree insert instead of two) and looked up the same way.
CREATE TABLE sync_record_hashes_by_key (
    record_key TEXT NOT NULL PRIMARY KEY, -- project/tenant/connection/object/record id
    project_id TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    hash       TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO sync_record_hashes_by_key (record_key, project_id, tenant_id, hash)
SELECT record_key, project_id, tenant_id, hash FROM sync_record_hashes;
DROP TABLE sync_record_hashes;
ALTER TABLE sync_record_hashes_by_key RENAME TO sync_record_hashes;
