//! `herald-notifier`: runs the notifier as its own process.

use clap::Parser;
use herald_notifier::{Notifier, Settings};
use herald_service::{ConfigArgs, config, standalone, telemetry};

/// Herald's notifier: turns task events into notifications (health and metrics on port 8083).
///
/// Settings come from HERALD_* environment variables over an optional TOML file over
/// defaults; see the `settings` module documentation for the full table. Key ones:
/// HERALD_LISTEN, HERALD_REDIS_URL, HERALD_REDIS_PREFIX, HERALD_NOTIFIER__GROUP,
/// HERALD_NOTIFIER__CONSUMER, HERALD_NOTIFIER__CLAIM_MIN_IDLE,
/// HERALD_NOTIFIER__IDEMPOTENCY_WINDOW, HERALD_CHANNELS__TASKS__HISTORY_SIZE.
#[derive(Debug, Parser)]
#[command(name = "herald-notifier", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init("herald-notifier");
    let settings: Settings = config::load(cli.config.config.as_deref())?;
    standalone::serve::<Notifier>("herald-notifier", settings).await
}
