//! `tradeloom bench sandbox`: bars/s of the Python SMA cross in the sandbox beside the built-in
//! Rust `sma_cross`, on synthetic 1-minute bars in memory (workload in
//! [`tradeloom_runs::bench::sandbox_row`]); printed, never asserted. Exit 1 if the two made
//! different orders or fills.

use std::process::ExitCode;

use anyhow::Result;
use tradeloom_core::Bar;
use tradeloom_data::synth_bars;
use tradeloom_runs::bench::{FAST, SLOW, sandbox_row, synth_spec};

/// The flags of `tradeloom bench sandbox`.
#[derive(clap::Args)]
pub struct Args {
    /// Bars per measurement.
    #[arg(long, default_value_t = 1_000_000u64)]
    pub bars: u64,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let bars: Vec<Bar> = synth_bars(&synth_spec(args.bars)).collect();
    eprintln!(
        "sma_cross {FAST}/{SLOW} over {} bars: built-in, then the sandboxed script…",
        bars.len()
    );
    let row = sandbox_row(&bars, FAST, SLOW)?;
    if args.json {
        println!("{row}");
        return Ok(ExitCode::SUCCESS);
    }
    let f = |k: &str| row[k].as_f64().unwrap_or(0.0);
    println!(
        "sandbox: sma_cross {FAST}/{SLOW}, {} bars, {} orders, {} fills (the same in both)",
        row["bars"], row["orders"], row["fills"]
    );
    println!(
        "  built-in Rust strategy    {:>12.0} bars/s  ({:.3} s)",
        f("builtin_bars_per_second"),
        f("builtin_seconds")
    );
    println!(
        "  sandboxed Python script   {:>12.0} bars/s  ({:.3} s, {:.2} µs/bar)",
        f("sandbox_bars_per_second"),
        f("sandbox_seconds"),
        f("sandbox_us_per_bar")
    );
    Ok(ExitCode::SUCCESS)
}
