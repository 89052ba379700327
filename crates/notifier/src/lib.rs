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

use actix_web::web;
use herald_broker::Broker;
use herald_service::Standalone;
use tokio_util::sync::CancellationToken;

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
    herald_service::standalone::broker_from_settings(
        settings.redis_url.as_ref(),
        &settings.redis_prefix,
    )
}

/// The standalone `herald-notifier` process: the consumer loop and an HTTP server with the
/// per-process endpoints (`/healthz`, `/readyz`, `/metrics`).
#[derive(Debug)]
pub struct Application {
    server: Standalone,
    notifier: Notifier,
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
        let app_notifier = notifier.clone();
        // One worker: the server only answers health checks and scrapes.
        let server = Standalone::start(
            &settings.listen,
            notifier.readiness(),
            Some(1),
            move |cfg| {
                configure(cfg, &app_notifier);
            },
        )?;
        notifier.spawn_background(server.tracker(), server.shutdown_token());
        Ok(Self { server, notifier })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The notifier.
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Cancelling this token stops the server and the consumer loop.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.server.shutdown_token()
    }

    /// Runs until SIGTERM/SIGINT (or [`Self::shutdown_token`] is cancelled); the consumer
    /// finishes the event in hand before this returns.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.run_until_stopped().await
    }
}
