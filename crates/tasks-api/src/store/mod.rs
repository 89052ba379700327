//! Persistence of tasks, idempotency keys and the outbox.
//!
//! [`Store`] is the one type the service sees: the shared scaffold ([`db::Store`], opening,
//! migrating and pinging whichever database the URL names) with this service's queries,
//! each dispatched to Postgres (distributed mode, compile-checked `query!` macros, offline
//! data in `.sqlx/`) or SQLite (embedded mode, runtime queries). Both pass the same test
//! suite (`tests/store.rs`). Migrations live in
//! `migrations/tasks/{postgres,sqlite}/` and their history in [`MIGRATIONS_TABLE`], so
//! auth's and tasks-api's migrations coexist in one database.
//!
//! Every write of a task inserts its domain event into the outbox in the same transaction
//! ([`OutboxEvent`]), and every write is conditional on the version the caller read
//! ([`WriteOutcome::VersionChanged`] otherwise), so no lock is held between reading a task
//! and writing it back. The relay reads the outbox through [`Store::claim_outbox`].
//!
//! Times are UTC with microsecond precision (what Postgres keeps); callers pass "now" in, so
//! the store never reads the clock and tests control time.

mod postgres;
mod sqlite;

use std::{ops::Deref, time::Duration};

use herald_common::ids::{TaskId, UserId};
use herald_common::task::{Task, TaskStatus};
use herald_service::{db, dispatch};
use time::OffsetDateTime;
use uuid::Uuid;

pub use self::postgres::PgStore;
pub use self::sqlite::SqliteStore;
/// "Now" at the store's precision, and the truncation to it.
pub use herald_service::db::{now, truncate_to_micros};

/// The table holding herald-tasks-api's migration history.
pub const MIGRATIONS_TABLE: &str = "_herald_tasks_migrations";

/// The Postgres notification channel the outbox trigger signals (see the migration).
pub const OUTBOX_CHANNEL: &str = "herald_task_outbox";

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither `postgres://` nor `sqlite:`.
    #[error(transparent)]
    UnsupportedUrl(#[from] db::UnsupportedUrl),
    /// The database failed or could not be reached.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row holds a value no parsed type accepts (e.g. an unknown status).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// `true` when the database could not be reached in time (pool exhausted or down): the
    /// request may succeed later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_))
        )
    }
}

/// A domain event about to be stored in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// The event's id (unique in the outbox).
    pub event_id: Uuid,
    /// The event's JSON, exactly as it goes on the stream.
    pub payload: String,
    /// When the change happened.
    pub created_at: OffsetDateTime,
}

/// The `Idempotency-Key` of a create request.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    /// Whose key it is (keys are per user).
    pub user_id: UserId,
    /// The key as sent.
    pub key: String,
    /// SHA-256 of the parsed request, to tell a retry from another request with this key.
    pub request_hash: [u8; 32],
    /// The answer to send again on a retry (the created task's JSON).
    pub response: String,
}

/// What [`Store::create_task`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The task and its event were stored.
    Created,
    /// The idempotency key was already used: nothing was stored, here is what the first
    /// request stored.
    Replayed {
        /// Hash of the first request.
        request_hash: Vec<u8>,
        /// The first answer.
        response: String,
    },
}

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written, with its outbox event.
    Done,
    /// The task is gone or no longer has the expected version: nothing was written.
    VersionChanged,
}

/// A page request of [`Store::list_tasks`]: newest first, with optional filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskQuery {
    /// Only tasks with this status.
    pub status: Option<TaskStatus>,
    /// Only tasks assigned to this user.
    pub assignee: Option<UserId>,
    /// Only tasks created by this user.
    pub created_by: Option<UserId>,
    /// Only tasks strictly older than this position in the (created_at, id) order.
    pub before: Option<ListPosition>,
    /// At most this many tasks.
    pub limit: u32,
}

/// A position in the list order: newest first by creation time, then by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListPosition {
    /// Creation time of the last task seen.
    pub created_at: OffsetDateTime,
    /// Its id.
    pub id: TaskId,
}

/// One unsent outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Row id: relay order.
    pub id: i64,
    /// The event's id.
    pub event_id: Uuid,
    /// The event's JSON.
    pub payload: String,
    /// When the change happened.
    pub created_at: OffsetDateTime,
}

/// Unsent outbox rows claimed by one relay round. Postgres holds the relay lock (a
/// transaction-scoped advisory lock) until [`OutboxBatch::finish`] or drop, so concurrent
/// relays of several replicas never interleave and the stream keeps commit order.
#[derive(Debug)]
pub struct OutboxBatch {
    rows: Vec<OutboxRow>,
    inner: BatchInner,
}

#[derive(Debug)]
enum BatchInner {
    Postgres(postgres::PgBatch),
    Sqlite(SqliteStore),
}

impl OutboxBatch {
    /// The rows, oldest first.
    pub fn rows(&self) -> &[OutboxRow] {
        &self.rows
    }

    /// Marks the rows with ids in `sent` as sent at `now` and ends the round.
    pub async fn finish(self, sent: &[i64], now: OffsetDateTime) -> Result<(), StoreError> {
        match self.inner {
            BatchInner::Postgres(batch) => batch.finish(sent, now).await,
            BatchInner::Sqlite(store) => store.mark_sent(sent, now).await,
        }
    }
}

/// Backlog of the outbox, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Unsent rows.
    pub unsent: u64,
    /// Creation time of the oldest unsent row.
    pub oldest_unsent: Option<OffsetDateTime>,
}

/// What a sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Sent outbox rows.
    pub outbox_rows: u64,
    /// Expired idempotency keys.
    pub idempotency_keys: u64,
}

/// Where tasks live: the shared store scaffold (which also gives [`db::Store::migrate`],
/// [`db::Store::ping`] and [`db::Store::kind`]) over this service's two backends. Cheap to
/// clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Store(db::Store<PgStore, SqliteStore>);

impl Deref for Store {
    type Target = db::Store<PgStore, SqliteStore>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Store {
    /// Opens a pool for `url` (`postgres://...` or `sqlite://path`); does not migrate.
    ///
    /// Postgres connects lazily, so the service starts (and reports not ready) while the
    /// database is down; a SQLite file and its directory are created if missing.
    pub async fn connect(url: &str, acquire_timeout: Duration) -> Result<Self, StoreError> {
        db::Store::connect(url, acquire_timeout).await.map(Self)
    }

    /// Stores `task` and its creation `event`, and with `idempotency` the key and answer,
    /// all in one transaction. If the key was already used by this user, nothing is stored
    /// and the first request's hash and answer come back.
    pub async fn create_task(
        &self,
        task: &Task,
        event: &OutboxEvent,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<CreateOutcome, StoreError> {
        dispatch!(self.0, create_task(task, event, idempotency))
    }

    /// The task with this id.
    pub async fn task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        dispatch!(self.0, task(id))
    }

    /// Tasks matching `query`, newest first.
    pub async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        dispatch!(self.0, list_tasks(query))
    }

    /// Replaces the task with `task` (same id) if it still has `expected_version`, and
    /// stores `event`; one transaction.
    pub async fn update_task(
        &self,
        task: &Task,
        expected_version: u64,
        event: &OutboxEvent,
    ) -> Result<WriteOutcome, StoreError> {
        dispatch!(self.0, update_task(task, expected_version, event))
    }

    /// Deletes the task if it still has `expected_version`, and stores `event`; one
    /// transaction.
    pub async fn delete_task(
        &self,
        id: TaskId,
        expected_version: u64,
        event: &OutboxEvent,
    ) -> Result<WriteOutcome, StoreError> {
        dispatch!(self.0, delete_task(id, expected_version, event))
    }

    /// Claims up to `limit` unsent outbox rows, oldest first, for one relay round. `None`
    /// when another relay (another replica) is in a round right now.
    pub async fn claim_outbox(&self, limit: u32) -> Result<Option<OutboxBatch>, StoreError> {
        match &self.0 {
            db::Store::Postgres(store) => {
                Ok(store
                    .claim_outbox(limit)
                    .await?
                    .map(|(rows, batch)| OutboxBatch {
                        rows,
                        inner: BatchInner::Postgres(batch),
                    }))
            }
            db::Store::Sqlite(store) => Ok(Some(OutboxBatch {
                rows: store.unsent_outbox(limit).await?,
                inner: BatchInner::Sqlite(store.clone()),
            })),
        }
    }

    /// How many outbox rows are unsent, and since when.
    pub async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        dispatch!(self.0, outbox_stats())
    }

    /// Deletes outbox rows sent before `sent_before` and idempotency keys created before
    /// `keys_before`.
    pub async fn sweep(
        &self,
        sent_before: OffsetDateTime,
        keys_before: OffsetDateTime,
    ) -> Result<Swept, StoreError> {
        dispatch!(self.0, sweep(sent_before, keys_before))
    }
}

/// A stored status word back as a [`TaskStatus`].
fn status_from_stored(raw: &str) -> Result<TaskStatus, StoreError> {
    raw.parse()
        .map_err(|_| StoreError::Corrupt(format!("task status {raw:?}")))
}

/// A stored version back as a `u64` (the column is a non-negative `bigint`).
fn version_from_stored(raw: i64) -> Result<u64, StoreError> {
    u64::try_from(raw).map_err(|_| StoreError::Corrupt(format!("task version {raw}")))
}

/// A version as stored: versions count changes, so they never reach `i64::MAX`.
fn version_to_stored(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}
