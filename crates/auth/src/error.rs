//! herald-auth's one error enum, mapped to HTTP in one place: `From<AuthError> for ApiError`.
//! Handlers return `Result<_, ApiError>` and use `?` on `AuthError`s.
//!
//! Clients get a clear message for their mistakes and an opaque one for ours: storage,
//! hashing, key and broker failures are logged with their cause and answered with
//! `{"error":{"code":"internal",...}}`.

use std::time::Duration;

use herald_broker::BrokerError;
use herald_service::ApiError;

use crate::{domain::InvalidField, keys::KeyError, password::HashError, store::StoreError};

/// Everything that can go wrong in an auth request.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// 422: fields failed validation (field name, reason).
    #[error("invalid fields")]
    Invalid(Vec<(&'static str, InvalidField)>),
    /// 400: the OAuth2 `grant_type` is not the one this endpoint serves.
    #[error("unsupported grant_type")]
    UnsupportedGrant,
    /// 409: the username is taken.
    #[error("username is taken")]
    UsernameTaken,
    /// 401: unknown user or wrong password; one message for both (no user enumeration).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// 401: the refresh token is unknown, expired, revoked or was already used.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// 401: the access token's user no longer exists.
    #[error("unknown user")]
    UnknownUser,
    /// 429: too many token requests; retry after the duration.
    #[error("rate limited")]
    RateLimited(Duration),
    /// 500/503: the database failed.
    #[error("storage failed")]
    Store(#[from] StoreError),
    /// 500: password hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// 500: signing failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// 503: the broker could not be reached (revocation not published).
    #[error("broker unavailable")]
    Broker(#[from] BrokerError),
    /// 500: anything else of ours.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Invalid(fields) => {
                ApiError::invalid_fields(&fields, describe, InvalidField::as_str)
            }
            AuthError::UnsupportedGrant => ApiError::bad_request("unsupported grant_type"),
            AuthError::UsernameTaken => ApiError::conflict("username is taken"),
            AuthError::InvalidCredentials => ApiError::unauthorized("invalid username or password"),
            AuthError::InvalidRefreshToken => ApiError::unauthorized("invalid refresh token"),
            AuthError::UnknownUser => ApiError::unauthorized("invalid token"),
            AuthError::RateLimited(wait) => ApiError::rate_limited(wait),
            AuthError::Store(StoreError::Database(sqlx::Error::PoolTimedOut)) => {
                ApiError::unavailable(anyhow::anyhow!("database pool timed out"))
            }
            AuthError::Store(err) => ApiError::internal(err),
            AuthError::Hash(err) => ApiError::internal(err),
            AuthError::Key(err) => ApiError::internal(err),
            AuthError::Broker(err) => ApiError::unavailable(err),
            AuthError::Internal(err) => ApiError::internal(err),
        }
    }
}

fn describe(field: &str, reason: InvalidField) -> String {
    match (field, reason) {
        ("username", InvalidField::InvalidCharacters) => {
            "username may contain only letters, digits, '_', '.' and '-'".to_owned()
        }
        ("username", _) => "username must be 3-32 characters".to_owned(),
        ("password", _) => "password must be 8-128 characters".to_owned(),
        ("prefix", _) => "prefix must be at most 32 username characters".to_owned(),
        ("limit", _) => "limit must be between 1 and 100".to_owned(),
        (field, reason) => format!("{field} is {reason}"),
    }
}
