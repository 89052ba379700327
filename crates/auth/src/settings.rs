//! herald-auth's settings (design section 8): defaults < `--config FILE` < `HERALD_*`.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HERALD_LISTEN` | bind address | `0.0.0.0:8082` |
//! | `HERALD_DATABASE_URL` | `postgres://...` or `sqlite://...` | `postgres://postgres@127.0.0.1:5432/herald` |
//! | `HERALD_REDIS_URL` | Redis for the key set and revocations; empty = in-memory broker (single process) | `redis://127.0.0.1:6379` |
//! | `HERALD_REDIS_PREFIX` | prefix of Redis keys and channels | `herald:` |
//! | `HERALD_ENVIRONMENT` | `development` or `production` | `development` |
//! | `HERALD_JWT__ISSUER`, `HERALD_JWT__AUDIENCE` | token `iss` / `aud` | `herald` |
//! | `HERALD_JWT__LEEWAY` | seconds of clock skew allowed on `exp` | 30 |
//! | `HERALD_JWT__ACCESS_TTL` | access token lifetime, seconds | 900 |
//! | `HERALD_JWT__REFRESH_TTL` | refresh token lifetime, seconds | 2592000 (30 days) |
//! | `HERALD_JWT__KEY_REFRESH_INTERVAL` | seconds between key-file checks and key-set publications | 10 |
//! | `HERALD_JWT_PRIVATE_KEY_FILE` | Ed25519 signing key, PKCS#8 PEM; required in production | generated in development |
//! | `HERALD_TRUSTED_PROXIES` | CIDRs whose `X-Forwarded-For` is believed | none |
//! | `HERALD_RATE_LIMIT__TOKEN_PER_IP_PER_MINUTE` | token requests per client IP | 30 |
//! | `HERALD_RATE_LIMIT__TOKEN_PER_USERNAME_PER_MINUTE` | token requests per username | 10 |
//! | `HERALD_PASSWORD_HASH__MEMORY_KIB`, `__ITERATIONS`, `__PARALLELISM` | argon2id cost | 19456, 2, 1 |
//! | `HERALD_AUTO_MIGRATE` | apply migrations at start-up (SQLite always does) | false |
//! | `HERALD_BODY_LIMIT` | largest accepted request body, bytes | 16384 |

use std::{path::PathBuf, time::Duration};

use herald_service::{
    Environment, JwtSettings, Secret, TrustedProxies,
    config::{DEFAULT_DATABASE_URL, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_URL, seconds},
};
use serde::{Deserialize, Serialize};

use crate::{password::HashSettings, rate_limit::RateLimitSettings};

/// Default listen address of the standalone service.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8082";

/// Everything herald-auth can be configured with.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    /// `host:port` to bind; port 0 picks any free port.
    pub listen: String,
    /// Postgres or SQLite URL.
    #[serde(skip_serializing)]
    pub database_url: Secret<String>,
    /// Redis URL; `None` (or empty) uses an in-memory broker, which only makes sense when
    /// every service runs in this process.
    #[serde(skip_serializing)]
    pub redis_url: Option<Secret<String>>,
    /// Prefix of every Redis key and channel.
    pub redis_prefix: String,
    /// Development or production.
    pub environment: Environment,
    /// Token issuance and verification.
    pub jwt: TokenSettings,
    /// The Ed25519 signing key (PKCS#8 PEM).
    pub jwt_private_key_file: Option<PathBuf>,
    /// Proxies whose `X-Forwarded-For` is believed.
    #[serde(skip_serializing)]
    pub trusted_proxies: TrustedProxies,
    /// Token request limits.
    pub rate_limit: RateLimitSettings,
    /// argon2id cost.
    pub password_hash: HashSettings,
    /// Apply migrations at start-up (Postgres; SQLite always migrates).
    pub auto_migrate: bool,
    /// Largest accepted JSON or form body, in bytes.
    pub body_limit: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            database_url: DEFAULT_DATABASE_URL.into(),
            redis_url: Some(DEFAULT_REDIS_URL.into()),
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            environment: Environment::default(),
            jwt: TokenSettings::default(),
            jwt_private_key_file: None,
            trusted_proxies: TrustedProxies::default(),
            rate_limit: RateLimitSettings::default(),
            password_hash: HashSettings::default(),
            auto_migrate: false,
            body_limit: 16 * 1024,
        }
    }
}

/// The `jwt` section: issuer, audience, leeway (shared with verifiers) and lifetimes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct TokenSettings {
    /// `iss`, `aud` and leeway.
    #[serde(flatten)]
    pub common: JwtSettings,
    /// Lifetime of access tokens.
    #[serde(with = "seconds")]
    pub access_ttl: Duration,
    /// Lifetime of refresh tokens.
    #[serde(with = "seconds")]
    pub refresh_ttl: Duration,
    /// Pause between key-file checks and key-set publications.
    #[serde(with = "seconds")]
    pub key_refresh_interval: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            common: JwtSettings::default(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 60 * 60),
            key_refresh_interval: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use herald_test_support::changed_paths;

    use super::Settings;

    #[test]
    fn the_jwt_section_given_in_part_keeps_its_defaults_for_the_rest() {
        assert_eq!(
            changed_paths::<Settings>(&[("HERALD_JWT__ACCESS_TTL", "60")]),
            ["jwt.access_ttl"]
        );
    }

    #[test]
    fn the_rate_limit_and_hash_sections_given_in_part_keep_their_defaults_for_the_rest() {
        assert_eq!(
            changed_paths::<Settings>(&[("HERALD_RATE_LIMIT__TOKEN_PER_IP_PER_MINUTE", "3")]),
            ["rate_limit.token_per_ip_per_minute"]
        );
        assert_eq!(
            changed_paths::<Settings>(&[("HERALD_PASSWORD_HASH__ITERATIONS", "1")]),
            ["password_hash.iterations"]
        );
    }
}
