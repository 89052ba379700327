//! `herald-tasks-api`: REST for tasks on Postgres (or SQLite in embedded mode) with a
//! transactional outbox relayed to the events stream (design sections 2, 5 and 5a).
//!
//! Every change of a task (create, update, assign, delete) writes the task and its domain
//! event in one transaction; the outbox relay appends the events to the Redis stream
//! `<prefix>events:tasks`, where the notifier turns them into publications. Tokens are
//! verified locally with the key set auth publishes through the broker, kept in memory, so
//! tasks-api keeps serving (and keeps its events in the outbox) while Redis is down; its
//! readiness depends on the database only.
//!
//! The library exports what the `herald-tasks-api` binary, the embedded `herald` binary and
//! the tests compose (design section 1):
//! - [`TasksApi::build`], then [`configure`] (or [`TasksApi::configure`]): the routes,
//!   mounted on any actix-web app;
//! - [`TasksApi::spawn_background`]: the outbox relay, the sweep and the key refresh;
//! - [`TasksApi::readiness`]: the database check for `/readyz`;
//! - [`Application`]: the standalone process (`build`, `port`, `run_until_stopped`).
//!
//! Layout: [`settings`] · [`domain`] (parsed titles, descriptions, patches; permissions) ·
//! [`tasks`] (the operations: idempotency, preconditions, events) · [`store`] (Postgres and
//! SQLite) · [`outbox`] (the relay) · `sweep` · [`trace`] · [`error`] (the error enum and
//! its HTTP mapping) · [`routes`] (handlers and OpenAPI) · [`state`].

pub mod domain;
pub mod error;
pub mod outbox;
pub mod routes;
pub mod settings;
pub mod state;
pub mod store;
pub mod tasks;
pub mod trace;

mod sweep;

use actix_web::web;
use anyhow::Context as _;
use herald_broker::Broker;
use herald_service::Standalone;
use tokio_util::sync::CancellationToken;

pub use crate::{
    routes::{configure, openapi},
    settings::{DEFAULT_LISTEN, Settings},
    state::TasksApi,
};

impl TasksApi {
    /// Mounts the routes on `cfg`: shorthand for [`configure`].
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        configure(cfg, self);
    }
}

/// The broker `settings` ask for: Redis when `HERALD_REDIS_URL` is set and not empty, else
/// in memory (only useful when the notifier shares this process).
pub fn broker_from_settings(settings: &Settings) -> anyhow::Result<Broker> {
    herald_service::standalone::broker_from_settings(
        settings.redis_url.as_ref(),
        &settings.redis_prefix,
    )
}

/// Applies the database migrations (`herald-tasks-api migrate`).
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

/// The standalone `herald-tasks-api` process: its own HTTP server with the per-process
/// endpoints (`/healthz`, `/readyz`, `/metrics`).
#[derive(Debug)]
pub struct Application {
    server: Standalone,
    api: TasksApi,
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
        let api = TasksApi::build(&settings, broker).await?;
        Self::serve(&settings, api)
    }

    /// Binds the listener for an already built [`TasksApi`] and starts its background loops.
    pub fn serve(settings: &Settings, api: TasksApi) -> anyhow::Result<Self> {
        let app_api = api.clone();
        let server = Standalone::start(&settings.listen, api.readiness(), None, move |cfg| {
            configure(cfg, &app_api);
        })?;
        api.spawn_background(server.tracker(), server.shutdown_token());
        Ok(Self { server, api })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The service state (tests reach the store through it).
    pub fn api(&self) -> &TasksApi {
        &self.api
    }

    /// Cancelling this token stops the server and the background loops.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.server.shutdown_token()
    }

    /// Serves until SIGTERM/SIGINT (or [`Self::shutdown_token`] is cancelled), lets in-flight
    /// requests finish, then waits for the background loops (the relay finishes its round).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.run_until_stopped().await
    }
}
