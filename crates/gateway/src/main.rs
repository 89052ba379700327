//! `herald-gateway`: runs the WebSocket edge as its own process, or publishes one message
//! from the command line.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use herald_broker::{Broker, PublishRequest, RedisConfig};
use herald_common::channel::ChannelName;
use herald_gateway::policy::ChannelPolicy;
use herald_gateway::{Gateway, Settings};
use herald_service::{ConfigArgs, standalone};
use serde_json::value::RawValue;

/// The WebSocket edge of Herald (default port 8080): the Centrifugo client protocol v2
/// (JSON) at /connection/websocket, simple text endpoints at /ws/chat/{room} and
/// /ws/notifications/{channel}, /docs and the web client.
///
/// Settings come from HERALD_* environment variables over an optional TOML file over
/// defaults; docs/configuration.md lists them. Key ones: HERALD_LISTEN, HERALD_REDIS_URL,
/// HERALD_REDIS_PREFIX, HERALD_PING_INTERVAL, HERALD_PONG_TIMEOUT, HERALD_CONNECT_TIMEOUT,
/// HERALD_ALLOWED_ORIGINS, HERALD_WEB_DIR, HERALD_API_KEY (server API at /api/*; unset:
/// disabled), HERALD_DRAIN_WINDOW (on SIGTERM, clients are closed with 3001 over this many
/// seconds; a second signal stops at once), HERALD_LIMITS__*, HERALD_CHANNELS__*.
#[derive(Debug, Parser)]
#[command(name = "herald-gateway", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP and WebSockets (the default).
    Serve,
    /// Publish one message as the server (any channel of the channel table, with its
    /// history), print its offset and epoch, and exit.
    Publish {
        /// The channel, such as `tasks`, `chat:lobby` or `notifications#<user id>`.
        channel: String,
        /// The payload: one JSON value.
        data: String,
    },
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    herald_service::telemetry::init("herald-gateway");
    let settings = Settings::load(cli.config.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => standalone::serve::<Gateway>("herald-gateway", settings).await,
        Command::Publish { channel, data } => publish(&settings, channel, data).await,
    }
}

async fn publish(settings: &Settings, channel: String, data: String) -> anyhow::Result<()> {
    let channel = ChannelName::parse(channel).context("channel name")?;
    let options = ChannelPolicy::new(&settings.channels)
        .options(&channel)
        .map_err(|code| anyhow::anyhow!("{channel}: {code}"))?;
    let data = RawValue::from_string(data).context("the data must be one JSON value")?;
    let mut redis = RedisConfig::new(settings.redis_url.expose().clone())
        .with_prefix(settings.redis_prefix.clone());
    redis.connect_timeout = Duration::from_secs(5);
    let broker = Broker::redis(&redis)?;
    let result = broker
        .publish(
            &channel,
            PublishRequest::new(data).with_history(options.history),
        )
        .await
        .context("publishing")?;
    println!(
        "{}",
        serde_json::json!({"offset": result.offset, "epoch": result.epoch})
    );
    Ok(())
}
