//! The [`Simulator`]: its settings, its progress events, and triggering, preparing and
//! resuming jobs.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use serde::Serialize;

use tokio::sync::{Mutex, broadcast};
use tracing::Instrument;
use tradeloom_core::Money;

use tradeloom_net::{Outbound, SsrfErrorKind};
use tradeloom_store::{Job, JobStatus, NewJob, Store, StoreError, config_hash};

use super::market::load_market;

use crate::config::ResolvedConfig;
use crate::error::AgentError;

/// Progress of jobs, for progress bars and event streams.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SimEvent {
    JobStarted {
        job_id: String,
        total_model_days: u64,
        remaining: u64,
    },
    ModelDayFinished {
        job_id: String,
        model: String,
        date: NaiveDate,
        status: String,
        error: Option<String>,
        portfolio_value: Option<Money>,
        duration_ms: u64,
    },
    JobFinished {
        job_id: String,
        status: JobStatus,
    },
}

/// What a trigger did.
#[derive(Clone, Debug)]
pub enum TriggerOutcome {
    /// A new job, or the unfinished model-days of an earlier one with the same config, started.
    Started { job: Job, resumed: bool },
    /// The same config is running already.
    AlreadyRunning(Job),
    /// Every model-day of this config is completed: nothing to run.
    Current(Job),
    /// The job of this config is paused: nothing runs until it is resumed.
    Paused(Job),
}

/// Settings of the worker.
#[derive(Clone, Debug)]
pub struct SimulatorOptions {
    /// Run folders go to `<data_dir>/runs/<job_id>`.
    pub data_dir: PathBuf,
    /// Jobs this process runs at once (`MAX_CONCURRENT_JOBS`, default 1).
    pub max_concurrent_jobs: usize,
    /// Relative paths of inline (API) configs are resolved against this folder.
    pub base_dir: PathBuf,
    /// The guarded client models are called through and the key variables configs may name
    /// (`serve --http-allow`, `--llm-key-env`); a config that needs more is refused.
    pub outbound: Outbound,
}

/// Runs simulation jobs against a store.
#[derive(Debug)]
pub struct Simulator {
    pub(super) store: Arc<dyn Store>,
    pub(super) options: SimulatorOptions,
    pub(super) events: broadcast::Sender<SimEvent>,
    /// Jobs running in this process.
    pub(super) running: Mutex<HashSet<String>>,
    /// Serialises triggers, so the concurrency check and the job insert are one step.
    pub(super) trigger_lock: Mutex<()>,
}

impl Simulator {
    pub fn new(store: Arc<dyn Store>, options: SimulatorOptions) -> Arc<Self> {
        let (events, _) = broadcast::channel(4096);
        Arc::new(Self {
            store,
            options,
            events,
            running: Mutex::new(HashSet::new()),
            trigger_lock: Mutex::new(()),
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn options(&self) -> &SimulatorOptions {
        &self.options
    }

    /// Progress events of every job this simulator runs.
    pub fn subscribe(&self) -> broadcast::Receiver<SimEvent> {
        self.events.subscribe()
    }

    /// Ids of the jobs running in this process.
    pub async fn running_jobs(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.running.lock().await.iter().cloned().collect();
        ids.sort();
        ids
    }

    /// Checks `config` (its `agent` references resolved and pinned, see
    /// [`crate::resolve_agents`]) and its market data and creates (or re-opens) its job without
    /// running it:
    /// `Started` for a new job or one with model-days left (interrupted, or failed and
    /// kill-switch-refused ones reset to pending), `Current` when every model-day is completed.
    pub async fn prepare(&self, config: &ResolvedConfig) -> Result<TriggerOutcome, AgentError> {
        // Agent references are pinned before anything is hashed or stored.
        let config = &crate::config::resolve_agents(config, &*self.store).await?;
        self.check_outbound(config).await?;
        let market = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || load_market(&config))
                .await
                .map_err(|e| AgentError::Io {
                    path: "universe".into(),
                    message: e.to_string(),
                })??
        };
        let value = config.to_value();
        let hash = config_hash(&value);
        if let Some(job) = self.store.find_job_by_config_hash(&hash).await? {
            // A user paused it: a trigger does not override that; a resume does.
            if job.status == JobStatus::Paused {
                return Ok(TriggerOutcome::Paused(job));
            }
            if !job.status.is_terminal() {
                if self.running.lock().await.contains(&job.id)
                    || crate::job_owner::owned_elsewhere(&*self.store, &job.id).await?
                {
                    return Ok(TriggerOutcome::AlreadyRunning(job));
                }
                // Interrupted (e.g. killed): resume it.
                self.store.reset_running_model_days(&job.id).await?;
                return Ok(TriggerOutcome::Started { job, resumed: true });
            }
            if job.status == JobStatus::Cancelled {
                // Its in-flight days may still be finishing. In this process, its driver is
                // re-opened below and runs on (`drive_until_held`; [`Simulator::trigger`] takes
                // no second slot for it): its running days are its own, not reset. Answering
                // "already running" here left the job cancelled, its days never re-run.
                let ending_here = self.running.lock().await.contains(&job.id);
                if !ending_here {
                    // In another process: that one is still at it.
                    if crate::job_owner::owned_elsewhere(&*self.store, &job.id).await? {
                        return Ok(TriggerOutcome::AlreadyRunning(job));
                    }
                    // … or left `running` by a process that died after the cancel.
                    self.store.reset_running_model_days(&job.id).await?;
                }
            }
            if self.store.retry_failed_model_days(&job.id).await? == 0 {
                return Ok(TriggerOutcome::Current(job));
            }
            let job = self.store.job(&job.id).await?;
            return Ok(TriggerOutcome::Started { job, resumed: true });
        }
        let new_job = NewJob {
            config: value,
            currency: config.currency,
            models: config.model_names(),
            dates: market.dates.clone(),
        };
        match self.store.create_job(new_job).await {
            Ok(job) => Ok(TriggerOutcome::Started {
                job,
                resumed: false,
            }),
            // Another trigger of the same config won the race.
            Err(StoreError::Conflict(_)) => {
                match self.store.find_job_by_config_hash(&hash).await? {
                    Some(job) => Ok(TriggerOutcome::AlreadyRunning(job)),
                    None => Err(AgentError::Store(StoreError::Conflict(
                        "a job with this config appeared and vanished; try again".into(),
                    ))),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Refuses a config whose models name a key variable the allow-list does not have, or whose
    /// endpoint the SSRF guard refuses (by scheme, name, address or path; a name that does not
    /// resolve now is left to the run, which fails the model-days with the guard's reason).
    /// Errors name the field (`models[0].base_url`) and the variable, never a value.
    pub async fn check_outbound(&self, config: &ResolvedConfig) -> Result<(), AgentError> {
        let outbound = &self.options.outbound;
        for (i, m) in config.config.models.iter().enumerate() {
            let place = |field: &str| format!("{}: models[{i}].{field}", config.origin);
            if let Some(var) = &m.api_key_env
                && !crate::openai_env::is_default_key(var, &m.base_url)
                && let Err(e) = outbound.secrets.check(var)
            {
                return Err(AgentError::Config {
                    place: place("api_key_env"),
                    message: e.to_string(),
                });
            }
            let endpoint = format!(
                "{}/chat/completions",
                m.base_url.trim().trim_end_matches('/')
            );
            match outbound.http.check(&endpoint).await {
                Err(e) if e.is_refusal() && !matches!(e.kind, SsrfErrorKind::Dns { .. }) => {
                    return Err(AgentError::Config {
                        place: place("base_url"),
                        message: format!("refused by the SSRF guard: {}", e.kind),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Starts `config` in the background (the API's trigger). Refuses with
    /// [`AgentError::Busy`] when `max_concurrent_jobs` jobs are running and this would start
    /// another.
    pub async fn trigger(
        self: &Arc<Self>,
        config: &ResolvedConfig,
    ) -> Result<TriggerOutcome, AgentError> {
        let _serial = self.trigger_lock.lock().await;
        let config = &crate::config::resolve_agents(config, &*self.store).await?;
        let hash = config_hash(&config.to_value());
        let existing = self.store.find_job_by_config_hash(&hash).await?;
        {
            let running = self.running.lock().await;
            if let Some(job) = &existing {
                // Paused by a user (its driver may still be finishing in-flight days).
                if job.status == JobStatus::Paused {
                    return Ok(TriggerOutcome::Paused(job.clone()));
                }
                // Nothing left to do is an answer even while the worker is busy, and while
                // the job's own driver is still ending.
                if job.status == JobStatus::Completed {
                    return Ok(TriggerOutcome::Current(job.clone()));
                }
                // Asking again for a running config is not a new job: report it. A cancelled
                // job whose driver is still ending is re-opened below; that driver runs on.
                if running.contains(&job.id) && job.status != JobStatus::Cancelled {
                    return Ok(TriggerOutcome::AlreadyRunning(job.clone()));
                }
            }
            // A cancelled job re-opened while its driver is still ending takes no second slot.
            let reopened = existing
                .as_ref()
                .is_some_and(|job| running.contains(&job.id));
            if running.len() - usize::from(reopened) >= self.options.max_concurrent_jobs.max(1) {
                let mut ids: Vec<&String> = running.iter().collect();
                ids.sort();
                return Err(AgentError::Busy {
                    running_job_id: ids.first().map(|s| s.to_string()).unwrap_or_default(),
                    limit: self.options.max_concurrent_jobs.max(1),
                });
            }
        }
        let outcome = self.prepare(config).await?;
        if let TriggerOutcome::Started { job, .. } = &outcome {
            // A driver still ending after a cancel sees the job running again and runs on
            // (`drive_until_held`); otherwise a new one starts.
            let mut running = self.running.lock().await;
            if running.insert(job.id.clone()) {
                drop(running);
                self.spawn_driver(job.id.clone());
            }
        }
        Ok(outcome)
    }

    /// Jobs left `pending` or `running` by a previous process (e.g. killed): their running
    /// model-days go back to pending and the jobs run again in the background, up to
    /// `max_concurrent_jobs` at once; the rest wait their turn. `paused` jobs stay paused.
    /// Returns the resumed job ids.
    pub async fn resume_interrupted(self: &Arc<Self>) -> Result<Vec<String>, AgentError> {
        // Journal the interruption of jobs whose process died before taking them over.
        crate::job_owner::interrupt_orphaned_jobs(&*self.store).await?;
        let unfinished: Vec<Job> = self
            .store
            .all_jobs() // oldest first
            .await?
            .into_iter()
            .filter(|j| !j.status.is_terminal())
            .collect();
        // A job another live process runs (e.g. `tradeloom simulate`) is not ours to resume.
        // A paused job is not resumed: only a user's resume does that; the days its dead
        // process left running go back to pending for then.
        let mut mine = Vec::with_capacity(unfinished.len());
        for job in unfinished {
            if crate::job_owner::owned_elsewhere(&*self.store, &job.id).await? {
                continue;
            }
            if job.status == JobStatus::Paused {
                self.store.reset_running_model_days(&job.id).await?;
            } else {
                mine.push(job.id);
            }
        }
        let interrupted = mine;
        for id in &interrupted {
            self.store.reset_running_model_days(id).await?;
        }
        let lanes = self.options.max_concurrent_jobs.max(1);
        // Registered at once, so a trigger arriving before a lane reaches them sees them busy.
        self.running
            .lock()
            .await
            .extend(interrupted.iter().cloned());
        let queue = Arc::new(Mutex::new(std::collections::VecDeque::from(
            interrupted.clone(),
        )));
        for _ in 0..lanes.min(interrupted.len()) {
            let me = Arc::clone(self);
            let queue = Arc::clone(&queue);
            tokio::spawn(async move {
                loop {
                    // Popped in its own statement so the lock is not held while the job runs.
                    let next = queue.lock().await.pop_front();
                    let Some(job_id) = next else { break };
                    me.drive_until_held(&job_id).await;
                }
            });
        }
        Ok(interrupted)
    }

    /// Runs every unfinished model-day of `job_id` to the end and returns the finished job.
    /// Its log lines carry `job_id` and `trace_id` (derived from the job id).
    /// Every order answers to the global kill switch and the job's (`job:<id>`).
    pub async fn run_job(&self, job_id: &str) -> Result<Job, AgentError> {
        self.run_job_under(job_id, &[]).await
    }

    /// [`Simulator::run_job`] for a job started by other runs (a workflow run): the kill
    /// switches `run:<id>` of `parent_runs` cover its orders too.
    pub async fn run_job_under(
        &self,
        job_id: &str,
        parent_runs: &[String],
    ) -> Result<Job, AgentError> {
        let span = tracing::info_span!(
            "job",
            job_id = %job_id,
            trace_id = %tradeloom_core::trace_id(job_id)
        );
        self.run_job_in_span(job_id, parent_runs)
            .instrument(span)
            .await
    }

    async fn run_job_in_span(
        &self,
        job_id: &str,
        parent_runs: &[String],
    ) -> Result<Job, AgentError> {
        match self.drive_job(job_id, parent_runs).await {
            Ok(job) => Ok(job),
            Err(e) => Err(self.stop_on_error(job_id, e).await),
        }
    }

    /// A started job stopped by a store or disk error (a full disk, a read-only folder) ends
    /// `failed` with the reason instead of staying `running`; its unfinished model-days fail with
    /// it and a re-trigger runs them again. Best effort: the store may be what failed.
    async fn stop_on_error(&self, job_id: &str, error: AgentError) -> AgentError {
        if let Ok(job) = self.store.job(job_id).await
            && job.status == JobStatus::Running
            && let Err(e) = self.fail_job(job_id, &format!("stopped: {error}")).await
        {
            tracing::error!(error = %e, "cannot mark the stopped simulation job failed");
        }
        error
    }
}

/// Runs `config` to the end in this process (the CLI's batch mode): the same trigger logic
/// as the API, then the job in the foreground.
pub async fn run_to_end(
    simulator: &Arc<Simulator>,
    config: &ResolvedConfig,
) -> Result<(TriggerOutcome, Job), AgentError> {
    let outcome = simulator.prepare(config).await?;
    let job = match &outcome {
        TriggerOutcome::Current(job)
        | TriggerOutcome::AlreadyRunning(job)
        | TriggerOutcome::Paused(job) => job.clone(),
        TriggerOutcome::Started { job, .. } => {
            simulator.running.lock().await.insert(job.id.clone());
            let result = simulator.run_job(&job.id).await;
            simulator.running.lock().await.remove(&job.id);
            result?
        }
    };
    Ok((outcome, job))
}
