//! server: the tradeloom REST API (axum) — simulation jobs (`/simulate/*`), results and the
//! leaderboard (`/results*`), workflow definitions (`/workflows*`), `/health`, and an OpenAPI 3
//! document (`/openapi.json`) with a docs page (`/docs`). Handlers only translate HTTP to the agents and store crates; every
//! error is JSON `{error, message, details}` and every response carries `x-request-id`.

mod error;
mod health;
mod results;
mod simulate;
mod workflows;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::http::{HeaderName, StatusCode};
use axum::routing::{get, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tradeloom_agents::Simulator;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub use error::{ApiError, ErrorBody};
pub use results::{LeaderboardResponse, initial_value, leaderboard_of};

/// Shared state of the handlers.
#[derive(Clone, Debug)]
pub struct AppState {
    pub simulator: Arc<Simulator>,
    http: reqwest::Client,
    started: Instant,
}

impl AppState {
    pub fn new(simulator: Arc<Simulator>) -> Self {
        // reqwest is built without a default TLS crypto provider; health probes need one.
        tradeloom_llm::install_crypto_provider();
        Self {
            simulator,
            http: reqwest::Client::new(),
            started: Instant::now(),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tradeloom API",
        description = "Simulation jobs of LLM trading agents, their results and the leaderboard."
    ),
    paths(
        simulate::trigger,
        simulate::status,
        simulate::current,
        results::results,
        results::leaderboard,
        health::health,
    ),
    components(schemas(
        ErrorBody,
        simulate::TriggerRequest,
        simulate::TriggerResponse,
        simulate::JobStatusResponse,
        simulate::Progress,
        simulate::ModelDayDetail,
        results::ResultsResponse,
        results::ResultItem,
        results::LeaderboardResponse,
        results::Standing,
        health::HealthResponse,
        health::ComponentHealth,
        health::ProviderHealth,
    ))
)]
struct ApiDoc;

/// The OpenAPI 3 document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The API's routes with request ids and tracing.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/simulate/trigger", post(simulate::trigger))
        .route("/simulate/status/{job_id}", get(simulate::status))
        .route("/simulate/current", get(simulate::current))
        .route("/results", get(results::results))
        .route("/results/leaderboard", get(results::leaderboard))
        .route("/health", get(health::health))
        .route("/workflows", post(workflows::create).get(workflows::list))
        .route(
            "/workflows/{id}",
            get(workflows::get_one)
                .put(workflows::update)
                .delete(workflows::delete),
        )
        .route(
            "/workflows/{id}/versions/{version}",
            get(workflows::get_version),
        )
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi()))
        .fallback(not_found)
        .with_state(state)
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route {uri}; see /docs for the API"),
    )
}

/// Serves the API on `listener` until the process ends (or `shutdown` resolves).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
