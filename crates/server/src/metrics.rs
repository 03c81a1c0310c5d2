//! `GET /metrics`: Prometheus text exposition of the API's HTTP traffic (requests by method,
//! matched route and status; latency histograms), the store's jobs, model-days, workflow runs
//! and workflow nodes by status (counted at scrape time, one `GROUP BY` per table), and uptime.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tradeloom_metrics::{
    CONTENT_TYPE, DURATION_SECONDS_BUCKETS, Histogram, MetricError, Registry, names,
};
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
            [J::Pending, J::Running, J::Completed, J::Partial, J::Failed]
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
    get, path = "/metrics", tag = "health",
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
    registry
        .gauge(
            &names::PROCESS_UPTIME_SECONDS,
            &[],
            state.started.elapsed().as_secs_f64(),
        )
        .map_err(metric_error)?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], registry.render()).into_response())
}
