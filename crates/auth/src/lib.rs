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

use std::net::TcpListener;

use actix_web::{App, HttpServer, dev::Server, middleware, web};
use anyhow::Context as _;
use herald_broker::{Broker, RedisConfig};
use herald_service::{configure_ops, error::not_found, metrics, shutdown};
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
    match settings
        .redis_url
        .as_ref()
        .map(|url| url.expose().trim())
        .filter(|url| !url.is_empty())
    {
        Some(url) => {
            let config = RedisConfig::new(url).with_prefix(settings.redis_prefix.clone());
            Broker::redis(&config).context("configuring Redis")
        }
        None => Ok(Broker::memory()),
    }
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
pub struct Application {
    port: u16,
    server: Server,
    state: AuthState,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
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
        let metrics = metrics::install().context("installing the metrics recorder")?;
        let readiness = state.readiness();
        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("binding {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(middleware::from_fn(metrics::http_metrics))
                .configure(|cfg| configure_ops(cfg, readiness.clone(), metrics.clone()))
                .configure(|cfg| configure(cfg, &app_state))
                .default_service(web::to(not_found))
        })
        .disable_signals()
        .listen(listener)?
        .run();
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        spawn_background(&state, &tracker, shutdown.clone());
        tracker.spawn(shutdown::stop_server_on(shutdown.clone(), server.handle()));
        Ok(Self {
            port,
            server,
            state,
            tracker,
            shutdown,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The service state (tests reach the store and keys through it).
    pub fn state(&self) -> &AuthState {
        &self.state
    }

    /// Cancelling this token stops the server and the background loops.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until SIGTERM/SIGINT (or [`Self::shutdown_token`] is cancelled), lets in-flight
    /// requests finish, then waits for the background loops.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let on_signal = self.shutdown.clone();
        let signals = tokio::spawn(async move {
            tokio::select! {
                () = shutdown::wait_for_signal() => on_signal.cancel(),
                () = on_signal.cancelled() => {}
            }
        });
        let result = self.server.await;
        self.shutdown.cancel();
        signals.abort();
        self.tracker.close();
        self.tracker.wait().await;
        Ok(result?)
    }
}
