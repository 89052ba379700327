//! The Postgres store: compile-checked queries (`query!`), offline data in `.sqlx/`.

use std::time::Duration;

use herald_common::ids::{TaskId, UserId};
use herald_common::task::Task;
use herald_service::db;
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    CreateOutcome, IdempotencyRecord, MIGRATIONS_TABLE, OUTBOX_CHANNEL, OutboxEvent, OutboxRow,
    OutboxStats, StoreError, Swept, TaskQuery, WriteOutcome, status_from_stored,
    version_from_stored, version_to_stored,
};

/// Key of the transaction-scoped advisory lock that makes one relay at a time append the
/// outbox to the stream (the bytes of "htoutbox").
const RELAY_LOCK_KEY: i64 = 0x6874_6f75_7462_6f78;

/// Tasks, idempotency keys and the outbox in Postgres.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// A task row as selected.
struct TaskRow {
    id: Uuid,
    title: String,
    description: String,
    status: String,
    assignee: Option<Uuid>,
    created_by: Uuid,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    version: i64,
}

impl TryFrom<TaskRow> for Task {
    type Error = StoreError;
    fn try_from(row: TaskRow) -> Result<Self, StoreError> {
        Ok(Task {
            id: TaskId::from_uuid(row.id),
            title: row.title,
            description: row.description,
            status: status_from_stored(&row.status)?,
            assignee: row.assignee.map(UserId::from_uuid),
            created_by: UserId::from_uuid(row.created_by),
            created_at: row.created_at,
            updated_at: row.updated_at,
            version: version_from_stored(row.version)?,
        })
    }
}

/// The open transaction of a relay round; it holds the relay lock.
#[derive(Debug)]
pub(super) struct PgBatch {
    tx: Transaction<'static, Postgres>,
}

impl PgBatch {
    pub(super) async fn finish(
        mut self,
        sent: &[i64],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if !sent.is_empty() {
            sqlx::query!(
                "UPDATE task_outbox SET sent_at = $1 WHERE id = ANY($2)",
                now,
                sent
            )
            .execute(&mut *self.tx)
            .await?;
        }
        self.tx.commit().await?;
        Ok(())
    }
}

impl db::Backend for PgStore {
    type Error = StoreError;

    /// A lazily connecting pool (see [`db::postgres_pool`]).
    async fn connect(url: &str, acquire_timeout: Duration) -> Result<Self, StoreError> {
        let pool = db::postgres_pool(url, acquire_timeout)?;
        Ok(Self { pool })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate!("../../migrations/tasks/postgres");
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query!("SELECT 1 AS one")
            .fetch_one(&self.pool)
            .await?;
        Ok(())
    }
}

impl PgStore {
    /// Wraps an existing pool (tests).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// A listener on the outbox channel: each notification means "new outbox rows were
    /// committed". It reconnects by itself; notifications sent while it was disconnected
    /// are lost, so the relay also scans now and then.
    pub async fn outbox_listener(&self) -> Result<PgListener, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(OUTBOX_CHANNEL).await?;
        Ok(listener)
    }

    pub(super) async fn create_task(
        &self,
        task: &Task,
        event: &OutboxEvent,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<CreateOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(record) = idempotency {
            // A concurrent first request with the same key makes this insert wait for its
            // transaction; if that one commits, this one does nothing and reads its answer.
            let inserted = sqlx::query!(
                "INSERT INTO task_idempotency_keys (user_id, key, request_hash, task_id, response, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (user_id, key) DO NOTHING",
                record.user_id.as_uuid(),
                record.key,
                record.request_hash.as_slice(),
                task.id.as_uuid(),
                record.response,
                task.created_at,
            )
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                let first = sqlx::query!(
                    "SELECT request_hash, response FROM task_idempotency_keys WHERE user_id = $1 AND key = $2",
                    record.user_id.as_uuid(),
                    record.key,
                )
                .fetch_one(&mut *tx)
                .await?;
                tx.rollback().await?;
                return Ok(CreateOutcome::Replayed {
                    request_hash: first.request_hash,
                    response: first.response,
                });
            }
        }
        sqlx::query!(
            "INSERT INTO tasks (id, title, description, status, assignee, created_by, created_at, updated_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            task.id.as_uuid(),
            task.title,
            task.description,
            task.status.as_str(),
            task.assignee.as_ref().map(UserId::as_uuid),
            task.created_by.as_uuid(),
            task.created_at,
            task.updated_at,
            version_to_stored(task.version),
        )
        .execute(&mut *tx)
        .await?;
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(CreateOutcome::Created)
    }

    pub(super) async fn task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        let row = sqlx::query_as!(
            TaskRow,
            "SELECT id, title, description, status, assignee, created_by, created_at, updated_at, version
             FROM tasks WHERE id = $1",
            id.as_uuid(),
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(Task::try_from).transpose()
    }

    pub(super) async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        let rows = sqlx::query_as!(
            TaskRow,
            "SELECT id, title, description, status, assignee, created_by, created_at, updated_at, version
             FROM tasks
             WHERE ($1::text IS NULL OR status = $1)
               AND ($2::uuid IS NULL OR assignee = $2)
               AND ($3::uuid IS NULL OR created_by = $3)
               AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
             ORDER BY created_at DESC, id DESC
             LIMIT $6",
            query.status.map(|status| status.as_str()),
            query.assignee.as_ref().map(UserId::as_uuid),
            query.created_by.as_ref().map(UserId::as_uuid),
            query.before.map(|position| position.created_at),
            query.before.as_ref().map(|position| *position.id.as_uuid()),
            i64::from(query.limit),
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Task::try_from).collect()
    }

    pub(super) async fn update_task(
        &self,
        task: &Task,
        expected_version: u64,
        event: &OutboxEvent,
    ) -> Result<WriteOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query!(
            "UPDATE tasks
             SET title = $3, description = $4, status = $5, assignee = $6, updated_at = $7, version = $8
             WHERE id = $1 AND version = $2",
            task.id.as_uuid(),
            version_to_stored(expected_version),
            task.title,
            task.description,
            task.status.as_str(),
            task.assignee.as_ref().map(UserId::as_uuid),
            task.updated_at,
            version_to_stored(task.version),
        )
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
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query!(
            "DELETE FROM tasks WHERE id = $1 AND version = $2",
            id.as_uuid(),
            version_to_stored(expected_version),
        )
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

    pub(super) async fn claim_outbox(
        &self,
        limit: u32,
    ) -> Result<Option<(Vec<OutboxRow>, PgBatch)>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Another replica's relay holds the lock: it is appending right now and will see
        // these rows too, so this one skips the round instead of waiting.
        // The round's commit need not wait for its WAL flush (see the outbox module):
        // `set_config(…, true)` is `SET LOCAL`, in the same round trip as the lock.
        let locked = sqlx::query_scalar!(
            r#"SELECT pg_try_advisory_xact_lock($1) AS "locked!"
               FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relay_commit"#,
            RELAY_LOCK_KEY
        )
        .fetch_one(&mut *tx)
        .await?;
        if !locked {
            tx.rollback().await?;
            return Ok(None);
        }
        let rows = sqlx::query!(
            "SELECT id, event_id, payload, created_at FROM task_outbox
             WHERE sent_at IS NULL ORDER BY id LIMIT $1",
            i64::from(limit),
        )
        .fetch_all(&mut *tx)
        .await?;
        let rows = rows
            .into_iter()
            .map(|row| OutboxRow {
                id: row.id,
                event_id: row.event_id,
                payload: row.payload,
                created_at: row.created_at,
            })
            .collect();
        Ok(Some((rows, PgBatch { tx })))
    }

    pub(super) async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let row = sqlx::query!(
            r#"SELECT count(*) AS "unsent!", min(created_at) AS oldest FROM task_outbox WHERE sent_at IS NULL"#
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(OutboxStats {
            unsent: u64::try_from(row.unsent).unwrap_or(0),
            oldest_unsent: row.oldest,
        })
    }

    pub(super) async fn sweep(
        &self,
        sent_before: OffsetDateTime,
        keys_before: OffsetDateTime,
    ) -> Result<Swept, StoreError> {
        let outbox = sqlx::query!(
            "DELETE FROM task_outbox WHERE sent_at IS NOT NULL AND sent_at < $1",
            sent_before
        )
        .execute(&self.pool)
        .await?;
        let keys = sqlx::query!(
            "DELETE FROM task_idempotency_keys WHERE created_at < $1",
            keys_before
        )
        .execute(&self.pool)
        .await?;
        Ok(Swept {
            outbox_rows: outbox.rows_affected(),
            idempotency_keys: keys.rows_affected(),
        })
    }
}

/// Adds `event` to the outbox inside `tx` (the trigger notifies the relays on commit).
async fn insert_event(
    tx: &mut Transaction<'static, Postgres>,
    event: &OutboxEvent,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO task_outbox (event_id, payload, created_at) VALUES ($1, $2, $3)",
        event.event_id,
        event.payload,
        event.created_at,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
