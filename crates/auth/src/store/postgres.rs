//! The Postgres store: compile-checked queries (`query!`), offline data in `.sqlx/`.

use std::time::Duration;

use herald_common::ids::UserId;
use herald_service::db;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{
    Credentials, MIGRATIONS_TABLE, NewRefreshToken, NewUser, Replacement, Rotation, StoreError,
};
use crate::{
    domain::{User, Username, UsernamePrefix},
    password::PasswordHash,
    tokens::RefreshTokenHash,
};

/// Name of the unique index on `lower(username)` (see the migration).
const USERNAME_UNIQUE_INDEX: &str = "users_username_key";

/// Accounts and refresh tokens in Postgres.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl db::Backend for PgStore {
    type Error = StoreError;

    /// A lazily connecting pool (see [`db::postgres_pool`]).
    async fn connect(url: &str, acquire_timeout: Duration) -> Result<Self, StoreError> {
        let pool = db::postgres_pool(url, acquire_timeout)?;
        Ok(Self { pool })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate!("../../migrations/auth/postgres");
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

    pub(super) async fn create_user(&self, user: &NewUser) -> Result<User, StoreError> {
        let result = sqlx::query!(
            "INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            user.id.as_uuid(),
            user.username.as_str(),
            user.password_hash.as_str(),
            user.created_at,
        )
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(User {
                id: user.id,
                username: user.username.clone(),
                created_at: user.created_at,
            }),
            Err(sqlx::Error::Database(db)) if db.constraint() == Some(USERNAME_UNIQUE_INDEX) => {
                Err(StoreError::UsernameTaken)
            }
            Err(err) => Err(err.into()),
        }
    }

    pub(super) async fn credentials(
        &self,
        username: &Username,
    ) -> Result<Option<Credentials>, StoreError> {
        let row = sqlx::query!(
            "SELECT id, username, password_hash, created_at FROM users WHERE lower(username) = $1",
            username.folded(),
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Credentials {
            user: User {
                id: UserId::from_uuid(r.id),
                username: Username::from_stored(r.username),
                created_at: r.created_at,
            },
            password_hash: PasswordHash::from_stored(r.password_hash),
        }))
    }

    pub(super) async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query!(
            "SELECT id, username, created_at FROM users WHERE id = $1",
            id.as_uuid()
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| User {
            id: UserId::from_uuid(r.id),
            username: Username::from_stored(r.username),
            created_at: r.created_at,
        }))
    }

    pub(super) async fn search_users(
        &self,
        prefix: &UsernamePrefix,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query!(
            r#"SELECT id, username, created_at FROM users
              WHERE lower(username) LIKE $1 ESCAPE '\'
              ORDER BY lower(username) COLLATE "C"
              LIMIT $2"#,
            prefix.like_pattern(),
            i64::from(limit),
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| User {
                id: UserId::from_uuid(r.id),
                username: Username::from_stored(r.username),
                created_at: r.created_at,
            })
            .collect())
    }

    pub(super) async fn insert_refresh_token(
        &self,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            token.id,
            token.user_id.as_uuid(),
            token.family_id,
            token.token_hash.as_bytes(),
            token.created_at,
            token.expires_at,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn rotate_refresh_token(
        &self,
        presented: &RefreshTokenHash,
        replacement: &Replacement,
    ) -> Result<Rotation, StoreError> {
        let now = replacement.created_at;
        let mut tx = self.pool.begin().await?;
        // Marking the token used is the atomic step: of two concurrent rotations of one
        // token, exactly one sees `rotated_at IS NULL`.
        let used = sqlx::query!(
            "UPDATE refresh_tokens SET rotated_at = $2
             WHERE token_hash = $1 AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > $2
             RETURNING user_id, family_id",
            presented.as_bytes(),
            now,
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(used) = used {
            sqlx::query!(
                "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                replacement.id,
                used.user_id,
                used.family_id,
                replacement.token_hash.as_bytes(),
                replacement.created_at,
                replacement.expires_at,
            )
            .execute(&mut *tx)
            .await?;
            let user = sqlx::query!(
                "SELECT id, username, created_at FROM users WHERE id = $1",
                used.user_id
            )
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Rotation::Rotated(User {
                id: UserId::from_uuid(user.id),
                username: Username::from_stored(user.username),
                created_at: user.created_at,
            }));
        }
        let previous = sqlx::query!(
            "SELECT user_id, family_id, rotated_at FROM refresh_tokens WHERE token_hash = $1",
            presented.as_bytes(),
        )
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match previous {
            Some(row) if row.rotated_at.is_some() => {
                sqlx::query!(
                    "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
                    row.family_id,
                    now,
                )
                .execute(&mut *tx)
                .await?;
                Rotation::Reused {
                    user_id: UserId::from_uuid(row.user_id),
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
        let done = sqlx::query!(
            "UPDATE refresh_tokens SET revoked_at = $3
             WHERE revoked_at IS NULL AND family_id IN
                 (SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2)",
            token.as_bytes(),
            user.as_uuid(),
            now,
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn revoke_all(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query!(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            user.as_uuid(),
            now,
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn delete_expired_refresh_tokens(
        &self,
        before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query!("DELETE FROM refresh_tokens WHERE expires_at < $1", before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
