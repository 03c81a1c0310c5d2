//! Runs stored with values the runtime cannot schedule (written before `flow validate` bounded
//! them, or by hand): they fail cleanly with a reason, at recovery or when the value is first
//! used; nothing panics and no consume loop dies.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use tradeloom_orchestrator::Runtime;
use tradeloom_queue::InMemoryQueue;
use tradeloom_store::{
    NewWorkflowRun, NewWorkflowVersion, NodeStatus, RunStatus, Store, open_store,
};

use crate::harness::{Sink, config};

/// Stores `definition` as it is (no compile, so no validation) and a pending run of it.
async fn stored_run(store: &Arc<dyn Store>, definition: Value) -> String {
    let nodes: Vec<String> = definition["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    let v = store
        .create_workflow(&NewWorkflowVersion {
            name: definition["name"].as_str().unwrap().to_string(),
            definition: definition.to_string(),
            ir: "{}".into(),
        })
        .await
        .unwrap();
    store
        .create_workflow_run(&NewWorkflowRun {
            workflow_id: v.workflow_id,
            workflow_version: v.version,
            ir_hash: v.ir_hash,
            definition_hash: v.definition_hash,
            agent_nodes: 0,
            inputs: json!({}),
            nodes,
            priority: Default::default(),
            api_key_id: None,
            workflow_limit: None,
        })
        .await
        .unwrap()
        .id
}

async fn started(store: &Arc<dyn Store>) -> Arc<Runtime> {
    let runtime = Runtime::new(
        store.clone(),
        Arc::new(InMemoryQueue::new()),
        config(true),
        None,
    )
    .unwrap();
    runtime.start().await.unwrap();
    runtime
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stored_runs_the_runtime_cannot_schedule_fail_cleanly() {
    let dir = TempDir::new().unwrap();
    let location = dir.path().join("tradeloom.db").display().to_string();
    let store = open_store(&location).await.unwrap();
    let sink = Sink::default();
    let base = sink.serve().await;

    let endless_wait = stored_run(
        &store,
        json!({"name": "endless-wait", "nodes": [
            {"id": "w", "type": "wait", "config": {"duration_ms": u64::MAX}},
            {"id": "after", "type": "transform", "needs": ["w"]},
        ]}),
    )
    .await;
    let endless_backoff = stored_run(
        &store,
        json!({"name": "endless-backoff", "nodes": [
            {"id": "call", "type": "http", "retries": {"max_attempts": 3, "backoff_ms": u64::MAX},
             "config": {"method": "POST", "url": format!("{base}/fail/99")}},
        ]}),
    )
    .await;
    // A definition that no longer compiles (a zero wait is refused).
    let broken = stored_run(
        &store,
        json!({"name": "broken", "nodes": [
            {"id": "w", "type": "wait", "config": {"duration_ms": 0}},
        ]}),
    )
    .await;

    let runtime = started(&store).await;
    for run in [&endless_wait, &endless_backoff, &broken] {
        let r = runtime
            .wait_for(run, Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(r.status, RunStatus::Failed, "{run}: {:?}", r.error);
        let view = runtime.view(run).await.unwrap();
        assert!(
            view.nodes.iter().all(|n| !matches!(
                n.status,
                NodeStatus::Pending | NodeStatus::Queued | NodeStatus::Running
            )),
            "{run}: {:?}",
            view.nodes
        );
    }
    let error = |run: &str| {
        let runtime = runtime.clone();
        let run = run.to_string();
        async move { runtime.view(&run).await.unwrap().error.unwrap_or_default() }
    };
    // Whether the compiler or the runtime refuses the value, the reason names it.
    assert!(
        error(&endless_wait).await.contains("duration_ms"),
        "{}",
        error(&endless_wait).await
    );
    let backoff = error(&endless_backoff).await;
    assert!(
        backoff.contains("backoff") || backoff.contains("back-off"),
        "{backoff}"
    );
    assert!(
        error(&broken)
            .await
            .contains("workflow definition cannot run"),
        "{}",
        error(&broken).await
    );
    assert!(
        runtime.loop_health().iter().all(|g| g.finished == 0),
        "a consume loop died: {:?}",
        runtime.loop_health()
    );
    runtime.shutdown().await;

    // A restart finds nothing left to resume, and does not panic.
    let again = Runtime::new(
        store.clone(),
        Arc::new(InMemoryQueue::new()),
        config(true),
        None,
    )
    .unwrap();
    assert_eq!(again.start().await.unwrap(), 0);
    again.shutdown().await;
}
