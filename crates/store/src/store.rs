//! The [`Store`] trait and [`open_store`], which picks the back end from a URL or path.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tradeloom_core::Money;

use crate::api_key::{ApiKey, NewApiKey};
use crate::error::StoreError;
use crate::job::{Job, JobReport, NewJob};
use crate::migration::MigrationInfo;
use crate::model_day::{
    Holding, ModelDay, ModelDayKey, ModelDayOutcome, ModelDayStop, ReasoningMessage, ToolCall,
    Trade,
};
use crate::postgres::PgStore;
use crate::results::{LeaderboardEntry, ResultsFilter, ResultsPage};
use crate::run_index::RunEntry;
use crate::sqlite::SqliteStore;
use crate::workflow::{Blob, NewWorkflowVersion, Workflow, WorkflowVersion};
use crate::workflow_run::{
    Approval, ApprovalStatus, NewWorkflowRun, NodeState, Patch, RunEvent, RunStatus, Transition,
    TransitionOutcome, WorkflowRun,
};

/// Which database a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Persistence of model-day simulation jobs.
///
/// Designed for a crash-safe, idempotent worker: claim a model-day, run it, then
/// [`complete_model_day`](Store::complete_model_day) writes every row it produced in one
/// transaction, so a crash never leaves half a model-day and a retry never duplicates rows. On
/// start-up, [`reset_running_model_days`](Store::reset_running_model_days) returns
/// interrupted model-days to `pending`.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    fn backend(&self) -> Backend;

    /// A cheap round trip to the database.
    async fn health(&self) -> Result<(), StoreError>;

    /// Every embedded migration and whether the database has it.
    async fn migration_status(&self) -> Result<Vec<MigrationInfo>, StoreError>;

    // ---- jobs ----------------------------------------------------------------------------

    /// Creates a pending job with one pending model-day per `(model, date)`, in one
    /// transaction. [`StoreError::Conflict`] if a pending or running job has the same config
    /// hash (look it up with [`find_job_by_config_hash`](Store::find_job_by_config_hash)).
    async fn create_job(&self, job: NewJob) -> Result<Job, StoreError>;

    /// [`StoreError::NotFound`] if there is no such job.
    async fn job(&self, job_id: &str) -> Result<Job, StoreError>;

    /// The newest job whose config has this hash ([`crate::config_hash`]).
    async fn find_job_by_config_hash(&self, config_hash: &str) -> Result<Option<Job>, StoreError>;

    /// Jobs, newest first.
    async fn list_jobs(&self, limit: u32, offset: u64) -> Result<Vec<Job>, StoreError>;

    /// The oldest pending or running job, if any (for `MAX_CONCURRENT_JOBS` = 1 and
    /// `GET /simulate/current`).
    async fn current_job(&self) -> Result<Option<Job>, StoreError>;

    /// `pending`/`interrupted` → `running` (sets `started_at`; clears an interruption's error);
    /// a running job is returned unchanged.
    /// [`StoreError::Conflict`] if the job already finished.
    async fn mark_job_running(&self, job_id: &str) -> Result<Job, StoreError>;

    /// Marks a job failed as a whole (e.g. its config could not be loaded); its unfinished
    /// model-days fail with the same error.
    async fn fail_job(&self, job_id: &str, error: &str) -> Result<Job, StoreError>;

    /// Marks a `pending` or `running` job whose process died `interrupted` with `reason` (its
    /// running model-days back to `pending`, in one transaction) and appends a
    /// `job_interrupted` event. `None` when the job is no longer pending or running;
    /// [`StoreError::NotFound`] if there is no such job. [`Store::mark_job_running`] resumes it.
    async fn interrupt_job(&self, job_id: &str, reason: &str) -> Result<Option<Job>, StoreError>;

    /// Recomputes the job's status from its model-days (all completed → completed; none left
    /// and some failed → partial, or failed if all did; otherwise running) and stores it with
    /// `finished_at` when terminal.
    async fn refresh_job_status(&self, job_id: &str) -> Result<Job, StoreError>;

    /// Deletes a job and, by cascade, everything of it. [`StoreError::NotFound`] if absent.
    async fn delete_job(&self, job_id: &str) -> Result<(), StoreError>;

    /// The job with progress counts and every model-day.
    async fn job_report(&self, job_id: &str) -> Result<JobReport, StoreError>;

    // ---- model-days ------------------------------------------------------------------------

    /// Model-days of the job still to do (pending or running), by date then model.
    async fn unfinished_model_days(&self, job_id: &str) -> Result<Vec<ModelDay>, StoreError>;

    /// Claims a model-day for a worker: `pending → running`, or takes over one that has been
    /// `running` for longer than `stale_after` (its worker crashed). Returns `None` if it is
    /// done, failed, or freshly running elsewhere; [`StoreError::NotFound`] if it does not exist.
    async fn claim_model_day(
        &self,
        key: &ModelDayKey,
        stale_after: Duration,
    ) -> Result<Option<ModelDay>, StoreError>;

    /// Completes a claimed (running) model-day with everything it produced, in one
    /// transaction: rows left by an earlier attempt are replaced, never duplicated.
    /// [`StoreError::Conflict`] if it is already completed or not claimed;
    /// [`StoreError::Invalid`] if money is not in the job's currency.
    async fn complete_model_day(
        &self,
        key: &ModelDayKey,
        outcome: &ModelDayOutcome,
    ) -> Result<ModelDay, StoreError>;

    /// Fails a pending or running model-day with `error` (no session counts).
    /// [`StoreError::Conflict`] if completed.
    async fn fail_model_day(&self, key: &ModelDayKey, error: &str) -> Result<ModelDay, StoreError> {
        self.stop_model_day(key, &ModelDayStop::failed(error)).await
    }

    /// Ends a pending or running model-day without results: `failed` or `refused` (by the
    /// kill switch), with why and its session's steps, tool calls and tool errors (they count
    /// on the leaderboard). [`StoreError::Conflict`] if completed; [`StoreError::Invalid`] for
    /// another status.
    async fn stop_model_day(
        &self,
        key: &ModelDayKey,
        stop: &ModelDayStop,
    ) -> Result<ModelDay, StoreError>;

    /// Crash recovery: every `running` model-day of the job back to `pending`. Returns how
    /// many were reset.
    async fn reset_running_model_days(&self, job_id: &str) -> Result<u64, StoreError>;

    /// Re-opens a finished job for a re-trigger: every `failed` or `refused` model-day back to
    /// `pending` (error and session counts cleared) and, if there was any, the job back to `pending`. Completed model-days
    /// are untouched. Returns how many were reset.
    async fn retry_failed_model_days(&self, job_id: &str) -> Result<u64, StoreError>;

    async fn model_day(&self, key: &ModelDayKey) -> Result<ModelDay, StoreError>;
    async fn trades(&self, key: &ModelDayKey) -> Result<Vec<Trade>, StoreError>;
    async fn holdings(&self, key: &ModelDayKey) -> Result<Vec<Holding>, StoreError>;
    async fn reasoning_logs(&self, key: &ModelDayKey) -> Result<Vec<ReasoningMessage>, StoreError>;
    async fn tool_usage(&self, key: &ModelDayKey) -> Result<Vec<ToolCall>, StoreError>;

    // ---- results -----------------------------------------------------------------------------

    /// Model-days matching the filter with their holdings, paginated.
    async fn results(&self, filter: &ResultsFilter) -> Result<ResultsPage, StoreError>;

    /// Per-model standings of a job, by model name; returns and drawdowns are measured from
    /// `initial_value`.
    async fn leaderboard(
        &self,
        job_id: &str,
        initial_value: Money,
    ) -> Result<Vec<LeaderboardEntry>, StoreError>;

    // ---- workflows -----------------------------------------------------------------------

    /// Stores `body` under its sha256 (see [`crate::blob_hash`]) unless it is there already;
    /// returns the hash.
    async fn put_blob(&self, kind: &str, body: &str) -> Result<String, StoreError>;

    /// [`StoreError::NotFound`] if no blob has this hash.
    async fn blob(&self, hash: &str) -> Result<Blob, StoreError>;

    /// A new workflow at version 1, its definition and IR stored as blobs, in one transaction.
    /// [`StoreError::Conflict`] if a workflow has this name.
    async fn create_workflow(
        &self,
        new: &NewWorkflowVersion,
    ) -> Result<WorkflowVersion, StoreError>;

    /// The next version of workflow `id`, or its latest version unchanged (`false`) when the IR
    /// is the same. [`StoreError::NotFound`] if absent; [`StoreError::Conflict`] if the new name
    /// belongs to another workflow.
    async fn update_workflow(
        &self,
        id: &str,
        new: &NewWorkflowVersion,
    ) -> Result<(WorkflowVersion, bool), StoreError>;

    async fn workflow(&self, id: &str) -> Result<Workflow, StoreError>;

    /// Workflows by name.
    async fn list_workflows(&self, limit: u32, offset: u64) -> Result<Vec<Workflow>, StoreError>;

    /// One version (the latest when `None`).
    async fn workflow_version(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<WorkflowVersion, StoreError>;

    /// Every version, oldest first.
    async fn workflow_versions(&self, id: &str) -> Result<Vec<WorkflowVersion>, StoreError>;

    /// Deletes a workflow and its versions (blobs stay: other versions may share them).
    async fn delete_workflow(&self, id: &str) -> Result<(), StoreError>;

    // ---- workflow runs -------------------------------------------------------------------

    /// A new `pending` run with every node `pending` and a `run_created` event.
    async fn create_workflow_run(&self, new: &NewWorkflowRun) -> Result<WorkflowRun, StoreError>;

    async fn workflow_run(&self, run_id: &str) -> Result<WorkflowRun, StoreError>;

    /// The run's nodes, by node id.
    async fn node_states(&self, run_id: &str) -> Result<Vec<NodeState>, StoreError>;

    /// Runs, newest first, optionally only those in `status`.
    async fn list_workflow_runs(
        &self,
        status: Option<RunStatus>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<WorkflowRun>, StoreError>;

    /// Commits a transition atomically and at most once (see [`crate::Transition`]).
    /// [`StoreError::Conflict`] when the run is no longer at `expect_revision`;
    /// [`StoreError::NotFound`] when there is no such run.
    async fn commit_transition(&self, t: &Transition) -> Result<TransitionOutcome, StoreError>;

    /// [`StoreError::NotFound`] if there is no such approval.
    async fn approval(&self, id: &str) -> Result<Approval, StoreError>;

    /// Approvals, oldest first, optionally only those in `status` and/or of one run.
    async fn list_approvals(
        &self,
        status: Option<ApprovalStatus>,
        run_id: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Approval>, StoreError>;

    /// The patches a run accepted, by IR version.
    async fn run_patches(&self, run_id: &str) -> Result<Vec<Patch>, StoreError>;

    /// Events with `seq > after_seq`, oldest first, at most `limit` (0 → 100, capped at
    /// [`crate::MAX_PAGE`]): those of one workflow run, or with `None` every event of the log
    /// (runs' and jobs'). Committed events appear in `seq` order on both back ends, so reading
    /// on from the last `seq` seen misses nothing.
    async fn run_events(
        &self,
        run_id: Option<&str>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<RunEvent>, StoreError>;

    /// Events of one simulation job with `seq > after_seq`, oldest first (paged as
    /// [`Store::run_events`]).
    async fn job_events(
        &self,
        job_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<RunEvent>, StoreError>;

    /// Appends an event of simulation job `job_id` (e.g. `model_day_completed`) to the event
    /// log and returns its `seq`. [`StoreError::NotFound`] when there is no such job,
    /// [`StoreError::Invalid`] for an empty `kind`.
    async fn append_job_event(
        &self,
        job_id: &str,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<i64, StoreError>;

    // ---- API keys ------------------------------------------------------------------------

    /// Stores a key made by [`NewApiKey::generate`]. [`StoreError::Conflict`] if the name (of
    /// any key, revoked ones included) or the hash is taken; [`StoreError::Invalid`] for a bad
    /// name.
    async fn create_api_key(&self, new: &NewApiKey) -> Result<ApiKey, StoreError>;

    /// The key whose secret hashes to `key_hash` ([`crate::api_key_hash`]), if it exists and is
    /// not revoked.
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Every key, revoked ones included, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes the key with this id, else the one with this name; a key already revoked is
    /// returned unchanged. [`StoreError::NotFound`] if there is neither.
    async fn revoke_api_key(&self, id_or_name: &str) -> Result<ApiKey, StoreError>;

    /// Sets the key's `last_used_at` to now. [`StoreError::NotFound`] if absent.
    async fn touch_api_key(&self, id: &str) -> Result<(), StoreError>;

    // ---- workflow schedules ----------------------------------------------------------------

    /// Claims cron fire time `fire_at` of a workflow: `true` for the first caller only, `false`
    /// when it is claimed already (by this or another scheduler), so each fire time starts at
    /// most one run. Stored to the microsecond. [`StoreError::NotFound`] if there is no such
    /// workflow.
    async fn claim_schedule_fire(
        &self,
        workflow_id: &str,
        fire_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError>;

    /// Records the run a claimed fire time started. [`StoreError::NotFound`] if the fire time
    /// was not claimed.
    async fn set_schedule_fire_run(
        &self,
        workflow_id: &str,
        fire_at: chrono::DateTime<chrono::Utc>,
        run_id: &str,
    ) -> Result<(), StoreError>;

    /// Records why starting the run of a claimed fire time failed. [`StoreError::NotFound`] if
    /// the fire time was not claimed.
    async fn set_schedule_fire_error(
        &self,
        workflow_id: &str,
        fire_at: chrono::DateTime<chrono::Utc>,
        error: &str,
    ) -> Result<(), StoreError>;

    /// The latest claimed fire time of a workflow (`None` if none, or no such workflow).
    async fn last_schedule_fire(
        &self,
        workflow_id: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError>;

    /// Claimed fire times of a workflow, newest first (`limit` 0 means 100).
    async fn schedule_fires(
        &self,
        workflow_id: &str,
        limit: u32,
    ) -> Result<Vec<crate::ScheduleFire>, StoreError>;

    // ---- runs index --------------------------------------------------------------------------

    /// Indexes a run folder; [`StoreError::Conflict`] if the run id is already indexed.
    async fn insert_run(&self, run: &RunEntry) -> Result<(), StoreError>;
    async fn run(&self, run_id: &str) -> Result<RunEntry, StoreError>;
    /// Runs, newest first.
    async fn list_runs(&self, limit: u32, offset: u64) -> Result<Vec<RunEntry>, StoreError>;

    // ---- metrics -----------------------------------------------------------------------------

    /// Jobs, model-days, workflow runs and workflow nodes counted by status (for `/metrics`).
    async fn status_counts(&self) -> Result<crate::StatusCounts, StoreError>;
}

/// Where a store lives, parsed from what the user gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file (created with its parent directories if missing).
    Sqlite(std::path::PathBuf),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl Location {
    /// A `postgres://` / `postgresql://` URL → PostgreSQL; `sqlite://PATH`, `sqlite:PATH` or a
    /// plain path → SQLite. A directory (existing, or a path ending in `/`) means
    /// `DIR/tradeloom.db`.
    pub fn parse(url_or_path: &str) -> Result<Self, StoreError> {
        let s = url_or_path.trim();
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Location::Postgres(s.to_string()));
        }
        let path = if let Some(rest) = s.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = s.strip_prefix("sqlite:") {
            rest
        } else if s.contains("://") {
            return Err(StoreError::Invalid(format!(
                "unsupported database URL `{s}`; expected a path, `sqlite://PATH` or `postgres://…`"
            )));
        } else {
            s
        };
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() {
            return Err(StoreError::Invalid(
                "empty database path; give a file, a data dir or a postgres:// URL".into(),
            ));
        }
        let p = Path::new(path);
        if path.ends_with('/') || p.is_dir() {
            return Ok(Location::Sqlite(p.join("tradeloom.db")));
        }
        Ok(Location::Sqlite(p.to_path_buf()))
    }
}

/// Opens the store at `url_or_path` (see [`Location::parse`]) and applies pending migrations.
pub async fn open_store(url_or_path: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match Location::parse(url_or_path)? {
        Location::Sqlite(path) => Arc::new(SqliteStore::open(&path).await?),
        Location::Postgres(url) => Arc::new(PgStore::connect(&url).await?),
    })
}

/// `tradeloom db migrate`: applies pending migrations and returns the resulting status.
pub async fn db_migrate(url_or_path: &str) -> Result<Vec<MigrationInfo>, StoreError> {
    open_store(url_or_path).await?.migration_status().await
}

/// `tradeloom db status`: the migration status without applying anything.
pub async fn db_status(url_or_path: &str) -> Result<Vec<MigrationInfo>, StoreError> {
    match Location::parse(url_or_path)? {
        Location::Sqlite(path) => {
            SqliteStore::open_unmigrated(&path)
                .await?
                .migration_status()
                .await
        }
        Location::Postgres(url) => {
            PgStore::connect_unmigrated(&url)
                .await?
                .migration_status()
                .await
        }
    }
}
