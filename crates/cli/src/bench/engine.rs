//! `tradeloom bench engine`: the figures of the engine issue, printed, never asserted
//! (workloads in [`tradeloom_runs::bench`]).
//!
//! * engine alone: synthetic 1-minute bars in memory, `sma_cross` trading, a sink that discards
//!   (bars/s and ns/bar; the median of three passes);
//! * the same with the live run counters of `/metrics` (`tradeloom_runs::live`: a counting sink
//!   and bars added per 4,096-bar chunk, as the runner does), and their overhead in percent.
//!
//! `tradeloom run` end to end (from CSV and Parquet, beside the peers) is `tradeloom bench run`.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use tradeloom_core::Bar;
use tradeloom_data::synth_bars;
use tradeloom_runs::bench::{BASE_BARS, FAST, SLOW, engine_row, engine_table, synth_spec};

/// The flags of `tradeloom bench engine`.
#[derive(clap::Args)]
pub struct Args {
    /// Bars per measurement (repeat the flag for several sizes).
    #[arg(long = "bars", default_values_t = [1_000_000u64])]
    pub bars: Vec<u64>,
    /// Accepted for compatibility: this benchmark measures the engine alone (`tradeloom run` end
    /// to end is `tradeloom bench run`).
    #[arg(long)]
    pub engine_only: bool,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom bench engine`.
pub fn run(args: &Args) -> Result<ExitCode> {
    let (sizes, json) = (&args.bars, args.json);
    let base_n = sizes.iter().copied().max().unwrap_or(0).min(BASE_BARS);
    eprintln!("generating {base_n} synthetic 1-minute bars in memory…");
    let base: Vec<Bar> = synth_bars(&synth_spec(base_n)).collect();
    let mut results = Vec::new();
    for &n in sizes {
        eprintln!(
            "engine alone, {n} bars (3 passes without and 3 with live counters, alternating)…"
        );
        results.push(engine_row(&base, n)?);
    }
    if json {
        println!(
            "{}",
            json!({"benchmark": "engine", "strategy": format!("sma_cross fast {FAST} slow {SLOW}"), "results": results})
        );
    } else {
        print!("{}", engine_table(&results));
    }
    Ok(ExitCode::SUCCESS)
}
