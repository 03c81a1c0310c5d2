//! The `paper` node type: it starts a paper run of a spec in the config folder and completes at
//! once with the run's id while the run goes on in the process's [`EngineRuns`]; the run streams
//! its events into the store, stops through its stop signal, and is covered by the workflow
//! run's kill switch.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tempfile::TempDir;
use tradeloom_flow::{compile, from_json_value};
use tradeloom_orchestrator::{EngineRuns, RunView, Runtime, RuntimeConfig, StopOutcome};
use tradeloom_queue::InMemoryQueue;
use tradeloom_safety::{KillSwitch, Scope};
use tradeloom_store::{EventFilter, NewWorkflowVersion, RunStatus, Store, open_store};

use crate::harness::{start_definition, until_terminal};

const GOOG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/data/goog_1d.csv"
);

struct Setup {
    dir: TempDir,
    store: Arc<dyn Store>,
    runtime: Arc<Runtime>,
}

/// A runtime whose config folder holds `backtest.yaml` and `paper.yaml` (replaying 600 days of
/// GOOG at `speed`) and their bars.
async fn setup(speed: &str) -> Setup {
    let dir = TempDir::new().unwrap();
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    let text = std::fs::read_to_string(GOOG).unwrap();
    let short: Vec<&str> = text.lines().take(601).collect();
    std::fs::write(specs.join("goog.csv"), short.join("\n") + "\n").unwrap();
    let body = "instruments: [{symbol: GOOG, price_precision: 2, size_precision: 0}]\n\
                data: [{symbol: GOOG, path: goog.csv}]\n\
                strategy: {name: sma_cross, params: {fast: 3, slow: 6, quantity: 10}}\n\
                execution: {fill_model: next_open}\n\
                account: {initial_cash: 100000, currency: USD}\n";
    std::fs::write(
        specs.join("paper.yaml"),
        format!("name: paper-node\nmode: paper\nfeed: {{type: replay, speed: {speed}}}\n{body}"),
    )
    .unwrap();
    std::fs::write(
        specs.join("backtest.yaml"),
        format!("name: bt-node\nmode: backtest\n{body}"),
    )
    .unwrap();
    let store = open_store(&dir.path().join("t.db").display().to_string())
        .await
        .unwrap();
    let mut config = RuntimeConfig::new(dir.path().join("data"));
    config.config_dir = Some(tradeloom_agents::ConfigDir::new(&specs).unwrap());
    let runtime =
        Runtime::new(store.clone(), Arc::new(InMemoryQueue::new()), config, None).unwrap();
    runtime.start().await.unwrap();
    Setup {
        dir,
        store,
        runtime,
    }
}

async fn run_workflow(s: &Setup, definition: Value) -> RunView {
    let id = start_definition(&s.store, &s.runtime, &definition).await;
    until_terminal(&s.runtime, &id).await
}

async fn output(store: &Arc<dyn Store>, view: &RunView, node: &str) -> Value {
    let hash = view
        .nodes
        .iter()
        .find(|n| n.id == node)
        .and_then(|n| n.output.clone())
        .unwrap_or_else(|| panic!("no output of {node}: {view:?}"));
    serde_json::from_str(&store.blob(&hash).await.unwrap().body).unwrap()
}

fn metadata(s: &Setup, run_id: &str) -> Value {
    let path = s
        .dir
        .path()
        .join("data/runs")
        .join(run_id)
        .join("metadata.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn journal(s: &Setup, run_id: &str) -> Vec<Value> {
    let path = s
        .dir
        .path()
        .join("data/runs")
        .join(run_id)
        .join("journal.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn engine_runs(s: &Setup) -> &Arc<EngineRuns> {
    s.runtime.engine_runs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paper_node_outputs_its_run_id_at_once_and_the_run_goes_on_until_stopped() {
    // 10 days a second: a minute for the file, so the run is still going when the node is done.
    let s = setup("864000").await;
    let view = run_workflow(
        &s,
        json!({"name": "paper", "nodes": [
            {"id": "p", "type": "paper", "config": {"spec_path": "paper.yaml"}}
        ]}),
    )
    .await;
    assert_eq!(view.status, RunStatus::Completed, "{:?}", view.error);
    let out = output(&s.store, &view, "p").await;
    assert_eq!(out["status"], "running", "{out}");
    let run_id = out["run_id"].as_str().unwrap().to_string();
    assert!(
        engine_runs(&s).is_active(&run_id),
        "the run goes on after the node"
    );
    assert_eq!(metadata(&s, &run_id)["status"], "running");

    // Its events reach the store's event log under its id.
    let mut events = Vec::new();
    for _ in 0..400 {
        events = s
            .store
            .events(EventFilter::EngineRun(&run_id), 0, 1000)
            .await
            .unwrap();
        if events.iter().any(|e| e.kind == "equity") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(events.iter().any(|e| e.kind == "equity"), "{events:?}");

    let StopOutcome::Stopping(mut done) = engine_runs(&s).stop(&run_id) else {
        panic!("a paper run of this process stops")
    };
    tokio::time::timeout(Duration::from_secs(30), done.wait_for(|d| *d))
        .await
        .expect("stopped within 30 s")
        .unwrap();
    assert!(!engine_runs(&s).is_active(&run_id));
    let meta = metadata(&s, &run_id);
    assert_eq!(
        (meta["status"].as_str(), meta["stop_reason"].as_str()),
        (Some("completed"), Some("stopped"))
    );
    let last = s
        .store
        .events(EventFilter::EngineRun(&run_id), 0, 10_000)
        .await
        .unwrap();
    assert_eq!(last.last().unwrap().kind, "run_finished");
    assert!(matches!(
        engine_runs(&s).stop(&run_id),
        StopOutcome::NotActive
    ));

    // A server shutting down stops every paper run it runs, sealed.
    let mut ids = Vec::new();
    for name in ["again-1", "again-2"] {
        let view = run_workflow(
            &s,
            json!({"name": name, "nodes": [
                {"id": "p", "type": "paper", "config": {"spec_path": "paper.yaml"}}
            ]}),
        )
        .await;
        let out = output(&s.store, &view, "p").await;
        ids.push(out["run_id"].as_str().unwrap().to_string());
    }
    assert_eq!(engine_runs(&s).active().len(), 2);
    let late = engine_runs(&s).stop_all(Duration::from_secs(30)).await;
    assert!(late.is_empty(), "{late:?}");
    for id in &ids {
        assert_eq!(metadata(&s, id)["stop_reason"], "stopped");
    }
    assert!(engine_runs(&s).active().is_empty());
    s.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_runs_kill_switch_covers_its_paper_runs() {
    let s = setup("max").await;
    let def = json!({"name": "paper-wait", "nodes": [
        {"id": "pause", "type": "wait", "config": {"duration_ms": 1500}},
        {"id": "p", "type": "paper", "needs": ["pause"], "config": {"spec_path": "paper.yaml"}}
    ]});
    let def = from_json_value(&def).unwrap();
    let compiled = compile(&def).unwrap();
    let workflow = s
        .store
        .create_workflow(&NewWorkflowVersion {
            name: def.name.clone(),
            definition: def.to_json_value().to_string(),
            ir: compiled.ir.canonical_json(),
        })
        .await
        .unwrap()
        .workflow_id;
    let id = s
        .runtime
        .start_run(&workflow, None, &Map::new())
        .await
        .unwrap()
        .id;
    KillSwitch::open(&s.dir.path().join("data"))
        .unwrap()
        .engage(
            &Scope::run(&id).unwrap(),
            "stop this workflow",
            "ops",
            false,
        )
        .unwrap();
    let view = until_terminal(&s.runtime, &id).await;
    assert_eq!(view.status, RunStatus::Completed, "{:?}", view.error);
    let out = output(&s.store, &view, "p").await;
    assert_eq!(out["kill_switch"]["scope"], format!("run:{id}"), "{out}");
    let run_id = out["run_id"].as_str().unwrap();
    // At `speed: max` the replay ends by itself.
    engine_runs(&s).wait(run_id).await;
    assert_eq!(metadata(&s, run_id)["stop_reason"], "feed_end");
    let lines = journal(&s, run_id);
    let rejected: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "order_rejected")
        .collect();
    assert!(!rejected.is_empty(), "the strategy tried to trade");
    assert!(!lines.iter().any(|l| l["event"] == "order_filled"));
    assert!(rejected.iter().all(|r| r["code"] == "risk.kill_switch"));
    s.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paper_node_refuses_a_backtest_spec_and_a_path_outside_the_config_folder() {
    let s = setup("max").await;
    let view = run_workflow(
        &s,
        json!({"name": "wrong", "nodes": [
            {"id": "p", "type": "paper", "config": {"spec_path": "backtest.yaml"}}
        ]}),
    )
    .await;
    assert_eq!(view.status, RunStatus::Failed);
    let error = view.nodes[0].error.clone().unwrap_or_default();
    assert!(error.contains("mode is not `paper`"), "{error}");
    let view = run_workflow(
        &s,
        json!({"name": "outside", "nodes": [
            {"id": "p", "type": "paper", "config": {"spec_path": "../x.yaml"}}
        ]}),
    )
    .await;
    assert_eq!(view.status, RunStatus::Failed);
    let error = view.nodes[0].error.clone().unwrap_or_default();
    assert!(error.contains("spec_path `../x.yaml`"), "{error}");
    assert!(engine_runs(&s).active().is_empty());
    s.runtime.shutdown().await;
}
