//! `herald-auth`: accounts and tokens (design sections 2, 5 and 5a).
//!
//! Users register with a username and password (argon2id, hashed on a blocking thread) and
//! sign in for a short-lived EdDSA access token plus a refresh token that rotates on every
//! use. Access tokens are verified everywhere without calling auth: the public keys are
//! published through the broker and at `/auth/jwks.json`, and every service checks tokens
//! with [`herald_common::auth::Verifier`].
//!
//! The library exports what the `herald-auth` binary, the embedded `herald` binary and the
//! tests compose (design section 1):
//! - [`AuthState::build`], then [`configure`]: the routes, mounted on any actix-web app;
//! - [`spawn_background`]: key publication and clean-up loops;
//! - [`AuthState::readiness`]: the database check for `/readyz`;
//! - [`Application`]: the standalone process (`build`, `port`, `run_until_stopped`).
//!
//! Layout: [`settings`] · [`domain`] (parsed usernames and passwords) · [`password`]
//! (argon2id) · [`tokens`] (refresh tokens) · [`keys`] (signing keys, rotation, publication)
//! · [`store`] (Postgres and SQLite) · [`rate_limit`] · [`error`] (the error enum and its
//! HTTP mapping) · [`routes`] (handlers and OpenAPI) · [`state`].

pub mod domain;
pub mod error;
pub mod keys;
pub mod password;
pub mod rate_limit;
pub mod routes;
pub mod settings;
pub mod state;
pub mod store;
pub mod tokens;

use anyhow::Context as _;
use herald_broker::Broker;
use herald_service::Standalone;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use crate::{
    routes::{configure, openapi},
    settings::{DEFAULT_LISTEN, Settings},
    state::AuthState,
};

/// Starts auth's background loops (key-file checks and key-set publication, clean-up of
/// expired refresh tokens and idle rate-limit entries); each stops when `shutdown` fires.
pub fn spawn_background(state: &AuthState, tracker: &TaskTracker, shutdown: CancellationToken) {
    state.spawn_background(tracker, shutdown);
}

/// The broker `settings` ask for: Redis when `HERALD_REDIS_URL` is set and not empty, else
/// in memory (only useful when every service shares this process).
pub fn broker_from_settings(settings: &Settings) -> anyhow::Result<Broker> {
    herald_service::standalone::broker_from_settings(
        settings.redis_url.as_ref(),
        &settings.redis_prefix,
    )
}

/// Applies the database migrations (`herald-auth migrate`).
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let store = store::Store::connect(
        settings.database_url.expose(),
        std::time::Duration::from_secs(10),
    )
    .await
    .context("opening the database")?;
    store.migrate().await.context("applying migrations")?;
    Ok(())
}

/// The standalone `herald-auth` process: its own HTTP server with the per-process endpoints
/// (`/healthz`, `/readyz`, `/metrics`).
#[derive(Debug)]
pub struct Application {
    server: Standalone,
    state: AuthState,
}

impl Application {
    /// Connects the broker from `settings`, then [`Self::build_with_broker`].
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let broker = broker_from_settings(&settings)?;
        Self::build_with_broker(settings, broker).await
    }

    /// Builds the state, binds the listener and starts the background loops; requests are
    /// served once [`Self::run_until_stopped`] is awaited.
    pub async fn build_with_broker(settings: Settings, broker: Broker) -> anyhow::Result<Self> {
        let state = AuthState::build(&settings, broker).await?;
        let app_state = state.clone();
        let server = Standalone::start(&settings.listen, state.readiness(), None, move |cfg| {
            configure(cfg, &app_state);
        })?;
        spawn_background(&state, server.tracker(), server.shutdown_token());
        Ok(Self { server, state })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The service state (tests reach the store and keys through it).
    pub fn state(&self) -> &AuthState {
        &self.state
    }

    /// Cancelling this token stops the server and the background loops.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.server.shutdown_token()
    }

    /// Serves until SIGTERM/SIGINT (or [`Self::shutdown_token`] is cancelled), lets in-flight
    /// requests finish, then waits for the background loops.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.run_until_stopped().await
    }
}
