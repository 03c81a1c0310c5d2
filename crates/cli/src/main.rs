//! tradeloom: the command-line entry point. It parses arguments and wires the crates together;
//! no trading logic lives here.
//!
//! Exit codes: 0 success; 1 a run that failed, or a verification mismatch; 2 bad input (usage,
//! spec, data) where nothing was run.

mod bench;
mod commands;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run trading strategies and agents in backtests, with a complete, hashed record of every run.
#[derive(Parser)]
#[command(name = "tradeloom", version, about, long_about = None)]
struct Cli {
    /// Where run folders are stored (`<data-dir>/runs/<run_id>/`).
    #[arg(
        long,
        global = true,
        env = "TRADELOOM_DATA_DIR",
        default_value = "tradeloom-data"
    )]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a run spec (backtest) and write its run folder.
    Run {
        /// The run spec (YAML).
        spec: PathBuf,
        /// Print one JSON object as the last line of stdout instead of the summary table.
        #[arg(long)]
        json: bool,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Run spec tools.
    Spec {
        #[command(subcommand)]
        command: SpecCommand,
    },
    /// List and show runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Re-render report.md and equity.svg of a run from its files.
    Report {
        /// Run id, a unique prefix of one, or `latest`.
        id: String,
    },
    /// Recompute every hash in a run's metadata.json; exit 1 on any mismatch.
    Verify {
        /// Run id, a unique prefix of one, or `latest`.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Market data tools.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Benchmarks that print figures.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand)]
enum SpecCommand {
    /// Print the JSON Schema of run specs.
    Schema,
    /// Check a run spec without running it (the data files must exist).
    Validate { file: PathBuf },
}

#[derive(Subcommand)]
enum RunsCommand {
    /// Every run under the data dir, oldest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One run's metadata and metrics.
    Show {
        /// Run id, a unique prefix of one, or `latest`.
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Write synthetic bars (geometric random walk, deterministic for a seed).
    Synth {
        #[arg(long)]
        symbol: String,
        /// Number of bars.
        #[arg(long)]
        bars: u64,
        /// Bar interval: 1s, 1m, 5m, 15m, 1h, 4h, 1d.
        #[arg(long, default_value = "1m")]
        timeframe: String,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output file; the format follows the extension (.csv, .parquet, .arrow).
        #[arg(long)]
        out: PathBuf,
    },
    /// Summarise and validate a bar file: rows, range, interval, gaps, prices.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Write a synthetic daily universe (one SYMBOL.csv per symbol, correlated one-factor
    /// returns, weekdays only) and a news corpus (news.jsonl), deterministic for a seed.
    Universe {
        /// Number of symbols (1 to 500): AAA, BBB, … ZZZ, then AAB, AAC, …
        #[arg(long, default_value_t = 8)]
        symbols: usize,
        /// Number of trading days (weekdays, 1 to 20000).
        #[arg(long, default_value_t = 60)]
        days: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output folder (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// First trading day, YYYY-MM-DD (a weekend date moves to the next Monday).
        #[arg(long, default_value = "2025-01-02")]
        start: String,
        /// Do not write news.jsonl.
        #[arg(long)]
        no_news: bool,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Engine throughput, and end-to-end `tradeloom run` time and peak memory from CSV and
    /// Parquet, on synthetic 1-minute bars traded by sma_cross.
    Engine {
        /// Bars per measurement (repeat the flag for several sizes).
        #[arg(long = "bars", default_values_t = [1_000_000u64])]
        bars: Vec<u64>,
        /// Skip the end-to-end runs (engine only).
        #[arg(long)]
        engine_only: bool,
        /// Where to write the synthetic files (default: a temporary folder).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let data_dir = cli.data_dir;
    let result = match cli.command {
        Command::Run { spec, json, quiet } => commands::run(&spec, &data_dir, json, quiet),
        Command::Spec { command } => match command {
            SpecCommand::Schema => commands::spec_schema(),
            SpecCommand::Validate { file } => commands::spec_validate(&file),
        },
        Command::Runs { command } => match command {
            RunsCommand::List { json } => commands::runs_list(&data_dir, json),
            RunsCommand::Show { id, json } => commands::runs_show(&data_dir, &id, json),
        },
        Command::Report { id } => commands::report(&data_dir, &id),
        Command::Verify { id, json } => commands::verify(&data_dir, &id, json),
        Command::Data { command } => match command {
            DataCommand::Synth {
                symbol,
                bars,
                timeframe,
                seed,
                out,
            } => commands::data_synth(&symbol, bars, &timeframe, seed, &out),
            DataCommand::Inspect { file, json } => commands::data_inspect(&file, json),
            DataCommand::Universe {
                symbols,
                days,
                seed,
                out,
                start,
                no_news,
            } => commands::data_universe(symbols, days, seed, &start, &out, !no_news),
        },
        Command::Bench { command } => match command {
            BenchCommand::Engine {
                bars,
                engine_only,
                work_dir,
                json,
            } => bench::engine(&bars, engine_only, work_dir.as_deref(), json),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
