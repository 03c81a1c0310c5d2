//! Failure drills: scripted fault injections against a live local instance. Each drill starts
//! its own processes of the `tradeloom` binary (`serve`, `mock-llm`, `run`, …) on free loopback
//! ports with a data dir of its own under `<data-dir>/drills/work/`, injects one fault, asserts
//! the operational response step by step, and writes `<data-dir>/drills/<name>.json`. Child
//! processes are killed when a drill ends, however it ends.
//!
//! ```no_run
//! # async fn example() -> Result<(), tradeloom_ops::drill::DrillError> {
//! use tradeloom_ops::drill::{self, DrillName, DrillOptions};
//! let options = DrillOptions::new("target/debug/tradeloom".into(), "tradeloom-data".into());
//! let report = drill::run(DrillName::KillSwitch, &options).await?;
//! println!("{}: {}", report.name, report.passed);
//! # Ok(())
//! # }
//! ```

mod catalogue;
mod ctx;
mod data_stall;
mod disk_full;
mod error;
mod kill_switch;
mod llm_outage;
mod process;
mod report;
mod store_unavailable;
mod worker_crash;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use catalogue::{DrillName, UnknownDrill};
pub use error::DrillError;
pub use report::{DrillReport, Step};

use ctx::Ctx;
use report::now_rfc3339;

/// How long one drill may take by default before it is stopped (and its processes killed).
pub const DRILL_TIMEOUT: Duration = Duration::from_secs(180);

/// Where drills run and what they start.
#[derive(Clone, Debug)]
pub struct DrillOptions {
    /// The `tradeloom` binary each drill starts as `serve`, `mock-llm`, `run`, ….
    pub exe: PathBuf,
    /// The data dir whose `drills/` folder receives the reports and the drills' work folders.
    pub data_dir: PathBuf,
    /// How long one drill may take before it is stopped ([`DRILL_TIMEOUT`] by default).
    pub timeout: Duration,
}

impl DrillOptions {
    /// Drills of the binary `exe` reporting under `data_dir`, with the default time limit.
    pub fn new(exe: PathBuf, data_dir: PathBuf) -> Self {
        Self {
            exe,
            data_dir,
            timeout: DRILL_TIMEOUT,
        }
    }

    /// `<data-dir>/drills/`.
    pub fn drills_dir(&self) -> PathBuf {
        self.data_dir.join("drills")
    }

    /// `<data-dir>/drills/<name>.json`.
    pub fn report_path(&self, name: DrillName) -> PathBuf {
        self.drills_dir().join(format!("{name}.json"))
    }

    /// Creates `<data-dir>/drills/` and its `work/` folder (as [`run`] does first), so that a
    /// data dir that cannot hold them fails before any drill starts.
    pub fn prepare(&self) -> Result<(), DrillError> {
        let drills_dir = self.drills_dir();
        std::fs::create_dir_all(drills_dir.join("work"))
            .map_err(DrillError::io(format!("creating {}", drills_dir.display())))
    }
}

/// Runs one drill and writes its report to [`DrillOptions::report_path`].
///
/// A drill that fails (a step, its set-up, its time limit) is a report with `passed: false`
/// and its `error`; an `Err` means the drills folder or the report could not be written.
/// It needs a multi-threaded tokio runtime (the drills wait on processes between requests).
pub async fn run(name: DrillName, options: &DrillOptions) -> Result<DrillReport, DrillError> {
    options.prepare()?;
    let report = run_one(name, options).await;
    let path = options.report_path(name);
    let text = serde_json::to_string_pretty(&report)
        .map_err(DrillError::json(format!("the report of {name}")))?;
    std::fs::write(&path, format!("{text}\n"))
        .map_err(DrillError::io(format!("writing {}", path.display())))?;
    Ok(report)
}

async fn run_one(name: DrillName, options: &DrillOptions) -> DrillReport {
    let started_at = now_rfc3339();
    let started = Instant::now();
    let stamp: String = started_at
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let work = options
        .drills_dir()
        .join("work")
        .join(format!("{name}-{stamp}"));
    let mut ctx = Ctx::new(options.exe.clone(), work.clone());
    let result = match std::fs::create_dir_all(ctx.data()) {
        Err(source) => Err(DrillError::Io {
            what: format!("creating {}", work.display()),
            source,
        }),
        Ok(()) => match tokio::time::timeout(options.timeout, dispatch(name, &mut ctx)).await {
            Ok(r) => r,
            Err(_) => Err(DrillError::Timeout(options.timeout)),
        },
    };
    let error = result.err().map(|e| e.chain());
    let steps = ctx.into_steps();
    let passed = error.is_none() && !steps.is_empty() && steps.iter().all(|s| s.passed);
    DrillReport {
        name,
        passed,
        started_at,
        finished_at: now_rfc3339(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        steps,
        error,
        work_dir: work,
    }
}

async fn dispatch(name: DrillName, ctx: &mut Ctx) -> Result<(), DrillError> {
    match name {
        DrillName::KillSwitch => kill_switch::run(ctx).await,
        DrillName::DataStall => data_stall::run(ctx).await,
        DrillName::WorkerCrash => worker_crash::run(ctx).await,
        DrillName::LlmOutage => llm_outage::run(ctx).await,
        DrillName::StoreUnavailable => store_unavailable::run(ctx).await,
        DrillName::DiskFull => disk_full::run(ctx).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_drill_that_cannot_start_its_binary_fails_and_still_writes_its_report() {
        let data = tempfile::tempdir().unwrap();
        let exe = data.path().join("no-such-tradeloom");
        let options = DrillOptions::new(exe, data.path().to_path_buf());
        let report = run(DrillName::DataStall, &options).await.unwrap();
        assert_eq!(report.name, DrillName::DataStall);
        assert!(!report.passed);
        assert!(report.steps.is_empty(), "{:?}", report.steps);
        let error = report.error.clone().unwrap();
        assert!(
            error.starts_with("starting tradeloom --data-dir ")
                && error.contains(" db migrate: No such file or directory"),
            "{error}"
        );
        assert!(report.work_dir.starts_with(data.path().join("drills/work")));
        assert!(report.work_dir.join("data/health.yaml").is_file());

        let path = data.path().join("drills/data_stall.json");
        assert_eq!(path, options.report_path(DrillName::DataStall));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("}\n"), "{text}");
        let written: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(written["name"], "data_stall");
        assert_eq!(written["passed"], false);
        assert_eq!(written["error"], error.as_str());
        assert_eq!(written["steps"], serde_json::json!([]));
    }
}
