//! `herald-tasks-api`: runs the service as its own process.

use clap::Parser;
use herald_tasks_api::{Application, DEFAULT_LISTEN, Settings};

/// REST for tasks on Postgres (or SQLite in embedded mode) with a transactional outbox relayed to the events stream.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// `host:port` to bind (port 0 = any free port).
    #[arg(long, env = "HERALD_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: String,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().json().init();
    let cli = Cli::parse();
    let app = Application::build(Settings { listen: cli.listen }).await?;
    tracing::info!(port = app.port(), "herald-tasks-api listening");
    app.run_until_stopped().await
}
