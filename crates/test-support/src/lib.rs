//! `herald-test-support`: the harness the service crates' tests share (dev-only, never
//! published). Each service's `tests/*/helpers.rs` builds its `spawn_app()` from these parts
//! and keeps only what is its own (settings, typed request helpers).
//!
//! Layout:
//! - [`database`]: a fresh Postgres database ([`TestDatabase`]) or SQLite file
//!   ([`SqliteFile`]) per test, both behind [`TestDb`];
//! - [`redis`]: the shared test Redis under a random prefix, cleaned up by [`PrefixGuard`],
//!   and a [`RedisServer`] of the test's own to stop and restart;
//! - [`tokens`]: [`TokenMinter`], an Ed25519 signing key whose key set is published the way
//!   auth publishes it, minting valid, expired, forged and unsigned access tokens (signed
//!   here, so no test depends on the auth crate for tokens);
//! - [`settings`]: [`changed_paths`], what a partial setting changes against the defaults;
//! - here: [`eventually`] and [`status_and_json`].
//!
//! Servers are found through `HERALD_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432`; only the server part is used) and
//! `HERALD_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`).

// A harness reports a broken environment by panicking with the reason, like the tests it
// serves: there is no caller that could handle the error better.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod database;
pub mod redis;
pub mod settings;
pub mod tokens;

use std::time::Duration;

use serde_json::Value;

pub use crate::{
    database::{Backend, SqliteFile, TestDatabase, TestDb, test_database_url, with_database},
    redis::{PrefixGuard, RedisServer, delete_prefix, random_prefix, redis_broker, test_redis_url},
    settings::changed_paths,
    tokens::{TestUser, TokenMinter, unix_now},
};

/// Polls `check` every 50 ms until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The status and JSON body of a response (`null` when the body is not JSON).
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// An HTTP client for black-box tests: redirects are not followed, so tests see them.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// Runs `cleanup` to completion on a short-lived runtime of its own thread: `Drop` cannot
/// await, and may run inside (or outside) a runtime.
pub(crate) fn block_on_thread<F>(cleanup: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()>,
{
    let thread = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(cleanup());
    });
    let _ = thread.join();
}
