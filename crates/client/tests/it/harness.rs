//! A server with a workflow runtime over a temporary SQLite store, on 127.0.0.1 (port 0).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use tradeloom_agents::{Simulator, SimulatorOptions};
use tradeloom_client::Client;
use tradeloom_orchestrator::{Runtime, RuntimeConfig};
use tradeloom_queue::InMemoryQueue;
use tradeloom_server::{AppState, AuthMode};
use tradeloom_store::{NewApiKey, Role, Store, open_store};

pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub store: Arc<dyn Store>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Server {
    /// The server's data dir.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    /// A client of this server with `key`.
    pub fn client(&self, key: Option<&str>) -> Client {
        Client::builder(&self.base)
            .api_key(key.map(str::to_string))
            .timeout(Duration::from_secs(20))
            .no_proxy()
            .build()
            .unwrap()
    }

    /// A new key `name` with `role`; its secret.
    pub async fn key(&self, name: &str, role: Role) -> String {
        let (new, secret) = NewApiKey::generate(name, role).unwrap();
        self.store.create_api_key(&new).await.unwrap();
        secret
    }
}

/// Serves the API with `auth` on 127.0.0.1:0.
pub async fn serve(auth: AuthMode) -> Server {
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
    let runtime = Runtime::new(
        Arc::clone(&store),
        Arc::new(InMemoryQueue::new()),
        RuntimeConfig::new(dir.path().join("data")),
        None,
    )
    .unwrap();
    runtime.start().await.unwrap();
    let state = AppState::new(simulator)
        .with_auth(auth)
        .with_runtime(runtime);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(tradeloom_server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Server {
        base,
        store,
        stop: Some(stop),
        _dir: dir,
    }
}

/// A workflow named `name` of one `hitl` node `review` that waits for an approval.
pub fn gate(name: &str) -> Value {
    json!({"name": name, "nodes": [{"id": "review", "type": "hitl", "config": {
        "prompt": "Trade?", "expires_after": "1h", "default": "reject"}}]})
}
