-- What a dead letter is about, for letters that replace an earlier one about the same thing
-- (MAP: `<connection>/<object>/<record id>/<model field>`, so a record that fails to map again
-- on a later page or run keeps one letter); empty for DELIVER letters, which are keyed by
-- their delivery.
ALTER TABLE dead_letters ADD COLUMN letter_key TEXT NOT NULL DEFAULT '';
CREATE INDEX dead_letters_by_key ON dead_letters (project_id, tenant_id, letter_key);
