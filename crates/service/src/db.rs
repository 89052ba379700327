//! Database plumbing shared by the services that own tables (auth, tasks-api): which backend
//! a `HERALD_DATABASE_URL` names, the connection pools of both backends, and "now" at the
//! precision the stores keep. Each service's `store` module keeps its own queries and
//! migrations (design section 1: each service owns its tables and migration history).
//!
//! Enabled by the `db` feature, so services without a database do not build sqlx.

use std::{str::FromStr, time::Duration};

use sqlx::{
    PgPool, SqlitePool,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use time::OffsetDateTime;

/// The database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `postgres://` or `postgresql://` (distributed mode).
    Postgres,
    /// `sqlite:` (embedded mode).
    Sqlite,
}

impl DatabaseKind {
    /// The kind of `url`; `None` for any other scheme.
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else {
            None
        }
    }
}

/// A lazily connecting Postgres pool (at most 10 connections), so the service starts, and
/// reports not ready, while the database is down.
pub fn postgres_pool(url: &str, acquire_timeout: Duration) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(acquire_timeout)
        .connect_lazy(url)
}

/// A pool on the SQLite file `url` names (at most 4 connections), creating the file and its
/// folder if missing. WAL journal with `synchronous = NORMAL` (a commit is durable across a
/// crash of the process; only a power loss can take the last commits), foreign keys on, and
/// writers wait up to `acquire_timeout` for the write lock.
pub async fn sqlite_pool(url: &str, acquire_timeout: Duration) -> Result<SqlitePool, sqlx::Error> {
    sqlite_pool_of(url, acquire_timeout, 4).await
}

/// A pool of one connection on the SQLite file `url` names, for a store's write
/// transactions: SQLite admits one writer at a time, and writers that queue here wait in the
/// pool's fair, asynchronous queue instead of polling the file lock in SQLite's busy handler
/// (which sleeps up to 100 ms between tries).
pub async fn sqlite_writer_pool(
    url: &str,
    acquire_timeout: Duration,
) -> Result<SqlitePool, sqlx::Error> {
    sqlite_pool_of(url, acquire_timeout, 1).await
}

async fn sqlite_pool_of(
    url: &str,
    acquire_timeout: Duration,
    connections: u32,
) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(acquire_timeout);
    let path = options.get_filename();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
    }
    SqlitePoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(acquire_timeout)
        .connect_with(options)
        .await
}

/// "Now" at the stores' precision (UTC, whole microseconds).
pub fn now() -> OffsetDateTime {
    truncate_to_micros(OffsetDateTime::now_utc())
}

/// Drops sub-microsecond precision, which Postgres would drop anyway.
pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_scheme_names_the_backend() {
        assert_eq!(
            DatabaseKind::of("postgres://u@h/db"),
            Some(DatabaseKind::Postgres)
        );
        assert_eq!(
            DatabaseKind::of("postgresql://h/db"),
            Some(DatabaseKind::Postgres)
        );
        assert_eq!(
            DatabaseKind::of("sqlite://./x.db"),
            Some(DatabaseKind::Sqlite)
        );
        assert_eq!(
            DatabaseKind::of("sqlite::memory:"),
            Some(DatabaseKind::Sqlite)
        );
        assert_eq!(DatabaseKind::of("mysql://h/db"), None);
    }
}
