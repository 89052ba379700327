//! `herald-bench`: the load generator and measurement harness (fan-out throughput and
//! latency, `POST /tasks` to client frame latency, idle connection memory). The scenarios
//! arrive with the gateway-at-scale work; today it only documents itself.

use clap::Parser;

/// Load generator and latency/throughput/memory harness for Herald.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    println!("herald-bench: no scenarios yet; see docs/benchmarks.md");
    Ok(())
}
