//! `tradeloom bench workflows`: how fast the embedded runtime drives diamond workflow runs
//! (the workload is [`tradeloom_server::bench::diamond_runs`]).

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use tradeloom_server::bench::diamond_runs;

/// The flags of `tradeloom bench workflows`.
#[derive(clap::Args)]
pub struct Args {
    /// Runs per measurement (repeat the flag for several sizes).
    #[arg(long = "runs", default_values_t = [1_000usize, 10_000])]
    pub runs: Vec<usize>,
    /// Runs submitted at once (the rest wait their turn).
    #[arg(long, default_value_t = 256)]
    pub in_flight: usize,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom bench workflows`.
pub fn run(args: &Args) -> Result<ExitCode> {
    let (sizes, in_flight, json_out) = (&args.runs, args.in_flight, args.json);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let mut all = Vec::new();
    for &runs in sizes {
        if !json_out {
            eprintln!("measuring {runs} diamond runs ({in_flight} in flight)…");
        }
        let dir = tempfile::tempdir()?;
        let f = rt.block_on(diamond_runs(dir.path(), runs, in_flight))?;
        if !json_out {
            println!(
                "diamond x{:>6}: {:>7.1} runs/s ({:.2} s), {:>6.0} µs per node, routing p50 {} µs p99 {} µs over {} completion signals",
                f.runs,
                f.rate(),
                f.wall.as_secs_f64(),
                f.per_node_us,
                f.route_p50_us,
                f.route_p99_us,
                f.signals
            );
        }
        all.push(f);
    }
    if json_out {
        let out: Vec<_> = all
            .iter()
            .map(|f| {
                json!({
                    "runs": f.runs, "seconds": f.wall.as_secs_f64(),
                    "runs_per_s": f.rate(),
                    "per_node_us": f.per_node_us,
                    "routing_p50_us": f.route_p50_us, "routing_p99_us": f.route_p99_us,
                    "signals": f.signals,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(out));
    }
    Ok(ExitCode::SUCCESS)
}
