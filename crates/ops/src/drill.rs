//! `tradeloom drill list|run NAME|run --all`: scripted fault injections against a live local
//! instance. Each drill starts its own processes of this binary (`serve`, `mock-llm`, `run`, …)
//! on free loopback ports with a data dir of its own under `<data-dir>/drills/work/`, injects
//! one fault, asserts the operational response step by step, and writes
//! `<data-dir>/drills/<name>.json`. Child processes are killed when a drill ends, however it
//! ends.

mod data_stall;
mod disk_full;
mod http;
mod kill_switch;
mod llm_outage;
mod process;
mod store_unavailable;
mod worker_crash;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde::Serialize;

use crate::table;

#[derive(Subcommand)]
pub enum DrillCommand {
    /// The drills: what each injects and what it asserts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Run one drill, or every drill with `--all`; writes `<data-dir>/drills/<name>.json` for
    /// each and exits 0 only if every drill passed (1 otherwise).
    Run {
        /// The drill (see `tradeloom drill list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Every drill, one after the other.
        #[arg(long)]
        all: bool,
        /// Print the reports as one JSON array instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// One drill in the catalogue.
pub struct DrillInfo {
    pub name: &'static str,
    pub injects: &'static str,
    pub asserts: &'static str,
}

/// Every drill, in the order `run --all` runs them.
pub const DRILLS: &[DrillInfo] = &[
    DrillInfo {
        name: "kill_switch",
        injects: "engages the global kill switch while a backtest is trading",
        asserts: "no order accepted or filled after the engagement event, every later order \
                  refused with risk.kill_switch; after release a new run trades",
    },
    DrillInfo {
        name: "data_stall",
        injects: "stops updating a feed file named in health.yaml",
        asserts: "tradeloom health walks GREEN -> DEGRADED -> DEAD as the feed goes stale and \
                  dead, and back to GREEN when it resumes",
    },
    DrillInfo {
        name: "worker_crash",
        injects: "SIGKILLs tradeloom serve while workflow runs are in flight, then restarts it",
        asserts: "every run completes after the restart and every node completes exactly once",
    },
    DrillInfo {
        name: "llm_outage",
        injects: "kills the mock-llm serving one model in the middle of a simulation job",
        asserts: "retries recorded, that model's later days fail naming the LLM endpoint, the job \
                  ends partial with no half-written model-day; after the LLM returns a \
                  re-trigger completes the failed days",
    },
    DrillInfo {
        name: "store_unavailable",
        injects: "holds an exclusive write lock on the SQLite store of a running serve",
        asserts: "writes answer 503 store_unavailable promptly, reads are unchanged, nothing is \
                  half-written; writes succeed again once the lock is released",
    },
    DrillInfo {
        name: "disk_full",
        injects: "runs a backtest with the file size limit (ulimit -f) below its output",
        asserts: "non-zero exit naming the file that could not be written, journal.jsonl holds \
                  only complete JSON lines, metadata.json says failed",
    },
];

/// One asserted step of a drill.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub name: String,
    pub passed: bool,
    pub expected: String,
    pub observed: String,
}

/// `<data-dir>/drills/<name>.json`.
#[derive(Debug, Serialize)]
pub struct DrillReport {
    pub name: String,
    /// Every step passed and the drill ran to its end.
    pub passed: bool,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub steps: Vec<Step>,
    /// Why the drill stopped early (a failed required step, a setup failure, a timeout).
    pub error: Option<String>,
    /// The drill's own folder (data dir, logs, generated files), kept for inspection.
    pub work_dir: String,
}

/// What a drill works with: this binary, its folder, and the steps recorded so far.
pub struct Ctx {
    pub exe: PathBuf,
    /// `<data-dir>/drills/work/<name>-<timestamp>/`.
    pub work: PathBuf,
    steps: Vec<Step>,
}

impl Ctx {
    /// The data dir of the drill's own tradeloom instance.
    pub fn data(&self) -> PathBuf {
        self.work.join("data")
    }

    /// Records a step; returns whether it passed.
    pub fn check(
        &mut self,
        name: &str,
        expected: impl Into<String>,
        observed: impl Into<String>,
        passed: bool,
    ) -> bool {
        self.steps.push(Step {
            name: name.to_string(),
            passed,
            expected: expected.into(),
            observed: observed.into(),
        });
        passed
    }

    /// Records a step the rest of the drill depends on: a failure stops the drill.
    pub fn require(
        &mut self,
        name: &str,
        expected: impl Into<String>,
        observed: impl Into<String>,
        passed: bool,
    ) -> Result<()> {
        let expected = expected.into();
        let observed = observed.into();
        if !self.check(name, expected.clone(), observed.clone(), passed) {
            bail!("step `{name}` failed: expected {expected}; observed {observed}");
        }
        Ok(())
    }

    /// `tradeloom` with `--data-dir` set to the drill's data dir.
    pub fn tradeloom(&self) -> process::Tradeloom {
        process::Tradeloom::new(&self.exe)
            .arg("--data-dir")
            .arg(self.data())
    }

    /// A log file in the work folder.
    pub fn log(&self, name: &str) -> PathBuf {
        self.work.join(format!("{name}.log"))
    }
}

/// How long one drill may take before it is stopped (and its processes killed).
const DRILL_TIMEOUT: Duration = Duration::from_secs(180);

pub fn run(data_dir: &Path, command: DrillCommand) -> Result<ExitCode> {
    match command {
        DrillCommand::List { json } => {
            list(json)?;
            Ok(ExitCode::SUCCESS)
        }
        DrillCommand::Run { name, all, json } => {
            let selected: Vec<&DrillInfo> = if all {
                DRILLS.iter().collect()
            } else {
                let name = name.unwrap_or_default();
                match DRILLS.iter().find(|d| d.name == name) {
                    Some(d) => vec![d],
                    None => bail!(
                        "unknown drill `{name}`; the drills are: {}",
                        DRILLS.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
                    ),
                }
            };
            run_drills(data_dir, &selected, json)
        }
    }
}

fn list(json: bool) -> Result<()> {
    if json {
        let items: Vec<serde_json::Value> = DRILLS
            .iter()
            .map(
                |d| serde_json::json!({"name": d.name, "injects": d.injects, "asserts": d.asserts}),
            )
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
    } else {
        let rows: Vec<Vec<String>> = DRILLS
            .iter()
            .map(|d| vec![d.name.to_string(), d.injects.to_string()])
            .collect();
        print!("{}", table::render(&["DRILL", "INJECTS"], &rows));
    }
    Ok(())
}

/// The wall clock as RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    // Milliseconds are enough for a drill's records.
    tradeloom_core::UnixNanos(nanos - nanos % 1_000_000).to_string()
}

fn run_drills(data_dir: &Path, selected: &[&DrillInfo], json: bool) -> Result<ExitCode> {
    tradeloom_llm::install_crypto_provider();
    let exe = std::env::current_exe().context("finding the tradeloom binary")?;
    let drills_dir = data_dir.join("drills");
    std::fs::create_dir_all(drills_dir.join("work"))
        .with_context(|| format!("creating {}", drills_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut reports = Vec::new();
    for info in selected {
        if !json {
            eprintln!("drill {}: {}", info.name, info.injects);
        }
        let report = runtime.block_on(run_one(&exe, &drills_dir, info.name));
        let path = drills_dir.join(format!("{}.json", info.name));
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(&path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
        if !json {
            for step in &report.steps {
                let mark = if step.passed { "ok  " } else { "FAIL" };
                eprintln!("  {mark} {}: {}", step.name, step.observed);
            }
            if let Some(e) = &report.error {
                eprintln!("  error: {e}");
            }
        }
        reports.push(report);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        let rows: Vec<Vec<String>> = reports
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    if r.passed { "passed" } else { "FAILED" }.to_string(),
                    format!(
                        "{}/{}",
                        r.steps.iter().filter(|s| s.passed).count(),
                        r.steps.len()
                    ),
                    format!("{:.1}s", r.duration_ms as f64 / 1000.0),
                    drills_dir
                        .join(format!("{}.json", r.name))
                        .display()
                        .to_string(),
                ]
            })
            .collect();
        print!(
            "{}",
            table::render(&["DRILL", "RESULT", "STEPS", "TIME", "REPORT"], &rows)
        );
    }
    Ok(if reports.iter().all(|r| r.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn run_one(exe: &Path, drills_dir: &Path, name: &str) -> DrillReport {
    let started_at = now_rfc3339();
    let started = Instant::now();
    let stamp: String = started_at
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let work = drills_dir.join("work").join(format!("{name}-{stamp}"));
    let mut ctx = Ctx {
        exe: exe.to_path_buf(),
        work: work.clone(),
        steps: Vec::new(),
    };
    let result = match std::fs::create_dir_all(ctx.data()) {
        Err(e) => Err(anyhow::anyhow!("creating {}: {e}", work.display())),
        Ok(()) => match tokio::time::timeout(DRILL_TIMEOUT, dispatch(name, &mut ctx)).await {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!(
                "the drill did not finish within {DRILL_TIMEOUT:?}; its processes were killed"
            )),
        },
    };
    let error = result.err().map(|e| format!("{e:#}"));
    let passed = error.is_none() && !ctx.steps.is_empty() && ctx.steps.iter().all(|s| s.passed);
    DrillReport {
        name: name.to_string(),
        passed,
        started_at,
        finished_at: now_rfc3339(),
        duration_ms: started.elapsed().as_millis() as u64,
        steps: ctx.steps,
        error,
        work_dir: work.display().to_string(),
    }
}

async fn dispatch(name: &str, ctx: &mut Ctx) -> Result<()> {
    match name {
        "kill_switch" => kill_switch::run(ctx).await,
        "data_stall" => data_stall::run(ctx).await,
        "worker_crash" => worker_crash::run(ctx).await,
        "llm_outage" => llm_outage::run(ctx).await,
        "store_unavailable" => store_unavailable::run(ctx).await,
        "disk_full" => disk_full::run(ctx).await,
        other => bail!("no drill named `{other}`"),
    }
}

/// Sleeps on the async runtime (drills poll files and processes between steps).
pub async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
