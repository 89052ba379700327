//! The standalone process of a service (design section 1): its own `HttpServer` with the
//! per-process endpoints (`/healthz`, `/readyz`, `/metrics`), the service's routes, the
//! JSON 404, and a shutdown token and task tracker for its background loops.
//!
//! Each service's `Application` is its state plus a [`Standalone`]: it builds the state,
//! calls [`Standalone::start`] with the state's readiness and routes, spawns its background
//! loops on [`Standalone::tracker`], and runs [`Standalone::run_until_stopped`].

use std::net::TcpListener;

use actix_web::{App, HttpServer, dev::Server, middleware, web};
use anyhow::Context as _;
use herald_broker::{Broker, RedisConfig};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    Readiness, Secret, configure_ops, error::not_found, metrics, shutdown, telemetry, trace,
};

/// The broker a service's settings ask for: Redis when `HERALD_REDIS_URL` is set and not
/// empty (keys under `redis_prefix`), else in memory (only useful when every service that
/// shares data runs in this process).
pub fn broker_from_settings(
    redis_url: Option<&Secret<String>>,
    redis_prefix: &str,
) -> anyhow::Result<Broker> {
    match redis_url
        .map(|url| url.expose().trim())
        .filter(|url| !url.is_empty())
    {
        Some(url) => {
            let config = RedisConfig::new(url).with_prefix(redis_prefix);
            Broker::redis(&config).context("configuring Redis")
        }
        None => Ok(Broker::memory()),
    }
}

/// A running HTTP server of one service process, with the token that stops it and the
/// tracker its background loops run on.
pub struct Standalone {
    port: u16,
    server: Server,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Standalone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standalone")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Standalone {
    /// Installs the metrics recorder, binds `listen` and starts serving the per-process
    /// endpoints (with `readiness`) and the routes `configure` mounts (each request in a
    /// server span when traces are exported), with `workers` worker
    /// threads (actix-web's default, one per core, when `None`). Requests are answered once
    /// [`Self::run_until_stopped`] is awaited; cancelling [`Self::shutdown_token`] stops the
    /// server gracefully.
    pub fn start<F>(
        listen: &str,
        readiness: Readiness,
        workers: Option<usize>,
        configure: F,
    ) -> anyhow::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        let metrics = metrics::install().context("installing the metrics recorder")?;
        let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
        let port = listener.local_addr()?.port();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(middleware::from_fn(metrics::http_metrics))
                .wrap(middleware::from_fn(trace::http_trace))
                .configure(|cfg| configure_ops(cfg, readiness.clone(), metrics.clone()))
                .configure(configure.clone())
                .default_service(web::to(not_found))
        });
        if let Some(workers) = workers {
            server = server.workers(workers);
        }
        let server = server
            .disable_signals()
            .tcp_nodelay(true)
            .listen(listener)?
            .run();
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        tracker.spawn(shutdown::stop_server_on(shutdown.clone(), server.handle()));
        Ok(Self {
            port,
            server,
            tracker,
            shutdown,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the service spawns its background loops; [`Self::run_until_stopped`] waits
    /// for them.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Cancelling this token stops the server and the background loops.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until SIGTERM/SIGINT (or [`Self::shutdown_token`] is cancelled), lets in-flight
    /// requests finish, then waits for the background loops and exports the last spans.
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
        telemetry::flush();
        Ok(result?)
    }
}
