//! Simulation jobs: the worker that runs every model-day of a job, dates in order and models in
//! parallel, and the trigger that makes re-running a config idempotent.
//!
//! Crash safety comes from the store: a model-day is claimed, run, and completed in one
//! transaction with every row it produced. A process killed mid-day leaves that day `running`;
//! [`Simulator::resume_interrupted`] (called when the server starts) puts it back to `pending`
//! and carries on, so no completed model-day is lost and none is written twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore, broadcast};
use tracing::Instrument;
use tradeloom_core::{Decimal, Money, Quantity};
use tradeloom_data::{NewsCorpus, Universe};
use tradeloom_llm::{LlmProvider, OpenAiProvider, ProviderConfig};
use tradeloom_net::{Outbound, SsrfErrorKind};
use tradeloom_store::{
    Job, JobStatus, LeaderboardEntry, ModelDayKey, ModelDayStatus, ModelDayStop, NewJob,
    ResultsFilter, Store, StoreError, TradeAction, config_hash,
};

use crate::book::Book;
use crate::config::{ResolvedConfig, config_from_value};
use crate::error::AgentError;
use crate::job_folder::{write_bootstrap, write_model_day, write_model_day_error};
use crate::order_gate::{KILL_SWITCH_CODE, OrderGate, day_refusal};
use crate::session::{SessionLimits, run_session_gated};
use crate::tools::SessionView;

/// How long a `running` model-day may go without finishing before another worker may take it
/// over. Interrupted days are reset on start-up, so this only matters for a worker that hangs.
const STALE_AFTER: Duration = Duration::from_secs(3600);

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
    store: Arc<dyn Store>,
    options: SimulatorOptions,
    events: broadcast::Sender<SimEvent>,
    /// Jobs running in this process.
    running: Mutex<HashSet<String>>,
    /// Serialises triggers, so the concurrency check and the job insert are one step.
    trigger_lock: Mutex<()>,
}

/// The universe and news of a job, loaded once per run.
struct Market {
    universe: Universe,
    news: NewsCorpus,
    dates: Vec<NaiveDate>,
}

/// Loads the universe (restricted to the config's symbols) and news, and the trading dates in
/// the config's range.
fn load_market(config: &ResolvedConfig) -> Result<Market, AgentError> {
    let mut universe = Universe::load(&config.universe_dir)?;
    if let Some(symbols) = &config.config.symbols {
        universe = universe.restrict(symbols)?;
    }
    let news = match &config.news_path {
        Some(path) => NewsCorpus::load(path)?,
        None => NewsCorpus::empty(),
    };
    let (start, end) = (config.config.start_date, config.config.end_date);
    let dates: Vec<NaiveDate> = universe
        .trading_dates()
        .into_iter()
        .filter(|d| *d >= start && *d <= end)
        .collect();
    if dates.is_empty() {
        return Err(AgentError::Config {
            place: "config: start_date".into(),
            message: format!(
                "no trading days between {start} and {end} in the universe at {} (it covers {} to {})",
                config.universe_dir.display(),
                universe
                    .first_date()
                    .map_or_else(|| "nothing".into(), |d| d.to_string()),
                universe
                    .last_date()
                    .map_or_else(|| "nothing".into(), |d| d.to_string()),
            ),
        });
    }
    Ok(Market {
        universe,
        news,
        dates,
    })
}

/// The provider of one model, sending through the guarded client; the API key comes from the
/// named environment variable, if the allow-list has it.
fn provider_for(
    config: &ResolvedConfig,
    model: &str,
    outbound: &Outbound,
) -> Result<Arc<dyn LlmProvider>, String> {
    let m = config
        .model(model)
        .ok_or_else(|| format!("model `{model}` is not in the job's config"))?;
    let mut settings = ProviderConfig::new(m.base_url.clone(), m.model.clone());
    if let Some(var) = &m.api_key_env {
        let key = outbound
            .secrets
            .read(var)
            .map_err(|e| format!("api_key_env of model `{model}`: {e}"))?;
        settings.api_key = Some(key);
    }
    settings.temperature = m.temperature;
    settings.max_tokens = m.max_tokens;
    if let Some(ms) = m.timeout_ms {
        settings.timeout = Duration::from_millis(ms);
    }
    if let Some(n) = m.max_retries {
        settings.max_retries = n;
    }
    OpenAiProvider::new(settings, &outbound.http)
        .map(|p| Arc::new(p) as Arc<dyn LlmProvider>)
        .map_err(|e| e.to_string())
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

    /// Checks `config` and its market data and creates (or re-opens) its job without running it:
    /// `Started` for a new job or one with model-days left (interrupted, or failed and
    /// kill-switch-refused ones reset to pending), `Current` when every model-day is completed.
    pub async fn prepare(&self, config: &ResolvedConfig) -> Result<TriggerOutcome, AgentError> {
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
        let hash = config_hash(&config.to_value());
        let existing = self.store.find_job_by_config_hash(&hash).await?;
        {
            let running = self.running.lock().await;
            if let Some(job) = &existing {
                // Asking again for a running config is not a new job: report it.
                if running.contains(&job.id) {
                    return Ok(TriggerOutcome::AlreadyRunning(job.clone()));
                }
                // Nothing left to do is an answer even while the worker is busy.
                if job.status == JobStatus::Completed {
                    return Ok(TriggerOutcome::Current(job.clone()));
                }
            }
            if running.len() >= self.options.max_concurrent_jobs.max(1) {
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
            self.spawn(job.id.clone()).await;
        }
        Ok(outcome)
    }

    /// Runs `job_id` on a background task (registered as running until it ends).
    async fn spawn(self: &Arc<Self>, job_id: String) {
        self.running.lock().await.insert(job_id.clone());
        let me = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = me.run_job(&job_id).await {
                tracing::error!(job_id = %job_id, error = %e, "simulation job stopped");
            }
            me.running.lock().await.remove(&job_id);
        });
    }

    /// Jobs left `pending` or `running` by a previous process (e.g. killed): their running
    /// model-days go back to pending and the jobs run again in the background, up to
    /// `max_concurrent_jobs` at once; the rest wait their turn. Returns the resumed job ids.
    pub async fn resume_interrupted(self: &Arc<Self>) -> Result<Vec<String>, AgentError> {
        // Journal the interruption of jobs whose process died before taking them over.
        crate::job_owner::interrupt_orphaned_jobs(&*self.store).await?;
        let mut interrupted = Vec::new();
        let mut offset = 0;
        loop {
            let page = self.store.list_jobs(200, offset).await?;
            if page.is_empty() {
                break;
            }
            offset += page.len() as u64;
            interrupted.extend(
                page.into_iter()
                    .filter(|j| !j.status.is_terminal())
                    .map(|j| j.id),
            );
        }
        interrupted.reverse(); // oldest first
        // A job another live process runs (e.g. `tradeloom simulate`) is not ours to resume.
        let mut mine = Vec::with_capacity(interrupted.len());
        for id in interrupted {
            if !crate::job_owner::owned_elsewhere(&*self.store, &id).await? {
                mine.push(id);
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
                    if let Err(e) = me.run_job(&job_id).await {
                        tracing::error!(job_id = %job_id, error = %e, "resumed simulation job stopped");
                    }
                    me.running.lock().await.remove(&job_id);
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

    async fn drive_job(&self, job_id: &str, parent_runs: &[String]) -> Result<Job, AgentError> {
        let gate = match OrderGate::open(
            &self.options.data_dir,
            Some(job_id.to_string()),
            parent_runs.to_vec(),
        ) {
            Ok(gate) => gate,
            // Without a readable kill switch no order may pass: fail rather than trade blind.
            Err(e) => return self.fail_job(job_id, &format!("kill switch: {e}")).await,
        };
        let job = self.store.job(job_id).await?;
        let config = match config_from_value(&job.config, &self.options.base_dir) {
            Ok(c) => c,
            Err(e) => return self.fail_job(job_id, &e.to_string()).await,
        };
        let market = {
            let config = config.clone();
            match tokio::task::spawn_blocking(move || load_market(&config)).await {
                Ok(Ok(m)) => Arc::new(m),
                Ok(Err(e)) => return self.fail_job(job_id, &e.to_string()).await,
                Err(e) => return self.fail_job(job_id, &e.to_string()).await,
            }
        };
        self.store.mark_job_running(job_id).await?;
        let symbols: Vec<String> = market
            .universe
            .symbols()
            .iter()
            .map(|s| s.to_string())
            .collect();
        {
            let symbol_refs: Vec<&str> = symbols.iter().map(String::as_str).collect();
            write_bootstrap(
                &self.options.data_dir,
                &job,
                &config,
                &symbol_refs,
                &market.dates,
            )?;
        }
        let todo = self.store.unfinished_model_days(job_id).await?;
        let report = self.store.job_report(job_id).await?;
        record(
            &*self.store,
            job_id,
            "job_started",
            json!({
                "total_model_days": report.progress.total_model_days,
                "remaining": todo.len(),
                "models": config.model_names(),
                // Who runs it: a later process marks the job interrupted if this one dies.
                "owner": tradeloom_safety::ProcessOwner::current(),
            }),
        )
        .await?;
        tracing::info!(
            remaining = todo.len(),
            total_model_days = report.progress.total_model_days,
            "simulation job started"
        );
        let _ = self.events.send(SimEvent::JobStarted {
            job_id: job_id.to_string(),
            total_model_days: report.progress.total_model_days,
            remaining: todo.len() as u64,
        });
        let mut by_date: BTreeMap<NaiveDate, Vec<String>> = BTreeMap::new();
        for day in &todo {
            by_date.entry(day.date).or_default().push(day.model.clone());
        }
        let mut books = self.starting_books(&job, &config).await?;
        let providers: HashMap<String, Result<Arc<dyn LlmProvider>, String>> = config
            .model_names()
            .into_iter()
            .map(|m| {
                let p = provider_for(&config, &m, &self.options.outbound);
                (m, p)
            })
            .collect();
        let config = Arc::new(config);
        let symbols = Arc::new(symbols);
        let permits = Arc::new(Semaphore::new(config.parallelism()));
        let mut dates = by_date.into_iter();
        while let Some((date, models)) = dates.next() {
            // Engaged before the date starts: this date and every later one are refused.
            if let Some(engagement) = gate.engaged_now() {
                let reason = day_refusal(&engagement);
                let rest = std::iter::once((date, models)).chain(dates).collect();
                self.refuse_days(job_id, rest, &reason).await?;
                break;
            }
            let mut tasks = tokio::task::JoinSet::new();
            for model in models {
                let ctx = DayContext {
                    store: Arc::clone(&self.store),
                    data_dir: self.options.data_dir.clone(),
                    key: ModelDayKey::new(job_id, model.clone(), date),
                    book: books
                        .get(&model)
                        .cloned()
                        .unwrap_or_else(|| Book::new(config.initial_cash, config.fee)),
                    provider: providers
                        .get(&model)
                        .cloned()
                        .unwrap_or_else(|| Err(format!("unknown model `{model}`"))),
                    config: Arc::clone(&config),
                    market: Arc::clone(&market),
                    symbols: Arc::clone(&symbols),
                    events: self.events.clone(),
                    gate: gate.clone(),
                };
                let permits = Arc::clone(&permits);
                // A child of the job's span: its lines carry job_id and trace_id too.
                let span = tracing::info_span!("model_day", model = %model, date = %date);
                tasks.spawn(
                    async move {
                        // The semaphore is never closed.
                        let _permit = permits.acquire_owned().await.ok();
                        let model = ctx.key.model.clone();
                        (model, run_model_day(ctx).await)
                    }
                    .instrument(span),
                );
            }
            let mut first_error = None;
            let mut refused = None;
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok((model, Ok(DayEnd::Completed(book)))) => {
                        books.insert(model, book);
                    }
                    Ok((model, Ok(DayEnd::Refused))) => {
                        refused.get_or_insert(model);
                    }
                    Ok((_, Ok(DayEnd::Failed | DayEnd::NotClaimed))) => {}
                    Ok((_, Err(e))) => {
                        first_error.get_or_insert(e);
                    }
                    Err(e) => {
                        first_error.get_or_insert(AgentError::Io {
                            path: "model-day task".into(),
                            message: e.to_string(),
                        });
                    }
                }
            }
            // A store or disk failure stops the job (see `stop_on_error`).
            if let Some(e) = first_error {
                return Err(e);
            }
            // The kill switch stopped a day: the job stops too, so that every model's days
            // stay in date order (a later day never completes before an earlier one), and the
            // rest waits for a trigger after release.
            if let Some(model) = refused {
                let reason = format!(
                    "{KILL_SWITCH_CODE}: model-day not traded: the job stopped when the kill switch \
                     refused model `{model}` on {date}; it runs when the job is triggered again after release"
                );
                self.refuse_days(job_id, dates.collect(), &reason).await?;
                break;
            }
        }
        let job = self.store.refresh_job_status(job_id).await?;
        let progress = self.store.job_report(job_id).await?.progress;
        record(
            &*self.store,
            job_id,
            "job_finished",
            json!({
                "status": job.status.as_str(),
                "total_model_days": progress.total_model_days,
                "completed": progress.completed,
                "failed": progress.failed,
                "refused": progress.refused,
            }),
        )
        .await?;
        tracing::info!(
            status = job.status.as_str(),
            completed = progress.completed,
            failed = progress.failed,
            refused = progress.refused,
            "simulation job finished"
        );
        if progress.refused > 0 {
            tracing::warn!(
                refused = progress.refused,
                "model-days refused by the kill switch (risk.kill_switch); trigger the same config again after release to run them"
            );
        }
        for warning in job_warnings(&*self.store, &job).await? {
            tracing::warn!(warning = %warning, "simulation job warning");
        }
        let _ = self.events.send(SimEvent::JobFinished {
            job_id: job_id.to_string(),
            status: job.status,
        });
        Ok(job)
    }

    /// Marks the unfinished model-days of `days` refused with `reason` (no session runs), with
    /// their files, events and progress as for any finished day.
    async fn refuse_days(
        &self,
        job_id: &str,
        days: Vec<(NaiveDate, Vec<String>)>,
        reason: &str,
    ) -> Result<(), AgentError> {
        tracing::warn!(
            reason,
            "kill switch: the job's remaining model-days are refused"
        );
        for (date, models) in days {
            for model in models {
                let key = ModelDayKey::new(job_id, model.clone(), date);
                write_model_day_error(
                    &self.options.data_dir,
                    job_id,
                    &model,
                    date,
                    ModelDayStatus::Refused,
                    reason,
                )?;
                self.store
                    .stop_model_day(
                        &key,
                        &ModelDayStop {
                            status: ModelDayStatus::Refused,
                            ..ModelDayStop::failed(reason)
                        },
                    )
                    .await?;
                record_day_stopped(&*self.store, &key, ModelDayStatus::Refused, reason).await?;
                let _ = self.events.send(SimEvent::ModelDayFinished {
                    job_id: job_id.to_string(),
                    model,
                    date,
                    status: ModelDayStatus::Refused.as_str().to_string(),
                    error: Some(reason.to_string()),
                    portfolio_value: None,
                    duration_ms: 0,
                });
            }
        }
        Ok(())
    }

    /// Fails a job that cannot start (bad config, missing market data) or cannot go on (a store
    /// or disk error) and records it.
    async fn fail_job(&self, job_id: &str, error: &str) -> Result<Job, AgentError> {
        tracing::error!(error, "simulation job failed");
        let job = self.store.fail_job(job_id, error).await?;
        record(
            &*self.store,
            job_id,
            "job_finished",
            json!({"status": job.status.as_str(), "error": error}),
        )
        .await?;
        let _ = self.events.send(SimEvent::JobFinished {
            job_id: job_id.to_string(),
            status: job.status,
        });
        Ok(job)
    }

    /// Each model's book after its last completed model-day (initial cash if none).
    async fn starting_books(
        &self,
        job: &Job,
        config: &ResolvedConfig,
    ) -> Result<HashMap<String, Book>, AgentError> {
        let mut books = HashMap::new();
        for model in config.model_names() {
            let mut last = None;
            let mut offset = 0;
            loop {
                let page = self
                    .store
                    .results(&ResultsFilter {
                        job_id: Some(job.id.clone()),
                        model: Some(model.clone()),
                        date: None,
                        completed_only: true,
                        limit: tradeloom_store::MAX_PAGE,
                        offset,
                    })
                    .await?;
                offset += page.items.len() as u64;
                let done = page.items.is_empty() || offset >= page.total;
                if let Some(item) = page.items.into_iter().last() {
                    last = Some(item);
                }
                if done {
                    break;
                }
            }
            let book = match last {
                Some(day) => {
                    let cash = day.model_day.cash.unwrap_or(config.initial_cash);
                    let holdings = day
                        .holdings
                        .iter()
                        .map(|h| Ok((h.symbol.clone(), whole_shares(h.quantity)?)))
                        .collect::<Result<Vec<_>, AgentError>>()?;
                    Book::with_holdings(cash, holdings, config.fee)
                }
                None => Book::new(config.initial_cash, config.fee),
            };
            books.insert(model, book);
        }
        Ok(books)
    }
}

fn whole_shares(quantity: Decimal) -> Result<Quantity, AgentError> {
    quantity.to_quantity(0).map_err(|e| {
        AgentError::Store(StoreError::Invalid(format!(
            "stored holding quantity {quantity} is not whole shares: {e}"
        )))
    })
}

/// Everything one model-day task needs; nothing is shared mutably between tasks.
struct DayContext {
    store: Arc<dyn Store>,
    data_dir: PathBuf,
    key: ModelDayKey,
    book: Book,
    provider: Result<Arc<dyn LlmProvider>, String>,
    config: Arc<ResolvedConfig>,
    market: Arc<Market>,
    symbols: Arc<Vec<String>>,
    events: broadcast::Sender<SimEvent>,
    gate: OrderGate,
}

/// How one model-day task ended.
enum DayEnd {
    /// With the book to carry to the next date.
    Completed(Book),
    Failed,
    /// The kill switch stopped it: the job stops after this date.
    Refused,
    /// Done or running elsewhere.
    NotClaimed,
}

/// Claims, runs and records one model-day. `Err` when the store or the disk failed (the job
/// then fails with that error; a re-trigger runs the day again).
async fn run_model_day(ctx: DayContext) -> Result<DayEnd, AgentError> {
    let started = Instant::now();
    let Some(_claimed) = ctx.store.claim_model_day(&ctx.key, STALE_AFTER).await? else {
        return Ok(DayEnd::NotClaimed);
    };
    let key = &ctx.key;
    let finished =
        |status: &str, error: Option<String>, value: Option<Money>| SimEvent::ModelDayFinished {
            job_id: key.job_id.clone(),
            model: key.model.clone(),
            date: key.date,
            status: status.to_string(),
            error,
            portfolio_value: value,
            duration_ms: started.elapsed().as_millis() as u64,
        };
    let provider = match &ctx.provider {
        Ok(p) => Arc::clone(p),
        Err(e) => {
            tracing::warn!(error = %e, "model-day failed: no LLM provider");
            write_model_day_error(
                &ctx.data_dir,
                &key.job_id,
                &key.model,
                key.date,
                ModelDayStatus::Failed,
                e,
            )?;
            ctx.store.fail_model_day(key, e).await?;
            record_day_stopped(&*ctx.store, key, ModelDayStatus::Failed, e).await?;
            let _ = ctx.events.send(finished("failed", Some(e.clone()), None));
            return Ok(DayEnd::Failed);
        }
    };
    let view = SessionView {
        universe: &ctx.market.universe,
        news: &ctx.market.news,
        date: key.date,
        reference: ctx.config.config.reference_price,
    };
    let symbols: Vec<&str> = ctx.symbols.iter().map(String::as_str).collect();
    let limits = SessionLimits {
        max_steps: ctx.config.config.max_steps,
        max_tool_errors: ctx.config.config.max_tool_errors,
    };
    let report = run_session_gated(
        &*provider,
        &key.model,
        view,
        &symbols,
        ctx.book.clone(),
        limits,
        Some(ctx.gate.clone()),
    )
    .await;
    // Files first: if the process dies before the store commit, the day re-runs and replaces them.
    write_model_day(&ctx.data_dir, &key.job_id, &key.model, key.date, &report)?;
    match (&report.outcome, &report.error) {
        (Some(outcome), _) => {
            ctx.store.complete_model_day(key, outcome).await?;
            let trades = outcome
                .trades
                .iter()
                .filter(|t| t.action != TradeAction::Hold)
                .count();
            record(
                &*ctx.store,
                &key.job_id,
                "model_day_completed",
                json!({
                    "model": key.model,
                    "date": key.date,
                    "trades": trades,
                    "tool_calls": report.tool_call_count(),
                    // Exact decimal text, never a float.
                    "portfolio_value": outcome.portfolio_value.to_string(),
                    "currency": outcome.portfolio_value.currency().code(),
                }),
            )
            .await?;
            tracing::info!(
                trades,
                tool_calls = report.tool_call_count(),
                portfolio_value = %outcome.portfolio_value,
                "model-day completed"
            );
            let _ = ctx
                .events
                .send(finished("completed", None, Some(outcome.portfolio_value)));
            Ok(DayEnd::Completed(report.final_book))
        }
        (None, error) => {
            let error = error
                .clone()
                .unwrap_or_else(|| "the session ended without an outcome".into());
            let status = if report.refused {
                ModelDayStatus::Refused
            } else {
                ModelDayStatus::Failed
            };
            tracing::warn!(error = %error, status = status.as_str(), "model-day not completed");
            // Counts of a session that ran (they reach the leaderboard); none if it never began.
            let ran = report.steps > 0;
            let stop = ModelDayStop {
                status,
                error: error.clone(),
                steps: ran.then_some(report.steps),
                tool_calls: ran.then(|| report.tool_call_count()),
                tool_errors: ran.then(|| report.tool_errors()),
            };
            ctx.store.stop_model_day(key, &stop).await?;
            record_day_stopped(&*ctx.store, key, status, &error).await?;
            let _ = ctx
                .events
                .send(finished(status.as_str(), Some(error), None));
            Ok(match status {
                ModelDayStatus::Refused => DayEnd::Refused,
                _ => DayEnd::Failed,
            })
        }
    }
}

/// Appends a trading event of the job to the store's event log (streamed by `GET /ws`). It is
/// written right after the change it reports, so a process killed between the two loses that
/// one event (the change itself is kept and is not redone).
async fn record(
    store: &dyn Store,
    job_id: &str,
    kind: &str,
    payload: Value,
) -> Result<(), AgentError> {
    store.append_job_event(job_id, kind, &payload).await?;
    Ok(())
}

/// Records a failed (`model_day_failed`) or refused (`model_day_refused`) model-day.
async fn record_day_stopped(
    store: &dyn Store,
    key: &ModelDayKey,
    status: ModelDayStatus,
    error: &str,
) -> Result<(), AgentError> {
    let kind = match status {
        ModelDayStatus::Refused => "model_day_refused",
        _ => "model_day_failed",
    };
    record(
        store,
        &key.job_id,
        kind,
        json!({"model": key.model, "date": key.date, "error": error}),
    )
    .await
}

/// Warnings about a job's results that look normal but are not: a model that completed days
/// without calling a single tool did not trade on information (its days read like good days
/// of not trading). One line per such model.
pub fn tool_use_warnings(entries: &[LeaderboardEntry]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.completed_days > 0 && e.tool_calls == 0)
        .map(|e| {
            format!(
                "model `{}` made no tool call in its {} completed model-day(s): it never looked at \
                 prices or its portfolio and never traded; check that the model supports tool \
                 calling and that its endpoint passes `tools` through",
                e.model, e.completed_days
            )
        })
        .collect()
}

/// [`tool_use_warnings`] of `job`, read from the store.
pub async fn job_warnings(store: &dyn Store, job: &Job) -> Result<Vec<String>, AgentError> {
    let initial = crate::config::initial_value(&job.config, job.currency);
    Ok(tool_use_warnings(
        &store.leaderboard(&job.id, initial).await?,
    ))
}

/// Runs `config` to the end in this process (the CLI's batch mode): the same trigger logic
/// as the API, then the job in the foreground.
pub async fn run_to_end(
    simulator: &Arc<Simulator>,
    config: &ResolvedConfig,
) -> Result<(TriggerOutcome, Job), AgentError> {
    let outcome = simulator.prepare(config).await?;
    let job = match &outcome {
        TriggerOutcome::Current(job) | TriggerOutcome::AlreadyRunning(job) => job.clone(),
        TriggerOutcome::Started { job, .. } => {
            simulator.running.lock().await.insert(job.id.clone());
            let result = simulator.run_job(&job.id).await;
            simulator.running.lock().await.remove(&job.id);
            result?
        }
    };
    Ok((outcome, job))
}

/// Where a job's run folder is.
pub fn job_run_dir(data_dir: &Path, job_id: &str) -> PathBuf {
    crate::job_folder::job_dir(data_dir, job_id)
}
