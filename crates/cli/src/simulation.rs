//! Simulation jobs from the command line: `simulate` (batch mode of the job API), `jobs`,
//! `results` and `db`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tradeloom_agents::{ResolvedConfig, SimEvent, load_config};
use tradeloom_server::launch::Batch;
use tradeloom_server::leaderboard_of;
use tradeloom_store::{JobAction, JobControl, JobStatus, ResultsFilter, Store};

use crate::store::{open, runtime};
use crate::table;

/// `tradeloom simulate CONFIG`: runs the job in this process with a progress bar, then prints
/// the leaderboard. Exit 0 when every model-day completed (or nothing was left), 1 when some
/// failed.
/// Where `simulate` reads its config.
pub enum ConfigSource {
    /// A simulation config file.
    File(PathBuf),
    /// An AI-Trader `default_config.json` and the universe it trades.
    AiTrader { file: PathBuf, universe: PathBuf },
    /// Neither (clap prevents it).
    Missing,
}

impl ConfigSource {
    /// The resolved config; an AI-Trader config's notes (fields accepted but not used, models
    /// left out) go to stderr.
    fn load(&self, quiet: bool) -> Result<ResolvedConfig> {
        match self {
            ConfigSource::File(path) => Ok(load_config(path)?),
            ConfigSource::AiTrader { file, universe } => {
                let shown = file.display().to_string();
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("--ai-trader-config {shown}"))?;
                let value: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{shown}:{}: not JSON: {e}", e.line()))?;
                // Relative paths (the universe) are the caller's, as for any command argument.
                let universe = std::path::absolute(universe).unwrap_or_else(|_| universe.clone());
                let mapped = tradeloom_agents::ai_trader::map_config(
                    &value,
                    Some(&universe.display().to_string()),
                    &shown,
                )?;
                if !quiet {
                    for note in &mapped.notes {
                        eprintln!("note: {shown}: {note}");
                    }
                }
                let base = std::env::current_dir().context("no current directory")?;
                tradeloom_agents::config_from_value(&mapped.config, &base)
                    .with_context(|| format!("{shown} (mapped from AI-Trader)"))
            }
            ConfigSource::Missing => {
                anyhow::bail!("a simulation config or --ai-trader-config FILE is required")
            }
        }
    }
}

pub fn simulate(
    source: &ConfigSource,
    data_dir: &Path,
    database_url: Option<&str>,
    json_out: bool,
    quiet: bool,
) -> Result<ExitCode> {
    let config = source.load(quiet || json_out)?;
    // Assessed before the job runs (a model's `agent` resolved from the store as the job will);
    // written into its folder once its id is known.
    let (providers, unresolved) =
        crate::connectivity::config_providers(&config, data_dir, database_url);
    let (readiness, mut probe) = crate::connectivity::assess(&providers)?;
    probe.probes.extend(
        unresolved
            .iter()
            .map(crate::connectivity::UnresolvedAgent::skipped),
    );
    let rt = runtime()?;
    rt.block_on(async {
        let store = open(data_dir, database_url).await?;
        crate::interruption::sweep_jobs(store.as_ref()).await;
        let base_dir = std::env::current_dir().context("no current directory")?;
        let batch = Batch::new(store, data_dir.to_path_buf(), base_dir, &config)?;
        let bar = ProgressBar::hidden();
        if !quiet && !json_out && std::io::stderr().is_terminal() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "[{elapsed_precise}] {wide_bar} {pos}/{len} model-days  {per_sec}  eta {eta}  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
        }
        let mut events = batch.subscribe();
        let progress_bar = bar.clone();
        let quiet_lines = quiet || json_out || std::io::stderr().is_terminal();
        let printer = tokio::spawn(async move {
            let mut failed = 0u64;
            while let Ok(event) = events.recv().await {
                match event {
                    SimEvent::JobStarted { total_model_days, remaining, job_id } => {
                        progress_bar.set_length(total_model_days);
                        progress_bar.set_position(total_model_days - remaining);
                        progress_bar.reset_eta();
                        if !quiet_lines {
                            eprintln!("job {job_id}: {remaining} of {total_model_days} model-days to run");
                        }
                    }
                    SimEvent::ModelDayFinished { model, date, status, error, .. } => {
                        progress_bar.inc(1);
                        if status == "failed" || status == "refused" {
                            failed += 1;
                            progress_bar.set_message(format!("{failed} failed"));
                            progress_bar.suspend(|| {
                                eprintln!("  {date} {model}: {status}: {}", error.unwrap_or_default());
                            });
                        } else if !quiet_lines {
                            eprintln!("  {date} {model}: {status}");
                        }
                    }
                    SimEvent::JobFinished { .. } => break,
                }
            }
        });
        let started = std::time::Instant::now();
        let outcome = batch.run(&config).await?;
        bar.finish_and_clear();
        let run_dir = tradeloom_agents::job_run_dir(data_dir, &outcome.job.id);
        crate::connectivity::record(&run_dir, &readiness, &probe);
        printer.abort();
        if json_out {
            println!("{}", outcome.json(&run_dir, started.elapsed()));
        } else {
            print!("{}", outcome.text(&run_dir, started.elapsed()));
        }
        Ok(match outcome.job.status {
            JobStatus::Completed => ExitCode::SUCCESS,
            _ => ExitCode::from(1),
        })
    })
}

/// `tradeloom jobs list`.
pub fn jobs_list(
    data_dir: &Path,
    database_url: Option<&str>,
    limit: u32,
    json_out: bool,
) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open(data_dir, database_url).await?;
        crate::interruption::sweep_jobs(store.as_ref()).await;
        let jobs = store.list_jobs(limit, 0).await?;
        if json_out {
            println!("{}", serde_json::to_string_pretty(&jobs)?);
            return Ok(ExitCode::SUCCESS);
        }
        if jobs.is_empty() {
            println!(
                "no jobs yet; start one with `tradeloom simulate CONFIG` or POST /simulate/trigger"
            );
            return Ok(ExitCode::SUCCESS);
        }
        let mut rows = Vec::new();
        for job in &jobs {
            let p = store.job_report(&job.id).await?.progress;
            rows.push(vec![
                job.id.clone(),
                job.status.to_string(),
                format!("{}/{}", p.completed, p.total_model_days),
                p.failed.to_string(),
                job.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            ]);
        }
        print!(
            "{}",
            table::render(&["job", "status", "done", "failed", "created (UTC)"], &rows)
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// A job id as given: the full id, a unique prefix, or `latest`.
async fn resolve_job(store: &dyn Store, given: &str) -> Result<String> {
    if let Ok(job) = store.job(given).await {
        return Ok(job.id);
    }
    let ids = tradeloom_ops::reconcile::all_job_ids(store).await?;
    tradeloom_core::resolve_id("job", given, ids.iter().map(String::as_str))
        .map_err(|e| anyhow::anyhow!("{e} (see `tradeloom jobs list`)"))
}

/// `tradeloom jobs status ID` (full id, unique prefix or `latest`).
pub fn jobs_status(
    data_dir: &Path,
    database_url: Option<&str>,
    id: &str,
    json_out: bool,
) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open(data_dir, database_url).await?;
        crate::interruption::sweep_jobs(store.as_ref()).await;
        let id = resolve_job(store.as_ref(), id).await?;
        let report = store.job_report(&id).await?;
        if json_out {
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(ExitCode::SUCCESS);
        }
        print!("{}", report.text());
        Ok(ExitCode::SUCCESS)
    })
}

/// Who a command-line pause, resume or cancel is journaled as.
fn cli_caller() -> String {
    match std::env::var("USER") {
        Ok(user) if !user.trim().is_empty() => format!("cli:{}", user.trim()),
        _ => "cli".to_string(),
    }
}

/// `tradeloom jobs pause|cancel ID`: changes the job's status in the store; the process that
/// runs the job (a `serve`, a `simulate`) sees it before its next model-day starts.
pub fn jobs_control(
    data_dir: &Path,
    database_url: Option<&str>,
    id: &str,
    action: JobAction,
    json_out: bool,
) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open(data_dir, database_url).await?;
        crate::interruption::sweep_jobs(store.as_ref()).await;
        let id = resolve_job(store.as_ref(), id).await?;
        let job = match store.control_job(&id, action, &cli_caller()).await? {
            JobControl::Done(job) => job,
            JobControl::Refused(job) => {
                let allowed: Vec<&str> =
                    action.allowed_from().iter().map(|s| s.as_str()).collect();
                anyhow::bail!(
                    "job {} is {}: `jobs {action}` needs a job that is {}",
                    job.id,
                    job.status,
                    allowed.join(" or ")
                );
            }
        };
        let p = store.job_report(&job.id).await?.progress;
        if json_out {
            println!(
                "{}",
                serde_json::json!({"job_id": job.id, "action": action, "status": job.status, "progress": p})
            );
        } else {
            println!(
                "job {}  {}  {} completed, {} cancelled, {} pending, {} running of {} model-days",
                job.id,
                job.status,
                p.completed,
                p.cancelled,
                p.pending,
                p.running,
                p.total_model_days
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `tradeloom jobs resume ID`: resumes a paused job and runs the rest here, as `simulate`
/// does (exit 0 when every model-day completed, 1 otherwise).
pub fn jobs_resume(
    data_dir: &Path,
    database_url: Option<&str>,
    id: &str,
    json_out: bool,
    quiet: bool,
) -> Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async {
        let store = open(data_dir, database_url).await?;
        crate::interruption::sweep_jobs(store.as_ref()).await;
        let id = resolve_job(store.as_ref(), id).await?;
        let job = store.job(&id).await?;
        let base_dir = std::env::current_dir().context("no current directory")?;
        let config = tradeloom_agents::config_from_value(&job.config, &base_dir)
            .with_context(|| format!("the stored config of job {id}"))?;
        let batch = Batch::new(store, data_dir.to_path_buf(), base_dir, &config)?;
        let mut events = batch.subscribe();
        let printer = tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                if let SimEvent::ModelDayFinished {
                    model,
                    date,
                    status,
                    error,
                    ..
                } = event
                    && !quiet
                    && !json_out
                {
                    eprintln!(
                        "  {date} {model}: {status}{}",
                        error.map(|e| format!(": {e}")).unwrap_or_default()
                    );
                }
            }
        });
        let started = std::time::Instant::now();
        let outcome = batch.resume(&id, &cli_caller()).await?;
        printer.abort();
        let run_dir = tradeloom_agents::job_run_dir(data_dir, &outcome.job.id);
        if json_out {
            println!("{}", outcome.json(&run_dir, started.elapsed()));
        } else {
            print!("{}", outcome.text(&run_dir, started.elapsed()));
        }
        Ok(match outcome.job.status {
            JobStatus::Completed => ExitCode::SUCCESS,
            _ => ExitCode::from(1),
        })
    })
}

/// Filters of `tradeloom results`.
#[derive(clap::Args)]
pub struct ResultsArgs {
    /// Only this job (id, unique prefix, or `latest`).
    #[arg(long)]
    pub job: Option<String>,
    /// Only this model.
    #[arg(long)]
    pub model: Option<String>,
    /// Only this date (YYYY-MM-DD).
    #[arg(long)]
    pub date: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// The per-model standings of the job (default: the newest job).
    #[arg(long)]
    pub leaderboard: bool,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom results`: completed model-days (or the leaderboard of a job).
pub fn results(
    data_dir: &Path,
    database_url: Option<&str>,
    args: &ResultsArgs,
) -> Result<ExitCode> {
    let date = match args.date.as_deref() {
        Some(d) => Some(
            d.parse()
                .map_err(|_| anyhow::anyhow!("--date: `{d}` is not a date YYYY-MM-DD"))?,
        ),
        None => None,
    };
    runtime()?.block_on(async {
        let store = open(data_dir, database_url).await?;
        crate::interruption::sweep_jobs(store.as_ref()).await;
        if args.leaderboard {
            let job = match args.job.as_deref() {
                Some(id) => store.job(&resolve_job(store.as_ref(), id).await?).await?,
                None => store
                    .list_jobs(1, 0)
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("there is no job yet"))?,
            };
            let board = leaderboard_of(store.as_ref(), &job)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&board)?);
            } else {
                println!(
                    "job {}  {}  initial value {}",
                    board.job_id, board.status, board.initial_value
                );
                print!("{}", board.table(job.currency.code()));
                print!("{}", board.warning_lines());
            }
            return Ok(ExitCode::SUCCESS);
        }
        let job_id = match args.job.as_deref() {
            Some(id) => Some(resolve_job(store.as_ref(), id).await?),
            None => None,
        };
        let page = store
            .results(&ResultsFilter {
                job_id,
                model: args.model.clone(),
                date,
                completed_only: true,
                limit: args.limit,
                offset: 0,
            })
            .await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&page)?);
            return Ok(ExitCode::SUCCESS);
        }
        print!("{}", page.text());
        Ok(ExitCode::SUCCESS)
    })
}

/// `tradeloom db migrate|status`.
pub fn db(
    data_dir: &Path,
    database_url: Option<&str>,
    migrate: bool,
    json_out: bool,
) -> Result<ExitCode> {
    let location = crate::store::location(data_dir, database_url);
    runtime()?.block_on(async {
        let status = if migrate {
            tradeloom_store::db_migrate(&location).await
        } else {
            tradeloom_store::db_status(&location).await
        }
        .with_context(|| format!("database {location}"))?;
        if json_out {
            println!("{}", serde_json::to_string_pretty(&status)?);
        } else {
            println!("database: {location}");
            print!("{}", tradeloom_store::migrations_text(&status));
        }
        Ok(ExitCode::SUCCESS)
    })
}
