//! `GET /results` (model-day results, minimal or full, paginated) and
//! `GET /results/leaderboard` (per-model standings of a job).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use tradeloom_core::Money;
use tradeloom_store::{MAX_PAGE, ModelDayKey, Ratio, ResultsFilter, Store, StoreError};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::read_cache::{json_response, to_json};

/// Query of `GET /results`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResultsQuery {
    pub job_id: Option<String>,
    pub model: Option<String>,
    /// `YYYY-MM-DD`.
    #[param(format = Date)]
    pub date: Option<String>,
    /// `minimal` (default) or `full` (adds `positions`, `daily_pnl`, and trades, holdings
    /// detail, reasoning and tool calls).
    #[param(pattern = "^(minimal|full)$")]
    pub detail: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// One completed model-day. Money and quantities are exact decimal strings.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultItem {
    pub job_id: String,
    pub model: String,
    #[schema(value_type = String)]
    pub date: NaiveDate,
    pub cash: String,
    /// Symbol → quantity held at the end of the day.
    pub holdings: BTreeMap<String, String>,
    /// Cash plus every holding at the day's close.
    pub portfolio_value: String,
    /// `detail=full` only: symbol → quantity at the end of the day, and `CASH` → cash (the
    /// shape AI-Trader's clients read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positions: Option<BTreeMap<String, String>>,
    /// `detail=full` only: the day's profit and loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_pnl: Option<DailyPnl>,
    /// `detail=full` only: trades, holdings with prices, reasoning, tool calls, timings.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub full: Option<Value>,
}

/// A model-day's profit and loss against the end of the model's previous completed day (its
/// initial cash on its first day). Exact decimal strings.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyPnl {
    /// Cash plus holdings at the day's close.
    pub portfolio_value: String,
    /// The value the day started from.
    pub previous_value: String,
    /// `portfolio_value - previous_value`.
    pub profit: String,
    /// `profit / previous_value × 100`, rounded half away from zero at 10 decimal places.
    pub return_pct: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResultsResponse {
    pub results: Vec<ResultItem>,
    /// Matches over all pages.
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
    /// The offset of the next page, if there is one.
    pub next_offset: Option<u64>,
}

fn bad_query(param: &str, message: String) -> ApiError {
    ApiError::bad_request("invalid_query", message).with_details(json!({"param": param}))
}

/// Completed model-days with their end-of-day cash, holdings and value.
#[utoipa::path(
    get, path = "/results", tag = "results", operation_id = "list_results",
    params(ResultsQuery),
    responses(
        (status = 200, description = "One page of completed model-days", body = ResultsResponse),
        (status = 400, description = "A bad query parameter (named in `details.param`)", body = ErrorBody),
        (status = 404, description = "Unknown job or model", body = ErrorBody),
    )
)]
pub async fn results(
    State(state): State<AppState>,
    query: Result<Query<ResultsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let full = match q.detail.as_deref() {
        None | Some("minimal") => false,
        Some("full") => true,
        Some(other) => {
            return Err(bad_query(
                "detail",
                format!("unknown detail `{other}`; expected `minimal` or `full`"),
            ));
        }
    };
    let date = match &q.date {
        Some(d) => Some(
            d.parse::<NaiveDate>()
                .map_err(|_| bad_query("date", format!("date `{d}` is not a date YYYY-MM-DD")))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(bad_query(
            "limit",
            format!("limit must be 1 to {MAX_PAGE}, got {limit}"),
        ));
    }
    let offset = q.offset.unwrap_or(0);
    let store = state.simulator.store();
    // Taken before any read: a commit after it makes the kept answer stale, and so unused.
    let version = store.read_version().await?;
    let key = format!(
        "results {:?}",
        (&q.job_id, &q.model, date, full, limit, offset)
    );
    if let Some(body) = state.reads.get(&key, version) {
        return Ok(json_response(body));
    }
    let filter = ResultsFilter {
        job_id: q.job_id.clone(),
        model: q.model.clone(),
        date,
        completed_only: true,
        limit,
        offset,
    };
    // No page answer shows a trade count: not counted.
    let page = store.results_page(&filter, false).await?;
    if page.total == 0 {
        // Nothing matched: say why when a job or model does not exist.
        if let Some(job_id) = &q.job_id {
            store
                .job(job_id)
                .await
                .map_err(|e| ApiError::for_job(e, job_id))?;
        }
        if let Some(model) = &q.model
            && !model_exists(store.as_ref(), q.job_id.as_deref(), model).await?
        {
            return Err(ApiError::not_found(
                "unknown_model",
                match &q.job_id {
                    Some(job) => format!("job {job} has no model `{model}`"),
                    None => format!("no job has a model `{model}`"),
                },
            )
            .with_details(json!({"model": model})));
        }
    }
    let mut results = Vec::with_capacity(page.items.len());
    // Initial values of the jobs on the page, for the first day's PnL of each model.
    let mut initial: BTreeMap<String, Money> = BTreeMap::new();
    for item in page.items {
        let day = &item.model_day;
        let (extra, positions, daily_pnl) = if full {
            let key = day.key();
            let mut positions: BTreeMap<String, String> = item
                .holdings
                .iter()
                .map(|h| (h.symbol.clone(), h.quantity.to_string()))
                .collect();
            if let Some(cash) = day.cash {
                positions.insert("CASH".into(), cash.to_string());
            }
            let previous = match store.previous_completed_model_day(&key).await? {
                Some(prev) => prev.portfolio_value,
                None => Some(match initial.get(&day.job_id) {
                    Some(v) => *v,
                    None => {
                        let job = store.job(&day.job_id).await?;
                        let v = initial_value(&job.config, job.currency);
                        initial.insert(day.job_id.clone(), v);
                        v
                    }
                }),
            };
            (
                Some(full_detail(store.as_ref(), &key, &item).await?),
                Some(positions),
                daily_pnl(day.portfolio_value, previous),
            )
        } else {
            (None, None, None)
        };
        results.push(ResultItem {
            job_id: day.job_id.clone(),
            model: day.model.clone(),
            date: day.date,
            cash: day.cash.map(|c| c.to_string()).unwrap_or_default(),
            holdings: item
                .holdings
                .iter()
                .map(|h| (h.symbol.clone(), h.quantity.to_string()))
                .collect(),
            portfolio_value: day
                .portfolio_value
                .map(|v| v.to_string())
                .unwrap_or_default(),
            positions,
            daily_pnl,
            full: extra,
        });
    }
    let next = page.offset + results.len() as u64;
    let body = to_json(&ResultsResponse {
        results,
        total: page.total,
        limit: page.limit,
        offset: page.offset,
        next_offset: (next < page.total).then_some(next),
    })?;
    state.reads.put(key, version, body.clone());
    Ok(json_response(body))
}

/// The PnL of a day that ended at `value` and started from `previous`; `None` without both.
fn daily_pnl(value: Option<Money>, previous: Option<Money>) -> Option<DailyPnl> {
    let (value, previous) = (value?, previous?);
    let profit = value.checked_sub(previous).ok()?;
    let return_pct = profit
        .raw()
        .checked_mul(100)
        .and_then(|n| Ratio::of(n, previous.raw()))
        .map(|r| r.to_string());
    Some(DailyPnl {
        portfolio_value: value.to_string(),
        previous_value: previous.to_string(),
        profit: profit.to_string(),
        return_pct,
    })
}

/// Whether any model-day (in `job_id`, if given) belongs to `model`, whatever its status.
async fn model_exists(
    store: &dyn Store,
    job_id: Option<&str>,
    model: &str,
) -> Result<bool, StoreError> {
    let page = store
        .results_page(
            &ResultsFilter {
                job_id: job_id.map(str::to_string),
                model: Some(model.to_string()),
                date: None,
                completed_only: false,
                limit: 1,
                offset: 0,
            },
            false,
        )
        .await?;
    Ok(page.total > 0)
}

async fn full_detail(
    store: &dyn Store,
    key: &ModelDayKey,
    item: &tradeloom_store::ModelDayResult,
) -> Result<Value, StoreError> {
    let trades = store.trades(key).await?;
    let reasoning = store.reasoning_logs(key).await?;
    let tool_usage = store.tool_usage(key).await?;
    Ok(json!({
        "status": item.model_day.status,
        "attempts": item.model_day.attempts,
        "started_at": item.model_day.started_at,
        "finished_at": item.model_day.finished_at,
        "duration_ms": item.model_day.duration_ms,
        "steps": item.model_day.steps,
        "tool_calls": item.model_day.tool_calls,
        "tool_errors": item.model_day.tool_errors,
        "holdings": item.holdings,
        "trades": trades,
        "reasoning": reasoning,
        "tool_usage": tool_usage,
    }))
}

/// Query of `GET /results/leaderboard`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LeaderboardQuery {
    /// Default: the newest job.
    pub job_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Standing {
    pub rank: u32,
    pub model: String,
    /// Exact decimal string.
    pub final_value: Option<String>,
    /// `final / initial - 1` as an exact decimal string (`"0.016986"`; rounded half away from
    /// zero at 10 decimal places when longer).
    pub total_return: Option<String>,
    /// Annualized Sharpe ratio of daily returns, rounded to 6 decimal places.
    pub sharpe: Option<f64>,
    /// Largest fall from a running peak, as a positive fraction in an exact decimal string.
    pub max_drawdown: Option<String>,
    pub trades: u64,
    /// Tool calls the model made over the job, failed days included.
    pub tool_calls: u64,
    /// Tool calls that returned an error over the job, failed days included.
    pub tool_errors: u64,
    pub completed_days: u32,
    pub failed_days: u32,
    /// Days the kill switch refused; a trigger after release runs them.
    pub refused_days: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeaderboardResponse {
    pub job_id: String,
    pub status: String,
    pub initial_value: String,
    /// Best final value first; models without a completed day last.
    pub models: Vec<Standing>,
    /// Results that look normal but are not, e.g. a model that never called a tool.
    pub warnings: Vec<String>,
}

/// Per-model standings of a job: final value, total return, Sharpe, max drawdown, trades,
/// tool errors.
#[utoipa::path(
    get, path = "/results/leaderboard", tag = "results", operation_id = "leaderboard",
    params(LeaderboardQuery),
    responses(
        (status = 200, description = "The job's models ranked by final value", body = LeaderboardResponse),
        (status = 404, description = "Unknown job, or no job yet", body = ErrorBody),
    )
)]
pub async fn leaderboard(
    State(state): State<AppState>,
    query: Result<Query<LeaderboardQuery>, QueryRejection>,
) -> Result<Json<LeaderboardResponse>, ApiError> {
    let Query(q) = query?;
    let store = state.simulator.store();
    let job = match &q.job_id {
        Some(id) => store.job(id).await.map_err(|e| ApiError::for_job(e, id))?,
        None => store
            .list_jobs(1, 0)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::not_found("job_not_found", "there is no job yet"))?,
    };
    Ok(Json(leaderboard_of(store.as_ref(), &job).await?))
}

/// The leaderboard of `job`, ranked by final value.
pub async fn leaderboard_of(
    store: &dyn Store,
    job: &tradeloom_store::Job,
) -> Result<LeaderboardResponse, ApiError> {
    let initial = initial_value(&job.config, job.currency);
    let mut entries = store.leaderboard(&job.id, initial).await?;
    let warnings = tradeloom_agents::tool_use_warnings(&entries);
    entries.sort_by(|a, b| match (a.final_value, b.final_value) {
        (Some(x), Some(y)) => y.raw().cmp(&x.raw()).then_with(|| a.model.cmp(&b.model)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.model.cmp(&b.model),
    });
    Ok(LeaderboardResponse {
        job_id: job.id.clone(),
        status: job.status.to_string(),
        initial_value: initial.to_string(),
        models: entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| Standing {
                rank: i as u32 + 1,
                model: e.model,
                final_value: e.final_value.map(|v| v.to_string()),
                total_return: e.total_return.map(|r| r.to_string()),
                sharpe: e.sharpe,
                max_drawdown: e.max_drawdown.map(|r| r.to_string()),
                trades: e.trades,
                tool_calls: e.tool_calls,
                tool_errors: e.tool_errors,
                completed_days: e.completed_days,
                failed_days: e.failed_days,
                refused_days: e.refused_days,
            })
            .collect(),
        warnings,
    })
}

pub use tradeloom_agents::initial_value;

/// An exact decimal fraction (`"0.016986"`) as a percentage with two decimals (`1.70 %`),
/// rounded half away from zero in decimal, never through a float.
fn pct(fraction: Option<&str>) -> String {
    let Some(text) = fraction else {
        return "–".to_string();
    };
    match tradeloom_core::Decimal::parse(text) {
        Ok(d) => {
            // raw × 10^-18 → hundredths of a percent: raw × 10^4 × 10^-18.
            let raw = tradeloom_core::fixed::round_raw(
                d.to_money(tradeloom_core::Currency::USD).raw(),
                18,
                4,
            );
            let percent = tradeloom_core::fixed::format_raw(raw * 100, 18, 2);
            format!("{percent} %")
        }
        Err(_) => text.to_string(),
    }
}

impl LeaderboardResponse {
    /// The standings as a terminal table, values in `currency`.
    pub fn table(&self, currency: &str) -> String {
        let rows: Vec<Vec<String>> = self
            .models
            .iter()
            .map(|s| {
                vec![
                    s.rank.to_string(),
                    s.model.clone(),
                    s.final_value
                        .clone()
                        .map_or("–".into(), |v| format!("{v} {currency}")),
                    pct(s.total_return.as_deref()),
                    s.sharpe.map_or("–".into(), |v| format!("{v:.2}")),
                    pct(s.max_drawdown.as_deref()),
                    s.trades.to_string(),
                    s.tool_calls.to_string(),
                    s.tool_errors.to_string(),
                    format!(
                        "{}/{}",
                        s.completed_days,
                        s.completed_days + s.failed_days + s.refused_days
                    ),
                ]
            })
            .collect();
        tradeloom_core::table::render(
            &[
                "#",
                "model",
                "final value",
                "return",
                "sharpe",
                "max dd",
                "trades",
                "tool calls",
                "tool errors",
                "days ok",
            ],
            &rows,
        )
    }

    /// The warnings, one `warning: …` line each.
    pub fn warning_lines(&self) -> String {
        self.warnings
            .iter()
            .map(|w| format!("warning: {w}\n"))
            .collect()
    }
}
