//! `tradeloom bench engine`: the figures of the engine issue, printed, never asserted
//! (workloads in [`tradeloom_runs::bench`]).
//!
//! * engine alone: synthetic 1-minute bars in memory, `sma_cross` trading, a sink that discards
//!   (bars/s, ns/bar and CPU ns/bar; the median of five passes);
//! * the same with every check of a run on: the data dir's kill switch as the gate and the live
//!   run counters of `/metrics` (`tradeloom_runs::live`: a counting sink and bars added per
//!   4,096-bar chunk, as the runner does), and their overhead in percent and per order;
//! * warm process: the engine with every check on over 200k and 1M bars beside vectorbt's
//!   `Portfolio.from_signals` timed warm (numba compiled first) on the same bars
//!   (`bench/peers/vectorbt_warm.py`), and the ratio; "not installed (…)" without the peers' venv;
//!
//! `tradeloom run` end to end (from CSV and Parquet, beside the peers) is `tradeloom bench run`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use tradeloom_core::Bar;
use tradeloom_data::{synth_bars, write_synth};
use tradeloom_runs::bench::{
    BASE_BARS, FAST, SLOW, WARM_SIZES, engine_row, engine_table, synth_spec, vectorbt_warm,
    warm_row, warm_table,
};

/// The flags of `tradeloom bench engine`.
#[derive(clap::Args)]
pub struct Args {
    /// Bars per measurement (repeat the flag for several sizes).
    #[arg(long = "bars", default_values_t = [1_000_000u64])]
    pub bars: Vec<u64>,
    /// Skip the warm-process comparison with vectorbt.
    #[arg(long)]
    pub no_peer: bool,
    /// Timed warm calls of vectorbt per size (the median is printed).
    #[arg(long, default_value_t = 5)]
    pub peer_repeat: usize,
    /// Where to write the synthetic files (default: a temporary folder).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

/// The engine with every check on over [`WARM_SIZES`] bars, and vectorbt's warm compute over
/// the same bars written to CSV in `work`.
fn warm_comparison(work: &Path, gate_dir: &Path, repeat: usize) -> Result<Vec<serde_json::Value>> {
    let mut engine_rows = Vec::new();
    let mut csvs = Vec::new();
    for n in WARM_SIZES {
        let bars: Vec<Bar> = synth_bars(&synth_spec(n)).collect();
        eprintln!("warm process: engine with every check on, {n} bars…");
        engine_rows.push(engine_row(&bars, n, gate_dir)?);
        let csv = work.join(format!("syn_{n}.csv"));
        if !csv.is_file() {
            eprintln!("writing {}…", csv.display());
            write_synth(&synth_spec(n), &csv)?;
        }
        csvs.push(csv);
    }
    eprintln!("warm process: vectorbt (numba compiles first, then {repeat} timed calls per size)…");
    let peer = vectorbt_warm(work, &csvs, repeat);
    Ok(engine_rows
        .iter()
        .enumerate()
        .map(|(i, row)| match &peer {
            Ok(rows) => warm_row(row, Ok(&rows[i])),
            Err(why) => warm_row(row, Err(why)),
        })
        .collect())
}

/// `tradeloom bench engine`.
pub fn run(args: &Args) -> Result<ExitCode> {
    let (sizes, json) = (&args.bars, args.json);
    let work_dir = args.work_dir.as_deref();
    let temp;
    let work = match work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.to_path_buf()
        }
        None => {
            temp = std::env::temp_dir().join(format!("tradeloom-bench-{}", std::process::id()));
            std::fs::create_dir_all(&temp)?;
            temp
        }
    };
    let base_n = sizes.iter().copied().max().unwrap_or(0).min(BASE_BARS);
    eprintln!("generating {base_n} synthetic 1-minute bars in memory…");
    let base: Vec<Bar> = synth_bars(&synth_spec(base_n)).collect();
    let gate_dir = work.join("gate-data");
    let mut results = Vec::new();
    for &n in sizes {
        eprintln!(
            "engine, {n} bars (5 passes alone and 5 with the kill switch gate and live counters, alternating)…"
        );
        results.push(engine_row(&base, n, &gate_dir)?);
    }
    let warm = if args.no_peer {
        Vec::new()
    } else {
        warm_comparison(&work, &gate_dir, args.peer_repeat)?
    };
    if json {
        println!(
            "{}",
            json!({"benchmark": "engine", "strategy": format!("sma_cross fast {FAST} slow {SLOW}"), "results": results, "warm_process": warm})
        );
    } else {
        print!("{}", engine_table(&results));
        if !warm.is_empty() {
            println!();
            print!("{}", warm_table(&warm));
        }
    }
    if work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(ExitCode::SUCCESS)
}
