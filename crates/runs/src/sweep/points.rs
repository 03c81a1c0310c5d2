//! Who runs a sweep's points: [`LocalRunner`] runs them on threads of this process (the
//! embedded default: every core), a cluster's runner (crate `tradeloom-orchestrator`) hands
//! them to the worker processes through the queue. Either gets [`PointJob`]s — everything a
//! process needs to run one point, serializable, so a job can travel as a queue task — and
//! reports a [`PointOutcome`] per job as it finishes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{BaseSpec, DateRange, SweepError};
use crate::runner::{ExecuteError, RunOptions, RunOutcome, execute};
use crate::spec::ResolvedSpec;

/// One run of a sweep, as a worker receives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointJob {
    pub sweep_id: String,
    /// The run's name within the sweep: `p3` (grid point 3), `w1-p3` (point 3 on window 1's
    /// train range), `w1-test` (window 1's out-of-sample run).
    pub key: String,
    /// The base spec's file (relative data paths are read from its folder) and text.
    pub spec_path: String,
    pub spec_text: String,
    /// The point's values of the grid's keys.
    pub params: Map<String, Value>,
    /// A walk-forward run's date range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<DateRange>,
}

impl PointJob {
    /// The job's spec, parsed and validated.
    pub fn spec(&self) -> Result<ResolvedSpec, SweepError> {
        let base = BaseSpec::new(Path::new(&self.spec_path), self.spec_text.clone())?;
        self.spec_with(&base)
    }

    /// The job's spec from its base spec, already parsed.
    pub(crate) fn spec_with(&self, base: &BaseSpec) -> Result<ResolvedSpec, SweepError> {
        let extra: Vec<(&str, yaml_serde::Value)> = self
            .window
            .as_ref()
            .map(|r| ("window", r.window_value()))
            .into_iter()
            .collect();
        base.resolve(&self.params, &extra)
    }

    /// Whether `sweep_id` and `key` are safe as file names (a job from a queue is checked before
    /// its result is written under the sweep's folder).
    pub fn names_are_safe(&self) -> bool {
        let safe = |s: &str, extra: &[char]| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(&c))
        };
        safe(&self.sweep_id, &['-']) && safe(&self.key, &['-'])
    }

    /// Runs the job in `data_dir` (its run folder goes under `<data_dir>/runs/`).
    pub fn run(&self, data_dir: &Path) -> PointOutcome {
        match self.spec() {
            Ok(spec) => PointOutcome::of(execute(
                spec,
                RunOptions {
                    data_dir: data_dir.to_path_buf(),
                    ..RunOptions::default()
                },
            )),
            Err(e) => PointOutcome::Failed {
                run_id: None,
                error: e.to_string(),
            },
        }
    }
}

/// How one run of a sweep ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PointOutcome {
    Completed {
        run_id: String,
        /// The run's `metrics.json`.
        metrics: Value,
    },
    /// The spec was refused (no run folder), or the run failed (its folder says why).
    Failed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        error: String,
    },
}

impl PointOutcome {
    pub fn of(outcome: Result<RunOutcome, ExecuteError>) -> Self {
        match outcome {
            Ok(outcome) => PointOutcome::Completed {
                run_id: outcome.run_id,
                metrics: serde_json::to_value(&outcome.metrics).unwrap_or(Value::Null),
            },
            Err(ExecuteError::Rejected(e)) => PointOutcome::Failed {
                run_id: None,
                error: e.to_string(),
            },
            Err(ExecuteError::Failed(f)) => PointOutcome::Failed {
                run_id: Some(f.run_id),
                error: f.error.to_string(),
            },
        }
    }
}

/// Runs a sweep's jobs and reports each outcome, by the job's key, as it finishes (in any
/// order). An error stops the sweep (its finished runs are recorded; a resume runs the rest).
pub trait PointRunner {
    fn run(
        &self,
        jobs: Vec<PointJob>,
        done: &mut dyn FnMut(&str, PointOutcome),
    ) -> Result<(), SweepError>;
}

/// Runs the jobs on `jobs` threads of this process.
#[derive(Clone, Debug)]
pub struct LocalRunner {
    pub data_dir: PathBuf,
    pub jobs: usize,
}

impl PointRunner for LocalRunner {
    fn run(
        &self,
        jobs: Vec<PointJob>,
        done: &mut dyn FnMut(&str, PointOutcome),
    ) -> Result<(), SweepError> {
        let next = AtomicUsize::new(0);
        let (tx, rx) = std::sync::mpsc::channel::<(usize, PointOutcome)>();
        std::thread::scope(|scope| {
            for _ in 0..self.jobs.clamp(1, jobs.len().max(1)) {
                let tx = tx.clone();
                let (jobs, next) = (&jobs, &next);
                scope.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else {
                            break;
                        };
                        if tx.send((i, job.run(&self.data_dir))).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for (i, outcome) in rx {
                done(&jobs[i].key, outcome);
            }
        });
        Ok(())
    }
}
