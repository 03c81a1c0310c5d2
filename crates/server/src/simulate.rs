//! `POST /simulate/trigger`, `GET /simulate/status/{job_id}`, `GET /simulate/current`, and a
//! user's control of a job: `POST /simulate/{job_id}/pause`, `/resume`, `/cancel`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tradeloom_agents::{ConfigDir, ConfigPathError, TriggerOutcome, config_from_value};
use tradeloom_store::{Job, JobAction, JobReport, ModelDayStatus};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::read_cache::{json_response, to_json};

/// Body of `POST /simulate/trigger`: exactly one of `config`, `config_path` and
/// `ai_trader_config`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// The simulation config inline (the same fields as a config file).
    #[schema(value_type = Object)]
    pub config: Option<Value>,
    /// A YAML or JSON config file in the server's config folder (`serve --config-dir DIR`),
    /// relative to it; without a config folder `config_path` is refused.
    pub config_path: Option<String>,
    /// An AI-Trader `default_config.json` object (reference document 002), mapped to a
    /// simulation config; a 400 `invalid_ai_trader_config` names every field it cannot map
    /// (`details.fields`). Needs `universe`.
    #[schema(value_type = Option<Object>)]
    pub ai_trader_config: Option<Value>,
    /// With `ai_trader_config` only: the folder of daily bars to trade (an AI-Trader config
    /// names no market data), relative to the server's working directory.
    pub universe: Option<String>,
}

/// Answer of a trigger.
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerResponse {
    pub job_id: String,
    /// `pending` or `running` for a started job; `current` when nothing was left to run.
    pub status: String,
    /// Every trading date of the job, in order (the config's `start_date`..`end_date` on the
    /// universe's calendar), as AI-Trader's clients read it.
    #[schema(value_type = Vec<String>)]
    pub date_range: Vec<NaiveDate>,
    /// The latest date on which a model-day of the job completed (absent before any did).
    #[schema(value_type = Option<String>)]
    pub last_simulation_date: Option<NaiveDate>,
    pub models: Vec<String>,
    /// Whether an earlier job with the same config was picked up again.
    pub resumed: bool,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Progress {
    pub total_model_days: u64,
    pub completed: u64,
    pub failed: u64,
    /// Refused by the kill switch; a trigger after release runs them.
    pub refused: u64,
    /// Stopped by a cancel before they started; a trigger of the same config runs them.
    pub cancelled: u64,
    pub pending: u64,
    pub running: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelDayDetail {
    pub model: String,
    #[schema(value_type = String)]
    pub date: NaiveDate,
    /// `pending`, `running`, `completed`, `failed`, `refused` (by the kill switch; `error`
    /// starts with `risk.kill_switch`) or `cancelled` (by a cancel of the job).
    pub status: String,
    pub error: Option<String>,
    pub attempts: u32,
    #[schema(value_type = Option<String>)]
    pub started_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>)]
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub steps: Option<u32>,
    /// Tool calls the model made that day (0: it never called a tool).
    pub tool_calls: Option<u32>,
    pub tool_errors: Option<u32>,
    /// Exact decimal string.
    pub portfolio_value: Option<String>,
}

/// `GET /simulate/status/{job_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobStatusResponse {
    pub job_id: String,
    /// `pending`, `running`, `completed`, `partial`, `failed`, `interrupted`, `paused` or
    /// `cancelled`.
    pub status: String,
    /// Every trading date of the job, in order.
    #[schema(value_type = Vec<String>)]
    pub date_range: Vec<NaiveDate>,
    /// The latest date on which a model-day of the job completed (absent before any did).
    #[schema(value_type = Option<String>)]
    pub last_simulation_date: Option<NaiveDate>,
    pub models: Vec<String>,
    pub progress: Progress,
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = Option<String>)]
    pub started_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>)]
    pub completed_at: Option<DateTime<Utc>>,
    /// From start to finish (or to now while running).
    pub total_duration_seconds: Option<f64>,
    pub error: Option<String>,
    pub config_hash: String,
    /// One page of the job's model-days, sorted by date then model: `details_limit` of them
    /// from `details_offset` (see [`DetailsQuery`]).
    pub details: Vec<ModelDayDetail>,
    /// How many model-days the job has (`details` is one page of them).
    pub details_total: u64,
    /// The position of `details[0]` among them.
    pub details_offset: usize,
    /// The `details_offset` of the next page; absent on the last page.
    pub details_next_offset: Option<usize>,
}

/// Which page of model-days `GET /simulate/status/{job_id}` and `GET /simulate/current`
/// answer with: a job of 10 models × 250 days has 2,500 of them, and most polls only read
/// `status` and `progress`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DetailsQuery {
    /// Model-days to skip (default 0).
    pub details_offset: Option<usize>,
    /// Model-days in the page, 1 to 10000 (default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub details_limit: Option<usize>,
}

/// The default and the largest page of model-days in a status answer.
const DETAILS_DEFAULT: usize = 100;
const DETAILS_MAX: usize = 10_000;

/// A checked [`DetailsQuery`]: `(offset, limit)`.
fn details_page(q: &DetailsQuery) -> Result<(usize, usize), ApiError> {
    let limit = ApiError::limit_param(
        "details_limit",
        q.details_limit,
        DETAILS_DEFAULT,
        DETAILS_MAX,
    )?;
    Ok((q.details_offset.unwrap_or(0), limit))
}

fn config_field<'a>(job: &'a Job, field: &str) -> Option<&'a Value> {
    job.config.get(field)
}

fn job_models(job: &Job) -> Vec<String> {
    config_field(job, "models")
        .and_then(Value::as_array)
        .map(|models| {
            models
                .iter()
                .filter_map(|m| m.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Every date of the job's model-days, in order, and the latest with a completed one.
fn job_dates(report: &JobReport) -> (Vec<NaiveDate>, Option<NaiveDate>) {
    let dates: std::collections::BTreeSet<NaiveDate> =
        report.model_days.iter().map(|d| d.date).collect();
    let last = report
        .model_days
        .iter()
        .filter(|d| d.status == ModelDayStatus::Completed)
        .map(|d| d.date)
        .max();
    (dates.into_iter().collect(), last)
}

/// The status answer of `report` with model-days `offset..offset + limit` as its details.
pub(crate) fn status_response(report: JobReport, offset: usize, limit: usize) -> JobStatusResponse {
    let job = &report.job;
    let end = job.finished_at.unwrap_or_else(Utc::now);
    let total = report.model_days.len();
    let next = offset.saturating_add(limit);
    let (date_range, last_simulation_date) = job_dates(&report);
    JobStatusResponse {
        job_id: job.id.clone(),
        status: job.status.to_string(),
        date_range,
        last_simulation_date,
        models: job_models(job),
        progress: Progress {
            total_model_days: report.progress.total_model_days,
            completed: report.progress.completed,
            failed: report.progress.failed,
            refused: report.progress.refused,
            cancelled: report.progress.cancelled,
            pending: report.progress.pending,
            running: report.progress.running,
        },
        created_at: job.created_at,
        started_at: job.started_at,
        completed_at: job.finished_at,
        total_duration_seconds: job
            .started_at
            .map(|s| (end - s).num_milliseconds() as f64 / 1000.0),
        error: job.error.clone(),
        config_hash: job.config_hash.clone(),
        details_total: total as u64,
        details_offset: offset,
        details_next_offset: (next < total).then_some(next),
        details: report
            .model_days
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|d| ModelDayDetail {
                model: d.model,
                date: d.date,
                status: d.status.as_str().to_string(),
                error: d.error,
                attempts: d.attempts,
                started_at: d.started_at,
                finished_at: d.finished_at,
                duration_ms: d.duration_ms,
                steps: d.steps,
                tool_calls: d.tool_calls,
                tool_errors: d.tool_errors,
                portfolio_value: d.portfolio_value.map(|v| v.to_string()),
            })
            .collect(),
    }
}

/// 400 for a `config_path` that may not be read: `config_path_disabled` without a config
/// folder, `invalid_config_path` for a path outside it or not a regular file in it.
fn config_path_error(e: ConfigPathError) -> ApiError {
    let code = match e {
        ConfigPathError::Disabled => "config_path_disabled",
        ConfigPathError::Refused { .. } => "invalid_config_path",
    };
    ApiError::bad_request(code, e.to_string()).with_details(json!({"field": "config_path"}))
}

/// Starts a simulation job, or resumes the unfinished model-days of an earlier job with the
/// same config. Answers 200 `current` when every model-day of that config is completed.
#[utoipa::path(
    post, path = "/simulate/trigger", tag = "simulate", operation_id = "trigger_simulation",
    request_body = TriggerRequest,
    responses(
        (status = 202, description = "Job started (or resumed, or already running)", body = TriggerResponse),
        (status = 200, description = "Nothing left to run: `status` is `current`", body = TriggerResponse),
        (status = 400, description = "Malformed JSON, an invalid config, a `config_path` refused (`config_path_disabled`, `invalid_config_path`), or an `ai_trader_config` with fields that cannot be mapped (`invalid_ai_trader_config`, every one in `details.fields`)", body = ErrorBody),
        (status = 409, description = "MAX_CONCURRENT_JOBS jobs are running (`job_running`, `details.running_job_id`), or the job of this config is paused (`job_paused`, `details.job_id`: resume or cancel it)", body = ErrorBody),
        (status = 422, description = "A model names a registered agent that lists a tool simulations do not have (`unsupported_agent_tool`, `details: {place, agent, tool}`)", body = ErrorBody),
    )
)]
pub async fn trigger(
    State(state): State<AppState>,
    body: Result<Json<TriggerRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<TriggerResponse>), ApiError> {
    let Json(request) = body?;
    let base = state.simulator.options().base_dir.clone();
    if request.universe.is_some() && request.ai_trader_config.is_none() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "`universe` goes with `ai_trader_config` only (a config names its own `universe`)",
        )
        .with_details(json!({"field": "universe"})));
    }
    let config = match (
        request.config,
        request.config_path,
        request.ai_trader_config,
    ) {
        (None, None, Some(ai)) => {
            let mapped = tradeloom_agents::ai_trader::map_config(
                &ai,
                request.universe.as_deref(),
                "ai_trader_config",
            )?;
            config_from_value(&mapped.config, &base)?
        }
        (Some(config), None, None) => config_from_value(&config, &base)?,
        (None, Some(path), None) => {
            let dir = state.config_dir.as_deref();
            let file = ConfigDir::resolve_in(dir, &path).map_err(config_path_error)?;
            // resolve_in only succeeds with a folder.
            match dir {
                Some(dir) => dir.load(&file)?,
                None => return Err(config_path_error(ConfigPathError::Disabled)),
            }
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "give exactly one of `config` (an inline config object), `config_path` and \
                 `ai_trader_config` (an AI-Trader default_config.json object, with `universe`)",
            ));
        }
    };
    let models = config.model_names();
    let outcome = state.simulator.trigger(&config).await?;
    let (code, job, status, resumed, message) = match outcome {
        TriggerOutcome::Started { job, resumed } => {
            let message = if resumed {
                "resuming the unfinished model-days of an earlier job with this config"
            } else {
                "job created"
            };
            (
                StatusCode::ACCEPTED,
                job,
                "running".to_string(),
                resumed,
                message,
            )
        }
        TriggerOutcome::AlreadyRunning(job) => (
            StatusCode::ACCEPTED,
            job.clone(),
            job.status.to_string(),
            true,
            "a job with this config is already running",
        ),
        TriggerOutcome::Current(job) => (
            StatusCode::OK,
            job,
            "current".to_string(),
            false,
            "every model-day of this config is already completed",
        ),
        TriggerOutcome::Paused(job) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "job_paused",
                format!(
                    "the job of this config, {}, is paused: resume it with POST /simulate/{}/resume \
                     (or cancel it, then trigger again)",
                    job.id, job.id
                ),
            )
            .with_details(json!({"job_id": job.id, "status": job.status.as_str()})));
        }
    };
    let (date_range, last_simulation_date) =
        job_dates(&state.simulator.store().job_report(&job.id).await?);
    Ok((
        code,
        Json(TriggerResponse {
            job_id: job.id,
            status,
            date_range,
            last_simulation_date,
            models,
            resumed,
            message: message.to_string(),
        }),
    ))
}

/// Status, progress and one page of the model-days of a job.
#[utoipa::path(
    get, path = "/simulate/status/{job_id}", tag = "simulate", operation_id = "simulation_status",
    params(("job_id" = String, Path, description = "The job id from the trigger"), DetailsQuery),
    responses(
        (status = 200, description = "The job, its progress and a page of its model-days", body = JobStatusResponse),
        (status = 400, description = "A bad `details_limit` or `details_offset` (`invalid_query`)", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    )
)]
pub async fn status(
    State(state): State<AppState>,
    job_id: Result<UrlPath<String>, PathRejection>,
    query: Result<Query<DetailsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let UrlPath(job_id) = job_id?;
    let Query(query) = query?;
    let (offset, limit) = details_page(&query)?;
    let store = state.simulator.store();
    // Taken before any read: a commit after it makes the kept answer stale, and so unused.
    let version = store.read_version().await?;
    let key = format!("status {job_id:?} {offset} {limit}");
    if let Some(body) = state.reads.get(&key, version) {
        return Ok(json_response(body));
    }
    let report = store
        .job_report(&job_id)
        .await
        .map_err(|e| ApiError::for_job(e, &job_id))?;
    // `total_duration_seconds` runs on with the clock until the job finishes: only answers
    // that do not depend on the time they are made are kept.
    let timeless = report.job.finished_at.is_some() || report.job.started_at.is_none();
    let body = to_json(&status_response(report, offset, limit))?;
    if timeless {
        state.reads.put(key, version, body.clone());
    }
    Ok(json_response(body))
}

/// The oldest pending or running job, with a page of its model-days.
#[utoipa::path(
    get, path = "/simulate/current", tag = "simulate", operation_id = "current_simulation",
    params(DetailsQuery),
    responses(
        (status = 400, description = "A bad `details_limit` or `details_offset` (`invalid_query`)", body = ErrorBody),
        (status = 200, description = "The oldest pending or running job", body = JobStatusResponse),
        (status = 404, description = "No active simulation job", body = ErrorBody),
    )
)]
pub async fn current(
    State(state): State<AppState>,
    query: Result<Query<DetailsQuery>, QueryRejection>,
) -> Result<Json<JobStatusResponse>, ApiError> {
    let Query(query) = query?;
    let (offset, limit) = details_page(&query)?;
    let store = state.simulator.store();
    let Some(job) = store.current_job().await? else {
        return Err(ApiError::not_found(
            "no_current_job",
            "no active simulation job",
        ));
    };
    Ok(Json(status_response(
        store.job_report(&job.id).await?,
        offset,
        limit,
    )))
}

/// Answer of `POST /simulate/{job_id}/pause`, `/resume` and `/cancel`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobControlResponse {
    pub job_id: String,
    /// `pause`, `resume` or `cancel`.
    pub action: String,
    /// The job's status after it: `paused`, `running` or `cancelled` (or, for a pause that
    /// came as the last days were in flight, how the job ended).
    pub status: String,
    /// Who asked: the API key's name (`anonymous` when auth is off); journaled with the action.
    pub by: String,
    pub progress: Progress,
}

async fn control(
    state: &AppState,
    principal: Option<&crate::auth::Principal>,
    job_id: &str,
    action: JobAction,
) -> Result<Json<JobControlResponse>, ApiError> {
    let by = principal.map_or_else(|| "anonymous".to_string(), |p| p.name.clone());
    let sim = &state.simulator;
    let done = match action {
        JobAction::Pause => sim.pause(job_id, &by).await,
        JobAction::Resume => sim.resume(job_id, &by).await,
        JobAction::Cancel => sim.cancel(job_id, &by).await,
    };
    let job = done.map_err(|e| match e {
        tradeloom_agents::AgentError::Store(s) => ApiError::for_job(s, job_id),
        other => other.into(),
    })?;
    let p = sim.store().job_report(&job.id).await?.progress;
    Ok(Json(JobControlResponse {
        job_id: job.id,
        action: action.as_str().to_string(),
        status: job.status.to_string(),
        by,
        progress: Progress {
            total_model_days: p.total_model_days,
            completed: p.completed,
            failed: p.failed,
            refused: p.refused,
            cancelled: p.cancelled,
            pending: p.pending,
            running: p.running,
        },
    }))
}

/// Pauses a job: no new model-day starts (those in flight finish), its completed days are
/// kept, and it stays `paused` — across server restarts and re-triggers of its config — until
/// resumed or cancelled.
#[utoipa::path(
    post, path = "/simulate/{job_id}/pause", tag = "simulate", operation_id = "pause_simulation",
    params(("job_id" = String, Path, description = "The job id from the trigger")),
    responses(
        (status = 200, description = "Paused (`status` is `paused`)", body = JobControlResponse),
        (status = 404, description = "No such job (`job_not_found`, `details.job_id`)", body = ErrorBody),
        (status = 409, description = "The job is not pending, running or interrupted (`invalid_job_state`; `details.job_id`, `details.status`, `details.allowed_from`)", body = ErrorBody),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
    job_id: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<JobControlResponse>, ApiError> {
    let UrlPath(job_id) = job_id?;
    control(&state, principal.as_deref(), &job_id, JobAction::Pause).await
}

/// Resumes a paused job: it is `running` again and its remaining model-days run.
#[utoipa::path(
    post, path = "/simulate/{job_id}/resume", tag = "simulate", operation_id = "resume_simulation",
    params(("job_id" = String, Path, description = "The job id from the trigger")),
    responses(
        (status = 200, description = "Resumed (`status` is `running`)", body = JobControlResponse),
        (status = 404, description = "No such job (`job_not_found`, `details.job_id`)", body = ErrorBody),
        (status = 409, description = "The job is not paused (`invalid_job_state`; `details.job_id`, `details.status`, `details.allowed_from`), or MAX_CONCURRENT_JOBS other jobs are running (`job_running`; it stays paused)", body = ErrorBody),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
    job_id: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<JobControlResponse>, ApiError> {
    let UrlPath(job_id) = job_id?;
    control(&state, principal.as_deref(), &job_id, JobAction::Resume).await
}

/// Cancels an unfinished (pending, running, interrupted or paused) job: its model-days not
/// started are `cancelled`, those in flight finish, and the job is `cancelled`. Triggering the
/// same config again runs the cancelled days.
#[utoipa::path(
    post, path = "/simulate/{job_id}/cancel", tag = "simulate", operation_id = "cancel_simulation",
    params(("job_id" = String, Path, description = "The job id from the trigger")),
    responses(
        (status = 200, description = "Cancelled (`status` is `cancelled`)", body = JobControlResponse),
        (status = 404, description = "No such job (`job_not_found`, `details.job_id`)", body = ErrorBody),
        (status = 409, description = "The job has finished (`invalid_job_state`; `details.job_id`, `details.status`, `details.allowed_from`)", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
    job_id: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<JobControlResponse>, ApiError> {
    let UrlPath(job_id) = job_id?;
    control(&state, principal.as_deref(), &job_id, JobAction::Cancel).await
}
