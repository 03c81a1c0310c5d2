//! `GET /metrics`: Prometheus text exposition of the API's HTTP traffic (requests by method,
//! matched route and status; latency histograms), the store's jobs, model-days, workflow runs
//! and workflow nodes by status (counted at scrape time, one `GROUP BY` per table), the depth of
//! the workflow queue's pools, rate-limit checks decided locally while the Redis of shared
//! limits was away, this process's LLM calls (`tradeloom_llm::call_metrics`), the
//! data dir's run folders, kill switches and latest health check (the same
//! [`ArtifactCollector`](tradeloom_ops::artifact_metrics::ArtifactCollector) as `tradeloom
//! metrics export`; runs in progress in this process count live), and uptime.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tradeloom_metrics::{
    CONTENT_TYPE, DURATION_SECONDS_BUCKETS, Histogram, MetricError, Registry, names,
};
use tradeloom_ops::artifact_metrics::{ArtifactCollector, Selection};
use tradeloom_orchestrator::plan::TIMER_POOL;
use tradeloom_orchestrator::runtime::WORKER_POOLS;
use tradeloom_orchestrator::worker::SIGNAL_POOL;
use tradeloom_store::{JobStatus, ModelDayStatus, NodeStatus, RunStatus};

use crate::{ApiError, AppState};

/// The route label of requests no route matched: one series, however many paths are probed.
const UNMATCHED: &str = "unmatched";

/// Requests and latencies since the server started.
#[derive(Debug, Default)]
pub(crate) struct HttpMetrics {
    inner: Mutex<HttpCounts>,
}

#[derive(Debug, Default)]
struct HttpCounts {
    /// `(method, route, status)` → requests.
    requests: BTreeMap<(String, String, u16), u64>,
    /// `(method, route)` → latency in seconds.
    durations: BTreeMap<(String, String), Histogram>,
}

impl HttpMetrics {
    fn record(&self, method: &str, route: &str, status: StatusCode, seconds: f64) {
        // A poisoned lock only means another request panicked mid-update of plain counters.
        let mut counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *counts
            .requests
            .entry((method.to_string(), route.to_string(), status.as_u16()))
            .or_insert(0) += 1;
        counts
            .durations
            .entry((method.to_string(), route.to_string()))
            .or_insert_with(|| {
                // The bounds are a constant known to be finite and increasing.
                Histogram::new(DURATION_SECONDS_BUCKETS).unwrap_or_else(|_| unreachable!())
            })
            .observe(seconds);
    }

    fn render_into(&self, registry: &mut Registry) -> Result<(), MetricError> {
        let counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for ((method, route, status), n) in &counts.requests {
            let status = status.to_string();
            registry.counter(
                &names::HTTP_REQUESTS_TOTAL,
                &[("method", method), ("route", route), ("status", &status)],
                *n as f64,
            )?;
        }
        for ((method, route), h) in &counts.durations {
            registry.histogram(
                &names::HTTP_REQUEST_DURATION_SECONDS,
                &[("method", method), ("route", route)],
                h,
            )?;
        }
        Ok(())
    }
}

/// Middleware (a `Router::layer`, so it runs after routing) counting every response by the
/// route template that matched (`/workflow-runs/{id}`), never the raw path.
pub(crate) async fn record(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_string();
    let response = next.run(request).await;
    state.http_metrics.record(
        &method,
        &route,
        response.status(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Every status a table can hold, so a status with no rows is exported as 0 rather than missing.
fn known_statuses() -> [(&'static names::MetricName, Vec<&'static str>); 4] {
    use JobStatus as J;
    use ModelDayStatus as M;
    use NodeStatus as N;
    use RunStatus as R;
    [
        (
            &names::JOBS,
            [
                J::Pending,
                J::Running,
                J::Completed,
                J::Partial,
                J::Failed,
                J::Interrupted,
            ]
            .map(J::as_str)
            .to_vec(),
        ),
        (
            &names::MODEL_DAYS,
            [M::Pending, M::Running, M::Completed, M::Failed]
                .map(M::as_str)
                .to_vec(),
        ),
        (
            &names::WORKFLOW_RUNS,
            [
                R::Pending,
                R::Running,
                R::Waiting,
                R::Completed,
                R::Failed,
                R::Cancelled,
            ]
            .map(R::as_str)
            .to_vec(),
        ),
        (
            &names::WORKFLOW_NODES,
            [
                N::Pending,
                N::Queued,
                N::Running,
                N::Waiting,
                N::Completed,
                N::Failed,
                N::Skipped,
            ]
            .map(N::as_str)
            .to_vec(),
        ),
    ]
}

fn metric_error(e: MetricError) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "metrics_error",
        format!("could not render /metrics: {e}"),
    )
}

/// The exposition text.
#[utoipa::path(
    get, path = "/metrics", tag = "health", operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain"),
        (status = 503, description = "The store is unreachable", body = crate::ErrorBody),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let counts = state.simulator.store().status_counts().await?;
    let mut registry = Registry::new();
    state
        .http_metrics
        .render_into(&mut registry)
        .map_err(metric_error)?;
    let [jobs, model_days, runs, nodes] = known_statuses();
    for ((metric, known), rows) in [
        (jobs, &counts.jobs),
        (model_days, &counts.model_days),
        (runs, &counts.workflow_runs),
        (nodes, &counts.workflow_nodes),
    ] {
        for status in known {
            registry
                .gauge(metric, &[("status", status)], 0.0)
                .map_err(metric_error)?;
        }
        for (status, n) in rows {
            registry
                .gauge(metric, &[("status", status)], *n as f64)
                .map_err(metric_error)?;
        }
    }
    if let Some(runtime) = &state.runtime {
        let queue = runtime.coordinator().queue();
        for pool in WORKER_POOLS.iter().chain([&SIGNAL_POOL, &TIMER_POOL]) {
            let stats = queue.stats(pool).await.map_err(|e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "queue_unavailable",
                    format!("cannot read the depth of queue pool `{pool}`: {e}"),
                )
            })?;
            let labels = [("pool", *pool)];
            let depth = (stats.ready + stats.delayed) as f64;
            registry
                .gauge(&names::QUEUE_DEPTH, &labels, depth)
                .and_then(|()| registry.gauge(&names::QUEUE_LEASED, &labels, stats.leased as f64))
                .and_then(|()| {
                    registry.gauge(&names::QUEUE_DEAD_LETTERS, &labels, stats.dead as f64)
                })
                .map_err(metric_error)?;
        }
    }
    if state.limiter().is_shared() {
        registry
            .counter(
                &names::RATE_LIMIT_LOCAL_FALLBACKS_TOTAL,
                &[],
                state.limiter().local_fallbacks() as f64,
            )
            .map_err(metric_error)?;
    }
    tradeloom_llm::call_metrics::render_into(&mut registry).map_err(metric_error)?;
    let artifacts = state.artifacts.clone();
    // File reads: off the async workers.
    let mut registry = tokio::task::spawn_blocking(move || {
        artifacts
            .render_into(&mut registry, Selection::All)
            .map(|()| registry)
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics_error",
            format!("reading the data dir's artifacts failed: {e}"),
        )
    })?
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics_error",
            format!("cannot read the data dir's artifacts for /metrics: {e}"),
        )
    })?;
    registry
        .gauge(
            &names::PROCESS_UPTIME_SECONDS,
            &[],
            state.started.elapsed().as_secs_f64(),
        )
        .map_err(metric_error)?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], registry.render()).into_response())
}

/// `tradeloom metrics serve`: only `GET /metrics`, the artifacts of `collector`'s data dir
/// re-read at every scrape (changed files only); every other path answers 404 JSON.
pub fn artifacts_app(collector: Arc<ArtifactCollector>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(artifacts_metrics).fallback(|| async {
                ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "/metrics answers GET only",
                )
            }),
        )
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                format!("no route {uri}; metrics are at GET /metrics"),
            )
        })
        .with_state(collector)
}

/// Serves [`artifacts_app`] on `listener` until `shutdown` resolves.
pub async fn serve_artifacts(
    listener: tokio::net::TcpListener,
    collector: Arc<ArtifactCollector>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, artifacts_app(collector))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn artifacts_metrics(
    State(collector): State<Arc<ArtifactCollector>>,
) -> Result<Response, ApiError> {
    let text = tokio::task::spawn_blocking(move || collector.render(Selection::All))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics_error",
                format!("reading the artifacts failed: {e}"),
            )
        })?
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics_error",
                format!("cannot read the artifacts: {e}"),
            )
        })?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}
