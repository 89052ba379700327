//! `idle`: opens many connections (connect, and subscribe to one channel), lets them sit
//! idle, and reports the gateway's resident memory per connection (`VmRSS` before and
//! after, from `/proc/<pid>/status`). The clients answer server pings while they wait.

use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenArgs;
use crate::procfs;
use crate::ws::{PING, Target, Ws};

/// Options of `herald-bench idle`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The gateway's client protocol endpoint.
    #[arg(long, default_value = "ws://127.0.0.1:8080/connection/websocket")]
    url: String,
    #[command(flatten)]
    auth: TokenArgs,
    /// Connections to open (this process needs one file descriptor each).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Channel each connection subscribes to; empty for connect only.
    #[arg(long, default_value = "tasks")]
    channel: String,
    /// The gateway's process id (required: its memory is the measurement).
    #[arg(long)]
    gateway_pid: u32,
    /// Seconds to wait after the last connection before reading the memory.
    #[arg(long, default_value_t = 5.0)]
    settle: f64,
    /// Seconds to keep the connections open after the reading (answering pings).
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
    /// Handshakes in flight while connecting.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Offer permessage-deflate as Chromium does (`permessage-deflate;
    /// client_max_window_bits`). These clients cannot inflate: run the gateway with a
    /// compression minimum size above its replies (`HERALD_WEBSOCKET__COMPRESSION_MIN_SIZE`).
    #[arg(long)]
    offer_deflate: bool,
}

/// Runs the scenario and prints the report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let http = reqwest::Client::new();
    let mut target = Target::resolve(&args.url).await?;
    if args.offer_deflate {
        target = target.offering("permessage-deflate; client_max_window_bits")?;
    }
    let token = args.auth.token(&http).await?;
    let channel = (!args.channel.is_empty()).then_some(args.channel.as_str());
    let before = procfs::rss_kib(args.gateway_pid)?;
    let began = Instant::now();
    eprintln!("opening {} connections …", args.connections);
    let clients = target
        .clients(args.connections, args.connect_concurrency, &token, channel)
        .await?;
    let opened = began.elapsed();
    let stop = CancellationToken::new();
    let mut tasks = Vec::with_capacity(clients.len());
    for ws in clients {
        tasks.push(tokio::spawn(idle(ws, stop.clone())));
    }
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let after = procfs::rss_kib(args.gateway_pid)?;
    let load = procfs::load_average();
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    stop.cancel();
    let mut dropped = 0usize;
    for task in tasks {
        if !task.await.unwrap_or(false) {
            dropped += 1;
        }
    }
    let count = args.connections as f64;
    println!(
        "idle: {} connections ({}), opened in {:.1} s, settled {} s",
        args.connections,
        channel.map_or_else(
            || "connect only".to_owned(),
            |c| format!("subscribed to {c}")
        ),
        opened.as_secs_f64(),
        args.settle
    );
    println!("  load average (1 min): {load}");
    println!(
        "  gateway VmRSS: {before} KiB before, {after} KiB after = {:.2} KiB per connection",
        after.saturating_sub(before) as f64 / count
    );
    println!("  connections closed by the server while idle: {dropped}");
    Ok(())
}

/// Waits for `stop`, answering pings; `false` when the server closed the connection.
async fn idle(mut ws: Ws, stop: CancellationToken) -> bool {
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return true,
            message = ws.next() => message,
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                if text.as_str().split('\n').any(|line| line == PING)
                    && ws.send(Message::text(PING)).await.is_err()
                {
                    return false;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return false,
        }
    }
}
