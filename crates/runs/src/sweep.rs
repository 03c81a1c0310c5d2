//! Parameter sweeps: one run spec, a grid of values for some of its fields, one run folder per
//! grid point, run in parallel and resumable; a ranked table and a heat map of a chosen metric;
//! optionally a walk-forward test of the best point.
//!
//! ```text
//! <data_dir>/sweeps/<sweep_id>/   sweep_id: a UUIDv7
//!   sweep.json    the definition (spec text, grid, metric, walk-forward) and the state of every
//!                 point (pending, completed with its run id and metrics, failed, invalid);
//!                 rewritten atomically after every run, so a killed sweep resumes from it
//!   table.md      the points ranked by the metric (and the walk-forward windows)
//!   heatmap.svg   two parameters on the axes, colour = the metric
//! ```
//!
//! The runs themselves are ordinary run folders under `<data_dir>/runs/`: the same spec and
//! grid give the same journal, metrics and artifacts per point, and the same `table.md` and
//! `heatmap.svg` (which name no run ids).

pub mod grid;
pub mod heatmap;
pub mod metric;
pub mod points;
pub mod walk_forward;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tradeloom_core::{DataDir, UnixNanos};
use tradeloom_safety::{Durability, Liveness, ProcessOwner, write_atomic};

use crate::RunError;
use crate::spec::ResolvedSpec;
pub use grid::{BaseSpec, Grid, Point};
pub use metric::Metric;
pub use points::{LocalRunner, PointJob, PointOutcome, PointRunner};
pub use walk_forward::{DateRange, WalkForward};

/// The state file of a sweep folder.
pub const SWEEP_FILE: &str = "sweep.json";

/// A sweep could not be planned, read or written.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A grid key that is malformed, names no field, or has bad values.
    #[error("grid key `{key}`: {message}")]
    Grid { key: String, message: String },
    /// The grid or an option as a whole.
    #[error("{0}")]
    Syntax(String),
    /// A point whose spec does not validate.
    #[error("grid point {point}: {message}")]
    Point { point: String, message: String },
    /// The base spec.
    #[error("{0}")]
    Spec(RunError),
    /// `--walk-forward`.
    #[error("walk-forward: {0}")]
    WalkForward(String),
    /// Market data needed to plan the walk-forward windows.
    #[error("{0}")]
    Data(#[from] tradeloom_data::DataError),
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    /// No sweep with that id (or more than one).
    #[error("{0}")]
    NotFound(String),
    /// Another live process is running the sweep.
    #[error("{0}")]
    Busy(String),
}

impl SweepError {
    /// Whether the error is the user's input rather than the system's.
    pub fn is_input_error(&self) -> bool {
        !matches!(self, SweepError::Io { .. })
    }

    fn io(path: &Path, e: impl std::fmt::Display) -> Self {
        SweepError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// Where a point (or a window's run) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointStatus {
    Pending,
    Completed,
    Failed,
    /// The point's spec does not validate (left out with `skip_invalid`); never run.
    Invalid,
}

/// One run of a sweep: a grid point (on the whole data, or a window of it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointRun {
    pub params: Map<String, Value>,
    pub status: PointStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The run's `metrics.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PointRun {
    fn new(params: Point, invalid: Option<String>) -> Self {
        Self {
            params,
            status: if invalid.is_some() {
                PointStatus::Invalid
            } else {
                PointStatus::Pending
            },
            run_id: None,
            metrics: None,
            error: invalid,
        }
    }

    fn to_be_run(&self) -> bool {
        matches!(self.status, PointStatus::Pending | PointStatus::Failed)
    }

    fn finished(&self) -> bool {
        matches!(self.status, PointStatus::Completed | PointStatus::Failed)
    }

    /// `{params, run_id, metrics}` as the sweep's JSON lists runs.
    fn summary(&self) -> Value {
        json!({"params": self.params, "run_id": self.run_id, "metrics": self.metrics})
    }
}

/// One walk-forward window: every point on the train range, the best of them on the test range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowRun {
    pub train: DateRange,
    pub test: DateRange,
    /// The points on the train range, in grid order.
    pub runs: Vec<PointRun>,
    /// The index of the best train run, once chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<usize>,
    /// The best point on the test range.
    pub out_of_sample: PointRun,
}

/// `running` until every point has run (completed or failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepStatus {
    Running,
    Completed,
}

/// `sweep.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepState {
    pub sweep_id: String,
    pub status: SweepStatus,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// The spec's `name:`.
    pub name: String,
    /// The spec file (absolute): relative data paths are read from its folder.
    pub spec_path: String,
    /// The spec's text as it was when the sweep was created.
    pub spec_text: String,
    /// The grid as given.
    pub grid: String,
    pub metric: Metric,
    /// The heat map's keys across and down.
    pub heatmap_x: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heatmap_y: Option<String>,
    pub skip_invalid: bool,
    /// Every point on the whole data, in grid order.
    pub points: Vec<PointRun>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walk_forward: Option<WalkForward>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<WindowRun>,
    /// The process running the sweep (or that ran it last): a resume refuses to run a sweep
    /// whose owner still runs, and a running sweep whose owner died reads as `interrupted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<ProcessOwner>,
}

/// What to sweep.
#[derive(Clone, Debug)]
pub struct SweepRequest {
    pub base: BaseSpec,
    /// `KEY=VALUES,…` (see [`grid`]).
    pub grid: String,
    pub metric: Metric,
    pub walk_forward: Option<WalkForward>,
    /// The heat map's keys across and down (default the grid's first two keys).
    pub heatmap_x: Option<String>,
    pub heatmap_y: Option<String>,
    /// Leave out points whose spec does not validate instead of refusing the sweep.
    pub skip_invalid: bool,
}

/// Progress of a running sweep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SweepProgress {
    /// Runs finished (completed or failed), counting those of an earlier attempt.
    pub done: usize,
    pub total: usize,
    /// Estimated time left, once a run of this attempt has finished.
    pub eta: Option<Duration>,
}

/// A sweep folder and its state.
#[derive(Debug)]
pub struct Sweep {
    pub dir: PathBuf,
    pub state: SweepState,
    base: BaseSpec,
    grid: Grid,
}

/// What one run of a sweep is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Task {
    Point(usize),
    Train(usize, usize),
    Test(usize),
}

impl Task {
    /// The run's name in [`PointJob::key`].
    fn key(self) -> String {
        match self {
            Task::Point(i) => format!("p{i}"),
            Task::Train(w, i) => format!("w{w}-p{i}"),
            Task::Test(w) => format!("w{w}-test"),
        }
    }
}

impl Sweep {
    /// Plans a sweep — every key and every point checked before anything runs — and writes its
    /// folder with `sweep.json` (every point pending).
    pub fn create(data_dir: &Path, request: SweepRequest) -> Result<Sweep, SweepError> {
        let grid = Grid::parse(&request.grid)?;
        request.base.check_keys(&grid)?;
        let keys: Vec<&str> = grid.axes.iter().map(|a| a.key.as_str()).collect();
        let heatmap_x = request
            .heatmap_x
            .clone()
            .unwrap_or_else(|| keys[0].to_string());
        let heatmap_y = request.heatmap_y.clone().or_else(|| {
            keys.get(1)
                .filter(|k| **k != heatmap_x)
                .map(|k| k.to_string())
        });
        for key in std::iter::once(&heatmap_x).chain(heatmap_y.as_ref()) {
            if !keys.contains(&key.as_str()) {
                return Err(SweepError::Grid {
                    key: key.clone(),
                    message: format!(
                        "the heat map's axes are keys of the grid ({})",
                        keys.join(", ")
                    ),
                });
            }
        }
        let mut points = Vec::new();
        let mut first_valid: Option<ResolvedSpec> = None;
        for point in grid.points() {
            match request.base.resolve(&point, &[]) {
                Ok(spec) => {
                    first_valid.get_or_insert(spec);
                    points.push(PointRun::new(point, None));
                }
                Err(e) if request.skip_invalid => {
                    points.push(PointRun::new(point, Some(e.to_string())));
                }
                Err(e) => {
                    return Err(SweepError::Syntax(format!(
                        "{e} (pass --skip-invalid to leave out the points that do not validate)"
                    )));
                }
            }
        }
        let Some(first_valid) = first_valid else {
            return Err(SweepError::Syntax(
                "no point of the grid validates; see the errors of `tradeloom spec validate` \
                 with these values"
                    .to_string(),
            ));
        };
        if first_valid.paper.is_some() {
            return Err(SweepError::Syntax(
                "a sweep runs backtests; this spec has mode: paper".to_string(),
            ));
        }
        let windows = match &request.walk_forward {
            None => Vec::new(),
            Some(wf) => {
                let (first, last) = data_range(&first_valid)?;
                wf.windows(first, last)?
                    .into_iter()
                    .map(|w| WindowRun {
                        train: w.train,
                        test: w.test,
                        runs: points.clone(),
                        best: None,
                        out_of_sample: PointRun::new(Point::new(), None),
                    })
                    .collect()
            }
        };
        let sweep_id = uuid::Uuid::now_v7().to_string();
        let dir = DataDir::new(data_dir).sweep(&sweep_id);
        std::fs::create_dir_all(&dir).map_err(|e| SweepError::io(&dir, e))?;
        let spec_path =
            std::path::absolute(&request.base.path).unwrap_or_else(|_| request.base.path.clone());
        let state = SweepState {
            sweep_id,
            status: SweepStatus::Running,
            created_at: crate::runner::now_rfc3339(),
            name: first_valid.spec.name.clone(),
            spec_path: spec_path.display().to_string(),
            spec_text: request.base.text.clone(),
            grid: request.grid,
            metric: request.metric,
            heatmap_x,
            heatmap_y,
            skip_invalid: request.skip_invalid,
            points,
            walk_forward: request.walk_forward,
            windows,
            owner: Some(ProcessOwner::current()),
        };
        let base = BaseSpec::new(&spec_path, request.base.text)?;
        let sweep = Sweep {
            dir,
            state,
            base,
            grid,
        };
        sweep.save()?;
        Ok(sweep)
    }

    /// The sweep `id` (a full id or a unique prefix) of the data dir.
    pub fn open(data_dir: &Path, id: &str) -> Result<Sweep, SweepError> {
        let root = DataDir::new(data_dir).sweeps();
        let mut ids = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&root) {
            for entry in entries.flatten() {
                if entry.path().join(SWEEP_FILE).is_file() {
                    ids.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        ids.sort();
        let id = tradeloom_core::resolve_id("sweep", id, ids.iter().map(String::as_str))
            .map_err(|e| SweepError::NotFound(format!("{e} under {}", root.display())))?;
        let dir = root.join(&id);
        let state = read_state(&dir)?;
        let base = BaseSpec::new(Path::new(&state.spec_path), state.spec_text.clone())?;
        let grid = Grid::parse(&state.grid)?;
        Ok(Sweep {
            dir,
            state,
            base,
            grid,
        })
    }

    /// Every run the sweep makes (points, train runs, out-of-sample runs), invalid ones aside.
    pub fn total(&self) -> usize {
        let valid = |runs: &[PointRun]| {
            runs.iter()
                .filter(|p| p.status != PointStatus::Invalid)
                .count()
        };
        valid(&self.state.points)
            + self
                .state
                .windows
                .iter()
                .map(|w| valid(&w.runs) + 1)
                .sum::<usize>()
    }

    /// Runs finished (completed or failed).
    pub fn done(&self) -> usize {
        let finished = |runs: &[PointRun]| runs.iter().filter(|p| p.finished()).count();
        finished(&self.state.points)
            + self
                .state
                .windows
                .iter()
                .map(|w| finished(&w.runs) + usize::from(w.out_of_sample.finished()))
                .sum::<usize>()
    }

    /// Runs completed.
    pub fn completed(&self) -> usize {
        let completed = |p: &PointRun| p.status == PointStatus::Completed;
        self.state.points.iter().filter(|p| completed(p)).count()
            + self
                .state
                .windows
                .iter()
                .map(|w| {
                    w.runs.iter().filter(|p| completed(p)).count()
                        + usize::from(completed(&w.out_of_sample))
                })
                .sum::<usize>()
    }

    /// Runs whatever has not completed (pending and failed runs) on `jobs` threads of this
    /// process, then writes `table.md` and `heatmap.svg`. Returns the number of runs made.
    pub fn run(
        &mut self,
        data_dir: &Path,
        jobs: usize,
        progress: &mut dyn FnMut(SweepProgress),
    ) -> Result<usize, SweepError> {
        let runner = LocalRunner {
            data_dir: data_dir.to_path_buf(),
            jobs,
        };
        self.run_with(&runner, progress)
    }

    /// [`Sweep::run`] with the runs made by `runner` (this process's threads, or a cluster's
    /// workers).
    pub fn run_with(
        &mut self,
        runner: &dyn PointRunner,
        progress: &mut dyn FnMut(SweepProgress),
    ) -> Result<usize, SweepError> {
        let started = Instant::now();
        self.claim()?;
        let mut made = 0;
        let mut tasks = Vec::new();
        for (i, p) in self.state.points.iter().enumerate() {
            if p.to_be_run() {
                tasks.push(Task::Point(i));
            }
        }
        for (w, window) in self.state.windows.iter().enumerate() {
            for (i, p) in window.runs.iter().enumerate() {
                if p.to_be_run() {
                    tasks.push(Task::Train(w, i));
                }
            }
        }
        made += self.run_tasks(runner, tasks, started, progress)?;
        let mut tests = Vec::new();
        for w in 0..self.state.windows.len() {
            let window = &mut self.state.windows[w];
            if !window.out_of_sample.to_be_run() {
                continue;
            }
            let metric = self.state.metric;
            let values: Vec<(usize, Option<f64>)> = window
                .runs
                .iter()
                .enumerate()
                .filter(|(_, p)| p.status == PointStatus::Completed)
                .map(|(i, p)| (i, p.metrics.as_ref().and_then(|m| metric.of(m))))
                .collect();
            match metric.rank(&values).first() {
                Some(&best) => {
                    window.best = Some(best);
                    window.out_of_sample.params = window.runs[best].params.clone();
                    tests.push(Task::Test(w));
                }
                None => {
                    window.out_of_sample.status = PointStatus::Failed;
                    window.out_of_sample.error =
                        Some("no run of the train window completed".to_string());
                }
            }
        }
        made += self.run_tasks(runner, tests, started, progress)?;
        self.state.status = SweepStatus::Completed;
        self.save()?;
        self.write_reports()?;
        Ok(made)
    }

    /// Makes this process the sweep's owner, unless another live process runs it.
    fn claim(&mut self) -> Result<(), SweepError> {
        let me = ProcessOwner::current();
        if self.state.status == SweepStatus::Running
            && let Some(owner) = &self.state.owner
            && owner.pid != me.pid
            && matches!(owner.liveness(), Liveness::Alive | Liveness::Unknown(_))
        {
            return Err(SweepError::Busy(format!(
                "sweep {} is being run by process {} on `{}`; wait for it, or stop it first",
                self.state.sweep_id, owner.pid, owner.host
            )));
        }
        self.state.owner = Some(me);
        self.state.status = SweepStatus::Running;
        self.save()
    }

    /// The job of one task: the point's values, and the window's range for walk-forward runs.
    fn job_of(&self, task: Task) -> PointJob {
        let (params, window) = match task {
            Task::Point(i) => (&self.state.points[i].params, None),
            Task::Train(w, i) => (
                &self.state.windows[w].runs[i].params,
                Some(&self.state.windows[w].train),
            ),
            Task::Test(w) => (
                &self.state.windows[w].out_of_sample.params,
                Some(&self.state.windows[w].test),
            ),
        };
        PointJob {
            sweep_id: self.state.sweep_id.clone(),
            key: task.key(),
            spec_path: self.base.path.display().to_string(),
            spec_text: self.base.text.clone(),
            params: params.clone(),
            window: window.cloned(),
        }
    }

    fn slot(&mut self, task: Task) -> &mut PointRun {
        match task {
            Task::Point(i) => &mut self.state.points[i],
            Task::Train(w, i) => &mut self.state.windows[w].runs[i],
            Task::Test(w) => &mut self.state.windows[w].out_of_sample,
        }
    }

    fn run_tasks(
        &mut self,
        runner: &dyn PointRunner,
        tasks: Vec<Task>,
        started: Instant,
        progress: &mut dyn FnMut(SweepProgress),
    ) -> Result<usize, SweepError> {
        if tasks.is_empty() {
            return Ok(0);
        }
        let mut jobs = Vec::with_capacity(tasks.len());
        let mut by_key = HashMap::with_capacity(tasks.len());
        for task in tasks {
            // Every spec is checked before any run is handed out.
            let job = self.job_of(task);
            match job.spec_with(&self.base) {
                Ok(_) => {
                    by_key.insert(job.key.clone(), task);
                    jobs.push(job);
                }
                Err(e) => {
                    let slot = self.slot(task);
                    slot.status = PointStatus::Failed;
                    slot.error = Some(e.to_string());
                }
            }
        }
        let total = self.total();
        let before = self.done();
        let mut made = 0;
        let mut first_error = None;
        let ran = runner.run(jobs, &mut |key, outcome| {
            // A key reported twice (a cluster task delivered again) counts once.
            let Some(task) = by_key.remove(key) else {
                return;
            };
            made += 1;
            record(self.slot(task), outcome);
            if let Err(e) = self.save() {
                first_error.get_or_insert(e);
            }
            let done = self.done();
            let new = done.saturating_sub(before).max(1);
            let per_run = started.elapsed() / new as u32;
            progress(SweepProgress {
                done,
                total,
                eta: Some(per_run * total.saturating_sub(done) as u32),
            });
        });
        ran?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(made),
        }
    }

    /// Writes `sweep.json` atomically.
    pub fn save(&self) -> Result<(), SweepError> {
        let path = self.dir.join(SWEEP_FILE);
        let mut text =
            serde_json::to_string_pretty(&self.state).map_err(|e| SweepError::io(&path, e))?;
        text.push('\n');
        write_atomic(&path, text.as_bytes(), Durability::Renamed)
            .map_err(|e| SweepError::io(&path, e))
    }

    /// The sweep's JSON (what `tradeloom sweep --json` prints last and `GET /sweeps/{id}`
    /// answers once the sweep has finished).
    pub fn result(&self) -> SweepResult {
        result_of(&self.state)
    }

    fn write_reports(&self) -> Result<(), SweepError> {
        let table = table_of(&self.state, &self.grid);
        let svg = heatmap_of(&self.state, &self.grid);
        for (name, text) in [("table.md", table), ("heatmap.svg", svg)] {
            let path = self.dir.join(name);
            write_atomic(&path, text.as_bytes(), Durability::Renamed)
                .map_err(|e| SweepError::io(&path, e))?;
        }
        Ok(())
    }
}

fn record(slot: &mut PointRun, outcome: PointOutcome) {
    match outcome {
        PointOutcome::Completed { run_id, metrics } => {
            slot.status = PointStatus::Completed;
            slot.run_id = Some(run_id);
            slot.metrics = Some(metrics);
            slot.error = None;
        }
        PointOutcome::Failed { run_id, error } => {
            slot.status = PointStatus::Failed;
            slot.run_id = run_id;
            slot.error = Some(error);
        }
    }
}

/// Reads `sweep.json` of a sweep folder.
pub fn read_state(dir: &Path) -> Result<SweepState, SweepError> {
    let path = dir.join(SWEEP_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| SweepError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| SweepError::io(&path, e))
}

/// `{sweep_id, status, done, total}` of a sweep still running (`running`), or whose process died
/// before it finished (`interrupted`: `tradeloom sweep --resume` finishes it).
pub fn progress_of(state: &SweepState) -> Value {
    let count = |runs: &[PointRun], f: fn(&PointRun) -> bool| runs.iter().filter(|p| f(p)).count();
    let valid = |p: &PointRun| p.status != PointStatus::Invalid;
    let mut total = count(&state.points, valid);
    let mut done = count(&state.points, PointRun::finished);
    for w in &state.windows {
        total += count(&w.runs, valid) + 1;
        done += count(&w.runs, PointRun::finished) + usize::from(w.out_of_sample.finished());
    }
    let gone = state
        .owner
        .as_ref()
        .is_some_and(|o| matches!(o.liveness(), Liveness::Gone(_)));
    let status = if gone { "interrupted" } else { "running" };
    json!({"sweep_id": state.sweep_id, "status": status, "done": done, "total": total})
}

/// Indices of the completed points, best first.
fn ranking(metric: Metric, points: &[PointRun]) -> Vec<usize> {
    let values: Vec<(usize, Option<f64>)> = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.status == PointStatus::Completed)
        .map(|(i, p)| (i, p.metrics.as_ref().and_then(|m| metric.of(m))))
        .collect();
    metric.rank(&values)
}

/// The best completed point: the first of the ranking with a value of the metric.
fn best_of(metric: Metric, points: &[PointRun]) -> Option<usize> {
    ranking(metric, points).into_iter().find(|&i| {
        points[i]
            .metrics
            .as_ref()
            .and_then(|m| metric.of(m))
            .is_some()
    })
}

/// The result of a finished sweep, its fields in the documented order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepResult {
    pub sweep_id: String,
    /// The metric's name.
    pub metric: String,
    /// The completed points in grid order: `{params, run_id, metrics}`.
    pub runs: Vec<Value>,
    /// The first point of the ranking, `null` when no run has the metric.
    pub best: Option<Value>,
    /// With `--walk-forward`: the windows and the combined out-of-sample figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub walk_forward: Option<Value>,
}

/// See [`Sweep::result`].
pub fn result_of(state: &SweepState) -> SweepResult {
    let metric = state.metric;
    SweepResult {
        sweep_id: state.sweep_id.clone(),
        metric: metric.name().to_string(),
        runs: state
            .points
            .iter()
            .filter(|p| p.status == PointStatus::Completed)
            .map(PointRun::summary)
            .collect(),
        best: best_of(metric, &state.points).map(|i| state.points[i].summary()),
        walk_forward: state
            .walk_forward
            .as_ref()
            .map(|wf| walk_forward_of(state, wf)),
    }
}

fn walk_forward_of(state: &SweepState, wf: &WalkForward) -> Value {
    let metric = state.metric;
    let windows: Vec<Value> = state
        .windows
        .iter()
        .map(|w| {
            json!({
                "train": w.train,
                "test": w.test,
                "best": w.best.map(|b| w.runs[b].summary()),
                "out_of_sample": {
                    "run_id": w.out_of_sample.run_id,
                    "metrics": w.out_of_sample.metrics,
                    "error": w.out_of_sample.error,
                },
            })
        })
        .collect();
    let oos: Vec<&Value> = state
        .windows
        .iter()
        .filter(|w| w.out_of_sample.status == PointStatus::Completed)
        .filter_map(|w| w.out_of_sample.metrics.as_ref())
        .collect();
    let f = |m: &Value, k: &str| m.get(k).and_then(Value::as_f64);
    let growth: f64 = oos
        .iter()
        .map(|m| 1.0 + f(m, "total_return_pct").unwrap_or(0.0) / 100.0)
        .product();
    let sharpes: Vec<f64> = oos.iter().filter_map(|m| f(m, "sharpe")).collect();
    let values: Vec<f64> = oos.iter().filter_map(|m| metric.of(m)).collect();
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let round = |x: f64| (x * 1e6).round() / 1e6;
    json!({
        "train": wf.train,
        "test": wf.test,
        "windows": windows,
        "combined": {
            "windows": oos.len(),
            "bars": oos.iter().filter_map(|m| m.get("bars").and_then(Value::as_u64)).sum::<u64>(),
            "trades": oos.iter().filter_map(|m| m.get("trades").and_then(Value::as_u64)).sum::<u64>(),
            "total_return_pct": round((growth - 1.0) * 100.0),
            "worst_max_drawdown_pct": oos.iter().filter_map(|m| f(m, "max_drawdown_pct")).reduce(f64::max),
            "mean_sharpe": mean(&sharpes).map(round),
            format!("mean_{}", metric.name()): mean(&values).map(round),
        },
    })
}

/// Column titles for the grid's keys: the last segment, or the whole key when two share it.
fn short_keys(grid: &Grid) -> Vec<String> {
    let last = |k: &str| k.rsplit('.').next().unwrap_or(k).to_string();
    grid.axes
        .iter()
        .map(|a| {
            let short = last(&a.key);
            let shared = grid.axes.iter().filter(|b| last(&b.key) == short).count() > 1;
            if shared { a.key.clone() } else { short }
        })
        .collect()
}

fn number(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if n.is_f64() => format!("{x:.4}"),
            _ => n.to_string(),
        },
        Some(Value::String(s)) => s.clone(),
        _ => "–".to_string(),
    }
}

/// `table.md`: the completed points best first, then failed or invalid ones, then the
/// walk-forward windows.
fn table_of(state: &SweepState, grid: &Grid) -> String {
    use std::fmt::Write;
    let metric = state.metric;
    let mut columns = vec![metric.name()];
    for c in ["sharpe", "total_return_pct", "max_drawdown_pct", "trades"] {
        if !columns.contains(&c) {
            columns.push(c);
        }
    }
    let keys = short_keys(grid);
    let mut out = String::new();
    let completed = state
        .points
        .iter()
        .filter(|p| p.status == PointStatus::Completed)
        .count();
    let _ = writeln!(out, "# Sweep: {}\n", state.name);
    let _ = writeln!(
        out,
        "Grid `{}`; ranked by `{}` ({}); {} points, {completed} completed.\n",
        state.grid,
        metric.name(),
        metric.direction(),
        state.points.len()
    );
    let _ = writeln!(
        out,
        "| rank | {} | {} |",
        keys.join(" | "),
        columns.join(" | ")
    );
    let _ = writeln!(
        out,
        "| ---: |{}{}",
        " ---: |".repeat(keys.len()),
        " ---: |".repeat(columns.len())
    );
    let row = |point: &PointRun| {
        let params: Vec<String> = grid
            .axes
            .iter()
            .map(|a| {
                point
                    .params
                    .get(&a.key)
                    .map(grid::scalar_text)
                    .unwrap_or_default()
            })
            .collect();
        let values: Vec<String> = columns
            .iter()
            .map(|c| number(point.metrics.as_ref().and_then(|m| m.get(*c))))
            .collect();
        format!("{} | {}", params.join(" | "), values.join(" | "))
    };
    for (rank, i) in ranking(metric, &state.points).into_iter().enumerate() {
        let _ = writeln!(out, "| {} | {} |", rank + 1, row(&state.points[i]));
    }
    let others: Vec<&PointRun> = state
        .points
        .iter()
        .filter(|p| matches!(p.status, PointStatus::Failed | PointStatus::Invalid))
        .collect();
    if !others.is_empty() {
        let _ = writeln!(out, "\nNot ranked:\n");
        for p in others {
            let error = p.error.as_deref().unwrap_or("");
            match p.status {
                PointStatus::Invalid => {
                    let _ = writeln!(out, "- invalid: {error}");
                }
                _ => {
                    let _ = writeln!(out, "- failed: {}: {error}", grid::label(&p.params));
                }
            }
        }
    }
    if let Some(wf) = &state.walk_forward {
        let _ = writeln!(
            out,
            "\n## Walk-forward (train {}, test {})\n\nThe best point of each train window, run on \
             the test window after it.\n",
            wf.train, wf.test
        );
        let _ = writeln!(
            out,
            "| window | train | test | best point | in-sample {m} | out-of-sample {m} | out-of-sample return % | trades |",
            m = metric.name()
        );
        let _ = writeln!(
            out,
            "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: |"
        );
        for (k, w) in state.windows.iter().enumerate() {
            let best = w.best.map(|b| &w.runs[b]);
            let oos = w.out_of_sample.metrics.as_ref();
            let _ = writeln!(
                out,
                "| {} | {} … {} | {} … {} | {} | {} | {} | {} | {} |",
                k + 1,
                w.train.start,
                w.train.end,
                w.test.start,
                w.test.end,
                best.map_or("–".to_string(), |b| grid::label(&b.params)),
                number(
                    best.and_then(|b| b.metrics.as_ref())
                        .and_then(|m| m.get(metric.name()))
                ),
                number(oos.and_then(|m| m.get(metric.name()))),
                number(oos.and_then(|m| m.get("total_return_pct"))),
                number(oos.and_then(|m| m.get("trades"))),
            );
        }
        let combined = &walk_forward_of(state, wf)["combined"];
        let _ = writeln!(
            out,
            "\nCombined out of sample: {} windows, return {} % (compounded), {} trades, worst drawdown {} %, mean Sharpe {}.",
            combined["windows"],
            number(combined.get("total_return_pct")),
            combined["trades"],
            number(combined.get("worst_max_drawdown_pct")),
            number(combined.get("mean_sharpe")),
        );
    }
    out
}

fn heatmap_of(state: &SweepState, grid: &Grid) -> String {
    let axis = |key: &str| {
        grid.axes
            .iter()
            .find(|a| a.key == key)
            .map(|a| heatmap::Axis {
                key: a.key.clone(),
                values: a.values.clone(),
            })
    };
    let x = axis(&state.heatmap_x).unwrap_or(heatmap::Axis {
        key: state.heatmap_x.clone(),
        values: Vec::new(),
    });
    let y = state.heatmap_y.as_deref().and_then(axis);
    let cells: Vec<heatmap::Cell<'_>> = state
        .points
        .iter()
        .filter(|p| p.status == PointStatus::Completed)
        .map(|p| heatmap::Cell {
            params: &p.params,
            value: p.metrics.as_ref().and_then(|m| state.metric.of(m)),
        })
        .collect();
    heatmap::render(state.metric, &x, y.as_ref(), &cells)
}

/// The first and last bar time of a spec's data (read once, to plan walk-forward windows).
fn data_range(spec: &ResolvedSpec) -> Result<(UnixNanos, UnixNanos), SweepError> {
    let mut readers = Vec::with_capacity(spec.data.len());
    for source in &spec.data {
        let inst = &spec.instruments[source.instrument.index()];
        readers.push(tradeloom_data::open_bars(
            &source.path,
            source.format,
            inst,
        )?);
    }
    let mut range: Option<(UnixNanos, UnixNanos)> = None;
    for bar in tradeloom_data::MergedBars::new(readers) {
        let ts = bar?.ts;
        range = Some(match range {
            None => (ts, ts),
            Some((first, _)) => (first, ts),
        });
    }
    range.ok_or_else(|| SweepError::WalkForward("the data files contain no bars".to_string()))
}

/// The default number of parallel runs: the machine's cores.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
