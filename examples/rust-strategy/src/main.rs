//! Runs a spec whose strategy is this crate's `sma_bracket`, writing the same run folder as
//! `tradeloom run`:
//!
//! ```text
//! cargo run -p tradeloom-example-rust-strategy -- examples/rust-strategy/spec.yaml [DATA_DIR]
//! ```
//!
//! Then `tradeloom verify RUN_ID --data-dir DATA_DIR` (or `tradeloom report RUN_ID`) works on it
//! as on any run.

use std::path::PathBuf;
use std::process::ExitCode;

use tradeloom_runs::{RunOptions, run_with_strategies};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(spec) = args.next().map(PathBuf::from) else {
        eprintln!("usage: tradeloom-example-rust-strategy SPEC.yaml [DATA_DIR]");
        return ExitCode::from(2);
    };
    let data_dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("tradeloom-data"));
    let options = RunOptions {
        data_dir,
        ..RunOptions::default()
    };
    match run_with_strategies(
        &spec,
        &tradeloom_example_rust_strategy::strategies(),
        options,
    ) {
        Ok(outcome) => {
            println!(
                "run {} completed: {}",
                outcome.run_id,
                outcome.run_dir.display()
            );
            println!(
                "trades {}, final equity {}",
                outcome.metrics.trades, outcome.metrics.final_equity
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
