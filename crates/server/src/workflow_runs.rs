//! Workflow runs and approvals: `POST /workflows/{id}/runs`, `GET /workflow-runs[/{id}]`,
//! `/workflow-runs/{id}/cancel|pause|resume|patch|events`, `GET /approvals`, `POST /approvals/{id}/decide`,
//! and `GET /blobs/{hash}` for outputs referenced by hash. Handlers translate HTTP to the
//! orchestrator's [`Runtime`].

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tradeloom_orchestrator::{OrchestratorError, PatchOutcome, Runtime, StartOptions};
use tradeloom_store::{ApprovalStatus, Decision, EventFilter, RunPriority, RunStatus, StoreError};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

impl From<OrchestratorError> for ApiError {
    fn from(e: OrchestratorError) -> Self {
        match e {
            OrchestratorError::NotFound(what) => {
                ApiError::not_found("not_found", format!("{what} not found"))
            }
            OrchestratorError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            OrchestratorError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            OrchestratorError::Invalid { message, errors } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
                    .with_details(json!({"errors": errors}))
            }
            OrchestratorError::Unresolved { message, errors } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unresolved_reference",
                message,
            )
            .with_details(json!({"errors": errors})),
            OrchestratorError::Definition { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "workflow_definition",
                e.to_string(),
            ),
            OrchestratorError::Store(s) => s.into(),
            OrchestratorError::Queue(q) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_unavailable",
                q.to_string(),
            ),
            OrchestratorError::LimitReached(reached) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "concurrency_limit",
                format!(
                    "{e}; start it without `\"on_limit\": \"reject\"` to queue it until a run finishes",
                    e = OrchestratorError::LimitReached(reached)
                ),
            )
            .with_details(json!({
                "limit": reached.limit,
                "max_concurrent_runs": reached.max_concurrent_runs,
                "active": reached.active,
                "retry_after_s": LIMIT_RETRY_AFTER_S,
            })),
        }
    }
}

/// The `Retry-After` of a start refused by a concurrency limit: when a slot frees is not
/// known, so a short poll.
pub const LIMIT_RETRY_AFTER_S: u64 = 5;

fn runtime(state: &AppState) -> Result<&Arc<Runtime>, ApiError> {
    state.runtime.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "workflows_disabled",
            "this server runs no workflow runtime",
        )
    })
}

/// Who made the request, for `by` fields: the API key's name, or `anonymous`.
fn caller(principal: Option<&crate::auth::Principal>) -> String {
    principal.map_or_else(|| "anonymous".to_string(), |p| p.name.clone())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRunRequest {
    /// Run inputs by name; declared inputs without a value take their default.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub inputs: Map<String, Value>,
    /// A version of the workflow (default: the latest).
    pub version: Option<u32>,
    /// `high`, `normal` (the default) or `low`: the run's ready nodes are taken from the work
    /// queues before those of runs of a lower priority.
    #[schema(value_type = Option<String>, example = "high")]
    pub priority: Option<Value>,
    /// What a start does when the workflow's or the API key's `max_concurrent_runs` is full:
    /// `queue` (the default: the run is created `queued` and starts when a slot frees) or
    /// `reject` (nothing is created; 429 `concurrency_limit` with `Retry-After`).
    #[schema(value_type = Option<String>, example = "reject")]
    pub on_limit: Option<Value>,
}

/// Whether a start over a limit is refused (`on_limit: reject`) rather than queued (`queue`,
/// the default); anything else is 422 `invalid_request` naming the field.
fn refuse_over_limit(value: Option<&Value>) -> Result<bool, ApiError> {
    match value.map(|v| (v, v.as_str())) {
        None | Some((_, Some("queue"))) => Ok(false),
        Some((_, Some("reject"))) => Ok(true),
        Some((v, _)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("on_limit: expected `queue` or `reject`, got {v}"),
        )
        .with_details(json!({"field": "on_limit", "value": v, "allowed": ["queue", "reject"]}))),
    }
}

/// The run priority a start request asks for: `normal` when absent; anything but `high`,
/// `normal` or `low` is 422 `invalid_request` naming the field.
fn requested_priority(value: Option<&Value>) -> Result<RunPriority, ApiError> {
    let Some(value) = value else {
        return Ok(RunPriority::Normal);
    };
    value.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("priority: expected `high`, `normal` or `low`, got {value}"),
        )
        .with_details(
            json!({"field": "priority", "value": value, "allowed": ["high", "normal", "low"]}),
        )
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StartRunResponse {
    pub run_id: String,
    pub workflow_id: String,
    pub workflow_version: u32,
    pub status: String,
    /// `high`, `normal` or `low`.
    pub priority: String,
}

/// Starts a run of a workflow.
#[utoipa::path(
    post, path = "/workflows/{id}/runs", tag = "workflow runs", operation_id = "start_workflow_run",
    params(("id" = String, Path, description = "The workflow's id")),
    request_body = StartRunRequest,
    responses(
        (status = 201, description = "The run is created: `status` is `running` (or `pending`), or `queued` when a concurrency limit (the workflow's `limits.max_concurrent_runs`, the API key's `max_concurrent_runs`) is full; a queued run starts when a slot frees, most urgent priority first, then oldest", body = StartRunResponse),
        (status = 404, description = "No such workflow or version", body = ErrorBody),
        (status = 422, description = "Bad inputs (`invalid_inputs`; `details.errors` lists each), registered agents or skills its `agent` nodes name that do not resolve (`unresolved_reference`; `details.errors` lists each), or a `priority` other than high, normal or low (`invalid_request`; `details.field` is `priority`)", body = ErrorBody),
        (status = 429, description = "Rate limited (`rate_limited`), or, with `\"on_limit\": \"reject\"`, a concurrency limit is full (`concurrency_limit`; `details.limit` is `workflow` or `api_key`, `details.max_concurrent_runs`, `details.active`); see Retry-After", body = ErrorBody),
    )
)]
pub async fn start(
    State(state): State<AppState>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<StartRunRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<StartRunResponse>), ApiError> {
    let Path(id) = id?;
    let Json(body) = body?;
    let priority = requested_priority(body.priority.as_ref())?;
    let refuse = refuse_over_limit(body.on_limit.as_ref())?;
    let rt = runtime(&state)?;
    let store = rt.store();
    let version = store
        .workflow_version(&id, body.version)
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => ApiError::not_found(
                "workflow_not_found",
                match body.version {
                    Some(v) => format!("workflow `{id}` has no version {v}"),
                    None => format!("no workflow with id `{id}`"),
                },
            )
            .with_details(json!({"workflow_id": id, "version": body.version})),
            other => other.into(),
        })?;
    let ir = rt
        .coordinator()
        .ir_of_definition(&version.definition_hash)
        .await?;
    let anonymous = crate::auth::Principal::anonymous();
    state
        .limiter()
        .check_workflow_run(
            principal.as_deref().unwrap_or(&anonymous),
            ir.agent_node_count(),
        )
        .await?;
    let run = rt
        .start_run_with(
            &version,
            &body.inputs,
            &StartOptions {
                priority,
                api_key_id: principal.as_deref().and_then(|p| p.key_id.clone()),
                key_limit: principal.as_deref().and_then(|p| p.max_concurrent_runs),
                refuse_over_limit: refuse,
            },
        )
        .await
        .map_err(|e| match e {
            OrchestratorError::Invalid { message, errors } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_inputs", message)
                    .with_details(json!({"errors": errors}))
            }
            other => other.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(StartRunResponse {
            run_id: run.id,
            workflow_id: run.workflow_id,
            workflow_version: run.workflow_version,
            status: run.status.to_string(),
            priority: run.priority.to_string(),
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// `queued`, `pending`, `running`, `waiting`, `paused`, `completed`, `failed`,
    /// `cancelled`, or `all` (the default).
    #[param(pattern = "^(queued|pending|running|waiting|paused|completed|failed|cancelled|all)$")]
    pub status: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunSummary {
    pub run_id: String,
    pub workflow_id: String,
    pub workflow_version: u32,
    pub status: String,
    /// `high`, `normal` or `low`.
    pub priority: String,
    pub ir_version: u32,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunSummary>,
}

/// A `status` query filter: `all` (as the CLI's `--status all`) or none is no filter.
fn status_filter<T: std::str::FromStr<Err = String>>(
    status: Option<&str>,
) -> Result<Option<T>, ApiError> {
    match status {
        None | Some("all") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|m: String| ApiError::bad_request("invalid_status", format!("{m}, or `all`"))),
    }
}

/// Workflow runs, newest first.
#[utoipa::path(
    get, path = "/workflow-runs", tag = "workflow runs", operation_id = "list_workflow_runs", params(RunsQuery),
    responses(
        (status = 200, description = "One page of runs, newest first", body = RunList),
        (status = 400, description = "An unknown `status` or a malformed parameter", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<RunList>, ApiError> {
    let Query(q) = query?;
    let status = status_filter::<RunStatus>(q.status.as_deref())?;
    let runs = runtime(&state)?
        .store()
        .list_workflow_runs(
            status,
            q.limit.unwrap_or(50).clamp(1, 500),
            q.offset.unwrap_or(0),
        )
        .await?;
    Ok(Json(RunList {
        runs: runs
            .into_iter()
            .map(|r| RunSummary {
                run_id: r.id,
                workflow_id: r.workflow_id,
                workflow_version: r.workflow_version,
                status: r.status.to_string(),
                priority: r.priority.to_string(),
                ir_version: r.ir_version,
                error: r.error,
                created_at: r.created_at.to_rfc3339(),
                finished_at: r.finished_at.map(|t| t.to_rfc3339()),
            })
            .collect(),
    }))
}

fn for_run(e: OrchestratorError, run_id: &str) -> ApiError {
    match e {
        OrchestratorError::NotFound(_) => ApiError::not_found(
            "run_not_found",
            format!("no workflow run with id `{run_id}`"),
        )
        .with_details(json!({"run_id": run_id})),
        other => other.into(),
    }
}

/// The longest `wait_ms` of `GET /workflow-runs/{id}`.
pub const MAX_WAIT_MS: u64 = 60_000;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Answer once the run has settled (finished, waiting for an approval, or paused) or after this
    /// many milliseconds, whichever comes first (0 to 60000; default 0: at once). A long poll:
    /// the answer comes with the run's last commit, not at a polling interval.
    pub wait_ms: Option<u64>,
}

/// A run: status, every node's state (outputs by blob hash), IR version, patches, approvals.
#[utoipa::path(
    get, path = "/workflow-runs/{id}", tag = "workflow runs", operation_id = "get_workflow_run",
    params(("id" = String, Path, description = "The run's id"), RunQuery),
    responses(
        (status = 200, description = "The run with its nodes, patches and approvals", body = Object),
        (status = 400, description = "A malformed or too long `wait_ms`", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<RunQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    let Query(q) = query?;
    let rt = runtime(&state)?;
    match q.wait_ms {
        None | Some(0) => {}
        Some(ms) if ms > MAX_WAIT_MS => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("wait_ms must be 0 to {MAX_WAIT_MS}, got {ms}"),
            )
            .with_details(json!({"param": "wait_ms"})));
        }
        Some(ms) => {
            rt.wait_settled(&id, std::time::Duration::from_millis(ms))
                .await
                .map_err(|e| for_run(e, &id))?;
        }
    }
    let view = rt.view(&id).await.map_err(|e| for_run(e, &id))?;
    Ok(Json(serde_json::to_value(view).unwrap_or(Value::Null)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    pub reason: Option<String>,
}

/// Cancels an unfinished run.
#[utoipa::path(
    post, path = "/workflow-runs/{id}/cancel", tag = "workflow runs", operation_id = "cancel_workflow_run",
    params(("id" = String, Path, description = "The run's id")),
    request_body(content = CancelRequest, description = "Optional"),
    responses(
        (status = 200, description = "The cancelled run, as `GET /workflow-runs/{id}`", body = Object),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run has finished", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
    id: Result<Path<String>, PathRejection>,
    // A body is optional; one that is there must be valid JSON (as a JSON error, not
    // axum's plain-text rejection).
    body: Result<Option<Json<CancelRequest>>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    let reason = body?.and_then(|Json(b)| b.reason);
    let by = caller(principal.as_deref());
    let rt = runtime(&state)?;
    rt.cancel(&id, &by, reason)
        .await
        .map_err(|e| for_run(e, &id))?;
    let view = rt.view(&id).await.map_err(|e| for_run(e, &id))?;
    Ok(Json(serde_json::to_value(view).unwrap_or(Value::Null)))
}

/// A pause or resume the run's status does not allow: 409 `invalid_run_state` naming the
/// run, its status and the statuses the action applies to.
fn for_control(
    e: OrchestratorError,
    run_id: &str,
    status: Option<RunStatus>,
    allowed: &[RunStatus],
) -> ApiError {
    match e {
        OrchestratorError::Conflict(message) => {
            ApiError::new(StatusCode::CONFLICT, "invalid_run_state", message).with_details(json!({
                "run_id": run_id,
                "status": status,
                "allowed_from": allowed,
            }))
        }
        other => for_run(other, run_id),
    }
}

/// Pauses a run: no new node starts until it is resumed.
#[utoipa::path(
    post, path = "/workflow-runs/{id}/pause", tag = "workflow runs", operation_id = "pause_workflow_run",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The paused run (`status` is `paused`), as `GET /workflow-runs/{id}`. Nodes already running finish and their results are kept; timers (wait nodes, approval expiries) keep their deadlines and one that falls due during the pause takes effect on resume. The run stays paused across restarts.", body = Object),
        (status = 404, description = "No such run (`run_not_found`)", body = ErrorBody),
        (status = 409, description = "The run is not pending, running or waiting, e.g. it has finished or is paused already (`invalid_run_state`; `details.run_id`, `details.status`, `details.allowed_from`)", body = ErrorBody),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    let by = caller(principal.as_deref());
    let rt = runtime(&state)?;
    if let Err(e) = rt.pause(&id, &by).await {
        let status = rt.store().workflow_run(&id).await.ok().map(|r| r.status);
        return Err(for_control(
            e,
            &id,
            status,
            &tradeloom_orchestrator::runtime::PAUSABLE,
        ));
    }
    let view = rt.view(&id).await.map_err(|e| for_run(e, &id))?;
    Ok(Json(serde_json::to_value(view).unwrap_or(Value::Null)))
}

/// Resumes a paused run.
#[utoipa::path(
    post, path = "/workflow-runs/{id}/resume", tag = "workflow runs", operation_id = "resume_workflow_run",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The resumed run, as `GET /workflow-runs/{id}`: nodes held back start, timers that fell due during the pause take effect now", body = Object),
        (status = 404, description = "No such run (`run_not_found`)", body = ErrorBody),
        (status = 409, description = "The run is not paused (`invalid_run_state`; `details.run_id`, `details.status`, `details.allowed_from`)", body = ErrorBody),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    let by = caller(principal.as_deref());
    let rt = runtime(&state)?;
    if let Err(e) = rt.resume(&id, &by).await {
        let status = rt.store().workflow_run(&id).await.ok().map(|r| r.status);
        return Err(for_control(e, &id, status, &[RunStatus::Paused]));
    }
    let view = rt.view(&id).await.map_err(|e| for_run(e, &id))?;
    Ok(Json(serde_json::to_value(view).unwrap_or(Value::Null)))
}

/// Applies an RFC 6902 JSON Patch to the run's workflow definition.
#[utoipa::path(
    post, path = "/workflow-runs/{id}/patch", tag = "workflow runs", operation_id = "patch_workflow_run",
    params(("id" = String, Path, description = "The run's id")),
    request_body(content = Vec<Object>, description = "JSON Patch operations, e.g. [{\"op\":\"add\",\"path\":\"/nodes/-\",\"value\":{...}}]"),
    responses(
        (status = 200, description = "`{\"run_id\", \"ir_version\"}`", body = Object),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run has finished", body = ErrorBody),
        (status = 422, description = "Rejected (`patch_rejected`): `details.errors` (and `errors`) list every reason (a patch over max_patch_operations or max_patch_bytes gets that reason alone); or an added agent node names an agent or skill that is not registered (`unresolved_reference`, as at a run's start)", body = ErrorBody),
    )
)]
pub async fn patch(
    State(state): State<AppState>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let Json(body) = body?;
    let by = caller(principal.as_deref());
    match runtime(&state)?
        .patch(&id, &body, &by)
        .await
        .map_err(|e| for_run(e, &id))?
    {
        PatchOutcome::Applied { ir_version } => {
            Ok(Json(json!({"run_id": id, "ir_version": ir_version})).into_response())
        }
        PatchOutcome::Rejected { reasons } => {
            let body = json!({
                "error": "patch_rejected",
                "message": format!("the patch was rejected ({} reason(s))", reasons.len()),
                "details": {"errors": reasons},
                "errors": reasons,
            });
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response())
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events with a larger sequence number.
    pub after_seq: Option<i64>,
    pub limit: Option<u32>,
}

/// A run's events, oldest first (the WebSocket `/ws` streams the same events live).
#[utoipa::path(
    get, path = "/workflow-runs/{id}/events", tag = "workflow runs", operation_id = "workflow_run_events",
    params(("id" = String, Path, description = "The run's id"), EventsQuery),
    responses(
        (status = 200, description = "`{\"run_id\", \"events\": [...]}`", body = Object),
        (status = 404, description = "No such run", body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    let Query(q) = query?;
    let rt = runtime(&state)?;
    rt.store()
        .workflow_run(&id)
        .await
        .map_err(|e| for_run(e.into(), &id))?;
    let events = rt
        .store()
        .events(
            EventFilter::Run(&id),
            q.after_seq.unwrap_or(0),
            q.limit.unwrap_or(1000).clamp(1, 10_000),
        )
        .await?;
    Ok(Json(json!({"run_id": id, "events": events})))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ApprovalsQuery {
    /// `pending`, `approved`, `rejected`, `expired`, `cancelled`, or `all` (the default).
    pub status: Option<String>,
    pub run_id: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// Approvals of `hitl` nodes, oldest first.
#[utoipa::path(
    get, path = "/approvals", tag = "approvals", operation_id = "list_approvals", params(ApprovalsQuery),
    responses(
        (status = 200, description = "`{\"approvals\": [...]}`", body = Object),
        (status = 400, description = "An unknown `status` or a malformed parameter", body = ErrorBody),
    )
)]
pub async fn approvals(
    State(state): State<AppState>,
    query: Result<Query<ApprovalsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    let status = status_filter::<ApprovalStatus>(q.status.as_deref())?;
    let approvals = runtime(&state)?
        .store()
        .list_approvals(
            status,
            q.run_id.as_deref(),
            q.limit.unwrap_or(100).clamp(1, 1000),
            q.offset.unwrap_or(0),
        )
        .await?;
    Ok(Json(json!({"approvals": approvals})))
}

/// One approval.
#[utoipa::path(
    get, path = "/approvals/{id}", tag = "approvals", operation_id = "get_approval",
    params(("id" = String, Path, description = "The approval's id")),
    responses(
        (status = 200, description = "The approval", body = Object),
        (status = 404, description = "No such approval", body = ErrorBody),
    )
)]
pub async fn approval(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    let a = runtime(&state)?
        .store()
        .approval(&id)
        .await
        .map_err(|e| for_approval(e.into(), &id))?;
    Ok(Json(serde_json::to_value(a).unwrap_or(Value::Null)))
}

fn for_approval(e: OrchestratorError, id: &str) -> ApiError {
    match e {
        OrchestratorError::NotFound(_) => {
            ApiError::not_found("approval_not_found", format!("no approval with id `{id}`"))
                .with_details(json!({"approval_id": id}))
        }
        OrchestratorError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "approval_closed", m),
        other => other.into(),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// `approve` or `reject`.
    #[schema(schema_with = crate::openapi::decision_schema)]
    pub decision: Decision,
    pub comment: Option<String>,
    /// A name the caller gives. With auth required the decider is always the calling API key
    /// (its name), and a `by` naming someone else is only kept as a note in the comment; with
    /// auth off (no identities) it names the decider (default `anonymous`).
    pub by: Option<String>,
}

/// Who decides, and the comment stored: with a key, the key's name decides and a different
/// `by` becomes a note in the comment (never an identity); without auth, `by` or `anonymous`.
fn decider(
    principal: Option<&crate::auth::Principal>,
    by: Option<String>,
    comment: Option<String>,
) -> (String, Option<String>) {
    let by = by.map(|b| b.trim().to_string()).filter(|b| !b.is_empty());
    match principal {
        Some(p) if p.key_id.is_some() => {
            let comment = match by {
                Some(stated) if stated != p.name => Some(match comment {
                    Some(c) if !c.trim().is_empty() => format!("{c} (stated by: {stated})"),
                    _ => format!("(stated by: {stated})"),
                }),
                _ => comment,
            };
            (p.name.clone(), comment)
        }
        _ => (by.unwrap_or_else(|| caller(principal)), comment),
    }
}

/// Decides a pending approval; the run resumes down the matching branch.
#[utoipa::path(
    post, path = "/approvals/{id}/decide", tag = "approvals", operation_id = "decide_approval",
    params(("id" = String, Path, description = "The approval's id")),
    request_body = DecideRequest,
    responses(
        (status = 200, description = "The decided approval", body = Object),
        (status = 403, description = "The calling key is not one of the approval's approvers", body = ErrorBody),
        (status = 404, description = "No such approval", body = ErrorBody),
        (status = 409, description = "Already decided, expired or cancelled", body = ErrorBody),
        (status = 422, description = "Bad decision", body = ErrorBody),
    )
)]
pub async fn decide(
    State(state): State<AppState>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<DecideRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    let Json(body) = body?;
    let (by, comment) = decider(principal.as_deref(), body.by, body.comment);
    let approval = runtime(&state)?
        .decide(&id, body.decision, comment, &by)
        .await
        .map_err(|e| for_approval(e, &id))?;
    Ok(Json(serde_json::to_value(approval).unwrap_or(Value::Null)))
}

/// A stored blob (node outputs, definitions, IRs) by its sha256.
#[utoipa::path(
    get, path = "/blobs/{hash}", tag = "workflow runs", operation_id = "get_blob",
    params(("hash" = String, Path, description = "The blob's sha256, hex")),
    responses(
        (status = 200, description = "`{\"hash\", \"kind\", \"content\"}`", body = Object),
        (status = 404, description = "No such blob", body = ErrorBody),
    )
)]
pub async fn blob(
    State(state): State<AppState>,
    hash: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(hash) = hash?;
    let blob = state
        .simulator
        .store()
        .blob(&hash)
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => {
                ApiError::not_found("blob_not_found", format!("no blob with hash `{hash}`"))
            }
            other => other.into(),
        })?;
    let content: Value = serde_json::from_str(&blob.body).unwrap_or(Value::String(blob.body));
    Ok(Json(
        json!({"hash": blob.hash, "kind": blob.kind, "content": content}),
    ))
}

#[cfg(test)]
mod tests {
    use tradeloom_store::Role;

    use super::*;
    use crate::auth::Principal;

    fn key(name: &str) -> Principal {
        Principal {
            key_id: Some(format!("id-{name}")),
            name: name.into(),
            role: Role::Operator,
            max_concurrent_runs: None,
        }
    }

    #[test]
    fn the_calling_key_decides_and_a_stated_name_is_a_note() {
        let alice = key("alice");
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            decider(Some(&alice), s("bob"), None),
            ("alice".into(), s("(stated by: bob)"))
        );
        assert_eq!(
            decider(Some(&alice), s("bob"), s("ok")),
            ("alice".into(), s("ok (stated by: bob)"))
        );
        assert_eq!(
            decider(Some(&alice), s("alice"), s("ok")),
            ("alice".into(), s("ok"))
        );
        assert_eq!(decider(Some(&alice), None, None), ("alice".into(), None));
        // Auth off: no identities, so the stated name (or `anonymous`) decides.
        let anon = Principal::anonymous();
        assert_eq!(
            decider(Some(&anon), s(" bob "), s("ok")),
            ("bob".into(), s("ok"))
        );
        assert_eq!(
            decider(Some(&anon), s(" "), None),
            ("anonymous".into(), None)
        );
        assert_eq!(decider(None, None, None), ("anonymous".into(), None));
    }
}
