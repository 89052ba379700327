//! The one runner of every Herald process (design section 1): a [`Composition`] of
//! [`Component`]s served on one port by the shared HTTP server ([`crate::server`]), with the
//! per-process endpoints (`/healthz`, `/readyz`, `/metrics`), the components' routes, the
//! JSON 404, and one shutdown token and task tracker for their background loops.
//!
//! A standalone service is a composition of one ([`Application`]); the embedded `herald` is
//! a composition of four, sharing one broker. Stopping is the same for both:
//!
//! - the first SIGTERM/SIGINT (or [`Standalone::drain_token`]) drains every component at
//!   once ([`Component::drain`]: the gateway stops accepting, fails `/readyz` and closes its
//!   clients with 3001 over `HERALD_DRAIN_WINDOW`), then stops the process;
//! - a second signal (or [`Standalone::shutdown_token`]) stops it at once: every component's
//!   [`Component::before_stop`] (the gateway closes what is left with 3001 and waits), then
//!   the HTTP server's graceful stop, then the background loops, each finishing the item in
//!   hand.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, middleware, web};
use anyhow::Context as _;
use futures_util::future::join_all;
use herald_broker::{Broker, RedisConfig};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::component::{Background, Component, Context, Service};
use crate::health::CheckStatus;
use crate::server::{self, ServerOptions};
use crate::{
    Readiness, Secret, configure_ops, error::not_found, metrics, shutdown, telemetry, trace,
};

/// Longest graceful stop of the HTTP server, and longest wait for the background loops
/// after it.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The components one process serves, with their background loops (not running yet).
#[derive(Default)]
pub struct Composition {
    components: Vec<Arc<dyn Component>>,
    background: Background,
}

impl std::fmt::Debug for Composition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.components.iter().map(|component| component.name()))
            .finish()
    }
}

impl Composition {
    /// No components yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `component` and its background loops.
    pub fn with(mut self, component: Arc<dyn Component>, background: Background) -> Self {
        self.components.push(component);
        self.background = std::mem::take(&mut self.background).and(background);
        self
    }

    /// Builds the service `S` from `settings` and `context` and adds it; returns it (the
    /// embedded mode hands auth's verifier to the others).
    pub async fn build<S: Service>(
        &mut self,
        settings: &S::Settings,
        context: &Context,
    ) -> anyhow::Result<Arc<S>> {
        let (service, background) = S::build(settings, context).await?;
        let service = Arc::new(service);
        *self = std::mem::take(self).with(Arc::clone(&service) as Arc<dyn Component>, background);
        Ok(service)
    }

    /// The process's `/readyz` checks: a single component's own checks, or, with several,
    /// one check per component named after it (their own checks share names such as
    /// `database` and `redis`, and would hide one another), whose failure names the
    /// component's failed checks.
    pub fn readiness(&self) -> Readiness {
        match self.components.as_slice() {
            [one] => one.readiness(),
            several => several
                .iter()
                .fold(Readiness::new(), |readiness, component| {
                    readiness.merge(per_component(component.name(), component.readiness()))
                }),
        }
    }

    /// Installs the metrics recorder, binds `listen` and starts serving the per-process
    /// endpoints and every component's routes (each request in a server span when traces
    /// are exported) with `workers` worker threads (one per core when `None`), then starts
    /// the background loops. Requests are answered once [`Standalone::run_until_stopped`]
    /// is awaited.
    pub fn start(self, listen: &str, workers: Option<usize>) -> anyhow::Result<Standalone> {
        let metrics = metrics::install().context("installing the metrics recorder")?;
        let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
        let address = listener.local_addr()?;
        let readiness = self.readiness();
        let components: Arc<[Arc<dyn Component>]> = self.components.into();
        let app_components = Arc::clone(&components);
        let options = ServerOptions {
            workers,
            shutdown_timeout_secs: STOP_TIMEOUT.as_secs(),
        };
        let server = server::serve(listener, options, move || {
            let (readiness, metrics) = (readiness.clone(), metrics.clone());
            let components = Arc::clone(&app_components);
            App::new()
                .wrap(middleware::from_fn(metrics::http_metrics))
                .wrap(middleware::from_fn(trace::http_trace))
                .configure(move |cfg| configure_ops(cfg, readiness, metrics))
                .configure(|cfg| {
                    for component in components.iter() {
                        component.configure(cfg);
                    }
                    // Last: these match every path.
                    for component in components.iter() {
                        component.configure_fallback(cfg);
                    }
                })
                .default_service(web::to(not_found))
        })
        .with_context(|| format!("serving on {address}"))?;

        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let drain = CancellationToken::new();
        self.background.spawn(&tracker, &shutdown);
        tracker.spawn(stop_on(
            Arc::clone(&components),
            shutdown.clone(),
            server.handle(),
        ));
        tracker.spawn(drain_then_stop(
            Arc::clone(&components),
            drain.clone(),
            shutdown.clone(),
        ));
        Ok(Standalone {
            address,
            server,
            tracker,
            shutdown,
            drain,
        })
    }
}

/// The checks of one component as a single check named after it; the reason of a failure
/// names the component's failed checks.
fn per_component(name: &'static str, checks: Readiness) -> Readiness {
    Readiness::new().with_check(name, move || {
        let checks = checks.clone();
        async move {
            let report = checks.report().await;
            if report.is_ready() {
                return Ok(());
            }
            let failed: Vec<String> = report
                .checks
                .iter()
                .filter(|(_, status)| **status != CheckStatus::Ok)
                .map(|(check, status)| format!("{check}: {status:?}"))
                .collect();
            Err(failed.join(", "))
        }
    })
}

/// Once `shutdown` fires: every component's [`Component::before_stop`], then the server's
/// graceful stop.
async fn stop_on(
    components: Arc<[Arc<dyn Component>]>,
    shutdown: CancellationToken,
    server: actix_web::dev::ServerHandle,
) {
    shutdown.cancelled().await;
    join_all(components.iter().map(|component| component.before_stop())).await;
    server.stop(true).await;
}

/// Once `drain` fires: drains every component, then fires `shutdown` (unless it fired
/// first).
async fn drain_then_stop(
    components: Arc<[Arc<dyn Component>]>,
    drain: CancellationToken,
    shutdown: CancellationToken,
) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = drain.cancelled() => {
            let drains = join_all(components.iter().map(|component| component.drain()));
            tokio::select! {
                () = shutdown.cancelled() => {}
                _ = drains => shutdown.cancel(),
            }
        }
    }
}

/// A running process: its HTTP server, the tokens that stop it and the tracker its
/// background loops run on.
pub struct Standalone {
    address: SocketAddr,
    server: actix_server::Server,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    drain: CancellationToken,
}

impl std::fmt::Debug for Standalone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standalone")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Standalone {
    /// The bound address (useful with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The tracker the background loops run on; [`Self::run_until_stopped`] waits for them.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Cancelling it stops the process at once (as a second SIGTERM does).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Cancelling it drains the process, then stops it (as the first SIGTERM does).
    pub fn drain_token(&self) -> CancellationToken {
        self.drain.clone()
    }

    /// Serves until stopped: the first SIGTERM/SIGINT (or [`Self::drain_token`]) drains,
    /// a second one (or [`Self::shutdown_token`]) stops at once. Then lets in-flight
    /// requests finish, waits for the background loops (at most [`STOP_TIMEOUT`]) and
    /// exports the last spans.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (drain, stop) = (self.drain.clone(), self.shutdown.clone());
        let signals = tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => return,
                () = shutdown::wait_for_signal() => drain.cancel(),
            }
            tokio::select! {
                () = stop.cancelled() => {}
                () = shutdown::wait_for_signal() => stop.cancel(),
            }
        });
        let result = self.server.await;
        self.shutdown.cancel();
        signals.abort();
        self.tracker.close();
        if tokio::time::timeout(STOP_TIMEOUT, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("background loops did not stop in time");
        }
        telemetry::flush();
        Ok(result?)
    }
}

/// One service running as its own process: a [`Composition`] of `S` alone, bound to the
/// service's `HERALD_LISTEN`.
pub struct Application<S> {
    service: Arc<S>,
    process: Standalone,
}

impl<S> std::fmt::Debug for Application<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("process", &self.process)
            .finish_non_exhaustive()
    }
}

impl<S: Service> Application<S> {
    /// Connects the broker `settings` ask for, then [`Self::build_with`].
    pub async fn build(settings: S::Settings) -> anyhow::Result<Self> {
        let broker = S::broker(&settings)?;
        Self::build_with(settings, Context::new(broker)).await
    }

    /// Builds the service over `context`, binds its listener and starts its background
    /// loops; requests are served once [`Self::run_until_stopped`] is awaited.
    pub async fn build_with(settings: S::Settings, context: Context) -> anyhow::Result<Self> {
        let mut composition = Composition::new();
        let service = composition.build::<S>(&settings, &context).await?;
        let process = composition.start(S::listen(&settings), S::workers(&settings))?;
        Ok(Self { service, process })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// The service (tests reach its state through it).
    pub fn service(&self) -> &S {
        &self.service
    }

    /// Cancelling it stops the process at once.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.process.shutdown_token()
    }

    /// Cancelling it drains the process, then stops it.
    pub fn drain_token(&self) -> CancellationToken {
        self.process.drain_token()
    }

    /// See [`Standalone::run_until_stopped`].
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.process.run_until_stopped().await
    }
}

/// The `serve` command of the service binary `binary` (`herald-auth`): `S` alone as its
/// own process, until stopped ([`Standalone::run_until_stopped`]). Logs `<binary>
/// listening` with the bound port once bound.
pub async fn serve<S: Service>(binary: &str, settings: S::Settings) -> anyhow::Result<()> {
    let app = Application::<S>::build(settings).await?;
    tracing::info!(port = app.port(), "{binary} listening");
    app.run_until_stopped().await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures_util::future::BoxFuture;
    use serde_json::Value;
    use tokio::sync::oneshot;

    use super::*;

    /// Longest wait for anything a test expects.
    const WAIT: Duration = Duration::from_secs(10);

    /// A component with one route (`/<name>`), one readiness check (`database`, failing
    /// when `healthy` is false) and a record of its drain and stop.
    struct Fake {
        name: &'static str,
        healthy: bool,
        drained: Arc<AtomicBool>,
        stopped: Arc<AtomicBool>,
    }

    impl Fake {
        fn new(name: &'static str, healthy: bool) -> Arc<Self> {
            Arc::new(Self {
                name,
                healthy,
                drained: Arc::default(),
                stopped: Arc::default(),
            })
        }
    }

    impl Component for Fake {
        fn name(&self) -> &'static str {
            self.name
        }

        fn configure(&self, cfg: &mut web::ServiceConfig) {
            let name = self.name;
            cfg.route(
                &format!("/{name}"),
                web::get().to(move || async move { name }),
            );
        }

        fn configure_fallback(&self, cfg: &mut web::ServiceConfig) {
            cfg.route("/{any:.*}", web::get().to(|| async { "fallback" }));
        }

        fn readiness(&self) -> Readiness {
            let healthy = self.healthy;
            Readiness::new().with_check("database", move || async move {
                if healthy {
                    Ok(())
                } else {
                    Err("down".to_owned())
                }
            })
        }

        fn drain(&self) -> BoxFuture<'static, ()> {
            let drained = Arc::clone(&self.drained);
            Box::pin(async move { drained.store(true, Ordering::SeqCst) })
        }

        fn before_stop(&self) -> BoxFuture<'static, ()> {
            let stopped = Arc::clone(&self.stopped);
            Box::pin(async move { stopped.store(true, Ordering::SeqCst) })
        }
    }

    /// A background loop that runs until shutdown and then reports through `done`.
    fn reporting_loop(done: oneshot::Sender<()>) -> Background {
        Background::new(move |tracker, shutdown| {
            tracker.spawn(async move {
                shutdown.cancelled().await;
                let _ = done.send(());
            });
        })
    }

    async fn get(port: u16, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    #[tokio::test]
    async fn several_components_are_served_with_one_readiness_check_each() {
        let process = Composition::new()
            .with(Fake::new("auth", true), Background::none())
            .with(Fake::new("tasks_api", false), Background::none())
            .start("127.0.0.1:0", Some(1))
            .unwrap();
        let (port, shutdown) = (process.port(), process.shutdown_token());
        let running = tokio::spawn(process.run_until_stopped());
        for name in ["auth", "tasks_api"] {
            let (_, body) = get(port, &format!("/{name}")).await;
            assert_eq!(
                body, name,
                "each component's routes come before the fallbacks"
            );
        }
        assert_eq!(get(port, "/anything/else").await.1, "fallback");

        let (status, body) = get(port, "/readyz").await;
        assert_eq!(status, 503, "{body}");
        let report: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            report["checks"],
            serde_json::json!({"auth": "ok", "tasks_api": "failed"}),
            "one check per component, so two `database` checks do not hide each other"
        );

        shutdown.cancel();
        tokio::time::timeout(WAIT, running)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_single_component_keeps_its_own_check_names() {
        let process = Composition::new()
            .with(Fake::new("auth", true), Background::none())
            .start("127.0.0.1:0", Some(1))
            .unwrap();
        let (port, shutdown) = (process.port(), process.shutdown_token());
        let running = tokio::spawn(process.run_until_stopped());
        let (status, body) = get(port, "/readyz").await;
        assert_eq!(status, 200, "{body}");
        let report: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(report["checks"], serde_json::json!({"database": "ok"}));
        let (status, _) = get(port, "/healthz").await;
        assert_eq!(status, 200);
        shutdown.cancel();
        tokio::time::timeout(WAIT, running)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn stopping_ends_the_background_loops_after_each_components_stop() {
        let fake = Fake::new("notifier", true);
        let (done, finished) = oneshot::channel();
        let process = Composition::new()
            .with(
                Arc::clone(&fake) as Arc<dyn Component>,
                reporting_loop(done),
            )
            .start("127.0.0.1:0", Some(1))
            .unwrap();
        let shutdown = process.shutdown_token();
        let running = tokio::spawn(process.run_until_stopped());

        shutdown.cancel();
        tokio::time::timeout(WAIT, running)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        // Awaited before `run_until_stopped` returned: the loop has already reported.
        assert!(matches!(finished.await, Ok(())), "the loop ran to its end");
        assert!(fake.stopped.load(Ordering::SeqCst), "before_stop ran");
        assert!(
            !fake.drained.load(Ordering::SeqCst),
            "a stop is not a drain"
        );
    }

    #[tokio::test]
    async fn a_drain_drains_every_component_then_stops_the_process() {
        let (first, second) = (Fake::new("auth", true), Fake::new("gateway", true));
        let (done, finished) = oneshot::channel();
        let process = Composition::new()
            .with(Arc::clone(&first) as Arc<dyn Component>, Background::none())
            .with(
                Arc::clone(&second) as Arc<dyn Component>,
                reporting_loop(done),
            )
            .start("127.0.0.1:0", Some(1))
            .unwrap();
        let drain = process.drain_token();
        let running = tokio::spawn(process.run_until_stopped());

        drain.cancel();
        tokio::time::timeout(WAIT, running)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(matches!(finished.await, Ok(())));
        for fake in [&first, &second] {
            assert!(fake.drained.load(Ordering::SeqCst), "{} drained", fake.name);
            assert!(fake.stopped.load(Ordering::SeqCst), "{} stopped", fake.name);
        }
    }
}
