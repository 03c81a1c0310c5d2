//! `tradeloom bench …`: benchmarks that print figures. Each file is one benchmark's flags and
//! output; the workloads are in the library crates they measure (`tradeloom_runs::bench`,
//! `tradeloom_server::bench`).

mod api;
mod engine;
mod killswitch;
mod live;
mod procs;
mod run;
mod sandbox;
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
    /// The live layer: scan→order latency p50/p99/p999 through an in-process producer, the
    /// bridge and a paper run of the signal strategy, CPU per scan; bars/s of a paper run at
    /// `speed: max` beside the same backtest.
    Live(live::Args),
    /// Engine throughput on synthetic 1-minute bars traded by sma_cross (the engine alone, and
    /// with the live run counters).
    Engine(engine::Args),
    /// Bars/s of the Python SMA cross run in the sandbox (batched, as a backtest runs it) beside
    /// the built-in Rust sma_cross on the same synthetic bars; checks both made the same fills.
    Sandbox(sandbox::Args),
    /// `tradeloom run` end to end as a whole process (wall, CPU, peak RSS) from CSV and from
    /// Parquet, and backtesting.py, NautilusTrader and vectorbt on the same bars and strategy.
    Run(run::Args),
    /// Model-days per second and CPU-ms per model-day of simulation jobs with mock-llm (SQLite,
    /// and PostgreSQL when a URL is given).
    Simulate(simulate::Args),
    /// Reads of the REST API beside FastAPI: `GET /results?detail=minimal` and
    /// `GET /simulate/status/{id}` of a finished job, req/s, p50/p99 latency and server CPU time
    /// per request of `tradeloom serve` and of FastAPI + uvicorn on the same SQLite file.
    Api(api::Args),
    /// Diamond (4-node) workflow runs submitted in a burst over the HTTP API of a `serve` on
    /// loopback: runs/s, server CPU per run, submit → finished p50/p99 and alone; Temporal's dev
    /// server beside it when installed; and the embedded runtime without HTTP.
    Workflows(workflows::Args),
}

/// Runs the benchmark `command`.
pub fn run(command: BenchCommand) -> Result<ExitCode> {
    match command {
        BenchCommand::Killswitch(args) => killswitch::run(&args),
        BenchCommand::Engine(args) => engine::run(&args),
        BenchCommand::Live(args) => live::run(&args),
        BenchCommand::Run(args) => run::run(&args),
        BenchCommand::Sandbox(args) => sandbox::run(&args),
        BenchCommand::Simulate(args) => simulate::run(&args),
        BenchCommand::Workflows(args) => workflows::run(&args),
        BenchCommand::Api(args) => api::run(&args),
    }
}
