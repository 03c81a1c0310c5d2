//! `tradeloom bench live`: the figures of the live layer, printed, never asserted (workloads in
//! [`tradeloom_live::trader::bench`]).
//!
//! * scan→order latency: an in-process producer writes `--scans` scan files (temp + rename,
//!   noting the instant before the rename) into a directory the bridge watches; a paper run of
//!   the signal strategy trades each; p50/p99/p999 from the rename to the order accepted, and
//!   CPU time of the process per scan;
//! * bars/s of a paper run at `speed: max` (replay feed) beside the same backtest
//!   (`tradeloom_runs::execute`), and their ratio.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use serde_json::json;
use tradeloom_live::trader::bench::{paper_vs_backtest, scan_latency};

/// The flags of `tradeloom bench live`.
#[derive(clap::Args)]
pub struct Args {
    /// Scans written for the latency figures.
    #[arg(long, default_value_t = 10_000)]
    pub scans: u64,
    /// Bars of the paper-vs-backtest throughput comparison.
    #[arg(long, default_value_t = 200_000)]
    pub bars: u64,
    /// Passes of the throughput comparison (the best of each is printed).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Where to write scans, data and run folders (default: a temporary folder).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Run one part only: `latency` (scan→order) or `throughput` (paper vs backtest).
    #[arg(long, value_enum)]
    pub only: Option<Part>,
    #[arg(long)]
    pub json: bool,
}

/// The two parts of `bench live`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    Latency,
    Throughput,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let temp = tempfile::tempdir()?;
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&work)?;
    let wants = |part: Part| args.only.is_none_or(|only| only == part);
    let latency = if wants(Part::Latency) {
        eprintln!("scan→order latency over {} scans…", args.scans);
        Some(scan_latency(&work.join("latency"), args.scans).map_err(|e| anyhow!(e))?)
    } else {
        None
    };
    let throughput = if wants(Part::Throughput) {
        eprintln!("paper at speed: max vs backtest over {} bars…", args.bars);
        Some(
            paper_vs_backtest(&work.join("throughput"), args.bars, args.repeat)
                .map_err(|e| anyhow!(e))?,
        )
    } else {
        None
    };
    if args.json {
        println!("{}", json!({"latency": latency, "throughput": throughput}));
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(latency) = latency {
        println!(
            "scan → order latency, in-process ({} scans, {} orders)",
            latency.scans, latency.orders
        );
        println!(
            "  from the rename     p50 {:>8.1} µs   p99 {:>8.1} µs   p999 {:>8.1} µs   max {:>9.1} µs",
            latency.p50_us, latency.p99_us, latency.p999_us, latency.max_us
        );
        println!(
            "  from the bridge     p50 {:>8.1} µs   p99 {:>8.1} µs   (tradeloom_scan_to_order_seconds)",
            latency.observed_p50_us, latency.observed_p99_us
        );
        println!(
            "  CPU per scan        {:>8.1} µs (producer, bridge and trader)",
            latency.cpu_us_per_scan
        );
    }
    if let Some(throughput) = throughput {
        println!(
            "paper run at speed: max vs backtest ({} bars, sma_cross)",
            throughput.bars
        );
        println!(
            "  backtest            {:>12.0} bars/s",
            throughput.backtest_bars_per_s
        );
        println!(
            "  paper (replay max)  {:>12.0} bars/s",
            throughput.paper_bars_per_s
        );
        println!("  ratio               {:>12.2}", throughput.ratio);
    }
    Ok(ExitCode::SUCCESS)
}
