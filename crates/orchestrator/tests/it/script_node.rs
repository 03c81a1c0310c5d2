//! The `script` node: a Python skill from the config folder runs sandboxed, its rendered input
//! in and its return value out; a hostile skill fails its node with the limit named, and the
//! run goes on to fail cleanly.

use std::sync::Arc;

use serde_json::{Value, json};
use tempfile::TempDir;
use tradeloom_orchestrator::{RunView, Runtime, RuntimeConfig};
use tradeloom_queue::InMemoryQueue;
use tradeloom_store::{Store, open_store};

use crate::harness::{start_definition, until_terminal};

const MOMENTUM_PY: &str = include_str!("../../../../examples/skills/momentum.py");

struct Setup {
    _dir: TempDir,
    store: Arc<dyn Store>,
    runtime: Arc<Runtime>,
}

async fn setup() -> Setup {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("skills")).unwrap();
    std::fs::write(config.join("skills/momentum.py"), MOMENTUM_PY).unwrap();
    std::fs::write(
        config.join("skills/spin.py"),
        "def main(input):\n    while True:\n        pass\n",
    )
    .unwrap();
    std::fs::write(
        config.join("skills/exfiltrate.py"),
        "import urllib.request\n\ndef main(input):\n    return urllib.request.urlopen(input['url']).read().decode()\n",
    )
    .unwrap();
    let store = open_store(&dir.path().join("t.db").display().to_string())
        .await
        .unwrap();
    let mut rc = RuntimeConfig::new(dir.path().join("data"));
    rc.config_dir = Some(tradeloom_agents::ConfigDir::new(&config).unwrap());
    let runtime = Runtime::new(store.clone(), Arc::new(InMemoryQueue::new()), rc, None).unwrap();
    runtime.start().await.unwrap();
    Setup {
        _dir: dir,
        store,
        runtime,
    }
}

async fn run_workflow(s: &Setup, definition: Value) -> RunView {
    let id = start_definition(&s.store, &s.runtime, &definition).await;
    until_terminal(&s.runtime, &id).await
}

fn node(view: &RunView, id: &str) -> Value {
    let v = serde_json::to_value(view).unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no node {id}: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_node_maps_its_input_to_its_output() {
    let s = setup().await;
    let view = run_workflow(
        &s,
        json!({"name": "skill", "nodes": [
            {"id": "prices", "type": "transform", "config": {"output": {"closes": [100, 101, 102, 103, 104, 110]}}},
            {"id": "score", "type": "script", "needs": ["prices"], "config": {
                "script": "skills/momentum.py",
                "input": {"closes": "{{ prices.closes }}", "lookback": 5},
                "limits": {"memory_mb": 256, "call_timeout_ms": 5000}}},
            {"id": "report", "type": "transform", "needs": ["score"], "config": {"output": {"signal": "{{ score.signal }}"}}}
        ]}),
    )
    .await;
    let v = serde_json::to_value(&view).unwrap();
    assert_eq!(v["status"], "completed", "{v}");
    let hash = view
        .nodes
        .iter()
        .find(|n| n.id == "score")
        .and_then(|n| n.output.clone())
        .unwrap();
    let out: Value = serde_json::from_str(&s.store.blob(&hash).await.unwrap().body).unwrap();
    assert_eq!(out, json!({"signal": "buy", "change": 0.1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_skills_fail_their_node_naming_the_limit() {
    let s = setup().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    for (script, input, expected) in [
        ("skills/spin.py", json!(null), "limits.call_timeout_ms"),
        ("skills/exfiltrate.py", json!({"url": url}), "network"),
        (
            "skills/missing.py",
            json!(null),
            "does not exist in the config folder",
        ),
    ] {
        let view = run_workflow(
            &s,
            json!({"name": format!("hostile-{}", script.replace(['/', '.'], "-")), "nodes": [
                {"id": "x", "type": "script", "config": {"script": script, "input": input,
                 "limits": {"call_timeout_ms": 500}}}
            ]}),
        )
        .await;
        let n = node(&view, "x");
        assert_eq!(n["status"], "failed", "{script}: {n}");
        let error = n["error"].as_str().unwrap();
        assert!(error.contains(expected), "{script}: {error}");
    }
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the listener saw a connection: {other:?}"),
    }
}
