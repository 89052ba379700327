//! `herald-notifier`: runs the service as its own process.

use clap::Parser;
use herald_notifier::{Application, DEFAULT_LISTEN, Settings};

/// Consumes domain events from the events stream through a consumer group and publishes notifications.
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
    tracing::info!(port = app.port(), "herald-notifier listening");
    app.run_until_stopped().await
}
