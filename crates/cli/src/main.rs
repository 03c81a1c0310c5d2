//! tradeloom: the command-line entry point. It parses arguments and wires the crates together;
//! no trading logic lives here.
//!
//! Exit codes: 0 success; 1 a run that failed, or a verification mismatch; 2 bad input (usage,
//! spec, data) where nothing was run; 3 a followed workflow run waits for approval, 4 following
//! it timed out (`flow submit --wait`, `flow status --watch`).

/// Every `eprintln!` of the binary (errors, warnings, progress lines) goes through
/// [`tradeloom_server::logging::stderr_line`], so that `--log-format json` leaves nothing but
/// JSON lines on stderr. Defined before the modules, it shadows the standard macro in all of
/// them.
macro_rules! eprintln {
    () => {
        ::tradeloom_server::logging::stderr_line("")
    };
    ($($arg:tt)*) => {
        ::tradeloom_server::logging::stderr_line(&format!($($arg)*))
    };
}

mod access;
mod bench;
mod commands;
mod connectivity;
mod deploy;
mod drill;
mod flow;
mod flow_client;
mod health;
mod interruption;
mod killswitch;
mod live;
mod metrics_cmd;
mod paper;
mod paper_order;
mod reconcile;
mod registry;
mod serve;
mod simulation;
mod ssrf;
mod store;
mod sweep;
use tradeloom_core::table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tradeloom_server::logging;

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
    /// The job store: a SQLite path or a `postgres://` URL (default `<data-dir>/tradeloom.db`).
    #[arg(long, global = true, env = "TRADELOOM_DATABASE_URL")]
    database_url: Option<String>,
    /// Log line format on stderr: `json` (one object per line, with run_id/job_id/trace_id) or
    /// `text`. Default: `json` for `serve` and `mock-llm`, `text` for other commands.
    #[arg(long, global = true, env = "TRADELOOM_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormatArg>,
    /// Log level or `EnvFilter` directives (e.g. `debug`, `info,tradeloom_orchestrator=debug`);
    /// overrides RUST_LOG. Default: `info` for `serve` and `mock-llm`, `warn` for other commands.
    #[arg(long, global = true, value_parser = logging::parse_level)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormatArg {
    /// One JSON object per line, span fields (run_id, job_id, trace_id, …) flattened into it.
    Json,
    /// Human-readable lines.
    Text,
}

#[derive(Subcommand)]
enum Command {
    /// Run a run spec and write its run folder: a backtest to its end, a paper run (`mode:
    /// paper`) until Ctrl-C, SIGTERM, its `stop_at` or its feed's end.
    Run {
        /// The run spec (YAML); not with `--resume`.
        #[arg(required_unless_present = "resume", conflicts_with = "resume")]
        spec: Option<PathBuf>,
        /// Continue the paper run with this id (or a unique prefix) whose process died.
        #[arg(long, value_name = "RUN_ID")]
        resume: Option<String>,
        /// Paper runs: allow the feed to connect to this host or host:port whatever it
        /// resolves to (repeatable; the outbound guard blocks private addresses otherwise).
        #[arg(long = "http-allow", value_name = "HOST")]
        http_allow: Vec<String>,
        /// Print one JSON object as the last line of stdout instead of the summary table.
        #[arg(long)]
        json: bool,
        /// No progress bar (no progress lines for a paper run).
        #[arg(long)]
        quiet: bool,
    },
    /// A parameter sweep: one run per point of a grid of spec values, in parallel and
    /// resumable, ranked by a metric with a heat map; optionally walk-forward.
    Sweep(sweep::SweepArgs),
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
    /// Re-render report.md, equity.svg and report.html of a run from its files; prints their
    /// paths.
    Report {
        /// Run id, a unique prefix of one, or `latest`.
        id: String,
        /// Then open report.html in a browser ($BROWSER, else xdg-open / open).
        #[arg(long)]
        open: bool,
    },
    /// Recompute the books of a backtest run (from its journal's fills) or a simulation job
    /// (replaying its model-days) and compare them with every report and the store; writes
    /// reconciliation_result.json; exit 0 all agree, 1 any mismatch, 2 an error.
    Reconcile {
        /// Run id, a unique prefix of one, `latest`, or a simulation job id (or prefix).
        id: String,
        /// Print the result JSON instead of the table.
        #[arg(long)]
        json: bool,
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
    /// Run a simulation job (LLM models trading daily sessions) in this process.
    Simulate {
        /// The simulation config (YAML or JSON); not with `--ai-trader-config`.
        #[arg(
            required_unless_present = "ai_trader_config",
            conflicts_with = "ai_trader_config"
        )]
        config: Option<PathBuf>,
        /// An AI-Trader `default_config.json` instead of a simulation config: mapped field by
        /// field (exit 2 naming every field that cannot be); needs `--universe`.
        #[arg(long, value_name = "FILE", requires = "universe")]
        ai_trader_config: Option<PathBuf>,
        /// With `--ai-trader-config`: the folder of daily bars to trade (one SYMBOL.csv per
        /// symbol, news.jsonl beside them).
        #[arg(long, value_name = "DIR", requires = "ai_trader_config")]
        universe: Option<PathBuf>,
        /// Print one JSON object instead of the leaderboard table.
        #[arg(long)]
        json: bool,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// List simulation jobs, show their status, pause, resume or cancel them.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Completed model-days of simulation jobs, or a job's leaderboard.
    Results(simulation::ResultsArgs),
    /// Database migrations of the job store.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Serve the REST API (simulation jobs, results, health, /docs) and run workflows: every
    /// role in one process, or those of --roles in a cluster (--redis-url).
    Serve(serve::ServeArgs),
    /// Everything in one process on the embedded default (SQLite, in-process queue): `serve`
    /// with every role.
    Up(serve::ServeArgs),
    /// A cluster's coordinator process: applies workflow signals, fires approval timers and
    /// schedules (`serve --roles coordinator`; needs --redis-url).
    Coordinator(serve::ServeArgs),
    /// A cluster's worker process: runs workflow nodes of --pool P… with --concurrency N loops
    /// per pool (`serve --roles worker`; needs --redis-url).
    Worker(serve::ServeArgs),
    /// API keys of the REST API (operating on the store directly).
    Keys {
        #[command(subcommand)]
        command: access::KeysCommand,
    },
    /// An OpenAI-compatible server with deterministic trading policies, for offline use and tests.
    MockLlm {
        #[arg(long, default_value = "127.0.0.1:8089")]
        addr: String,
    },
    /// Apply the workflow HTTP node's SSRF guard to URLs (DNS included, never connecting):
    /// `allowed` or `blocked` with the reason, per URL; exit 0 only if all are allowed.
    SsrfCheck {
        /// The URLs to check.
        #[arg(required = true)]
        urls: Vec<String>,
        #[arg(long)]
        json: bool,
        /// Allow this host or host:port whatever it resolves to (repeatable).
        #[arg(long = "allow-host")]
        allow_hosts: Vec<String>,
    },
    /// Workflow definitions, and workflow runs on a `tradeloom serve` (`--api`).
    Flow {
        #[command(flatten)]
        api: flow_client::ApiOptions,
        #[command(subcommand)]
        command: FlowCommand,
    },
    /// Registered agents on a `tradeloom serve` (`--api`): list, show, create, update, delete,
    /// versions.
    Agents {
        #[command(flatten)]
        api: flow_client::ApiOptions,
        #[command(subcommand)]
        command: registry::RegistryCommand,
    },
    /// Registered skills on a `tradeloom serve` (`--api`): list, show, create, update, delete,
    /// versions.
    Skills {
        #[command(flatten)]
        api: flow_client::ApiOptions,
        #[command(subcommand)]
        command: registry::RegistryCommand,
    },
    /// Approve a pending approval of a workflow run (its `hitl` node continues down `approve`).
    Approve {
        #[command(flatten)]
        api: flow_client::ApiOptions,
        #[command(flatten)]
        args: flow_client::DecideArgs,
    },
    /// Reject a pending approval of a workflow run (its `hitl` node continues down `reject`).
    Reject {
        #[command(flatten)]
        api: flow_client::ApiOptions,
        #[command(flatten)]
        args: flow_client::DecideArgs,
    },
    /// Approvals of workflow runs (default: the pending ones).
    Approvals {
        #[command(flatten)]
        api: flow_client::ApiOptions,
        #[command(flatten)]
        args: flow_client::ApprovalsArgs,
    },
    /// Send one order to a running paper run whose spec has `external_orders: true`: the run
    /// records and journals it, checks it with its kill switch and pre-trade risk, and fills it
    /// on a later bar; waits for the fill.
    Order(paper_order::OrderArgs),
    /// The kill switch (global, per run, per job): engaged, it stops every order of `tradeloom
    /// run` on this data dir.
    Killswitch {
        #[command(subcommand)]
        command: killswitch::KillSwitchCommand,
    },
    /// Failure drills: scripted fault injections against a live local instance started for
    /// each drill, asserting the operational response; reports in `<data-dir>/drills/`.
    Drill {
        #[command(subcommand)]
        command: drill::DrillCommand,
    },
    /// The meta health monitor: five sensors (processes, heartbeats, data feeds, control plane,
    /// coherence), rm_meta and GREEN/DEGRADED/CRITICAL/DEAD; writes health/meta_health.json.
    /// Without health.yaml it checks the heartbeats found. Exit 0 whenever the check ran, 2 on
    /// a bad health.yaml, 3 when nothing is configured (no health.yaml, no heartbeat file).
    Health(health::HealthArgs),
    /// Connectivity of a run spec or simulation config: required environment variables
    /// (never their values) and a loopback-only probe of local endpoints.
    Connectivity {
        #[command(subcommand)]
        command: connectivity::ConnectivityCommand,
    },
    /// Prometheus metrics of the data dir's run folders, connectivity files, kill switches and
    /// health: `export` prints them, `serve` answers scrapes at `GET /metrics`.
    Metrics {
        #[command(subcommand)]
        command: metrics_cmd::MetricsCommand,
    },
    /// The scan bridge: publish every new scan file of a directory (Arrow IPC, Parquet, CSV,
    /// JSON lines) into a feature map, until SIGTERM or Ctrl-C.
    Bridge(live::BridgeArgs),
    /// The event-driven trader: a paper run of a `scan_dir` spec that trades each scan the
    /// bridge publishes and publishes its state and per-day PnL into `<map>.trader`; until
    /// SIGTERM or Ctrl-C (graceful) or `stop_at`.
    Trader(live::TraderArgs),
    /// Feature maps (the bridge's scans, a trader's state).
    Map {
        #[command(subcommand)]
        command: live::MapCommand,
    },
    /// Deployment files: `deploy systemd` writes unit files with restart policies and
    /// resource limits.
    Deploy {
        #[command(subcommand)]
        command: deploy::DeployCommand,
    },
    /// Benchmarks that print figures.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
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
enum FlowCommand {
    /// Parse and compile a workflow (YAML or JSON); print its nodes in order and its IR hash,
    /// or every problem with its path and line (exit 2).
    Validate {
        file: PathBuf,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        limits: flow::FlowLimitOptions,
        /// The server's config folder: the skills of `script` nodes must be files in it (as
        /// `serve --config-dir` requires when they run).
        #[arg(long)]
        config_dir: Option<PathBuf>,
    },
    /// Compile a workflow locally, create it (or a new version of it) on the server and start a
    /// run; `--wait` follows it (exit 0 completed, 1 failed/cancelled, 3 waiting for approval,
    /// 4 timed out).
    Submit(flow_client::SubmitArgs),
    /// A run's status, IR version, nodes and pending approvals; `--watch` follows it.
    Status(flow_client::StatusArgs),
    /// Apply an RFC 6902 JSON Patch to a running workflow; prints the new IR version or every
    /// reason it was rejected (exit 2).
    Patch(flow_client::PatchArgs),
    /// Cancel an unfinished run.
    Cancel(flow_client::CancelArgs),
    /// Pause a pending, running or waiting run: no new node starts until it is resumed (nodes
    /// already running finish; timers that fall due meanwhile take effect on resume).
    Pause(flow_client::ControlArgs),
    /// Resume a paused run.
    Resume(flow_client::ControlArgs),
    /// Workflow runs, newest first.
    Runs(flow_client::RunsArgs),
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Jobs, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// A job's progress and every model-day.
    Status {
        /// Job id, a unique prefix of one, or `latest`.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Pause a job: no new model-day starts (those in flight finish), completed days are kept;
    /// it stays paused until `jobs resume` (a server restart does not resume it).
    Pause {
        /// Job id, a unique prefix of one, or `latest`.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Resume a paused job and run the rest of it in this process (as `simulate` does), unless
    /// a live server still runs it (it carries on by itself).
    Resume {
        /// Job id, a unique prefix of one, or `latest`.
        id: String,
        #[arg(long)]
        json: bool,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
    },
    /// Cancel an unfinished job: its model-days not started are `cancelled`, those in flight
    /// finish; triggering the same config again runs the cancelled days.
    Cancel {
        /// Job id, a unique prefix of one, or `latest`.
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply pending migrations.
    Migrate {
        #[arg(long)]
        json: bool,
    },
    /// Show which migrations are applied, without changing anything.
    Status {
        #[arg(long)]
        json: bool,
    },
}

/// What SIGPIPE does to this process.
#[cfg(unix)]
#[allow(unsafe_code)]
fn sigpipe(default_action: bool) {
    let action = if default_action {
        libc::SIG_DFL
    } else {
        libc::SIG_IGN
    };
    // SAFETY: signal(2) with SIG_DFL or SIG_IGN installs no handler code; it runs in main
    // before any thread is started, so nothing races with it.
    unsafe {
        libc::signal(libc::SIGPIPE, action);
    }
}

fn main() -> ExitCode {
    // A command whose output goes to a closed pipe (`tradeloom … | head -1`) ends quietly, as
    // other Unix tools do, instead of panicking in `println!`: the Rust runtime ignores SIGPIPE,
    // so its default action is restored. Servers keep ignoring it (a peer that hangs up must
    // not kill them).
    #[cfg(unix)]
    sigpipe(true);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Usage errors in the requested log format too; help and version as clap prints them.
        Err(e)
            if e.use_stderr() && logging::requested_format() == Some(logging::LogFormat::Json) =>
        {
            logging::set_format(logging::LogFormat::Json);
            eprintln!(
                "error: {}",
                e.to_string().trim_start_matches("error: ").trim_end()
            );
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    let role = match cli.command {
        Command::Serve(_)
        | Command::Up(_)
        | Command::Coordinator(_)
        | Command::Worker(_)
        | Command::MockLlm { .. } => logging::Role::LongRunning,
        _ => logging::Role::OneShot,
    };
    #[cfg(unix)]
    if role == logging::Role::LongRunning {
        sigpipe(false);
    }
    let format = cli.log_format.map(|f| match f {
        LogFormatArg::Json => logging::LogFormat::Json,
        LogFormatArg::Text => logging::LogFormat::Text,
    });
    if let Err(e) = logging::init(format, cli.log_level.as_deref(), role) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    // Runs whose process died are marked interrupted before anything lists or reads them.
    if matches!(
        cli.command,
        Command::Run { .. }
            | Command::Runs { .. }
            | Command::Report { .. }
            | Command::Verify { .. }
            | Command::Reconcile { .. }
            | Command::Serve(_)
            | Command::Up(_)
            | Command::Coordinator(_)
            | Command::Worker(_)
            | Command::Health(_)
            | Command::Metrics { .. }
            | Command::Trader(_)
    ) {
        interruption::sweep_runs(&cli.data_dir);
    }
    let data_dir = cli.data_dir;
    let db_url = cli.database_url.as_deref();
    let result = match cli.command {
        Command::Run {
            spec,
            resume,
            http_allow,
            json,
            quiet,
        } => match (spec, resume) {
            (_, Some(id)) => paper::run(
                paper::Target::Resume(&id),
                &data_dir,
                http_allow,
                json,
                quiet,
                None,
            ),
            (Some(spec), None) => commands::run(&spec, &data_dir, http_allow, json, quiet),
            (None, None) => Err(anyhow::anyhow!("a run spec or --resume RUN_ID is required")),
        },
        Command::Sweep(args) => sweep::run(&data_dir, &args),
        Command::Spec { command } => match command {
            SpecCommand::Schema => commands::spec_schema(),
            SpecCommand::Validate { file } => commands::spec_validate(&file),
        },
        Command::Runs { command } => match command {
            RunsCommand::List { json } => commands::runs_list(&data_dir, json),
            RunsCommand::Show { id, json } => commands::runs_show(&data_dir, &id, json),
        },
        Command::Report { id, open } => commands::report(&data_dir, &id, open),
        Command::Verify { id, json } => commands::verify(&data_dir, &id, json),
        Command::Reconcile { id, json } => reconcile::run(&data_dir, db_url, &id, json),
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
        Command::Bench { command } => bench::run(command),
        Command::Deploy { command } => deploy::run(&command),
        Command::Bridge(args) => live::bridge(&data_dir, &args),
        Command::Map { command } => live::map(&data_dir, &command),
        Command::Trader(args) => live::trader(&data_dir, &args),
        Command::Simulate {
            config,
            ai_trader_config,
            universe,
            json,
            quiet,
        } => {
            let source = match (config, ai_trader_config, universe) {
                (_, Some(file), Some(universe)) => {
                    simulation::ConfigSource::AiTrader { file, universe }
                }
                (Some(file), _, _) => simulation::ConfigSource::File(file),
                // clap requires one of the two, and --universe with --ai-trader-config.
                _ => simulation::ConfigSource::Missing,
            };
            simulation::simulate(&source, &data_dir, db_url, json, quiet)
        }
        Command::Jobs { command } => match command {
            JobsCommand::List { limit, json } => {
                simulation::jobs_list(&data_dir, db_url, limit, json)
            }
            JobsCommand::Status { id, json } => {
                simulation::jobs_status(&data_dir, db_url, &id, json)
            }
            JobsCommand::Pause { id, json } => simulation::jobs_control(
                &data_dir,
                db_url,
                &id,
                tradeloom_store::JobAction::Pause,
                json,
            ),
            JobsCommand::Cancel { id, json } => simulation::jobs_control(
                &data_dir,
                db_url,
                &id,
                tradeloom_store::JobAction::Cancel,
                json,
            ),
            JobsCommand::Resume { id, json, quiet } => {
                simulation::jobs_resume(&data_dir, db_url, &id, json, quiet)
            }
        },
        Command::Results(args) => simulation::results(&data_dir, db_url, &args),
        Command::Db { command } => match command {
            DbCommand::Migrate { json } => simulation::db(&data_dir, db_url, true, json),
            DbCommand::Status { json } => simulation::db(&data_dir, db_url, false, json),
        },
        Command::Serve(args) => serve::serve(&data_dir, db_url, &args, None),
        Command::Up(args) => serve::serve(
            &data_dir,
            db_url,
            &args,
            Some(("up", "api,coordinator,worker")),
        ),
        Command::Coordinator(args) => serve::serve(
            &data_dir,
            db_url,
            &args,
            Some(("coordinator", "coordinator")),
        ),
        Command::Worker(args) => serve::serve(&data_dir, db_url, &args, Some(("worker", "worker"))),
        Command::Keys { command } => access::keys(&data_dir, db_url, command),
        Command::MockLlm { addr } => serve::mock_llm(&addr),
        Command::Flow { api, command } => match command {
            FlowCommand::Validate {
                file,
                json,
                limits,
                config_dir,
            } => flow::validate(&file, json, &limits, config_dir.as_deref()),
            FlowCommand::Submit(args) => flow_client::submit(&api, &args),
            FlowCommand::Status(args) => flow_client::status(&api, &args),
            FlowCommand::Patch(args) => flow_client::patch(&api, &args),
            FlowCommand::Cancel(args) => flow_client::cancel(&api, &args),
            FlowCommand::Pause(args) => flow_client::pause(&api, &args),
            FlowCommand::Resume(args) => flow_client::resume(&api, &args),
            FlowCommand::Runs(args) => flow_client::runs(&api, &args),
        },
        Command::Killswitch { command } => killswitch::run(&data_dir, command),
        Command::Order(args) => paper_order::run(&data_dir, args),
        Command::Metrics { command } => metrics_cmd::run(&data_dir, command),
        Command::Connectivity { command } => connectivity::run(command, &data_dir, db_url),
        Command::Drill { command } => drill::run(&data_dir, command),
        Command::Health(args) => health::run(&data_dir, db_url, &args),
        Command::Agents { api, command } => {
            registry::run(tradeloom_client::DefinitionKind::Agent, &api, &command)
        }
        Command::Skills { api, command } => {
            registry::run(tradeloom_client::DefinitionKind::Skill, &api, &command)
        }
        Command::Approve { api, args } => flow_client::decide(&api, &args, true),
        Command::Reject { api, args } => flow_client::decide(&api, &args, false),
        Command::Approvals { api, args } => flow_client::approvals(&api, &args),
        Command::SsrfCheck {
            urls,
            json,
            allow_hosts,
        } => ssrf::check(&urls, allow_hosts, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
