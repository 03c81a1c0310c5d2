//! Workflow nodes that lead to orders honour the kill switch: with the global one (or the
//! workflow run's, `run:<workflow_run_id>`) engaged, a `backtest` node's run places no order,
//! its journal records every refusal with `risk.kill_switch`, and the node output says why.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tempfile::TempDir;
use tradeloom_flow::{compile, from_json_value};
use tradeloom_orchestrator::{RunView, Runtime, RuntimeConfig};
use tradeloom_queue::InMemoryQueue;
use tradeloom_safety::{KillSwitch, Scope};
use tradeloom_store::{NewWorkflowVersion, RunStatus, Store, open_store};

async fn define(store: &Arc<dyn Store>, definition: Value) -> String {
    let def = from_json_value(&definition).unwrap();
    let compiled = compile(&def).unwrap();
    store
        .create_workflow(&NewWorkflowVersion {
            name: def.name.clone(),
            definition: def.to_json_value().to_string(),
            ir: compiled.ir.canonical_json(),
        })
        .await
        .unwrap()
        .workflow_id
}

async fn start(runtime: &Runtime, workflow: &str) -> String {
    runtime
        .start_run(workflow, None, &Map::new())
        .await
        .unwrap()
        .id
}

async fn finished(runtime: &Runtime, run_id: &str) -> RunView {
    for _ in 0..1200 {
        let v = runtime.view(run_id).await.unwrap();
        if v.status.is_terminal() {
            assert_eq!(v.status, RunStatus::Completed, "{:?}", v.error);
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run_id} never finished");
}

async fn output(store: &Arc<dyn Store>, view: &RunView, node: &str) -> Value {
    let hash = view
        .nodes
        .iter()
        .find(|n| n.id == node)
        .and_then(|n| n.output.clone())
        .unwrap();
    serde_json::from_str(&store.blob(&hash).await.unwrap().body).unwrap()
}

fn journal(run_dir: &str) -> Vec<Value> {
    std::fs::read_to_string(std::path::Path::new(run_dir).join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backtest_node_places_no_order_under_the_global_or_the_workflow_run_kill_switch() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let store = open_store(&dir.path().join("t.db").display().to_string())
        .await
        .unwrap();
    let specs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/specs");
    let mut config = RuntimeConfig::new(data.clone());
    config.workers_per_pool = 2;
    config.config_dir = Some(tradeloom_agents::ConfigDir::new(&specs).unwrap());
    let runtime =
        Runtime::new(store.clone(), Arc::new(InMemoryQueue::new()), config, None).unwrap();
    runtime.start().await.unwrap();
    // Relative to the config folder, as workflows name run specs.
    let spec = "goog_sma_cross.yaml";
    let workflow = define(
        &store,
        json!({"name": "bt", "nodes": [
            {"id": "bt", "type": "backtest", "config": {"spec_path": spec}}
        ]}),
    )
    .await;
    let ks = KillSwitch::open(&data).unwrap();
    // Global engaged: every order refused, the node says why.
    ks.engage(&Scope::Global, "workflow drill", "ops", false)
        .unwrap();
    let id = start(&runtime, &workflow).await;
    let view = finished(&runtime, &id).await;
    let out = output(&store, &view, "bt").await;
    assert_eq!(out["kill_switch"]["engaged"], true, "{out}");
    assert_eq!(out["kill_switch"]["scope"], "global");
    assert_eq!(out["kill_switch"]["reason"], "workflow drill");
    let lines = journal(out["run_dir"].as_str().unwrap());
    let submitted = lines
        .iter()
        .filter(|l| l["event"] == "order_submitted")
        .count();
    let refused: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "order_rejected")
        .collect();
    assert!(submitted > 0, "the strategy tried to trade");
    assert_eq!(refused.len(), submitted);
    assert!(refused.iter().all(|r| r["code"] == "risk.kill_switch"));
    assert!(!lines.iter().any(|l| l["event"] == "order_filled"));
    ks.release(&Scope::Global, "drill over", "ops").unwrap();

    // Released: the same workflow trades.
    let id = start(&runtime, &workflow).await;
    let view = finished(&runtime, &id).await;
    let out = output(&store, &view, "bt").await;
    assert_eq!(out["kill_switch"]["engaged"], false);
    let lines = journal(out["run_dir"].as_str().unwrap());
    assert!(lines.iter().any(|l| l["event"] == "order_filled"));

    // The workflow run's own kill switch covers the backtest it starts: engage it while the
    // run waits behind a `wait` node.
    let waiting = define(
        &store,
        json!({"name": "bt-wait", "nodes": [
            {"id": "pause", "type": "wait", "config": {"duration_ms": 1500}},
            {"id": "bt", "type": "backtest", "needs": ["pause"], "config": {"spec_path": spec}}
        ]}),
    )
    .await;
    let id = start(&runtime, &waiting).await;
    ks.engage(
        &Scope::run(&id).unwrap(),
        "stop this workflow",
        "ops",
        false,
    )
    .unwrap();
    let view = finished(&runtime, &id).await;
    let out = output(&store, &view, "bt").await;
    assert_eq!(out["kill_switch"]["scope"], format!("run:{id}"), "{out}");
    let lines = journal(out["run_dir"].as_str().unwrap());
    assert!(!lines.iter().any(|l| l["event"] == "order_filled"));
    assert!(
        lines
            .iter()
            .filter(|l| l["event"] == "order_rejected")
            .all(|r| r["code"] == "risk.kill_switch"
                && r["reason"].as_str().unwrap().contains("stop this workflow"))
    );
    runtime.shutdown().await;
}

/// Issue 12: a `simulate` node under the kill switch does not pass a job of refused days off as
/// completed — its output has the job's real status, the refused count and the state — and the
/// same workflow after release runs those days instead of returning the stale job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulate_node_under_the_kill_switch_reports_refused_days_and_runs_them_after_release() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let store = open_store(&dir.path().join("t.db").display().to_string())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mock = listener.local_addr().unwrap();
    tokio::spawn(tradeloom_mock_llm::serve_mock(listener));
    let sim = tradeloom_agents::Simulator::new(
        store.clone(),
        tradeloom_agents::SimulatorOptions {
            data_dir: data.clone(),
            max_concurrent_jobs: 1,
            base_dir: dir.path().to_path_buf(),
            // Loopback allowed, where the mock listens (as `serve --http-allow 127.0.0.1`).
            outbound: tradeloom_net::Outbound::new(
                tradeloom_net::SsrfPolicy {
                    allow_hosts: vec!["127.0.0.1".into()],
                    ..tradeloom_net::SsrfPolicy::default()
                },
                tradeloom_net::SecretEnv::default(),
            )
            .unwrap(),
        },
    );
    let mut config = RuntimeConfig::new(data.clone());
    config.workers_per_pool = 2;
    let runtime = Runtime::new(
        store.clone(),
        Arc::new(InMemoryQueue::new()),
        config,
        Some(sim),
    )
    .unwrap();
    runtime.start().await.unwrap();
    let universe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/universe");
    let workflow = define(
        &store,
        json!({"name": "sim", "nodes": [
            {"id": "sim", "type": "simulate", "config": {"config": {
                "models": [{"name": "bh", "base_url": format!("http://{mock}/v1"), "model": "buy_and_hold", "max_retries": 0}],
                "universe": {"path": universe.display().to_string()},
                "start_date": "2025-01-02", "end_date": "2025-01-03"
            }}}
        ]}),
    )
    .await;
    let ks = KillSwitch::open(&data).unwrap();
    ks.engage(&Scope::Global, "sim drill", "ops", false)
        .unwrap();
    let id = start(&runtime, &workflow).await;
    let view = finished(&runtime, &id).await;
    let out = output(&store, &view, "sim").await;
    assert_ne!(out["status"], "completed", "{out}");
    assert_eq!(out["progress"]["refused"], 2, "{out}");
    assert_eq!(out["kill_switch"]["engaged"], true, "{out}");
    assert_eq!(out["kill_switch"]["refused_model_days"], 2, "{out}");
    assert!(
        out["kill_switch"]["refused_detail"]
            .as_str()
            .unwrap()
            .contains("sim drill"),
        "{out}"
    );
    ks.release(&Scope::Global, "drill over", "ops").unwrap();
    let id = start(&runtime, &workflow).await;
    let view = finished(&runtime, &id).await;
    let after = output(&store, &view, "sim").await;
    assert_eq!(
        after["job_id"], out["job_id"],
        "the same config, the same job"
    );
    assert_eq!(after["status"], "completed", "{after}");
    assert_eq!(after["progress"]["completed"], 2, "{after}");
    assert_eq!(after["kill_switch"]["engaged"], false, "{after}");
    assert_eq!(after["kill_switch"]["refused_model_days"], 0, "{after}");
    assert!(
        after["leaderboard"][0]["total_return"].is_string(),
        "{after}"
    );
    runtime.shutdown().await;
}
