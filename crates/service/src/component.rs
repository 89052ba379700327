//! One way to compose a service (design section 1).
//!
//! Auth, tasks-api, notifier and gateway are each a [`Service`]: built by one async
//! [`Service::build`] from their settings and the [`Context`] the process shares (the broker,
//! and in the embedded mode auth's token verifier), which gives the [`Component`] that serves
//! requests and the [`Background`] loops that run beside it. The one runner,
//! [`Composition`](crate::standalone::Composition), serves any number of components on one
//! port: the standalone binaries compose one, the embedded `herald` four.
//!
//! A component is what the runner asks of every service alike: its routes, its readiness
//! checks, and how it stops. Its background loops are handed over once, at build time, so
//! each loop owns what it needs (the gateway's fan-out owns its event receiver) instead of
//! taking it out of shared state later.

use std::future::Future;

use actix_web::web;
use futures_util::future::BoxFuture;
use herald_broker::Broker;
use serde::{Serialize, de::DeserializeOwned};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{Readiness, TokenVerifier};

/// What the runner asks of every service: routes, readiness, and how it stops.
pub trait Component: Send + Sync + 'static {
    /// The service's name: in logs and, when several components share a process, the name
    /// of its check in `/readyz` (`auth`, `tasks_api`, `notifier`, `gateway`).
    fn name(&self) -> &'static str;

    /// Mounts the service's routes.
    fn configure(&self, cfg: &mut web::ServiceConfig);

    /// Mounts routes that match every path (the gateway's web client at `/`). The runner
    /// mounts them after every component's [`Self::configure`]. Default: none.
    fn configure_fallback(&self, _cfg: &mut web::ServiceConfig) {}

    /// The service's readiness checks (`/readyz`).
    fn readiness(&self) -> Readiness;

    /// The first SIGTERM: stop taking new work and let clients move elsewhere; resolves
    /// once done, after which the process stops. Default: nothing to drain.
    fn drain(&self) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }

    /// Once the process stops, before the HTTP server's graceful stop: end what that stop
    /// does not see (the gateway closes its WebSockets with 3001 and waits for them).
    /// Default: nothing.
    fn before_stop(&self) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// One spawner of background loops.
type Spawner = Box<dyn FnOnce(&TaskTracker, CancellationToken) + Send>;

/// The background loops of a component, handed to the runner once: it spawns them on the
/// process's [`TaskTracker`] with its shutdown token, and every loop stops when the token
/// fires.
#[must_use = "background loops run only once the runner spawns them"]
#[derive(Default)]
pub struct Background {
    spawners: Vec<Spawner>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("spawners", &self.spawners.len())
            .finish()
    }
}

impl Background {
    /// No loops.
    pub fn none() -> Self {
        Self::default()
    }

    /// Loops that `spawn` starts on the tracker it is given, each stopping on the token.
    pub fn new(spawn: impl FnOnce(&TaskTracker, CancellationToken) + Send + 'static) -> Self {
        Self {
            spawners: vec![Box::new(spawn)],
        }
    }

    /// These loops and `other`'s.
    pub fn and(mut self, other: Background) -> Self {
        self.spawners.extend(other.spawners);
        self
    }

    /// Starts every loop on `tracker`, each with a clone of `shutdown`.
    pub fn spawn(self, tracker: &TaskTracker, shutdown: &CancellationToken) {
        for spawn in self.spawners {
            spawn(tracker, shutdown.clone());
        }
    }
}

/// What the services of one process share.
#[derive(Debug, Clone)]
pub struct Context {
    /// The process's one broker.
    pub broker: Broker,
    /// A token verifier that someone else keeps up to date (the embedded mode hands auth's,
    /// which follows the key set auth publishes). `None`: a service that verifies tokens
    /// makes its own over the broker and refreshes it in its background.
    pub verifier: Option<TokenVerifier>,
}

impl Context {
    /// `broker`, and no shared verifier.
    pub fn new(broker: Broker) -> Self {
        Self {
            broker,
            verifier: None,
        }
    }

    /// With `verifier` shared.
    pub fn with_verifier(mut self, verifier: TokenVerifier) -> Self {
        self.verifier = Some(verifier);
        self
    }
}

/// A service: a [`Component`] built from its settings, the same way for every service.
pub trait Service: Component + Sized {
    /// The service's settings, loaded with [`crate::config::load`].
    type Settings: Serialize + DeserializeOwned + Default + Send + Sync + 'static;

    /// `host:port` the service's own process binds (`HERALD_LISTEN`).
    fn listen(settings: &Self::Settings) -> &str;

    /// HTTP worker threads of its own process; `None`: one per core.
    fn workers(_settings: &Self::Settings) -> Option<usize> {
        None
    }

    /// The broker its own process uses.
    fn broker(settings: &Self::Settings) -> anyhow::Result<Broker>;

    /// Builds the service: the component that serves, and its background loops (not
    /// running yet).
    fn build(
        settings: &Self::Settings,
        context: &Context,
    ) -> impl Future<Output = anyhow::Result<(Self, Background)>> + Send;
}
