//! herald-tasks-api's settings (design section 8): defaults < `--config FILE` < `HERALD_*`.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HERALD_LISTEN` | bind address | `0.0.0.0:8081` |
//! | `HERALD_DATABASE_URL` | `postgres://...` or `sqlite://...` | `postgres://postgres@127.0.0.1:5432/herald` |
//! | `HERALD_REDIS_URL` | Redis for the events stream and the signing keys; empty = in-memory broker (single process) | `redis://127.0.0.1:6379` |
//! | `HERALD_REDIS_PREFIX` | prefix of Redis keys and channels | `herald:` |
//! | `HERALD_JWT__ISSUER`, `HERALD_JWT__AUDIENCE` | required token `iss` / `aud` | `herald` |
//! | `HERALD_JWT__LEEWAY` | seconds of clock skew allowed on `exp` | 30 |
//! | `HERALD_KEY_REFRESH_INTERVAL` | seconds between reads of the published signing keys | 30 |
//! | `HERALD_BODY_LIMIT` | largest accepted JSON body, bytes (bigger: 413) | 65536 |
//! | `HERALD_AUTO_MIGRATE` | apply migrations at start-up (SQLite always does) | false |
//! | `HERALD_IDEMPOTENCY_TTL` | seconds an `Idempotency-Key` of `POST /tasks` is remembered | 86400 |
//! | `HERALD_OUTBOX__POLL_INTERVAL` | seconds between outbox scans on SQLite (no LISTEN/NOTIFY there) | 0.25 |
//! | `HERALD_OUTBOX__FALLBACK_INTERVAL` | seconds between outbox scans on Postgres when no notification came | 5 |
//! | `HERALD_OUTBOX__BATCH_SIZE` | events appended per relay round | 100 |
//! | `HERALD_OUTBOX__RETRY_MAX_DELAY` | longest pause between relay attempts while Redis fails, seconds | 2 |
//! | `HERALD_OUTBOX__SENT_RETENTION` | seconds sent outbox rows are kept before the sweep deletes them | 3600 |
//! | `HERALD_OUTBOX__SWEEP_INTERVAL` | seconds between sweeps of sent rows and old idempotency keys | 60 |

use std::time::Duration;

use herald_service::{
    JwtSettings, Secret,
    config::{DEFAULT_DATABASE_URL, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_URL, seconds},
    error::DEFAULT_BODY_LIMIT,
};
use serde::{Deserialize, Serialize};

/// Default listen address of the standalone service.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8081";

/// Everything herald-tasks-api can be configured with.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    /// `host:port` to bind; port 0 picks any free port.
    pub listen: String,
    /// Postgres or SQLite URL.
    #[serde(skip_serializing)]
    pub database_url: Secret<String>,
    /// Redis URL; `None` (or empty) uses an in-memory broker, which only makes sense when
    /// the notifier runs in this process too (embedded mode).
    #[serde(skip_serializing)]
    pub redis_url: Option<Secret<String>>,
    /// Prefix of every Redis key and channel.
    pub redis_prefix: String,
    /// Token issuer, audience and leeway.
    pub jwt: JwtSettings,
    /// Pause between two reads of the signing keys auth publishes.
    #[serde(with = "seconds")]
    pub key_refresh_interval: Duration,
    /// Largest accepted JSON body, in bytes.
    pub body_limit: usize,
    /// Apply migrations at start-up (Postgres; SQLite always migrates).
    pub auto_migrate: bool,
    /// How long an `Idempotency-Key` is remembered.
    #[serde(with = "seconds")]
    pub idempotency_ttl: Duration,
    /// The outbox relay.
    pub outbox: OutboxSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            database_url: DEFAULT_DATABASE_URL.into(),
            redis_url: Some(DEFAULT_REDIS_URL.into()),
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            jwt: JwtSettings::default(),
            key_refresh_interval: herald_service::tokens::DEFAULT_REFRESH_INTERVAL,
            body_limit: DEFAULT_BODY_LIMIT,
            auto_migrate: false,
            idempotency_ttl: Duration::from_secs(24 * 60 * 60),
            outbox: OutboxSettings::default(),
        }
    }
}

/// The `outbox` section: how the relay moves outbox rows to the events stream.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct OutboxSettings {
    /// Pause between scans on SQLite, where nothing notifies the relay from outside.
    #[serde(with = "seconds")]
    pub poll_interval: Duration,
    /// Pause between scans on Postgres when no notification arrives (a safety net: a
    /// notification sent while the listening connection was being re-established is lost).
    #[serde(with = "seconds")]
    pub fallback_interval: Duration,
    /// Rows appended per round.
    pub batch_size: u32,
    /// Longest pause between attempts while the broker fails (the pause doubles from 50 ms).
    #[serde(with = "seconds")]
    pub retry_max_delay: Duration,
    /// How long sent rows are kept (for inspection) before the sweep deletes them.
    #[serde(with = "seconds")]
    pub sent_retention: Duration,
    /// Pause between sweeps of sent rows and expired idempotency keys.
    #[serde(with = "seconds")]
    pub sweep_interval: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(250),
            fallback_interval: Duration::from_secs(5),
            batch_size: 100,
            retry_max_delay: Duration::from_secs(2),
            sent_retention: Duration::from_secs(60 * 60),
            sweep_interval: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use herald_test_support::changed_paths;

    use super::Settings;

    #[test]
    fn the_outbox_section_given_in_part_keeps_its_defaults_for_the_rest() {
        assert_eq!(
            changed_paths::<Settings>(&[("HERALD_OUTBOX__BATCH_SIZE", "7")]),
            ["outbox.batch_size"]
        );
    }

    #[test]
    fn the_jwt_section_given_in_part_keeps_its_defaults_for_the_rest() {
        assert_eq!(
            changed_paths::<Settings>(&[("HERALD_JWT__ISSUER", "crm")]),
            ["jwt.issuer"]
        );
    }
}
