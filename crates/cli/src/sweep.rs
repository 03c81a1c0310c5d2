//! `tradeloom sweep`: a parameter sweep of a run spec over a grid, on this process's threads or,
//! with `--redis-url`, on the `sweep` pool of a cluster's worker processes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use tradeloom_runs::sweep::{
    BaseSpec, Metric, PointStatus, Sweep, SweepError, SweepProgress, SweepRequest, WalkForward,
    default_jobs,
};

/// `tradeloom sweep`.
#[derive(clap::Args)]
pub struct SweepArgs {
    /// The run spec (YAML); not with `--resume`.
    #[arg(required_unless_present = "resume", conflicts_with = "resume")]
    spec: Option<PathBuf>,
    /// `KEY=VALUES,…`: a dotted spec field and an inclusive range START..END:STEP or a list,
    /// e.g. `strategy.params.fast=5..30:5,strategy.params.slow=20..100:10`.
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    grid: Option<String>,
    /// Continue the sweep with this id (or a unique prefix): completed points are not run again.
    #[arg(long, value_name = "SWEEP_ID")]
    resume: Option<String>,
    /// The metric to rank by: sharpe, sortino, calmar, total_return_pct, cagr_pct,
    /// win_rate_pct, profit_factor (higher is better), max_drawdown_pct, annual_volatility_pct
    /// (lower is better).
    #[arg(long, default_value = "sharpe", conflicts_with = "resume")]
    metric: String,
    /// Rolling walk-forward: pick the best point on each train window and run it on the test
    /// window after it, e.g. `train=2y,test=6m` (units y, m = months, w, d).
    #[arg(long, value_name = "train=P,test=P", conflicts_with = "resume")]
    walk_forward: Option<String>,
    /// Runs at a time (default: every core).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// The key across the heat map (default the grid's first).
    #[arg(long, value_name = "KEY", conflicts_with = "resume")]
    heatmap_x: Option<String>,
    /// The key down the heat map (default the grid's second).
    #[arg(long, value_name = "KEY", conflicts_with = "resume")]
    heatmap_y: Option<String>,
    /// Leave out grid points whose spec does not validate (e.g. fast >= slow) instead of
    /// refusing the sweep.
    #[arg(long, conflicts_with = "resume")]
    skip_invalid: bool,
    /// Print the sweep's JSON as the last line of stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// Run the points on the workers of the cluster with this Redis (`redis://host:port`):
    /// each `tradeloom worker` (or `serve`) taking the `sweep` pool runs them, one per core.
    /// The workers must share this data dir (run folders are written there) and read the
    /// spec's data files at the same paths.
    #[arg(long, env = "TRADELOOM_REDIS_URL", conflicts_with = "jobs")]
    redis_url: Option<String>,
    /// The key prefix of the cluster's keys in Redis.
    #[arg(long, env = "TRADELOOM_REDIS_PREFIX", default_value = crate::serve::DEFAULT_REDIS_PREFIX)]
    redis_prefix: String,
}

/// Where the sweep's runs go.
enum Runners {
    Threads(usize),
    Cluster {
        runner: tradeloom_orchestrator::sweep_points::ClusterRunner,
        workers: usize,
        runtime: tokio::runtime::Runtime,
    },
}

/// The cluster's queue (`url` and `prefix` checked by [`crate::serve::redis_settings`]), once
/// it is checked that some worker takes the `sweep` pool.
fn cluster(url: &str, prefix: &str) -> Result<Runners, String> {
    use tradeloom_queue::cluster::Registry;
    let shown = tradeloom_core::redact_userinfo(url).to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (queue, workers) = runtime.block_on(async {
        let registry = tradeloom_queue::RedisRegistry::connect(url, prefix)
            .await
            .map_err(|e| format!("--redis-url {shown}: {e}"))?;
        let workers = registry
            .list()
            .await
            .map_err(|e| format!("--redis-url {shown}: {e}"))?
            .iter()
            .filter(|p| tradeloom_orchestrator::sweep_points::takes_sweeps(p))
            .count();
        let queue = tradeloom_queue::RedisQueue::connect(
            url,
            prefix,
            tradeloom_queue::RedisQueueOptions::default(),
        )
        .await
        .map_err(|e| format!("--redis-url {shown}: {e}"))?;
        Ok::<_, String>((queue, workers))
    })?;
    if workers == 0 {
        return Err(format!(
            "--redis-url {shown}: no worker process of the cluster (prefix `{prefix}`) takes the \
             `sweep` pool; start one (`tradeloom worker --redis-url … --database-url …`) or run \
             the sweep here without --redis-url"
        ));
    }
    Ok(Runners::Cluster {
        runner: tradeloom_orchestrator::sweep_points::ClusterRunner {
            queue: std::sync::Arc::new(queue),
            handle: runtime.handle().clone(),
        },
        workers,
        runtime,
    })
}

pub fn run(data_dir: &Path, args: &SweepArgs) -> Result<ExitCode> {
    // The cluster is checked before the sweep's folder is made: a refusal leaves nothing.
    let cluster = crate::serve::redis_settings(args.redis_url.as_deref(), &args.redis_prefix)
        .map_err(|e| e.to_string())
        .and_then(|redis| redis.map(|r| cluster(&r.url, &r.prefix)).transpose());
    let runners = match cluster {
        Ok(Some(runners)) => runners,
        Ok(None) => Runners::Threads(args.jobs.unwrap_or_else(default_jobs).max(1)),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let sweep = match (&args.resume, &args.spec, &args.grid) {
        (Some(id), _, _) => Sweep::open(data_dir, id),
        (None, Some(spec), Some(grid)) => create(data_dir, spec, grid, args),
        _ => Err(SweepError::Syntax(
            "a spec and --grid, or --resume SWEEP_ID, are required".to_string(),
        )),
    };
    let mut sweep = match sweep {
        Ok(sweep) => sweep,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(if e.is_input_error() { 2 } else { 1 }));
        }
    };
    let on = match &runners {
        Runners::Threads(jobs) => format!("on {jobs} threads"),
        Runners::Cluster { workers, .. } => {
            format!("on the cluster's workers ({workers} process(es) take the `sweep` pool)")
        }
    };
    let show = !args.json && !args.quiet;
    let total = sweep.total();
    if show {
        let id = &sweep.state.sweep_id;
        if args.resume.is_some() {
            let completed = sweep.completed();
            eprintln!(
                "sweep {id}: resumed; {completed} of {total} runs already completed, {} to run {on}",
                total - completed
            );
        } else {
            eprintln!("sweep {id}: {total} runs {on}");
        }
    }
    let started = Instant::now();
    let mut on_progress = |p: SweepProgress| {
        if show {
            let eta = p
                .eta
                .map_or("?".to_string(), |d| format!("{:.0}s", d.as_secs_f64()));
            eprintln!("sweep: {}/{} runs done, eta {eta}", p.done, p.total);
        }
    };
    let ran = match &runners {
        Runners::Threads(jobs) => sweep.run(data_dir, *jobs, &mut on_progress),
        Runners::Cluster { runner, .. } => sweep.run_with(runner, &mut on_progress),
    };
    if let Runners::Cluster { runtime, .. } = runners {
        runtime.shutdown_background();
    }
    let made = match ran {
        Ok(made) => made,
        Err(e @ SweepError::Busy(_)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    let failed = sweep
        .state
        .points
        .iter()
        .any(|p| p.status == PointStatus::Failed)
        || sweep.state.windows.iter().any(|w| {
            w.out_of_sample.status == PointStatus::Failed
                || w.runs.iter().any(|p| p.status == PointStatus::Failed)
        });
    if args.json {
        println!("{}", serde_json::to_string(&sweep.result())?);
    } else {
        if let Ok(table) = std::fs::read_to_string(sweep.dir.join("table.md")) {
            print!("{table}");
        }
        println!(
            "\nsweep {}: {made} runs in {elapsed:.2} s ({:.1} runs/s); folder {}",
            sweep.state.sweep_id,
            made as f64 / elapsed.max(1e-9),
            sweep.dir.display()
        );
    }
    if failed {
        eprintln!(
            "error: some runs failed; see {} (resume with `tradeloom sweep --resume {}`)",
            sweep.dir.join("sweep.json").display(),
            sweep.state.sweep_id
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn create(data_dir: &Path, spec: &Path, grid: &str, args: &SweepArgs) -> Result<Sweep, SweepError> {
    let metric: Metric = args.metric.parse()?;
    let walk_forward = args
        .walk_forward
        .as_deref()
        .map(WalkForward::parse)
        .transpose()?;
    let request = SweepRequest {
        base: BaseSpec::load(spec)?,
        grid: grid.to_string(),
        metric,
        walk_forward,
        heatmap_x: args.heatmap_x.clone(),
        heatmap_y: args.heatmap_y.clone(),
        skip_invalid: args.skip_invalid,
    };
    Sweep::create(data_dir, request)
}
