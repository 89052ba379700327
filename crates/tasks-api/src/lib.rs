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
//! - `TasksApi` is a [`herald_service::Service`], so the shared runner serves it alone
//!   ([`Application`], the standalone process) or beside the others (`herald`).
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
use herald_service::{Background, Component, Context, Readiness, Service};

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

/// The standalone `herald-tasks-api` process: tasks-api alone on the shared runner, with
/// the per-process endpoints (`/healthz`, `/readyz`, `/metrics`).
pub type Application = herald_service::Application<TasksApi>;

impl Component for TasksApi {
    fn name(&self) -> &'static str {
        "tasks_api"
    }

    fn configure(&self, cfg: &mut web::ServiceConfig) {
        configure(cfg, self);
    }

    fn readiness(&self) -> Readiness {
        TasksApi::readiness(self)
    }
}

impl Service for TasksApi {
    type Settings = Settings;

    fn listen(settings: &Settings) -> &str {
        &settings.listen
    }

    fn broker(settings: &Settings) -> anyhow::Result<Broker> {
        broker_from_settings(settings)
    }

    /// [`TasksApi::build`] (with the context's verifier when it has one), with
    /// [`TasksApi::spawn_background`].
    async fn build(settings: &Settings, context: &Context) -> anyhow::Result<(Self, Background)> {
        let api = TasksApi::build(settings, context).await?;
        let loops = api.clone();
        Ok((
            api,
            Background::new(move |tracker, shutdown| loops.spawn_background(tracker, shutdown)),
        ))
    }
}
