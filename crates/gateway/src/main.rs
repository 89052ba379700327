//! `herald-gateway`: runs the WebSocket edge as its own process.

use clap::Parser;
use herald_gateway::{Application, Settings};
use herald_service::ConfigArgs;

/// The WebSocket edge of Herald: the Centrifugo client protocol v2 (JSON) at
/// /connection/websocket, simple text endpoints at /ws/chat/{room} and
/// /ws/notifications/{channel}, /docs and the web client. Settings come from HERALD_*
/// variables (see docs/protocol.md and the README's configuration table).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    herald_service::telemetry::init("herald-gateway");
    let settings = Settings::load(cli.config.config.as_deref())?;
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "herald-gateway listening");
    let shutdown = app.shutdown_token();
    actix_web::rt::spawn(async move {
        herald_service::shutdown::wait_for_signal().await;
        shutdown.cancel();
    });
    app.run_until_stopped().await
}
