//! The standalone `herald-gateway` process: its own HTTP server with the per-process
//! endpoints (`/healthz`, `/readyz`, `/metrics`), the gateway's routes and the web client.

use std::net::TcpListener;

use actix_web::App;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use anyhow::Context as _;
use herald_broker::{Broker, RedisConfig};
use herald_service::tokens::{BrokerKeySource, DEFAULT_REFETCH_INTERVAL, DEFAULT_REFRESH_INTERVAL};
use herald_service::{TokenVerifier, configure_ops, metrics as service_metrics};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::transport::server::{ServerOptions, serve};
use crate::{Gateway, Settings};

/// Longest graceful stop of the HTTP server once connections were told to go.
const SERVER_SHUTDOWN_SECS: u64 = 10;

/// The standalone gateway process.
pub struct Application {
    port: u16,
    server: Server,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    drain: CancellationToken,
    gateway: Gateway,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects nothing yet: builds the broker (Redis connections open on first use), the
    /// token verifier over the broker's key set, the gateway and the server, and binds the
    /// listener. Nothing is served until [`Self::run_until_stopped`].
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let redis = RedisConfig::new(settings.redis_url.expose().clone())
            .with_prefix(settings.redis_prefix.clone());
        let broker = Broker::redis(&redis).context("redis configuration")?;
        let verifier = TokenVerifier::new(
            settings.jwt.verifier().context("token settings")?,
            BrokerKeySource::new(broker.clone()),
            DEFAULT_REFETCH_INTERVAL,
        );
        Self::build_with(settings, broker, verifier).await
    }

    /// Like [`Self::build`] with a given broker and verifier (tests, other compositions).
    pub async fn build_with(
        settings: Settings,
        broker: Broker,
        verifier: TokenVerifier,
    ) -> anyhow::Result<Self> {
        let metrics = service_metrics::install().context("metrics recorder")?;
        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("binding {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let workers = settings.workers;
        let gateway = Gateway::new(settings, broker, verifier.clone());
        let readiness = gateway.readiness();
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        gateway.spawn_background(&tracker, shutdown.clone());
        tracker.spawn(verifier.run(DEFAULT_REFRESH_INTERVAL, shutdown.clone()));
        let app_gateway = gateway.clone();
        let options = ServerOptions {
            workers,
            shutdown_timeout_secs: SERVER_SHUTDOWN_SECS,
        };
        let server = serve(listener, options, move || {
            let gateway = app_gateway.clone();
            let readiness = readiness.clone();
            let metrics = metrics.clone();
            App::new()
                .wrap(from_fn(service_metrics::http_metrics))
                .wrap(from_fn(herald_service::trace::http_trace))
                .configure(move |cfg| configure_ops(cfg, readiness, metrics))
                .configure(|cfg| gateway.configure(cfg))
                .configure(|cfg| gateway.configure_web_client(cfg))
        })?;
        tracker.spawn(
            gateway
                .clone()
                .stop_server_on(shutdown.clone(), server.handle()),
        );
        let drain = CancellationToken::new();
        tracker.spawn(drain_then_stop(
            gateway.clone(),
            drain.clone(),
            shutdown.clone(),
        ));
        Ok(Self {
            port,
            server,
            tracker,
            shutdown,
            drain,
            gateway,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The gateway (stats, closing connections).
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Cancelling it stops the process at once: connections are closed with 3001, the server
    /// stops, the background loops end.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Cancelling it (SIGTERM) drains the node ([`Gateway::drain`]: no new connections,
    /// `/readyz` fails, 3001 spread over the drain window), then stops it as
    /// [`Self::shutdown_token`] does.
    pub fn drain_token(&self) -> CancellationToken {
        self.drain.clone()
    }

    /// Serves until the shutdown token fires, then waits for the background loops.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = self.server.await;
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        Ok(result?)
    }
}

/// Waits for `drain`, drains the node, then fires `shutdown` (unless it fired first).
async fn drain_then_stop(gateway: Gateway, drain: CancellationToken, shutdown: CancellationToken) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = drain.cancelled() => {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = gateway.drain() => shutdown.cancel(),
            }
        }
    }
}
