//! Simulation jobs from the command line: `simulate` (batch mode of the job API), `jobs`,
//! `results`, `db`, and the long-running `serve` and `mock-llm`.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tradeloom_agents::{
    SimEvent, Simulator, SimulatorOptions, TriggerOutcome, load_config, run_to_end,
};
use tradeloom_net::{Outbound, SecretEnv, SsrfPolicy};
use tradeloom_server::{AppState, LeaderboardResponse, leaderboard_of};
use tradeloom_store::{JobStatus, ResultsFilter, Store, open_store};

use crate::table;

/// Where the store is: `--database-url`, else `<data_dir>/tradeloom.db`.
pub fn store_location(data_dir: &Path, database_url: Option<&str>) -> String {
    match database_url {
        Some(url) => url.to_string(),
        None => data_dir.join("tradeloom.db").display().to_string(),
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn open(data_dir: &Path, database_url: Option<&str>) -> Result<Arc<dyn Store>> {
    let location = store_location(data_dir, database_url);
    open_store(&location).await.with_context(|| {
        format!(
            "cannot open the store at {}",
            tradeloom_core::redact_userinfo(&location)
        )
    })
}

fn simulator(
    store: Arc<dyn Store>,
    data_dir: &Path,
    max_concurrent_jobs: usize,
    outbound: Outbound,
) -> Result<Arc<Simulator>> {
    Ok(Simulator::new(
        store,
        SimulatorOptions {
            data_dir: data_dir.to_path_buf(),
            max_concurrent_jobs,
            base_dir: std::env::current_dir().context("no current directory")?,
            outbound,
        },
    ))
}

/// An exact decimal fraction (`"0.016986"`) as a percentage with two decimals (`1.70 %`),
/// rounded half away from zero in decimal, never through a float.
fn pct(fraction: Option<&str>) -> String {
    let Some(text) = fraction else {
        return "–".to_string();
    };
    match tradeloom_core::Decimal::parse(text) {
        Ok(d) => {
            // raw × 10^-18 → hundredths of a percent: raw × 10^4 × 10^-18.
            let raw = tradeloom_core::fixed::round_raw(
                d.to_money(tradeloom_core::Currency::USD).raw(),
                18,
                4,
            );
            let percent = tradeloom_core::fixed::format_raw(raw * 100, 18, 2);
            format!("{percent} %")
        }
        Err(_) => text.to_string(),
    }
}

/// The outbound access of `tradeloom simulate CONFIG`: the config file is the operator's own,
/// so its models' endpoints (`host:port` each, whatever they resolve to) and its `api_key_env`
/// names are allowed explicitly, and nothing else: a redirect elsewhere, a metadata path or a
/// variable the file does not name is still refused by the same guard `serve` uses.
fn outbound_of_config(config: &tradeloom_agents::ResolvedConfig) -> Result<Outbound> {
    let mut policy = SsrfPolicy::default();
    for m in &config.config.models {
        let url = reqwest::Url::parse(m.base_url.trim())
            .map_err(|e| anyhow::anyhow!("models `{}`: base_url: {e}", m.name))?;
        if let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) {
            policy.allow_hosts.push(format!("{host}:{port}"));
        }
    }
    let secrets = SecretEnv::new(
        config
            .config
            .models
            .iter()
            .filter_map(|m| m.api_key_env.clone()),
    );
    Outbound::new(policy, secrets).map_err(|e| anyhow::anyhow!("{e}"))
}

fn leaderboard_table(board: &LeaderboardResponse, currency: &str) -> String {
    let rows: Vec<Vec<String>> = board
        .models
        .iter()
        .map(|s| {
            vec![
                s.rank.to_string(),
                s.model.clone(),
                s.final_value
                    .clone()
                    .map_or("–".into(), |v| format!("{v} {currency}")),
                pct(s.total_return.as_deref()),
                s.sharpe.map_or("–".into(), |v| format!("{v:.2}")),
                pct(s.max_drawdown.as_deref()),
                s.trades.to_string(),
                s.tool_calls.to_string(),
                s.tool_errors.to_string(),
                format!(
                    "{}/{}",
                    s.completed_days,
                    s.completed_days + s.failed_days + s.refused_days
                ),
            ]
        })
        .collect();
    table::render(
        &[
            "#",
            "model",
            "final value",
            "return",
            "sharpe",
            "max dd",
            "trades",
            "tool calls",
            "tool errors",
            "days ok",
        ],
        &rows,
    )
}

/// The leaderboard's warnings, one `warning: …` line each.
fn warning_lines(board: &LeaderboardResponse) -> String {
    board
        .warnings
        .iter()
        .map(|w| format!("warning: {w}\n"))
        .collect()
}

/// `tradeloom simulate CONFIG`: runs the job in this process with a progress bar, then prints
/// the leaderboard. Exit 0 when every model-day completed (or nothing was left), 1 when some
/// failed.
pub fn simulate(
    config_path: &Path,
    data_dir: &Path,
    database_url: Option<&str>,
    json_out: bool,
    quiet: bool,
) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    // Assessed before the job runs; written into its folder once its id is known.
    let (readiness, probe) = crate::connectivity::assess(&config.connectivity_providers())?;
    let rt = runtime()?;
    rt.block_on(async {
        let store = open(data_dir, database_url).await?;
        crate::interruption::sweep_jobs(store.as_ref()).await;
        let sim = simulator(Arc::clone(&store), data_dir, 1, outbound_of_config(&config)?)?;
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
        let mut events = sim.subscribe();
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
        let (outcome, job) = run_to_end(&sim, &config).await?;
        bar.finish_and_clear();
        crate::connectivity::record(
            &tradeloom_agents::job_run_dir(data_dir, &job.id),
            &readiness,
            &probe,
        );
        printer.abort();
        let board = leaderboard_of(store.as_ref(), &job)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let report = store.job_report(&job.id).await?;
        let current = matches!(outcome, TriggerOutcome::Current(_));
        if json_out {
            println!(
                "{}",
                json!({
                    "job_id": job.id,
                    "status": if current { "current".to_string() } else { job.status.to_string() },
                    "job_status": job.status,
                    "progress": report.progress,
                    "run_dir": tradeloom_agents::job_run_dir(data_dir, &job.id),
                    "elapsed_ms": started.elapsed().as_millis() as u64,
                    "leaderboard": board.models.iter().map(|s| json!({
                        "rank": s.rank, "model": s.model, "final_value": s.final_value,
                        "total_return": s.total_return, "sharpe": s.sharpe, "max_drawdown": s.max_drawdown,
                        "trades": s.trades, "tool_calls": s.tool_calls, "tool_errors": s.tool_errors,
                        "completed_days": s.completed_days, "failed_days": s.failed_days,
                        "refused_days": s.refused_days,
                    })).collect::<Vec<_>>(),
                    "warnings": board.warnings,
                })
            );
        } else {
            if current {
                println!("job {}: every model-day is already completed (status: current)", job.id);
            }
            let p = &report.progress;
            let refused = if p.refused > 0 {
                format!(", {} refused by the kill switch", p.refused)
            } else {
                String::new()
            };
            println!(
                "job {}  {}  {} completed, {} failed{refused} of {} model-days  ({:.1} s)",
                job.id,
                job.status,
                p.completed,
                p.failed,
                p.total_model_days,
                started.elapsed().as_secs_f64()
            );
            if p.refused > 0 {
                println!(
                    "the kill switch (risk.kill_switch) refused {} model-day(s): run the same config again after `tradeloom killswitch release` to run them",
                    p.refused
                );
            }
            print!("{}", leaderboard_table(&board, job.currency.code()));
            print!("{}", warning_lines(&board));
            println!("run folder: {}", tradeloom_agents::job_run_dir(data_dir, &job.id).display());
        }
        Ok(match job.status {
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
        let job = &report.job;
        let p = &report.progress;
        println!(
            "job {}  {}\n  {} model-days: {} completed, {} failed, {} refused, {} running, {} pending",
            job.id,
            job.status,
            p.total_model_days,
            p.completed,
            p.failed,
            p.refused,
            p.running,
            p.pending
        );
        if let Some(e) = &job.error {
            println!("  error: {e}");
        }
        let rows: Vec<Vec<String>> = report
            .model_days
            .iter()
            .map(|d| {
                vec![
                    d.date.to_string(),
                    d.model.clone(),
                    d.status.as_str().to_string(),
                    d.portfolio_value.map_or("–".into(), |v| v.to_string()),
                    d.duration_ms.map_or("–".into(), |ms| format!("{ms} ms")),
                    d.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        print!(
            "{}",
            table::render(
                &["date", "model", "status", "value", "took", "error"],
                &rows
            )
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Filters of `tradeloom results`.
pub struct ResultsArgs<'a> {
    pub job: Option<&'a str>,
    pub model: Option<&'a str>,
    pub date: Option<&'a str>,
    pub limit: u32,
    pub leaderboard: bool,
    pub json: bool,
}

/// `tradeloom results`: completed model-days (or the leaderboard of a job).
pub fn results(
    data_dir: &Path,
    database_url: Option<&str>,
    args: ResultsArgs<'_>,
) -> Result<ExitCode> {
    let date = match args.date {
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
            let job = match args.job {
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
                print!("{}", leaderboard_table(&board, job.currency.code()));
                print!("{}", warning_lines(&board));
            }
            return Ok(ExitCode::SUCCESS);
        }
        let job_id = match args.job {
            Some(id) => Some(resolve_job(store.as_ref(), id).await?),
            None => None,
        };
        let page = store
            .results(&ResultsFilter {
                job_id,
                model: args.model.map(str::to_string),
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
        let rows: Vec<Vec<String>> = page
            .items
            .iter()
            .map(|i| {
                let d = &i.model_day;
                let holdings: Vec<String> = i
                    .holdings
                    .iter()
                    .map(|h| format!("{} {}", h.quantity, h.symbol))
                    .collect();
                vec![
                    d.date.to_string(),
                    d.model.clone(),
                    d.cash.map_or("–".into(), |c| c.to_string()),
                    d.portfolio_value.map_or("–".into(), |v| v.to_string()),
                    i.trades.to_string(),
                    holdings.join(", "),
                ]
            })
            .collect();
        print!(
            "{}",
            table::render(
                &["date", "model", "cash", "value", "trades", "holdings"],
                &rows
            )
        );
        if page.total > page.items.len() as u64 {
            println!(
                "({} of {} shown; raise --limit or filter by --job/--model/--date)",
                page.items.len(),
                page.total
            );
        }
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
    let location = store_location(data_dir, database_url);
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
            let rows: Vec<Vec<String>> = status
                .iter()
                .map(|m| {
                    vec![
                        m.version.to_string(),
                        m.description.clone(),
                        format!("{:?}", m.state).to_lowercase(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(&["version", "migration", "state"], &rows)
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn bind(addr: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--addr {addr}: cannot listen there"))
}

/// SIGTERM (systemd, containers) and SIGINT (Ctrl-C), listened for from creation on: a signal
/// that arrives before anything waits on it is still seen.
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
                int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the first of them; returns its name.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "ctrl-c"
        }
    }
}

/// How long in-flight requests get to finish after a stop signal (open WebSockets would hold a
/// graceful shutdown forever).
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves until SIGTERM or SIGINT, then stops accepting and gives in-flight requests
/// [`STOP_GRACE`] to finish.
async fn serve_until_stopped(
    listener: tokio::net::TcpListener,
    state: AppState,
    signals: &mut StopSignals,
) -> Result<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = Box::pin(tradeloom_server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let signal = tokio::select! {
        r = &mut server => return r.context("the API server stopped"),
        signal = signals.recv() => signal,
    };
    tracing::info!(
        signal,
        "stopping: no new connections, in-flight requests finish"
    );
    let _ = stop.send(());
    match tokio::time::timeout(STOP_GRACE, &mut server).await {
        Ok(r) => r.context("the API server stopped")?,
        Err(_) => tracing::warn!(
            grace_secs = STOP_GRACE.as_secs(),
            "requests still open after the grace period are closed"
        ),
    }
    Ok(())
}

/// `tradeloom serve`: the REST API. Interrupted jobs of an earlier process resume first.
pub fn serve(
    data_dir: &Path,
    database_url: Option<&str>,
    addr: &str,
    max_concurrent_jobs: usize,
    access: &crate::access::ServeAccess,
    workflows: &WorkflowOptions,
    health: &crate::health::ServeHealthOptions,
) -> Result<ExitCode> {
    tradeloom_llm::install_crypto_provider();
    runtime()?.block_on(async {
        // First: a stop signal during start-up is then handled once serving, not fatal.
        let mut signals = StopSignals::install()?;
        let store = open(data_dir, database_url).await?;
        let sim = simulator(
            store.clone(),
            data_dir,
            max_concurrent_jobs,
            workflows.outbound()?,
        )?;
        let resumed = sim.resume_interrupted().await?;
        if !resumed.is_empty() {
            tracing::info!(jobs = ?resumed, "resuming interrupted simulation jobs");
        }
        let config_dir = access.config_dir()?;
        let allow_origins = access.allow_origins()?;
        let workflow_runtime =
            workflows.runtime(store, data_dir, sim.clone(), config_dir.clone())?;
        let resumed_runs = workflow_runtime.start().await?;
        if resumed_runs > 0 {
            tracing::info!(runs = resumed_runs, "resumed unfinished workflow runs");
        }
        let scheduler = tradeloom_orchestrator::schedule::Scheduler::new(
            workflow_runtime.store().clone(),
            workflow_runtime.clone(),
        )
        .with_flow_limits(workflows.limits.limits())
        .spawn(std::time::Duration::from_secs(workflows.schedule_tick_secs));
        let scheduler = Arc::new(scheduler);
        let listener = bind(addr).await?;
        let local = listener.local_addr()?;
        let auth = access.auth_mode(local.ip());
        let limits = access.rate_limits();
        crate::access::log_access(sim.store().as_ref(), auth, local.ip(), &limits).await;
        let meta_health = tradeloom_server::MetaHealthSlot::default();
        let monitor = crate::health::ServeMonitor::start(
            data_dir,
            health,
            sim.store().clone(),
            workflow_runtime.clone(),
            scheduler.clone(),
            meta_health.clone(),
        )?;
        let state = AppState::new(sim.clone())
            .with_auth(auth)
            .with_rate_limits(limits)
            .with_runtime(workflow_runtime.clone())
            .with_meta_health(meta_health)
            .with_config_dir(config_dir)
            .with_allowed_hosts(access.allowed_hosts())
            .with_allowed_origins(allow_origins);
        println!("tradeloom API listening on http://{local} (docs: http://{local}/docs)");
        std::io::stdout().flush()?;
        serve_until_stopped(listener, state, &mut signals).await?;
        // Hand back what is in flight: the workflow runtime's loops stop (unfinished runs resume
        // at the next start), simulation jobs of this process are marked interrupted (they
        // resume likewise), and the heartbeats go.
        scheduler.abort();
        workflow_runtime.shutdown().await;
        for job_id in sim.running_jobs().await {
            let reason = "interrupted: serve was stopped; the job resumes at the next start";
            if let Err(e) = sim.store().interrupt_job(&job_id, reason).await {
                tracing::warn!(job_id = %job_id, error = %e, "cannot mark the job interrupted");
            }
        }
        monitor.stop().await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// `tradeloom mock-llm`: the deterministic OpenAI-compatible test server.
pub fn mock_llm(addr: &str) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let listener = bind(addr).await?;
        let local = listener.local_addr()?;
        let mut signals = StopSignals::install()?;
        println!("mock-llm listening on http://{local}/v1");
        std::io::stdout().flush()?;
        tokio::select! {
            r = tradeloom_mock_llm::serve_mock(listener) => r?,
            _ = signals.recv() => {}
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `serve` settings of the workflow runtime.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkflowOptions {
    /// Let outbound requests reach this host, `host:port` or CIDR although the SSRF guard
    /// blocks it (e.g. `127.0.0.1:8089` for a local LLM, `127.0.0.1` for a local webhook
    /// receiver): `http` nodes, agent and simulation LLM endpoints and health probes all go
    /// through the guard. Repeatable or comma-separated.
    #[arg(
        long = "http-allow",
        env = "TRADELOOM_HTTP_ALLOW",
        value_delimiter = ','
    )]
    pub http_allow: Vec<String>,
    /// Refuse URLs whose path starts with this (whole segments, on every host, allowed ones
    /// included), in addition to the cloud metadata paths and `/.env`, `/.git` refused by
    /// default; e.g. `/admin`. Repeatable or comma-separated.
    #[arg(
        long = "http-deny-path",
        env = "TRADELOOM_HTTP_DENY_PATH",
        value_delimiter = ','
    )]
    pub http_deny_path: Vec<String>,
    /// An environment variable API callers and workflows may name as a secret's source (an
    /// agent's or simulation model's `api_key_env`, an http node's secret header). Names
    /// starting with `TRADELOOM_LLM_KEY_` or `TRADELOOM_SECRET_` are allowed without being
    /// listed; no other variable of the server's environment can be named. Repeatable or
    /// comma-separated.
    // The variable for this flag avoids both prefixes, or workflows could name it.
    #[arg(
        long = "llm-key-env",
        env = "TRADELOOM_ALLOW_SECRET_ENV",
        value_delimiter = ','
    )]
    pub llm_key_env: Vec<String>,
    /// Concurrent workers per node type.
    #[arg(long, env = "TRADELOOM_WORKFLOW_WORKERS", default_value_t = 8)]
    pub workflow_workers: usize,
    /// At most this many `agent` nodes run at once (0: no limit beyond the workers).
    #[arg(long, env = "TRADELOOM_AGENT_CONCURRENCY", default_value_t = 0)]
    pub agent_concurrency: usize,
    /// How often workflow schedules are checked, in seconds (1–30).
    #[arg(long, env = "TRADELOOM_SCHEDULE_TICK_SECS", default_value_t = 15)]
    pub schedule_tick_secs: u64,
    #[command(flatten)]
    pub limits: crate::flow::FlowLimitOptions,
}

impl WorkflowOptions {
    /// The SSRF policy of `--http-allow` and `--http-deny-path`.
    pub fn ssrf_policy(&self) -> Result<SsrfPolicy> {
        let mut policy = SsrfPolicy::default();
        for entry in self
            .http_allow
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
        {
            if entry.contains('/') {
                let cidr = entry
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--http-allow {entry}: {e}"))?;
                policy.allow_cidrs.push(cidr);
            } else {
                policy.allow_hosts.push(entry.to_string());
            }
        }
        for path in self
            .http_deny_path
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
        {
            if !path.starts_with('/') {
                anyhow::bail!("--http-deny-path {path}: a path starts with `/`, e.g. `/admin`");
            }
            policy.deny_paths.push(path.to_string());
        }
        policy
            .validate()
            .map_err(|e| anyhow::anyhow!("--http-allow: {e}"))?;
        Ok(policy)
    }

    /// The guarded client and key allow-list of `serve`, shared by the simulator, the workflow
    /// runtime and the health probes.
    pub fn outbound(&self) -> Result<Outbound> {
        for name in &self.llm_key_env {
            let name = name.trim();
            if !tradeloom_flow::node_config::is_env_name(name) {
                anyhow::bail!(
                    "--llm-key-env: `{name}` is not an environment variable name (A-Z, 0-9, `_`; not starting with a digit)"
                );
            }
        }
        Outbound::new(
            self.ssrf_policy()?,
            SecretEnv::new(self.llm_key_env.iter().cloned()),
        )
        .map_err(|e| anyhow::anyhow!("--http-allow: {e}"))
    }

    /// The workflow runtime `serve` runs, over an in-process queue.
    pub fn runtime(
        &self,
        store: Arc<dyn Store>,
        data_dir: &Path,
        sim: Arc<Simulator>,
        config_dir: Option<tradeloom_agents::ConfigDir>,
    ) -> Result<Arc<tradeloom_orchestrator::Runtime>> {
        let mut config = tradeloom_orchestrator::RuntimeConfig::new(data_dir.to_path_buf());
        config.base_dir = std::env::current_dir().context("no current directory")?;
        config.config_dir = config_dir;
        config.workers_per_pool = self.workflow_workers.max(1);
        config.flow_limits = self.limits.limits();
        if self.agent_concurrency > 0 {
            config
                .pool_limits
                .insert("agent".into(), self.agent_concurrency);
        }
        config.ssrf = self.ssrf_policy()?;
        config.secrets = self.outbound()?.secrets;
        let queue: Arc<dyn tradeloom_queue::Queue> =
            Arc::new(tradeloom_queue::InMemoryQueue::new());
        tradeloom_orchestrator::Runtime::new(store, queue, config, Some(sim))
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}
