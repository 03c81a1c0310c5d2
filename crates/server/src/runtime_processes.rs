//! `/runtime/processes`: supervised `tradeloom` child processes over HTTP — start one from a
//! spec (`POST`, operator), list them and read one (`GET`, viewer), stop, restart and remove one
//! (operator). The supervisor itself ([`tradeloom_ops::supervisor::ProcessSupervisor`]) knows
//! nothing of HTTP; without one in the state ([`AppState::with_process_supervisor`]) every route
//! answers 503.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path as UrlPath, State};
use axum::http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};
use tradeloom_ops::supervisor::{
    ProcessRecord, ProcessSupervisor, ResourceLimits, RunEntry, SupervisorError,
};
use tradeloom_store::Role;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Principal, forbidden};
use crate::error::{ApiError, ErrorBody};

/// The body of `POST /runtime/processes` (documentation of the shape; the supervisor reads it
/// and names the offending field of a bad one).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // only its schema is used
pub struct ProcessSpecBody {
    /// What runs: `trader`, `bridge`, `worker`, `coordinator`, `mock-llm`, `metrics` or
    /// `health` — always the server's own `tradeloom` executable with that subcommand.
    #[schema(pattern = "^(trader|bridge|worker|coordinator|mock-llm|metrics|health)$")]
    kind: String,
    /// The process's id (default `<kind>-<n>`): 1 to 63 of a-z, 0-9, `-`, `_`.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    name: Option<String>,
    /// The kind's arguments: trader `{spec}`, bridge `{watch, map, key?, settle_ms?,
    /// rescan_ms?}`, worker `{pools?, redis_prefix?}`, coordinator `{redis_prefix?}`,
    /// mock-llm and metrics `{addr}`, health `{interval?}`. Relative paths are under the data
    /// dir; `..` is refused.
    #[schema(value_type = Object)]
    args: Option<Value>,
    /// `always`, `on-failure` (default) or `never`.
    #[schema(pattern = "^(always|on-failure|never)$")]
    restart: Option<String>,
    /// `{initial_ms (500), max_ms (30000)}`: the delay doubles after each failure in a row.
    #[schema(value_type = Object)]
    backoff: Option<Value>,
    /// `{burst (5), interval_s (60)}`: at most `burst` starts within `interval_s`, else
    /// `failed` (a crash loop).
    #[schema(value_type = Object)]
    start_limit: Option<Value>,
    /// `{memory_mb, cpu_seconds, open_files, processes}`: lower than the server's ceilings,
    /// which are also the defaults.
    #[schema(value_type = Object)]
    limits: Option<Value>,
}

/// One run of a process.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub pid: u32,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub ended_at: Option<String>,
    pub exit_code: Option<i32>,
    /// The signal that ended it (9 for SIGKILL).
    pub signal: Option<i32>,
    /// `re-adopted …`, `ended while no supervisor watched it …`.
    pub note: Option<String>,
}

/// The resource limits a process's run got.
#[derive(Debug, Serialize, ToSchema)]
pub struct LimitsView {
    /// `RLIMIT_AS`, MiB.
    pub memory_mb: Option<u64>,
    /// `RLIMIT_CPU`, seconds.
    pub cpu_seconds: Option<u64>,
    /// `RLIMIT_NOFILE`.
    pub open_files: Option<u64>,
    /// `RLIMIT_NPROC`.
    pub processes: Option<u64>,
}

/// A supervised process.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessView {
    pub id: String,
    /// `trader`, `bridge`, `worker`, …
    pub kind: String,
    /// `running`, `backoff`, `stopping`, `stopped`, `exited` or `failed`.
    #[schema(pattern = "^(running|backoff|stopping|stopped|exited|failed)$")]
    pub state: String,
    /// Why it is in its state (a crash loop's start limit, the last exit, a stop).
    pub reason: Option<String>,
    /// The pid of the current run.
    pub pid: Option<u32>,
    /// The arguments of `tradeloom` (it runs in the data dir).
    pub args: Vec<String>,
    /// The spec it was started from, defaults filled in.
    #[schema(value_type = Object)]
    pub spec: Value,
    pub limits: LimitsView,
    pub created_at: String,
    /// When a process in back-off starts again.
    pub next_start_at: Option<String>,
    /// Starts made by the restart policy.
    pub restarts: u32,
    /// The latest runs, oldest first.
    pub history: Vec<RunView>,
    /// Its stdout log, relative to the data dir (`runtime/logs/<id>.out.log`).
    pub stdout_log: String,
    /// Its stderr log, relative to the data dir.
    pub stderr_log: String,
}

/// Every supervised process.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessList {
    pub processes: Vec<ProcessView>,
    /// Processes that run or wait to restart.
    pub active: usize,
    /// The most that may (one more is refused with 409).
    pub max_children: usize,
    /// The supervising process (`state/server_state.json`): `pid`, `started_at`, `state`, and
    /// how the previous supervisor of the data dir ended (`previous.ended`: `stopped`,
    /// `detached` or `crashed`).
    #[schema(value_type = Object)]
    pub supervisor: Value,
}

fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn run_view(run: &RunEntry) -> RunView {
    RunView {
        pid: run.pid,
        started_at: time(run.started_at),
        ended_at: run.ended_at.map(time),
        exit_code: run.exit_code,
        signal: run.signal,
        note: run.note.clone(),
    }
}

fn limits_view(limits: &ResourceLimits) -> LimitsView {
    LimitsView {
        memory_mb: limits.memory_mb,
        cpu_seconds: limits.cpu_seconds,
        open_files: limits.open_files,
        processes: limits.processes,
    }
}

fn view(record: ProcessRecord) -> ProcessView {
    let (stdout_log, stderr_log) = record.log_files();
    ProcessView {
        kind: record.spec["kind"].as_str().unwrap_or_default().to_string(),
        state: record.state.as_str().to_string(),
        reason: record.reason,
        pid: record.pid,
        args: record.argv,
        limits: limits_view(&record.limits),
        created_at: time(record.created_at),
        next_start_at: record.next_start_at.map(time),
        restarts: record.restarts,
        history: record.history.iter().map(run_view).collect(),
        spec: record.spec,
        id: record.id,
        stdout_log,
        stderr_log,
    }
}

fn supervisor(state: &AppState) -> Result<&Arc<ProcessSupervisor>, ApiError> {
    state.process_supervisor.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "supervisor_disabled",
            "this server runs no process supervisor",
        )
    })
}

/// Each supervisor error mapped once to its status and code.
impl From<SupervisorError> for ApiError {
    fn from(e: SupervisorError) -> Self {
        let message = e.to_string();
        match e {
            SupervisorError::Spec(spec) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_process_spec",
                message,
            )
            .with_details(json!({"field": spec.field, "reason": spec.message})),
            SupervisorError::NotFound(id) => {
                ApiError::not_found("process_not_found", message).with_details(json!({"id": id}))
            }
            SupervisorError::Exists(id) => {
                ApiError::new(StatusCode::CONFLICT, "process_exists", message)
                    .with_details(json!({"id": id}))
            }
            SupervisorError::TooManyChildren { active, limit } => {
                ApiError::new(StatusCode::CONFLICT, "too_many_processes", message)
                    .with_details(json!({"active": active, "max_children": limit}))
            }
            SupervisorError::Active { id, state } => {
                ApiError::new(StatusCode::CONFLICT, "process_active", message)
                    .with_details(json!({"id": id, "state": state}))
            }
            SupervisorError::Closed | SupervisorError::Locked => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "supervisor_disabled",
                message,
            ),
            SupervisorError::Io(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "supervisor_io", message)
            }
        }
    }
}

/// The guard already requires operator for these methods; checked again so the handlers stay
/// operator-only whatever the routing becomes.
fn require_operator(principal: &Principal, method: Method, path: &str) -> Result<(), ApiError> {
    if principal.role.allows(Role::Operator) {
        Ok(())
    } else {
        Err(forbidden(&method, path, Role::Operator, principal))
    }
}

fn id_of(path: Result<UrlPath<String>, PathRejection>) -> Result<String, ApiError> {
    let UrlPath(id) = path?;
    Ok(id)
}

/// Starts a supervised process from a spec. The answer is its record: `running`, or `failed`
/// when the executable could not be started.
#[utoipa::path(
    post, path = "/runtime/processes", tag = "runtime", operation_id = "start_process",
    request_body(content = ProcessSpecBody, description = "The process spec, e.g. \
        `{\"kind\": \"bridge\", \"name\": \"scans\", \"args\": {\"watch\": \"scans\", \"map\": \"scans\"}, \
        \"restart\": \"on-failure\", \"limits\": {\"memory_mb\": 1024}}`"),
    responses(
        (status = 201, description = "Started", body = ProcessView),
        (status = 409, description = "The cap on processes is reached, or the name is taken", body = ErrorBody),
        (status = 422, description = "A bad spec: `details.field` names the field", body = ErrorBody),
        (status = 503, description = "This server runs no process supervisor", body = ErrorBody),
    )
)]
pub async fn start(
    principal: Principal,
    State(state): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<ProcessView>), ApiError> {
    require_operator(&principal, Method::POST, "/runtime/processes")?;
    let supervisor = supervisor(&state)?;
    let Json(body) = body?;
    let spec = supervisor
        .parse_spec(body)
        .map_err(|e| ApiError::from(SupervisorError::Spec(e)))?;
    let record = supervisor.start_child(spec).await?;
    tracing::info!(id = %record.id, by = %principal.name, "supervised process started over the API");
    Ok((StatusCode::CREATED, Json(view(record))))
}

/// Every supervised process, oldest first.
#[utoipa::path(
    get, path = "/runtime/processes", tag = "runtime", operation_id = "list_processes",
    responses(
        (status = 200, description = "The processes", body = ProcessList),
        (status = 503, description = "This server runs no process supervisor", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<ProcessList>, ApiError> {
    let supervisor = supervisor(&state)?;
    let records = supervisor.list();
    let active = records.iter().filter(|r| r.state.is_active()).count();
    Ok(Json(ProcessList {
        processes: records.into_iter().map(view).collect(),
        active,
        max_children: supervisor.options().max_children,
        supervisor: serde_json::to_value(supervisor.server_state()).unwrap_or(Value::Null),
    }))
}

/// One supervised process with its run history.
#[utoipa::path(
    get, path = "/runtime/processes/{id}", tag = "runtime", operation_id = "get_process",
    params(("id" = String, Path, description = "The process id")),
    responses(
        (status = 200, description = "The process", body = ProcessView),
        (status = 404, description = "No such process", body = ErrorBody),
        (status = 503, description = "This server runs no process supervisor", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    path: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<ProcessView>, ApiError> {
    let supervisor = supervisor(&state)?;
    let id = id_of(path)?;
    Ok(Json(view(supervisor.get(&id)?)))
}

/// Forgets an ended process (its logs stay).
#[utoipa::path(
    delete, path = "/runtime/processes/{id}", tag = "runtime", operation_id = "remove_process",
    params(("id" = String, Path, description = "The process id")),
    responses(
        (status = 204, description = "Forgotten"),
        (status = 404, description = "No such process", body = ErrorBody),
        (status = 409, description = "It runs or waits to restart: stop it first", body = ErrorBody),
        (status = 503, description = "This server runs no process supervisor", body = ErrorBody),
    )
)]
pub async fn remove(
    principal: Principal,
    State(state): State<AppState>,
    path: Result<UrlPath<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    require_operator(&principal, Method::DELETE, "/runtime/processes/{id}")?;
    let supervisor = supervisor(&state)?;
    let id = id_of(path)?;
    supervisor.remove(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops a process: SIGTERM to its process group, SIGKILL after the server's grace period;
/// answers once it has ended (`stopped`). It is not restarted until asked.
#[utoipa::path(
    post, path = "/runtime/processes/{id}/stop", tag = "runtime", operation_id = "stop_process",
    params(("id" = String, Path, description = "The process id")),
    responses(
        (status = 200, description = "Stopped (or already ended: as it is)", body = ProcessView),
        (status = 404, description = "No such process", body = ErrorBody),
        (status = 503, description = "This server runs no process supervisor", body = ErrorBody),
    )
)]
pub async fn stop(
    principal: Principal,
    State(state): State<AppState>,
    path: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<ProcessView>, ApiError> {
    require_operator(&principal, Method::POST, "/runtime/processes/{id}/stop")?;
    let supervisor = supervisor(&state)?;
    let id = id_of(path)?;
    let record = supervisor.stop_child(&id, None).await?;
    tracing::info!(id = %id, by = %principal.name, "supervised process stopped over the API");
    Ok(Json(view(record)))
}

/// Restarts a process (stopping it first if it runs) with its back-off and start limit reset:
/// also how a `failed` process is started again once its cause is fixed.
#[utoipa::path(
    post, path = "/runtime/processes/{id}/restart", tag = "runtime", operation_id = "restart_process",
    params(("id" = String, Path, description = "The process id")),
    responses(
        (status = 200, description = "Started again", body = ProcessView),
        (status = 404, description = "No such process", body = ErrorBody),
        (status = 409, description = "The cap on processes is reached", body = ErrorBody),
        (status = 503, description = "This server runs no process supervisor", body = ErrorBody),
    )
)]
pub async fn restart(
    principal: Principal,
    State(state): State<AppState>,
    path: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<ProcessView>, ApiError> {
    require_operator(&principal, Method::POST, "/runtime/processes/{id}/restart")?;
    let supervisor = supervisor(&state)?;
    let id = id_of(path)?;
    let record = supervisor.restart_child(&id).await?;
    tracing::info!(id = %id, by = %principal.name, "supervised process restarted over the API");
    Ok(Json(view(record)))
}
