//! `tradeloom bench simulate`: model-days per second, and CPU milliseconds per model-day, of a
//! whole simulation job against mock-llm (zero latency, in this process, over loopback HTTP)
//! on SQLite and PostgreSQL. Workloads in [`tradeloom_server::bench`].

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use tradeloom_data::news::{synth_news, write_news};
use tradeloom_data::universe::{UniverseSpec, synth_universe, write_universe};
use tradeloom_runs::bench::peer::self_cpu_seconds;
use tradeloom_server::bench::{SimulateReport, timed_job};
use tradeloom_store::ScratchDatabase;

use crate::store::runtime;

/// The mock-llm policies the benchmark's models cycle through.
const POLICIES: [&str; 3] = ["momentum", "mean_reversion", "buy_and_hold"];

fn policy(i: usize) -> String {
    match POLICIES.get(i) {
        Some(p) => p.to_string(),
        None => format!("random-{i}"),
    }
}

/// The flags of `tradeloom bench simulate`.
#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 10)]
    pub models: usize,
    #[arg(long, default_value_t = 250)]
    pub days: usize,
    #[arg(long, default_value_t = 8)]
    pub symbols: usize,
    /// Also measure on PostgreSQL (a scratch database is created there and dropped).
    #[arg(long, env = "TRADELOOM_BENCH_POSTGRES_URL")]
    pub postgres_url: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom bench simulate`.
pub fn run(args: &Args) -> Result<ExitCode> {
    if args.models == 0 || args.days == 0 || args.symbols == 0 {
        anyhow::bail!("--models, --days and --symbols must be at least 1");
    }
    tradeloom_llm::install_crypto_provider();
    let work = tempfile::TempDir::new().context("cannot create a temporary folder")?;
    let universe = synth_universe(&UniverseSpec {
        symbols: args.symbols,
        days: args.days,
        seed: 42,
        start: UniverseSpec::DEFAULT_START,
    })?;
    let udir = work.path().join("universe");
    write_universe(&universe, &udir)?;
    write_news(&udir.join("news.jsonl"), &synth_news(&universe, 42))?;
    let (first, last) = (
        universe.first_date().context("empty universe")?,
        universe.last_date().context("empty universe")?,
    );
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mock = format!("http://{}/v1", listener.local_addr()?);
        tokio::spawn(tradeloom_mock_llm::serve_mock(listener));
        let models: Vec<_> = (0..args.models)
            .map(|i| json!({"name": format!("m{:02}", i + 1), "base_url": mock, "model": policy(i), "max_retries": 0}))
            .collect();
        let config = json!({
            "models": models, "universe": {"path": udir}, "start_date": first.to_string(),
            "end_date": last.to_string(), "max_steps": 12,
        });
        if !args.json {
            eprintln!(
                "simulating {} models × {} days ({} symbols) against mock-llm at {mock} …",
                args.models, args.days, args.symbols
            );
        }
        let sqlite_path = work.path().join("sqlite").join("tradeloom.db");
        let (sqlite, _) = timed_job(
            "sqlite",
            &sqlite_path.display().to_string(),
            work.path(),
            &config,
            self_cpu_seconds,
        )
        .await?;
        let mut jobs = vec![sqlite];
        if let Some(base) = &args.postgres_url {
            let scratch = ScratchDatabase::create(base, "tl_bench").await?;
            let result = timed_job("postgres", scratch.url(), work.path(), &config, self_cpu_seconds).await;
            scratch.drop_database().await?;
            jobs.push(result?.0);
        }
        let report = SimulateReport {
            models: args.models,
            days: args.days,
            symbols: args.symbols,
            jobs,
        };
        if args.json {
            println!("{}", report.json());
        } else {
            print!("{}", report.text());
        }
        let failed = report.failed();
        Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
    })
}
