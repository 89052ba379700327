//! The SQLite store of the embedded mode: the same behaviour as [`super::PgStore`] with
//! runtime queries. UUIDs are 16-byte blobs; times are INTEGER microseconds since the epoch.

use std::time::Duration;

use herald_common::ids::UserId;
use herald_service::db;
use sqlx::{Row, SqlitePool, sqlite::SqliteRow};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Credentials, MIGRATIONS_TABLE, NewRefreshToken, NewUser, Replacement, Rotation, StoreError,
};
use crate::{
    domain::{User, Username, UsernamePrefix},
    password::PasswordHash,
    tokens::RefreshTokenHash,
};

/// Accounts and refresh tokens in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl db::Backend for SqliteStore {
    type Error = StoreError;

    /// Opens (creating if needed) the database file named by `url`.
    async fn connect(url: &str, acquire_timeout: Duration) -> Result<Self, StoreError> {
        let pool = db::sqlite_pool(url, acquire_timeout).await?;
        Ok(Self { pool })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate!("../../migrations/auth/sqlite");
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }
}

impl SqliteStore {
    pub(super) async fn create_user(&self, user: &NewUser) -> Result<User, StoreError> {
        let result = sqlx::query(
            "INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(user.id.as_uuid())
        .bind(user.username.as_str())
        .bind(user.password_hash.as_str())
        .bind(to_micros(user.created_at))
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(User {
                id: user.id,
                username: user.username.clone(),
                created_at: user.created_at,
            }),
            // SQLite reports the violated columns, not the index name.
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                Err(StoreError::UsernameTaken)
            }
            Err(err) => Err(err.into()),
        }
    }

    pub(super) async fn credentials(
        &self,
        username: &Username,
    ) -> Result<Option<Credentials>, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, password_hash, created_at FROM users WHERE lower(username) = ?",
        )
        .bind(username.folded())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Credentials {
                user: user_from_row(&r)?,
                password_hash: PasswordHash::from_stored(r.try_get("password_hash")?),
            })
        })
        .transpose()
    }

    pub(super) async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT id, username, created_at FROM users WHERE id = ?")
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub(super) async fn search_users(
        &self,
        prefix: &UsernamePrefix,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(
            r"SELECT id, username, created_at FROM users
              WHERE lower(username) LIKE ? ESCAPE '\'
              ORDER BY lower(username)
              LIMIT ?",
        )
        .bind(prefix.like_pattern())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    pub(super) async fn insert_refresh_token(
        &self,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(token.id)
        .bind(token.user_id.as_uuid())
        .bind(token.family_id)
        .bind(token.token_hash.as_bytes().as_slice())
        .bind(to_micros(token.created_at))
        .bind(to_micros(token.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn rotate_refresh_token(
        &self,
        presented: &RefreshTokenHash,
        replacement: &Replacement,
    ) -> Result<Rotation, StoreError> {
        let now = to_micros(replacement.created_at);
        // BEGIN IMMEDIATE would be ideal; a single conditional UPDATE is atomic anyway and the
        // write lock taken by it covers the rest of the transaction.
        let mut tx = self.pool.begin().await?;
        let used = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = ?2
             WHERE token_hash = ?1 AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > ?2
             RETURNING user_id, family_id",
        )
        .bind(presented.as_bytes().as_slice())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(used) = used {
            let user_id: Uuid = used.try_get("user_id")?;
            let family_id: Uuid = used.try_get("family_id")?;
            sqlx::query(
                "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(replacement.id)
            .bind(user_id)
            .bind(family_id)
            .bind(replacement.token_hash.as_bytes().as_slice())
            .bind(now)
            .bind(to_micros(replacement.expires_at))
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query("SELECT id, username, created_at FROM users WHERE id = ?")
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?;
            let user = user_from_row(&row)?;
            tx.commit().await?;
            return Ok(Rotation::Rotated(user));
        }
        let previous = sqlx::query(
            "SELECT user_id, family_id, rotated_at FROM refresh_tokens WHERE token_hash = ?",
        )
        .bind(presented.as_bytes().as_slice())
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match previous {
            Some(row) if row.try_get::<Option<i64>, _>("rotated_at")?.is_some() => {
                let family_id: Uuid = row.try_get("family_id")?;
                sqlx::query("UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL")
                    .bind(now)
                    .bind(family_id)
                    .execute(&mut *tx)
                    .await?;
                Rotation::Reused {
                    user_id: UserId::from_uuid(row.try_get("user_id")?),
                }
            }
            _ => Rotation::Invalid,
        };
        tx.commit().await?;
        Ok(outcome)
    }

    pub(super) async fn revoke_family(
        &self,
        token: &RefreshTokenHash,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ?3
             WHERE revoked_at IS NULL AND family_id IN
                 (SELECT family_id FROM refresh_tokens WHERE token_hash = ?1 AND user_id = ?2)",
        )
        .bind(token.as_bytes().as_slice())
        .bind(user.as_uuid())
        .bind(to_micros(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn revoke_all(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        )
        .bind(to_micros(now))
        .bind(user.as_uuid())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn delete_expired_refresh_tokens(
        &self,
        before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < ?")
            .bind(to_micros(before))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

fn user_from_row(row: &SqliteRow) -> Result<User, StoreError> {
    Ok(User {
        id: UserId::from_uuid(row.try_get("id")?),
        username: Username::from_stored(row.try_get("username")?),
        created_at: from_micros(row.try_get("created_at")?)?,
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
