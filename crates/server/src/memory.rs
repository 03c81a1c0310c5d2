//! `GET /simulate/{job_id}/memory?model=`: what the job's models remember — per completed day
//! its decisions, the change in value and its reflection's lesson, as the next sessions were
//! given them (the memory of TradingAgents; off unless a model's config has `memory`).

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// Query of `GET /simulate/{job_id}/memory`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MemoryQuery {
    /// Only this model of the job (its `name`); every model when absent.
    pub model: Option<String>,
}

/// What a job's models remember.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryResponse {
    pub job_id: String,
    /// Each model's `memory` settings (`lessons`, `max_tokens`, `reflect`), `null` for a model
    /// whose memory is off.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// One entry per completed day of a model with memory, by model then date: `model`, `date`,
    /// `decisions` (its trades), `portfolio_value` and `change` (exact decimal strings),
    /// `lesson`, and `reflection_error` / `reflection_usage` of its reflection call.
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<Value>,
}

/// The lessons and decisions a job's models carry from day to day.
#[utoipa::path(
    get, path = "/simulate/{job_id}/memory", tag = "simulate", operation_id = "simulation_memory",
    params(("job_id" = String, Path, description = "The job id"), MemoryQuery),
    responses(
        (status = 200, description = "Each model's memory settings and the entries of its completed days", body = MemoryResponse),
        (status = 400, description = "An unknown query parameter (`invalid_query`)", body = ErrorBody),
        (status = 404, description = "No such job (`job_not_found`), or the job has no such model (`model_not_found`; `details.models`)", body = ErrorBody),
    )
)]
pub async fn memory(
    State(state): State<AppState>,
    job_id: Result<UrlPath<String>, PathRejection>,
    query: Result<Query<MemoryQuery>, QueryRejection>,
) -> Result<Json<MemoryResponse>, ApiError> {
    let UrlPath(job_id) = job_id?;
    let Query(q) = query?;
    let store = state.simulator.store();
    let job = store
        .job(&job_id)
        .await
        .map_err(|e| ApiError::for_job(e, &job_id))?;
    let models: Vec<&Value> = job
        .config
        .get("models")
        .and_then(Value::as_array)
        .map(|list| list.iter().collect())
        .unwrap_or_default();
    let name_of = |m: &Value| m.get("name").and_then(Value::as_str).map(str::to_string);
    let model = q.model.filter(|m| !m.trim().is_empty());
    if let Some(model) = &model
        && !models.iter().any(|m| name_of(m).as_deref() == Some(model))
    {
        let names: Vec<String> = models.iter().filter_map(|m| name_of(m)).collect();
        return Err(ApiError::not_found(
            "model_not_found",
            format!("job {} has no model `{model}`", job.id),
        )
        .with_details(json!({"job_id": job.id, "model": model, "models": names})));
    }
    let mut settings = serde_json::Map::new();
    for m in &models {
        let Some(name) = name_of(m) else { continue };
        if model.as_ref().is_none_or(|wanted| *wanted == name) {
            settings.insert(name, m.get("memory").cloned().unwrap_or(Value::Null));
        }
    }
    let entries = store
        .model_day_memories(&job.id, model.as_deref())
        .await?
        .into_iter()
        .map(|day| {
            let mut entry = json!({"model": day.model});
            if let (Some(out), Value::Object(fields)) = (entry.as_object_mut(), day.memory) {
                out.extend(fields);
            }
            entry
        })
        .collect();
    Ok(Json(MemoryResponse {
        job_id: job.id,
        settings: Value::Object(settings),
        entries,
    }))
}
