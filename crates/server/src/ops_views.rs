//! What the dashboard shows besides runs, jobs and workflows, read from the data dir:
//! `GET /me` (the calling key: its name and role, so a page shows only what the key may do),
//! `GET /health/history` (the meta health monitor's `history.jsonl`), `GET /ops/drills` (the
//! reports of `tradeloom drill`, `<data-dir>/drills/<name>.json`) and
//! `GET /ops/reconciliations` (every `reconciliation_result.json` of the run and job folders).
//! Read-only; viewer role.

use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};

/// Most entries `GET /health/history` and the lists return.
const MAX_LIMIT: usize = 5000;

fn data_dir(state: &AppState) -> PathBuf {
    state.simulator.options().data_dir.clone()
}

async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("{what} task: {e}"),
        )
    })
}

/// `{"name", "role", "key_id"}` of the calling key (`anonymous`/`admin` when auth is off).
#[utoipa::path(
    get, path = "/me", tag = "keys", operation_id = "whoami",
    responses(
        (status = 200, description = "The calling key's name, role (`viewer`, `operator`, `admin`) and id", body = Object),
        (status = 401, description = "No key, or an unknown or revoked one", body = ErrorBody),
    )
)]
pub async fn me(principal: Principal) -> Json<Value> {
    Json(json!({
        "name": principal.name,
        "role": principal.role.as_str(),
        "key_id": principal.key_id,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// The newest this many entries, 1 to 5000 (default 500).
    #[param(minimum = 1, maximum = 5000)]
    pub limit: Option<usize>,
}

fn limit_of(q: &LimitQuery) -> Result<usize, ApiError> {
    ApiError::page_limit(q.limit, 500, MAX_LIMIT)
}

/// The meta health monitor's checks, oldest first (`{"checked_at", "rm_meta", "status",
/// "sensors"}` each).
#[utoipa::path(
    get, path = "/health/history", tag = "health", operation_id = "health_history",
    params(LimitQuery),
    responses(
        (status = 200, description = "`{\"entries\": [...]}`, the newest `limit` checks, oldest first", body = Object),
        (status = 400, description = "A bad `limit`", body = ErrorBody),
    )
)]
pub async fn health_history(
    State(state): State<AppState>,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    let limit = limit_of(&q)?;
    let dir = data_dir(&state);
    let entries = blocking("health history", move || {
        let all = tradeloom_ops::health::history(&dir);
        let skip = all.len().saturating_sub(limit);
        all.into_iter().skip(skip).collect::<Vec<_>>()
    })
    .await?;
    Ok(Json(json!({"entries": entries})))
}

/// Reads every `*.json` object of `dir` (not below), by file name; unreadable ones are left out.
fn json_files(dir: &Path) -> Vec<(String, Value)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Value)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".json")?.to_string();
            let text = std::fs::read_to_string(e.path()).ok()?;
            let value: Value = serde_json::from_str(&text).ok()?;
            value.is_object().then_some((stem, value))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The latest report of each drill `tradeloom drill` ran against this data dir.
#[utoipa::path(
    get, path = "/ops/drills", tag = "operations", operation_id = "drill_reports",
    responses(
        (status = 200, description = "`{\"drills\": [{\"name\", \"report\"}]}` by name", body = Object),
    )
)]
pub async fn drills(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let dir = data_dir(&state).join("drills");
    let drills = blocking("drill reports", move || json_files(&dir)).await?;
    let drills: Vec<Value> = drills
        .into_iter()
        .map(|(name, report)| json!({"name": name, "report": report}))
        .collect();
    Ok(Json(json!({"drills": drills})))
}

/// The reconciliation results of the run and job folders, newest check first.
#[utoipa::path(
    get, path = "/ops/reconciliations", tag = "operations", operation_id = "reconciliations",
    params(LimitQuery),
    responses(
        (status = 200, description = "`{\"results\": [...]}`: each reconciliation_result.json (`passed`, `run_id` or `job_id`, `checked_at`, `checks`)", body = Object),
        (status = 400, description = "A bad `limit`", body = ErrorBody),
    )
)]
pub async fn reconciliations(
    State(state): State<AppState>,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    let limit = limit_of(&q)?;
    let data_dir = data_dir(&state);
    let results = blocking("reconciliations", move || {
        let layout = tradeloom_core::DataDir::new(&data_dir);
        let mut results: Vec<Value> = Vec::new();
        for parent in [layout.runs(), layout.jobs()] {
            let Ok(entries) = std::fs::read_dir(&parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path().join(tradeloom_ops::reconcile::RESULT_FILE);
                if let Ok(text) = std::fs::read_to_string(&path)
                    && let Ok(value) = serde_json::from_str::<Value>(&text)
                    && value.is_object()
                {
                    results.push(value);
                }
            }
        }
        let at = |v: &Value| v["checked_at"].as_str().unwrap_or("").to_string();
        results.sort_by_key(|v| std::cmp::Reverse(at(v)));
        results.truncate(limit);
        results
    })
    .await?;
    Ok(Json(json!({"results": results})))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// Jobs per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Jobs to skip (the `next_offset` of the previous page).
    #[param(minimum = 0)]
    pub offset: Option<u64>,
}

/// Simulation jobs, newest first: `{"jobs": [{"job_id", "status", "models", "date_range",
/// "created_at", "started_at", "finished_at", "error"}], "next_offset"}` (the progress of one is
/// `GET /simulate/status/{job_id}`).
#[utoipa::path(
    get, path = "/simulate/jobs", tag = "simulate", operation_id = "list_simulation_jobs",
    params(JobsQuery),
    responses(
        (status = 200, description = "A page of jobs, newest first", body = Object),
        (status = 400, description = "A bad `limit`", body = ErrorBody),
    )
)]
pub async fn jobs(
    State(state): State<AppState>,
    query: Result<Query<JobsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    let limit = ApiError::page_limit(q.limit, 50, 500)?;
    let offset = q.offset.unwrap_or(0);
    // One more than asked tells whether another page follows.
    let mut jobs = state.simulator.store().list_jobs(limit + 1, offset).await?;
    let more = jobs.len() > limit as usize;
    jobs.truncate(limit as usize);
    let jobs: Vec<Value> = jobs
        .into_iter()
        .map(|job| {
            json!({
                "job_id": job.id,
                "status": job.status.as_str(),
                "models": job.config.get("models").and_then(Value::as_array).map(|m| {
                    m.iter()
                        .filter_map(|x| x.get("name").cloned())
                        .collect::<Vec<_>>()
                }),
                "date_range": [job.config.get("start_date"), job.config.get("end_date")],
                "created_at": job.created_at,
                "started_at": job.started_at,
                "finished_at": job.finished_at,
                "error": job.error,
            })
        })
        .collect();
    let next = more.then(|| offset + u64::from(limit));
    Ok(Json(json!({"jobs": jobs, "next_offset": next})))
}
