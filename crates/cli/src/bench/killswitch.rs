//! `tradeloom bench killswitch`: the figures of the kill switch, printed, never asserted —
//! except the one that is a guarantee: no order let through by a check that started after
//! `engage` returned (exit 1 if any was). Workloads in [`tradeloom_runs::bench`].
//!
//! * overhead: engine bars/s over synthetic 1-minute bars traded by `sma_cross` 20/50, without
//!   a gate and with the data dir's kill switch as the gate (every bar and before each order,
//!   one atomic load of the shared generation counter; the state files read when it moved); the
//!   median of several passes each;
//! * engage → last accepted order: a long backtest on one thread (`sma_cross` 2/3, an order
//!   every few bars), `KillSwitch::engage` on another at a random point; the time between the
//!   last accepted order and `engage` returning; the orders let through by a check that began
//!   after it returned (must be none) and those decided before it returned but reported
//!   accepted after (in flight).

use std::process::ExitCode;

use anyhow::Result;
use tradeloom_runs::bench::kill_switch_bench;

/// The flags of `tradeloom bench killswitch`.
#[derive(clap::Args)]
pub struct Args {
    /// Bars per throughput pass.
    #[arg(long, default_value_t = 1_000_000)]
    pub bars: u64,
    /// Passes and engage races (medians are printed).
    #[arg(long, default_value_t = 5)]
    pub repetitions: usize,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom bench killswitch`.
pub fn run(args: &Args) -> Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7);
    let bench = kill_switch_bench(args.bars, args.repetitions, dir.path(), seed)?;
    if args.json {
        println!("{}", bench.json());
    } else {
        print!("{}", bench.text());
    }
    if bench.accepted_after > 0 {
        eprintln!(
            "error: {} orders were accepted after `engage` returned",
            bench.accepted_after
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
