//! Running a job: its model-days date by date, models in parallel, until done or refused.

use std::collections::{BTreeMap, HashMap};

use std::sync::Arc;

use chrono::NaiveDate;

use serde_json::json;
use tokio::sync::Semaphore;
use tracing::Instrument;

use tradeloom_llm::LlmProvider;

use tokio::sync::broadcast;
use tradeloom_store::{
    Backend, Job, JobStatus, ModelDay, ModelDayKey, ModelDayStatus, ModelDayStop, ResultsFilter,
    Store,
};

use super::market::{Market, ProviderError, load_market, provider_for};
use super::model_day::{
    DayContext, DayEnd, FinishedDay, STALE_AFTER, commit_finished, record, record_day_stopped,
    run_claimed_day, whole_shares,
};
use super::simulator::{SimEvent, Simulator};
use super::warnings::job_warnings;
use crate::book::Book;
use crate::config::{ResolvedConfig, config_from_value};
use crate::error::AgentError;
use crate::job_folder::{write_bootstrap, write_model_day_error};
use crate::memory::{MemoryEntry, entries_of};
use crate::order_gate::{KILL_SWITCH_CODE, OrderGate, day_refusal};

impl Simulator {
    pub(super) async fn drive_job(
        &self,
        job_id: &str,
        parent_runs: &[String],
    ) -> Result<Job, AgentError> {
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
        // Paused or cancelled by a user before this driver began: nothing to run.
        if matches!(job.status, JobStatus::Paused | JobStatus::Cancelled) {
            tracing::info!(status = job.status.as_str(), "simulation job not run");
            return Ok(job);
        }
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
        let (symbols, by_date) = self.start_job(&job, &config, &market).await?;
        let mut books = self.starting_books(&job, &config).await?;
        let mut memories = self.starting_memories(job_id, &config).await?;
        let providers = config
            .model_names()
            .into_iter()
            .map(|m| {
                let p = provider_for(&config, &m, &self.options.outbound);
                (m, p)
            })
            .collect();
        let shared = JobShared {
            permits: Arc::new(Semaphore::new(config.parallelism())),
            config: Arc::new(config),
            market,
            symbols: Arc::new(symbols),
            providers,
            gate,
        };
        // Earlier dates' completions commit while later dates' sessions run; they are settled
        // before anything else is written and at every way out.
        let mut commits = Commits::default();
        let driven = self
            .drive_dates(
                job_id,
                by_date,
                &shared,
                (&mut books, &mut memories),
                &mut commits,
            )
            .await;
        let settled = commits.settle(&*self.store, &self.events).await;
        let paused = driven?;
        settled?;
        if let Some(job) = paused {
            return self.release(job).await;
        }
        // Paused during the last date with days left: the job waits for a resume, unfinished.
        let now = self.store.refresh_job_status(job_id).await?;
        if now.status == JobStatus::Paused {
            return self.release(now).await;
        }
        self.finish_job(job_id).await
    }

    /// Stops driving a paused job: journals that this process no longer owns it (a resume from
    /// any process may run it) and returns it.
    async fn release(&self, job: Job) -> Result<Job, AgentError> {
        tracing::info!("simulation job paused: its driver stops");
        record(
            &*self.store,
            &job.id,
            crate::job_owner::RELEASE_EVENT,
            json!({"reason": "paused", "owner": tradeloom_safety::ProcessOwner::current()}),
        )
        .await?;
        Ok(job)
    }

    /// A user's pause or cancel, from this process or another: `Some(status)` when the job
    /// should not start another date.
    async fn stopped_by_user(&self, job_id: &str) -> Result<Option<Job>, AgentError> {
        let now = self.store.job(job_id).await?;
        Ok(matches!(now.status, JobStatus::Paused | JobStatus::Cancelled).then_some(now))
    }

    /// Runs the dates in order. Each date's finished days are committed (one transaction) on
    /// a task of their own while the next date, claimed first, runs its sessions: the next
    /// date's books are in memory already. One commit runs at a time; dates that end while it
    /// runs are committed together by the next one (see [`Commits`]), so no day completes
    /// before an earlier one and a day is announced only once it is durable. A user's pause or
    /// cancel stops the claims (the store's claim refuses the days of a paused or cancelled
    /// job, and the job is read when a claim got nothing or no date is claimed ahead):
    /// `Some(job)` when paused, for the caller to release it; a date already claimed runs to
    /// its end.
    async fn drive_dates(
        &self,
        job_id: &str,
        by_date: BTreeMap<NaiveDate, Vec<String>>,
        shared: &JobShared,
        (books, memories): (&mut HashMap<String, Book>, &mut Memories),
        commits: &mut Commits,
    ) -> Result<Option<Job>, AgentError> {
        let mut dates = by_date.into_iter().peekable();
        // The next date's claims, taken before the previous date's commit started.
        let mut claimed: Option<(NaiveDate, Vec<ModelDay>)> = None;
        while let Some((date, models)) = dates.next() {
            let claims = match claimed.take() {
                Some((day, claims)) if day == date => claims,
                _ => {
                    commits.settle(&*self.store, &self.events).await?;
                    if let Some(job) = self.stopped_by_user(job_id).await? {
                        return Ok((job.status == JobStatus::Paused).then_some(job));
                    }
                    // Engaged before the date starts: this date and every later one are refused.
                    if let Some(engagement) = shared.gate.engaged_now() {
                        let reason = day_refusal(&engagement);
                        let rest = std::iter::once((date, models)).chain(dates).collect();
                        self.refuse_days(job_id, rest, &reason).await?;
                        return Ok(None);
                    }
                    // Days done or running elsewhere are not claimed, and not run.
                    self.store
                        .claim_model_days(job_id, date, &models, STALE_AFTER)
                        .await?
                }
            };
            let run = self
                .run_sessions(job_id, date, claims, shared, (books, memories))
                .await;
            for day in &run.finished {
                books.insert(day.model().to_string(), day.book().clone());
                if let Some(entry) = day.memory() {
                    Arc::make_mut(memories.entry(day.model().to_string()).or_default())
                        .push(entry.clone());
                }
            }
            let next_claimable = run.error.is_none()
                && run.refused.is_none()
                && dates.peek().is_some()
                && shared.gate.engaged_now().is_none();
            if !next_claimable {
                // After the earlier dates, which are durable before this one is written.
                commits.add(run.finished);
                let committed = commits.settle(&*self.store, &self.events).await;
                if let Some(e) = run.error {
                    return Err(e);
                }
                committed?;
                // The kill switch stopped a day: the job stops too, so that every model's days
                // stay in date order (a later day never completes before an earlier one), and
                // the rest waits for a trigger after release.
                if let Some(model) = run.refused {
                    let reason = format!(
                        "{KILL_SWITCH_CODE}: model-day not traded: the job stopped when the kill switch \
                         refused model `{model}` on {date}; it runs when the job is triggered again after release"
                    );
                    self.refuse_days(job_id, dates.collect(), &reason).await?;
                    return Ok(None);
                }
                // An engaged kill switch (or a pause) is found at the top of the next date.
                continue;
            }
            // SQLite has one writer: a claim during a commit would wait for its lock in the busy
            // handler's sleeps, so the earlier dates are committed first. PostgreSQL locks rows,
            // and the claim's rows are not the commit's: there it runs beside the commit.
            if self.store.backend() == Backend::Sqlite {
                commits.wait_running().await?;
            }
            // The next date is claimed now. The claim is the pause check: it claims nothing of a
            // paused or cancelled job (in the same statement), and a date claimed before a pause
            // runs to its end. Nothing claimed: the top of the next date reads the job and stops,
            // or claims again (its days were done or running elsewhere).
            if let Some((next, next_models)) = dates.peek() {
                let claims = self
                    .store
                    .claim_model_days(job_id, *next, next_models, STALE_AFTER)
                    .await?;
                if !claims.is_empty() {
                    claimed = Some((*next, claims));
                }
            }
            commits
                .hand_over(run.finished, &self.store, &self.events)
                .await?;
        }
        Ok(None)
    }

    /// Writes the job's bootstrap files, records and announces its start; returns the symbols
    /// and the unfinished model-days by date.
    async fn start_job(
        &self,
        job: &Job,
        config: &ResolvedConfig,
        market: &Market,
    ) -> Result<(Vec<String>, BTreeMap<NaiveDate, Vec<String>>), AgentError> {
        let job_id = job.id.as_str();
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
                job,
                config,
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
        Ok((symbols, by_date))
    }

    /// Runs the sessions of a date's claimed model-days, models in parallel, starting from
    /// `books`. Failed and refused days are recorded as they end; finished ones come back to be
    /// completed together. A store or disk failure comes back as `error` (the job then stops,
    /// see `stop_on_error`).
    async fn run_sessions(
        &self,
        job_id: &str,
        date: NaiveDate,
        claims: Vec<ModelDay>,
        shared: &JobShared,
        (books, memories): (&HashMap<String, Book>, &Memories),
    ) -> DateRun {
        let config = &shared.config;
        let mut tasks = tokio::task::JoinSet::new();
        for claim in claims {
            let model = claim.model.clone();
            let ctx = DayContext {
                store: Arc::clone(&self.store),
                data_dir: self.options.data_dir.clone(),
                key: ModelDayKey::new(job_id, model.clone(), date),
                book: books
                    .get(&model)
                    .cloned()
                    .unwrap_or_else(|| Book::new(config.initial_cash, config.fee)),
                provider: shared
                    .providers
                    .get(&model)
                    .cloned()
                    .unwrap_or_else(|| Err(ProviderError::Unknown(model.clone()))),
                config: Arc::clone(config),
                market: Arc::clone(&shared.market),
                symbols: Arc::clone(&shared.symbols),
                events: self.events.clone(),
                gate: shared.gate.clone(),
                memory: config.model(&model).and_then(|m| m.memory).map(|settings| {
                    let entries = memories.get(&model).cloned().unwrap_or_default();
                    (settings, entries)
                }),
            };
            let permits = Arc::clone(&shared.permits);
            // A child of the job's span: its lines carry job_id and trace_id too.
            let span = tracing::info_span!("model_day", model = %model, date = %date);
            tasks.spawn(
                async move {
                    // The semaphore is never closed.
                    let _permit = permits.acquire_owned().await.ok();
                    (model, run_claimed_day(ctx, claim).await)
                }
                .instrument(span),
            );
        }
        let mut run = DateRun {
            finished: Vec::new(),
            refused: None,
            error: None,
        };
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((_, Ok(DayEnd::Finished(day)))) => run.finished.push(*day),
                Ok((model, Ok(DayEnd::Refused))) => {
                    run.refused.get_or_insert(model);
                }
                Ok((_, Ok(DayEnd::Failed))) => {}
                Ok((_, Err(e))) => {
                    run.error.get_or_insert(e);
                }
                Err(e) => {
                    run.error.get_or_insert(AgentError::Io {
                        path: "model-day task".into(),
                        message: e.to_string(),
                    });
                }
            }
        }
        // Completed in model order, so a date's events are in the same order on every run.
        run.finished.sort_by(|a, b| a.model().cmp(b.model()));
        run
    }

    /// Records, logs and announces how the job ended.
    async fn finish_job(&self, job_id: &str) -> Result<Job, AgentError> {
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
        if job.status == JobStatus::Cancelled {
            // Its in-flight days are done: nobody runs it any more (a trigger of its config
            // from any process may run the cancelled days).
            record(
                &*self.store,
                job_id,
                crate::job_owner::RELEASE_EVENT,
                json!({"reason": "cancelled", "owner": tradeloom_safety::ProcessOwner::current()}),
            )
            .await?;
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
    pub(super) async fn refuse_days(
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
    pub(super) async fn fail_job(&self, job_id: &str, error: &str) -> Result<Job, AgentError> {
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

    /// What each model with memory remembers of its completed days (a resumed job's models
    /// carry on from what they stored).
    async fn starting_memories(
        &self,
        job_id: &str,
        config: &ResolvedConfig,
    ) -> Result<Memories, AgentError> {
        let with_memory = config.config.models.iter().any(|m| m.memory.is_some());
        let mut memories = Memories::new();
        if !with_memory {
            return Ok(memories);
        }
        let mut by_model: BTreeMap<String, Vec<(NaiveDate, serde_json::Value)>> = BTreeMap::new();
        for day in self.store.model_day_memories(job_id, None).await? {
            by_model
                .entry(day.model)
                .or_default()
                .push((day.date, day.memory));
        }
        for (model, stored) in by_model {
            memories.insert(model, Arc::new(entries_of(stored)));
        }
        Ok(memories)
    }

    /// Each model's book after its last completed model-day (initial cash if none).
    pub(super) async fn starting_books(
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

/// What each model with memory remembers, in date order (shared with its day's task).
type Memories = HashMap<String, Arc<Vec<MemoryEntry>>>;

/// How a date's sessions ended.
struct DateRun {
    /// Days to complete, in model order (the finished days are completed even if another day
    /// of the date stopped the job).
    finished: Vec<FinishedDay>,
    /// A model the kill switch refused.
    refused: Option<String>,
    /// The first store or disk failure.
    error: Option<AgentError>,
}

/// A date's completions committing on a task of their own.
type Committing = tokio::task::JoinHandle<Result<(), AgentError>>;

/// How many ended dates may wait for the running commit before the next date waits for it
/// too: their finished days (transcripts included) are held in memory until committed.
const MAX_WAITING_DATES: usize = 4;

/// A job's finished days on their way to the store. At most one commit runs, on a task of its
/// own, while later dates' sessions run; the dates that end meanwhile wait, and the next commit
/// takes them all, in date order, in one transaction. When commits are slower than sessions
/// (PostgreSQL's statements and the commit's `fsync`), each commit then carries several dates
/// instead of the sessions waiting for every date's commit in turn.
#[derive(Default)]
struct Commits {
    /// The commit on its way: earlier dates than any waiting.
    running: Option<Committing>,
    /// Finished days of the dates ended since, in date order.
    waiting: Vec<FinishedDay>,
    /// How many dates `waiting` holds (a date without a finished day counts).
    waiting_dates: usize,
}

impl Commits {
    /// Adds a date's finished days after those handed over before.
    fn add(&mut self, days: Vec<FinishedDay>) {
        self.waiting.extend(days);
        self.waiting_dates += 1;
    }

    /// Waits for the running commit; its error, or its task's. After an error the waiting
    /// days are dropped, never committed after a date that was not: they stay `running` in
    /// the store and run again after a reset.
    async fn wait_running(&mut self) -> Result<(), AgentError> {
        let done = settle(self.running.take()).await;
        if done.is_err() {
            self.waiting.clear();
            self.waiting_dates = 0;
        }
        done
    }

    /// Makes every day handed over durable: waits for the running commit, then commits the
    /// waiting dates here. The first error.
    async fn settle(
        &mut self,
        store: &dyn Store,
        events: &broadcast::Sender<SimEvent>,
    ) -> Result<(), AgentError> {
        self.wait_running().await?;
        commit_finished(store, events, self.take_waiting()).await
    }

    /// The waiting days, which the caller commits next.
    fn take_waiting(&mut self) -> Vec<FinishedDay> {
        self.waiting_dates = 0;
        std::mem::take(&mut self.waiting)
    }

    /// Hands over a date's finished days: they start committing at once if no commit runs (or
    /// once it ends, when [`MAX_WAITING_DATES`] dates wait), else they wait for the next.
    async fn hand_over(
        &mut self,
        days: Vec<FinishedDay>,
        store: &Arc<dyn Store>,
        events: &broadcast::Sender<SimEvent>,
    ) -> Result<(), AgentError> {
        self.add(days);
        let busy = self
            .running
            .as_ref()
            .is_some_and(|task| !task.is_finished());
        if busy && self.waiting_dates < MAX_WAITING_DATES {
            return Ok(());
        }
        self.wait_running().await?;
        let days = self.take_waiting();
        let (store, events) = (Arc::clone(store), events.clone());
        self.running = Some(tokio::spawn(
            async move { commit_finished(&*store, &events, days).await }
                .instrument(tracing::Span::current()),
        ));
        Ok(())
    }
}

/// Waits for a date's completions to be committed; their error, or the task's.
async fn settle(committing: Option<Committing>) -> Result<(), AgentError> {
    match committing {
        None => Ok(()),
        Some(task) => task.await.map_err(|e| AgentError::Io {
            path: "model-day commit task".into(),
            message: e.to_string(),
        })?,
    }
}

/// What every model-day of a running job shares.
struct JobShared {
    config: Arc<ResolvedConfig>,
    market: Arc<Market>,
    symbols: Arc<Vec<String>>,
    providers: HashMap<String, Result<Arc<dyn LlmProvider>, ProviderError>>,
    permits: Arc<Semaphore>,
    gate: OrderGate,
}
