//! A database of the test's own: a fresh Postgres database (`herald_test_<uuid>`, dropped
//! with its connections when the guard drops) or a fresh SQLite file (removed with its WAL
//! companions), so tests never see each other's rows.

use std::path::PathBuf;

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use uuid::Uuid;

use crate::block_on_thread;

/// The Postgres server tests use (`HERALD_TEST_DATABASE_URL`; any database name in it is
/// replaced).
pub fn test_database_url() -> String {
    std::env::var("HERALD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// `base` with its database name replaced by `database` (query parameters kept).
pub fn with_database(base: &str, database: &str) -> String {
    let (main, query) = base
        .split_once('?')
        .map_or((base, None), |(main, query)| (main, Some(query)));
    let scheme_end = main.find("://").map_or(0, |i| i + 3);
    let server = main[scheme_end..]
        .find('/')
        .map_or(main, |slash| &main[..scheme_end + slash]);
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// A new, empty Postgres database; dropped (with its connections) when the guard drops.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    name: String,
}

impl TestDatabase {
    /// Creates `herald_test_<uuid>` on the test server.
    pub async fn create() -> Self {
        let name = format!("herald_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&with_database(&test_database_url(), "postgres"))
            .await
            .expect("connect to the test Postgres server");
        // The name is hex digits generated above, so formatting it into SQL is safe.
        admin
            .execute(sqlx::raw_sql(AssertSqlSafe(format!(
                r#"CREATE DATABASE "{name}""#
            ))))
            .await
            .expect("create the test database");
        Self {
            url: with_database(&test_database_url(), &name),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        block_on_thread(move || async move {
            if let Ok(mut admin) =
                PgConnection::connect(&with_database(&test_database_url(), "postgres")).await
            {
                let drop = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                let _ = admin.execute(sqlx::raw_sql(AssertSqlSafe(drop))).await;
            }
        });
    }
}

/// A temporary SQLite database file (and its WAL companions), removed on drop.
#[derive(Debug)]
pub struct SqliteFile {
    /// The file (not created yet: SQLite creates it on first connect).
    pub path: PathBuf,
}

impl SqliteFile {
    /// A path for a new database file in the temporary folder.
    #[allow(clippy::new_without_default)] // each call names a new file: not a default value
    pub fn new() -> Self {
        Self {
            path: std::env::temp_dir().join(format!("herald-test-{}.db", Uuid::new_v4().simple())),
        }
    }

    /// `sqlite://<path>`.
    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh database on the test Postgres server (the distributed mode).
    Postgres,
    /// A fresh SQLite file (the embedded mode).
    Sqlite,
}

/// A fresh database of either backend; whatever keeps it alive, and removes it on drop.
#[derive(Debug)]
pub enum TestDb {
    /// A Postgres database.
    Postgres(TestDatabase),
    /// A SQLite file.
    Sqlite(SqliteFile),
}

impl TestDb {
    /// A fresh database on `backend`.
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Self::Postgres(TestDatabase::create().await),
            Backend::Sqlite => Self::Sqlite(SqliteFile::new()),
        }
    }

    /// Its URL, as `HERALD_DATABASE_URL` takes it.
    pub fn url(&self) -> String {
        match self {
            Self::Postgres(database) => database.url.clone(),
            Self::Sqlite(file) => file.url(),
        }
    }
}
