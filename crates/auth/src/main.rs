//! `herald-auth`: runs the auth service as its own process, or applies its migrations.

use clap::{Parser, Subcommand};
use herald_auth::{AuthState, Settings};
use herald_service::{ConfigArgs, config, standalone, telemetry};

/// Herald's accounts and tokens service (default port 8082).
///
/// Settings come from HERALD_* environment variables over an optional TOML file over
/// defaults; see the `settings` module documentation for the full table. Key ones:
/// HERALD_LISTEN, HERALD_DATABASE_URL, HERALD_REDIS_URL, HERALD_REDIS_PREFIX,
/// HERALD_JWT_PRIVATE_KEY_FILE, HERALD_JWT__ISSUER, HERALD_JWT__AUDIENCE,
/// HERALD_TRUSTED_PROXIES, HERALD_ENVIRONMENT.
#[derive(Debug, Parser)]
#[command(name = "herald-auth", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Print a new Ed25519 signing key (PKCS#8 PEM) for HERALD_JWT_PRIVATE_KEY_FILE.
    GenerateKey,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init("herald-auth");
    let settings: Settings = config::load(cli.config.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => standalone::serve::<AuthState>("herald-auth", settings).await,
        Command::Migrate => {
            herald_auth::migrate(&settings).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::GenerateKey => {
            print!("{}", herald_auth::keys::SigningKey::generate_pem());
            Ok(())
        }
    }
}
