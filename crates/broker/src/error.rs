//! The one error type of the broker.
//!
//! Callers mostly need to know one thing: is this "the broker is unreachable right now"
//! (retry later, report not ready, answer with a temporary error) or something else?
//! [`BrokerError::is_temporary`] answers it.

use std::time::Duration;

/// Everything a broker operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Redis answered with an error, or the connection to it failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),

    /// The operation did not finish within its time limit (Redis slow or unreachable).
    #[error("broker operation timed out after {0:?}")]
    Timeout(Duration),

    /// The broker has no working connection at the moment (a reconnect is under way).
    #[error("broker unavailable: {0}")]
    Unavailable(&'static str),

    /// A history read started from a position whose epoch is not the channel's current one
    /// (protocol error 112, "unrecoverable position").
    #[error("unrecoverable position: the channel's epoch changed")]
    UnrecoverablePosition,

    /// A value could not be encoded to or decoded from JSON.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),

    /// Data read back from the broker does not have the shape this crate writes.
    #[error("malformed broker data: {0}")]
    Malformed(String),

    /// The broker configuration is invalid.
    #[error("invalid broker configuration: {0}")]
    Config(String),
}

impl BrokerError {
    /// `true` when the failure is about reaching the broker (connection refused or dropped,
    /// time-out, Redis loading or failing over) rather than about the request: the same call
    /// may succeed later, and a service should report itself as not ready meanwhile.
    pub fn is_temporary(&self) -> bool {
        match self {
            Self::Timeout(_) | Self::Unavailable(_) => true,
            Self::Redis(err) => redis_error_is_temporary(err),
            Self::UnrecoverablePosition | Self::Json(_) | Self::Malformed(_) | Self::Config(_) => {
                false
            }
        }
    }
}

fn redis_error_is_temporary(err: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || matches!(
            err.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
            )
        )
}

/// Shorthand for results of broker operations.
pub type BrokerResult<T> = Result<T, BrokerError>;
