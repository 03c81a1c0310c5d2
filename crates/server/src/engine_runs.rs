//! The runs API — engine runs (backtests and paper runs) of the data dir's run folders:
//! `GET /runs`, `GET /runs/{id}`, `GET /runs/{id}/equity`, `GET /runs/{id}/orders|fills|trades`,
//! `POST /runs` (start a backtest or a paper run from a spec given as YAML text) and
//! `POST /runs/{id}/stop` (stop a paper run gracefully).
//!
//! The run folder is the source of everything read here (`metadata.json`, `metrics.json`,
//! `run_spec.yaml`, `equity.parquet`, the CSV artifacts); runs started by this process are also
//! tracked in the orchestrator's [`tradeloom_orchestrator::EngineRuns`] (shared with the
//! workflow runtime's `paper` nodes), so that a paper run can be stopped through its stop
//! signal.

mod artifact_table;
mod equity_curve;
pub(crate) mod launcher;

use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tradeloom_runs::equity::{EQUITY_FILE, EquityFile};
use tradeloom_runs::{Metadata, RunError, RunStatus};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// Runs a page may hold at most.
const MAX_LIMIT: u32 = 500;
/// Rows of an artifact a page may hold at most.
const MAX_ROWS: u64 = 5000;
/// The most points `max_points` may ask for.
const MAX_POINTS: u64 = 100_000;
/// Points of the equity curve when `max_points` is not given.
const DEFAULT_POINTS: u64 = 2000;

fn bad_query(param: &str, message: String) -> ApiError {
    ApiError::bad_request("invalid_query", message).with_details(json!({"param": param}))
}

/// 404 `artifact_not_found`: run `run_id` has no `artifact` (yet, or ever).
fn no_artifact(run_id: &str, artifact: &str) -> ApiError {
    ApiError::not_found(
        "artifact_not_found",
        format!("run `{run_id}` has no {artifact}"),
    )
    .with_details(json!({"run_id": run_id, "artifact": artifact}))
}

/// 409 `run_in_progress`: `artifact` is written when run `run_id` stops (`follow`: where to
/// look meanwhile, or empty).
fn written_at_stop(run_id: &str, artifact: &str, follow: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "run_in_progress",
        format!("run `{run_id}` is still running: its {artifact} is written when it stops{follow}"),
    )
    .with_details(json!({"run_id": run_id, "status": "running"}))
}

/// The data dir of the server.
pub(crate) fn data_dir(state: &AppState) -> PathBuf {
    state.simulator.options().data_dir.clone()
}

/// A run folder error as an API error (a corrupt or unreadable folder is the server's).
fn folder_error(e: RunError) -> ApiError {
    match e {
        RunError::NotFound(m) => ApiError::not_found("run_not_found", m),
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "run_folder_unreadable",
            other.to_string(),
        ),
    }
}

/// The folder and metadata of run `id` (a full id, a unique prefix, or `latest`).
async fn find(state: &AppState, id: &str) -> Result<(PathBuf, Metadata), ApiError> {
    let data_dir = data_dir(state);
    let id = id.to_string();
    tokio::task::spawn_blocking(move || {
        let dir = tradeloom_runs::find_run(&data_dir, &id).map_err(|e| match e {
            // The store's message names the data dir's folder: not the API's to show.
            RunError::NotFound(_) => ApiError::not_found(
                "run_not_found",
                format!("no run `{id}` (a full id, a unique prefix of one, or `latest`)"),
            )
            .with_details(json!({"run_id": id})),
            other => folder_error(other),
        })?;
        let meta = Metadata::read(&dir).map_err(folder_error)?;
        Ok((dir, meta))
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("run lookup task: {e}"),
        )
    })?
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EngineRunsQuery {
    /// `backtest`, `paper`, `order` (a workflow `order` node's run), or `all` (the default).
    #[param(pattern = "^(backtest|paper|order|all)$")]
    pub mode: Option<String>,
    /// `running`, `completed`, `failed`, `interrupted`, or `all` (the default).
    #[param(pattern = "^(running|completed|failed|interrupted|all)$")]
    pub status: Option<String>,
    /// Only runs whose name contains this text (case-insensitive).
    pub name: Option<String>,
    /// Runs per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Runs to skip (the `next_offset` of the previous page).
    #[param(minimum = 0)]
    pub offset: Option<u64>,
}

/// One run of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngineRunSummary {
    pub run_id: String,
    pub name: String,
    /// `backtest` or `paper`.
    pub mode: String,
    /// `running`, `completed`, `failed` or `interrupted`.
    pub status: String,
    pub strategy: String,
    pub instruments: Vec<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    /// The final equity, an exact decimal string (once the run has finished).
    pub final_equity: Option<String>,
    /// Total return in percent (once the run has finished).
    pub total_return_pct: Option<f64>,
    /// Whether this server started the run and it is still going.
    pub active: bool,
}

/// A page of runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngineRunList {
    pub runs: Vec<EngineRunSummary>,
    /// Runs matching the filters, over every page.
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
    /// The offset of the next page, or `null` on the last.
    pub next_offset: Option<u64>,
}

/// The server's own folders (its config folder and data dir, as given and canonical), each
/// with a trailing `/`: what a run's error must not show an API client.
fn server_folders(state: &AppState) -> Vec<String> {
    let mut dirs: Vec<PathBuf> = vec![data_dir(state)];
    if let Some(config) = state.config_dir.as_ref() {
        dirs.push(config.root().to_path_buf());
    }
    let canonical: Vec<PathBuf> = dirs.iter().filter_map(|d| d.canonicalize().ok()).collect();
    let mut out: Vec<String> = dirs
        .into_iter()
        .chain(canonical)
        .map(|d| format!("{}/", d.display().to_string().trim_end_matches('/')))
        .filter(|d| d.len() > 1)
        .collect();
    // Longest first, so a folder inside another is cut whole.
    out.sort_by_key(|d| std::cmp::Reverse(d.len()));
    out.dedup();
    out
}

/// A run's error as an API client may see it: paths inside the server's folders made relative
/// to them (`/srv/tradeloom/config/data/x.csv:12: …` → `data/x.csv:12: …`).
fn client_error(error: Option<String>, folders: &[String]) -> Option<String> {
    error.map(|e| folders.iter().fold(e, |e, dir| e.replace(dir.as_str(), "")))
}

fn summary_of(meta: Metadata, active: bool) -> EngineRunSummary {
    let (final_equity, total_return_pct) = match meta.summary {
        Some(s) => (Some(s.final_equity), Some(s.total_return_pct)),
        None => (None, None),
    };
    EngineRunSummary {
        run_id: meta.run_id,
        name: meta.name,
        mode: meta.mode,
        status: meta.status.as_str().to_string(),
        strategy: meta.strategy,
        instruments: meta.instruments,
        created_at: meta.created_at,
        finished_at: meta.finished_at,
        error: meta.error,
        final_equity,
        total_return_pct,
        active,
    }
}

/// Backtests and paper runs of the data dir, newest first.
#[utoipa::path(
    get, path = "/runs", tag = "runs", operation_id = "list_engine_runs", params(EngineRunsQuery),
    responses(
        (status = 200, description = "One page of runs, newest first", body = EngineRunList),
        (status = 400, description = "A bad query parameter (named in `details.param`)", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<EngineRunsQuery>, QueryRejection>,
) -> Result<Json<EngineRunList>, ApiError> {
    let Query(q) = query?;
    let mode = match q.mode.as_deref() {
        None | Some("all") => None,
        Some(m @ ("backtest" | "paper" | "order")) => Some(m.to_string()),
        Some(other) => {
            return Err(bad_query(
                "mode",
                format!("mode: `{other}` is not one of backtest, paper, order, all"),
            ));
        }
    };
    let status = match q.status.as_deref() {
        None | Some("all") => None,
        Some(s @ ("running" | "completed" | "failed" | "interrupted")) => Some(s.to_string()),
        Some(other) => {
            return Err(bad_query(
                "status",
                format!(
                    "status: `{other}` is not one of running, completed, failed, interrupted, all"
                ),
            ));
        }
    };
    let limit = ApiError::page_limit(q.limit, 50, MAX_LIMIT)?;
    let offset = q.offset.unwrap_or(0);
    let name = q.name.map(|n| n.to_lowercase());
    let data_dir = data_dir(&state);
    let runs = tokio::task::spawn_blocking(move || tradeloom_runs::list_runs(&data_dir))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                format!("run listing task: {e}"),
            )
        })?
        .map_err(folder_error)?;
    let matching: Vec<Metadata> = runs
        .into_iter()
        .rev()
        .map(|(_, m)| m)
        .filter(|m| mode.as_deref().is_none_or(|x| m.mode == x))
        .filter(|m| status.as_deref().is_none_or(|x| m.status.as_str() == x))
        .filter(|m| {
            name.as_deref()
                .is_none_or(|x| m.name.to_lowercase().contains(x))
        })
        .collect();
    let total = matching.len() as u64;
    let folders = server_folders(&state);
    let page: Vec<EngineRunSummary> = matching
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(limit as usize)
        .map(|mut m| {
            let active = state.engine_runs().is_active(&m.run_id);
            m.error = client_error(m.error.take(), &folders);
            summary_of(m, active)
        })
        .collect();
    let next = offset.saturating_add(page.len() as u64);
    Ok(Json(EngineRunList {
        runs: page,
        total,
        limit,
        offset,
        next_offset: (next < total).then_some(next),
    }))
}

/// Reads a JSON file of the run folder, `null` when it is not there (yet).
fn read_json(path: &Path) -> Result<Value, ApiError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "run_folder_unreadable",
                format!("{}: not valid JSON: {e}", file_name(path)),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Null),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "run_folder_unreadable",
            format!("{}: {e}", file_name(path)),
        )),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One run: its metadata (status, mode, times, error, stop reason, summary, hashed artifacts),
/// the spec as it ran (`run_spec.yaml`) and `metrics.json`.
#[utoipa::path(
    get, path = "/runs/{id}", tag = "runs", operation_id = "get_engine_run",
    params(("id" = String, Path, description = "The run's id (a unique prefix or `latest` also work)")),
    responses(
        (status = 200, description = "`{run_id, name, mode, status, error, stop_reason, created_at, finished_at, duration_ms, venue, strategy, fill_model, instruments, spec: {yaml, source_path, sha256}, data: [{symbol, path, sha256, bytes}], summary, metrics, artifacts: [{name, sha256, bytes}], active}`", body = Object),
        (status = 404, description = "No such run", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let UrlPath(id) = id?;
    let (dir, meta) = find(&state, &id).await?;
    let active = state.engine_runs().is_active(&meta.run_id);
    let folders = server_folders(&state);
    let mut meta = meta;
    meta.error = client_error(meta.error.take(), &folders);
    let view = tokio::task::spawn_blocking(move || run_view(&dir, meta, active))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                format!("run view task: {e}"),
            )
        })??;
    Ok(Json(view))
}

fn run_view(dir: &Path, meta: Metadata, active: bool) -> Result<Value, ApiError> {
    // The raw file too: fields newer than this build's `Metadata` (a paper run's
    // `stop_reason`) are shown as written.
    let raw = read_json(&dir.join("metadata.json"))?;
    let yaml = match std::fs::read_to_string(dir.join("run_spec.yaml")) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "run_folder_unreadable",
                format!("run_spec.yaml: {e}"),
            ));
        }
    };
    let metrics = read_json(&dir.join("metrics.json"))?;
    let artifacts: Vec<Value> = meta
        .artifacts
        .iter()
        .map(|(name, h)| json!({"name": name, "sha256": h.sha256, "bytes": h.bytes}))
        .collect();
    let data: Vec<Value> = meta
        .data
        .iter()
        .map(|d| json!({"symbol": d.symbol, "path": d.path, "sha256": d.sha256, "bytes": d.bytes}))
        .collect();
    Ok(json!({
        "run_id": meta.run_id,
        "name": meta.name,
        "mode": meta.mode,
        "status": meta.status.as_str(),
        "error": meta.error,
        "stop_reason": raw.get("stop_reason").cloned().unwrap_or(Value::Null),
        "created_at": meta.created_at,
        "finished_at": meta.finished_at,
        "duration_ms": meta.duration_ms,
        "venue": meta.venue,
        "strategy": meta.strategy,
        "fill_model": meta.fill_model,
        "instruments": meta.instruments,
        "tradeloom_version": meta.tradeloom_version,
        "spec": {
            "yaml": yaml,
            "source_path": meta.spec.source_path,
            "source_sha256": meta.spec.source_sha256,
            "sha256": meta.spec.sha256,
        },
        "data": data,
        "summary": meta.summary,
        "metrics": metrics,
        "artifacts": artifacts,
        "active": active,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EquityQuery {
    /// The most points to send, 4 to 100000 (default 2000). Longer curves are cut into
    /// `max_points / 4` buckets, each sending its first, lowest, highest and last point.
    #[param(minimum = 4, maximum = 100000)]
    pub max_points: Option<u64>,
}

/// One point of the equity curve; amounts are exact decimal strings.
#[derive(Debug, Serialize, ToSchema)]
pub struct EquityPointView {
    /// RFC 3339 UTC (the bar's time).
    pub ts: String,
    pub cash: String,
    pub equity: String,
    pub gross_exposure: String,
}

/// The equity curve of a run, downsampled.
#[derive(Debug, Serialize, ToSchema)]
pub struct EquityCurve {
    pub run_id: String,
    pub currency: String,
    pub initial_cash: String,
    /// Rows in `equity.parquet`.
    pub rows: u64,
    pub max_points: u64,
    /// Whether rows were dropped (each bucket keeps its first, min, max and last point).
    pub downsampled: bool,
    pub points: Vec<EquityPointView>,
}

fn point_view(row: &tradeloom_runs::equity::EquityRow) -> EquityPointView {
    EquityPointView {
        ts: row.ts.to_string(),
        cash: row.cash.to_string(),
        equity: row.equity.to_string(),
        gross_exposure: row.gross_exposure.to_string(),
    }
}

/// A run's equity curve from `equity.parquet`, downsampled on the server keeping every peak and
/// trough (per bucket its first, lowest, highest and last point).
#[utoipa::path(
    get, path = "/runs/{id}/equity", tag = "runs", operation_id = "get_engine_run_equity",
    params(("id" = String, Path, description = "The run's id"), EquityQuery),
    responses(
        (status = 200, description = "The curve, at most `max_points` points", body = EquityCurve),
        (status = 400, description = "A bad `max_points`", body = ErrorBody),
        (status = 404, description = "No such run, or the run has no equity curve (it failed before writing one)", body = ErrorBody),
        (status = 409, description = "The run is still running: `equity.parquet` is written when it stops (follow `equity` events on `/ws?engine_run_id=`)", body = ErrorBody),
    )
)]
pub async fn equity(
    State(state): State<AppState>,
    id: Result<UrlPath<String>, PathRejection>,
    query: Result<Query<EquityQuery>, QueryRejection>,
) -> Result<Json<EquityCurve>, ApiError> {
    let UrlPath(id) = id?;
    let Query(q) = query?;
    let max_points = q.max_points.unwrap_or(DEFAULT_POINTS);
    if !(equity_curve::POINTS_PER_BUCKET..=MAX_POINTS).contains(&max_points) {
        return Err(bad_query(
            "max_points",
            format!(
                "max_points: {max_points} is not between {} and {MAX_POINTS}",
                equity_curve::POINTS_PER_BUCKET
            ),
        ));
    }
    let (dir, meta) = find(&state, &id).await?;
    if meta.status == RunStatus::Running {
        let follow = format!(
            "; follow its `equity` events on /ws?engine_run_id={}",
            meta.run_id
        );
        return Err(written_at_stop(&meta.run_id, EQUITY_FILE, &follow));
    }
    let path = dir.join(EQUITY_FILE);
    if !path.is_file() {
        return Err(no_artifact(&meta.run_id, EQUITY_FILE));
    }
    let run_id = meta.run_id.clone();
    let curve = tokio::task::spawn_blocking(move || -> Result<EquityCurve, RunError> {
        let file = EquityFile::open(&path)?;
        let (currency, initial_cash, rows) = (file.currency(), file.initial_cash(), file.rows());
        let mut sampler = equity_curve::Downsampler::new(rows, max_points);
        let downsampled = sampler.downsamples();
        file.for_each(|row| sampler.push(row))?;
        Ok(EquityCurve {
            run_id,
            currency: currency.to_string(),
            initial_cash: initial_cash.to_string(),
            rows,
            max_points,
            downsampled,
            points: sampler.finish().iter().map(point_view).collect(),
        })
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("equity task: {e}"),
        )
    })?
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "run_folder_unreadable",
            format!("{EQUITY_FILE}: {e}"),
        )
    })?;
    Ok(Json(curve))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RowsQuery {
    /// Rows per page, 1 to 5000 (default 500).
    #[param(minimum = 1, maximum = 5000)]
    pub limit: Option<u64>,
    /// Rows to skip (the `next_offset` of the previous page).
    #[param(minimum = 0)]
    pub offset: Option<u64>,
}

/// A page of one CSV artifact.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArtifactRows {
    pub run_id: String,
    /// `orders.csv`, `fills.csv` or `trades.csv`.
    pub artifact: String,
    /// The header's column names.
    pub columns: Vec<String>,
    /// Objects keyed by column; values are the exact text of the file (decimal strings),
    /// `null` for an empty field.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Value>,
    /// Rows in the file (so far, for a running run).
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
    pub next_offset: Option<u64>,
    /// `false` while the run is running (the file still grows).
    pub complete: bool,
}

/// A page's `limit` of artifact rows: `default` when absent, else 1 to [`MAX_ROWS`].
fn rows_limit(limit: Option<u64>, default: u64) -> Result<u64, ApiError> {
    ApiError::page_limit(limit, default, MAX_ROWS)
}

async fn artifact_rows(
    state: &AppState,
    id: &str,
    artifact: &'static str,
    q: RowsQuery,
) -> Result<Json<ArtifactRows>, ApiError> {
    let limit = rows_limit(q.limit, 500)?;
    let offset = q.offset.unwrap_or(0);
    let (dir, meta) = find(state, id).await?;
    let complete = meta.status != RunStatus::Running;
    let path = dir.join(artifact);
    let text = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(no_artifact(&meta.run_id, artifact));
        }
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "run_folder_unreadable",
                format!("{artifact}: {e}"),
            ));
        }
    };
    let mut text = String::from_utf8_lossy(&text).into_owned();
    if !complete {
        // A growing file: only whole lines.
        let end = text.rfind('\n').map_or(0, |i| i + 1);
        text.truncate(end);
    }
    let page = artifact_table::page(&text, offset, limit).map_err(|e| {
        let message = match e {
            artifact_table::TableError::Empty if !complete => {
                return ApiError::new(
                    StatusCode::CONFLICT,
                    "run_in_progress",
                    format!("run `{}` has not written {artifact} yet", meta.run_id),
                );
            }
            artifact_table::TableError::Empty => format!("{artifact} has no header"),
            artifact_table::TableError::Malformed { record } => {
                format!("{artifact}: record {record} is malformed")
            }
        };
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "run_folder_unreadable",
            message,
        )
    })?;
    let next = offset.saturating_add(page.rows.len() as u64);
    Ok(Json(ArtifactRows {
        run_id: meta.run_id,
        artifact: artifact.to_string(),
        columns: page.columns,
        rows: page.rows,
        total: page.total,
        limit,
        offset,
        next_offset: (next < page.total).then_some(next),
        complete,
    }))
}

/// A page of a run's fills (`fills.csv`: fill_id, order_id, ts, symbol, side, quantity, price,
/// fee, liquidity; a paper run's also `wall_ts`).
#[utoipa::path(
    get, path = "/runs/{id}/fills", tag = "runs", operation_id = "get_engine_run_fills",
    params(("id" = String, Path, description = "The run's id"), RowsQuery),
    responses(
        (status = 200, description = "One page of fills, in file order", body = ArtifactRows),
        (status = 400, description = "A bad `limit` or `offset`", body = ErrorBody),
        (status = 404, description = "No such run, or no fills.csv", body = ErrorBody),
        (status = 409, description = "The run has not written the file yet", body = ErrorBody),
    )
)]
pub async fn fills(
    State(state): State<AppState>,
    id: Result<UrlPath<String>, PathRejection>,
    query: Result<Query<RowsQuery>, QueryRejection>,
) -> Result<Json<ArtifactRows>, ApiError> {
    let UrlPath(id) = id?;
    let Query(q) = query?;
    artifact_rows(&state, &id, "fills.csv", q).await
}

/// A page of a run's orders (`orders.csv`, one row per order at its final state).
#[utoipa::path(
    get, path = "/runs/{id}/orders", tag = "runs", operation_id = "get_engine_run_orders",
    params(("id" = String, Path, description = "The run's id"), RowsQuery),
    responses(
        (status = 200, description = "One page of orders, in file order", body = ArtifactRows),
        (status = 400, description = "A bad `limit` or `offset`", body = ErrorBody),
        (status = 404, description = "No such run, or no orders.csv", body = ErrorBody),
        (status = 409, description = "The run has not written the file yet", body = ErrorBody),
    )
)]
pub async fn orders(
    State(state): State<AppState>,
    id: Result<UrlPath<String>, PathRejection>,
    query: Result<Query<RowsQuery>, QueryRejection>,
) -> Result<Json<ArtifactRows>, ApiError> {
    let UrlPath(id) = id?;
    let Query(q) = query?;
    artifact_rows(&state, &id, "orders.csv", q).await
}

/// A page of a run's round-trip trades (`trades.csv`).
#[utoipa::path(
    get, path = "/runs/{id}/trades", tag = "runs", operation_id = "get_engine_run_trades",
    params(("id" = String, Path, description = "The run's id"), RowsQuery),
    responses(
        (status = 200, description = "One page of trades, in file order", body = ArtifactRows),
        (status = 400, description = "A bad `limit` or `offset`", body = ErrorBody),
        (status = 404, description = "No such run, or no trades.csv", body = ErrorBody),
        (status = 409, description = "The run has not written the file yet", body = ErrorBody),
    )
)]
pub async fn trades(
    State(state): State<AppState>,
    id: Result<UrlPath<String>, PathRejection>,
    query: Result<Query<RowsQuery>, QueryRejection>,
) -> Result<Json<ArtifactRows>, ApiError> {
    let UrlPath(id) = id?;
    let Query(q) = query?;
    artifact_rows(&state, &id, "trades.csv", q).await
}

/// `POST /runs`: a run spec as YAML text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartEngineRunRequest {
    /// The run spec, YAML text (as `tradeloom run SPEC` reads it). `mode: backtest` or
    /// `mode: paper` (with a `feed:`). Relative data paths are read from the server's config
    /// folder (`serve --config-dir`), or its data dir without one; an absolute path must lie in
    /// one of them.
    pub spec: String,
}

/// The run that was started.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartedEngineRun {
    pub run_id: String,
    /// `backtest` or `paper`.
    pub mode: String,
    /// `running`.
    pub status: String,
}

/// Starts a backtest or a paper run; it runs on in the server.
#[utoipa::path(
    post, path = "/runs", tag = "runs", operation_id = "start_engine_run",
    request_body = StartEngineRunRequest,
    responses(
        (status = 202, description = "The run started (its folder exists); follow it with `GET /runs/{id}`", body = StartedEngineRun),
        (status = 400, description = "A bad spec (`invalid_spec`, `details.place` names the line and `details.field` the field), a data path outside the allowed folders or missing (`invalid_data_path`), unusable market data (`invalid_market_data`) or feed (`invalid_feed`)", body = ErrorBody),
        (status = 409, description = "Too many runs of this server are running", body = ErrorBody),
    )
)]
pub async fn start(
    State(state): State<AppState>,
    body: Result<Json<StartEngineRunRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<StartedEngineRun>), ApiError> {
    let Json(body) = body?;
    let started = launcher::start(&state, &body.spec).await?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// The outcome of `POST /runs/{id}/stop`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoppedEngineRun {
    pub run_id: String,
    /// `completed` (or `failed`) once the run has stopped and its folder is sealed; `stopping`
    /// when it had not finished within the wait (poll `GET /runs/{id}`).
    pub status: String,
    pub stop_reason: Option<String>,
}

/// Stops a paper run of this server gracefully (open orders cancelled, journal flushed, folder
/// sealed) and waits up to 30 s for it.
#[utoipa::path(
    post, path = "/runs/{id}/stop", tag = "runs", operation_id = "stop_engine_run",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run has stopped", body = StoppedEngineRun),
        (status = 202, description = "Asked to stop; still finishing", body = StoppedEngineRun),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run has finished (`run_finished`), is a backtest (`not_a_paper_run`), or runs in another process (`run_not_owned`)", body = ErrorBody),
    )
)]
pub async fn stop(
    State(state): State<AppState>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<(StatusCode, Json<StoppedEngineRun>), ApiError> {
    let UrlPath(id) = id?;
    let (_, meta) = find(&state, &id).await?;
    let (status, stopped) = launcher::stop(&state, &meta).await?;
    Ok((status, Json(stopped)))
}

/// A finished run's `chart.json`: each instrument's price as at most 2,048 candles
/// (`[time_s, open, high, low, close]`, exact decimals), and its fills as trade markers
/// (`[time_s, symbol, side, quantity, price]`, at most 5,000; `fills_total` counts them all).
#[utoipa::path(
    get, path = "/runs/{id}/chart", tag = "runs", operation_id = "get_engine_run_chart",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "`{format, instruments: [{symbol, bars_per_candle, candles}], fills_total, fills}`", body = Object),
        (status = 404, description = "No such run, or a run folder without chart.json (written before it existed, or failed)", body = ErrorBody),
        (status = 409, description = "The run is still running: chart.json is written when it stops", body = ErrorBody),
    )
)]
pub async fn chart(
    State(state): State<AppState>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<axum::response::Response, ApiError> {
    let UrlPath(id) = id?;
    let (dir, meta) = find(&state, &id).await?;
    let file = tradeloom_runs::chart::CHART_FILE;
    if meta.status == RunStatus::Running {
        return Err(written_at_stop(&meta.run_id, file, ""));
    }
    match tokio::fs::read(dir.join(file)).await {
        Ok(bytes) => Ok((
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(no_artifact(&meta.run_id, file)),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "run_folder_unreadable",
            format!("{file}: {e}"),
        )),
    }
}

/// A page of a run's journal.
#[derive(Debug, Serialize, ToSchema)]
pub struct JournalPage {
    pub run_id: String,
    /// The journal's lines, each a JSON object as written.
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<Value>,
    /// Lines in the journal (so far, for a running run).
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
    pub next_offset: Option<u64>,
    /// `false` while the run is running (the journal still grows).
    pub complete: bool,
}

/// A page of a run's `journal.jsonl` (every engine event and the run's own lifecycle entries,
/// in order).
#[utoipa::path(
    get, path = "/runs/{id}/journal", tag = "runs", operation_id = "get_engine_run_journal",
    params(("id" = String, Path, description = "The run's id"), RowsQuery),
    responses(
        (status = 200, description = "One page of journal entries, in journal order", body = JournalPage),
        (status = 400, description = "A bad `limit` or `offset`", body = ErrorBody),
        (status = 404, description = "No such run, or no journal.jsonl", body = ErrorBody),
    )
)]
pub async fn journal(
    State(state): State<AppState>,
    id: Result<UrlPath<String>, PathRejection>,
    query: Result<Query<RowsQuery>, QueryRejection>,
) -> Result<Json<JournalPage>, ApiError> {
    let UrlPath(id) = id?;
    let Query(q) = query?;
    let limit = rows_limit(q.limit, 200)?;
    let offset = q.offset.unwrap_or(0);
    let (dir, meta) = find(&state, &id).await?;
    let complete = meta.status != RunStatus::Running;
    let path = dir.join("journal.jsonl");
    let run_id = meta.run_id.clone();
    let page = tokio::task::spawn_blocking(move || -> Result<(Vec<Value>, u64), ApiError> {
        use std::io::BufRead;
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(no_artifact(&run_id, "journal.jsonl"));
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "run_folder_unreadable",
                    format!("journal.jsonl: {e}"),
                ));
            }
        };
        let mut entries = Vec::new();
        let mut total = 0u64;
        for line in std::io::BufReader::new(file).split(b'\n') {
            let Ok(line) = line else { break };
            // A growing journal's last line may be partial: it does not parse and is left out.
            let in_page = total >= offset && (entries.len() as u64) < limit;
            if in_page {
                match serde_json::from_slice::<Value>(&line) {
                    Ok(v) => entries.push(v),
                    Err(_) => continue,
                }
            }
            total += 1;
        }
        Ok((entries, total))
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("journal task: {e}"),
        )
    })??;
    let (entries, total) = page;
    let next = offset.saturating_add(entries.len() as u64);
    Ok(Json(JournalPage {
        run_id: meta.run_id,
        entries,
        total,
        limit,
        offset,
        next_offset: (next < total).then_some(next),
        complete,
    }))
}

#[cfg(test)]
mod client_error_tests {
    use super::client_error;

    #[test]
    fn a_runs_error_shows_no_server_folder() {
        let folders = vec![
            "/srv/tl/config/sub/".to_string(),
            "/srv/tl/config/".to_string(),
            "/srv/tl/data/".to_string(),
        ];
        let e = client_error(
            Some(
                "/srv/tl/config/specs/../data/x.csv:1000: open: `abc` is not a decimal number"
                    .into(),
            ),
            &folders,
        );
        assert_eq!(
            e.as_deref(),
            Some("specs/../data/x.csv:1000: open: `abc` is not a decimal number")
        );
        let e = client_error(
            Some("cannot write /srv/tl/data/runs/r1/fills.csv: disk full".into()),
            &folders,
        );
        assert_eq!(
            e.as_deref(),
            Some("cannot write runs/r1/fills.csv: disk full")
        );
        let e = client_error(Some("/etc/elsewhere/x.csv: gone".into()), &folders);
        assert_eq!(
            e.as_deref(),
            Some("/etc/elsewhere/x.csv: gone"),
            "a path the user gave stays"
        );
        assert_eq!(client_error(None, &folders), None);
    }
}
