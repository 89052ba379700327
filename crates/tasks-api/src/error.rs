//! herald-tasks-api's one error enum, mapped to HTTP in one place: `From<TasksError> for
//! ApiError`. Handlers return `Result<_, ApiError>` and use `?` on `TasksError`s.
//!
//! Clients get a clear message for their mistakes and an opaque one for ours: storage and
//! encoding failures are logged with their cause and answered with
//! `{"error":{"code":"internal",...}}` (503 when the database is unreachable).

use crate::domain::{FieldErrors, InvalidField};
use crate::store::StoreError;
use herald_service::ApiError;

/// Everything that can go wrong in a tasks request.
#[derive(Debug, thiserror::Error)]
pub enum TasksError {
    /// 422: fields failed validation (field name, reason).
    #[error("invalid fields")]
    Invalid(FieldErrors),
    /// 404: no task with this id (never created, or deleted).
    #[error("task not found")]
    NotFound,
    /// 403: signed in, but not allowed to do this to this task.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 412: `If-Match` names another version than the task's current one.
    #[error("the task has changed: its version is {current}")]
    PreconditionFailed {
        /// The task's current version.
        current: u64,
    },
    /// 422: the `Idempotency-Key` was already used for a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    /// 409: the task kept changing under this request (many concurrent writers); retry.
    #[error("the task changed concurrently")]
    Contended,
    /// 401: the token's subject is not a user id.
    #[error("the token's subject is not a user id")]
    BadSubject,
    /// 500/503: the database failed.
    #[error("storage failed")]
    Store(#[from] StoreError),
    /// 500: anything else of ours.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<TasksError> for ApiError {
    fn from(err: TasksError) -> Self {
        match err {
            TasksError::Invalid(fields) => {
                ApiError::invalid_fields(&fields, describe, InvalidField::as_str)
            }
            TasksError::NotFound => ApiError::not_found("task not found"),
            TasksError::Forbidden(message) => ApiError::forbidden(message),
            TasksError::PreconditionFailed { current } => ApiError::precondition_failed(format!(
                "If-Match does not match the task's current version (ETag \"{current}\")"
            )),
            TasksError::IdempotencyKeyReused => ApiError::validation(
                "Idempotency-Key was already used for a different request",
                [("idempotency_key", "reused")],
            ),
            TasksError::Contended => ApiError::conflict("the task changed concurrently; retry"),
            TasksError::BadSubject => ApiError::unauthorized("invalid token"),
            TasksError::Store(err) if err.is_unavailable() => ApiError::unavailable(err),
            TasksError::Store(err) => ApiError::internal(err),
            TasksError::Internal(err) => ApiError::internal(err),
        }
    }
}

/// The human message for one invalid field.
fn describe(field: &str, reason: InvalidField) -> String {
    match (field, reason) {
        ("title", InvalidField::Required) => "title cannot be removed".to_owned(),
        ("title", _) => "title must be 1-200 characters".to_owned(),
        ("description", _) => "description must be at most 10000 characters".to_owned(),
        ("status", InvalidField::Required) => "status cannot be removed".to_owned(),
        ("status", _) => "status must be one of todo, in_progress, done".to_owned(),
        ("assignee", _) | ("created_by", _) => format!("{field} must be a user id (UUID)"),
        ("limit", _) => "limit must be between 1 and 100".to_owned(),
        ("cursor", _) => "cursor is not one this service returned".to_owned(),
        ("idempotency_key", _) => {
            "Idempotency-Key must be 1-255 visible ASCII characters".to_owned()
        }
        (field, reason) => format!("{field} is {reason}"),
    }
}
