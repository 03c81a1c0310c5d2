//! `GET /cluster` (viewer): the processes of the cluster as they last registered — each
//! `serve`, `coordinator` and `worker` with its roles, pools, in-flight count and heartbeat.
//! Embedded (no Redis) the list holds this process alone; with `--redis-url` every process on
//! the same Redis and key prefix. A process that stops gracefully removes its entry; one that
//! was killed drops out when its entry expires ([`tradeloom_queue::cluster::ENTRY_TTL`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tradeloom_queue::Registry;
use tradeloom_queue::cluster::{ENTRY_TTL, HEARTBEAT_EVERY};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// The registry this process writes to and its own id in it.
#[derive(Clone, Debug)]
pub struct ClusterView {
    pub registry: Arc<dyn Registry>,
    pub self_id: String,
}

/// `{"mode", "self", "heartbeat_every_s", "entry_ttl_s", "processes": [{"id", "roles",
/// "pools", "concurrency", "host", "pid", "addr", "started_at", "heartbeat_at", "in_flight",
/// "state", "version"}]}`.
#[utoipa::path(
    get, path = "/cluster", tag = "cluster", operation_id = "cluster",
    responses(
        (status = 200, description = "The processes of the cluster (`mode`: `embedded` or `redis`)", body = Object),
        (status = 503, description = "The registry (Redis) did not answer", body = ErrorBody),
    )
)]
pub async fn cluster(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let Some(view) = state.cluster.as_ref() else {
        return Ok(Json(json!({
            "mode": "embedded",
            "self": null,
            "heartbeat_every_s": HEARTBEAT_EVERY.as_secs(),
            "entry_ttl_s": ENTRY_TTL.as_secs(),
            "processes": [],
        })));
    };
    let processes = view.registry.list().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "registry_unavailable",
            format!("the process registry did not answer: {e}"),
        )
    })?;
    Ok(Json(json!({
        "mode": view.registry.kind(),
        "self": view.self_id,
        "heartbeat_every_s": HEARTBEAT_EVERY.as_secs(),
        "entry_ttl_s": ENTRY_TTL.as_secs(),
        "processes": processes,
    })))
}
