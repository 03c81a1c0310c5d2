//! A runtime over a throw-away store, and helpers to define, run and inspect workflows.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tempfile::TempDir;
use tradeloom_flow::{FlowLimits, compile_with, from_json_value};
use tradeloom_orchestrator::{RunView, Runtime, RuntimeConfig};
use tradeloom_queue::InMemoryQueue;
use tradeloom_store::{
    EventFilter, NewWorkflowVersion, NodeStatus, RunEvent, RunStatus, ScratchDatabase, Store,
    open_store,
};

pub const PG_ENV: &str = "TRADELOOM_TEST_POSTGRES_URL";

pub struct Env {
    pub runtime: Arc<Runtime>,
    pub store: Arc<dyn Store>,
    _dir: TempDir,
}

impl Env {
    /// Stores `definition` (JSON) as a workflow; returns its id.
    pub async fn define(&self, definition: Value) -> String {
        let def = from_json_value(&definition).unwrap();
        let compiled = compile_with(&def, &TEST_LIMITS).unwrap();
        let v = self
            .store
            .create_workflow(&NewWorkflowVersion {
                name: def.name.clone(),
                definition: def.to_json_value().to_string(),
                ir: compiled.ir.canonical_json(),
            })
            .await
            .unwrap();
        v.workflow_id
    }

    pub async fn start(&self, workflow_id: &str, inputs: Value) -> String {
        let inputs: Map<String, Value> = match inputs {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        self.runtime
            .start_run(workflow_id, None, &inputs)
            .await
            .unwrap()
            .id
    }

    /// Waits until the run is in `status` (or terminal), failing after 20 s.
    pub async fn wait_status(&self, run_id: &str, status: RunStatus) -> RunView {
        for _ in 0..400 {
            let v = self.runtime.view(run_id).await.unwrap();
            if v.status == status || v.status.is_terminal() {
                assert_eq!(
                    v.status, status,
                    "run ended as {:?}: {:?}",
                    v.status, v.error
                );
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {run_id} never reached {status}");
    }

    pub async fn events(&self, run_id: &str) -> Vec<RunEvent> {
        self.store
            .events(EventFilter::Run(run_id), 0, 10_000)
            .await
            .unwrap()
    }

    pub async fn output(&self, view: &RunView, node: &str) -> Value {
        let hash = view
            .nodes
            .iter()
            .find(|n| n.id == node)
            .and_then(|n| n.output.clone())
            .unwrap_or_else(|| panic!("node {node} has no output"));
        let blob = self.store.blob(&hash).await.unwrap();
        serde_json::from_str(&blob.body).unwrap()
    }
}

/// Stores `definition` as a workflow (compiled with the default limits) and starts a run of it
/// without inputs; the run's id.
pub async fn start_definition(
    store: &Arc<dyn Store>,
    runtime: &Runtime,
    definition: &Value,
) -> String {
    let def = from_json_value(definition).unwrap();
    let compiled = tradeloom_flow::compile(&def).unwrap();
    let workflow = store
        .create_workflow(&NewWorkflowVersion {
            name: def.name.clone(),
            definition: def.to_json_value().to_string(),
            ir: compiled.ir.canonical_json(),
        })
        .await
        .unwrap()
        .workflow_id;
    runtime
        .start_run(&workflow, None, &Map::new())
        .await
        .unwrap()
        .id
}

/// Waits for run `run_id` to end (any terminal status), failing after 30 s.
pub async fn until_terminal(runtime: &Runtime, run_id: &str) -> RunView {
    for _ in 0..1200 {
        let v = runtime.view(run_id).await.unwrap();
        if v.status.is_terminal() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("run {run_id} never finished");
}

/// Node id → status.
pub fn statuses(view: &RunView) -> BTreeMap<String, NodeStatus> {
    view.nodes
        .iter()
        .map(|n| (n.id.clone(), n.status))
        .collect()
}

/// Limits wide enough for the 1,000-node workflows of the scale tests (the defaults refuse a
/// chain deeper than 200 and a node with more than 64 needs).
pub const TEST_LIMITS: FlowLimits = FlowLimits {
    max_nodes: 4_000,
    max_depth: 4_000,
    max_needs: 2_000,
    ..FlowLimits::DEFAULT
};

pub fn config(allow_loopback: bool) -> RuntimeConfig {
    let mut c = RuntimeConfig::new(std::env::temp_dir());
    c.workers_per_pool = 4;
    c.flow_limits = TEST_LIMITS;
    if allow_loopback {
        c.ssrf.allow_hosts.push("127.0.0.1".into());
    }
    c
}

async fn runtime_on(location: &str, dir: TempDir) -> Env {
    let store = open_store(location).await.unwrap();
    let queue = Arc::new(InMemoryQueue::new());
    let runtime = Runtime::new(store.clone(), queue, config(true), None).unwrap();
    runtime.start().await.unwrap();
    Env {
        runtime,
        store,
        _dir: dir,
    }
}

pub async fn run_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = TempDir::new().unwrap();
    let location = dir.path().join("tradeloom.db").display().to_string();
    let env = runtime_on(&location, dir).await;
    let runtime = env.runtime.clone();
    body(env).await;
    runtime.shutdown().await;
}

/// A database of its own on the PostgreSQL of [`PG_ENV`]; `None` (with a note) when the variable
/// is not set; a panic when it is set and PostgreSQL is unusable (never a silent pass).
pub async fn postgres_scratch() -> Option<ScratchDatabase> {
    let Ok(base) = std::env::var(PG_ENV) else {
        eprintln!("note: {PG_ENV} is not set; skipping the PostgreSQL variant");
        return None;
    };
    let scratch = ScratchDatabase::create(&base, "tl_orch")
        .await
        .unwrap_or_else(|e| panic!("{PG_ENV}={base} is set but PostgreSQL is unusable: {e}"));
    Some(scratch)
}

pub async fn run_postgres<F, Fut>(body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(scratch) = postgres_scratch().await else {
        return;
    };
    let env = runtime_on(scratch.url(), TempDir::new().unwrap()).await;
    let runtime = env.runtime.clone();
    let result = tokio::spawn(body(env)).await;
    runtime.shutdown().await;
    scratch.drop_database().await.unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Runs each named `async fn(Env)` once per back end.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    $crate::harness::run_sqlite(super::$name).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    $crate::harness::run_postgres(super::$name).await
                }
            }
        )*
    };
}

/// A loopback HTTP server whose `/fail/{n}` answers 500 to its first `n` requests, `/slow` sleeps 2 s, `/ok` echoes; it records every request.
#[derive(Clone, Default)]
pub struct Sink {
    pub requests: Arc<Mutex<Vec<(String, String, Value)>>>,
}

impl Sink {
    pub async fn serve(&self) -> String {
        use axum::extract::{Path, State};
        use axum::http::{HeaderMap, StatusCode};
        use axum::routing::post;
        async fn record(sink: &Sink, path: &str, headers: &HeaderMap, body: &str) -> usize {
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = serde_json::from_str(body).unwrap_or(Value::Null);
            let mut r = sink.requests.lock().unwrap();
            r.push((path.to_string(), key.clone(), body));
            r.iter().filter(|(p, _, _)| p == path).count()
        }
        let app = axum::Router::new()
            .route(
                "/fail/{n}",
                post(
                    |State(s): State<Sink>, Path(n): Path<usize>, h: HeaderMap, body: String| async move {
                        let seen = record(&s, &format!("/fail/{n}"), &h, &body).await;
                        if seen <= n {
                            (StatusCode::INTERNAL_SERVER_ERROR, "boom".to_string())
                        } else {
                            (StatusCode::OK, json!({"ok": true, "seen": seen}).to_string())
                        }
                    },
                ),
            )
            .route(
                "/slow",
                post(|State(s): State<Sink>, h: HeaderMap, body: String| async move {
                    record(&s, "/slow", &h, &body).await;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    "late"
                }),
            )
            .route(
                "/ok",
                post(|State(s): State<Sink>, h: HeaderMap, body: String| async move {
                    record(&s, "/ok", &h, &body).await;
                    json!({"received": serde_json::from_str::<Value>(&body).unwrap_or(Value::Null)}).to_string()
                }),
            )
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    pub fn count(&self, path: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, _)| p == path)
            .count()
    }
}
