//! A server over a throw-away SQLite store, served on 127.0.0.1 (port 0) over real HTTP, or
//! driven in process with `oneshot`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;
use tradeloom_agents::{Simulator, SimulatorOptions};
use tradeloom_server::AppState;
use tradeloom_store::{NewApiKey, Role, Store, open_store};

pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: TempDir,
}

impl Server {
    /// The server's data dir (run folders go to `runs/` under it).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The state of a fresh server on a temp dir (its store, data and base dir under it).
pub async fn state() -> (AppState, Arc<dyn Store>, TempDir) {
    let dir = TempDir::new().unwrap();
    let location = dir.path().join("t.db").display().to_string();
    let store = open_store(&location).await.unwrap();
    let simulator = Simulator::new(
        Arc::clone(&store),
        SimulatorOptions {
            data_dir: dir.path().join("data"),
            max_concurrent_jobs: 1,
            base_dir: dir.path().to_path_buf(),
            outbound: tradeloom_net::Outbound::strict(),
        },
    );
    (AppState::new(simulator), store, dir)
}

/// Serves the state `configure` makes of a fresh one on 127.0.0.1:0.
pub async fn serve(configure: impl FnOnce(AppState) -> AppState) -> Server {
    let (state, store, dir) = state().await;
    let state = configure(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(tradeloom_server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Server {
        base: format!("http://{addr}"),
        addr,
        store,
        stop: Some(stop),
        _dir: dir,
    }
}

/// A new key `name` with `role` in `store`; returns its secret.
pub async fn key(store: &dyn Store, name: &str, role: Role) -> String {
    let (new, secret) = NewApiKey::generate(name, role).unwrap();
    store.create_api_key(&new).await.unwrap();
    secret
}

/// Status, headers and body text of a response.
pub async fn read(r: reqwest::Response) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

/// `request` through the router in process: status, content type and body.
pub async fn oneshot(state: AppState, request: Request<Body>) -> (StatusCode, String, String) {
    let response = tradeloom_server::app(state).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Asserts that `body` is the JSON error shape with code `error`; returns it.
pub fn json_error(status: StatusCode, content_type: &str, body: &str, error: &str) -> Value {
    assert!(
        content_type.starts_with("application/json"),
        "{status}: content type {content_type:?}, body {body:?}"
    );
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["error"], error, "{status}: {v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(v["details"].is_object(), "{v}");
    v
}
