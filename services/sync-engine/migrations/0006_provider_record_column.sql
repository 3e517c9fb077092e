-- Each change's provider record in a column of its own (NULL when the change has none, and in
-- rows written before this migration, whose `change` still holds it), so that reading the log
-- without provider records — StreamChanges' default — neither reads nor decodes them.
ALTER TABLE changes ADD COLUMN provider_record BYTEA;
