//! `GET /health/meta`: the latest report of the meta health monitor that `tradeloom serve` runs
//! in-process (`{"rm_meta", "status", "sensors", "checked_at", "details"}`; see
//! `tradeloom_ops::health`). The monitor puts each report into a [`MetaHealthSlot`]; this route
//! only reads it.

use std::sync::{Arc, RwLock};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

use crate::{ApiError, AppState};

/// Where the monitor leaves its latest report (as JSON); `None` until the first check.
pub type MetaHealthSlot = Arc<RwLock<Option<Value>>>;

impl AppState {
    /// Serves `GET /health/meta` from `slot`.
    pub fn with_meta_health(mut self, slot: MetaHealthSlot) -> Self {
        self.meta_health = slot;
        self
    }
}

/// The latest meta health report; 503 before the first check (or without a monitor).
#[utoipa::path(
    get, path = "/health/meta", tag = "health", operation_id = "meta_health",
    responses(
        (status = 200, description = "The latest report: rm_meta, status (GREEN, DEGRADED, CRITICAL, DEAD), the five sensors, checked_at, details", body = Object),
        (status = 503, description = "No health check has run yet", body = crate::ErrorBody),
    )
)]
pub async fn meta(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let latest = state
        .meta_health
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    latest.map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "health_not_checked",
            "no meta health check has run yet in this process; try again after --health-interval",
        )
    })
}
