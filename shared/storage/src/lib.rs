//! One storage code path for SQLite and PostgreSQL: pools and embedded migrations
