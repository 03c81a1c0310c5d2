//! The sweeps API: `POST /sweeps` starts a parameter sweep of a run spec in this server (its runs
//! on every core, one after another sweep; on a cluster, on the workers of the `sweep` pool), `GET /sweeps/{id}` answers its progress while it
//! runs and then the JSON `tradeloom sweep --json` prints.
//!
//! A spec is YAML text or a path under the server's config folder; its data paths must lie in
//! the folders `POST /runs` reads from, and grid keys may not change them (`data.…`, `feed.…`).

use std::path::Path;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tradeloom_runs::sweep::{
    BaseSpec, Metric, Sweep, SweepError, SweepRequest, SweepStatus, WalkForward, default_jobs,
    progress_of, read_state, result_of,
};
use utoipa::ToSchema;

use tradeloom_orchestrator::sweep_points::{ClusterRunner, takes_sweeps};

use crate::AppState;
use crate::engine_runs::launcher::Roots;
use crate::error::{ApiError, ErrorBody};

/// The longest spec text taken.
const MAX_SPEC_BYTES: usize = 1024 * 1024;

/// `POST /sweeps`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartSweepRequest {
    /// The run spec: its YAML text (relative data paths are read from the config folder), or the
    /// path of a `.yaml` file under the server's config folder (`serve --config-dir`).
    pub spec: String,
    /// `KEY=VALUES,…`, e.g. `strategy.params.fast=5..30:5,strategy.params.slow=20..100:10`.
    pub grid: String,
    /// The metric to rank by (default `sharpe`; see the sweeps chapter for the list).
    #[serde(default)]
    pub metric: Option<String>,
    /// `train=2y,test=6m`: a walk-forward test of the best point.
    #[serde(default)]
    pub walk_forward: Option<String>,
    /// The heat map's keys (default the grid's first two).
    #[serde(default)]
    pub heatmap_x: Option<String>,
    #[serde(default)]
    pub heatmap_y: Option<String>,
    /// Leave out points whose spec does not validate instead of refusing the sweep.
    #[serde(default)]
    pub skip_invalid: bool,
    /// Runs at a time (default: the server's cores).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub jobs: Option<usize>,
}

/// The sweep that was started.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartedSweep {
    pub sweep_id: String,
    /// `running`.
    pub status: String,
    /// Runs the sweep makes.
    pub total: usize,
}

fn invalid(code: &'static str, field: &str, message: String) -> ApiError {
    ApiError::bad_request(code, message).with_details(json!({"field": field}))
}

fn sweep_error(e: SweepError) -> ApiError {
    match e {
        SweepError::Grid { ref key, .. } => {
            let key = key.clone();
            ApiError::bad_request("invalid_grid", e.to_string())
                .with_details(json!({"field": "grid", "key": key}))
        }
        SweepError::Point { .. } | SweepError::Syntax(_) => {
            invalid("invalid_grid", "grid", e.to_string())
        }
        SweepError::Spec(_) => invalid("invalid_spec", "spec", e.to_string()),
        SweepError::WalkForward(_) => {
            invalid("invalid_walk_forward", "walk_forward", e.to_string())
        }
        SweepError::Data(_) => invalid("invalid_market_data", "spec.data", e.to_string()),
        SweepError::NotFound(m) => ApiError::not_found("sweep_not_found", m),
        SweepError::Busy(m) => ApiError::new(StatusCode::CONFLICT, "sweep_busy", m),
        SweepError::Io { .. } => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "sweep_folder_unusable",
            e.to_string(),
        ),
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        format!("sweep task: {e}"),
    )
}

/// The base spec of a request: a file under the config folder, or YAML text.
fn base_spec(roots: &Roots, text: &str) -> Result<BaseSpec, ApiError> {
    let trimmed = text.trim();
    if trimmed.is_empty() || text.len() > MAX_SPEC_BYTES {
        return Err(invalid(
            "invalid_spec",
            "spec",
            format!(
                "spec: send the run spec's YAML text (at most {MAX_SPEC_BYTES} bytes) or a path"
            ),
        ));
    }
    let is_path = !trimmed.contains('\n')
        && (trimmed.ends_with(".yaml") || trimmed.ends_with(".yml"))
        && !trimmed.contains(": ");
    let base = if is_path {
        let path = roots.resolve(trimmed, false).map_err(|reason| {
            invalid("invalid_spec", "spec", format!("spec `{trimmed}` {reason}"))
        })?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| invalid("invalid_spec", "spec", format!("spec `{trimmed}`: {e}")))?;
        BaseSpec::new(&path, text)
    } else {
        BaseSpec::new(&roots.dirs[0].join("spec.yaml"), text.to_string())
    }
    .map_err(sweep_error)?;
    for (i, (given, resolved)) in base.data_paths().iter().enumerate() {
        // Canonical first: a spec under the config folder may say `../data/x.csv`.
        let canonical = resolved.canonicalize().unwrap_or_else(|_| resolved.clone());
        roots
            .resolve(&canonical.display().to_string(), false)
            .map_err(|reason| {
                ApiError::bad_request(
                    "invalid_data_path",
                    format!("data[{i}].path `{given}` {reason}"),
                )
                .with_details(json!({"field": format!("spec.data[{i}].path"), "path": given}))
            })?;
    }
    Ok(base)
}

/// Starts a parameter sweep of a run spec; its runs go on in the server.
/// On a cluster (a Redis registry and a workflow runtime), the runner that hands the sweep's runs
/// to the workers of the `sweep` pool; `None` on the embedded server (its own cores).
async fn cluster_runner(
    state: &AppState,
    jobs_given: bool,
) -> Result<Option<ClusterRunner>, ApiError> {
    let (Some(view), Some(runtime)) = (state.cluster.as_ref(), state.runtime.as_ref()) else {
        return Ok(None);
    };
    if view.registry.kind() != "redis" {
        return Ok(None);
    }
    if jobs_given {
        return Err(invalid(
            "invalid_jobs",
            "jobs",
            "jobs: on a cluster a sweep runs on the workers of the `sweep` pool, one run per \
             core of each; leave `jobs` out"
                .to_string(),
        ));
    }
    let processes = view.registry.list().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "registry_unavailable",
            format!("the cluster's registry: {e}"),
        )
    })?;
    if !processes.iter().any(takes_sweeps) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_sweep_workers",
            "no worker process of the cluster takes the `sweep` pool; start one \
             (`tradeloom worker`) and try again"
                .to_string(),
        ));
    }
    Ok(Some(ClusterRunner {
        queue: runtime.coordinator().queue().clone(),
        handle: tokio::runtime::Handle::current(),
    }))
}

#[utoipa::path(
    post, path = "/sweeps", tag = "runs", operation_id = "start_sweep",
    request_body = StartSweepRequest,
    responses(
        (status = 202, description = "The sweep is planned (every point checked) and running; follow it with `GET /sweeps/{id}`", body = StartedSweep),
        (status = 400, description = "A bad spec (`invalid_spec`), grid (`invalid_grid`, `details.key` names the key), walk-forward (`invalid_walk_forward`), data path (`invalid_data_path`) or market data; `jobs` on a cluster (`invalid_jobs`)", body = ErrorBody),
        (status = 503, description = "On a cluster: no worker takes the `sweep` pool (`no_sweep_workers`), or the registry did not answer (`registry_unavailable`)", body = ErrorBody),
    )
)]
pub async fn start(
    State(state): State<AppState>,
    body: Result<Json<StartSweepRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<StartedSweep>), ApiError> {
    let Json(body) = body?;
    if let Some(key) = body
        .grid
        .split(',')
        .filter_map(|t| t.split_once('=').map(|(k, _)| k.trim()))
        .find(|k| k.starts_with("data") || k.starts_with("feed"))
    {
        return Err(ApiError::bad_request(
            "invalid_grid",
            format!("grid key `{key}`: a sweep over the API may not change file paths"),
        )
        .with_details(json!({"field": "grid", "key": key})));
    }
    let metric: Metric = body
        .metric
        .as_deref()
        .unwrap_or("sharpe")
        .parse()
        .map_err(|e: SweepError| invalid("invalid_metric", "metric", e.to_string()))?;
    let walk_forward = body
        .walk_forward
        .as_deref()
        .map(WalkForward::parse)
        .transpose()
        .map_err(sweep_error)?;
    let cluster = cluster_runner(&state, body.jobs.is_some()).await?;
    let roots = Roots::of(&state)?;
    let base = base_spec(&roots, &body.spec)?;
    let data_dir = state.simulator.options().data_dir.clone();
    let request = SweepRequest {
        base,
        grid: body.grid,
        metric,
        walk_forward,
        heatmap_x: body.heatmap_x,
        heatmap_y: body.heatmap_y,
        skip_invalid: body.skip_invalid,
    };
    let dir = data_dir.clone();
    let sweep = tokio::task::spawn_blocking(move || Sweep::create(&dir, request))
        .await
        .map_err(internal)?
        .map_err(sweep_error)?;
    let started = StartedSweep {
        sweep_id: sweep.state.sweep_id.clone(),
        status: "running".to_string(),
        total: sweep.total(),
    };
    let jobs = body.jobs.unwrap_or_else(default_jobs).max(1);
    std::thread::spawn(move || {
        let mut sweep = sweep;
        let id = sweep.state.sweep_id.clone();
        let ran = match cluster {
            Some(runner) => sweep.run_with(&runner, &mut |_| {}),
            None => sweep.run(&data_dir, jobs, &mut |_| {}),
        };
        match ran {
            Ok(made) => tracing::info!(sweep_id = %id, runs = made, "sweep finished"),
            Err(e) => tracing::error!(sweep_id = %id, error = %e, "sweep stopped"),
        }
    });
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// A sweep's progress while it runs (`{sweep_id, status: "running", done, total}`; `interrupted`
/// when the process running it died), then its
/// result: `{sweep_id, metric, runs: [{params, run_id, metrics}], best}` (and `walk_forward`).
#[utoipa::path(
    get, path = "/sweeps/{id}", tag = "runs", operation_id = "get_sweep",
    params(("id" = String, Path, description = "The sweep's id or a unique prefix of it")),
    responses(
        (status = 200, description = "Progress (`status: running`) or the finished sweep's JSON, as `tradeloom sweep --json` prints it", body = Object),
        (status = 404, description = "No such sweep", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let UrlPath(id) = id?;
    let data_dir = state.simulator.options().data_dir.clone();
    tokio::task::spawn_blocking(move || {
        let dir = Sweep::open(&data_dir, &id).map_err(sweep_error)?.dir;
        let state = read_state(Path::new(&dir)).map_err(sweep_error)?;
        Ok(Json(match state.status {
            SweepStatus::Running => progress_of(&state),
            SweepStatus::Completed => serde_json::to_value(result_of(&state)).map_err(internal)?,
        }))
    })
    .await
    .map_err(internal)?
}
