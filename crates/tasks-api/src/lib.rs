//! `herald-tasks-api`: REST for tasks on Postgres (or SQLite in embedded mode) with a transactional outbox relayed to the events stream.
//!
//! The library exports what the `herald-tasks-api` binary, the embedded `herald` binary and the tests
//! compose (design section 1):
//! - [`configure`]: this service's routes, mounted on any actix-web app;
//! - [`spawn_background`]: its background loops, each stopping on a shared token;
//! - [`Application`]: the standalone process (`build`, `port`, `run_until_stopped`).

use std::net::TcpListener;

use actix_web::{App, HttpResponse, HttpServer, dev::Server, web};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Default listen address of the standalone service.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8081";

/// Settings of the standalone service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `host:port` to bind; port 0 picks any free port.
    pub listen: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
        }
    }
}

/// Mounts this service's routes.
pub fn configure(_cfg: &mut web::ServiceConfig) {}

/// Starts this service's background loops on `tracker`; each stops when `shutdown` fires.
pub fn spawn_background(_tracker: &TaskTracker, _shutdown: CancellationToken) {}

/// The standalone `herald-tasks-api` process: its own HTTP server with the per-process endpoints.
pub struct Application {
    port: u16,
    server: Server,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("port", &self.port).finish_non_exhaustive()
    }
}

impl Application {
    /// Binds the listener and builds the server; nothing runs until [`Self::run_until_stopped`].
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&settings.listen)?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(|| {
            App::new()
                .route("/healthz", web::get().to(|| async { HttpResponse::Ok().json(serde_json_ok()) }))
                .configure(configure)
        })
        .listen(listener)?
        .run();
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        spawn_background(&tracker, shutdown.clone());
        Ok(Self { port, server, tracker, shutdown })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the server stops (SIGINT/SIGTERM), then stops the background loops.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = self.server.await;
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        Ok(result?)
    }
}

fn serde_json_ok() -> std::collections::BTreeMap<&'static str, &'static str> {
    std::collections::BTreeMap::from([("status", "ok")])
}
