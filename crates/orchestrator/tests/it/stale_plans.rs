//! A transition planned on top of one that is refused is refused too, even when the run's
//! revision happens to match it: here a cancel committed by another coordinator (as another
//! process, or a cancel planned on a fresh read while this one's plans were in flight) moves
//! the run to the revision this coordinator's second plan expects. Accepting that plan would
//! complete a node and queue the next one of a cancelled run (the "open nodes left after
//! cancel" seen once in `scale::a_small_run_is_not_held_behind_a_big_one`).
//!
//! Current-thread runtime: both signals are planned before the writer task commits either, so
//! they land in one batch, the second planned on the first.

use std::sync::Arc;

use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::Notify;
use tradeloom_flow::{compile, from_json_value};
use tradeloom_orchestrator::{Applied, Coordinator, Outcome, Signal};
use tradeloom_queue::InMemoryQueue;
use tradeloom_store::{
    CreateRun, NewWorkflowRun, NewWorkflowVersion, NodeStatus, RunStatus, Store, blob_hash,
    open_store,
};

use crate::harness::postgres_scratch;

fn diamond() -> Value {
    json!({"name": "diamond", "nodes": [
        {"id": "a", "type": "transform", "config": {"output": {"x": 1}}},
        {"id": "b", "type": "transform", "needs": ["a"], "config": {"output": {"b": 1}}},
        {"id": "c", "type": "transform", "needs": ["a"], "config": {"output": {"c": 1}}},
        {"id": "d", "type": "transform", "needs": ["b", "c"], "config": {"output": {"d": 1}}},
    ]})
}

fn finished(node: &str) -> Signal {
    let output = json!({ node: 1 });
    Signal::NodeFinished {
        node: node.into(),
        attempt: 1,
        outcome: Outcome::Completed {
            output_hash: blob_hash(&output.to_string()),
            output,
        },
    }
}

fn coordinator(store: &Arc<dyn Store>) -> Coordinator {
    Coordinator::new(
        store.clone(),
        Arc::new(InMemoryQueue::new()),
        Arc::new(Notify::new()),
    )
}

async fn plans_on_a_refused_transition_are_refused(store: Arc<dyn Store>) {
    let def = from_json_value(&diamond()).unwrap();
    let ir = compile(&def).unwrap().ir;
    let v = store
        .create_workflow(&NewWorkflowVersion {
            name: def.name.clone(),
            definition: def.to_json_value().to_string(),
            ir: ir.canonical_json(),
        })
        .await
        .unwrap();
    let here = coordinator(&store);
    let elsewhere = coordinator(&store);
    let run = here
        .create_and_start(CreateRun::new(NewWorkflowRun {
            workflow_id: v.workflow_id.clone(),
            workflow_version: v.version,
            ir_hash: v.ir_hash.clone(),
            definition_hash: v.definition_hash.clone(),
            agent_nodes: 0,
            inputs: json!({}),
            nodes: ir.nodes().iter().map(|n| n.id().to_string()).collect(),
            priority: Default::default(),
            api_key_id: None,
            workflow_limit: None,
        }))
        .await
        .unwrap();
    let id = run.id.as_str();
    assert!(matches!(
        here.apply(id, &finished("a")).await.unwrap(),
        Applied::Committed { .. }
    ));
    // `here` holds the run at this revision; the cancel moves it one up behind its back.
    let cancelled = elsewhere
        .apply(
            id,
            &Signal::Cancel {
                by: "ops".into(),
                reason: None,
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(
            cancelled,
            Applied::Committed {
                status: RunStatus::Cancelled,
                ..
            }
        ),
        "{cancelled:?}"
    );
    let (finished_b, finished_c) = (finished("b"), finished("c"));
    let (b, c) = tokio::join!(here.apply(id, &finished_b), here.apply(id, &finished_c));
    assert_eq!(b.unwrap(), Applied::Stale, "b: the run was cancelled");
    assert_eq!(c.unwrap(), Applied::Stale, "c: the run was cancelled");

    let run = store.workflow_run(id).await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    let states = store.node_states(id).await.unwrap();
    let summary: Vec<(String, NodeStatus)> = states
        .iter()
        .map(|s| (s.node_id.clone(), s.status))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("a".to_string(), NodeStatus::Completed),
            ("b".to_string(), NodeStatus::Skipped),
            ("c".to_string(), NodeStatus::Skipped),
            ("d".to_string(), NodeStatus::Skipped),
        ],
        "nothing of the cancelled run moved after the cancel"
    );
}

#[tokio::test]
async fn plans_on_a_refused_transition_are_refused_sqlite() {
    let dir = TempDir::new().unwrap();
    let store = open_store(&dir.path().join("t.db").display().to_string())
        .await
        .unwrap();
    plans_on_a_refused_transition_are_refused(store).await;
}

#[tokio::test]
async fn plans_on_a_refused_transition_are_refused_postgres() {
    let Some(scratch) = postgres_scratch().await else {
        return;
    };
    let store = open_store(scratch.url()).await.unwrap();
    plans_on_a_refused_transition_are_refused(store).await;
    scratch.drop_database().await.unwrap();
}
