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
//! - `Notifier` is a [`herald_service::Service`], so the shared runner serves it alone
//!   ([`Application`], the standalone process) or beside the others (`herald`).
//!
//! Layout: [`settings`] · [`notify`] (what an event publishes, as data) · [`consumer`]
//! (the loop: read, claim, publish, acknowledge) · [`state`].

pub mod consumer;
pub mod notify;
pub mod settings;
pub mod state;

use actix_web::web;
use herald_broker::Broker;
use herald_service::{Background, Component, Context, Readiness, Service};

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

/// The standalone `herald-notifier` process: the consumer loop on the shared runner, with
/// the per-process endpoints (`/healthz`, `/readyz`, `/metrics`).
pub type Application = herald_service::Application<Notifier>;

impl Component for Notifier {
    fn name(&self) -> &'static str {
        "notifier"
    }

    fn configure(&self, cfg: &mut web::ServiceConfig) {
        configure(cfg, self);
    }

    fn readiness(&self) -> Readiness {
        Notifier::readiness(self)
    }
}

impl Service for Notifier {
    type Settings = Settings;

    fn listen(settings: &Settings) -> &str {
        &settings.listen
    }

    /// One worker: the server only answers health checks and scrapes.
    fn workers(_settings: &Settings) -> Option<usize> {
        Some(1)
    }

    fn broker(settings: &Settings) -> anyhow::Result<Broker> {
        broker_from_settings(settings)
    }

    /// [`Notifier::new`] over the context's broker, with [`Notifier::spawn_background`].
    async fn build(settings: &Settings, context: &Context) -> anyhow::Result<(Self, Background)> {
        let notifier = Notifier::new(settings, context.broker.clone());
        tracing::info!(consumer = notifier.consumer(), "notifier built");
        let loops = notifier.clone();
        Ok((
            notifier,
            Background::new(move |tracker, shutdown| loops.spawn_background(tracker, shutdown)),
        ))
    }
}
