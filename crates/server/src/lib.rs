//! server: the tradeloom REST API (axum) — simulation jobs (`/simulate/*`), results and the
//! leaderboard (`/results*`), workflow definitions (`/workflows*`), agents and skills
//! (`/agents*`, `/skills*`), `/health`, and an OpenAPI 3
//! document (`/openapi.json`, generated from the routes themselves) with a docs page (`/docs`). Handlers only translate HTTP to the agents and store crates; every
//! error is JSON `{error, message, details}` and every response carries `x-request-id`.
//! API keys with roles (`/keys`) and rate limits guard every route but `/health` and the docs
//! (see the `auth` and `rate_limit` modules). With the `redis` feature the rate limits can be
//! shared by every server on one Redis and `/ws` connections woken across processes
//! ([`RateLimiter::redis`], [`RedisEventBus`]).

mod agents;
mod approval_links;
mod auth;
pub mod bench;
mod browser;
pub mod cluster;
pub mod dashboard;
mod definitions;
mod engine_runs;
mod error;
#[cfg(feature = "redis")]
mod event_bus;
mod explain;
mod health;
mod keys;
mod kill_switch;
pub mod launch;
pub mod logging;
mod memory;
mod meta_health;
mod metrics;
mod news;
mod openapi;
mod ops_views;
mod paper_orders;
mod rate_limit;
mod read_cache;
mod request_trace;
mod results;
mod runtime_processes;
mod simulate;
mod skills;
mod sweeps;
mod workflow_runs;
mod workflows;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::http::{HeaderName, StatusCode};
use axum::middleware;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tradeloom_agents::Simulator;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub use auth::{AuthMode, Principal, accepts_query_key, required_role};
pub use browser::is_origin;
pub use error::{ApiError, ErrorBody};
#[cfg(feature = "redis")]
pub use event_bus::{EventBusError, RedisEventBus};
pub use meta_health::MetaHealthSlot;
pub use metrics::{artifacts_app, serve_artifacts};
#[cfg(feature = "redis")]
pub use rate_limit::SharedLimitsError;
pub use rate_limit::{RateLimiter, RateLimits, RunTier};
pub use results::{LeaderboardResponse, initial_value, leaderboard_of};
pub use ws::{EventHub, EventStreamOptions};

/// Shared state of the handlers.
#[derive(Clone, Debug)]
pub struct AppState {
    pub simulator: Arc<Simulator>,
    started: Instant,
    /// Set with [`AppState::with_auth`].
    auth: Arc<auth::Auth>,
    /// Set with [`AppState::with_rate_limits`].
    limiter: Arc<RateLimiter>,
    /// The workflow runtime, set with [`AppState::with_runtime`]; without it the workflow-run
    /// routes answer 503.
    pub runtime: Option<Arc<tradeloom_orchestrator::Runtime>>,
    /// Wakes `GET /ws` connections; set with [`AppState::with_event_hub`].
    event_hub: EventHub,
    /// Timing of `GET /ws`; set with [`AppState::with_event_stream`].
    event_stream: EventStreamOptions,
    /// HTTP requests and latencies for `GET /metrics`.
    http_metrics: Arc<metrics::HttpMetrics>,
    /// Run folders, kill switches and health files of the data dir for `GET /metrics`.
    artifacts: Arc<tradeloom_ops::artifact_metrics::ArtifactCollector>,
    /// The latest meta health report for `GET /health/meta`; set with
    /// [`AppState::with_meta_health`].
    meta_health: MetaHealthSlot,
    /// The folder `config_path` may name files in; set with [`AppState::with_config_dir`].
    config_dir: Option<Arc<tradeloom_agents::ConfigDir>>,
    /// Supervised child processes (`/runtime/processes`); set with
    /// [`AppState::with_process_supervisor`], without it those routes answer 503.
    process_supervisor: Option<Arc<tradeloom_ops::supervisor::ProcessSupervisor>>,
    /// Host and Origin checks; set with [`AppState::with_allowed_hosts`] and
    /// [`AppState::with_allowed_origins`], and the bound address by [`serve`].
    browser: Arc<browser::BrowserPolicy>,
    /// Serialized answers of `GET /results` and `GET /simulate/status/{id}` under the store's
    /// read version.
    reads: Arc<read_cache::ResponseCache>,
    /// Engine runs started by `POST /runs` when there is no workflow runtime (with one, its
    /// registry is used: see [`AppState::engine_runs`]).
    engine_runs: Arc<tradeloom_orchestrator::EngineRuns>,
    /// The process registry `GET /cluster` lists; set with [`AppState::with_cluster`].
    cluster: Option<cluster::ClusterView>,
}

impl AppState {
    /// State without auth and without rate limits; `tradeloom serve` adds both.
    pub fn new(simulator: Arc<Simulator>) -> Self {
        // reqwest is built without a default TLS crypto provider; health probes need one.
        tradeloom_llm::install_crypto_provider();
        let artifacts = Arc::new(tradeloom_ops::artifact_metrics::ArtifactCollector::new(
            simulator.options().data_dir.clone(),
        ));
        let event_hub = EventHub::new();
        let engine_runs = own_engine_runs(&simulator, &event_hub);
        Self {
            simulator,
            started: Instant::now(),
            auth: Arc::new(auth::Auth::new(AuthMode::Off)),
            limiter: Arc::new(RateLimiter::new(RateLimits::unlimited())),
            runtime: None,
            event_hub,
            event_stream: EventStreamOptions::default(),
            http_metrics: Arc::default(),
            artifacts,
            meta_health: MetaHealthSlot::default(),
            config_dir: None,
            process_supervisor: None,
            browser: Arc::default(),
            reads: Arc::default(),
            engine_runs,
            cluster: None,
        }
    }

    /// Lists the processes of `view`'s registry at `GET /cluster`.
    pub fn with_cluster(mut self, view: cluster::ClusterView) -> Self {
        self.cluster = Some(view);
        self
    }

    /// The engine runs (backtests and paper runs) of this process: the workflow runtime's
    /// registry when there is one (so `POST /runs/{id}/stop` reaches runs of `paper` nodes),
    /// else the server's own.
    pub fn engine_runs(&self) -> &Arc<tradeloom_orchestrator::EngineRuns> {
        match &self.runtime {
            Some(rt) => rt.engine_runs(),
            None => &self.engine_runs,
        }
    }

    /// Wakes `GET /ws` connections through `hub` (share it with writers of events in this
    /// process). The workflow runtime's notifier and the simulator are listened to anyway.
    pub fn with_event_hub(mut self, hub: EventHub) -> Self {
        self.engine_runs = own_engine_runs(&self.simulator, &hub);
        self.event_hub = hub;
        self
    }

    /// Poll, ping and page settings of `GET /ws`.
    pub fn with_event_stream(mut self, options: EventStreamOptions) -> Self {
        self.event_stream = options;
        self
    }

    /// The hub that wakes `GET /ws` connections: call [`EventHub::notify`] after committing
    /// events.
    pub fn event_hub(&self) -> &EventHub {
        &self.event_hub
    }

    /// Serves workflow runs and approvals from `runtime`.
    pub fn with_runtime(mut self, runtime: Arc<tradeloom_orchestrator::Runtime>) -> Self {
        self.runtime = Some(runtime);
        self
    }
}

/// The server's own registry of engine runs: paper runs' events go to the simulator's store and
/// wake `/ws` through `hub`; WebSocket feeds pass the simulator's outbound policy.
fn own_engine_runs(
    simulator: &Simulator,
    hub: &EventHub,
) -> Arc<tradeloom_orchestrator::EngineRuns> {
    Arc::new(tradeloom_orchestrator::EngineRuns::new(
        simulator.options().data_dir.clone(),
        Some(Arc::clone(simulator.store())),
        hub.notifier(),
        simulator.options().outbound.http.policy().clone(),
    ))
}

/// Every route of the API, each registered with its documented handler: the router and the
/// paths of `/openapi.json` both come from this one list, so a route cannot be served without
/// being documented or documented without being served. Add routes here only, with
/// `routes!(handler, ...)` (handlers of one path together), never with a bare `.route()`.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(simulate::trigger))
        .routes(routes!(simulate::status))
        .routes(routes!(simulate::current))
        .routes(routes!(simulate::pause))
        .routes(routes!(simulate::resume))
        .routes(routes!(simulate::cancel))
        .routes(routes!(explain::explain))
        .routes(routes!(memory::memory))
        .routes(routes!(news::news))
        .routes(routes!(results::results))
        .routes(routes!(results::leaderboard))
        .routes(routes!(health::health))
        .routes(routes!(meta_health::meta))
        .routes(routes!(metrics::metrics))
        .routes(routes!(workflows::create, workflows::list))
        .routes(routes!(
            workflows::get_one,
            workflows::update,
            workflows::delete
        ))
        .routes(routes!(workflows::get_version))
        .routes(routes!(agents::create, agents::list))
        .routes(routes!(agents::get_one, agents::update, agents::delete))
        .routes(routes!(agents::get_version))
        .routes(routes!(skills::create, skills::list))
        .routes(routes!(skills::get_one, skills::update, skills::delete))
        .routes(routes!(skills::get_version))
        .routes(routes!(workflow_runs::start))
        .routes(routes!(workflow_runs::list))
        .routes(routes!(workflow_runs::get_one))
        .routes(routes!(workflow_runs::cancel))
        .routes(routes!(workflow_runs::pause))
        .routes(routes!(workflow_runs::resume))
        .routes(routes!(workflow_runs::patch))
        .routes(routes!(workflow_runs::events))
        .routes(routes!(workflow_runs::approvals))
        .routes(routes!(workflow_runs::approval))
        .routes(routes!(workflow_runs::decide))
        .routes(routes!(approval_links::page, approval_links::decide))
        .routes(routes!(workflow_runs::blob))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::revoke))
        .routes(routes!(kill_switch::status))
        .routes(routes!(kill_switch::engage))
        .routes(routes!(kill_switch::release))
        .routes(routes!(runtime_processes::start, runtime_processes::list))
        .routes(routes!(
            runtime_processes::get_one,
            runtime_processes::remove
        ))
        .routes(routes!(runtime_processes::stop))
        .routes(routes!(runtime_processes::restart))
        .routes(routes!(ws::stream))
        .routes(routes!(engine_runs::list, engine_runs::start))
        .routes(routes!(engine_runs::get_one))
        .routes(routes!(engine_runs::equity))
        .routes(routes!(engine_runs::fills))
        .routes(routes!(engine_runs::orders))
        .routes(routes!(engine_runs::trades))
        .routes(routes!(engine_runs::stop))
        .routes(routes!(paper_orders::place))
        .routes(routes!(engine_runs::chart))
        .routes(routes!(engine_runs::journal))
        .routes(routes!(ops_views::me))
        .routes(routes!(ops_views::jobs))
        .routes(routes!(ops_views::health_history))
        .routes(routes!(ops_views::drills))
        .routes(routes!(ops_views::reconciliations))
        .routes(routes!(sweeps::start))
        .routes(routes!(sweeps::get_one))
        .routes(routes!(cluster::cluster))
}

/// The OpenAPI 3.1 document of the API (what `GET /openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::complete(api_routes().into_openapi())
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl AppState {
    /// Lets `config_path` (of `POST /simulate/trigger`) name files in `dir`; without it
    /// `config_path` is refused.
    pub fn with_config_dir(mut self, dir: Option<tradeloom_agents::ConfigDir>) -> Self {
        self.config_dir = dir.map(Arc::new);
        self
    }

    /// Serves `/runtime/processes` from `supervisor` (start it with
    /// [`tradeloom_ops::supervisor::ProcessSupervisor::start`]).
    pub fn with_process_supervisor(
        mut self,
        supervisor: Arc<tradeloom_ops::supervisor::ProcessSupervisor>,
    ) -> Self {
        self.process_supervisor = Some(supervisor);
        self
    }
}

/// The API's routes with request ids and tracing.
pub fn app(state: AppState) -> Router {
    let (routes, doc) = api_routes().split_for_parts();
    routes
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi::complete(doc)))
        // The dashboard's static files (not API routes: not in /openapi.json).
        .merge(dashboard::routes())
        .fallback(not_found)
        // Inside the guard and the metrics: rewrites the router's own non-JSON errors (405,
        // extractor rejections) into the JSON error shape.
        .layer(middleware::from_fn(error::json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), auth::guard))
        // Outside the guard, so refused requests (401, 403, 429) are counted too.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::record,
        ))
        // Outside the guard and the rate limits: a request a browser was tricked into
        // sending is refused before it costs anything.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            browser::check,
        ))
        .with_state(state)
        // Inside SetRequestIdLayer: the span sees the request id it assigned.
        .layer(middleware::from_fn(request_trace::request_span))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    let shown = if approval_links::redacted_path(uri.path()) == uri.path() {
        uri.to_string()
    } else {
        // Something under /approvals/links/: a token is never echoed.
        approval_links::redacted_path(uri.path()).into_owned()
    };
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route {shown}; see /docs for the API"),
    )
}

/// Serves the API on `listener` until the process ends (or `shutdown` resolves).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The Host check accepts the names of the address actually bound.
    let state = state.with_bound_addr(listener.local_addr()?);
    // With the peer address, for per-client rate limits when auth is off.
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
}
