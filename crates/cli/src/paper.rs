//! `tradeloom run SPEC` for a paper spec, and `tradeloom run --resume RUN_ID`: the run on a
//! thread of its own, progress on stderr, and Ctrl-C or SIGTERM as a graceful stop (a second
//! Ctrl-C ends the process at once; the run can then be resumed).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use tradeloom_core::connectivity::Connectivity;
use tradeloom_core::{Event, Money, UnixNanos};
use tradeloom_engine::EquityPoint;
use tradeloom_live::{FeedOptions, open_feed};
use tradeloom_net::SsrfPolicy;
use tradeloom_runs::paper::{PaperObserver, PaperOptions, StopSignal, resume_spec, run_paper};
use tradeloom_runs::spec::ResolvedSpec;
use tradeloom_runs::{ExecuteError, RunOutcome, SpecSource};

/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// What `tradeloom run` was asked for.
pub enum Target<'a> {
    /// A new run of this (paper) spec, loaded already.
    Spec(Box<ResolvedSpec>),
    /// Resume this run.
    Resume(&'a str),
}

/// Prints a line on stderr when the run starts and progress every two seconds.
struct Progress {
    quiet: bool,
    last: Instant,
    events: u64,
    orders: u64,
    fills: u64,
    /// The last equity point's equity (formatted only when a line is printed).
    equity: Option<Money>,
    run_id: String,
    /// Calls of [`Progress::report`].
    calls: u64,
}

impl PaperObserver for Progress {
    fn on_start(&mut self, run_id: &str, run_dir: &Path) {
        self.run_id = run_id.to_string();
        if !self.quiet {
            eprintln!(
                "paper run {run_id} started (folder {}); Ctrl-C or SIGTERM stops it",
                run_dir.display()
            );
        }
    }

    fn on_event(&mut self, event: &Event, _wall: UnixNanos) {
        self.events += 1;
        match event {
            Event::OrderSubmitted { .. } => self.orders += 1,
            Event::OrderFilled { .. } => self.fills += 1,
            _ => {}
        }
        self.report();
    }

    fn on_equity(&mut self, point: &EquityPoint) {
        self.equity = Some(point.equity);
        self.report();
    }
}

impl Progress {
    fn report(&mut self) {
        // Called every equity point (every bar): the clock is read once in 1,024 calls.
        self.calls = self.calls.wrapping_add(1);
        if self.quiet || !self.calls.is_multiple_of(1024) || self.last.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.last = Instant::now();
        eprintln!(
            "paper run {}: {} events, {} orders, {} fills, equity {}",
            self.run_id,
            self.events,
            self.orders,
            self.fills,
            self.equity
                .map_or_else(|| "-".to_string(), |e| e.to_string())
        );
    }
}

/// Runs (or resumes) a paper run until it stops; the exit code as `tradeloom run`'s.
pub fn run(
    target: Target<'_>,
    data_dir: &Path,
    http_allow: Vec<String>,
    json: bool,
    quiet: bool,
    connectivity: Option<Connectivity>,
) -> Result<ExitCode> {
    let started = Instant::now();
    let policy = SsrfPolicy {
        allow_hosts: http_allow,
        ..SsrfPolicy::default()
    };
    policy.validate().context("bad --http-allow")?;
    let (spec, resume) = match target {
        Target::Spec(spec) => (*spec, None),
        Target::Resume(id) => match resume_spec(data_dir, id) {
            Ok(spec) => (spec, Some(id.to_string())),
            Err(e) => return Ok(rejected(json, &e.to_string())),
        },
    };
    let feed = match open_feed(
        &spec,
        &FeedOptions {
            data_dir: data_dir.to_path_buf(),
            policy,
        },
    ) {
        Ok(feed) => feed,
        Err(e) => return Ok(rejected(json, &e.to_string())),
    };
    let stop = StopSignal::new();
    let thread_stop = stop.clone();
    let dir: PathBuf = data_dir.to_path_buf();
    let handle = std::thread::Builder::new()
        .name("paper-run".to_string())
        .spawn(move || {
            let mut progress = Progress {
                quiet,
                last: Instant::now(),
                events: 0,
                orders: 0,
                fills: 0,
                equity: None,
                run_id: String::new(),
                calls: 0,
            };
            let mut options = PaperOptions::new(dir, thread_stop);
            options.resume = resume;
            options.connectivity = connectivity;
            options.observer = Some(&mut progress);
            run_paper(SpecSource::Loaded(Box::new(spec)), feed, options)
        })
        .context("cannot start the paper run's thread")?;
    wait_for_signals(&stop, &handle)?;
    let outcome = handle
        .join()
        .map_err(|_| anyhow::anyhow!("the paper run's thread panicked"))?;
    Ok(report(outcome, json, started))
}

/// Waits until the run's thread ends; Ctrl-C and SIGTERM ask it to stop, a second Ctrl-C ends
/// the process.
fn wait_for_signals<T>(stop: &StopSignal, handle: &std::thread::JoinHandle<T>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal handler")?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut interrupts = 0;
        loop {
            tokio::select! {
                _ = interrupt.recv() => {
                    interrupts += 1;
                    if interrupts > 1 {
                        eprintln!("second Ctrl-C: exiting now; `tradeloom run --resume` continues the run");
                        std::process::exit(130);
                    }
                    eprintln!("stopping the paper run (Ctrl-C again to exit at once)");
                    stop.stop();
                }
                _ = terminate.recv() => {
                    eprintln!("SIGTERM: stopping the paper run");
                    stop.stop();
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if handle.is_finished() {
                        return Ok::<(), anyhow::Error>(());
                    }
                }
            }
        }
    })
}

fn rejected(json: bool, error: &str) -> ExitCode {
    if json {
        println!("{}", json!({"status": "rejected", "error": error}));
    }
    eprintln!("error: {error}");
    ExitCode::from(2)
}

fn report(outcome: Result<RunOutcome, ExecuteError>, json: bool, started: Instant) -> ExitCode {
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(outcome) => {
            let stop_reason = outcome.metadata.stop_reason.clone().unwrap_or_default();
            if json {
                let line = json!({
                    "run_id": outcome.run_id,
                    "run_dir": outcome.run_dir,
                    "mode": "paper",
                    "status": outcome.status.as_str(),
                    "stop_reason": stop_reason,
                    "metrics": outcome.metrics,
                    "elapsed_ms": elapsed_ms,
                });
                println!("{line}");
            } else {
                println!(
                    "paper run {} completed ({stop_reason}) after {:.2} s",
                    outcome.run_id,
                    elapsed_ms as f64 / 1000.0
                );
                print!("{}", outcome.text());
            }
            ExitCode::SUCCESS
        }
        Err(ExecuteError::Rejected(e)) => rejected(json, &e.to_string()),
        Err(ExecuteError::Failed(f)) => {
            if json {
                println!(
                    "{}",
                    json!({"run_id": f.run_id, "run_dir": f.run_dir, "mode": "paper", "status": "failed", "error": f.error.to_string()})
                );
            }
            eprintln!("error: {}", f.error);
            eprintln!(
                "paper run {} failed; its folder is {}",
                f.run_id,
                f.run_dir.display()
            );
            ExitCode::from(1)
        }
    }
}
