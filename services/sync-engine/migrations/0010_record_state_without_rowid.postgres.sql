-- PostgreSQL stores a table apart from its primary key's index whatever is declared; nothing
-- changes here (see 0010_record_state_without_rowid.sql for SQLite).
SELECT 1;
