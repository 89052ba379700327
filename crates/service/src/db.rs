//! Database plumbing shared by the services that own tables (auth, tasks-api): which backend
//! a `HERALD_DATABASE_URL` names, the store scaffold both services build on ([`Store`],
//! [`Backend`], [`dispatch!`](crate::dispatch)), the connection pools of both backends, and
//! "now" at the precision the stores keep. Each service's `store` module keeps its own
//! queries and migrations (design section 1: each service owns its tables and migration
//! history).
//!
//! A service's store is a [`Store`] of its Postgres and its SQLite backend, each a
//! [`Backend`] (open, migrate, ping), wrapped in a type of the service's own that adds its
//! queries and sends each to whichever backend the URL chose with [`dispatch!`](crate::dispatch):
//!
//! ```ignore
//! #[derive(Debug, Clone)]
//! pub struct Store(db::Store<PgStore, SqliteStore>);
//!
//! impl Store {
//!     pub async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
//!         herald_service::dispatch!(self.0, user(id))
//!     }
//! }
//! ```
//!
//! Enabled by the `db` feature, so services without a database do not build sqlx.

use std::{future::Future, str::FromStr, time::Duration};

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

/// A database URL whose scheme is neither `postgres://` (or `postgresql://`) nor `sqlite:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unsupported database URL scheme (expected postgres:// or sqlite:)")]
pub struct UnsupportedUrl;

/// One backend of a service's store (its Postgres or its SQLite half): how the scaffold opens
/// it, migrates it and checks it. The service's queries are methods of its own on the
/// implementing type.
pub trait Backend: Sized {
    /// The service's storage error; a bad URL and database failures convert into it.
    type Error: From<UnsupportedUrl> + From<sqlx::Error>;

    /// Opens the backend's pools on `url` (whose scheme is this backend's), waiting at most
    /// `acquire_timeout` for a connection; does not migrate.
    fn connect(
        url: &str,
        acquire_timeout: Duration,
    ) -> impl Future<Output = Result<Self, Self::Error>> + Send;

    /// Applies the service's pending migrations to this database.
    fn migrate(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Whether the database answers (readiness).
    fn ping(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// A service's store on whichever database its URL names: Postgres (distributed mode) or
/// SQLite (embedded mode), both with the service's error `E`. Cheap to clone when the
/// backends are (pool handles).
#[derive(Debug, Clone)]
pub enum Store<P, S> {
    /// Postgres (distributed mode).
    Postgres(P),
    /// SQLite (embedded mode).
    Sqlite(S),
}

/// Calls the same method on whichever backend a [`Store`] holds and awaits it:
/// `dispatch!(store, method(arg, ...))`, where `store` is a [`Store`] (or a reference to one).
#[macro_export]
macro_rules! dispatch {
    ($store:expr, $method:ident ( $($arg:expr),* $(,)? )) => {
        match &$store {
            $crate::db::Store::Postgres(backend) => backend.$method($($arg),*).await,
            $crate::db::Store::Sqlite(backend) => backend.$method($($arg),*).await,
        }
    };
}

impl<P, S, E> Store<P, S>
where
    P: Backend<Error = E>,
    S: Backend<Error = E>,
    E: From<UnsupportedUrl> + From<sqlx::Error>,
{
    /// Opens the backend `url` names (`postgres://...` or `sqlite://path`); does not migrate.
    ///
    /// The backends decide how they connect; Herald's connect Postgres lazily (so the service
    /// starts, and reports not ready, while the database is down) and create a SQLite file
    /// and its directory if missing.
    pub async fn connect(url: &str, acquire_timeout: Duration) -> Result<Self, E> {
        match DatabaseKind::of(url) {
            Some(DatabaseKind::Postgres) => {
                Ok(Self::Postgres(P::connect(url, acquire_timeout).await?))
            }
            Some(DatabaseKind::Sqlite) => Ok(Self::Sqlite(S::connect(url, acquire_timeout).await?)),
            None => Err(UnsupportedUrl.into()),
        }
    }

    /// Applies the service's pending migrations.
    pub async fn migrate(&self) -> Result<(), E> {
        crate::dispatch!(self, migrate())
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> Result<(), E> {
        crate::dispatch!(self, ping())
    }
}

impl<P, S> Store<P, S> {
    /// Which database this is.
    pub fn kind(&self) -> DatabaseKind {
        match self {
            Self::Postgres(_) => DatabaseKind::Postgres,
            Self::Sqlite(_) => DatabaseKind::Sqlite,
        }
    }

    /// Whether the service applies its migrations at start-up without being asked: always on
    /// SQLite (the embedded mode's file is the service's own), on Postgres only with
    /// `auto_migrate` (`HERALD_AUTO_MIGRATE`; otherwise a deploy step migrates).
    pub fn migrates_at_start(&self, auto_migrate: bool) -> bool {
        matches!(self, Self::Sqlite(_)) || auto_migrate
    }
}

/// Connections of a Postgres pool.
pub const POSTGRES_POOL_SIZE: u32 = 10;

/// A lazily connecting Postgres pool of [`POSTGRES_POOL_SIZE`] connections, so the service
/// starts, and reports not ready, while the database is down.
///
/// A background task opens all of them from the start (`warm_up`) and the pool keeps them
/// (its minimum is its maximum), so requests do not wait for connections to be opened: with TLS
/// (`sslmode=prefer`, the default, against a server that has TLS on) opening one takes about
/// 90 ms even on loopback, because the driver leaves Nagle's algorithm on and the
/// handshake's small writes wait for delayed ACKs.
pub fn postgres_pool(url: &str, acquire_timeout: Duration) -> Result<PgPool, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(POSTGRES_POOL_SIZE)
        .min_connections(POSTGRES_POOL_SIZE)
        .acquire_timeout(acquire_timeout)
        .connect_lazy(url)?;
    tokio::spawn(warm_up(pool.clone()));
    Ok(pool)
}

/// Longest wait of [`warm_up`] for one connection.
const WARM_UP_ACQUIRE: Duration = Duration::from_secs(2);

/// Opens the pool's connections: takes connections (so the next must be a new one) until the
/// pool holds as many as it may, then returns them all. Connections that others hold, such as
/// a listener's, count too. Gives up at the first failure or wait longer than
/// [`WARM_UP_ACQUIRE`] (the database is down, or every connection is busy: requests open
/// what is missing), and when the pool is closed.
async fn warm_up(pool: PgPool) {
    let max = pool.options().get_max_connections();
    let mut held = Vec::with_capacity(max as usize);
    while pool.size() < max && !pool.is_closed() {
        match tokio::time::timeout(WARM_UP_ACQUIRE, pool.acquire()).await {
            Ok(Ok(connection)) => held.push(connection),
            Ok(Err(err)) => {
                tracing::debug!(error = %err, opened = pool.size(), "database pool warm-up stopped");
                return;
            }
            Err(_) => {
                tracing::debug!(
                    opened = pool.size(),
                    "database pool warm-up gave up waiting"
                );
                return;
            }
        }
    }
    tracing::debug!(opened = pool.size(), "database pool warmed up");
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
