-- What a run left out of an object because schema drift broke its mappings: the CRM fields
-- no longer read (a JSON array) and why, for GetSyncRun's ObjectProgress.
ALTER TABLE sync_slices ADD COLUMN skipped_fields TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sync_slices ADD COLUMN issue TEXT NOT NULL DEFAULT '';
