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

use std::net::TcpListener;

use actix_web::{App, HttpServer, dev::Server, middleware, web};
use anyhow::Context as _;
use herald_broker::{Broker, RedisConfig};
use herald_service::{configure_ops, error::not_found, metrics, shutdown};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

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
pub struct Application {
    port: u16,
    server: Server,
    api: TasksApi,
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
        let api = TasksApi::build(&settings, broker).await?;
        Self::serve(&settings, api)
    }

    /// Binds the listener for an already built [`TasksApi`] and starts its background loops.
    pub fn serve(settings: &Settings, api: TasksApi) -> anyhow::Result<Self> {
        let metrics = metrics::install().context("installing the metrics recorder")?;
        let readiness = api.readiness();
        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("binding {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let app_api = api.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(middleware::from_fn(metrics::http_metrics))
                .configure(|cfg| configure_ops(cfg, readiness.clone(), metrics.clone()))
                .configure(|cfg| configure(cfg, &app_api))
                .default_service(web::to(not_found))
        })
        .disable_signals()
        .listen(listener)?
        .run();
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        api.spawn_background(&tracker, shutdown.clone());
        tracker.spawn(shutdown::stop_server_on(shutdown.clone(), server.handle()));
        Ok(Self {
            port,
            server,
            api,
            tracker,
            shutdown,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The service state (tests reach the store through it).
    pub fn api(&self) -> &TasksApi {
        &self.api
    }

    /// Cancelling this token stops the server and the background loops.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until SIGTERM/SIGINT (or [`Self::shutdown_token`] is cancelled), lets in-flight
    /// requests finish, then waits for the background loops (the relay finishes its round).
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
