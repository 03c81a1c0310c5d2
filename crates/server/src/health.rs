//! `GET /health`: the store and the LLM endpoints of the active job.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentHealth {
    pub ok: bool,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderHealth {
    pub base_url: String,
    pub ok: bool,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`, or `degraded` when a provider is unreachable, or `unavailable` without the store.
    pub status: String,
    pub version: String,
    pub backend: String,
    pub store: ComponentHealth,
    /// The distinct endpoints of the current job's models (`GET {base_url}/models`).
    pub providers: Vec<ProviderHealth>,
    pub running_jobs: Vec<String>,
    pub uptime_seconds: u64,
}

/// Store round trip and provider reachability; 503 when the store is down.
#[utoipa::path(
    get, path = "/health", tag = "health", operation_id = "health",
    responses(
        (status = 200, description = "The store answers (`status` is `ok` or `degraded`)", body = HealthResponse),
        (status = 503, description = "The store is unreachable", body = HealthResponse),
    )
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    let store = state.simulator.store();
    let started = Instant::now();
    let store_result = store.health().await;
    let store_health = ComponentHealth {
        ok: store_result.is_ok(),
        latency_ms: started.elapsed().as_millis() as u64,
        error: store_result.err().map(|e| e.to_string()),
    };
    let mut urls: Vec<String> = Vec::new();
    if store_health.ok
        && let Ok(Some(job)) = store.current_job().await
    {
        for m in job
            .config
            .get("models")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(url) = m.get("base_url").and_then(Value::as_str)
                && !urls.iter().any(|u| u == url)
            {
                urls.push(url.to_string());
            }
        }
    }
    let mut providers = Vec::with_capacity(urls.len());
    for url in urls {
        providers.push(probe(&state.http, url).await);
    }
    let status = if !store_health.ok {
        "unavailable"
    } else if providers.iter().any(|p| !p.ok) {
        "degraded"
    } else {
        "ok"
    };
    let code = if store_health.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(HealthResponse {
            status: status.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            backend: format!("{:?}", store.backend()).to_lowercase(),
            store: store_health,
            providers,
            running_jobs: state.simulator.running_jobs().await,
            uptime_seconds: state.started.elapsed().as_secs(),
        }),
    )
}

async fn probe(http: &reqwest::Client, base_url: String) -> ProviderHealth {
    let url = format!("{}/models", base_url.trim_end_matches('/'));
    let started = Instant::now();
    let result = http.get(&url).timeout(Duration::from_secs(3)).send().await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let (ok, error) = match result {
        // Any HTTP answer means the endpoint is up; auth errors are the provider's to report.
        Ok(r) if r.status().is_server_error() => (false, Some(format!("HTTP {}", r.status()))),
        Ok(_) => (true, None),
        Err(e) => (false, Some(e.to_string())),
    };
    ProviderHealth {
        base_url,
        ok,
        latency_ms,
        error,
    }
}
