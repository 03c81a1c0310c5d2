//! Client commands of a running `tradeloom serve`:
//! `flow submit|status|patch|cancel|pause|resume|runs`, `approve`, `reject` and `approvals`.
//! They talk to the REST API only (never to the store), so they work against a server on
//! another machine.
//!
//! Exit codes: 0 success (a followed run completed); 1 an API or connection error, or a followed
//! run that failed or was cancelled; 2 bad input found before any request (a definition that
//! does not compile, a malformed `--input`) or a rejected patch; 3 a followed run is waiting for
//! approval; 4 following timed out.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use tradeloom_client::{
    ApprovalFilter, Client, DecideRequest, Decision, Error as ClientError, FollowEnd, RunFilter,
    RunStatus, StartRun,
};

use crate::flow::{Submission, prepare_submission, read_patch};
use tradeloom_flow::document::parse_inputs;

/// The default `--api`.
const DEFAULT_API: &str = "http://127.0.0.1:8080";
/// How often a followed run is polled.
const POLL: Duration = Duration::from_millis(150);

const EXIT_FAILED: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;
const EXIT_WAITING: u8 = 3;
const EXIT_TIMED_OUT: u8 = 4;

/// Where the API is and how to authenticate (every client command).
#[derive(Args, Clone)]
pub struct ApiOptions {
    /// Base URL of the tradeloom API (`tradeloom serve`).
    #[arg(long = "api", global = true, env = "TRADELOOM_API_URL", default_value = DEFAULT_API)]
    pub url: String,
    /// API key, sent as `Authorization: Bearer KEY` (never printed).
    #[arg(
        long = "api-key",
        global = true,
        env = "TRADELOOM_API_KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
}

/// `tradeloom flow submit`.
#[derive(Args)]
pub struct SubmitArgs {
    /// The workflow definition (YAML or JSON).
    pub file: PathBuf,
    /// A run input `NAME=VALUE` (repeatable); VALUE is read as JSON when it is valid JSON
    /// (`5`, `true`, `[1,2]`, `"quoted"`), else as a string.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// Run inputs as one JSON object (`--input` values override its keys).
    #[arg(long = "inputs-json", value_name = "JSON")]
    pub inputs_json: Option<String>,
    /// The run's priority: its ready nodes are taken from the work queues before those of runs
    /// of a lower priority (default: normal).
    #[arg(long, value_parser = ["high", "normal", "low"])]
    pub priority: Option<String>,
    /// Follow the run: print each node transition, stop when it finishes (exit 0 completed,
    /// 1 failed or cancelled) or waits for approval (exit 3).
    #[arg(long)]
    pub wait: bool,
    /// With `--wait`: give up after this many seconds (exit 4).
    #[arg(long, value_name = "SECS", requires = "wait")]
    pub timeout: Option<f64>,
    /// Print JSON instead of text (with `--wait`, only the final run).
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom flow status`.
#[derive(Args)]
pub struct StatusArgs {
    /// Workflow run id, a unique prefix of one, or `latest`.
    pub run_id: String,
    /// Follow the run like `flow submit --wait` (exit 0 completed, 1 failed or cancelled,
    /// 3 waiting for approval, 4 timed out).
    #[arg(long)]
    pub watch: bool,
    /// With `--watch`: give up after this many seconds (exit 4).
    #[arg(long, value_name = "SECS", requires = "watch")]
    pub timeout: Option<f64>,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom flow patch`.
#[derive(Args)]
pub struct PatchArgs {
    /// Workflow run id, a unique prefix of one, or `latest`.
    pub run_id: String,
    /// A JSON (or YAML) array of RFC 6902 operations on the run's definition; `-` reads stdin.
    pub patch_file: PathBuf,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom flow cancel`.
#[derive(Args)]
pub struct CancelArgs {
    /// Workflow run id, a unique prefix of one, or `latest`.
    pub run_id: String,
    /// Why (recorded with the cancellation).
    #[arg(long)]
    pub reason: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom flow pause` and `tradeloom flow resume`.
#[derive(Args)]
pub struct ControlArgs {
    /// Workflow run id, a unique prefix of one, or `latest`.
    pub run_id: String,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom flow runs`.
#[derive(Args)]
pub struct RunsArgs {
    /// Only runs in this status: pending, running, waiting, paused, completed, failed,
    /// cancelled.
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom approve` and `tradeloom reject`.
#[derive(Args)]
pub struct DecideArgs {
    /// The approval id (printed by `flow submit --wait`, `flow status`, `approvals`), a unique
    /// prefix of one, or `latest`.
    pub id: String,
    #[arg(long)]
    pub comment: Option<String>,
    /// Who decides (default: the API key's name, or `anonymous`).
    #[arg(long)]
    pub by: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom approvals`.
#[derive(Args)]
pub struct ApprovalsArgs {
    /// pending, approved, rejected, expired, cancelled, or `all`.
    #[arg(long, default_value = "pending")]
    pub status: String,
    /// Only approvals of this run (id, unique prefix, or `latest`).
    #[arg(long = "run")]
    pub run_id: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// A client of the API `opts` names; a URL that is not an http(s) base URL is bad input.
fn connect(opts: &ApiOptions) -> Result<Client> {
    let client = Client::builder(opts.url.clone())
        .api_key(opts.key.clone())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build();
    match client {
        Ok(client) => Ok(client),
        Err(ClientError::InvalidUrl { source, .. }) => Err(anyhow::Error::new(source).context(
            format!("--api `{}` is not a URL (e.g. {DEFAULT_API})", opts.url),
        )),
        Err(ClientError::UnsupportedUrl { .. }) => bail!(
            "--api `{}` must be an http:// or https:// URL (e.g. {DEFAULT_API})",
            opts.url
        ),
        Err(e) => Err(anyhow::Error::new(e).context("cannot build the HTTP client")),
    }
}

/// How an error of a client command reads: an unreachable API says how to start or find one.
fn explain(e: &anyhow::Error) -> String {
    match e.downcast_ref::<ClientError>() {
        Some(unreachable @ ClientError::Unreachable { .. }) => format!(
            "{unreachable}; start it with `tradeloom serve`, or point --api (or \
             TRADELOOM_API_URL) at a running server"
        ),
        Some(other) => other.to_string(),
        None => format!("{e:#}"),
    }
}

/// Runs a client command: API and connection errors are printed and exit 1.
pub(crate) fn execute<F>(opts: &ApiOptions, work: impl FnOnce(Client) -> F) -> Result<ExitCode>
where
    F: Future<Output = Result<ExitCode>>,
{
    let api = connect(opts)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match rt.block_on(work(api)) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: {}", explain(&e));
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

/// A workflow run id as given (full, a unique prefix, or `latest`).
async fn resolve_run(api: &Client, given: &str) -> Result<String> {
    with_hint(api.resolve_run(given).await, "(see `tradeloom flow runs`)")
}

/// An id that matches nothing (or more than one) names the command that lists the ids.
fn with_hint(resolved: Result<String, ClientError>, hint: &str) -> Result<String> {
    match resolved {
        Ok(id) => Ok(id),
        Err(ClientError::UnknownId(e)) => bail!("{e} {hint}"),
        Err(other) => Err(other.into()),
    }
}

/// Prints `value` as pretty JSON with its keys sorted, as the API's own JSON reads.
pub(crate) fn print_json(value: &impl Serialize) {
    match serde_json::to_value(value) {
        Ok(v) => println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
        ),
        Err(e) => eprintln!("error: cannot write JSON: {e}"),
    }
}

/// `tradeloom flow submit FILE`: compile locally, create or update the workflow, start a run,
/// optionally follow it.
pub fn submit(opts: &ApiOptions, args: &SubmitArgs) -> Result<ExitCode> {
    let Some(Submission {
        name,
        definition: body,
        ir_hash: local_hash,
    }) = prepare_submission(&args.file)?
    else {
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    };
    let inputs = parse_inputs(&args.inputs, args.inputs_json.as_deref())?;
    let timeout = args.timeout.map(seconds).transpose().context("--timeout")?;
    execute(opts, |api| async move {
        let (workflow, how) = api.save_workflow(&name, &body).await?;
        if !args.json {
            println!(
                "workflow `{name}` {how}: id {}, version {}",
                workflow.id, workflow.version
            );
            if workflow.ir_hash != local_hash {
                println!(
                    "warning: the server compiled IR {}, this tradeloom compiles {local_hash} (different versions?)",
                    workflow.ir_hash
                );
            }
            for w in &workflow.warnings {
                println!("warning: {w}");
            }
        }
        let start = StartRun {
            inputs,
            version: Some(workflow.version),
            priority: args.priority.clone(),
        };
        let started = api.start_run(&workflow.id, &start).await?;
        let run_id = started.run_id;
        if !args.wait {
            if args.json {
                print_json(&json!({
                    "workflow_id": workflow.id, "workflow_version": workflow.version,
                    "workflow": how.to_string(), "run_id": run_id, "status": started.status,
                }));
            } else {
                println!("run {run_id} started ({})", started.status);
                println!("follow it with: tradeloom flow status {run_id} --watch");
            }
            return Ok(ExitCode::SUCCESS);
        }
        if !args.json {
            println!("run {run_id} started; following it");
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        follow(&api, &run_id, 0, args.json, deadline).await
    })
}

/// Follows a run (printing each event after `after_seq` unless `json_out`) until it finishes,
/// waits for an approval or `deadline` passes; prints the end (the run's table, pending
/// approvals with the commands to decide them) and returns the exit code.
async fn follow(
    api: &Client,
    run_id: &str,
    after_seq: i64,
    json_out: bool,
    deadline: Option<Instant>,
) -> Result<ExitCode> {
    let (view, end) = api
        .follow_run(run_id, after_seq, POLL, deadline, |event| {
            if !json_out {
                println!("{}", event.summary());
            }
        })
        .await?;
    let status = view.status;
    if json_out {
        let mut out = serde_json::to_value(&view)?;
        // A run serializes to a JSON object, so this inserts a key (never panics).
        out["timed_out"] = Value::Bool(end == FollowEnd::TimedOut);
        print_json(&out);
    } else {
        print!("{}", view.text(&api_flag(api)));
        match end {
            FollowEnd::Finished => println!("run {run_id} {status}"),
            FollowEnd::Waiting => println!(
                "run {run_id} is waiting for approval; decide with one of the commands above"
            ),
            FollowEnd::TimedOut => println!(
                "timed out while the run is {status}; follow it with: tradeloom flow status {run_id} --watch"
            ),
        }
    }
    Ok(match end {
        FollowEnd::TimedOut => ExitCode::from(EXIT_TIMED_OUT),
        FollowEnd::Waiting => ExitCode::from(EXIT_WAITING),
        FollowEnd::Finished if status == RunStatus::Completed => ExitCode::SUCCESS,
        FollowEnd::Finished => ExitCode::from(EXIT_FAILED),
    })
}

/// The `--api` flag to repeat in printed commands, when it is not the default.
fn api_flag(api: &Client) -> String {
    let url = api.base_url();
    if url == DEFAULT_API {
        String::new()
    } else {
        format!(" --api {url}")
    }
}

/// `tradeloom flow status RUN_ID [--watch]`.
pub fn status(opts: &ApiOptions, args: &StatusArgs) -> Result<ExitCode> {
    let timeout = args.timeout.map(seconds).transpose().context("--timeout")?;
    execute(opts, |api| async move {
        let run_id = resolve_run(&api, &args.run_id).await?;
        if !args.watch {
            let view = api.run(&run_id).await?;
            if args.json {
                print_json(&view);
            } else {
                print!("{}", view.text(&api_flag(&api)));
            }
            return Ok(ExitCode::SUCCESS);
        }
        // Only what happens from now on is printed.
        let seen = api
            .run_events_after(&run_id, 0)
            .await?
            .iter()
            .map(|e| e.seq)
            .max()
            .unwrap_or(0);
        let deadline = timeout.map(|t| Instant::now() + t);
        follow(&api, &run_id, seen, args.json, deadline).await
    })
}

/// `tradeloom flow patch RUN_ID PATCH_FILE`.
pub fn patch(opts: &ApiOptions, args: &PatchArgs) -> Result<ExitCode> {
    let operations = read_patch(&args.patch_file)?;
    execute(opts, |api| async move {
        let run_id = resolve_run(&api, &args.run_id).await?;
        match api.patch_run(&run_id, &operations).await {
            Ok(applied) => {
                if args.json {
                    print_json(&applied);
                } else {
                    println!(
                        "run {run_id}: patch applied; IR version {}",
                        applied.ir_version
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(ClientError::Api(rejected))
                if rejected.status == StatusCode::UNPROCESSABLE_ENTITY =>
            {
                if args.json {
                    print_json(&rejected.body);
                } else {
                    eprintln!(
                        "run {run_id}: the patch was rejected ({} reason(s)); nothing changed:",
                        rejected.details.len()
                    );
                    for r in &rejected.details {
                        eprintln!("  - {r}");
                    }
                }
                Ok(ExitCode::from(EXIT_BAD_INPUT))
            }
            Err(e) => Err(e.into()),
        }
    })
}

/// `tradeloom flow cancel RUN_ID`.
pub fn cancel(opts: &ApiOptions, args: &CancelArgs) -> Result<ExitCode> {
    execute(opts, |api| async move {
        let run_id = resolve_run(&api, &args.run_id).await?;
        let view = api.cancel_run(&run_id, args.reason.as_deref()).await?;
        if args.json {
            print_json(&view);
        } else {
            println!("run {run_id} {}", view.status);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `tradeloom flow pause RUN_ID`.
pub fn pause(opts: &ApiOptions, args: &ControlArgs) -> Result<ExitCode> {
    execute(opts, |api| async move {
        let run_id = resolve_run(&api, &args.run_id).await?;
        let view = api.pause_run(&run_id).await?;
        if args.json {
            print_json(&view);
        } else {
            println!("run {run_id} {}", view.status);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `tradeloom flow resume RUN_ID`.
pub fn resume(opts: &ApiOptions, args: &ControlArgs) -> Result<ExitCode> {
    execute(opts, |api| async move {
        let run_id = resolve_run(&api, &args.run_id).await?;
        let view = api.resume_run(&run_id).await?;
        if args.json {
            print_json(&view);
        } else {
            println!("run {run_id} {}", view.status);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `tradeloom flow runs`.
pub fn runs(opts: &ApiOptions, args: &RunsArgs) -> Result<ExitCode> {
    execute(opts, |api| async move {
        let filter = RunFilter {
            status: args.status.clone(),
            limit: Some(args.limit),
            offset: None,
        };
        let list = api.list_runs(&filter).await?;
        if args.json {
            print_json(&list);
            return Ok(ExitCode::SUCCESS);
        }
        match list.table() {
            None => println!("no workflow runs"),
            Some(table) => print!("{table}"),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `tradeloom approve ID` (`approve = true`) and `tradeloom reject ID`.
pub fn decide(opts: &ApiOptions, args: &DecideArgs, approve: bool) -> Result<ExitCode> {
    let decision = if approve {
        Decision::Approve
    } else {
        Decision::Reject
    };
    execute(opts, |api| async move {
        let request = DecideRequest {
            decision,
            comment: args.comment.clone(),
            by: args.by.clone(),
        };
        let id = with_hint(
            api.resolve_approval(&args.id).await,
            "(see `tradeloom approvals --status all`)",
        )?;
        let approval = api.decide(&id, &request).await?;
        if args.json {
            print_json(&approval);
            return Ok(ExitCode::SUCCESS);
        }
        let run_id = &approval.run_id;
        println!(
            "approval {id} {} by {} (run {run_id}, node {})",
            approval.status,
            approval.decided_by.as_deref().unwrap_or_default(),
            approval.node_id
        );
        if !run_id.is_empty() {
            let view = api.run(run_id).await?;
            println!(
                "run {run_id} is {}; follow it with: tradeloom flow status {run_id} --watch{}",
                view.status,
                api_flag(&api)
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `tradeloom approvals`.
pub fn approvals(opts: &ApiOptions, args: &ApprovalsArgs) -> Result<ExitCode> {
    execute(opts, |api| async move {
        let mut filter = ApprovalFilter::default();
        if args.status != "all" {
            filter.status = Some(args.status.clone());
        }
        if let Some(r) = &args.run_id {
            filter.run_id = Some(resolve_run(&api, r).await?);
        }
        let list = api.list_approvals(&filter).await?;
        if args.json {
            print_json(&list);
            return Ok(ExitCode::SUCCESS);
        }
        match list.table() {
            None => {
                let status = if args.status == "all" {
                    ""
                } else {
                    &args.status
                };
                println!("no {status} approvals");
            }
            Some(table) => print!("{table}"),
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn seconds(s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| anyhow::anyhow!("`{s}` is not a number of seconds"))
}
