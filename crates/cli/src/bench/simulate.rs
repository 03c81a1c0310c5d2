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

use super::procs::{Setup, start_servers, stop_servers};
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
    /// Also run the models as a workflow of one `simulate` node per model over the API: on
    /// `serve` alone on SQLite (as `tradeloom up` runs) and on PostgreSQL, then on a cluster of `serve --roles api`, one `coordinator`
    /// and this many `worker`s on PostgreSQL and Redis (repeatable: `--cluster-workers 1
    /// --cluster-workers 2 --cluster-workers 4`). Needs --postgres-url and --redis-url.
    #[arg(long = "cluster-workers")]
    pub cluster_workers: Vec<usize>,
    /// Also measure memory and reflection (SQLite): the job with every model's memory off,
    /// then on with a reflection per model-day and N = 0, 5 and 20 lessons carried; prints
    /// model-days/s and the tokens per model-day of each.
    #[arg(long)]
    pub memory: bool,
    /// A Redis for the cluster figures (a fresh key prefix per cluster, deleted afterwards).
    #[arg(long, env = "TRADELOOM_BENCH_REDIS_URL")]
    pub redis_url: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom bench simulate`.
pub fn run(args: &Args) -> Result<ExitCode> {
    if args.models == 0 || args.days == 0 || args.symbols == 0 {
        anyhow::bail!("--models, --days and --symbols must be at least 1");
    }
    if !args.cluster_workers.is_empty() && (args.postgres_url.is_none() || args.redis_url.is_none())
    {
        anyhow::bail!("--cluster-workers needs --postgres-url and --redis-url");
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
    // Kept running to the end: mock-llm serves the cluster's processes too.
    let rt = runtime()?;
    let outcome = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mock = format!("http://{}/v1", listener.local_addr()?);
        tokio::spawn(tradeloom_mock_llm::serve_mock(listener));
        let models: Vec<_> = (0..args.models)
            .map(|i| json!({"name": format!("m{:02}", i + 1), "base_url": mock, "model": policy(i), "max_retries": 0}))
            .collect();
        let config = json!({
            "models": models.clone(), "universe": {"path": udir}, "start_date": first.to_string(),
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
        let memory = if args.memory {
            Some(memory_figures(work.path(), &config, args.json).await?)
        } else {
            None
        };
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
            if let Some(memory) = &memory {
                println!("{}", json!({"memory": memory}));
            }
        } else {
            print!("{}", report.text());
            if let Some(memory) = &memory {
                print_memory(memory);
            }
        }
        let failed = report.failed();
        Ok::<_, anyhow::Error>((failed, models, mock))
    })?;
    let (failed, models, _mock) = outcome;
    if !args.cluster_workers.is_empty() {
        let shared = json!({
            "universe": {"path": udir}, "start_date": first.to_string(),
            "end_date": last.to_string(), "max_steps": 12,
        });
        let mut figures = Vec::new();
        // `serve` on its SQLite file is what `tradeloom up` runs.
        let mut setups = vec![Setup::Embedded, Setup::ServePostgres];
        setups.extend(
            args.cluster_workers
                .iter()
                .map(|&w| Setup::Cluster(w.max(1))),
        );
        for setup in setups {
            if !args.json {
                eprintln!(
                    "{setup:?}: {} simulate nodes, one model each…",
                    models.len()
                );
            }
            let f = workflow_of_models(&rt, setup, &models, &shared, args)?;
            if !args.json {
                println!(
                    "{:<16} {:>7.1} model-days/s ({} model-days in {:.2} s), {:.2} CPU-ms per model-day in every process",
                    label(setup),
                    f["model_days_per_s"].as_f64().unwrap_or(0.0),
                    f["model_days"].as_u64().unwrap_or(0),
                    f["seconds"].as_f64().unwrap_or(0.0),
                    f["cpu_ms_per_model_day"].as_f64().unwrap_or(0.0),
                );
            }
            figures.push(json!({"setup": label(setup), "figures": f}));
        }
        if args.json {
            println!("{}", json!({"workflow_of_models": figures}));
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The memory variants of `--memory`: a label and each model's `memory` block (none: off).
fn memory_variants() -> Vec<(&'static str, Option<serde_json::Value>)> {
    // The token bound is lifted so that N really is N.
    let on = |n: u32| Some(json!({"lessons": n, "max_tokens": 8000, "reflect": true}));
    vec![
        ("off", None),
        ("reflect, N=0", on(0)),
        ("reflect, N=5", on(5)),
        ("reflect, N=20", on(20)),
    ]
}

/// `--memory`: the job once per variant of [`memory_variants`], each on a store of its own;
/// model-days/s, CPU-ms and tokens (prompt, completion) per model-day from the model-day files.
async fn memory_figures(
    work: &std::path::Path,
    config: &serde_json::Value,
    quiet: bool,
) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for (i, (label, memory)) in memory_variants().into_iter().enumerate() {
        let mut config = config.clone();
        for model in config["models"].as_array_mut().into_iter().flatten() {
            if let Some(memory) = &memory {
                model["memory"] = memory.clone();
            }
        }
        if !quiet {
            eprintln!("memory: {label} …");
        }
        let data = work.join(format!("memory-{i}"));
        std::fs::create_dir_all(&data)?;
        let db = data.join("tradeloom.db").display().to_string();
        // Relative paths of the config resolve against `work`, where the universe is.
        let (figures, sim) = timed_job("sqlite", &db, work, &config, self_cpu_seconds).await?;
        let (prompt, completion) = job_tokens(&sim, work).await?;
        let days = figures.model_days.max(1) as f64;
        out.push(json!({
            "variant": label,
            "model_days": figures.model_days,
            "failed": figures.failed,
            "model_days_per_s": figures.rate(),
            "cpu_ms_per_model_day": figures.cpu_ms_per_model_day(),
            "prompt_tokens_per_model_day": prompt as f64 / days,
            "completion_tokens_per_model_day": completion as f64 / days,
        }));
    }
    Ok(out)
}

/// Prompt and completion tokens of every completed model-day of the simulator's (one) job, as
/// its models' files record them (the reflection's call included).
async fn job_tokens(
    sim: &tradeloom_agents::Simulator,
    data_dir: &std::path::Path,
) -> Result<(u64, u64)> {
    let store = sim.store();
    let job = store
        .list_jobs(1, 0)
        .await?
        .into_iter()
        .next()
        .context("the benchmark's job is missing")?;
    let (mut prompt, mut completion) = (0u64, 0u64);
    // The benchmark's config names its models.
    let models = job.config["models"].as_array().into_iter().flatten();
    for model in models.filter_map(|m| m["name"].as_str()) {
        for day in tradeloom_agents::model_day_records(data_dir, &job.id, model)?.values() {
            if day["summary"]["status"] != "completed" {
                continue;
            }
            let usage = &day["summary"]["usage"];
            prompt += usage["prompt_tokens"].as_u64().unwrap_or(0);
            completion += usage["completion_tokens"].as_u64().unwrap_or(0);
        }
    }
    Ok((prompt, completion))
}

fn print_memory(rows: &[serde_json::Value]) {
    println!("memory and reflection (SQLite, one store per variant):");
    println!(
        "  {:<14} {:>13} {:>15} {:>22} {:>26}",
        "variant",
        "model-days/s",
        "CPU-ms per day",
        "prompt tokens per day",
        "completion tokens per day"
    );
    for r in rows {
        println!(
            "  {:<14} {:>13.1} {:>15.2} {:>22.0} {:>26.0}",
            r["variant"].as_str().unwrap_or(""),
            r["model_days_per_s"].as_f64().unwrap_or(0.0),
            r["cpu_ms_per_model_day"].as_f64().unwrap_or(0.0),
            r["prompt_tokens_per_model_day"].as_f64().unwrap_or(0.0),
            r["completion_tokens_per_model_day"].as_f64().unwrap_or(0.0),
        );
    }
}

/// `GET url`'s JSON body; an error status is an error.
async fn get_json(client: &reqwest::Client, url: String) -> Result<serde_json::Value> {
    Ok(client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

fn label(setup: Setup) -> String {
    match setup {
        Setup::Cluster(w) => format!("cluster 1c+{w}w"),
        Setup::ServePostgres => "serve PG".to_string(),
        Setup::Embedded => "up (SQLite)".to_string(),
    }
}

/// One workflow run of one `simulate` node per model on the processes of `setup`: model-days
/// per second from the submission to the run's end, and the CPU time of every process.
fn workflow_of_models(
    rt: &tokio::runtime::Runtime,
    setup: Setup,
    models: &[serde_json::Value],
    shared: &serde_json::Value,
    args: &Args,
) -> Result<serde_json::Value> {
    let binary = std::env::current_exe().context("the path of this binary")?;
    // The models' LLM is mock-llm on loopback, behind the SSRF guard.
    let servers = start_servers(
        &binary,
        setup,
        args.postgres_url.as_deref(),
        args.redis_url.as_deref(),
        &["--http-allow".to_string(), "127.0.0.1".to_string()],
        rt,
    )?;
    let result = rt.block_on(async {
        let client = reqwest::Client::new();
        let api = servers.api.url.clone();
        let nodes: Vec<serde_json::Value> = models
            .iter()
            .map(|m| {
                let mut config = shared.clone();
                config["models"] = json!([m]);
                json!({"id": m["name"], "type": "simulate", "timeout_ms": 3_600_000,
                       "config": {"config": config}})
            })
            .collect();
        let created: serde_json::Value = client
            .post(format!("{api}/workflows"))
            .json(&json!({"name": "bench-models", "nodes": nodes}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let workflow = created["id"]
            .as_str()
            .context("no workflow id")?
            .to_string();
        let cpu0 = servers.cpu_seconds()?;
        let started = std::time::Instant::now();
        let run: serde_json::Value = client
            .post(format!("{api}/workflows/{workflow}/runs"))
            .json(&json!({"inputs": {}}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let run_id = run["run_id"].as_str().context("no run id")?.to_string();
        let view = loop {
            let view: serde_json::Value = get_json(
                &client,
                format!("{api}/workflow-runs/{run_id}?wait_ms=1000"),
            )
            .await?;
            match view["status"].as_str() {
                Some("completed") => break view,
                Some("failed" | "cancelled") => {
                    anyhow::bail!("the workflow run ended {}: {view}", view["status"])
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let cpu = servers.cpu_seconds()? - cpu0;
        // Each node's output names its job; the model-days are those the jobs completed.
        let mut model_days = 0u64;
        for node in view["nodes"].as_array().context("no nodes")? {
            let blob = node["output"].as_str().context("a node without output")?;
            let output: serde_json::Value =
                get_json(&client, format!("{api}/blobs/{blob}")).await?;
            let job = output["content"]["job_id"].as_str().context("no job id")?;
            let status: serde_json::Value =
                get_json(&client, format!("{api}/simulate/status/{job}")).await?;
            model_days += status["progress"]["completed"].as_u64().unwrap_or(0);
        }
        Ok(json!({
            "model_days": model_days,
            "seconds": seconds,
            "model_days_per_s": model_days as f64 / seconds.max(1e-9),
            "cpu_ms_per_model_day": cpu * 1e3 / (model_days.max(1) as f64),
        }))
    });
    stop_servers(servers, rt);
    result
}
