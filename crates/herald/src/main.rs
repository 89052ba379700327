//! `herald`: the embedded mode. Auth, tasks-api, notifier and gateway in one process on one
//! port, composed from each service's `configure` and `spawn_background`.

use std::net::TcpListener;

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Herald in one process (auth, tasks-api, notifier, gateway).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// `host:port` to bind (port 0 = any free port).
    #[arg(long, env = "HERALD_LISTEN", default_value = "0.0.0.0:8080")]
    listen: String,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().json().init();
    let cli = Cli::parse();
    let listener = TcpListener::bind(&cli.listen)?;
    tracing::info!(addr = %listener.local_addr()?, "herald listening");
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    herald_auth::spawn_background(&tracker, shutdown.clone());
    herald_tasks_api::spawn_background(&tracker, shutdown.clone());
    herald_notifier::spawn_background(&tracker, shutdown.clone());
    herald_gateway::spawn_background(&tracker, shutdown.clone());
    HttpServer::new(|| {
        App::new()
            .route("/healthz", web::get().to(HttpResponse::Ok))
            .configure(herald_auth::configure)
            .configure(herald_tasks_api::configure)
            .configure(herald_gateway::configure)
    })
    .listen(listener)?
    .run()
    .await?;
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}
