//! [`EngineRuns`]: the engine runs (backtests and paper runs) a server process has started —
//! through `POST /runs` or a workflow's `backtest`/`paper` node — and runs on in the
//! background. One registry per process, shared by the REST API and the workflow runtime, so
//! `POST /runs/{id}/stop` reaches a paper run whichever of them started it.
//!
//! [`EngineRuns::start`] answers as soon as the run's folder exists (its id known), or with the
//! error that rejected the spec before any folder was made; the run then goes on in a blocking
//! thread and leaves the registry when it ends. Paper runs append their `order`, `fill` and
//! `equity` events to the store's event log as they happen (see [`crate::paper_events`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, oneshot, watch};
use tradeloom_net::SsrfPolicy;
use tradeloom_runs::paper::StopSignal;
use tradeloom_runs::spec::{Mode, ResolvedSpec};
use tradeloom_runs::{ExecuteError, RunError, RunOptions, SpecSource};
use tradeloom_store::Store;

/// Runs of one process that may run at once, unless set otherwise.
pub const DEFAULT_MAX_ACTIVE: usize = 16;

/// `backtest` or `paper`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineMode {
    Backtest,
    Paper,
}

impl EngineMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineMode::Backtest => "backtest",
            EngineMode::Paper => "paper",
        }
    }

    /// The mode of a spec.
    pub fn of(spec: &ResolvedSpec) -> Self {
        match spec.spec.mode {
            Mode::Paper => EngineMode::Paper,
            _ => EngineMode::Backtest,
        }
    }
}

/// A run of this process that has not ended.
#[derive(Clone, Debug)]
struct Active {
    mode: EngineMode,
    /// Set for paper runs.
    stop: Option<StopSignal>,
    /// Becomes `true` when the run has ended (its folder sealed).
    finished: watch::Receiver<bool>,
}

/// A run that was started: its folder exists with `metadata.json` saying `running`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartedEngineRun {
    pub run_id: String,
    pub run_dir: PathBuf,
    pub mode: EngineMode,
}

/// Why [`EngineRuns::start`] started nothing.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The spec, its data or its feed was refused before a folder was made.
    #[error("{0}")]
    Rejected(RunError),
    /// As many runs as allowed are running.
    #[error("{running} engine runs are running, the most this process allows; wait for one to end")]
    Busy { running: usize },
    /// The run's thread could not be started or died before the run began.
    #[error("{0}")]
    Internal(String),
}

/// What [`EngineRuns::stop`] did.
#[derive(Debug)]
pub enum StopOutcome {
    /// No run of this id is running in this process.
    NotActive,
    /// The run is a backtest: it runs to its end.
    NotPaper,
    /// Asked to stop; the receiver becomes `true` once it has ended.
    Stopping(watch::Receiver<bool>),
}

/// The engine runs of this process (see the module doc).
#[derive(Debug)]
pub struct EngineRuns {
    data_dir: PathBuf,
    /// Where paper runs append their events; `None`: no events.
    store: Option<Arc<dyn Store>>,
    /// Woken after events are appended (wakes `/ws`).
    notify: Arc<Notify>,
    /// The outbound guard's policy: a WebSocket feed's address must pass it.
    policy: SsrfPolicy,
    max_active: usize,
    runs: Mutex<HashMap<String, Active>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl EngineRuns {
    /// Runs under `data_dir`; paper runs append events to `store` and wake `notify`.
    pub fn new(
        data_dir: PathBuf,
        store: Option<Arc<dyn Store>>,
        notify: Arc<Notify>,
        policy: SsrfPolicy,
    ) -> Self {
        Self {
            data_dir,
            store,
            notify,
            policy,
            max_active: DEFAULT_MAX_ACTIVE,
            runs: Mutex::new(HashMap::new()),
        }
    }

    /// At most `n` runs at once (at least 1).
    pub fn with_max_active(mut self, n: usize) -> Self {
        self.max_active = n.max(1);
        self
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub(crate) fn policy(&self) -> &SsrfPolicy {
        &self.policy
    }

    pub(crate) fn store(&self) -> Option<Arc<dyn Store>> {
        self.store.clone()
    }

    /// Woken after paper run events are appended.
    pub fn notify(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }

    /// Whether run `run_id` was started by this process and has not ended.
    pub fn is_active(&self, run_id: &str) -> bool {
        lock(&self.runs).contains_key(run_id)
    }

    /// Ids of the runs of this process that have not ended.
    pub fn active(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.runs).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Asks paper run `run_id` to stop gracefully.
    pub fn stop(&self, run_id: &str) -> StopOutcome {
        let Some(active) = lock(&self.runs).get(run_id).cloned() else {
            return StopOutcome::NotActive;
        };
        match (active.mode, active.stop) {
            (EngineMode::Paper, Some(stop)) => {
                stop.stop();
                StopOutcome::Stopping(active.finished)
            }
            _ => StopOutcome::NotPaper,
        }
    }

    /// Waits until run `run_id` has ended (at once when it is not running in this process).
    pub async fn wait(&self, run_id: &str) {
        let finished = lock(&self.runs).get(run_id).map(|a| a.finished.clone());
        if let Some(mut finished) = finished {
            let _ = finished.wait_for(|done| *done).await;
        }
    }

    /// Starts `spec` (a backtest or a paper run by its `mode`) with the kill switches of
    /// `parent_runs` covering it; returns once its folder exists.
    pub async fn start(
        self: &Arc<Self>,
        spec: ResolvedSpec,
        parent_runs: Vec<String>,
    ) -> Result<StartedEngineRun, StartError> {
        let running = lock(&self.runs).len();
        if running >= self.max_active {
            return Err(StartError::Busy { running });
        }
        let mode = EngineMode::of(&spec);
        let stop = StopSignal::new();
        let (started_tx, started_rx) = oneshot::channel::<(String, PathBuf)>();
        let (finished_tx, finished_rx) = watch::channel(false);
        let this = Arc::clone(self);
        let thread_stop = stop.clone();
        let handle = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || {
            let mut started = Some(started_tx);
            let mut on_start = |run_id: &str, dir: &Path| {
                if let Some(tx) = started.take() {
                    let _ = tx.send((run_id.to_string(), dir.to_path_buf()));
                }
            };
            // The run leaves the registry in the task below, which awaits this one.
            match mode {
                EngineMode::Backtest => this.run_backtest(spec, parent_runs, &mut on_start),
                EngineMode::Paper => {
                    this.run_paper(spec, parent_runs, thread_stop, &handle, &mut on_start)
                }
            }
        });
        let (run_id, run_dir) = match started_rx.await {
            Ok(started) => started,
            Err(_) => {
                // Never started: the spec, data or feed was refused (or the thread died).
                return match task.await {
                    Ok(Err(ExecuteError::Rejected(e))) => Err(StartError::Rejected(e)),
                    Ok(Err(ExecuteError::Failed(f))) => {
                        Err(StartError::Internal(f.error.to_string()))
                    }
                    Ok(Ok(_)) => Err(StartError::Internal(
                        "the run ended without reporting its start".to_string(),
                    )),
                    Err(e) => Err(StartError::Internal(format!("run thread: {e}"))),
                };
            }
        };
        lock(&self.runs).insert(
            run_id.clone(),
            Active {
                mode,
                stop: (mode == EngineMode::Paper).then_some(stop),
                finished: finished_rx,
            },
        );
        let this = Arc::clone(self);
        let id = run_id.clone();
        tokio::spawn(async move {
            match task.await {
                Ok(Ok(outcome)) => {
                    tracing::info!(run_id = %id, status = outcome.status.as_str(), "engine run ended");
                }
                Ok(Err(e)) => tracing::warn!(run_id = %id, error = %e, "engine run failed"),
                Err(e) => tracing::error!(run_id = %id, error = %e, "engine run thread died"),
            }
            lock(&this.runs).remove(&id);
            let _ = finished_tx.send(true);
        });
        Ok(StartedEngineRun {
            run_id,
            run_dir,
            mode,
        })
    }

    fn run_backtest(
        &self,
        spec: ResolvedSpec,
        parent_runs: Vec<String>,
        on_start: &mut (dyn FnMut(&str, &Path) + Send),
    ) -> Result<tradeloom_runs::RunOutcome, ExecuteError> {
        tradeloom_runs::execute(
            SpecSource::Loaded(Box::new(spec)),
            RunOptions {
                data_dir: self.data_dir.clone(),
                parent_runs,
                on_start: Some(on_start),
                ..RunOptions::default()
            },
        )
    }
}
