//! `/killswitch`: the data dir's kill switch over HTTP — `GET /killswitch` (viewer) answers
//! what `tradeloom killswitch status --json` prints; `POST /killswitch/engage` and
//! `POST /killswitch/release` (operator) change one scope, recording the API key's name as
//! `by`. The files under `<data_dir>/killswitch/` are the state: every process on the data dir,
//! and this server after a restart, sees the same thing.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tradeloom_safety::{KillSwitch, KillSwitchError, Scope, ScopeState};
use tradeloom_store::Role;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Principal, forbidden};
use crate::error::{ApiError, ErrorBody};

/// `POST /killswitch/engage`: the global kill switch unless `run` or `job` names a scope.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EngageRequest {
    /// Why (recorded in the state file, the event log and every refused order); not empty.
    #[schema(pattern = "\\S")]
    pub reason: String,
    /// Only this run (`run:<id>`).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    pub run: Option<String>,
    /// Only this simulation job (`job:<id>`).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    pub job: Option<String>,
    /// Also close open positions (engine runs and agents' books).
    #[serde(default)]
    pub flatten: bool,
}

/// `POST /killswitch/release`: the global kill switch unless `run` or `job` names a scope.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// Why (default `released over the API`); not empty when given.
    #[serde(default)]
    #[schema(pattern = "\\S")]
    pub reason: Option<String>,
    /// Only this run (`run:<id>`).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    pub run: Option<String>,
    /// Only this simulation job (`job:<id>`).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    pub job: Option<String>,
}

fn invalid(field: &str, message: impl Into<String>, value: &Value) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        message.into(),
    )
    .with_details(json!({"field": field, "value": value}))
}

fn scope_of(run: &Option<String>, job: &Option<String>) -> Result<Scope, ApiError> {
    match (run, job) {
        (Some(_), Some(_)) => Err(invalid(
            "run",
            "give `run` or `job`, not both: a kill switch has one scope",
            &json!({"run": run, "job": job}),
        )),
        (Some(id), None) => Scope::run(id).map_err(|e| invalid("run", e.to_string(), &json!(id))),
        (None, Some(id)) => Scope::job(id).map_err(|e| invalid("job", e.to_string(), &json!(id))),
        (None, None) => Ok(Scope::Global),
    }
}

fn open(state: &AppState) -> Result<KillSwitch, ApiError> {
    KillSwitch::open(&state.simulator.options().data_dir).map_err(internal)
}

fn internal(e: KillSwitchError) -> ApiError {
    let code = match e {
        KillSwitchError::Corrupt { .. } => "kill_switch_corrupt",
        _ => "kill_switch_io",
    };
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, e.to_string())
}

/// The guard already requires operator for POST; checked again so these handlers stay
/// operator-only whatever the routing becomes.
fn require_operator(principal: &Principal, path: &str) -> Result<(), ApiError> {
    if principal.role.allows(Role::Operator) {
        Ok(())
    } else {
        Err(forbidden(&Method::POST, path, Role::Operator, principal))
    }
}

/// Every kill switch: `{"global": {...}, "runs": {id: {...}}, "jobs": {id: {...}}}`, each
/// `{"scope","engaged","reason","by","since","flatten"}`.
#[utoipa::path(
    get, path = "/killswitch", tag = "killswitch", operation_id = "kill_switch_status",
    responses(
        (status = 200, description = "Same JSON as `tradeloom killswitch status --json`", body = Object),
        (status = 500, description = "A state file is unreadable (it counts as engaged)", body = ErrorBody),
    )
)]
pub async fn status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let status = open(&state)?.status().map_err(internal)?;
    Ok(Json(serde_json::to_value(status).unwrap_or(Value::Null)))
}

/// Engages one kill switch; the answer is its new state. Once it has returned, no new order
/// is accepted under that scope by any process on the data dir.
#[utoipa::path(
    post, path = "/killswitch/engage", tag = "killswitch", operation_id = "engage_kill_switch", request_body = EngageRequest,
    responses(
        (status = 200, description = "The scope's new state", body = Object),
        (status = 400, description = "Not JSON or an unknown/missing field", body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 422, description = "An empty reason or a bad run/job id", body = ErrorBody),
    )
)]
pub async fn engage(
    principal: Principal,
    State(state): State<AppState>,
    body: Result<Json<EngageRequest>, JsonRejection>,
) -> Result<Json<ScopeState>, ApiError> {
    require_operator(&principal, "/killswitch/engage")?;
    let Json(req) = body?;
    let scope = scope_of(&req.run, &req.job)?;
    if req.reason.trim().is_empty() {
        return Err(invalid(
            "reason",
            "`reason` must not be empty: say why trading stops",
            &json!(req.reason),
        ));
    }
    let ks = open(&state)?;
    let new = ks
        .engage(&scope, &req.reason, &principal.name, req.flatten)
        .map_err(internal)?;
    tracing::warn!(scope = %scope, by = %principal.name, reason = %req.reason, flatten = req.flatten, "kill switch engaged");
    Ok(Json(new))
}

/// Releases one kill switch; the answer is its new state.
#[utoipa::path(
    post, path = "/killswitch/release", tag = "killswitch", operation_id = "release_kill_switch", request_body = ReleaseRequest,
    responses(
        (status = 200, description = "The scope's new state", body = Object),
        (status = 400, description = "Not JSON or an unknown field", body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 422, description = "An empty reason or a bad run/job id", body = ErrorBody),
    )
)]
pub async fn release(
    principal: Principal,
    State(state): State<AppState>,
    body: Result<Json<ReleaseRequest>, JsonRejection>,
) -> Result<Json<ScopeState>, ApiError> {
    require_operator(&principal, "/killswitch/release")?;
    let Json(req) = body?;
    let scope = scope_of(&req.run, &req.job)?;
    let reason = match &req.reason {
        Some(r) if r.trim().is_empty() => {
            return Err(invalid(
                "reason",
                "`reason` must not be empty when given",
                &json!(r),
            ));
        }
        Some(r) => r.clone(),
        None => "released over the API".to_string(),
    };
    let ks = open(&state)?;
    let new = ks
        .release(&scope, &reason, &principal.name)
        .map_err(internal)?;
    tracing::warn!(scope = %scope, by = %principal.name, reason = %reason, "kill switch released");
    Ok(Json(new))
}
