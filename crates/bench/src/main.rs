//! `herald-bench`: the load generator and measurement harness of docs/benchmarks.md.
//!
//! Scenarios, one subcommand each:
//! - [`fanout`]: N subscribers of one channel, publications at a fixed rate or in a burst;
//!   delivered/s, latency percentiles, lost / duplicated / reordered counts and the
//!   gateway's CPU time per delivery (read from `/proc`), and with `--redis-pid` the
//!   server CPU (gateway + redis-server) per publication (`--publishers 1 --subscribers 1
//!   --burst N`: one connection publishing as fast as it can);
//! - [`tasks`]: `POST /tasks` at a fixed rate, one subscriber of `tasks`; POST start to
//!   client frame latency;
//! - [`idle`]: many connected, idle clients; the gateway's RSS per connection.
//!
//! Layout: [`ws`] opens connections and speaks the little of the client protocol the
//! scenarios need (connect, subscribe, publish, pong); [`procfs`] reads another process's
//! CPU time and memory; [`auth`] gets a token. Every loop is bounded by a count and a time,
//! and only loopback addresses are accepted as targets.

mod auth;
mod fanout;
mod idle;
mod procfs;
mod report;
mod tasks;
mod ws;

use clap::{Parser, Subcommand};

/// Load generator and latency/throughput/memory harness for Herald (and for anything that
/// speaks the same small subset of the client protocol, such as the Node baseline in
/// crates/bench/node-baseline).
#[derive(Debug, Parser)]
#[command(name = "herald-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// N subscribers of one channel; publications at a fixed rate (`--rate`) or as one burst
    /// (`--burst`).
    Fanout(fanout::Args),
    /// POST /tasks at a fixed rate; one `tasks` subscriber measures POST start → frame.
    E2eTasks(tasks::Args),
    /// Many idle connections; the gateway's RSS per connection.
    Idle(idle::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Fanout(args) => fanout::run(args).await,
            Command::E2eTasks(args) => tasks::run(args).await,
            Command::Idle(args) => idle::run(args).await,
        }
    })
}
