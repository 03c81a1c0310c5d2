//! `tradeloom bench run`: `tradeloom run` end to end as a child process, from CSV and from
//! Parquet, and the peers (backtesting.py, NautilusTrader, vectorbt) on the same CSV with the
//! same strategy, each timed as a whole process (workloads in
//! [`tradeloom_runs::bench::run`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use tradeloom_data::write_synth;
use tradeloom_runs::bench::peer::peer_python;
use tradeloom_runs::bench::run::{
    PEER_MAX_BARS, RUN_PEERS, RunRow, run_table, time_peer, time_tradeloom_run,
};
use tradeloom_runs::bench::{FAST, SLOW, synth_spec, write_bench_spec};

/// The flags of `tradeloom bench run`.
#[derive(clap::Args)]
pub struct Args {
    /// Bars per measurement (repeat the flag for several sizes).
    #[arg(long = "bars", default_values_t = [200_000u64, 1_000_000, 10_000_000])]
    pub bars: Vec<u64>,
    /// Run the peers (backtesting.py, NautilusTrader, vectorbt; one pass each) on every size up
    /// to 200,000 bars (the default).
    #[arg(long, overrides_with = "no_peers")]
    pub peers: bool,
    /// Do not run the peers.
    #[arg(long, overrides_with = "peers")]
    pub no_peers: bool,
    /// Passes of `tradeloom run` per size and source (wall and CPU: the median).
    #[arg(long, default_value_t = 3)]
    pub passes: usize,
    /// Where to write the synthetic files and the run folders (default: a temporary folder,
    /// removed at the end; a given folder keeps the bar files for the next time).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom bench run`.
pub fn run(args: &Args) -> Result<ExitCode> {
    let temp;
    let work = match &args.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("tradeloom-bench-run-")
                .tempdir()
                .context("creating a scratch folder")?;
            temp.path().to_path_buf()
        }
    };
    let scratch = work.join("scratch");
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let exe = std::env::current_exe().context("locating the tradeloom binary")?;
    let python = peer_python();
    let peers = !args.no_peers;
    let mut rows = Vec::new();
    for &n in &args.bars {
        let mut files = Vec::new();
        for ext in ["csv", "parquet"] {
            let data = work.join(format!("syn_{n}.{ext}"));
            if !data.is_file() {
                eprintln!("writing {}…", data.display());
                write_synth(&synth_spec(n), &data)?;
            }
            let spec = write_bench_spec(&work, &data, &format!("{ext}_{n}"))?;
            eprintln!(
                "tradeloom run from {ext}, {n} bars ({} passes)…",
                args.passes
            );
            let timing =
                time_tradeloom_run(&exe, &spec, &work.join("data"), &scratch, args.passes)?;
            files.push((data, timing));
        }
        let (csv, csv_timing) = files.remove(0);
        let (_, parquet_timing) = files.remove(0);
        let mut peer_rows = Vec::new();
        if peers && n <= PEER_MAX_BARS {
            for peer in &RUN_PEERS {
                eprintln!("{} on {n} bars (one pass)…", peer.name);
                peer_rows.push(time_peer(peer, &python, &csv, &scratch));
            }
        }
        rows.push(RunRow {
            bars: n,
            csv: csv_timing,
            parquet: parquet_timing,
            peers: peer_rows,
        });
    }
    if args.json {
        println!(
            "{}",
            json!({
                "benchmark": "run",
                "strategy": format!("sma_cross fast {FAST} slow {SLOW}"),
                "results": rows,
            })
        );
    } else {
        print!("{}", run_table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}
