//! `herald-gateway`: the WebSocket edge (design sections 2, 3 and 6).
//!
//! The library exports what the `herald-gateway` binary, the embedded `herald` binary and the
//! tests compose (design section 1): [`Gateway`] is a [`herald_service::Service`] like every
//! other service, so the shared runner serves it alone ([`Application`], the standalone
//! process) or beside the others (`herald`). Its routes go on any app served by
//! [`herald_service::server`], the server whose upgrade hook runs WebSockets on the bare
//! socket; its web client is mounted last (it matches every path); the first SIGTERM drains
//! it ([`Gateway::drain`]) and a stop closes its connections with 3001 before the server
//! stops.
//!
//! Layout, from the socket down to Redis:
//! - [`client`]: `/connection/websocket`, the Centrifugo client protocol v2 (JSON);
//! - [`echo`]: `/ws/echo`, every message back unchanged (WebSocket conformance, debugging);
//! - [`simple`]: `/ws/chat/{room}` and `/ws/notifications/{channel}`, text lines;
//! - [`subscription`]: subscribing without loss or reordering, shared by both;
//! - [`api`]: `/api/*`, the server API for the user's own backend; [`node`]: what each node
//!   announces to the others (`/api/info`, `/api/channels`);
//! - [`fanout`]: the hub, per-subscription slots, bounded outboxes with one writer per
//!   connection, and the task that turns broker events into deliveries;
//! - [`policy`]: the channel table; [`token`]: tokens at the edge; [`origin`]: the Origin
//!   allow-list; [`registry`]: connection limits and the user index; [`ratelimit`];
//! - [`transport`]: WebSocket connections on the bare socket, handed over by the HTTP
//!   server's upgrade hook;
//! - [`settings`], [`metrics`], [`web`] (`/docs` and the web client), [`state`].

pub mod api;
pub mod client;
pub mod echo;
pub mod fanout;
pub mod metrics;
pub mod node;
pub mod origin;
pub mod policy;
pub mod ratelimit;
pub mod registry;
pub mod settings;
pub mod simple;
pub mod state;
pub mod subscription;
pub mod token;
pub mod transport;
pub mod web;

mod trace;

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use actix_web::web as actix;
use anyhow::Context as _;
use futures_util::future::BoxFuture;
use herald_broker::Broker;
use herald_common::protocol::{Disconnect, DisconnectCode};
use herald_service::tokens::{BrokerKeySource, DEFAULT_REFETCH_INTERVAL, DEFAULT_REFRESH_INTERVAL};
use herald_service::{Background, Component, Context, Readiness, Service, TokenVerifier};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use metrics::StatsSnapshot;
pub use settings::{DEFAULT_LISTEN, Settings};

use crate::fanout::dispatch::Dispatcher;
use crate::state::Shared;

/// How often gauges that are sampled rather than tracked are exported.
const METRICS_INTERVAL: Duration = Duration::from_secs(5);

/// How often a drain checks whether its last connections are gone.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// The gateway of one node: cheap to clone, every clone shares the state.
#[derive(Debug, Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl Gateway {
    /// Builds the node's state and opens its one broker subscriber. Must be called inside a
    /// Tokio runtime; nothing is delivered until [`Gateway::spawn_background`].
    pub fn new(settings: Settings, broker: Broker, verifier: TokenVerifier) -> Self {
        Self {
            shared: Arc::new(Shared::new(settings, broker, verifier)),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// Mounts `/connection/websocket`, `/ws/echo`, `/ws/chat/{room}`, `/ws/notifications/{channel}`,
    /// `/api/*` and `/docs`.
    pub fn configure(&self, cfg: &mut actix::ServiceConfig) {
        cfg.app_data(actix::Data::from(Arc::clone(&self.shared)))
            .configure(api::configure)
            .route("/connection/websocket", actix::get().to(client::websocket))
            .route("/ws/echo", actix::get().to(echo::echo))
            .route("/ws/chat", actix::get().to(simple::lobby))
            .route("/ws/chat/{room}", actix::get().to(simple::chat))
            .route(
                "/ws/notifications/{channel}",
                actix::get().to(simple::notifications),
            );
        web::configure_docs(cfg);
    }

    /// Mounts the web client's folder at `/` (when it exists). Mount it after every other
    /// route of the app: it matches every path.
    pub fn configure_web_client(&self, cfg: &mut actix::ServiceConfig) {
        web::configure_web_client(cfg, &self.shared.settings.web_dir);
    }

    /// Starts the fan-out loop, the position check of positioned subscriptions, the metrics sampler, the node's announcements and the
    /// shutdown closer on `tracker`; each stops when `shutdown` fires (connections still open
    /// are closed with 3001 then; [`Gateway::drain`] first spreads those closes out).
    pub fn spawn_background(&self, tracker: &TaskTracker, shutdown: CancellationToken) {
        let events = self
            .shared
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let dispatcher = Dispatcher::new(
            Arc::clone(&self.shared.hub),
            Arc::clone(&self.shared.registry),
            Arc::clone(&self.shared.stats),
        );
        match events {
            Some(events) => {
                tracker.spawn(dispatcher.run(events, shutdown.clone()));
                tracker.spawn(fanout::position::run(
                    Arc::clone(&self.shared.hub),
                    self.shared.broker.clone(),
                    self.shared.subscriber.clone(),
                    self.shared.settings.position_check_interval,
                    shutdown.clone(),
                ));
            }
            None => tracing::error!("spawn_background called twice; the fan-out loop already runs"),
        }
        let shared = Arc::clone(&self.shared);
        let stop = shutdown.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(METRICS_INTERVAL);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => export_metrics(&shared),
                }
            }
        });
        tracker.spawn(node::run_announcer(
            Arc::clone(&self.shared),
            shutdown.clone(),
        ));
        let gateway = self.clone();
        tracker.spawn(async move {
            shutdown.cancelled().await;
            gateway.close_all(DisconnectCode::Shutdown.to_disconnect());
        });
    }

    /// The readiness checks of this service: the node is not draining, Redis answers.
    pub fn readiness(&self) -> Readiness {
        let broker = self.shared.broker.clone();
        let shared = Arc::clone(&self.shared);
        Readiness::new()
            .with_check("accepting", move || {
                let draining = shared.is_draining();
                async move {
                    if draining {
                        Err("draining: the node is shutting down".to_owned())
                    } else {
                        Ok(())
                    }
                }
            })
            .with_check("redis", move || {
                let broker = broker.clone();
                async move { broker.ping().await.map_err(|err| err.to_string()) }
            })
    }

    /// Drains the node (SIGTERM, design section 6): new WebSockets get HTTP 503 and
    /// `/readyz` fails from now on; open connections are closed with 3001 (shutdown,
    /// reconnect) one after another, spread evenly over the drain window, so their clients
    /// reconnect to other nodes gradually rather than all at once. Returns once every
    /// connection is gone, or the close timeout after the window. Calling it again does
    /// nothing.
    pub async fn drain(&self) {
        let shared = &self.shared;
        if !shared.start_draining() {
            return;
        }
        let window = shared.settings.drain_window;
        let targets = shared.registry.all();
        let count = targets.len();
        tracing::info!(
            connections = count,
            window_secs = window.as_secs_f64(),
            "draining: closing connections with 3001 over the drain window"
        );
        let started = tokio::time::Instant::now();
        for (index, target) in targets.into_iter().enumerate() {
            let at = started + window.mul_f64(index as f64 / count as f64);
            tokio::time::sleep_until(at).await;
            target
                .outbox
                .close(DisconnectCode::Shutdown.to_disconnect());
        }
        // Connections admitted while the flag was being set.
        self.close_all_and_wait().await;
        tracing::info!(remaining = shared.registry.len(), "drained; stopping");
    }

    /// Closes every connection with 3001 and waits until they are gone, at most the close
    /// timeout. The process runs it before its HTTP server stops
    /// ([`Component::before_stop`]), because WebSocket connections run in tasks of their own
    /// that the server's graceful stop does not wait for ([`herald_service::server`]).
    pub async fn close_all_and_wait(&self) {
        self.close_all(DisconnectCode::Shutdown.to_disconnect());
        let deadline = tokio::time::Instant::now() + self.shared.settings.limits.close_timeout;
        while !self.shared.registry.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.shared.is_draining()
    }

    /// Closes every connection of this node with `disconnect`.
    pub fn close_all(&self, disconnect: Disconnect) {
        for target in self.shared.registry.all() {
            target.outbox.close(disconnect.clone());
        }
    }

    /// Counters of this node (tests and diagnostics).
    pub fn stats(&self) -> StatsSnapshot {
        StatsSnapshot {
            outbox_bytes: queued_bytes(&self.shared),
            ..self.shared.stats.snapshot()
        }
    }

    /// Channels with at least one local subscriber.
    pub fn channel_count(&self) -> usize {
        self.shared.hub.channel_count()
    }
}

/// The standalone `herald-gateway` process: the gateway alone on the shared runner, with the
/// per-process endpoints (`/healthz`, `/readyz`, `/metrics`).
pub type Application = herald_service::Application<Gateway>;

impl Component for Gateway {
    fn name(&self) -> &'static str {
        "gateway"
    }

    fn configure(&self, cfg: &mut actix::ServiceConfig) {
        Gateway::configure(self, cfg);
    }

    /// The web client at `/`.
    fn configure_fallback(&self, cfg: &mut actix::ServiceConfig) {
        self.configure_web_client(cfg);
    }

    fn readiness(&self) -> Readiness {
        Gateway::readiness(self)
    }

    fn drain(&self) -> BoxFuture<'static, ()> {
        let gateway = self.clone();
        Box::pin(async move { gateway.drain().await })
    }

    fn before_stop(&self) -> BoxFuture<'static, ()> {
        let gateway = self.clone();
        Box::pin(async move { gateway.close_all_and_wait().await })
    }
}

impl Service for Gateway {
    type Settings = Settings;

    fn listen(settings: &Settings) -> &str {
        &settings.listen
    }

    fn workers(settings: &Settings) -> Option<usize> {
        settings.workers
    }

    fn broker(settings: &Settings) -> anyhow::Result<Broker> {
        let redis = herald_broker::RedisConfig::new(settings.redis_url.expose().clone())
            .with_prefix(settings.redis_prefix.clone());
        Broker::redis(&redis).context("redis configuration")
    }

    /// [`Gateway::new`] over the context's broker and verifier; without a verifier in the
    /// context, one over the key set auth publishes through the broker, read again every
    /// [`DEFAULT_REFRESH_INTERVAL`] in the background.
    async fn build(settings: &Settings, context: &Context) -> anyhow::Result<(Self, Background)> {
        let (verifier, own) = match &context.verifier {
            Some(shared) => (shared.clone(), None),
            None => {
                let own = TokenVerifier::new(
                    settings.jwt.verifier().context("token settings")?,
                    BrokerKeySource::new(context.broker.clone()),
                    DEFAULT_REFETCH_INTERVAL,
                );
                (own.clone(), Some(own))
            }
        };
        let gateway = Gateway::new(settings.clone(), context.broker.clone(), verifier);
        let loops = gateway.clone();
        let mut background =
            Background::new(move |tracker, shutdown| loops.spawn_background(tracker, shutdown));
        if let Some(own) = own {
            background = background.and(Background::new(move |tracker, shutdown| {
                tracker.spawn(own.run(DEFAULT_REFRESH_INTERVAL, shutdown));
            }));
        }
        Ok((gateway, background))
    }
}

/// Bytes queued for every connection of the node, sampled queue by queue.
fn queued_bytes(shared: &Shared) -> usize {
    shared
        .registry
        .all()
        .iter()
        .map(|target| target.outbox.queued_bytes())
        .sum()
}

fn export_metrics(shared: &Shared) {
    shared.stats.export(queued_bytes(shared));
    let subscriber = shared.subscriber.stats();
    ::metrics::gauge!(metrics::CHANNELS).set(subscriber.channels as f64);
    ::metrics::counter!(metrics::REDIS_RECONNECTS).absolute(subscriber.reconnects);
    ::metrics::counter!(metrics::BROKER_DROPS).absolute(subscriber.dropped_events);
}
