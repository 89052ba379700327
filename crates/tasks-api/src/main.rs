//! `herald-tasks-api`: runs the tasks service as its own process, or applies its migrations.

use clap::{Parser, Subcommand};
use herald_service::{ConfigArgs, config, standalone, telemetry};
use herald_tasks_api::{Settings, TasksApi};

/// Herald's task service: REST for tasks with a transactional outbox (default port 8081).
///
/// Settings come from HERALD_* environment variables over an optional TOML file over
/// defaults; see the `settings` module documentation for the full table. Key ones:
/// HERALD_LISTEN, HERALD_DATABASE_URL, HERALD_REDIS_URL, HERALD_REDIS_PREFIX,
/// HERALD_JWT__ISSUER, HERALD_JWT__AUDIENCE, HERALD_BODY_LIMIT, HERALD_AUTO_MIGRATE,
/// HERALD_OUTBOX__FALLBACK_INTERVAL.
#[derive(Debug, Parser)]
#[command(name = "herald-tasks-api", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP and relay the outbox (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init("herald-tasks-api");
    let settings: Settings = config::load(cli.config.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => standalone::serve::<TasksApi>("herald-tasks-api", settings).await,
        Command::Migrate => {
            herald_tasks_api::migrate(&settings).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
    }
}
