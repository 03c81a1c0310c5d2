//! A `simulate` node's `config_path` is confined like the API's: without a config dir it is
//! disabled, and no error a viewer can read (node error, run error, events) echoes a file.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use tradeloom_agents::{Simulator, SimulatorOptions};
use tradeloom_orchestrator::{RunView, Runtime, RuntimeConfig};
use tradeloom_queue::InMemoryQueue;
use tradeloom_store::{EventFilter, Store, open_store};

use crate::harness::start_definition;

pub struct Setup {
    pub runtime: Arc<Runtime>,
    pub store: Arc<dyn Store>,
    pub dir: TempDir,
}

pub async fn setup(configure: impl FnOnce(&mut RuntimeConfig)) -> Setup {
    let dir = TempDir::new().unwrap();
    let store = open_store(&dir.path().join("t.db").display().to_string())
        .await
        .unwrap();
    let simulator = Simulator::new(
        store.clone(),
        SimulatorOptions {
            data_dir: dir.path().join("data"),
            max_concurrent_jobs: 1,
            base_dir: dir.path().to_path_buf(),
            outbound: tradeloom_net::Outbound::strict(),
        },
    );
    let mut config = RuntimeConfig::new(dir.path().join("data"));
    config.base_dir = dir.path().to_path_buf();
    config.workers_per_pool = 2;
    configure(&mut config);
    let runtime = Runtime::new(
        store.clone(),
        Arc::new(InMemoryQueue::new()),
        config,
        Some(simulator),
    )
    .unwrap();
    runtime.start().await.unwrap();
    Setup {
        runtime,
        store,
        dir,
    }
}

/// Runs a one-node workflow whose `simulate` node reads `path`; returns the finished run's view
/// and its events, as JSON text (what viewers can read).
pub async fn run_simulate_node(s: &Setup, path: &str) -> (RunView, String) {
    // Workflow names are unique in a store: one per call.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let definition = json!({"name": format!("sim-{n}"), "nodes": [
        {"id": "sim", "type": "simulate", "config": {"config_path": path}}
    ]});
    let run = start_definition(&s.store, &s.runtime, &definition).await;
    for _ in 0..400 {
        let view = s.runtime.view(&run).await.unwrap();
        if view.status.is_terminal() {
            let events = s
                .store
                .events(EventFilter::Run(&run), 0, 10_000)
                .await
                .unwrap();
            let text = format!(
                "{}\n{}",
                serde_json::to_string(&view).unwrap(),
                serde_json::to_string(&events).unwrap()
            );
            return (view, text);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run} did not finish");
}

pub fn node_error(view: &RunView) -> String {
    let v: Value = serde_json::to_value(view).unwrap();
    v["nodes"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulate_node_cannot_read_files_without_a_config_dir() {
    let s = setup(|_| {}).await;
    let secret = s.dir.path().join("secret.yaml");
    std::fs::write(&secret, "SECRET_LINE=hunter2\n").unwrap();
    for path in ["/etc/passwd", secret.to_str().unwrap(), "secret.yaml"] {
        let (view, text) = run_simulate_node(&s, path).await;
        assert_eq!(view.status.to_string(), "failed", "{text}");
        let error = node_error(&view);
        assert!(error.contains("config_path is disabled"), "{path}: {error}");
        for leak in ["root:", "hunter2", "SECRET_LINE"] {
            assert!(!text.contains(leak), "{path} leaks {leak}: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulate_node_reads_only_inside_the_config_dir_and_quotes_no_file() {
    let configs = TempDir::new().unwrap();
    std::fs::write(
        configs.path().join("bad.yaml"),
        "models:\n  - SECRET_TOKEN=abc123\n",
    )
    .unwrap();
    let dir = tradeloom_agents::ConfigDir::new(configs.path()).unwrap();
    let s = setup(|c| c.config_dir = Some(dir)).await;
    let outside = s.dir.path().join("secret.yaml");
    std::fs::write(&outside, "SECRET_LINE=hunter2\n").unwrap();
    std::os::unix::fs::symlink(&outside, configs.path().join("link.yaml")).unwrap();

    for (path, expected) in [
        ("/etc/passwd", vec!["is outside the config folder"]),
        ("../../../../etc/passwd", vec!["may not contain `..`"]),
        ("link.yaml", vec!["outside the config folder"]),
        (
            "bad.yaml",
            vec!["bad.yaml:2:", "models[0]: invalid type: string, expected"],
        ),
    ] {
        let (view, text) = run_simulate_node(&s, path).await;
        assert_eq!(view.status.to_string(), "failed", "{text}");
        let error = node_error(&view);
        for part in expected {
            assert!(error.contains(part), "{path}: {error}");
        }
        for leak in ["root:", "hunter2", "SECRET", "abc123"] {
            assert!(!text.contains(leak), "{path} leaks {leak}: {text}");
        }
    }
}
