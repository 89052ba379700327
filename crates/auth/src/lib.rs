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
//! - `AuthState` is a [`herald_service::Service`], so the shared runner serves it alone
//!   ([`Application`], the standalone process) or beside the others (`herald`).
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

use actix_web::web;
use anyhow::Context as _;
use herald_broker::Broker;
use herald_service::{Background, Component, Context, Readiness, Service};
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

/// The standalone `herald-auth` process: auth alone on the shared runner, with the
/// per-process endpoints (`/healthz`, `/readyz`, `/metrics`).
pub type Application = herald_service::Application<AuthState>;

impl Component for AuthState {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn configure(&self, cfg: &mut web::ServiceConfig) {
        configure(cfg, self);
    }

    fn readiness(&self) -> Readiness {
        AuthState::readiness(self)
    }
}

impl Service for AuthState {
    type Settings = Settings;

    fn listen(settings: &Settings) -> &str {
        &settings.listen
    }

    fn broker(settings: &Settings) -> anyhow::Result<Broker> {
        broker_from_settings(settings)
    }

    /// [`AuthState::build`] (auth signs with its own keys and verifies with its own
    /// verifier; the context's is not used), with [`AuthState::spawn_background`].
    async fn build(settings: &Settings, context: &Context) -> anyhow::Result<(Self, Background)> {
        let state = AuthState::build(settings, context.broker.clone()).await?;
        let loops = state.clone();
        Ok((
            state,
            Background::new(move |tracker, shutdown| loops.spawn_background(tracker, shutdown)),
        ))
    }
}
