//! `herald-notifier`: turns domain events into notifications (design sections 4 and 5a).
//!
//! It reads the events stream `<prefix>events:tasks` through a consumer group (any number
//! of replicas side by side, each event handled by one), publishes every event to the
//! `tasks` channel and, when the event gives the task to someone, to that user's
//! `notifications#<user id>` channel, and acknowledges the event afterwards. Events a dead
//! consumer left pending are claimed by the others; the event id is the publications'
//! idempotency key, so an event handled twice never notifies twice.
//!
//! The library exports what the `herald-notifier` binary, the embedded `herald` binary and
//! the tests compose (design section 1):
//! - [`Notifier::new`], then [`configure`] (no routes of its own: the notifier serves only
//!   the per-process `/healthz`, `/readyz` and `/metrics`);
//! - [`Notifier::spawn_background`]: the consumer loop;
//! - [`Notifier::readiness`]: the Redis check for `/readyz`;
//! - [`Application`]: the standalone process (`build`, `port`, `run_until_stopped`).
//!
//! Layout: [`settings`] · [`notify`] (what an event publishes, as data) · [`consumer`]
//! (the loop: read, claim, publish, acknowledge) · [`state`].

pub mod consumer;
pub mod notify;
pub mod settings;
pub mod state;

use std::net::TcpListener;

use actix_web::{App, HttpServer, dev::Server, middleware, web};
use anyhow::Context as _;
use herald_broker::{Broker, RedisConfig};
use herald_service::{configure_ops, error::not_found, metrics, shutdown};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use crate::{
    settings::{DEFAULT_LISTEN, Settings},
    state::Notifier,
};

/// Mounts the notifier's routes: none. It is here so every service composes the same way;
/// the per-process endpoints come from [`herald_service::configure_ops`].
pub fn configure(_cfg: &mut web::ServiceConfig, _notifier: &Notifier) {}

/// The broker `settings` ask for: Redis when `HERALD_REDIS_URL` is set and not empty, else
/// in memory (only useful when tasks-api and the gateway share this process).
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

/// The standalone `herald-notifier` process: the consumer loop and an HTTP server with the
/// per-process endpoints (`/healthz`, `/readyz`, `/metrics`).
pub struct Application {
    port: u16,
    server: Server,
    notifier: Notifier,
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

    /// Binds the listener and starts the consumer loop.
    pub async fn build_with_broker(settings: Settings, broker: Broker) -> anyhow::Result<Self> {
        let notifier = Notifier::new(&settings, broker);
        let metrics = metrics::install().context("installing the metrics recorder")?;
        let readiness = notifier.readiness();
        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("binding {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let app_notifier = notifier.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(middleware::from_fn(metrics::http_metrics))
                .configure(|cfg| configure_ops(cfg, readiness.clone(), metrics.clone()))
                .configure(|cfg| configure(cfg, &app_notifier))
                .default_service(web::to(not_found))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        notifier.spawn_background(&tracker, shutdown.clone());
        tracker.spawn(shutdown::stop_server_on(shutdown.clone(), server.handle()));
        Ok(Self {
            port,
            server,
            notifier,
            tracker,
            shutdown,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The notifier.
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Cancelling this token stops the server and the consumer loop.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs until SIGTERM/SIGINT (or [`Self::shutdown_token`] is cancelled); the consumer
    /// finishes the event in hand before this returns.
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
