//! `GET /simulate/{job_id}/explain?model=&date=`: one model-day as one document — how it ended,
//! the model's reasoning (its reflection's messages after the session's last step, when its
//! memory is on), its tool calls, its trades and what it remembers of the day, from what the
//! store holds of it.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tradeloom_store::{ModelDayKey, StoreError};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// Query of `GET /simulate/{job_id}/explain`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    /// A model of the job (its `name`).
    pub model: Option<String>,
    /// A trading date of the job, `YYYY-MM-DD`.
    #[param(format = Date)]
    pub date: Option<String>,
}

/// One model-day explained. Money, prices and quantities are exact decimal strings.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExplainResponse {
    pub job_id: String,
    pub model: String,
    #[schema(value_type = String)]
    pub date: NaiveDate,
    /// The model-day as `GET /simulate/status/{job_id}` lists it: status, error, attempts,
    /// timings, steps, tool call counts, cash and portfolio value.
    #[schema(value_type = Object)]
    pub model_day: Value,
    /// The session's messages in order (system, user, assistant with its tool calls, tool
    /// results).
    #[schema(value_type = Vec<Object>)]
    pub reasoning: Value,
    /// Every tool call: name, arguments, result or error, latency.
    #[schema(value_type = Vec<Object>)]
    pub tool_calls: Value,
    /// The trading actions it took (buy, sell, hold), with price, fee and cash after.
    #[schema(value_type = Vec<Object>)]
    pub trades: Value,
    /// End-of-day holdings (quantity, price, value).
    #[schema(value_type = Vec<Object>)]
    pub holdings: Value,
    /// What the model remembers of the day when its memory is on (decisions, change in value,
    /// the reflection's lesson; see `GET /simulate/{job_id}/memory`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub memory: Option<Value>,
}

fn bad_query(param: &str, message: String) -> ApiError {
    ApiError::bad_request("invalid_query", message).with_details(json!({"param": param}))
}

/// A model-day's reasoning, tool calls and trades as one document.
#[utoipa::path(
    get, path = "/simulate/{job_id}/explain", tag = "simulate", operation_id = "explain_model_day",
    params(("job_id" = String, Path, description = "The job id"), ExplainQuery),
    responses(
        (status = 200, description = "The model-day, its reasoning, tool calls, trades and holdings", body = ExplainResponse),
        (status = 400, description = "`model` or `date` missing, or `date` not YYYY-MM-DD (`invalid_query`, `details.param`)", body = ErrorBody),
        (status = 404, description = "No such job (`job_not_found`), or the job has no such model or date (`model_day_not_found`; `details.job_id`, `details.model`, `details.date`, `details.models`)", body = ErrorBody),
    )
)]
pub async fn explain(
    State(state): State<AppState>,
    job_id: Result<UrlPath<String>, PathRejection>,
    query: Result<Query<ExplainQuery>, QueryRejection>,
) -> Result<Json<ExplainResponse>, ApiError> {
    let UrlPath(job_id) = job_id?;
    let Query(q) = query?;
    let model = q
        .model
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| bad_query("model", "`model` is required: a model of the job".into()))?;
    let date_text = q
        .date
        .ok_or_else(|| bad_query("date", "`date` is required: YYYY-MM-DD".into()))?;
    let date: NaiveDate = date_text.parse().map_err(|_| {
        bad_query(
            "date",
            format!("date `{date_text}` is not a date YYYY-MM-DD"),
        )
    })?;
    let store = state.simulator.store();
    let job = store
        .job(&job_id)
        .await
        .map_err(|e| ApiError::for_job(e, &job_id))?;
    let key = ModelDayKey::new(job.id.clone(), model.clone(), date);
    let day = match store.model_day(&key).await {
        Ok(day) => day,
        Err(StoreError::NotFound { .. }) => {
            let models: Vec<String> = job
                .config
                .get("models")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(|m| m.get("name").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let what = if models.contains(&model) {
                format!("job {} has no trading date {date}", job.id)
            } else {
                format!("job {} has no model `{model}`", job.id)
            };
            return Err(
                ApiError::not_found("model_day_not_found", what).with_details(json!({
                    "job_id": job.id,
                    "model": model,
                    "date": date,
                    "models": models,
                })),
            );
        }
        Err(e) => return Err(e.into()),
    };
    let reasoning = store.reasoning_logs(&key).await?;
    let tool_usage = store.tool_usage(&key).await?;
    let trades = store.trades(&key).await?;
    let holdings = store.holdings(&key).await?;
    let memory = store
        .model_day_memories(&job.id, Some(&model))
        .await?
        .into_iter()
        .find(|day| day.date == date)
        .map(|day| day.memory);
    Ok(Json(ExplainResponse {
        job_id: job.id,
        model,
        date,
        model_day: to_value(&day),
        reasoning: to_value(&reasoning),
        tool_calls: to_value(&tool_usage),
        trades: to_value(&trades),
        holdings: to_value(&holdings),
        memory,
    }))
}

fn to_value<T: Serialize>(v: &T) -> Value {
    // Plain data of the store (strings, numbers, exact decimals as strings): serialises.
    serde_json::to_value(v).unwrap_or(Value::Null)
}
