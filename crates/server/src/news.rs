//! `GET /news?symbol=&as_of=&q=&limit=&job_id=`: the news corpus of a simulation job, as its
//! models' `search_news` tool sees it — never an item published after `as_of`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tradeloom_agents::{config_from_value, search_config_news, session_clock};
use tradeloom_store::Job;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// Query of `GET /news`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NewsQuery {
    /// Nothing published after this is returned: a date `YYYY-MM-DD` (the job's session time
    /// that day — 14:30 UTC, or 21:00 UTC for a job trading at the close — so the answer is
    /// what its models could see) or an RFC 3339 time (`2025-01-03T12:00:00Z`). Required.
    pub as_of: Option<String>,
    /// Only items about this symbol.
    pub symbol: Option<String>,
    /// Search terms (whitespace or commas); items matching more terms come first, then newer
    /// ones. Empty: the newest items.
    pub q: Option<String>,
    /// Items, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// The job whose corpus to search (default: the newest job with a news corpus).
    pub job_id: Option<String>,
}

/// One news item.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewsEntry {
    /// Publication time, RFC 3339 UTC.
    pub timestamp: String,
    pub symbols: Vec<String>,
    pub headline: String,
    pub body: String,
}

/// Answer of `GET /news`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewsResponse {
    /// The job whose corpus was searched.
    pub job_id: String,
    /// The cut-off applied, RFC 3339 UTC.
    pub as_of: String,
    pub items: Vec<NewsEntry>,
}

fn bad_query(param: &str, message: String) -> ApiError {
    ApiError::bad_request("invalid_query", message).with_details(json!({"param": param}))
}

/// The newest job whose config has a news corpus, or `job_id`'s.
async fn news_job(state: &AppState, job_id: Option<&str>) -> Result<Job, ApiError> {
    let store = state.simulator.store();
    if let Some(id) = job_id {
        return store.job(id).await.map_err(|e| ApiError::for_job(e, id));
    }
    // Newest first; a page is plenty: the corpus is the question, not the job.
    for job in store.list_jobs(200, 0).await? {
        if job.config.get("news").is_some() {
            return Ok(job);
        }
    }
    Err(ApiError::not_found(
        "no_news_corpus",
        "no simulation job has a news corpus yet; run one whose universe has news.jsonl (or \
         that names `news`), or give `job_id`",
    ))
}

/// News items published up to `as_of`, from the corpus simulations trade on.
#[utoipa::path(
    get, path = "/news", tag = "simulate", operation_id = "search_news",
    params(NewsQuery),
    responses(
        (status = 200, description = "Items published at or before `as_of`, best matches first", body = NewsResponse),
        (status = 400, description = "`as_of` missing or not a date/time, or a bad `limit` (`invalid_query`, `details.param`)", body = ErrorBody),
        (status = 404, description = "No such job (`job_not_found`), the job has no news corpus, or no job has one (`no_news_corpus`)", body = ErrorBody),
    )
)]
pub async fn news(
    State(state): State<AppState>,
    query: Result<Query<NewsQuery>, QueryRejection>,
) -> Result<Json<NewsResponse>, ApiError> {
    let Query(q) = query?;
    let limit = ApiError::limit_param("limit", q.limit, 20, 100)?;
    let as_of_text = q.as_of.as_deref().map(str::trim).unwrap_or_default();
    if as_of_text.is_empty() {
        return Err(bad_query(
            "as_of",
            "`as_of` is required: a date YYYY-MM-DD or an RFC 3339 time; nothing published after it is returned".into(),
        ));
    }
    let parsed: Result<Cutoff, ()> = if let Ok(date) = as_of_text.parse::<NaiveDate>() {
        Ok(Cutoff::Session(date))
    } else if let Ok(t) = DateTime::parse_from_rfc3339(as_of_text) {
        Ok(Cutoff::At(t.with_timezone(&Utc)))
    } else {
        Err(())
    };
    let cutoff = parsed.map_err(|()| {
        bad_query(
            "as_of",
            format!(
                "as_of `{as_of_text}` is neither a date YYYY-MM-DD nor an RFC 3339 time (2025-01-03T12:00:00Z)"
            ),
        )
    })?;
    let job = news_job(&state, q.job_id.as_deref()).await?;
    let base = state.simulator.options().base_dir.clone();
    let config = config_from_value(&job.config, &base)?;
    let as_of = match cutoff {
        Cutoff::At(t) => t,
        Cutoff::Session(date) => session_clock(date, config.config.reference_price),
    };
    let query = q.q.unwrap_or_default();
    let symbol = q
        .symbol
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let job_id = job.id.clone();
    let found = tokio::task::spawn_blocking(move || {
        search_config_news(&config, &query, symbol.as_deref(), limit, as_of)
    })
    .await
    .map_err(|e| corpus_error(&job_id, e.to_string()))?
    .map_err(|e| corpus_error(&job_id, e.to_string()))?;
    let Some(hits) = found else {
        return Err(ApiError::not_found(
            "no_news_corpus",
            format!("job {} has no news corpus", job.id),
        )
        .with_details(json!({"job_id": job.id})));
    };
    let items = hits
        .into_iter()
        .map(|h| NewsEntry {
            timestamp: h.timestamp,
            symbols: h.symbols,
            headline: h.headline,
            body: h.body,
        })
        .collect();
    Ok(Json(NewsResponse {
        job_id: job.id,
        as_of: as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        items,
    }))
}

/// 500 for a corpus that cannot be read (deleted or damaged since the job ran).
fn corpus_error(job_id: &str, message: String) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "news_unreadable",
        format!("the news corpus of job {job_id}: {message}"),
    )
}

/// `as_of` as given.
enum Cutoff {
    /// A date: that day's session time.
    Session(NaiveDate),
    At(DateTime<Utc>),
}
