//! The schema, for every store of the domain.

/// One folder for both databases: the schema uses only what SQLite and
/// PostgreSQL share (text ids, integer unix-millisecond times), so the same
/// SQL serves both and the two cannot drift apart.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
