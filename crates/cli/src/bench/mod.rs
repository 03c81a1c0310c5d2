//! `tradeloom bench …`: benchmarks that print figures. Each file is one benchmark's flags and
//! output; the workloads are in the library crates they measure (`tradeloom_runs::bench`,
//! `tradeloom_server::bench`).

mod engine;
mod killswitch;
mod simulate;
mod workflows;

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Kill switch figures: engine bars/s without and with the kill switch gate, and the time
    /// from `engage` returning back to the last accepted order (exit 1 if any order was
    /// accepted after it returned).
    Killswitch(killswitch::Args),
    /// Engine throughput, and end-to-end `tradeloom run` time and peak memory from CSV and
    /// Parquet, on synthetic 1-minute bars traded by sma_cross.
    Engine(engine::Args),
    /// Model-days per second and CPU-ms per model-day of simulation jobs with mock-llm (SQLite,
    /// and PostgreSQL when a URL is given).
    Simulate(simulate::Args),
    /// Diamond (4-node) workflow runs per second on the embedded runtime (SQLite, in-process
    /// queue), per-node scheduling overhead, and coordinator routing latency p50/p99.
    Workflows(workflows::Args),
}

/// Runs the benchmark `command`.
pub fn run(command: BenchCommand) -> Result<ExitCode> {
    match command {
        BenchCommand::Killswitch(args) => killswitch::run(&args),
        BenchCommand::Engine(args) => engine::run(&args),
        BenchCommand::Simulate(args) => simulate::run(&args),
        BenchCommand::Workflows(args) => workflows::run(&args),
    }
}
