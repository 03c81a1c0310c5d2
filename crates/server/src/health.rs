//! `GET /health`: the store and the LLM endpoints of the active job (details only for
//! authenticated callers; no URL shows credentials).

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Serialize;
use serde_json::{Value, json};
use tradeloom_core::redact_userinfo;
use tradeloom_net::GuardedClient;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Principal;

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
    /// Whether the data dir takes writes (a probe file written and synced); a full disk or a
    /// read-only folder makes the server `unavailable`.
    pub disk: ComponentHealth,
    /// The distinct endpoints of the current job's models (`GET {base_url}/models`).
    pub providers: Vec<ProviderHealth>,
    pub running_jobs: Vec<String>,
    pub uptime_seconds: u64,
}

/// Store round trip, a disk write probe and provider reachability; 503 when the store is down
/// or the data dir takes no writes. Callers without a valid key (auth required) get
/// `{"status"}` only, from the store alone (nothing is probed for them); the details, with
/// credentials removed from every URL, are for authenticated callers (every caller when auth
/// is off).
#[utoipa::path(
    get, path = "/health", tag = "health", operation_id = "health",
    responses(
        (status = 200, description = "The details for authenticated callers; `{\"status\"}` only for others", body = HealthResponse),
        (status = 503, description = "The store is unreachable or the data dir takes no writes", body = HealthResponse),
    )
)]
pub async fn health(State(state): State<AppState>, principal: Option<Principal>) -> Response {
    let store = state.simulator.store();
    let started = Instant::now();
    let store_result = store.health().await;
    let code = if store_result.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if principal.is_none() {
        let status = if store_result.is_ok() {
            "ok"
        } else {
            "unavailable"
        };
        return (code, Json(json!({ "status": status }))).into_response();
    }
    let store_health = ComponentHealth {
        ok: store_result.is_ok(),
        latency_ms: started.elapsed().as_millis() as u64,
        error: store_result.err().map(|e| redact_userinfo(&e.to_string())),
    };
    let disk_health = disk(state.simulator.options().data_dir.clone()).await;
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
    // Through the guard, like the jobs' own requests: a stored job cannot make the server
    // probe an address the operator did not allow.
    let http = state
        .simulator
        .options()
        .outbound
        .http
        .with_timeout(Duration::from_secs(3));
    for url in urls {
        let mut provider = probe(&http, url).await;
        // Shown to viewers: never the credentials a base_url may carry.
        provider.base_url = redact_userinfo(&provider.base_url);
        provider.error = provider.error.map(|e| redact_userinfo(&e));
        providers.push(provider);
    }
    let status = if !store_health.ok || !disk_health.ok {
        "unavailable"
    } else if providers.iter().any(|p| !p.ok) {
        "degraded"
    } else {
        "ok"
    };
    let code = if store_health.ok && disk_health.ok {
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
            disk: disk_health,
            providers,
            running_jobs: state.simulator.running_jobs().await,
            uptime_seconds: state.started.elapsed().as_secs(),
        }),
    )
        .into_response()
}

/// The disk probe, off the async threads (it syncs a file). The error names the OS error, not
/// the server's paths.
async fn disk(data_dir: std::path::PathBuf) -> ComponentHealth {
    let started = Instant::now();
    let result =
        tokio::task::spawn_blocking(move || tradeloom_ops::health::disk_writable(&data_dir)).await;
    let error = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("the data dir does not take writes: {e}")),
        Err(e) => Some(format!("the disk probe did not finish: {e}")),
    };
    ComponentHealth {
        ok: error.is_none(),
        latency_ms: started.elapsed().as_millis() as u64,
        error,
    }
}

async fn probe(http: &GuardedClient, base_url: String) -> ProviderHealth {
    let url = format!("{}/models", base_url.trim_end_matches('/'));
    let started = Instant::now();
    let result = http.send(Method::GET, &url, HeaderMap::new(), None).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let (ok, error) = match result {
        // Any HTTP answer means the endpoint is up; auth errors are the provider's to report.
        Ok(r) if r.status.is_server_error() => (false, Some(format!("HTTP {}", r.status))),
        Ok(_) => (true, None),
        Err(e) if e.is_refusal() => (
            false,
            Some(format!("refused by the SSRF guard: {}", e.kind)),
        ),
        Err(e) => (false, Some(e.kind.to_string())),
    };
    ProviderHealth {
        base_url,
        ok,
        latency_ms,
        error,
    }
}
