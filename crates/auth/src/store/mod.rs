//! Persistence of accounts and refresh tokens.
//!
//! [`Store`] is the one type handlers see: the shared scaffold ([`db::Store`], opening,
//! migrating and pinging whichever database the URL names) with this service's queries,
//! each dispatched to Postgres (distributed mode, compile-checked `query!` macros, offline
//! data in `.sqlx/`) or SQLite (embedded mode, runtime queries). Both pass the same test
//! suite (`tests/store.rs`). Migrations live in
//! `migrations/auth/{postgres,sqlite}/` and their history in [`MIGRATIONS_TABLE`], so other
//! services can migrate the same database independently.
//!
//! Times are UTC with microsecond precision (what Postgres keeps); callers pass "now" in, so
//! the store never reads the clock and tests control time.

mod postgres;
mod sqlite;

use std::{ops::Deref, time::Duration};

use herald_common::ids::UserId;
use herald_service::{db, dispatch};
use time::OffsetDateTime;
use uuid::Uuid;

pub use self::{postgres::PgStore, sqlite::SqliteStore};
use crate::{
    domain::{User, Username, UsernamePrefix},
    password::PasswordHash,
    tokens::RefreshTokenHash,
};
/// "Now" at the store's precision, and the truncation to it.
pub use herald_service::db::{now, truncate_to_micros};

/// The table holding herald-auth's migration history.
pub const MIGRATIONS_TABLE: &str = "_herald_auth_migrations";

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another account already has this username (ignoring case).
    #[error("username is taken")]
    UsernameTaken,
    /// The URL is neither `postgres://` nor `sqlite:`.
    #[error(transparent)]
    UnsupportedUrl(#[from] db::UnsupportedUrl),
    /// The database failed or could not be reached.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row holds a value no parsed type accepts (e.g. a malformed id).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The new id.
    pub id: UserId,
    /// The account name.
    pub username: Username,
    /// The argon2id hash of the password.
    pub password_hash: PasswordHash,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// An account with its password hash, for sign-in.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The account.
    pub user: User,
    /// Its password hash.
    pub password_hash: PasswordHash,
}

/// A refresh token about to be stored (only its hash is kept).
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    /// Row id.
    pub id: Uuid,
    /// Owner.
    pub user_id: UserId,
    /// The login this token descends from; rotation keeps it.
    pub family_id: Uuid,
    /// SHA-256 of the token.
    pub token_hash: RefreshTokenHash,
    /// Issue time.
    pub created_at: OffsetDateTime,
    /// Expiry.
    pub expires_at: OffsetDateTime,
}

/// The token that replaces a presented one on rotation (same owner and family).
#[derive(Debug, Clone)]
pub struct Replacement {
    /// Row id.
    pub id: Uuid,
    /// SHA-256 of the new token.
    pub token_hash: RefreshTokenHash,
    /// Issue time ("now").
    pub created_at: OffsetDateTime,
    /// Expiry of the new token.
    pub expires_at: OffsetDateTime,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live: it is now used up and the replacement is stored.
    Rotated(User),
    /// The token had already been rotated: someone replayed it, so its whole family is
    /// revoked now.
    Reused {
        /// The owner of the family.
        user_id: UserId,
    },
    /// Unknown, expired or revoked.
    Invalid,
}

/// Where accounts and refresh tokens live: the shared store scaffold (which also gives
/// [`db::Store::migrate`], [`db::Store::ping`] and [`db::Store::kind`]) over this service's
/// two backends. Cheap to clone (a pool handle).
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
    /// Postgres connects lazily, so the service starts (and reports not-ready) while the
    /// database is down; a SQLite file and its directory are created if missing.
    pub async fn connect(url: &str, acquire_timeout: Duration) -> Result<Self, StoreError> {
        db::Store::connect(url, acquire_timeout).await.map(Self)
    }

    /// Creates an account; [`StoreError::UsernameTaken`] if the name exists in any case.
    pub async fn create_user(&self, user: &NewUser) -> Result<User, StoreError> {
        dispatch!(self.0, create_user(user))
    }

    /// The account named `username` (ignoring case), with its password hash.
    pub async fn credentials(
        &self,
        username: &Username,
    ) -> Result<Option<Credentials>, StoreError> {
        dispatch!(self.0, credentials(username))
    }

    /// The account with this id.
    pub async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        dispatch!(self.0, user(id))
    }

    /// Up to `limit` accounts whose name starts with `prefix` (ignoring case), by name.
    pub async fn search_users(
        &self,
        prefix: &UsernamePrefix,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        dispatch!(self.0, search_users(prefix, limit))
    }

    /// Stores a refresh token (the first of a new family at sign-in).
    pub async fn insert_refresh_token(&self, token: &NewRefreshToken) -> Result<(), StoreError> {
        dispatch!(self.0, insert_refresh_token(token))
    }

    /// Uses up the token with hash `presented` and stores `replacement` in its family, or
    /// detects a replay and revokes the family (see [`Rotation`]). Atomic.
    pub async fn rotate_refresh_token(
        &self,
        presented: &RefreshTokenHash,
        replacement: &Replacement,
    ) -> Result<Rotation, StoreError> {
        dispatch!(self.0, rotate_refresh_token(presented, replacement))
    }

    /// Revokes the family of the token with hash `token` if `user` owns it; returns how many
    /// live tokens were revoked.
    pub async fn revoke_family(
        &self,
        token: &RefreshTokenHash,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        dispatch!(self.0, revoke_family(token, user, now))
    }

    /// Revokes every live refresh token of `user`; returns how many.
    pub async fn revoke_all(&self, user: UserId, now: OffsetDateTime) -> Result<u64, StoreError> {
        dispatch!(self.0, revoke_all(user, now))
    }

    /// Deletes tokens that expired before `before`; returns how many.
    pub async fn delete_expired_refresh_tokens(
        &self,
        before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        dispatch!(self.0, delete_expired_refresh_tokens(before))
    }
}
