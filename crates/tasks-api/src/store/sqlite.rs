//! The SQLite store of the embedded mode: the same behaviour as [`super::PgStore`] with
//! runtime queries. UUIDs are 16-byte blobs; times are INTEGER microseconds since the epoch.
//!
//! Write transactions go through a pool of one connection, so concurrent writers queue in
//! the pool instead of on SQLite's busy handler; reads use their own pool. Each write
//! transaction also starts with its write, so SQLite takes the write lock at once (the auth
//! store shares the file in embedded mode).

use std::time::Duration;

use herald_common::ids::{TaskId, UserId};
use herald_common::task::Task;
use herald_service::db;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    CreateOutcome, IdempotencyRecord, MIGRATIONS_TABLE, OutboxEvent, OutboxRow, OutboxStats,
    StoreError, Swept, TaskQuery, WriteOutcome, status_from_stored, version_from_stored,
    version_to_stored,
};

/// Tasks, idempotency keys and the outbox in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Reads.
    pool: SqlitePool,
    /// Write transactions (one connection).
    writer: SqlitePool,
}

impl db::Backend for SqliteStore {
    type Error = StoreError;

    /// Opens (creating if needed) the database file named by `url`.
    async fn connect(url: &str, acquire_timeout: Duration) -> Result<Self, StoreError> {
        let pool = db::sqlite_pool(url, acquire_timeout).await?;
        let writer = db::sqlite_writer_pool(url, acquire_timeout).await?;
        Ok(Self { pool, writer })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate!("../../migrations/tasks/sqlite");
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator.run(&self.writer).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }
}

impl SqliteStore {
    pub(super) async fn create_task(
        &self,
        task: &Task,
        event: &OutboxEvent,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<CreateOutcome, StoreError> {
        let mut tx = self.writer.begin().await?;
        if let Some(record) = idempotency {
            let inserted = sqlx::query(
                "INSERT INTO task_idempotency_keys (user_id, key, request_hash, task_id, response, created_at)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (user_id, key) DO NOTHING",
            )
            .bind(record.user_id.as_uuid())
            .bind(&record.key)
            .bind(record.request_hash.as_slice())
            .bind(task.id.as_uuid())
            .bind(&record.response)
            .bind(to_micros(task.created_at))
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                let first = sqlx::query(
                    "SELECT request_hash, response FROM task_idempotency_keys WHERE user_id = ? AND key = ?",
                )
                .bind(record.user_id.as_uuid())
                .bind(&record.key)
                .fetch_one(&mut *tx)
                .await?;
                tx.rollback().await?;
                return Ok(CreateOutcome::Replayed {
                    request_hash: first.try_get("request_hash")?,
                    response: first.try_get("response")?,
                });
            }
        }
        sqlx::query(
            "INSERT INTO tasks (id, title, description, status, assignee, created_by, created_at, updated_at, version)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(task.id.as_uuid())
        .bind(&task.title)
        .bind(&task.description)
        .bind(task.status.as_str())
        .bind(task.assignee.as_ref().map(UserId::as_uuid))
        .bind(task.created_by.as_uuid())
        .bind(to_micros(task.created_at))
        .bind(to_micros(task.updated_at))
        .bind(version_to_stored(task.version))
        .execute(&mut *tx)
        .await?;
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(CreateOutcome::Created)
    }

    pub(super) async fn task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        let row = sqlx::query(
            "SELECT id, title, description, status, assignee, created_by, created_at, updated_at, version
             FROM tasks WHERE id = ?",
        )
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    pub(super) async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, title, description, status, assignee, created_by, created_at, updated_at, version
             FROM tasks
             WHERE (?1 IS NULL OR status = ?1)
               AND (?2 IS NULL OR assignee = ?2)
               AND (?3 IS NULL OR created_by = ?3)
               AND (?4 IS NULL OR (created_at, id) < (?4, ?5))
             ORDER BY created_at DESC, id DESC
             LIMIT ?6",
        )
        .bind(query.status.map(|status| status.as_str()))
        .bind(query.assignee.as_ref().map(UserId::as_uuid))
        .bind(query.created_by.as_ref().map(UserId::as_uuid))
        .bind(query.before.map(|position| to_micros(position.created_at)))
        .bind(query.before.as_ref().map(|position| *position.id.as_uuid()))
        .bind(i64::from(query.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(task_from_row).collect()
    }

    pub(super) async fn update_task(
        &self,
        task: &Task,
        expected_version: u64,
        event: &OutboxEvent,
    ) -> Result<WriteOutcome, StoreError> {
        let mut tx = self.writer.begin().await?;
        let updated = sqlx::query(
            "UPDATE tasks
             SET title = ?3, description = ?4, status = ?5, assignee = ?6, updated_at = ?7, version = ?8
             WHERE id = ?1 AND version = ?2",
        )
        .bind(task.id.as_uuid())
        .bind(version_to_stored(expected_version))
        .bind(&task.title)
        .bind(&task.description)
        .bind(task.status.as_str())
        .bind(task.assignee.as_ref().map(UserId::as_uuid))
        .bind(to_micros(task.updated_at))
        .bind(version_to_stored(task.version))
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(WriteOutcome::VersionChanged);
        }
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(WriteOutcome::Done)
    }

    pub(super) async fn delete_task(
        &self,
        id: TaskId,
        expected_version: u64,
        event: &OutboxEvent,
    ) -> Result<WriteOutcome, StoreError> {
        let mut tx = self.writer.begin().await?;
        let deleted = sqlx::query("DELETE FROM tasks WHERE id = ? AND version = ?")
            .bind(id.as_uuid())
            .bind(version_to_stored(expected_version))
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(WriteOutcome::VersionChanged);
        }
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(WriteOutcome::Done)
    }

    /// Up to `limit` unsent rows, oldest first. The embedded mode has one relay, so no lock
    /// is needed between this read and [`Self::mark_sent`].
    pub(super) async fn unsent_outbox(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event_id, payload, created_at FROM task_outbox
             WHERE sent_at IS NULL ORDER BY id LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OutboxRow {
                    id: row.try_get("id")?,
                    event_id: row.try_get("event_id")?,
                    payload: row.try_get("payload")?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                })
            })
            .collect()
    }

    pub(super) async fn mark_sent(
        &self,
        sent: &[i64],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if sent.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for id in sent {
            sqlx::query("UPDATE task_outbox SET sent_at = ? WHERE id = ?")
                .bind(to_micros(now))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let row = sqlx::query("SELECT count(*) AS unsent, min(created_at) AS oldest FROM task_outbox WHERE sent_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        let unsent: i64 = row.try_get("unsent")?;
        let oldest: Option<i64> = row.try_get("oldest")?;
        Ok(OutboxStats {
            unsent: u64::try_from(unsent).unwrap_or(0),
            oldest_unsent: oldest.map(from_micros).transpose()?,
        })
    }

    pub(super) async fn sweep(
        &self,
        sent_before: OffsetDateTime,
        keys_before: OffsetDateTime,
    ) -> Result<Swept, StoreError> {
        let outbox =
            sqlx::query("DELETE FROM task_outbox WHERE sent_at IS NOT NULL AND sent_at < ?")
                .bind(to_micros(sent_before))
                .execute(&self.writer)
                .await?;
        let keys = sqlx::query("DELETE FROM task_idempotency_keys WHERE created_at < ?")
            .bind(to_micros(keys_before))
            .execute(&self.writer)
            .await?;
        Ok(Swept {
            outbox_rows: outbox.rows_affected(),
            idempotency_keys: keys.rows_affected(),
        })
    }
}

async fn insert_event(
    tx: &mut Transaction<'static, Sqlite>,
    event: &OutboxEvent,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO task_outbox (event_id, payload, created_at) VALUES (?, ?, ?)")
        .bind(event.event_id)
        .bind(&event.payload)
        .bind(to_micros(event.created_at))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Reads a task from a row with every column of `tasks`.
fn task_from_row(row: &SqliteRow) -> Result<Task, StoreError> {
    let status: String = row.try_get("status")?;
    let assignee: Option<Uuid> = row.try_get("assignee")?;
    Ok(Task {
        id: TaskId::from_uuid(row.try_get("id")?),
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        status: status_from_stored(&status)?,
        assignee: assignee.map(UserId::from_uuid),
        created_by: UserId::from_uuid(row.try_get("created_by")?),
        created_at: from_micros(row.try_get("created_at")?)?,
        updated_at: from_micros(row.try_get("updated_at")?)?,
        version: version_from_stored(row.try_get("version")?)?,
    })
}

fn to_micros(t: OffsetDateTime) -> i64 {
    // Microseconds since 1970 fit an i64 for the next 290,000 years.
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn from_micros(micros: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {micros}: {e}")))
}
