-- As 0006_provider_record_column.sql, plus: keep change rows inline and uncompressed up to
-- 8 KB. A change with its provider record is ~2.3 KB, above PostgreSQL's default 2 KB
-- threshold, so every insert compressed it (pglz, ~35 ms of server CPU per 2,000 rows)
-- for data that is read once or twice and then pruned by retention.
ALTER TABLE changes ADD COLUMN provider_record BYTEA;
ALTER TABLE changes SET (toast_tuple_target = 8160);
