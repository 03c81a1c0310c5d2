//! `tradeloom bench simulate`: model-days per second of a whole simulation job against
//! mock-llm (zero latency, in this process, over loopback HTTP) on SQLite and PostgreSQL, then
//! `GET /results?detail=minimal` requests per second and latency percentiles under concurrent
//! connections to the real API server.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use tradeloom_agents::{Simulator, SimulatorOptions, config_from_value, run_to_end};
use tradeloom_data::news::{synth_news, write_news};
use tradeloom_data::universe::{UniverseSpec, synth_universe, write_universe};
use tradeloom_server::AppState;
use tradeloom_store::{ScratchDatabase, open_store};

use crate::simulation::runtime;

pub struct SimBenchArgs {
    pub models: usize,
    pub days: usize,
    pub symbols: usize,
    pub postgres_url: Option<String>,
    pub requests: usize,
    pub concurrency: usize,
    pub json: bool,
}

/// The mock-llm policies the benchmark's models cycle through.
const POLICIES: [&str; 3] = ["momentum", "mean_reversion", "buy_and_hold"];

fn policy(i: usize) -> String {
    match POLICIES.get(i) {
        Some(p) => p.to_string(),
        None => format!("random-{i}"),
    }
}

struct JobFigures {
    backend: &'static str,
    model_days: u64,
    failed: u64,
    seconds: f64,
}

impl JobFigures {
    fn rate(&self) -> f64 {
        self.model_days as f64 / self.seconds.max(1e-9)
    }
}

async fn run_job(
    backend: &'static str,
    location: &str,
    data_dir: &std::path::Path,
    config: &serde_json::Value,
) -> Result<(JobFigures, Arc<Simulator>, String)> {
    let store = open_store(location)
        .await
        .with_context(|| format!("open {location}"))?;
    let sim = Simulator::new(
        store,
        SimulatorOptions {
            data_dir: data_dir.to_path_buf(),
            max_concurrent_jobs: 1,
            base_dir: data_dir.to_path_buf(),
            // The benchmark's own mock, on loopback.
            outbound: tradeloom_net::Outbound::new(
                tradeloom_net::SsrfPolicy {
                    allow_hosts: vec!["127.0.0.1".into()],
                    ..tradeloom_net::SsrfPolicy::default()
                },
                tradeloom_net::SecretEnv::default(),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        },
    );
    let resolved = config_from_value(config, data_dir)?;
    let started = Instant::now();
    let (_, job) = run_to_end(&sim, &resolved).await?;
    let seconds = started.elapsed().as_secs_f64();
    let progress = sim.store().job_report(&job.id).await?.progress;
    Ok((
        JobFigures {
            backend,
            model_days: progress.completed + progress.failed,
            failed: progress.failed,
            seconds,
        },
        sim,
        job.id,
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct HttpFigures {
    requests: usize,
    errors: usize,
    seconds: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

async fn http_bench(
    sim: Arc<Simulator>,
    requests: usize,
    concurrency: usize,
) -> Result<HttpFigures> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(tradeloom_server::serve(
        listener,
        AppState::new(sim),
        std::future::pending(),
    ));
    let url = format!("http://{addr}/results?detail=minimal");
    let concurrency = concurrency.max(1);
    let per_task = requests.div_ceil(concurrency);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let url = url.clone();
        tasks.spawn(async move {
            // One client per task: one keep-alive connection each.
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build();
            let mut latencies = Vec::with_capacity(per_task);
            let mut errors = 0usize;
            let Ok(client) = client else {
                return (latencies, per_task);
            };
            for _ in 0..per_task {
                let t = Instant::now();
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        if r.bytes().await.is_err() {
                            errors += 1;
                        }
                    }
                    _ => errors += 1,
                }
                latencies.push(t.elapsed());
            }
            (latencies, errors)
        });
    }
    let mut all = Vec::with_capacity(per_task * concurrency);
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let (l, e) = joined.context("a benchmark client task panicked")?;
        all.extend(l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort_unstable();
    Ok(HttpFigures {
        requests: all.len(),
        errors,
        seconds,
        p50: percentile(&all, 50.0),
        p99: percentile(&all, 99.0),
        max: all.last().copied().unwrap_or_default(),
    })
}

pub fn simulate(args: &SimBenchArgs) -> Result<ExitCode> {
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
        let (sqlite, sim, _) = run_job("sqlite", &sqlite_path.display().to_string(), work.path(), &config).await?;
        let mut jobs = vec![sqlite];
        if let Some(base) = &args.postgres_url {
            let scratch = ScratchDatabase::create(base, "tl_bench").await?;
            let result = run_job("postgres", scratch.url(), work.path(), &config).await;
            scratch.drop_database().await?;
            jobs.push(result?.0);
        }
        if !args.json {
            eprintln!("GET /results?detail=minimal: {} requests over {} connections …", args.requests, args.concurrency);
        }
        let http = http_bench(sim, args.requests, args.concurrency).await?;
        if args.json {
            println!(
                "{}",
                json!({
                    "models": args.models, "days": args.days, "symbols": args.symbols,
                    "jobs": jobs.iter().map(|j| json!({
                        "backend": j.backend, "model_days": j.model_days, "failed": j.failed,
                        "seconds": j.seconds, "model_days_per_second": j.rate(),
                    })).collect::<Vec<_>>(),
                    "results_http": {
                        "requests": http.requests, "errors": http.errors, "concurrency": args.concurrency,
                        "requests_per_second": http.requests as f64 / http.seconds.max(1e-9),
                        "p50_ms": http.p50.as_secs_f64() * 1e3, "p99_ms": http.p99.as_secs_f64() * 1e3,
                        "max_ms": http.max.as_secs_f64() * 1e3,
                    },
                })
            );
        } else {
            for j in &jobs {
                println!(
                    "simulate {:<8} {} model-days ({} failed) in {:.2} s: {:.1} model-days/s",
                    j.backend,
                    j.model_days,
                    j.failed,
                    j.seconds,
                    j.rate()
                );
            }
            println!(
                "GET /results?detail=minimal  {} requests, {} connections, {} errors: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                http.requests,
                args.concurrency,
                http.errors,
                http.requests as f64 / http.seconds.max(1e-9),
                http.p50.as_secs_f64() * 1e3,
                http.p99.as_secs_f64() * 1e3,
                http.max.as_secs_f64() * 1e3
            );
        }
        let failed = jobs.iter().any(|j| j.failed > 0) || http.errors > 0;
        Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
    })
}
